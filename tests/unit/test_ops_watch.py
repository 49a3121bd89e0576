"""The watch window (health.watch) as the next operation meets it: a deploy or rollback that
finds the lock held by a publish job in its watch window ends the window (Session.end_watch:
release.end_watch on the server) and waits for the lock; a rollback whose ending sent the
watched release back is done then (ops.rollback).

The session is a real Session over a real Remote (never connected) whose scripts run here, on a
deploy tree in tmp_path: prepare takes (or is refused) the real lock dir. The watching job is a
stand-in thread: once it sees <lock>/watch-end it notes what it was asked and ends, its client
unlocking."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from fakes import add_release
from procs import ident
from test_ops_publish import local_session as publish_session

from wsgiship.config import App
from wsgiship.errors import LockedError
from wsgiship.ops import publish
from wsgiship.ops import rollback as rollback_mod
from wsgiship.ops import session as session_mod
from wsgiship.ops.session import Session

R1, R2 = "20250101T000001Z-0000001", "20250101T000002Z-0000002"
OTHER = {"by": "alice@laptop", "token": "t1", "action": "deploy"}


def local_session(app: App, monkeypatch: pytest.MonkeyPatch, action: str) -> Session:
    """test_ops_publish's local Session (scripts run here, `remote.whats`), doing `action`,
    whose keeper is this process (the lock's keeper lives as long as its client)."""
    monkeypatch.setattr(session_mod.Keeper, "start", classmethod(
        lambda cls, *_a, **_k: cls(None, ident(os.getpid()))))
    return dataclasses.replace(publish_session(app, monkeypatch), action=action)


def lines(s: Session) -> list[str]:
    return s.out.printer.out.getvalue().decode().splitlines()  # type: ignore[attr-defined]


@pytest.fixture
def job() -> Iterator[subprocess.Popen[bytes]]:
    """The other operation's publish job, running (the lock names it)."""
    proc = subprocess.Popen(["sleep", "60"])
    yield proc
    proc.kill()
    proc.wait()


def held(deploy: Path, job: subprocess.Popen[bytes], watching: str = "") -> Path:
    """The lock as the other operation's client and job hold it: in its watch window of
    `watching` if given."""
    lock = deploy / ".lock"
    lock.mkdir()
    holder = {**OTHER, "keeper": ident(os.getpid())}
    (lock / "holder").write_text(json.dumps(holder, sort_keys=True) + "\n")
    (lock / "job").write_text(ident(job.pid) + "\n")
    if watching:
        (lock / "watching").write_text(watching)
    return lock


@pytest.fixture
def watcher() -> Iterator[Callable[[Path], list[str]]]:
    """A stand-in for the watching job: when asked to end (watch-end), it notes the word, ends
    a moment later, and its client unlocks."""
    threads: list[threading.Thread] = []

    def start(lock: Path) -> list[str]:
        asked: list[str] = []

        def run() -> None:
            deadline = time.monotonic() + 20
            while not (lock / "watch-end").exists() and time.monotonic() < deadline:
                time.sleep(0.05)
            asked.append((lock / "watch-end").read_text())
            time.sleep(0.3)
            shutil.rmtree(lock)

        threads.append(threading.Thread(target=run, daemon=True))
        threads[-1].start()
        return asked

    yield start
    for t in threads:
        t.join(timeout=25)


@pytest.mark.parametrize("action, how", [("rollback", "it goes back"), ("deploy", "it stays")])
def test_a_deploy_or_rollback_ends_the_watch_window_and_takes_the_lock(
        deploy: Path, make_app, monkeypatch, job, watcher, action: str, how: str) -> None:
    add_release(deploy, R2)
    lock = held(deploy, job, watching=R2)
    asked = watcher(lock)
    s = local_session(make_app(deploy_to=str(deploy)), monkeypatch, action)
    s.lock()
    assert asked == [action]  # the job learns who ended it: a rollback sends R2 back
    assert s.locked and s.ended_watch == R2
    assert json.loads((lock / "holder").read_text())["token"] == s.token  # ours now
    assert lines(s) == [f"[web1] release {R2} is in its watch window: ending it now ({how})"]
    whats = s.remote.whats  # type: ignore[attr-defined]
    assert whats[:2] == ["prepare", "end the watch window"]
    assert set(whats[2:]) == {"prepare"}  # asked again until the job let the lock go
    s.unlock()
    assert not lock.exists()


def test_a_lock_held_without_a_watch_is_refused_as_before(deploy: Path, make_app, monkeypatch,
                                                         job) -> None:
    lock = held(deploy, job)
    s = local_session(make_app(deploy_to=str(deploy)), monkeypatch, "rollback")
    with pytest.raises(LockedError) as info:
        s.lock()
    assert "alice@laptop (deploy)" in info.value.message
    assert s.remote.whats == ["prepare"]  # type: ignore[attr-defined]
    assert not s.locked and s.ended_watch == "" and lines(s) == []
    assert sorted(os.listdir(lock)) == ["holder", "job"]  # nothing written to it


# --- rollback after it ended a watch ---


@contextmanager
def given(s: Session) -> Iterator[Session]:
    yield s


@pytest.mark.parametrize("current, rolls_back", [
    (R1, False),   # the watched release went back: that was the rollback
    (R2, True),    # it had passed its watch already: rolled back as any release
])
def test_a_rollback_that_ended_a_watch(deploy: Path, make_app, monkeypatch, current: str,
                                       rolls_back: bool) -> None:
    for name in (R1, R2):  # with their venvs (R2 failed if the job sent it back)
        r = add_release(deploy, name, venv_key=name, failed=name == R2 and current == R1)
        (r / ".venv" / "bin").mkdir()
        (r / ".venv" / "bin" / "python").symlink_to(sys.executable)
    (deploy / "current").symlink_to(f"releases/{current}")
    s = local_session(make_app(deploy_to=str(deploy)), monkeypatch, "rollback")
    s.ended_watch, s.facts = R2, {"current": f"releases/{current}"}
    monkeypatch.setattr(rollback_mod, "locked", lambda *_a: given(s))
    # (the checks before the switch are check*.py's: nothing to check here)
    monkeypatch.setattr(rollback_mod.checks, "unit_check", lambda *_a: "true\n")
    monkeypatch.setattr(rollback_mod.nginx, "site_check", lambda *_a: "true\n")
    published: list[str] = []

    def run_job(_s: Session, _job: object, release: str, *_a: object, **_k: object
                ) -> publish.Outcome:
        published.append(release)
        return publish.Outcome("ok")

    monkeypatch.setattr(rollback_mod, "run_job", run_job)
    done = rollback_mod.Rollback(s.remote, s.app, s.out).run()
    if rolls_back:
        assert (done, published) == (R1, [R1])
        assert lines(s) == [f"[web1] rolling back {R2} -> {R1}"]
    else:
        assert (done, published) == (R1, [])
        assert lines(s) == [f"[web1] release {R2} left its watch window by going back: {R1}"
                            " serves"]
        assert "deploy log" not in s.remote.whats  # type: ignore[attr-defined]  # the job's
