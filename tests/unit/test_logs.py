"""wsgiship.commands.logs (the pure builders) and the line splitting of log streaming.

The scripts are run for real on log files in tmp_path: they only need bash, coreutils, grep
and python3, as on the server.
"""

from __future__ import annotations

import os
import select
import subprocess
import time
from pathlib import Path

import pytest
from fakes import HOSTILE_TOUCH as HOSTILE
from fakes import run_utc as run

from wsgiship.commands import logs
from wsgiship.errors import WsgishipError
from wsgiship.layout import Paths
from wsgiship.remote.stream import _Lines
from wsgiship.shell import bash

# Timestamps as the logs write them (this machine's time zone is the "server's").
UWSGI_LOG = """\
Wed Nov 25 11:00:00 2026 - *** Starting uWSGI ***
[pid: 7|app: 0|req: 1/1] 127.0.0.1 () {32 vars in 363 bytes} [Wed Nov 25 11:00:01 2026] GET / => 200
[2026-11-25 12:00:39,635] ERROR in app: Exception on /boom [GET]
Traceback (most recent call last):
  File "hello.py", line 13, in boom
RuntimeError: kaboom ünïcode
[pid: 7|app: 0|req: 2/2] 127.0.0.1 () {32 vars in 353 bytes} [Wed Nov 25 12:00:40 2026] GET /boom => 500
Wed Nov  5 09:00:00 2027 - a padded day, a year later
"""


ERROR_LOG = """\
2026/11/25 11:00:00 [error] 7#7: *1 open() "/srv/a/current/static/old.css" failed
2026/11/25 12:30:00 [error] 7#7: *2 open() "/srv/a/current/static/nope.css" failed
"""


ACCESS_LOG = """\
127.0.0.1 - - [25/Nov/2026:11:00:00 +0000] "GET / HTTP/1.1" 200 6 "-" "curl"
127.0.0.1 - - [25/Nov/2026:13:30:00 +0100] "GET /late HTTP/1.1" 200 6 "-" "curl"
"""


def epoch(text: str) -> int:
    out = subprocess.run(["date", "-d", text, "+%s"], capture_output=True, text=True,
                         env={**os.environ, "TZ": "UTC"}, check=True)
    return int(out.stdout)


@pytest.fixture
def logfile(tmp_path: Path):
    def make(text: str, name: str = "a.log") -> str:
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        return str(path)

    return make


# --- options ---


def test_sources_default_all_and_lists_in_a_fixed_order() -> None:
    assert logs.parse_sources("") == ("app", "nginx")
    assert logs.parse_sources("all") == ("app", "nginx", "access")
    assert logs.parse_sources("access,app") == ("app", "access")
    assert logs.parse_sources("nginx, nginx") == ("nginx",)
    with pytest.raises(WsgishipError, match="unknown log source 'error'.*app, nginx, access or all"):
        logs.parse_sources("app,error")


def test_query_checks_its_options() -> None:
    q = logs.make_query("all", 10, "x|y", " 10 min ago ", True)
    assert q == logs.LogQuery(("app", "nginx", "access"), 10, "x|y", "10 min ago", True)
    with pytest.raises(WsgishipError, match="--lines: expected a number from 0"):
        logs.make_query(lines=-1)
    with pytest.raises(WsgishipError, match="--grep: expected one line"):
        logs.make_query(grep="a\nb")


def test_log_files_are_where_the_templates_write_them() -> None:
    files = logs.log_files(Paths("/srv/shop", "shop"), ("app", "nginx", "access"))
    assert files == {
        "app": "/srv/shop/shared/log/uwsgi.log",
        "nginx": "/var/log/nginx/shop.error.log",
        "access": "/var/log/nginx/shop.access.log",
    }
    assert list(logs.log_files(Paths("/srv/shop", "shop"), ("nginx",))) == ["nginx"]


# --- probe ---


def test_probe_reports_sudo_need_since_and_checks_the_pattern(logfile, tmp_path) -> None:
    readable = logfile("x\n")
    files = {"app": readable, "nginx": str(tmp_path / "missing.log")}
    res = run(logs.probe(files, grep="Traceback|ERROR", since="2026-11-25 12:00"))
    assert res.returncode == 0, res.stderr
    facts = dict(line.split("=", 1) for line in res.stdout.split())
    assert facts == {"since": str(epoch("2026-11-25 12:00")), "priv_app": "0", "priv_nginx": "0"}

    res = run(logs.probe(files, since="not a time at all"))
    assert res.returncode == logs.BAD_SINCE and "invalid date" in res.stderr

    res = run(logs.probe(files, grep="a("))
    assert res.returncode == logs.BAD_GREP and "Unmatched" in res.stderr


