"""Logs from one or many hosts, and `fab exec`: the streaming side.

Remote output is read as bytes from SSH channels, split into lines, decoded as UTF-8 (bad bytes
replaced) and written whole, one line at a time under a lock, as ``[host] source | line``.
"""

from __future__ import annotations

import codecs
import os
import re
import select
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, BinaryIO

import invoke
import paramiko
from fabric.runners import Remote as FabricRemoteRunner

from .commands import logs as cmds
from .config import App
from .errors import RemoteError, WsgishipError
from .flow import app_user_for
from .remote import Remote
from .render import paths_for
from .shell import bash

# C0 controls but tab, DEL and C1 controls: a log line must not drive the terminal.
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f]")
_MAX_LINE = 1 << 20  # a "line" this long without a newline is written as it is


def _visible(text: str) -> str:
    text = text.removesuffix("\r")
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


class Printer:
    """Writes whole lines to stdout (log lines) and stderr (notes), UTF-8, from many threads."""

    def __init__(self, out: BinaryIO | None = None, err: BinaryIO | None = None) -> None:
        self.out = out or sys.stdout.buffer
        self.err = err or sys.stderr.buffer
        self.lock = threading.Lock()
        self.broken = threading.Event()  # stdout's reader went away (e.g. `| head`)

    def _write(self, stream: BinaryIO, text: str) -> None:
        data = (text + "\n").encode("utf-8", "replace")
        with self.lock:
            if self.broken.is_set():
                return
            try:
                stream.write(data)
                stream.flush()
            except BrokenPipeError:
                self.broken.set()

    def line(self, host: str, source: str, text: str) -> None:
        self._write(self.out, f"[{host}] {source} | {_visible(text)}")

    def plain(self, host: str, text: str) -> None:
        self._write(self.out, f"[{host}] {_visible(text)}")

    def note(self, host: str, text: str) -> None:
        self._write(self.err, f"[{host}] {_visible(text)}")


class _Lines:
    """Splits a byte stream into decoded lines, however the chunks cut it."""

    def __init__(self) -> None:
        self.buf = b""

    def feed(self, data: bytes) -> list[str]:
        self.buf += data
        *done, self.buf = self.buf.split(b"\n")
        if len(self.buf) > _MAX_LINE:
            done.append(self.buf)
            self.buf = b""
        return [line.decode("utf-8", "replace") for line in done]

    def end(self) -> list[str]:
        rest, self.buf = self.buf, b""
        return [rest.decode("utf-8", "replace")] if rest else []


class ConnectionLost(RemoteError):
    """The SSH connection went away while a command was streaming."""


@dataclass
class Stream:
    """One remote script on its own SSH channel, its output read as lines as they come."""

    remote: Remote
    body: str
    priv: bool = False
    keep_stdin: bool = False     # a follow: the script ends when the channel closes
    chan: paramiko.Channel = field(init=False)
    out: _Lines = field(default_factory=_Lines)
    err: _Lines = field(default_factory=_Lines)

    def __post_init__(self) -> None:
        remote = self.remote
        password = remote.config.get("sudo", {}).get("password") if self.priv else None
        command = bash(self.body)
        if self.priv and remote.user != "root":
            command = cmds.sudo(self.body, with_password=bool(password))
        transport = remote.conn.transport
        if transport is None or not transport.is_active():
            raise ConnectionLost(f"{remote.label}: connection lost")
        try:
            self.chan = transport.open_session()
            self.chan.exec_command(command)
            if password:
                self.chan.sendall((password + "\n").encode())
            if not self.keep_stdin:
                self.chan.shutdown_write()
        except (OSError, EOFError, paramiko.SSHException) as exc:
            raise ConnectionLost(f"{remote.label}: connection lost: {exc}") from None

    def fileno(self) -> int:
        return self.chan.fileno()

    def pump(self) -> tuple[list[str], list[str]]:
        """The complete lines that arrived: (stdout lines, stderr lines). Does not block."""
        out: list[str] = []
        err: list[str] = []
        while self.chan.recv_ready():
            out += self.out.feed(self.chan.recv(65536))
        while self.chan.recv_stderr_ready():
            err += self.err.feed(self.chan.recv_stderr(65536))
        if self.done:
            out += self.out.end()
            err += self.err.end()
        return out, err

    @property
    def done(self) -> bool:
        chan = self.chan
        return (chan.closed or chan.exit_status_ready()) and not (
            chan.recv_ready() or chan.recv_stderr_ready())

    def exit_code(self) -> int:
        """The script's exit code (-1: ended by a signal); ConnectionLost if the host dropped."""
        if self.chan.exit_status_ready():
            return self.chan.recv_exit_status()
        transport = self.remote.conn.transport
        # the server closing the channel properly (after a signal) sends EOF; a dropped
        # connection closes it without one
        if self.chan.eof_received and transport is not None and transport.is_active():
            return -1
        cause = transport.get_exception() if transport is not None else None
        why = str(cause or "") or "the connection closed"
        raise ConnectionLost(f"{self.remote.label}: connection lost: {why}")

    def close(self) -> None:
        try:
            self.chan.close()
        except Exception:  # noqa: BLE001 - closing a channel of a dead connection
            pass


