"""wsgiship.errors: the messages a user sees (the host in front, a remote step's last output lines
below) and the one-line reason an operation stopped."""

from __future__ import annotations

import pytest

from wsgiship.errors import (
    ConfigError,
    ConnectionLost,
    LockedError,
    RemoteError,
    WsgishipError,
    reason_of,
)


@pytest.mark.parametrize("exc, text", [
    (WsgishipError("boom"), "boom"),
    (WsgishipError("boom", host="web1"), "web1: boom"),
    (WsgishipError("boom", host=""), "boom"),
    (WsgishipError("two\nlines", host="web1"), "web1: two\nlines"),
    (ConfigError("hosts.yaml: app.name: missing"), "hosts.yaml: app.name: missing"),
    (LockedError("locked by alice", host="web2"), "web2: locked by alice"),
])
def test_str_puts_the_host_in_front(exc: WsgishipError, text: str) -> None:
    assert str(exc) == text
    assert exc.message == text.removeprefix(f"{exc.host}: " if exc.host else "")


DETAIL_40 = "".join(f"line {i}\n" for i in range(40))


@pytest.mark.parametrize("exc, text", [
    (RemoteError("step failed"), "step failed"),
    (RemoteError("step failed", "  \n\t\n", host="web1"), "web1: step failed"),  # blank detail
    (RemoteError("step failed", "out 1\nout 2\n\n", host="web1"),
     "web1: step failed\n  | out 1\n  | out 2"),
    (RemoteError("step failed", "\nfirst blank\n"), "step failed\n  | \n  | first blank"),
    # the last 30 lines only
    (RemoteError("pip failed", DETAIL_40, host="web1"),
     "web1: pip failed\n" + "\n".join(f"  | line {i}" for i in range(10, 40))),
    (ConnectionLost("connection lost", "EOF", host="web3"), "web3: connection lost\n  | EOF"),
])
def test_remote_error_shows_its_detail(exc: RemoteError, text: str) -> None:
    assert str(exc) == text


@pytest.mark.parametrize("cls, code", [
    (WsgishipError, 1), (RemoteError, 1), (ConnectionLost, 1), (ConfigError, 2), (LockedError, 3),
])
def test_exit_codes(cls: type[WsgishipError], code: int) -> None:
    assert cls("x").exit_code == code
    assert issubclass(cls, WsgishipError)


@pytest.mark.parametrize("exc, reason", [
    (KeyboardInterrupt(), "interrupted"),
    (WsgishipError("health check failed: 500\nbody...", host="web1"), "health check failed: 500"),
    (RemoteError("import check failed", "Traceback ...", host="web1"), "import check failed"),
    (RemoteError("", host="web1"), "RemoteError"),
    (ValueError("bad value\nmore"), "bad value"),
    (ValueError(), "ValueError"),
    (OSError(28, "No space left on device"), "[Errno 28] No space left on device"),
])
def test_reason_of(exc: BaseException, reason: str) -> None:
    assert reason_of(exc) == reason
    assert "web1" not in reason_of(exc)
    if isinstance(exc, WsgishipError):
        assert exc.reason == reason
