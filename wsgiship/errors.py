"""Errors a user can act on: each carries a one-line (or short) message, never a traceback."""


class WsgishipError(Exception):
    """A failure explained to the user; the CLI prints the message and exits non-zero."""

    exit_code = 1


class ConfigError(WsgishipError):
    """hosts.yaml (or a file it names) is wrong."""

    exit_code = 2


class RemoteError(WsgishipError):
    """A remote step failed; `detail` holds the relevant remote output."""

    def __init__(self, message: str, detail: str = "") -> None:
        super().__init__(message)
        self.detail = detail

    def __str__(self) -> str:
        base = super().__str__()
        if not self.detail.strip():
            return base
        lines = self.detail.rstrip().splitlines()[-30:]
        return base + "\n" + "\n".join("  | " + line for line in lines)


class ConnectionLost(RemoteError):
    """The SSH connection dropped in the middle of a step."""


class LockedError(WsgishipError):
    """Another deploy holds the lock."""

    exit_code = 3