def sudo_error(remote: Remote, err: Sequence[str]) -> WsgishipError | None:
    """sudo's own refusal, as the one-line error the rest of wsgiship gives."""
    text = "\n".join(err)
    if "a password is required" in text:
        return WsgishipError(
            f"{remote.label}: sudo asked {remote.user} for a password; run with "
            f"--prompt-for-sudo-password, or allow NOPASSWD for the deploy commands")
    if "incorrect password" in text:
        return WsgishipError(f"{remote.label}: sudo did not accept the password for {remote.user}")
    if re.search(r"^sudo: .*(not allowed|not in the sudoers|command not found)", text, re.M):
        return WsgishipError(f"{remote.label}: cannot read the logs as {remote.user}, and sudo "
                             f"refused: {err[0]}")
    return None


# --- one host ---


@dataclass
class HostLogs:
    """The logs of one host: which files, which need sudo, since when."""

    remote: Remote
    app: App
    query: cmds.LogQuery
    files: dict[str, str] = field(default_factory=dict)
    priv: dict[str, bool] = field(default_factory=dict)
    since: int | None = None

    @property
    def label(self) -> str:
        return self.remote.label

    def prepare(self) -> None:
        """Connect, check --grep and --since on the server, find which logs need sudo."""
        self.files = cmds.log_files(paths_for(self.app), self.query.sources)
        self.remote.open()
        res = self.remote.run(cmds.probe(self.files, self.query.grep, self.query.since),
                              check=False, what="log check")
        if res.code == cmds.BAD_SINCE:
            raise WsgishipError(f"{self.label}: --since {self.query.since!r}: not a time the "
                                f"server's `date -d` understands (e.g. '10 min ago', "
                                f"'2026-11-25 12:00')")
        if res.code == cmds.BAD_GREP:
            detail = res.stderr.strip().splitlines()
            raise WsgishipError(f"{self.label}: --grep {self.query.grep!r}: not an extended "
                                f"regular expression ({detail[-1] if detail else 'grep said no'})")
        if not res.ok:
            raise RemoteError(f"{self.label}: log check failed (exit {res.code})", res.output)
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
        if code != 0 and (failure := sudo_error(host.remote, err[source])):
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
    results: dict[str, list[tuple[str, str, str]] | BaseException] = {}

    def work(host: HostLogs) -> None:
        try:
            results[host.label] = _read_host(host)
        except WsgishipError as exc:
            results[host.label] = exc
        finally:
            host.remote.close()

    threads = [threading.Thread(target=work, args=(h,), daemon=True) for h in hosts]
    for t in threads:
        t.start()
    failed = 0
    for host, t in zip(hosts, threads, strict=True):
        _join(t)
        result = results.get(host.label)
        if isinstance(result, BaseException) or result is None:
            if len(hosts) == 1:
                raise result or WsgishipError(f"{host.label}: reading the logs failed")
            printer.note(host.label, f"error: {str(result).removeprefix(host.label + ': ')}")
            failed += 1
            continue
        for kind, source, text in result:
            if kind == "line":
                printer.line(host.label, source, text)
            else:
                printer.note(host.label, text)
    return failed


def _join(thread: threading.Thread) -> None:
    while thread.is_alive():
        thread.join(0.2)


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
        threads = [threading.Thread(target=self._host, args=(h,), daemon=True)
                   for h in self.hosts]
        if threading.current_thread() is threading.main_thread():
            # Ctrl-C ends a follow even where the shell started us with SIGINT ignored
            signal.signal(signal.SIGINT, signal.default_int_handler)
        try:
            for t in threads:
                t.start()
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
                if err and (failure := sudo_error(host.remote, err)):
                    raise failure
                for line in err:
                    if line.strip():
                        self.printer.note(host.label, host.note_for(source, line))
                if st.done:
                    del live[source]
                    if self.stop.is_set():
                        return
                    code = st.exit_code()  # raises ConnectionLost when the host dropped
                    _check_alive(host.remote)  # a server going down ends its commands first
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
        text = str(exc).removeprefix(f"{host.label}: ")
        if not text.startswith("connection lost"):
            text = f"error: {text}"
        self.printer.note(host.label, text)


