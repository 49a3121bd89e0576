"""One locked operation on one host: connect, take the lock, log the result, always unlock."""

from __future__ import annotations

import base64
import os
import secrets
import select
import threading
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
from ..remote import Remote, Result, Stream, local_identity


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Keeper:
    """The lock's keeper on the server (commands/release.keeper): started on its own channel,
    fed a heartbeat line every 15 s by a thread here, ended by `stop` (or by this process
    dying)."""

    HEARTBEAT = 15.0

    def __init__(self, stream: Stream | None, ident: str = "") -> None:
        self.stream, self.ident = stream, ident
        self.done = threading.Event()

    @classmethod
    def start(cls, remote: Remote, p: Paths, token: str, wait: float = 15.0) -> Keeper:
        stream = Stream(remote, rel.keeper(p, token), keep_stdin=True)
        deadline, lines = time.monotonic() + wait, []
        while not lines and not stream.done and time.monotonic() < deadline:
            select.select([stream], [], [], 0.2)
            lines += stream.pump()[0]
        ident = next((x.removeprefix("keeper=") for x in lines if x.startswith("keeper=")), "")
        if not ident:
            stream.close()
            raise remote.error("could not start the lock's keeper on the server")
        keeper = cls(stream, ident)
        threading.Thread(target=keeper._beat, daemon=True).start()
        return keeper

    def _beat(self) -> None:
        while not self.done.wait(self.HEARTBEAT):
            try:
                self.stream.chan.sendall(b"\n")  # type: ignore[union-attr]
            except Exception:  # noqa: BLE001 - a dead connection: the keeper is gone too
                return

    def stop(self) -> None:
        self.done.set()
        if self.stream is not None:
            self.stream.close()


@dataclass
class Session:
    """The connection, the lock and the facts read when taking it, for one operation."""

    remote: Remote
    app: App
    out: Reporter
    action: str
    token: str = field(default_factory=lambda: secrets.token_hex(8))
    keeper: Keeper = field(default_factory=lambda: Keeper(None))
    facts: dict[str, str] = field(default_factory=dict)
    locked: bool = False
    ended_watch: str = ""  # the release whose watch window this operation ended
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
                "action": self.action, "token": self.token, "keeper": self.keeper.ident}

    def lock(self) -> None:
        """Take the lock; on a first deploy create <deploy_to> with sudo first. The lock lives
        as long as this client: its keeper on the server ends when the client dies."""
        p, remote = self.paths, self.remote
        self.keeper = Keeper.start(remote, p, self.token)
        res = remote.run(rel.prepare(p, self.app.python, self.holder()), check=False,
                         what="prepare")
        if res.code == rel.NEEDS_LAYOUT:
            remote.run(rel.layout(p, remote.user), priv=True, what=f"create {p.deploy_to}")
            res = remote.run(rel.prepare(p, self.app.python, self.holder()), check=False,
                             what="prepare")
        if res.code == rel.LOCKED and self.action in ("deploy", "rollback"):
            res = self.end_watch(res)
        if res.code == rel.LOCKED:
            job = ("; its client is gone and the server is finishing its publish: deploy again in"
                   " a minute" if "job=running" in res.stdout.splitlines() else "")
            raise LockedError(f"{p.deploy_to} is locked by "
                              f"{describe_lock(res.stdout, self.app.lock_stale_after)}{job}",
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
        if "took_over" in self.facts:
            gone = base64.b64decode(self.facts["took_over"]).decode("utf-8", "replace")
            self.out.line(f"took over the lock of {describe_lock(gone, self.app.lock_stale_after)}"
                          f": its client is gone")

    def end_watch(self, res: Result) -> Result:
        """The lock is a deploy's whose release is in its watch window (health.watch): end the
        window (a deploy keeps that release, a rollback sends it back) and wait for the lock."""
        watching = res.facts().get("watching", "")
        if not watching:
            return res
        p, remote = self.paths, self.remote
        how = "it goes back" if self.action == "rollback" else "it stays"
        self.out.line(f"release {watching} is in its watch window: ending it now ({how})")
        remote.run(rel.end_watch(p, self.action), what="end the watch window")
        deadline = time.monotonic() + 120
        while res.code == rel.LOCKED and time.monotonic() < deadline:
            time.sleep(0.5)
            res = remote.run(rel.prepare(p, self.app.python, self.holder()), check=False,
                             what="prepare")
        self.ended_watch = watching
        return res

    def unlock(self) -> None:
        try:
            if self.locked:
                self.remote.run(rel.unlock(self.paths, self.token), what="unlock", check=False)
                self.locked = False
        finally:
            self.keeper.stop()

    def entry(self, release: str, result: str, **fields: object) -> dict[str, object]:
        """This operation's deploys.log entry, but its duration."""
        return {"action": self.action, "host": self.remote.label, "by": local_identity(),
                "release": release, "started": self.started, "result": result, **fields}

    def entries(self, release: str, back_to: str = "", **fields: object) -> dict[str, dict]:
        """The entry per result of a publish job (commands/job), for the job to write when this
        client is gone by then."""
        failed = self.entry(release, "failed", **fields)
        return {"ok": self.entry(release, "ok", **fields), "failed": failed,
                "back": {**failed, "rolled_back_to": back_to or None}, "back_failed": failed}

    def record(self, release: str, result: str, **fields: object) -> None:
        """Append this operation's entry to deploys.log."""
        entry = {**self.entry(release, result, **fields),
                 "duration": round(time.monotonic() - self.t0, 2)}
        self.remote.run(rel.append_log(self.paths, entry), what="deploy log", check=False)

    def cleanup(self, body: Callable[[], None]) -> None:
        """Run failure handling; after a lost connection, reconnect once to do it."""
        try:
            body()
        except ConnectionLost:
            self.remote.reconnect()
            body()


PAUSE_ENV = "WSGISHIP_TEST_PAUSE"


def pause_point(out: Reporter, where: str) -> str:
    """A test-only pause (tests/integration/test_kill.py), named by $WSGISHIP_TEST_PAUSE:
    `before:<stage>` stops this client there until it is killed; `job:<step>` is returned for
    a publish job to pause after that step until its client is gone (at most 60 s)."""
    point = os.environ.get(PAUSE_ENV, "")
    kind, _, name = point.partition(":")
    if where == "job":
        return name if kind == "job" else ""
    if point == where:
        out.line(f"test pause {where.replace(':', ' ')}")
        cancel = getattr(out, "cancel", None)
        if cancel is None:
            time.sleep(3600)
        else:  # a fleet's host: until Ctrl-C
            cancel.wait(3600)
            out.check_cancel()
    return ""


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

