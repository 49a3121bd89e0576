"""A client SIGKILLed at every stage boundary of a deploy and of a rollback, under load, on the
real test host: no failed request, no lock left, `current` on an `ok` release once the server
has finished what the client started, the next deploy needs no `fab unlock`, and a rollback
goes to an `ok` release.

The client stops at a boundary through the test-only pause $WSGISHIP_TEST_PAUSE (ops/session.py):
`before:<stage>` stops the client itself; `job:<step>` makes the publish job on the server wait
after that step until its client is gone.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest
from conftest import FAB, ROOT, Project, make_project
from test_crash import statuses

from bench.loadgen import Load

DEPLOY_POINTS = ["before:updating", "before:validating", "before:publishing", "job:start",
                 "job:check", "job:switch", "job:install", "job:nginx", "job:health",
                 "job:retire", "job:mark", "before:finishing"]
ROLLBACK_POINTS = ["before:publishing", "job:start", "job:switch", "job:health", "job:retire",
                   "before:finishing"]


@pytest.fixture(scope="module")
def app(host, tmp_path_factory) -> Project:
    p = make_project(host, tmp_path_factory.mktemp("kill"))
    p.set_text("first")
    p.must(p.deploy())
    p.set_text("second")
    p.must(p.deploy())
    return p


def killed_at(p: Project, point: str, *args: str) -> str:
    """Run `fab ARGS -H t` paused at `point`; SIGKILL it there; its output."""
    env = {**os.environ, "WSGISHIP_HOSTS": str(p.hosts_file), "WSGISHIP_TEST_PAUSE": point}
    proc = subprocess.Popen([FAB, *args, "-H", "t"], cwd=ROOT, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    lines = []
    try:
        for line in proc.stdout:  # type: ignore[union-attr]
            lines.append(line)
            if "test pause" in line:
                proc.kill()
                break
        out = "".join(lines) + proc.communicate(timeout=30)[0]
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.wait() == -9, f"{point}: the client never paused:\n{''.join(lines)}"
    return out


def settled(p: Project, timeout: float = 60) -> None:
    """Wait until the server has finished what the dead client started (its lock is gone)."""
    deadline = time.monotonic() + timeout
    while p.lock_exists():
        assert time.monotonic() < deadline, p.remote(f"cat {p.deploy_to}/.lock/holder")
        time.sleep(0.2)


def killed_under_load(p: Project, point: str, op: str) -> tuple[str, str]:
    """`fab OP` killed at `point` under load, the server left to finish: its output and the
    release now current, after asserting no failed request, no lock and an ok release."""
    with Load(p.http_port, connections=4, max_seconds=120, max_requests=300_000) as load:
        time.sleep(0.5)
        out = killed_at(p, point, op)
        settled(p)
        time.sleep(0.5)
    assert not load.result.failed, [(s.status, s.body) for s in load.result.failed[:5]]
    assert not p.lock_exists()
    current, rows = p.current(), statuses(p)
    assert rows[current] == "ok", (out, rows)
    return out, current


def next_ops_work(p: Project) -> None:
    """The next deploy succeeds with no `fab unlock`, and a rollback goes to an ok release."""
    p.set_text("next")
    out = p.must(p.deploy())
    assert "took over" not in out, out
    assert p.get("/")[:2] == (200, "next")
    p.must(p.fab("rollback", "-H", "t"))
    assert statuses(p)[p.current()] == "ok", statuses(p)


@pytest.mark.parametrize("point", DEPLOY_POINTS)
def test_a_deploy_killed_at_a_stage_boundary_leaves_nothing_for_a_person(app: Project,
                                                                        point: str) -> None:
    p, before, serving = app, app.current(), app.get("/")[1]
    p.set_text(f"deploy {point}")
    out, current = killed_under_load(p, point, "deploy")
    # before the publish job started nothing moved; once it started, the server finished it
    published = point.startswith("job:") or point == "before:finishing"
    assert (current != before) == published, out
    assert p.get("/")[:2] == (200, f"deploy {point}" if published else serving)
    next_ops_work(p)


@pytest.mark.parametrize("point", ROLLBACK_POINTS)
def test_a_rollback_killed_at_a_stage_boundary_leaves_nothing_for_a_person(app: Project,
                                                                          point: str) -> None:
    p = app
    p.set_text(f"rollback {point}")
    p.must(p.deploy())
    before = p.current()
    out, current = killed_under_load(p, point, "rollback")
    assert (current != before) == (point != "before:publishing"), out
    next_ops_work(p)


def test_a_killed_clients_publish_is_logged_by_the_server(app: Project) -> None:
    p = app
    p.set_text("logged by the server")
    killed_at(p, "job:start", "deploy")
    settled(p)
    last = p.remote(f"tail -n1 {p.deploy_to}/deploys.log")
    assert '"finished_by": "server (its client was gone)"' in last, last
    assert '"result": "ok"' in last and p.current() in last, last


def test_ctrl_c_during_the_publish_says_the_server_finishes_it(app: Project) -> None:
    p = app
    p.set_text("after ctrl-c")
    env = {**os.environ, "WSGISHIP_HOSTS": str(p.hosts_file), "WSGISHIP_TEST_PAUSE": "job:start"}
    proc = subprocess.Popen([FAB, "deploy", "-H", "t"], cwd=ROOT, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    lines = []
    for line in proc.stdout:  # type: ignore[union-attr]
        lines.append(line)
        if "test pause" in line:
            proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=30) != 0
    out = "".join(lines)
    assert "interrupted while the server publishes" in out and "Traceback" not in out, out
    settled(p)
    assert p.get("/")[:2] == (200, "after ctrl-c")
    assert statuses(p)[p.current()] == "ok"
