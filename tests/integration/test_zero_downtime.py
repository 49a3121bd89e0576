"""Deploy and rollback under a steady HTTP load through nginx (8 connections): no failed request.

Every deploy starts the new release in its own uWSGI beside the live one, checks it there and
only then moves nginx to it, so neither a code change, a new venv, a rollback nor a release
that answers 500 may cost a user request. Counts are asserted here; latencies are the bench's.
"""

from __future__ import annotations

import re
import time

from test_crash import app_returning

from bench.loadgen import Load

CONNECTIONS = 8


def under_load(p, *args: str):
    """Run fab under load; (its result, the load's result, when fab returned)."""
    with Load(p.http_port, connections=CONNECTIONS, max_seconds=90,
              max_requests=300_000) as load:
        time.sleep(1)
        res = p.fab(*args, "-H", "t")
        t1 = time.monotonic()
        time.sleep(1)
    return res, load.result, t1


def slots_running(p) -> list[str]:
    out = p.remote(f"systemctl list-units --no-legend --state=active 'wsgiship-{p.name}@*'",
                   check=False)
    return sorted(re.findall(rf"wsgiship-{p.name}@([ab])\.service", out))


def test_code_only_deploy_and_rollback_under_load(project):
    p = project(processes=2)
    p.set_text("before")
    p.must(p.deploy())
    before = p.current()
    p.set_text("after")
    res, result, t1 = under_load(p, "deploy")
    out = p.must(res)
    assert re.search(r"start\s+[\d.]+s\s+slot [ab] started, 2 workers", out), out
    assert re.search(r"check\s+[\d.]+s\s+/ -> 200", out), out
    assert not result.failed, [s.body for s in result.failed[:5]]
    assert result.bodies()[:2] == ["before", "after"], result.bodies()
    # once the deploy said done, every answer is the new release
    assert {s.body for s in result.samples if s.start > t1} == {"after"}

    res, result, t1 = under_load(p, "rollback")
    p.must(res)
    assert p.current() == before
    assert not result.failed, [s.body for s in result.failed[:5]]
    assert {s.body for s in result.samples if s.start > t1} == {"before"}
    time.sleep(2)  # the old uWSGI stops in the background: then one instance is left
    assert len(slots_running(p)) == 1


def test_requirements_change_under_load(project):
    p = project(processes=2)
    p.must(p.deploy())
    (p.app_dir / "requirements.txt").write_text("flask==3.1.3\nsix==1.16.0\n")
    p.set_text("new venv")
    res, result, t1 = under_load(p, "deploy")
    out = p.must(res)
    assert "created venvs/" in out, out
    assert not result.failed, [s.body for s in result.failed[:5]]
    assert {s.body for s in result.samples if s.start > t1} == {"new venv"}


def test_a_release_answering_500_never_serves_a_request(project):
    p = project(processes=2, health={"path": "/", "status": 200, "timeout": 10})
    p.set_text("good")
    p.must(p.deploy())
    good = p.current()
    hello = p.app_dir / "hello.py"
    src = hello.read_text()
    hello.write_text(app_returning('return "broken", 500'))
    try:
        res, result, _ = under_load(p, "deploy")
    finally:
        hello.write_text(src)
    assert res.returncode != 0
    assert "answered 500" in res.stderr and "before the switch" in res.stderr, res.stderr
    assert "never served a request" in res.stdout, res.stdout
    # the load generator never saw the broken release: no 500, no error, only "good"
    assert not result.failed, [s.body for s in result.failed[:5]]
    assert {s.body for s in result.samples} == {"good"}
    assert p.current() == good
    time.sleep(2)
    assert len(slots_running(p)) == 1
