"""fab rollback, fab releases, fab unlock."""

from __future__ import annotations

from typing import Any

from fabric import task

from wsgiship.flow import Rollback, force_unlock, read_state, site_url
from wsgiship.output import Reporter

from .common import clean_exit, resolve


@task(help={"to": "a release name from `fab releases` (default: the previous good one)"})
@clean_exit
def rollback(c: Any, to: str = "") -> None:
    """Go back to the previous good release (or --to RELEASE): switch, reload, health check."""
    remote, host = resolve(c)
    out = Reporter(host.alias)
    release = Rollback(remote, host.app, out, to).run()
    out.line(f"rolled back to {release} -> {site_url(remote, host.app)} in {out.elapsed:.1f}s")


@task
@clean_exit
def releases(c: Any) -> None:
    """List releases: revision, deployed at, by whom, status, and which is current."""
    remote, host = resolve(c)
    remote.open()
    try:
        state = read_state(remote, host.app)
    finally:
        remote.close()
    if not state.releases:
        print(f"[{host.alias}] no releases in {host.app.deploy_to}")
        return
    rows = [("", "RELEASE", "REVISION", "DEPLOYED AT", "BY", "STATUS")]
    for r in reversed(state.releases):
        status = f"failed: {r.failed}" if r.failed else "ok"
        rev = r.revision.removeprefix("sha256:")[:12]
        rows.append(("*" if r.name == state.current else "", r.name, rev,
                     r.deployed_at or "-", r.deployed_by or "-", status))
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    for row in rows:
        print(f"[{host.alias}] " + "  ".join(v.ljust(w) for v, w in zip(row, widths, strict=False))
              + "  " + row[5])
    if state.lock:
        print(f"[{host.alias}] locked: {state.lock}")


@task
@clean_exit
def unlock(c: Any) -> None:
    """Remove a deploy lock left behind, saying whose it was."""
    remote, host = resolve(c)
    print(force_unlock(remote, host.app))