def test_probe_needs_sudo_for_what_the_login_user_cannot_read(logfile) -> None:
    assert os.geteuid() == 0, "the suite runs as root (make test): this probe needs another user"
    path = logfile("secret\n")
    os.chmod(path, 0o600)
    body = logs.probe({"nginx": path, "access": "/var/log/nowhere/x.log"})
    res = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                          "bash", "-c", body], capture_output=True, text=True, cwd="/")
    assert res.stdout.split() == ["priv_nginx=1", "priv_access=1"], res.stderr


def test_probe_quotes_hostile_values(tmp_path) -> None:
    res = run(logs.probe({"app": str(tmp_path / HOSTILE.replace("/", "_"))}, grep=HOSTILE))
    assert res.returncode == 0, res.stderr
    assert not Path("/tmp/wsgiship-pwned").exists()


# --- read ---


def test_read_last_lines(logfile) -> None:
    path = logfile("".join(f"line {i}\n" for i in range(100)))
    res = run(logs.read(path, 3))
    assert res.stdout.splitlines() == ["line 97", "line 98", "line 99"]
    assert res.returncode == 0 and res.stderr == ""


def test_read_greps_then_keeps_the_last_lines(logfile) -> None:
    path = logfile("".join(f"{'ERROR' if i % 10 == 0 else 'info'} {i}\n" for i in range(100)))
    res = run(logs.read(path, 2, grep="ERROR|Traceback"))
    assert res.stdout.splitlines() == ["ERROR 80", "ERROR 90"]
    res = run(logs.read(path, 5, grep="nothing-like-this"))
    assert res.returncode == 0 and res.stdout == ""


def test_read_a_missing_log_is_a_note_not_an_error(tmp_path) -> None:
    res = run(logs.read(str(tmp_path / "nope.log"), 50))
    assert res.returncode == 0 and res.stdout == ""
    assert res.stderr.strip() == logs.NOTE + "missing"


@pytest.mark.parametrize("text, since, expected", [
    # uWSGI: log-date lines, request lines and a traceback that belongs to the entry above it
    (UWSGI_LOG, "2026-11-25 12:00", UWSGI_LOG.splitlines()[2:]),
    (UWSGI_LOG, "2026-11-25 12:00:40", UWSGI_LOG.splitlines()[6:]),
    (ERROR_LOG, "2026-11-25 12:00", ERROR_LOG.splitlines()[1:]),
    # the access log carries its zone: 13:30 +0100 is 12:30 UTC
    (ACCESS_LOG, "2026-11-25 12:29", ACCESS_LOG.splitlines()[1:]),
    (ACCESS_LOG, "2026-11-25 12:31", []),
])
def test_read_since_filters_by_each_lines_timestamp(logfile, text, since, expected) -> None:
    res = run(logs.read(logfile(text), 100, since=epoch(since)))
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines() == expected
    assert res.stderr == ""


def test_read_since_then_grep_then_last_lines(logfile) -> None:
    res = run(logs.read(logfile(UWSGI_LOG), 1, grep="pid:", since=epoch("2026-11-25 11:00:01")))
    assert res.stdout.splitlines() == [UWSGI_LOG.splitlines()[6]]


def test_read_since_on_lines_without_timestamps_says_so(logfile) -> None:
    res = run(logs.read(logfile("plain\nlines\nonly\n"), 2, since=epoch("2026-01-01")))
    assert res.returncode == 0
    assert res.stdout.splitlines() == ["lines", "only"]
    assert res.stderr.strip() == logs.NOTE + "notime"


def test_read_since_on_an_empty_log_says_it_is_empty(logfile) -> None:
    res = run(logs.read(logfile(""), 50, since=epoch("2026-01-01")))
    assert (res.returncode, res.stdout) == (0, "")
    assert res.stderr.strip() == logs.NOTE + "empty"
    assert logs.NOTES["empty"] == "the log is empty"


