"""What is on a host (releases, current, the lock, the deploy log), and `fab unlock`."""

from __future__ import annotations

from ..commands import release as rel
from ..config import App
from ..facts import State, describe_lock, parse_state, state_command
from ..layout import paths_for
from ..remote import Remote


def read_state(remote: Remote, app: App) -> State:
    """The host's releases and lock (the connection must be open)."""
    res = remote.run(state_command(paths_for(app)), what="read releases")
    return parse_state(res.stdout)


def releases(remote: Remote, app: App) -> State:
    """Connect, read the state, disconnect."""
    remote.open()
    try:
        return read_state(remote, app)
    finally:
        remote.close()


def force_unlock(remote: Remote, app: App) -> str:
    """Remove the lock whoever holds it; say whose it was (without the host)."""
    p = paths_for(app)
    remote.open()
    try:
        res = remote.run(rel.force_unlock(p), what="unlock", check=False)
    finally:
        remote.close()
    if res.code == rel.LOCKED:
        raise remote.error(f"nothing removed: a publish job (pid {res.stdout.strip()}) runs on the"
                           f" server under the lock on {p.deploy_to}; it releases the lock when"
                           f" done, within the health timeout")
    if not res.ok:
        raise remote.error(f"unlock failed (exit {res.code})", res.output)
    removed, _, holder = res.stdout.partition("\n")
    if removed.strip() != "removed":
        return f"no lock on {p.deploy_to}"
    return (f"removed the lock on {p.deploy_to} held by "
            f"{describe_lock(holder, app.lock_stale_after)}")
