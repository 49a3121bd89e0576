"""wsgiship.commands.health: the health probe, against a local HTTP server (through nginx), and
against a local uwsgi-protocol server on a unix socket (a slot's own uWSGI)."""

from __future__ import annotations

import http.server
import os
import shlex
import shutil
import signal
import socketserver
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fakes import HOSTILE, NAME, as_app, as_app_calls, as_deploy, fake_env

from wsgiship import shell
from wsgiship.commands import health
from wsgiship.shell import Raw, q


def test_health_check_passes_each_value_as_one_argument() -> None:
    text = health.health_check(8080, "example.com", "/x?a=1&b=" + HOSTILE, 204, HOSTILE, 9)
    argv = shlex.split(text.removeprefix(shell.HEADER))
    assert argv[0:2] == ["python3", "-c"]
    assert argv[2] == health.HEALTH_PROBE
    assert argv[3:] == ["8080", "example.com", "/x?a=1&b=" + HOSTILE, "204", HOSTILE, "9"]


class _Handler(http.server.BaseHTTPRequestHandler):
    status = 200
    release: str | None = NAME
    body = b"body line 1\nbody line 2\n"
    seen: list[tuple[str, str | None, str | None]] = []

    def do_GET(self) -> None:  # noqa: N802
        type(self).seen.append((self.path, self.headers["Host"], self.headers["User-Agent"]))
        self.send_response(self.status)
        if self.release is not None:
            self.send_header("X-Wsgiship-Release", self.release)
        self.end_headers()
        self.wfile.write(self.body)

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
    assert facts["reason"].startswith(
        f"health check failed: GET http://localhost:{port}/ answered 200 from release "
        f"older-release (still the old workers), expected 200 from release {NAME} (waited ")
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
    waited = lines[2].removeprefix("waited=")
    assert lines[3] == (f"reason=health check failed: GET http://localhost:{port}/ answered 500,"
                        f" expected 200 from release {NAME} (waited {waited}s)")
    assert lines[4:] == ["body line 1", "body line 2"]


NO_PAGE = (": the app has no page at /; set app.health.path in hosts.yaml to a path that "
           "answers (e.g. /admin/login/ for Django)")
BAD_HOST = (": the app refused the Host header localhost (Django's ALLOWED_HOSTS?): allow it "
            "there, or set app.server_name in hosts.yaml to a name the app allows (the check "
            "sends the first one, localhost for _)")
NGINX_404 = b"<html>\r\n<head><title>404 Not Found</title></head>\r\n<center>nginx</center>\r\n"


@pytest.mark.parametrize("status, release, body, hint", [
    (404, NAME, b"Not Found", NO_PAGE),
    (404, None, b"<h1>Not Found</h1>", NO_PAGE),  # an app without the header
    (404, None, NGINX_404, ""),  # nginx's own page: not the app's
    (404, "older-release", b"Not Found", ""),  # the old workers
    (400, NAME, b"<h1>Bad Request (400)</h1>", BAD_HOST),  # Django, DEBUG off
    (400, NAME, b"DisallowedHost at /\nInvalid HTTP_HOST header: 'localhost'", BAD_HOST),
    (400, NAME, b"missing parameter", ""),
])
def test_health_check_says_what_a_404_or_a_refused_host_means(
        server, fakebin: Path, sh, status: int, release: str | None, body: bytes,
        hint: str) -> None:
    port, handler = server
    handler.status, handler.release, handler.body = status, release, body
    res = sh(health.health_check(port, "localhost", "/", 200, NAME, 0.1), env=fake_env(fakebin))
    reason = next(line for line in res.stdout.splitlines() if line.startswith("reason="))
    assert res.returncode == 1
    assert reason.startswith(f"reason=health check failed: GET http://localhost:{port}/ answered")
    assert reason.endswith(f"(waited {res.stdout.split('waited=')[1].split()[0]}s){hint}")


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
    assert lines[3].startswith(f"reason=health check failed: GET http://localhost:{port}/ "
                               f"no answer, expected 200 from release {NAME} (waited ")
    assert "ConnectionRefusedError" in res.stdout


# --- probes that time out: two in a row end the check ---
#
# A probe waits 5 s for an answer: these scenarios take 10 to 15 s each, so they run side by
# side, once for the module (the `hung_runs` fixture), and each test reads its own run.


class _Scripted(http.server.BaseHTTPRequestHandler):
    """Answers request k as plan[k] says (the last entry repeats): `hang` never answers (the
    connection stays open), `old` answers 200 from another release (an answer, not the new
    one's), `drop` closes the connection without a word."""

    plan: tuple[str, ...] = ("hang",)
    seen: list[str] = []
    release_all = threading.Event()

    def do_GET(self) -> None:  # noqa: N802
        k = len(self.seen)
        self.seen.append(self.path)
        action = self.plan[min(k, len(self.plan) - 1)]
        if action == "hang":
            self.release_all.wait(60)
            self.close_connection = True
        elif action == "old":
            self.send_response(200)
            self.send_header("X-Wsgiship-Release", "older-release")
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")
        else:
            self.close_connection = True

    def log_message(self, *args: object) -> None:
        pass


