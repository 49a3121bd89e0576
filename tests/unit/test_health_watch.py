"""wsgiship.commands.health: the watch after the switch (health.watch), run for real. WATCH_PROGRAM
follows a uWSGI-style request log that the test appends to, and counts the lines of the workers
of a stand-in uWSGI master (a real process whose children are real `sleep`s): the new slot's;
any other pid's lines (the previous release's workers finishing) do not count. `watch` wraps it
in the lock's `watching` file, which the next deploy or rollback ends (release.end_watch)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fakes import as_app, as_app_calls, as_deploy, paths, priv

from wsgiship import shell
from wsgiship.commands import health, release

R2 = "20250101T000002Z-0000002"
OTHER = os.getpid()  # a pid that is no worker of the master (the old release's, say)

# a uWSGI master: two workers at once, another on SIGUSR1 (a respawn); each new pid printed
MASTER = ("import signal, subprocess, time\n"
          "def spawn(*_):\n"
          "    print(subprocess.Popen(['sleep', '60']).pid, flush=True)\n"
          "signal.signal(signal.SIGUSR1, spawn)\n"
          "spawn(); spawn()\n"
          "while True: time.sleep(1)\n")


@dataclass
class Master:
    proc: subprocess.Popen[str]
    workers: list[int]

    def respawn(self) -> int:
        os.kill(self.proc.pid, signal.SIGUSR1)
        self.workers.append(int(self.proc.stdout.readline()))  # type: ignore[union-attr]
        return self.workers[-1]


@pytest.fixture
def master() -> Iterator[Master]:
    proc = subprocess.Popen([sys.executable, "-c", MASTER], stdout=subprocess.PIPE, text=True,
                            start_new_session=True)
    workers = [int(proc.stdout.readline()) for _ in range(2)]  # type: ignore[union-attr]
    yield Master(proc, workers)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def req(pid: int, status: int) -> str:
    """A request line as uWSGI logs it (its default log format)."""
    return (f"[pid: {pid}|app: 0|req: 1/1] 127.0.0.1 () {{34 vars in 412 bytes}} [Thu Jan  2 "
            f"10:00:00 2025] GET /orders => generated 21 bytes in 3 msecs (HTTP/1.1 {status}) "
            f"2 headers in 79 bytes (1 switches on core 0)\n")


def following(log: Path, timeout: float = 10) -> None:
    """Wait until a `tail` holds `log` open (it follows from the end: lines written before
    would not be seen), and a moment more."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for proc in Path("/proc").iterdir():
            try:
                if (proc / "comm").read_text().strip() == "tail" and any(
                        os.readlink(fd) == str(log) for fd in (proc / "fd").iterdir()):
                    time.sleep(0.3)
                    return
            except OSError:
                continue
        time.sleep(0.05)
    raise AssertionError(f"nothing follows {log}")


@dataclass
class Watch:
    proc: subprocess.Popen[str]
    log: Path
    end: Path
    began: float

    def write(self, *lines: str) -> None:
        with self.log.open("a") as f:
            f.write("".join(lines))  # at once: one read of tail's

    def verdict(self) -> tuple[int, dict[str, str], float]:
        """Its exit code, its key=value lines, how long it took."""
        out = self.proc.communicate(timeout=30)[0]
        took = time.monotonic() - self.began
        return self.proc.returncode, dict(x.split("=", 1) for x in out.splitlines()), took


@pytest.fixture
def watch(tmp_path: Path) -> Iterator[Callable[..., Watch]]:
    made: list[Watch] = []

    def start(main: int, seconds: float, max_pct: float = 1.0,
              follow: tuple[str, ...] | None = None) -> Watch:
        log, end = tmp_path / "uwsgi.log", tmp_path / "watch-end"
        log.write_text("*** uWSGI is running in multiple interpreter mode ***\n")
        argv = follow or ("tail", "-n", "0", "-F", str(log))
        proc = subprocess.Popen([sys.executable, "-c", health.WATCH_PROGRAM, str(seconds),
                                 str(max_pct), str(main), str(end), "--", *argv],
                                stdout=subprocess.PIPE, text=True)
        made.append(Watch(proc, log, end, time.monotonic()))
        if follow is None:
            following(log)
        return made[-1]

    yield start
    for w in made:
        w.proc.kill()
        w.proc.wait()


def test_a_release_that_answers_well_passes_the_watch(master: Master, watch) -> None:
    w = watch(master.proc.pid, 2, max_pct=10)
    a, b = master.workers
    # 4xx are the clients': no error; the other release's 5xx are not this one's
    w.write(*[req(a, 200)] * 8, *[req(b, 404)] * 7, req(b, 502), *[req(OTHER, 500)] * 5,
            "Traceback (most recent call last):\n  File x (HTTP/1.1 500)\n")
    code, facts, took = w.verdict()
    assert code == 0
    assert facts == {"watched": "2", "requests": "16", "errors": "1", "note": ""}
    assert 2 <= took < 6  # the whole window


@pytest.mark.parametrize("max_pct, errors, fails", [
    (1, 3, True), (50, 5, False), (50, 6, True), (0, 1, True), (100, 10, False)])
