"""`fab logs` and `fab exec` end to end against the real test host (and a second one to follow
two hosts at once and watch one of them drop).

One app is deployed for the whole module (a venv build is the slow part). It runs as www-data,
so the deploy user reads its uWSGI log through sudo and `fab exec` switches user with sudo.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))

import testhost as th  # noqa: E402

FAB = str(Path(sys.executable).parent / "fab")
NAME = "logsapp"
BOOM = '''

@app.route("/boom")
def boom() -> str:
    raise RuntimeError("kaboom ünïcode")
'''


def host_entry(h: th.TestHost, http_port: int) -> dict:
    return {"host": h.host, "port": h.ssh_port, "user": "deploy", "identity": str(h.key_path),
            "known_hosts": str(h.known_hosts), "http_port": http_port}


@dataclass
class Site:
    """The module's app, deployed to the test host as alias `t`."""

    dir: Path
    host: th.TestHost
    http_port: int
    extra_hosts: dict

    @property
    def hosts_file(self) -> Path:
        return self.dir / "hosts.yaml"

    def write(self, **extra_hosts: dict) -> None:
        app = {"name": NAME, "source": str(self.dir / "app"), "wsgi": "hello:app",
               "server_name": "localhost", "processes": 1, "threads": 2,
               "static": {"/static/": "static"}, "env": {"GREETING": "hi"},
               "app_user": "www-data", "health": {"timeout": 30}}
        hosts = {"t": host_entry(self.host, self.http_port), **extra_hosts}
        self.hosts_file.write_text(yaml.safe_dump({"app": app, "hosts": hosts}, sort_keys=False))

    def env(self, **extra: str) -> dict[str, str]:
        # a stdout that cannot encode ü: the output must be UTF-8 all the same
        return {**os.environ, "WSGISHIP_HOSTS": str(self.hosts_file),
                "PYTHONIOENCODING": "ascii", **extra}

    def fab(self, *args: str, input: str = "", **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([FAB, *args], cwd=ROOT, env=self.env(**env), input=input,
                              capture_output=True, encoding="utf-8", timeout=300)

    def get(self, path: str) -> int:
        conn = http.client.HTTPConnection("127.0.0.1", self.http_port, timeout=10)
        conn.request("GET", path, headers={"Host": "localhost"})
        status = conn.getresponse().status
        conn.close()
        return status

    def current(self) -> str:
        return self.host.run(f"readlink -f /srv/{NAME}/current").stdout.strip()


def ok(res: subprocess.CompletedProcess[str]) -> list[str]:
    assert res.returncode == 0, f"exit {res.returncode}\n{res.stdout}\n{res.stderr}"
    assert "Traceback" not in res.stderr
    return res.stdout.splitlines()


@pytest.fixture(scope="module")
def site(host: th.TestHost, tmp_path_factory: pytest.TempPathFactory) -> Site:
    base = tmp_path_factory.mktemp("logs")
    shutil.copytree(ROOT / "examples" / "hello", base / "app")
    with open(base / "app" / "hello.py", "a", encoding="utf-8") as f:
        f.write(BOOM)
    (base / "app" / "static").mkdir()
    (base / "app" / "static" / "site.css").write_text("body {}\n")
    s = Site(base, host, th.find_free_port(), {})
    s.write()
    ok(s.fab("deploy", "-H", "t"))
    return s


@pytest.fixture
def second_host(tmp_path: Path) -> Iterator[th.TestHost]:
    h = th.boot("logs2", tmp_path / "logs2")
    try:
        yield h
    finally:
        h.stop()


def test_logs_show_the_apps_traceback_labelled_as_the_app_log(site: Site) -> None:
    assert site.get("/boom") == 500
    # reading needs no lock: it works while a deploy holds one
    site.host.run(f"mkdir /srv/{NAME}/.lock", user="deploy")
    try:
        lines = ok(site.fab("logs", "-H", "t"))
    finally:
        site.host.run(f"rmdir /srv/{NAME}/.lock", user="deploy")
    assert "[t] app | Traceback (most recent call last):" in lines
    assert "[t] app | RuntimeError: kaboom ünïcode" in lines
    assert all(line.startswith(("[t] app | ", "[t] nginx | ")) for line in lines), lines


def test_a_missing_static_file_shows_in_the_nginx_error_log(site: Site) -> None:
    assert site.get("/static/nope.css") == 404
    lines = ok(site.fab("logs", "-H", "t", "--source", "nginx"))
    assert lines and all(line.startswith("[t] nginx | ") for line in lines), lines
    assert any('static/nope.css" failed (2: No such file or directory)' in line
               for line in lines), lines


def test_grep_lines_and_since_filter_on_the_server(site: Site) -> None:
    for i in range(1, 6):
        assert site.get(f"/mark-{i}") == 404
    lines = ok(site.fab("logs", "-H", "t", "--source", "app", "--grep", "GET /mark-[0-9]",
                        "--lines", "2"))
    assert len(lines) == 2 and "GET /mark-4 " in lines[0] and "GET /mark-5 " in lines[1], lines

    lines = ok(site.fab("logs", "-H", "t", "--source", "access", "--lines", "3"))
    assert len(lines) == 3 and all(line.startswith("[t] access | ") for line in lines)
    assert '"GET /mark-5 HTTP/1.1" 404' in lines[-1]

    lines = ok(site.fab("logs", "-H", "t", "--source", "access", "--since", "1 hour ago",
                        "--grep", "mark-"))
    assert len(lines) == 5, lines
    res = site.fab("logs", "-H", "t", "--since", "now + 1 hour")
    assert ok(res) == []
    assert "[t] app: no matching lines" in res.stderr

    res = site.fab("logs", "-H", "t", "--since", "half past never")
    assert res.returncode != 0 and "Traceback" not in res.stderr
    assert res.stderr.strip().splitlines() == [
        "error: t: --since 'half past never': not a time the server's `date -d` understands "
        "(e.g. '10 min ago', '2026-11-25 12:00')"]


def test_logs_through_sudo_with_a_password(site: Site) -> None:
    """deploypw needs its password for sudo, and sudo to read the www-data app's log."""
    site.write(tp={**host_entry(site.host, site.http_port), "user": "deploypw"})
    res = site.fab("logs", "-H", "tp", "--source", "app", "--lines", "2")
    assert res.returncode != 0 and "Traceback" not in res.stderr
    assert res.stderr.strip() == (
        "error: tp: sudo asked deploypw for a password; run with --prompt-for-sudo-password, "
        "or allow NOPASSWD for the deploy commands")

    lines = ok(site.fab("logs", "-H", "tp", "--source", "app", "--lines", "2",
                        FABRIC_SUDO_PASSWORD=th.DEPLOYPW_PASSWORD))
    assert len(lines) == 2 and all(line.startswith("[tp] app | ") for line in lines), lines

    with follow(site, "-H", "tp", "--lines", "0", "--source", "app",
                FABRIC_SUDO_PASSWORD="testpw") as proc:
        out = Lines(proc.stdout)
        time.sleep(1.5)
        assert site.get("/with-password") == 404
        out.wait_for(lambda line: line.startswith("[tp] app | ") and "GET /with-password " in line,
                     5)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=15) == 0