HUNG = {
    # scenario: (what the server does with each request, requests the probe makes)
    "never-answers": (("hang",), 2),
    "answers-once-between": (("hang", "old", "hang"), 4),    # the answer resets the count
    "answers-first": (("old", "hang"), 3),
    "drops-between": (("hang", "drop", "hang"), 4),          # another failure resets it too
}
DEADLINE = 60  # the probe's own timeout: far beyond what two 5 s timeouts take


@pytest.fixture(scope="module")
def hung_runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[
        dict[str, tuple[subprocess.CompletedProcess[str], list[str]]]]:
    """Each HUNG scenario's probe run (side by side) and the requests its server saw."""
    bin_ = tmp_path_factory.mktemp("bin")
    (bin_ / "python3").symlink_to(sys.executable)
    env = {**os.environ, "PATH": f"{bin_}:{os.environ['PATH']}"}
    release_all = threading.Event()
    servers, probes = {}, {}
    try:
        for name, (plan, _) in HUNG.items():
            handler = type("Handler", (_Scripted,), {"plan": plan, "seen": [],
                                                     "release_all": release_all})
            httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
            threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True).start()
            servers[name] = (httpd, handler)
            body = health.health_check(httpd.server_address[1], "localhost", "/", 200, NAME,
                                       DEADLINE)
            probes[name] = subprocess.Popen(shell.bash(body), shell=True, env=env, text=True,
                                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                            start_new_session=True)
        runs = {}
        for name, proc in probes.items():
            out, err = proc.communicate(timeout=DEADLINE + 30)
            runs[name] = (subprocess.CompletedProcess(proc.args, proc.returncode, out, err),
                          list(servers[name][1].seen))
        yield runs
    finally:
        release_all.set()
        for proc in probes.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)  # the shell, its bash and the probe
                proc.wait()
        for httpd, _ in servers.values():
            httpd.shutdown()
            httpd.server_close()


@pytest.mark.parametrize("scenario", HUNG)
def test_two_timeouts_in_a_row_end_the_health_check(hung_runs, scenario: str) -> None:
    res, requests = hung_runs[scenario]
    assert res.returncode == 1, res.stdout + res.stderr
    # it gave up after exactly this many requests: the second timeout in a row, not the deadline
    assert len(requests) == HUNG[scenario][1]
    lines = res.stdout.splitlines()
    assert lines[:2] == ["status=none", "release=none"]
    assert lines[2].startswith("waited=") and float(lines[2][7:]) < DEADLINE
    assert lines[3].startswith("reason=health check failed: GET http://localhost:")
    assert f"/ no answer, expected 200 from release {NAME} (waited {lines[2][7:]}s)" in lines[3]
    assert lines[4:] == ["no answer within 5 s (2 in a row): timed out"]


# --- slot_check: the new slot's uWSGI asked on its own socket, in the uwsgi protocol ---


def test_slot_check_passes_each_value_as_one_argument() -> None:
    text = health.slot_check("/srv/my app/shared/run/uwsgi-a.sock", 8080, "example.com",
                             "/x?a=1&b=" + HOSTILE, 204, HOSTILE, 9)
    argv = shlex.split(text.removeprefix(shell.HEADER))
    assert argv == ["$AS_APP", "python3", "-c", health.HEALTH_PROBE,  # as the app: its socket
                    "unix:/srv/my app/shared/run/uwsgi-a.sock", "example.com",
                    "/x?a=1&b=" + HOSTILE, "204", HOSTILE, "9", "8080"]


class _Uwsgi(socketserver.StreamRequestHandler):
    """A uWSGI worker, as far as the probe can tell: it reads the uwsgi packet (a 4-byte header,
    then the CGI vars as length-prefixed strings) and answers plain HTTP."""

    status = 200
    release: str | None = NAME
    seen: list[tuple[int, int, dict[str, str]]] = []

    def handle(self) -> None:
        head = self.rfile.read(4)
        data, env = self.rfile.read(int.from_bytes(head[1:3], "little")), {}
        while data:
            k = int.from_bytes(data[:2], "little")
            v = int.from_bytes(data[2 + k:4 + k], "little")
            env[data[2:2 + k].decode()] = data[4 + k:4 + k + v].decode()
            data = data[4 + k + v:]
        type(self).seen.append((head[0], head[3], env))
        header = f"X-Wsgiship-Release: {self.release}\r\n" if self.release else ""
        self.wfile.write(f"HTTP/1.1 {self.status} Whatever\r\n{header}Content-Length: 3\r\n\r\n"
                         "ok\n".encode())


@pytest.fixture
def uwsgi_dir() -> Iterator[Path]:
    """A run dir at a short path (a unix socket's path must fit in 108 bytes), with a space."""
    top = Path(tempfile.mkdtemp(prefix="ws-", dir="/tmp"))
    (top / "my run").mkdir()
    yield top / "my run"
    shutil.rmtree(top, ignore_errors=True)


