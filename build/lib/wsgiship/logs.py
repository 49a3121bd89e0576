"""`fab logs`: the app's uWSGI log and nginx's logs of one or many hosts, read or followed.

Remote output is read as bytes, split into lines, decoded as UTF-8 (bad bytes replaced) and
written whole, one line at a time, as ``[host] source | line`` (see output.Printer).
"""

from __future__ import annotations

import select
import signal
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from .commands import logs as cmds
from .errors import WsgishipError
from .hosts import Target, concurrent, start
from .layout import paths_for
from .output import Printer
from .remote import Remote, Stream, check_alive, sudo_refusal


@dataclass
class HostLogs:
    """The logs of one host: which files, which need sudo, since when."""

    target: Target
    query: cmds.LogQuery
    files: dict[str, str] = field(default_factory=dict)
    priv: dict[str, bool] = field(default_factory=dict)
    since: int | None = None

    @property
    def label(self) -> str:
        return self.target.label

    @property
    def remote(self) -> Remote:
        return self.target.remote

    def prepare(self) -> None:
        """Connect, check --grep and --since on the server, find which logs need sudo."""
        self.files = cmds.log_files(paths_for(self.target.host.app), self.query.sources)
        self.remote.open()
        res = self.remote.run(cmds.probe(self.files, self.query.grep, self.query.since),
                              check=False, what="log check")
        if res.code == cmds.BAD_SINCE:
            raise self.remote.error(f"--since {self.query.since!r}: not a time the "
                                    f"server's `date -d` understands (e.g. '10 min ago', "
                                    f"'2026-11-25 12:00')")
        if res.code == cmds.BAD_GREP:
            detail = res.stderr.strip().splitlines()
            raise self.remote.error(f"--grep {self.query.grep!r}: not an extended regular "
                                    f"expression ({detail[-1] if detail else 'grep said no'})")
        if not res.ok:
            raise self.remote.error(f"log check failed (exit {res.code})", res.output)
        facts = res.facts()
        self.priv = {s: facts.get(f"priv_{s}") == "1" for s in self.files}
        self.since = int(facts["since"]) if "since" in facts else None

    def stream(self, source: str) -> Stream:
        q = self.query
        path = self.files[source]
        if q.follow:
            body = cmds.follow(path, q.lines, q.grep, self.since)
        else:
            body = cmds.read(path, q.lines, q.grep, self.since)
        return Stream(self.remote, body, priv=self.priv[source], keep_stdin=q.follow)

    def note_for(self, source: str, line: str) -> str:
        """A stderr line of a log script, as the note shown to the user."""
        if line.startswith(cmds.NOTE):
            key = line.removeprefix(cmds.NOTE)
            text = cmds.NOTES.get(key, key)
            if key in ("missing", "waiting"):
                text += f" ({self.files[source]})"
            return f"{source}: {text}"
        return f"{source}: {line}"


def _read_host(host: HostLogs) -> list[tuple[str, str, str]]:
    """Every source's lines of one host, read concurrently: [(kind, source, text)] in order."""
    host.prepare()
    streams = {s: host.stream(s) for s in host.files}
    out: dict[str, list[str]] = {s: [] for s in streams}
    err: dict[str, list[str]] = {s: [] for s in streams}
    codes: dict[str, int] = {}
    try:
        while len(codes) < len(streams):
            select.select([st for s, st in streams.items() if s not in codes], [], [], 1.0)
            for source, st in streams.items():
                if source in codes:
                    continue
                o, e = st.pump()
                out[source] += o
                err[source] += e
                if st.done:
                    codes[source] = st.exit_code()
    finally:
        for st in streams.values():
            st.close()
    rows: list[tuple[str, str, str]] = []
    for source in host.files:
        code = codes[source]
        if code != 0 and (failure := sudo_refusal(host.remote, err[source], "read the logs")):
            raise failure
        rows += [("note", source, host.note_for(source, e)) for e in err[source] if e.strip()]
        if code != 0:
            rows.append(("note", source, f"{source}: reading {host.files[source]} failed "
                                         f"(exit {code})"))
        elif not out[source] and not any(e.startswith(cmds.NOTE) for e in err[source]):
            what = "no matching lines" if host.query.grep or host.since is not None else "empty"
            rows.append(("note", source, f"{source}: {what}"))
        rows += [("line", source, line) for line in out[source]]
    return rows


