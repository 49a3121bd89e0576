"""The watch window (health.watch) on a real host: the previous release's uWSGI stays warm after
the switch while the new one's 5xx rate is watched; a release that starts failing goes back at
once, `fab rollback` in the window is the same instant switch, a next deploy ends the window, and
a client cut off during the overlap leaves exactly one uWSGI serving."""

from __future__ import annotations

import os
import subprocess
import time

import pytest
from conftest import FAB, ROOT, Project, make_project
from test_crash import app_returning, lock_gone
from test_zero_downtime import slots_running

from bench.loadgen import Load


@pytest.fixture(scope="module")
def app(host, tmp_path_factory) -> Project:
    p = make_project(host, tmp_path_factory.mktemp("bluegreen"),
                     health={"path": "/", "status": 200, "timeout": 20, "watch": 8,
                             "max_5xx_percent": 5})
    p.set_text("good")
    p.must(p.deploy())
    return p


def app_failing_after(seconds: float) -> str:
    """hello.py that answers for `seconds` after it loaded (the checks before and after the
    switch pass), then 500 to every request."""
    return app_returning(f"if time.time() - LOADED > {seconds}:\n        return 'broken', 500\n"
                         "    return 'new'").replace("app = Flask", "LOADED = time.time()\napp = Flask", 1)


def start_deploy(p: Project) -> subprocess.Popen[str]:
    env = {**os.environ, "WSGISHIP_HOSTS": str(p.hosts_file)}
    return subprocess.Popen([FAB, "deploy", "-H", "t"], cwd=ROOT, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def wait_watching(p: Project, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while p.remote(f"test -f {p.deploy_to}/.lock/watching && echo yes || true").strip() != "yes":
        assert time.monotonic() < deadline, "the deploy never reached its watch window"
        time.sleep(0.1)


def test_a_release_that_starts_failing_in_the_window_goes_back(app: Project) -> None:
    p, good = app, app.current()
    hello = p.app_dir / "hello.py"
    source = hello.read_text()
    hello.write_text(app_failing_after(3))
    try:
        with Load(p.http_port, connections=8, max_seconds=60, max_requests=300_000) as load:
            time.sleep(1)
            res = p.deploy()
            t1 = time.monotonic()
            time.sleep(1)
    finally:
        hello.write_text(source)
    assert res.returncode != 0
    assert "watch: " in res.stderr and "answered 5xx" in res.stderr, res.stderr
    assert f"rolling back to {good}" in res.stdout, res.stdout
    assert p.current() == good
    # what users saw: the failing release only until the watch caught it, then "good" again
    after = [s for s in load.result.samples if s.start > t1]
    assert after and {s.body for s in after} == {"good"}
    assert not [s for s in after if s.status is None or s.status >= 500]
    assert lock_gone(p)
    time.sleep(2)
    assert len(slots_running(p)) == 1


def test_a_rollback_in_the_window_is_the_instant_switch_back(app: Project) -> None:
    p, good = app, app.current()
    p.set_text("watched")
    proc = start_deploy(p)
    try:
        wait_watching(p)
        assert len(slots_running(p)) == 2  # the previous one is warm
        res = p.fab("rollback", "-H", "t")
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    p.must(res)
    assert "is in its watch window: ending it now (it goes back)" in res.stdout, res.stdout
    assert proc.returncode != 0 and "fab rollback during the watch window" in out, out
    assert p.current() == good and p.get("/")[:2] == (200, "good")
    time.sleep(2)
    assert len(slots_running(p)) == 1


def test_a_deploy_in_the_window_ends_it_and_goes_on(app: Project) -> None:
    p = app
    p.set_text("first in window")
    proc = start_deploy(p)
    try:
        wait_watching(p)
        p.set_text("second")
        res = p.deploy()
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0 and "ended by the next deploy" in out, out
    p.must(res)
    assert "ending it now (it stays)" in res.stdout, res.stdout
    assert p.get("/")[:2] == (200, "second")


def test_a_client_cut_off_in_the_overlap_leaves_one_uwsgi_serving(app: Project) -> None:
    p = app
    p.set_text("cut off")
    proc = start_deploy(p)
    try:
        wait_watching(p)
        proc.kill()
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert lock_gone(p, 60)  # the server finished the window and stopped the old uWSGI
    time.sleep(2)
    assert len(slots_running(p)) == 1
    assert p.get("/")[:2] == (200, "cut off")
    p.set_text("next")
    p.must(p.deploy())
    assert p.get("/")[:2] == (200, "next")
