"""wsgiship.commands.health: the health probe, against a local HTTP server."""

from __future__ import annotations

import http.server
import shlex
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from fakes import HOSTILE, NAME, fake_env

from wsgiship import shell
from wsgiship.commands import health


def test_health_check_passes_each_value_as_one_argument() -> None:
    text = health.health_check(8080, "example.com", "/x?a=1&b=" + HOSTILE, 204, HOSTILE, 9)
    argv = shlex.split(text.removeprefix(shell.HEADER))
    assert argv[0:2] == ["python3", "-c"]
    assert argv[2] == health.HEALTH_PROBE
    assert argv[3:] == ["8080", "example.com", "/x?a=1&b=" + HOSTILE, "204", HOSTILE, "9"]


class _Handler(http.server.BaseHTTPRequestHandler):
    status = 200
    release: str | None = NAME
    seen: list[tuple[str, str | None, str | None]] = []

    def do_GET(self) -> None:  # noqa: N802
        type(self).seen.append((self.path, self.headers["Host"], self.headers["User-Agent"]))
        self.send_response(self.status)
        if self.release is not None:
            self.send_header("X-Wsgiship-Release", self.release)
        self.end_headers()
        self.wfile.write(b"body line 1\nbody line 2\n")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[tuple[int, type[_Handler]]]:
    handler = type("Handler", (_Handler,), {"seen": []})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield httpd.server_address[1], handler
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_health_check_passes_when_the_new_release_answers(server, fakebin: Path, sh) -> None:
    port, handler = server
    res = sh(health.health_check(port, "shop.example.com", "/healthz?x=1", 200, NAME, 5),
             env=fake_env(fakebin))
    assert res.returncode == 0, res.stdout + res.stderr
    assert res.stdout == "status=200\n"
    assert handler.seen[0] == ("/healthz?x=1", "shop.example.com", "wsgiship-health")


def test_health_check_accepts_an_app_without_the_header(server, fakebin: Path, sh) -> None:
    port, handler = server
    handler.release = None
    res = sh(health.health_check(port, "localhost", "/", 200, NAME, 5), env=fake_env(fakebin))
    assert res.returncode == 0 and res.stdout == "status=200\n"


def test_health_check_waits_for_the_new_release(server, fakebin: Path, sh) -> None:
    port, handler = server
    handler.release = "older-release"
    res = sh(health.health_check(port, "localhost", "/", 200, NAME, 0.2),
             env=fake_env(fakebin))
    assert res.returncode == 1
    facts = dict(line.split("=", 1) for line in res.stdout.splitlines() if "=" in line)
    assert facts["status"] == "200" and facts["release"] == "older-release"
    assert float(facts["waited"]) >= 0.2
    assert len(handler.seen) > 1  # it kept polling


def test_health_check_fails_on_the_wrong_status(server, fakebin: Path, sh) -> None:
    port, handler = server
    handler.status = 500
    res = sh(health.health_check(port, "localhost", "/", 200, NAME, 0.1),
             env=fake_env(fakebin))
    assert res.returncode == 1
    lines = res.stdout.splitlines()
    assert lines[:2] == ["status=500", f"release={NAME}"]
    assert lines[2].startswith("waited=")
    assert lines[3:] == ["body line 1", "body line 2"]


def test_health_check_reports_no_answer(fakebin: Path, sh) -> None:
    import socket

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    res = sh(health.health_check(port, "localhost", "/", 200, NAME, 0.1),
             env=fake_env(fakebin))
    assert res.returncode == 1
    lines = res.stdout.splitlines()
    assert lines[:2] == ["status=none", "release=none"]
    assert "ConnectionRefusedError" in res.stdout
