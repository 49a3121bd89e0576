"""The deploy lock lives as long as its client: its holder names a keeper process (pid and start
time); a lock whose keeper is gone is taken over by the next prepare, one whose keeper lives is
refused. The keeper script itself, run for real."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from wsgiship import shell
from wsgiship.commands import release
from wsgiship.layout import Paths


def paths(root: Path) -> Paths:
    return Paths(str(root), "app")


def start_time(pid: int) -> str:
    return Path(f"/proc/{pid}/stat").read_text().split()[21]


def take(root: Path, sh, holder: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return sh(release.prepare(paths(root), sys.executable, holder))


@pytest.fixture
def sleeper() -> subprocess.Popen[bytes]:
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
        sleeper.kill()
        sleeper.wait()
        keeper = f"{sleeper.pid} 12345"
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


def test_a_lock_without_a_keeper_is_never_taken_over(deploy: Path, sh) -> None:
    # an older wsgiship's lock, or a holder cut short: only `fab unlock` removes it
    (deploy / ".lock").mkdir()
    (deploy / ".lock" / "holder").write_text('{"by": "old@version"}\n')
    res = take(deploy, sh, {"by": "bob@desk", "token": "t2", "keeper": "1 1"})
    assert res.returncode == release.LOCKED
    assert "took_over" not in res.stdout


def test_the_keeper_reports_itself_and_ends_with_its_channel() -> None:
    proc = subprocess.Popen(["bash", "-c", release.keeper()], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdin is not None
    line = proc.stdout.readline().strip()
    pid, start = line.removeprefix("keeper=").split()
    assert int(pid) == proc.pid and start == start_time(proc.pid)
    for _ in range(3):  # heartbeats keep it
        proc.stdin.write("\n")
        proc.stdin.flush()
        time.sleep(0.05)
    assert proc.poll() is None
    proc.stdin.close()  # the client went away
    assert proc.wait(timeout=5) == 0
    assert not os.path.exists(f"/proc/{pid}/stat") or start_time(int(pid)) != start


def test_the_keeper_ends_without_a_heartbeat() -> None:
    text = release.keeper()
    assert "read -r -t 60" in text
    fast = text.replace("-t 60", "-t 0.3")
    proc = subprocess.Popen(["bash", "-c", fast], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert proc.wait(timeout=5) == 0  # a client asleep: no line for too long


def test_prepare_quotes_the_keeper_field_as_part_of_the_holder() -> None:
    text = release.prepare(paths(Path("/srv/app")), "python3",
                           {"keeper": "1 2", "by": "x'; rm -rf / #"})
    line = next(x for x in text.splitlines() if x.startswith("if ! printf"))
    assert shell.q(json.dumps({"by": "x'; rm -rf / #", "keeper": "1 2"}, sort_keys=True)) in line
