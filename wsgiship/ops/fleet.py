"""`fab deploy` on several hosts: prepare everywhere, then switch everywhere, all or nothing.

    lock      every host at once; a host locked by someone else stops the run before anything
              is shipped (every lock taken is released)
    prepare   every host at once: upload, venv, configs, the hooks before the switch, and the
              new release started in its spare slot and checked on its own socket. When more
              hosts fail than `max_fail` allows, no host switches: each stops its new uWSGI
              and keeps serving its release
    switch    in batches (all at once by default): each host publishes (switch, nginx, health
              check, watch window); a batch passes before the next one starts. When more hosts
              fail than allowed, `rollback` sends every switched host back to the release it
              had, `stop` leaves them on the new one; hosts not switched yet stop their new
              uWSGI
    finish    prune and log on every switched host; every lock released

One release name for the whole run. Each host's lines come whole, prefixed with the host; the
run ends with a table (host, release, result, time, reason). Ctrl-C: every host stops at its
next step and goes back as after a failure; a second Ctrl-C leaves at once (the servers end
their locks and finish any publish that started, as after a killed client).
"""

from __future__ import annotations

import threading
import time
import traceback
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field

from ..errors import FleetStop, Interrupted, LockedError, WsgishipError
from ..hosts import Target, start
from ..output import Printer, Reporter
from ..source import Source
from ..summary import Row, table
from .deploy import Deploy
from .publish import recovering, site_url
from .session import locked


@dataclass(frozen=True)
class Plan:
    """How a fleet deploys: `batch` hosts switch at a time (0: all at once); up to `max_fail`
    hosts may fail and the rest go on; `on_failure` beyond that: rollback or stop; `serial`:
    one whole deploy after the other."""

    batch: int = 0
    max_fail: int = 0
    on_failure: str = "rollback"
    serial: bool = False

    def describe(self, hosts: int) -> str:
        how = ("one host after the other" if self.serial
               else "all at once" if self.batch == 0 or self.batch >= hosts
               else f"in batches of {self.batch}")
        tolerate = f", up to {self.max_fail} may fail" if self.max_fail else ""
        return f"{how}{tolerate}; on failure: {self.on_failure}"


@dataclass
class Member:
    """One host of the fleet and where it stands: waiting, locked, prepared, switched,
    deployed, failed (its own failure), stopped (not switched because of the fleet), back
    (switched, then sent back because of the fleet), skipped (never reached)."""

    deploy: Deploy
    stack: ExitStack = field(default_factory=ExitStack)
    state: str = "waiting"
    reason: str = ""
    seconds: float | None = None
    error: WsgishipError | None = None

    @property
    def label(self) -> str:
        return self.deploy.remote.label