def test_ten_requests_are_judged_by_the_share_of_5xx(master: Master, watch, max_pct: float,
                                                      errors: int, fails: bool) -> None:
    w = watch(master.proc.pid, 3 if fails else 1.5, max_pct=max_pct)
    a, b = master.workers
    w.write(*[req(a, 200)] * (10 - errors), *[req(b, 500 + i % 4) for i in range(errors)])
    code, facts, took = w.verdict()
    assert (facts["requests"], facts["errors"]) == ("10", str(errors))
    if fails:
        # at once, not at the end of the window
        why = (f"{errors} of 10 requests answered 5xx ({errors * 10:.1f}%) within 0s, above"
               f" health.max_5xx_percent {max_pct:g}")
        assert (code, facts["note"], facts["reason"]) == (1, why, f"watch: {why}")
        assert took < 2.5
    else:
        assert (code, facts["note"]) == (0, "") and "reason" not in facts


def test_fewer_than_ten_requests_say_nothing_either_way(master: Master, watch) -> None:
    w = watch(master.proc.pid, 1.5)
    w.write(*[req(master.workers[0], 500)] * 9)
    code, facts, _ = w.verdict()
    assert (code, facts["requests"], facts["errors"]) == (0, "9", "9")


def test_the_watch_counts_respawned_and_dead_workers_too(master: Master, watch) -> None:
    w = watch(master.proc.pid, 8)
    first, _ = master.workers
    os.kill(first, signal.SIGKILL)  # its last lines come after it died: still this release's
    new = master.respawn()          # a worker the master started after the watch began
    time.sleep(1.5)                 # (the watch looks for new workers every second)
    w.write(*[req(first, 500)] * 5, *[req(new, 500)] * 5)
    code, facts, took = w.verdict()
    assert (code, facts["requests"], facts["errors"]) == (1, "10", "10")
    assert took < 6


@pytest.mark.parametrize("who, code, note", [
    ("rollback", 1, "fab rollback during the watch window"),
    ("deploy", 0, "ended by the next deploy"),
])
def test_the_watch_ends_early_when_asked(master: Master, watch, who: str, code: int,
                                         note: str) -> None:
    w = watch(master.proc.pid, 30)
    w.write(*[req(master.workers[0], 200)] * 3)
    time.sleep(0.3)
    w.end.write_text(who)
    got, facts, took = w.verdict()
    assert (got, facts["note"], facts["requests"]) == (code, note, "3")
    assert facts.get("reason") == (f"watch: {note}" if code else None)
    assert took < 5


def test_a_log_that_cannot_be_followed_ends_the_watch_without_a_verdict(master: Master,
                                                                        watch) -> None:
    w = watch(master.proc.pid, 30, follow=("true",))
    code, facts, took = w.verdict()
    assert (code, facts["note"], facts["requests"]) == (0, "the app log could not be followed", "0")
    assert took < 5


# --- watch: the step's script, its `watching` mark in the lock, ended by release.end_watch ---


def test_the_watch_step_marks_the_lock_and_a_rollback_ends_it(deploy: Path, fakebin: Path, sh,
                                                             master: Master) -> None:
    p = paths(deploy)
    lock = deploy / ".lock"
    lock.mkdir()
    log = Path(p.app_log)
    log.touch()
    text = health.watch(p, R2, f"echo {master.proc.pid}", 30, 1.0)
    proc = subprocess.Popen(shell.bash(priv(as_app(text, "sudo -n -u web --"), "sudo -n")),
                            shell=True, stdout=subprocess.PIPE, text=True, env=as_deploy(fakebin))
    try:
        following(log)
        assert (lock / "watching").read_text() == R2  # what the next prepare reports
        with log.open("a") as f:
            f.write(req(master.workers[1], 200))
        res = sh(release.end_watch(p, "rollback"))
        assert (res.returncode, res.stdout, res.stderr) == (0, "", "")
        out = proc.communicate(timeout=15)[0]
    finally:
        proc.kill()
    assert proc.returncode == 1
    assert out.splitlines()[1:] == ["requests=1", "errors=0",
                                    "note=fab rollback during the watch window",
                                    "reason=watch: fab rollback during the watch window"]
    assert sorted(os.listdir(lock)) == []  # its marks go with it
    assert as_app_calls(fakebin) == [f"tail -n 0 -F {log}"]  # the app's log, read as the app


def test_end_watch_writes_nothing_without_a_watch(deploy: Path, sh) -> None:
    (deploy / ".lock").mkdir()
    res = sh(release.end_watch(paths(deploy), "rollback"))
    assert (res.returncode, res.stdout) == (0, "")
    assert os.listdir(deploy / ".lock") == []
    (deploy / ".lock" / "watching").write_text(R2)
    assert sh(release.end_watch(paths(deploy), "deploy")).returncode == 0
    assert sorted(os.listdir(deploy / ".lock")) == ["watch-end", "watching"]  # no temporary
    assert (deploy / ".lock" / "watch-end").read_text() == "deploy"