def test_read_keeps_bytes_as_they_are(tmp_path) -> None:
    path = tmp_path / "bin.log"
    path.write_bytes(b"ok \xc3\xbc\nbad \xff\xfe\nnul \x00 byte\n")
    res = subprocess.run(bash(logs.read(str(path), 10, grep="bad|nul|ok")), shell=True,
                         capture_output=True, timeout=30)
    assert res.stdout == b"ok \xc3\xbc\nbad \xff\xfe\nnul \x00 byte\n"


def test_read_quotes_hostile_values(tmp_path) -> None:
    path = tmp_path / HOSTILE.replace("/", "_")
    path.write_text(f"a {HOSTILE}\n")
    res = run(logs.read(str(path), 5, grep=HOSTILE, since=None))
    assert res.stdout.splitlines() == [f"a {HOSTILE}"]
    assert not Path("/tmp/wsgiship-pwned").exists()


# --- follow ---


class Follower:
    """A follow script running locally as it would on the server, stdin standing for the
    SSH channel."""

    def __init__(self, body: str) -> None:
        self.proc = subprocess.Popen(bash(body), shell=True, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     env={**os.environ, "TZ": "UTC"})
        self.buf = b""

    def lines_within(self, seconds: float, count: int) -> list[str]:
        deadline = time.monotonic() + seconds
        assert self.proc.stdout is not None
        while self.buf.count(b"\n") < count and time.monotonic() < deadline:
            ready, _, _ = select.select([self.proc.stdout], [], [], 0.1)
            if ready:
                chunk = os.read(self.proc.stdout.fileno(), 65536)
                if not chunk:
                    break
                self.buf += chunk
        return self.buf.decode().splitlines()

    def hang_up(self) -> float:
        """Close stdin as a closed channel does; how long until the script ended."""
        t0 = time.monotonic()
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=10)
        return time.monotonic() - t0


def append(path: str, text: str) -> None:
    with open(path, "a", encoding="utf-8") as f:
        f.write(text)


def test_follow_shows_the_last_lines_then_new_ones_and_ends_when_the_channel_closes(
        logfile) -> None:
    path = logfile("old 1\nold 2\nold 3\n")
    f = Follower(logs.follow(path, 2))
    assert f.lines_within(5, 2) == ["old 2", "old 3"]
    time.sleep(0.3)
    append(path, "new ü\n")
    assert f.lines_within(2, 3) == ["old 2", "old 3", "new ü"]
    assert f.hang_up() < 3  # no tail left behind


def test_follow_with_grep_and_since_filters_history_and_new_lines(logfile) -> None:
    path = logfile(ERROR_LOG)
    body = logs.follow(path, 10, grep="nope|late", since=epoch("2026-11-25 12:00"))
    assert "--pid" in body
    f = Follower(body)
    assert f.lines_within(5, 1) == [ERROR_LOG.splitlines()[1]]
    time.sleep(0.3)
    append(path, "2026/11/25 13:00:00 [error] other\n2026/11/25 13:00:01 [error] late one\n")
    assert f.lines_within(2, 2)[1:] == ["2026/11/25 13:00:01 [error] late one"]
    assert f.hang_up() < 3


def test_follow_waits_for_a_log_that_does_not_exist_yet(tmp_path) -> None:
    path = str(tmp_path / "later.log")
    f = Follower(logs.follow(path, 50))
    time.sleep(0.5)
    append(path, "first\n")
    assert f.lines_within(5, 1) == ["first"]
    assert f.hang_up() < 3
    assert f.proc.stderr is not None
    assert logs.NOTE + "waiting" in f.proc.stderr.read().decode()


def test_follow_with_zero_lines_shows_only_new_ones(logfile) -> None:
    path = logfile("old\n")
    f = Follower(logs.follow(path, 0, grep="."))
    time.sleep(0.5)
    append(path, "new\n")
    assert f.lines_within(3, 1) == ["new"]
    assert f.hang_up() < 3


# --- wsgiship.remote.stream: lines ---


def test_lines_are_split_and_decoded_however_the_chunks_cut_them() -> None:
    data = "première ligne\nzweite ü\nend".encode()
    for size in (1, 2, 3, 7):
        lines = _Lines()
        got: list[str] = []
        for i in range(0, len(data), size):
            got += lines.feed(data[i:i + size])
        got += lines.end()
        assert got == ["première ligne", "zweite ü", "end"], size
    assert _Lines().feed(b"bad \xff\n") == ["bad \ufffd"]
