"""One locked operation on one host: connect, take the lock, log the result, always unlock."""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime

from ..commands import release as rel
from ..config import App
from ..errors import ConnectionLost, LockedError
from ..facts import describe_lock
from ..layout import Paths, paths_for
from ..output import Reporter
from ..remote import Remote, local_identity


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Session:
    """The connection, the lock and the facts read when taking it, for one operation."""

    remote: Remote
    app: App
    out: Reporter
    action: str
    token: str = field(default_factory=lambda: secrets.token_hex(8))
    facts: dict[str, str] = field(default_factory=dict)
    locked: bool = False
    started: str = field(default_factory=now_iso)
    t0: float = field(default_factory=time.monotonic)

    @property
    def paths(self) -> Paths:
        return paths_for(self.app)

    @property
    def app_user(self) -> str:
        return self.app.runs_as(self.remote.user)

    def holder(self) -> dict[str, str]:
        return {"by": local_identity(), "pid": str(os.getpid()), "since": now_iso(),
                "action": self.action, "token": self.token}

    def lock(self) -> None:
        """Take the lock; on a first deploy create <deploy_to> with sudo first."""
        p, remote = self.paths, self.remote
        res = remote.run(rel.prepare(p, self.app.python, self.holder()), check=False,
                         what="prepare")
        if res.code == rel.NEEDS_LAYOUT:
            remote.run(rel.layout(p, remote.user), priv=True, what=f"create {p.deploy_to}")
            res = remote.run(rel.prepare(p, self.app.python, self.holder()), check=False,
                             what="prepare")
        if res.code == rel.LOCKED:
            raise LockedError(f"{p.deploy_to} is locked by "
                              f"{describe_lock(res.stdout, self.app.lock_stale_after)}",
                              host=remote.label)
        if res.code == rel.DISK_FULL:
            raise remote.error(f"disk full on {p.deploy_to} ({res.stdout.strip() or '?'} MB free):"
                               f" nothing was changed; free some space, then deploy again")
        if res.code == rel.NO_PYTHON:
            raise remote.error(f"{self.app.python} not found on the server; install it "
                               f"(apt-get install python3 python3-venv) or set app.python in "
                               f"hosts.yaml")
        if not res.ok:
            raise remote.error(f"prepare failed (exit {res.code})", res.output)
        self.locked = True
        self.facts = res.facts()

    def unlock(self) -> None:
        if self.locked:
            self.remote.run(rel.unlock(self.paths, self.token), what="unlock", check=False)
            self.locked = False

    def record(self, release: str, result: str, **fields: object) -> None:
        """Append this operation's entry to deploys.log."""
        entry = {"action": self.action, "host": self.remote.label, "by": local_identity(),
                 "release": release, "started": self.started,
                 "duration": round(time.monotonic() - self.t0, 2), "result": result, **fields}
        self.remote.run(rel.append_log(self.paths, entry), what="deploy log", check=False)

    def cleanup(self, body: Callable[[], None]) -> None:
        """Run failure handling; after a lost connection, reconnect once to do it."""
        try:
            body()
        except ConnectionLost:
            self.remote.reconnect()
            body()


@contextmanager
def locked(remote: Remote, app: App, out: Reporter, action: str) -> Iterator[Session]:
    """The `starting` stage of every locked operation: connect and lock; at the end, whatever
    happened, unlock and disconnect."""
    s = Session(remote, app, out, action)
    try:
        with out.step("connect") as st:
            remote.open()
            s.lock()
            st.detail = f"{remote.user}@{remote.conn.host}, locked"
        yield s
    finally:
        try:
            s.cleanup(s.unlock)
        finally:
            remote.close()