@pytest.fixture
def uwsgi_server() -> Iterator[Callable[[Path], type[_Uwsgi]]]:
    """Serve the uwsgi protocol at a socket path; its handler class (what it saw, and says)."""
    servers: list[socketserver.ThreadingUnixStreamServer] = []

    def serve(path: Path) -> type[_Uwsgi]:
        handler = type("Handler", (_Uwsgi,), {"seen": []})
        server = socketserver.ThreadingUnixStreamServer(str(path), handler)
        threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
        servers.append(server)
        return handler

    yield serve
    for server in servers:
        server.shutdown()
        server.server_close()


def test_slot_check_asks_the_slot_as_nginx_would(uwsgi_dir: Path, uwsgi_server, fakebin: Path,
                                                 sh) -> None:
    handler = uwsgi_server(uwsgi_dir / "uwsgi-a.sock")
    text = health.slot_check(str(uwsgi_dir / "uwsgi-a.sock"), 8080, "shop.example.com",
                             "/healthz?x=1", 200, NAME, 5)
    res = sh(as_app(text, "sudo -n -u web --"), env=as_deploy(fakebin))
    assert (res.returncode, res.stdout) == (0, "status=200\n"), res.stdout + res.stderr
    (modifier1, modifier2, env), = handler.seen
    assert (modifier1, modifier2) == (0, 0)  # a WSGI request
    # the site's Host and port, as nginx passes them (uwsgi_params)
    assert env == {"REQUEST_METHOD": "GET", "REQUEST_URI": "/healthz?x=1",
                   "PATH_INFO": "/healthz", "QUERY_STRING": "x=1", "SERVER_PROTOCOL": "HTTP/1.1",
                   "SERVER_NAME": "shop.example.com", "SERVER_PORT": "8080",
                   "REMOTE_ADDR": "127.0.0.1", "HTTP_HOST": "shop.example.com",
                   "HTTP_USER_AGENT": "wsgiship-health", "REQUEST_SCHEME": "http",
                   "wsgi.url_scheme": "http"}
    assert [c.split()[:2] for c in as_app_calls(fakebin)] == [["python3", "-c"]]


def test_slot_check_finds_the_slot_the_start_step_named(uwsgi_dir: Path, uwsgi_server,
                                                        fakebin: Path, sh) -> None:
    # the socket appears a moment later (supervisor's start returns at the spawn)
    sock = Raw(q(str(uwsgi_dir)) + '"/uwsgi-$WSGISHIP_SLOT.sock"')
    text = as_app(health.slot_check(sock, 80, "localhost", "/", 200, NAME, 10), "")
    proc = subprocess.Popen(shell.bash(text), shell=True, text=True, stdout=subprocess.PIPE,
                            env=fake_env(fakebin, WSGISHIP_SLOT="b"))
    time.sleep(0.5)
    assert proc.poll() is None  # still asking
    handler = uwsgi_server(uwsgi_dir / "uwsgi-b.sock")
    assert proc.communicate(timeout=15)[0] == "status=200\n"
    assert proc.returncode == 0 and len(handler.seen) == 1


@pytest.mark.parametrize("status, release, why", [
    (500, NAME, "answered 500"),
    (200, "older-release", "answered 200 from release older-release (still the old workers)"),
])
def test_slot_check_fails_on_a_wrong_answer(uwsgi_dir: Path, uwsgi_server, fakebin: Path, sh,
                                            status: int, release: str, why: str) -> None:
    handler = uwsgi_server(uwsgi_dir / "uwsgi-a.sock")
    handler.status, handler.release = status, release
    text = health.slot_check(str(uwsgi_dir / "uwsgi-a.sock"), 80, "localhost", "/", 200, NAME, 1)
    res = sh(as_app(text, ""), env=fake_env(fakebin))
    assert res.returncode == 1
    lines = res.stdout.splitlines()
    assert lines[:2] == [f"status={status}", f"release={release}"]
    assert lines[3].startswith("reason=health check failed: GET ")
    assert f" {why}, expected 200 from release {NAME} (waited " in lines[3]
    assert lines[4:] == ["ok"]
    assert len(handler.seen) > 1  # it kept asking until its time was up


def test_slot_check_says_the_app_has_no_page_at_the_path(uwsgi_dir: Path, uwsgi_server,
                                                         fakebin: Path, sh) -> None:
    uwsgi_server(uwsgi_dir / "uwsgi-a.sock").status = 404
    text = health.slot_check(str(uwsgi_dir / "uwsgi-a.sock"), 80, "localhost", "/", 200, NAME, 1)
    res = sh(as_app(text, ""), env=fake_env(fakebin))
    reason = res.stdout.splitlines()[3]
    assert "own socket (before the switch) answered 404, expected 200" in reason
    assert reason.endswith(NO_PAGE)
