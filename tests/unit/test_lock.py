"""The deploy lock lives as long as its client: its holder names a keeper process (pid and start
time); a lock whose keeper is gone is taken over by the next prepare, one whose keeper lives is
refused. A publish job running under the lock (<lock>/job, "PID START") keeps it too: no take
over, no unlock, no `fab unlock`. The keeper script itself, run for real: when its channel
closes it removes its own lock, or, a job running, tells the job its client is gone."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from procs import dead_ident, ident, start_time

from wsgiship import shell
from wsgiship.commands import release
from wsgiship.layout import Paths


def paths(root: Path) -> Paths:
    return Paths(str(root), "app")


def take(root: Path, sh, holder: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return sh(release.prepare(paths(root), sys.executable, holder))


def held(root: Path, holder: dict[str, str], job: str = "") -> Path:
    """A lock as prepare leaves it, with `job` ("PID START") as its publish job if given."""
    lock = root / ".lock"
    lock.mkdir()
    (lock / "holder").write_text(json.dumps(holder, sort_keys=True) + "\n")
    if job:
        (lock / "job").write_text(job + "\n")
    return lock


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(["sleep", "60"])
    yield proc
    proc.kill()
    proc.wait()


def test_a_lock_whose_keeper_lives_is_refused(deploy: Path, sh, sleeper) -> None:
    keeper = f"{sleeper.pid} {start_time(sleeper.pid)}"
    first = {"by": "alice@laptop", "token": "t1", "keeper": keeper}
    assert take(deploy, sh, first).returncode == 0
    res = take(deploy, sh, {"by": "bob@desk", "token": "t2", "keeper": "1 1"})
    assert res.returncode == release.LOCKED
    assert json.loads(res.stdout.splitlines()[0]) == first
    assert not list(deploy.glob(".lock-holder.*"))  # the refused one's holder is not left


@pytest.mark.parametrize("gone", ["exited", "pid reused"])
def test_a_lock_whose_keeper_is_gone_is_taken_over(deploy: Path, sh, sleeper, gone: str) -> None:
    if gone == "exited":
        keeper = dead_ident()
    else:  # the pid lives, but as another process: its start time differs
        keeper = f"{sleeper.pid} {int(start_time(sleeper.pid)) + 1}"
    dead = {"by": "alice@laptop", "token": "t1", "keeper": keeper}
    assert take(deploy, sh, dead).returncode == 0
    mine = {"by": "bob@desk", "token": "t2", "keeper": "1 1"}
    res = take(deploy, sh, mine)
    assert res.returncode == 0, res.stderr
    facts = dict(line.split("=", 1) for line in res.stdout.splitlines() if "=" in line)
    assert json.loads(base64.b64decode(facts["took_over"])) == dead
    assert json.loads((deploy / ".lock" / "holder").read_text()) == mine


@pytest.mark.parametrize("keeper", ["dead", "alive"])
def test_a_lock_whose_job_runs_is_refused_and_says_so(deploy: Path, sh, sleeper,
                                                     keeper: str) -> None:
    # the client died mid-publish (or still lives): its job ends on its own, then the lock goes
    first = {"by": "alice@laptop", "token": "t1",
             "keeper": dead_ident() if keeper == "dead" else ident(os.getpid())}
    held(deploy, first, job=ident(sleeper.pid))
    res = take(deploy, sh, {"by": "bob@desk", "token": "t2", "keeper": "1 1"})
    assert res.returncode == release.LOCKED
    assert res.stdout.splitlines() == [json.dumps(first, sort_keys=True), "job=running"]
    assert "took_over" not in res.stdout
    assert (deploy / ".lock" / "job").is_file()


def test_a_refused_prepare_says_nothing_of_a_job_that_ended(deploy: Path, sh) -> None:
    first = {"by": "alice@laptop", "token": "t1", "keeper": ident(os.getpid())}
    held(deploy, first, job=dead_ident())
    res = take(deploy, sh, {"by": "bob@desk", "token": "t2", "keeper": "1 1"})
    assert res.returncode == release.LOCKED
    assert res.stdout.splitlines() == [json.dumps(first, sort_keys=True)]


@pytest.mark.parametrize("job", ["running", "ended"])
def test_a_lock_whose_job_watches_its_release_says_which(deploy: Path, sh, sleeper,
                                                         job: str) -> None:
    # a deploy in its watch window (health.watch): the next deploy or rollback may end it
    first = {"by": "alice@laptop", "token": "t1", "keeper": ident(os.getpid())}
    lock = held(deploy, first, job=ident(sleeper.pid) if job == "running" else dead_ident())
    (lock / "watching").write_text("20250101T000002Z-0000002")
    res = take(deploy, sh, {"by": "bob@desk", "token": "t2", "keeper": "1 1"})
    assert res.returncode == release.LOCKED
    # a job that ended watches nothing, whatever it left
    assert res.stdout.splitlines() == [json.dumps(first, sort_keys=True), *(
        ["job=running", "watching=20250101T000002Z-0000002"] if job == "running" else [])]


def test_a_lock_without_a_keeper_is_never_taken_over(deploy: Path, sh) -> None:
    # an older wsgiship's lock, or a holder cut short: only `fab unlock` removes it
    (deploy / ".lock").mkdir()
    (deploy / ".lock" / "holder").write_text('{"by": "old@version"}\n')
    res = take(deploy, sh, {"by": "bob@desk", "token": "t2", "keeper": "1 1"})
    assert res.returncode == release.LOCKED
    assert "took_over" not in res.stdout


# --- unlock and force_unlock leave the lock to a running job ---


@pytest.mark.parametrize("job", ["none", "ended"])
def test_unlock_removes_its_own_lock_when_no_job_runs(deploy: Path, sh, job: str) -> None:
    held(deploy, {"token": "t1"}, job=dead_ident() if job == "ended" else "")
    assert sh(release.unlock(paths(deploy), "t1")).returncode == 0
    assert not (deploy / ".lock").exists()


def test_a_live_job_keeps_the_lock_from_unlock(deploy: Path, sh, sleeper) -> None:
    lock = held(deploy, {"token": "t1"}, job=ident(sleeper.pid))
    assert sh(release.unlock(paths(deploy), "t1")).returncode == 0
    assert (lock / "holder").is_file() and (lock / "job").is_file()


def test_unlock_leaves_anothers_lock(deploy: Path, sh) -> None:
    lock = held(deploy, {"token": "t1"})
    assert sh(release.unlock(paths(deploy), "t2")).returncode == 0
    assert (lock / "holder").is_file()


def test_force_unlock_refuses_while_a_job_runs(deploy: Path, sh, sleeper) -> None:
    lock = held(deploy, {"by": "alice@laptop", "token": "t1"}, job=ident(sleeper.pid))
    res = sh(release.force_unlock(paths(deploy)))
    assert (res.returncode, res.stdout) == (release.LOCKED, f"{sleeper.pid}\n")
    assert (lock / "holder").is_file()


def test_force_unlock_removes_a_lock_whose_job_ended(deploy: Path, sh) -> None:
    held(deploy, {"by": "alice@laptop", "token": "t1"}, job=dead_ident())
    res = sh(release.force_unlock(paths(deploy)))
    assert res.returncode == 0
    assert res.stdout.splitlines() == ["removed", '{"by": "alice@laptop", "token": "t1"}']
    assert not (deploy / ".lock").exists()


# --- the keeper ---


def keeper(root: Path, token: str = "t1", wait: str = "60") -> subprocess.Popen[str]:
    text = release.keeper(paths(root), token)
    assert "read -r -t 60" in text
    return subprocess.Popen(["bash", "-c", text.replace("-t 60", f"-t {wait}")],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)


def test_the_keeper_reports_itself_and_ends_with_its_channel(deploy: Path) -> None:
    lock = held(deploy, {"token": "t1"})
    proc = keeper(deploy)
    assert proc.stdout is not None and proc.stdin is not None
    line = proc.stdout.readline().strip()
    pid, start = line.removeprefix("keeper=").split()
    assert int(pid) == proc.pid and start == start_time(proc.pid)
    for _ in range(3):  # heartbeats keep it, and the lock
        proc.stdin.write("\n")
        proc.stdin.flush()
        time.sleep(0.05)
    assert proc.poll() is None and lock.is_dir()
    proc.stdin.close()  # the client went away
    assert proc.wait(timeout=5) == 0
    assert not os.path.exists(f"/proc/{pid}/stat") or start_time(int(pid)) != start
    assert not lock.exists()  # it took its client's lock along


def test_the_keeper_ends_without_a_heartbeat(deploy: Path) -> None:
    lock = held(deploy, {"token": "t1"})
    proc = keeper(deploy, wait="0.3")
    assert proc.wait(timeout=5) == 0  # a client asleep: no line for too long
    assert not lock.exists()


@pytest.mark.parametrize("job, token, kept, told", [
    ("none", "t1", False, False),       # its own lock, no job: removed
    ("ended", "t1", False, False),      # its job is over: removed
    ("running", "t1", True, True),      # its job runs: kept, the job told its client is gone
    ("none", "t2", True, False),        # another's lock (taken over, or after an unlock): kept
    ("running", "t2", True, False),
])
def test_the_keeper_leaves_the_lock_to_a_running_job(deploy: Path, sleeper, job: str,
                                                     token: str, kept: bool, told: bool) -> None:
    jobs = {"none": "", "ended": dead_ident(), "running": ident(sleeper.pid)}
    lock = held(deploy, {"token": "t1"}, job=jobs[job])
    proc = keeper(deploy, token)
    assert proc.stdin is not None
    proc.stdin.close()
    assert proc.wait(timeout=5) == 0
    assert lock.exists() == kept
    assert (lock / "client-gone").exists() == told
    if kept:
        assert json.loads((lock / "holder").read_text()) == {"token": "t1"}


def test_the_keeper_without_a_lock_creates_nothing(deploy: Path) -> None:
    proc = keeper(deploy)
    assert proc.stdin is not None
    proc.stdin.close()
    assert proc.wait(timeout=5) == 0
    assert not (deploy / ".lock").exists()


def test_prepare_quotes_the_keeper_field_as_part_of_the_holder() -> None:
    text = release.prepare(paths(Path("/srv/app")), "python3",
                           {"keeper": "1 2", "by": "x'; rm -rf / #"})
    line = next(x for x in text.splitlines() if x.startswith("if ! printf"))
    assert shell.q(json.dumps({"by": "x'; rm -rf / #", "keeper": "1 2"}, sort_keys=True)) in line
