"""A remote script on its own SSH channel, its output read line by line as it comes (logs)."""

from __future__ import annotations

import re
import select
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import paramiko

from ..errors import RemoteError, WsgishipError
from ..shell import bash, sudo_bash

if TYPE_CHECKING:
    from . import Remote


_MAX_LINE = 1 << 20  # a "line" this long without a newline is given as it is


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
            command = sudo_bash(self.body, with_password=bool(password))
        transport = remote.conn.transport
        if transport is None or not transport.is_active():
            raise remote.lost()
        try:
            self.chan = transport.open_session()
            self.chan.exec_command(command)
            if password:
                self.chan.sendall((password + "\n").encode())
            if not self.keep_stdin:
                self.chan.shutdown_write()
        except (OSError, EOFError, paramiko.SSHException) as exc:
            raise remote.lost(str(exc)) from None

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
        raise self.remote.lost(str(cause or "") or "the connection closed")

    def close(self) -> None:
        try:
            self.chan.close()
        except Exception:  # noqa: BLE001 - closing a channel of a dead connection
            pass


def check_alive(remote: Remote) -> None:
    """Raise ConnectionLost unless the server still opens a channel on this connection."""
    transport = remote.conn.transport
    try:
        if transport is None:
            raise paramiko.SSHException("not connected")
        transport.open_session(timeout=5).close()
    except (OSError, EOFError, paramiko.SSHException) as exc:
        closed = transport is None or not transport.is_active()
        why = "the server closed the connection" if closed else (str(exc) or type(exc).__name__)
        raise remote.lost(why) from None


def sudo_refusal(remote: Remote, err: Sequence[str], doing: str) -> WsgishipError | None:
    """sudo's own refusal in a script's stderr, as the one-line error the rest of wsgiship gives."""
    text = "\n".join(err)
    if "a password is required" in text:
        return remote.error(f"sudo asked {remote.user} for a password; run with "
                            f"--prompt-for-sudo-password, or allow NOPASSWD for the deploy commands")
    if "incorrect password" in text:
        return remote.error(f"sudo did not accept the password for {remote.user}")
    if re.search(r"^sudo: .*(not allowed|not in the sudoers|command not found)", text, re.M):
        return remote.error(f"cannot {doing} as {remote.user}, and sudo refused: {err[0]}")
    return None




# What a fed script reads up to before its data: sudo's password, when one is sent, comes
# first; a sudo that did not ask for it (cached) leaves that line to be skipped here.
FEED_MARK = "--wsgiship-data--"
_SKIP = f'while IFS= read -r _l; do [ "$_l" = {FEED_MARK} ] && break; done\n'


def fed(remote: Remote, body: str, data: bytes, *, priv: bool, app_user: str | None,
        what: str, timeout: float) -> tuple[int, str, str]:
    """Remote.feed's work: (exit code, stdout, stderr)."""
    as_other = app_user is not None and app_user != remote.user
    whole = (priv or as_other) and remote.whole_script_sudo
    text = remote.prefixed(body, priv, app_user, remote.user == "root" or whole)
    stream = Stream(remote, _SKIP + text, priv=whole, keep_stdin=True)
    out: list[str] = []
    err: list[str] = []
    try:
        try:
            stream.chan.sendall(FEED_MARK.encode() + b"\n" + data)
            stream.chan.shutdown_write()
        except OSError:
            pass  # it ended without reading it all: its exit code says why
        deadline = time.monotonic() + timeout
        while not stream.done:
            if time.monotonic() > deadline:
                raise remote.error(f"{what or 'remote command'} timed out", kind=RemoteError)
            select.select([stream], [], [], 0.5)
            o, e = stream.pump()
            out += o
            err += e
        o, e = stream.pump()
        code = stream.exit_code()
    except (EOFError, paramiko.SSHException) as exc:
        raise remote.lost(f"during {what or 'a command'}: {exc}") from None
    finally:
        stream.close()
    return code, "".join(x + "\n" for x in out + o), "".join(x + "\n" for x in err + e)