@dataclass
class Fleet:
    targets: Sequence[Target]
    plan: Plan
    printer: Printer
    cancel: threading.Event = field(default_factory=threading.Event)
    members: list[Member] = field(init=False)
    out: Reporter = field(init=False)
    t0: float = field(default_factory=time.monotonic)
    stopping: str = ""  # why the rest of the fleet stops

    def __post_init__(self) -> None:
        self.out = Reporter("fleet", self.printer, live=False)
        self.members = [Member(Deploy(t.remote, t.host.app, Reporter(
            t.label, self.printer, live=False, cancel=self.cancel))) for t in self.targets]

    @property
    def release(self) -> str:
        return self.members[0].deploy.release

    def run(self) -> list[Row]:
        """Deploy to every host; the table's rows (the caller raises when not all deployed)."""
        self.collect()
        self.out.line(f"deploying {self.release} to {len(self.members)} hosts, "
                      f"{self.plan.describe(len(self.members))}")
        if self.plan.serial:
            self.serially()
            return self.rows()
        left = False
        try:
            if self.stage("lock", self.lock_one, list(self.members)):
                if self.stage("prepare", self.prepare_one, self.going("locked")):
                    self.switch_all()
            self.stop_the_rest()
            self.finish_all()
        except KeyboardInterrupt:
            # a second Ctrl-C: leave now, unlocking nothing from here while the hosts' threads
            # still work; each server ends its lock as its client's keeper goes, and finishes
            # a publish that started (as after a killed client)
            left = True
            raise
        finally:
            if not left:
                for m in self.members:
                    m.stack.close()
        return self.rows()

    def collect(self) -> None:
        """Read what is shipped once per app source: every host gets the same release."""
        sources: dict[tuple[str, str], Source] = {}
        release = ""
        for m in self.members:
            key = (str(m.deploy.app.source), m.deploy.app.uwsgi_package)
            if key in sources:
                m.deploy.collect(sources[key], release)
            else:  # read here (its warnings said once), named after the first source
                m.deploy.collect(release=release)
                sources[key], release = m.deploy.source, m.deploy.release

    def going(self, state: str) -> list[Member]:
        return [m for m in self.members if m.state == state]

    def failures(self) -> list[Member]:
        return [m for m in self.members if m.state == "failed"]

    def stage(self, name: str, work: Callable[[Member], None], members: list[Member]) -> bool:
        """Run a stage on `members` at once; whether the fleet goes on after it."""
        self.at_once(members, work)
        return not self.stops(f"failed to {name}", "; no host switches")

    def stops(self, failed_to: str, then: str = "") -> bool:
        """Whether the fleet stops here (interrupted, a host locked by someone else, or more
        failures than max_fail); if so, `stopping` says why, and so does a line."""
        failed = self.failures()
        if self.cancel.is_set():
            self.stopping = "interrupted"
        elif any(isinstance(m.error, LockedError) for m in failed):
            self.stopping = f"{self.names(failed)} locked: nothing was shipped"
        elif len(failed) > self.plan.max_fail:
            self.stopping = f"{self.names(failed)} {failed_to} ({failed[0].reason})"
        if self.stopping:
            self.out.line(f"stopping: {self.stopping}{then}")
        return bool(self.stopping)

    @staticmethod
    def names(members: Sequence[Member]) -> str:
        return ", ".join(m.label for m in members)

    def lock_one(self, m: Member) -> None:
        d = m.deploy
        d.s = m.stack.enter_context(locked(d.remote, d.app, d.out, "deploy"))
        m.state = "locking"  # from here a failure has a session to undo
        d.previous = recovering(d.s)
        m.state = "locked"

    def prepare_one(self, m: Member) -> None:
        m.deploy.prepare()
        m.state = "prepared"
        m.deploy.out.line(f"ready: {m.deploy.release} checked in its own uWSGI, not switched")

    def switch_one(self, m: Member) -> None:
        m.deploy.switch()
        m.state = "switched"

    def switch_all(self) -> None:
        ready = self.going("prepared")
        size = self.plan.batch or len(ready)
        batches = [ready[i:i + size] for i in range(0, len(ready), size)]
        self.out.line(f"{len(ready)} hosts ready: switching "
                      + ("all at once" if len(batches) == 1 else f"in {len(batches)} batches"))
        for i, batch in enumerate(batches, 1):
            if len(batches) > 1:
                self.out.line(f"batch {i} of {len(batches)}: {self.names(batch)}")
            self.at_once(batch, self.switch_one)
            if self.stops("failed"):
                return

    def stop_the_rest(self) -> None:
        """After the fleet stopped: hosts not switched stop their new uWSGI; switched ones go
        back (on_failure: rollback) or stay."""
        if not self.stopping:
            return
        back = self.plan.on_failure == "rollback"
        for m in self.going("locked"):  # nothing shipped there yet: only its lock to release
            m.state, m.reason = "stopped", self.stopping
        undo = [m for m in self.members if m.state == "prepared"
                or (back and m.state == "switched")]
        if back and self.going("switched"):
            self.out.line(f"sending {self.names(self.going('switched'))} back to the release "
                          f"each had (on_failure: rollback)")
        elif self.going("switched"):
            self.out.line(f"{self.names(self.going('switched'))} stay on {self.release} "
                          f"(on_failure: stop)")
        self.cancel.clear()  # going back is not interrupted
        self.at_once(undo, self.undo_one)

    def undo_one(self, m: Member) -> None:
        switched = m.state == "switched"
        m.state, m.reason = ("back" if switched else "stopped"), self.stopping
        m.deploy.undo(FleetStop(f"{'sent back' if switched else 'not switched'}: "
                                f"{self.stopping}", host=m.label))

    def finish_all(self) -> None:
        def finish(m: Member) -> None:
            m.deploy.out.cancel = None  # on the new release already: Ctrl-C no longer undoes it
            try:
                m.deploy.stage("finishing")
            except WsgishipError as exc:
                m.deploy.out.line(f"warning: {exc.reason}; {m.deploy.release} stays live")
            m.state = "deployed"
            d = m.deploy
            d.out.line(f"deployed {d.release} -> {site_url(d.remote, d.app)}")

        self.at_once(self.going("switched"), finish)

    def serially(self) -> None:
        """--serial: one whole deploy after the other (each its own lock and switch); the
        first failure beyond max_fail stops the run, the hosts after it not reached."""
        for m in self.members:
            if len(self.failures()) > self.plan.max_fail or self.cancel.is_set():
                m.state, m.reason = "skipped", "not reached: the run stopped before it"
                continue
            self.guarded(m, lambda m: self.serial_one(m))

    def serial_one(self, m: Member) -> None:
        d = m.deploy
        d.out.cancel = None
        d.run()
        m.state = "deployed"
        d.out.line(f"deployed {d.release} -> {site_url(d.remote, d.app)}")

    def at_once(self, members: Sequence[Member], work: Callable[[Member], None]) -> None:
        """`work` on every member in its own thread. A first Ctrl-C sets `cancel` (each host
        stops at its next step); a second one leaves at once."""
        threads = start(members, lambda _i, m: self.guarded(m, work))
        for t in threads:
            while t.is_alive():
                try:
                    t.join(0.2)
                except KeyboardInterrupt:
                    if self.cancel.is_set():
                        raise
                    self.cancel.set()
                    self.printer.write(
                        "[fleet] interrupted: each host stops at its next step and goes back; "
                        "Ctrl-C again leaves now (the servers end the locks and finish any "
                        "switch that started)", stream=self.printer.err)

    def guarded(self, m: Member, work: Callable[[Member], None]) -> None:
        """Run `work` on one member; a failure is that member's (its deploy undone, its lock
        released), never the thread's."""
        try:
            work(m)
            m.seconds = time.monotonic() - self.t0
            return
        except WsgishipError as exc:
            error = exc
        except Exception as exc:  # noqa: BLE001 - a bug must not leave the host half-done
            self.printer.write(traceback.format_exc(), end="", stream=self.printer.err)
            error = WsgishipError(f"internal error: {exc!r}", host=m.label)
        m.error = error
        was = m.state
        m.state, m.reason = "failed", error.reason
        m.seconds = time.monotonic() - self.t0
        if was not in ("waiting", "locking") and not self.plan.serial:
            try:
                m.deploy.undo(error)
            except WsgishipError as exc:
                m.reason += f"; going back failed: {exc.reason}"
        if isinstance(error, Interrupted):
            m.reason = "interrupted"
        m.stack.close()
        m.deploy.out.line(f"FAILED: {error.describe(with_host=False).splitlines()[0]}")

    def rows(self) -> list[Row]:
        results = {"deployed": "deployed", "failed": "FAILED", "interrupted": "interrupted",
                   "stopped": "not switched", "back": "sent back", "skipped": "not reached",
                   "switched": "deployed"}
        rows = []
        for m in self.members:
            d = m.deploy
            on_new = m.state in ("deployed", "switched")
            release = d.release if on_new else (d.previous or "-")
            if m.state == "failed" and d.published is not None and d.published.switched \
                    and d.published.result == "failed":
                release = d.release  # a first deploy that failed after its switch
            state = "interrupted" if m.reason == "interrupted" else m.state
            rows.append(Row(m.label, release, results.get(state, state),
                            m.seconds, m.reason))
        return rows

    def report(self) -> None:
        """Print the table; raise unless every host is on the new release."""
        rows = self.rows()
        for line in table(rows):
            self.printer.write(line)
        behind = [r for r in rows if r.result != "deployed"]
        if behind:
            raise WsgishipError(
                f"{len(behind)} of {len(rows)} hosts not on {self.release}: "
                + "; ".join(f"{r.host} {r.result}" for r in behind))
        self.printer.write(f"[fleet] {len(rows)} hosts on {self.release} in "
                           f"{time.monotonic() - self.t0:.1f}s")


def fleet_deploy(targets: Sequence[Target], plan: Plan, printer: Printer) -> None:
    """Deploy to several hosts as `plan` says; raise unless every host ends on the new
    release."""
    fleet = Fleet(targets, plan, printer)
    fleet.run()
    fleet.report()