@contextlib.contextmanager
def follow(site: Site, *args: str, **env: str) -> Iterator[subprocess.Popen[str]]:
    """A running `fab logs --follow ARGS`, killed on the way out if the test left it running."""
    proc = subprocess.Popen([FAB, "logs", "--follow", *args], cwd=ROOT, env=site.env(**env),
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, encoding="utf-8")
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


class Lines:
    """A running fab's output lines, as they arrive."""

    def __init__(self, stream) -> None:  # noqa: ANN001 - a text pipe
        self.q: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._read, args=(stream,), daemon=True).start()

    def _read(self, stream) -> None:  # noqa: ANN001
        for line in stream:
            self.q.put(line.rstrip("\n"))

    def wait_for(self, match: Callable[[str], bool], timeout: float) -> float:
        """Seconds until a line matched; fails after timeout."""
        t0 = time.monotonic()
        if any(match(line) for line in self.seen):
            return 0.0
        while True:
            left = timeout - (time.monotonic() - t0)
            try:
                line = self.q.get(timeout=max(left, 0.01))
            except queue.Empty:
                pytest.fail(f"no matching line within {timeout}s; got:\n" + "\n".join(self.seen))
            self.seen.append(line)
            if match(line):
                return time.monotonic() - t0


def test_follow_two_hosts_then_one_drops_then_ctrl_c(site: Site, second_host) -> None:
    second_log = f"/srv/{NAME}/shared/log/uwsgi.log"
    second_host.run(f"mkdir -p /srv/{NAME}/shared/log && echo 'first on the second host' > "
                    f"{second_log}")
    site.write(t2=host_entry(second_host, th.find_free_port()))
    with follow(site, "-H", "t,t2", "--lines", "1") as proc:
        out, err = Lines(proc.stdout), Lines(proc.stderr)
        out.wait_for(lambda line: line == "[t2] app | first on the second host", 20)
        out.wait_for(lambda line: line.startswith("[t] app | "), 20)
        err.wait_for(lambda line: line.startswith("[t2] nginx: no log yet; waiting"), 20)
        time.sleep(0.5)

        assert site.get("/follow-1") == 404
        took = out.wait_for(lambda line: line.startswith("[t] app | ") and "GET /follow-1 " in line,
                            5)
        assert took < 2
        second_host.run(f"echo 'second host: ü new' >> {second_log}")
        took = out.wait_for(lambda line: line == "[t2] app | second host: ü new", 5)
        assert took < 2

        second_host.stop()  # the second server dies: its stream is reported, the first goes on
        err.wait_for(lambda line: line.startswith("[t2] connection lost"), 15)
        assert site.get("/follow-2") == 404
        took = out.wait_for(lambda line: line.startswith("[t] app | ") and "GET /follow-2 " in line,
                            5)
        assert took < 2
        assert proc.poll() is None

        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=15) == 0
    assert "Traceback" not in "\n".join(err.seen + out.seen)
    # no tail left running on the server (tail --pid notices within a second)
    for _ in range(50):
        left = site.host.run("pgrep -a -x tail || true").stdout.strip()
        if not left:
            break
        time.sleep(0.1)
    assert left == ""


def test_exec_runs_in_the_release_as_the_app_user_with_its_env_and_exit_code(site: Site) -> None:
    res = site.fab("exec", "-H", "t", "--", "sh", "-c",
                   'echo "$GREETING"; id -un; pwd; echo "$VIRTUAL_ENV"; exit 3')
    assert res.returncode == 3, res.stderr
    greeting, user, cwd, venv = res.stdout.splitlines()
    assert (greeting, user, cwd) == ("hi", "www-data", site.current())
    assert venv.startswith(f"/srv/{NAME}/venvs/")

    code = "import flask, sys; print(sys.prefix); print(sys.argv[1:])"
    res = site.fab("exec", "-H", "t", "--", "python", "-c", code, "a b", "it's", "$HOME")
    lines = ok(res)
    assert lines == [venv, str(["a b", "it's", "$HOME"])]

    res = site.fab("exec", "-H", "t", "--", "python", "-", input="print(6 * 7, 'ü')\n")
    assert ok(res) == ["42 ü"]

    res = site.fab("exec", "-H", "t")
    assert res.returncode != 0
    assert res.stderr.strip() == "error: nothing to run: fab exec -H HOST -- COMMAND [ARGS...]"