def _check_alive(remote: Remote) -> None:
    """Raise ConnectionLost unless the server still opens a channel on this connection."""
    transport = remote.conn.transport
    try:
        if transport is None:
            raise paramiko.SSHException("not connected")
        transport.open_session(timeout=5).close()
    except (OSError, EOFError, paramiko.SSHException) as exc:
        closed = transport is None or not transport.is_active()
        why = "the server closed the connection" if closed else (str(exc) or type(exc).__name__)
        raise ConnectionLost(f"{remote.label}: connection lost: {why}") from None


def quiet_broken_stdout() -> None:
    """After stdout's reader went away, point stdout at /dev/null so the exit stays quiet."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except OSError:
        pass


def utf8_stdio() -> None:
    """Write UTF-8 to the terminal whatever the local locale says."""
    for stream in (sys.stdout, sys.stderr, sys.stdin):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            try:
                reconfigure(encoding="utf-8", errors="replace")
            except (ValueError, OSError):
                pass


# --- fab exec ---


class Utf8Runner(FabricRemoteRunner):
    """Fabric's remote runner, decoding output incrementally (a character cut in two by a read
    is not replaced), and passing piped stdin on as bytes (Fabric reads it a character at a
    time through the locale's codec: binary data breaks, and a decoding error hangs the run)."""

    def read_our_stdin(self, input_: Any) -> bytes | str | None:
        try:
            fd = input_.fileno()
        except (AttributeError, ValueError, OSError):
            return super().read_our_stdin(input_)
        if self.using_pty or os.isatty(fd):
            return super().read_our_stdin(input_)
        ready, _, _ = select.select([fd], [], [], 0.1)
        return os.read(fd, 65536) if ready else None  # b"": end of input

    def write_proc_stdin(self, data: bytes | str) -> None:
        if isinstance(data, bytes):
            self._write_proc_stdin(data)
        else:
            super().write_proc_stdin(data)

    def read_proc_output(self, reader: Callable[[int], bytes]) -> Iterable[str]:
        decoder = codecs.getincrementaldecoder(self.encoding or "utf-8")("replace")
        while True:
            data = reader(self.read_chunk_size)
            if not data:
                break
            text = decoder.decode(data)
            if text:
                yield text
        text = decoder.decode(b"", final=True)
        if text:
            yield text


class PrefixedOut:
    """A text stream writing whole lines as `[host] line` (for exec on several hosts)."""

    def __init__(self, host: str, printer: Printer) -> None:
        self.host, self.printer, self.buf = host, printer, ""

    def write(self, text: str) -> int:
        self.buf += text
        *lines, self.buf = self.buf.split("\n")
        for line in lines:
            self.printer.plain(self.host, line)
        return len(text)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        if self.buf:
            self.printer.plain(self.host, self.buf)
            self.buf = ""


def run_exec(remote: Remote, app: App, argv: Sequence[str], interactive: bool,
             out: PrefixedOut | None = None) -> int:
    """Run argv in the current release as the app's user; stream its output; its exit code."""
    p = paths_for(app)
    remote.open()
    try:
        res = remote.run(cmds.exec_probe(p), check=False, what="find the current release")
        if res.code == cmds.NOT_DEPLOYED:
            raise WsgishipError(f"{remote.label}: nothing deployed in {p.deploy_to} yet "
                                f"(no current release with a venv): fab deploy -H {remote.label}")
        if not res.ok:
            raise RemoteError(f"{remote.label}: find the current release failed "
                              f"(exit {res.code})", res.output)
        body = cmds.exec_command(p, argv)
        login, user = remote.user, app_user_for(app, remote.user)
        conn = remote.conn
        conn.config.runners.remote = Utf8Runner
        opts: dict = dict(warn=True, hide=False, pty=interactive,
                          in_stream=sys.stdin if sys.stdin is not None else False)
        if out is not None:
            opts.update(out_stream=out, err_stream=out)
        try:
            if user == login:
                result = conn.run(bash(body), **opts)
            elif login == "root":
                result = conn.run(cmds.as_user(body, user, login), **opts)
            else:
                result = conn.sudo(bash(body), user=user, **opts)
        except invoke.exceptions.AuthFailure:
            raise WsgishipError(
                f"{remote.label}: sudo asked {login} for a password (to run as {user}); run with "
                f"--prompt-for-sudo-password") from None
        except (OSError, EOFError, paramiko.SSHException) as exc:
            raise RemoteError(f"{remote.label}: connection lost: {exc}") from None
        finally:
            if out is not None:
                out.close()
        return int(result.exited if result.exited is not None else 255)
    finally:
        remote.close()