def show(hosts: Sequence[HostLogs], printer: Printer) -> int:
    """Print the last lines of every host's logs (hosts read concurrently, printed in order).
    Returns how many hosts failed (each said why)."""
    def work(host: HostLogs) -> list[tuple[str, str, str]]:
        try:
            return _read_host(host)
        finally:
            host.remote.close()

    failed = 0
    for outcome in concurrent(hosts, work):
        label = outcome.target.label
        if outcome.error is not None:
            if len(hosts) == 1:
                raise outcome.error
            printer.note(label, f"error: {outcome.error.describe(with_host=False)}")
            failed += 1
            continue
        for kind, source, text in outcome.value or ():
            if kind == "line":
                printer.line(label, source, text)
            else:
                printer.note(label, text)
    return failed


# --- follow ---


@dataclass
class Follow:
    """Streams new lines from every host until Ctrl-C; a host that drops is reported and the
    others go on."""

    hosts: Sequence[HostLogs]
    printer: Printer
    stop: threading.Event = field(default_factory=threading.Event)
    lost: set[str] = field(default_factory=set)
    streams: list[Stream] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    interrupted: bool = False
    error: WsgishipError | None = None  # with one host: raised as the task's error

    def run(self) -> int:
        """Ctrl-C ends it: 0 (a host that dropped was reported then). Ending on its own, with
        nothing left to follow: how many hosts failed or dropped."""
        threads = start(self.hosts, lambda _, host: self._host(host))
        if threading.current_thread() is threading.main_thread():
            # Ctrl-C ends a follow even where the shell started us with SIGINT ignored
            signal.signal(signal.SIGINT, signal.default_int_handler)
        try:
            while any(t.is_alive() for t in threads) and not self.printer.broken.is_set():
                time.sleep(0.1)
        except KeyboardInterrupt:
            self.interrupted = True
        finally:
            # a second Ctrl-C must not interrupt the cleanup with a traceback
            previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
            self.stop.set()
            self._close_all()
            for t in threads:
                t.join(2)
            signal.signal(signal.SIGINT, previous)
        if self.interrupted:
            return 0
        if self.error is not None:
            raise self.error
        return len(self.lost)

    def _close_all(self) -> None:
        with self.lock:
            streams = list(self.streams)
        for st in streams:
            st.close()
        for host in self.hosts:
            host.remote.close()

    def _host(self, host: HostLogs) -> None:
        try:
            host.prepare()
            mine = []
            for source in host.files:
                if self.stop.is_set():
                    return
                st = host.stream(source)
                mine.append((source, st))
                with self.lock:
                    self.streams.append(st)
            self._pump(host, mine)
        except WsgishipError as exc:
            if not self.stop.is_set():
                self._lost(host, exc)

    def _pump(self, host: HostLogs, streams: list[tuple[str, Stream]]) -> None:
        live = dict(streams)
        while live and not self.stop.is_set():
            select.select(list(live.values()), [], [], 0.5)
            for source, st in list(live.items()):
                out, err = st.pump()
                for line in out:
                    self.printer.line(host.label, source, line)
                if err and (failure := sudo_refusal(host.remote, err, "read the logs")):
                    raise failure
                for line in err:
                    if line.strip():
                        self.printer.note(host.label, host.note_for(source, line))
                if st.done:
                    del live[source]
                    if self.stop.is_set():
                        return
                    code = st.exit_code()  # raises ConnectionLost when the host dropped
                    check_alive(host.remote)  # a server going down ends its commands first
                    self.printer.note(host.label, f"{source}: stopped (exit {code})")
        if not live and not self.stop.is_set():
            with self.lock:
                self.lost.add(host.label)  # nothing left to follow there: a failure

    def _lost(self, host: HostLogs, exc: WsgishipError) -> None:
        with self.lock:
            if host.label in self.lost:
                return
            self.lost.add(host.label)
        host.remote.close()
        if len(self.hosts) == 1:
            self.error = exc
            return
        text = exc.describe(with_host=False)
        if not text.startswith("connection lost"):
            text = f"error: {text}"
        self.printer.note(host.label, text)
