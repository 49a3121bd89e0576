"""Errors a user can act on: each carries a one-line (or short) message, never a traceback.

An error about one host carries that host in `host`; `str()` is the one place the host is put
in front of the message (`web1: ...`), and `message` is the text without it.
"""

from __future__ import annotations


class WsgishipError(Exception):
    """A failure explained to the user; the CLI prints the message and exits non-zero."""

    exit_code = 1

    def __init__(self, message: str, *, host: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.host = host

    def __str__(self) -> str:
        return self.describe()

    def describe(self, with_host: bool = True) -> str:
        """The whole text: `host: message` (or the message alone), then any detail lines."""
        head = f"{self.host}: {self.message}" if self.host and with_host else self.message
        return head + self._detail()

    def _detail(self) -> str:
        return ""

    @property
    def reason(self) -> str:
        """The first line of the message, without the host: for a FAILED mark or a log entry."""
        return self.message.splitlines()[0] if self.message else type(self).__name__


class ConfigError(WsgishipError):
    """hosts.yaml (or a file it names) is wrong."""

    exit_code = 2


class InitError(WsgishipError):
    """`wsgiship init` cannot set up the app: a bad directory or option."""

    exit_code = 2


# how many of a remote error's last output lines are shown
DETAIL_LINES = 30


class RemoteError(WsgishipError):
    """A remote step failed; `detail` holds the relevant remote output."""

    def __init__(self, message: str, detail: str = "", *, host: str | None = None) -> None:
        super().__init__(message, host=host)
        self.detail = detail

    def _detail(self) -> str:
        if not self.detail.strip():
            return ""
        lines = self.detail.rstrip().splitlines()[-DETAIL_LINES:]
        return "\n" + "\n".join("  | " + line for line in lines)


class ConnectionLost(RemoteError):
    """The SSH connection dropped in the middle of a step."""


class LockedError(WsgishipError):
    """Another deploy holds the lock."""

    exit_code = 3


class Interrupted(WsgishipError):
    """Ctrl-C, seen by a host's worker at its next step (a fleet run: ops/fleet)."""

    exit_code = 130


class FleetStop(WsgishipError):
    """A host that did nothing wrong is stopped or sent back because of the rest of its fleet
    (another host failed, or the run was interrupted); the message says which and why."""


def reason_of(exc: BaseException) -> str:
    """One line saying why an operation stopped, without the host."""
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted"
    if isinstance(exc, WsgishipError):
        return exc.reason
    text = str(exc)
    return text.splitlines()[0] if text else type(exc).__name__
