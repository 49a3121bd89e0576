"""Deploy and rollback under a steady HTTP load through nginx: no failed request, no stall."""

from __future__ import annotations

import re
import time

from bench.loadgen import Load

# A code-only change is a chain reload: workers are replaced one at a time while the others
# keep answering, so no request should wait for an app to load.
MAX_LATENCY = 0.300


def test_code_only_deploy_and_rollback_under_load(project):
    p = project(processes=2)
    p.set_text("before")
    p.must(p.deploy())
    before = p.current()
    p.set_text("after")
    with Load(p.http_port, connections=4, max_seconds=40, max_requests=150_000) as load:
        time.sleep(1)
        t0 = time.monotonic()
        res = p.deploy()
        t1 = time.monotonic()
        time.sleep(1)
    out = p.must(res)
    assert re.search(r"uwsgi\s+[\d.]+s\s+chain, 2 workers on the release", out), out
    result = load.result
    assert not result.failed, [s.body for s in result.failed[:5]]
    assert result.bodies()[:2] == ["before", "after"], result.bodies()
    # once the deploy said done, every answer is the new release
    assert {s.body for s in result.samples if s.start > t1} == {"after"}
    assert result.max_latency(t0, t1) < MAX_LATENCY, result.summary(t0, t1)

    with Load(p.http_port, connections=4, max_seconds=40, max_requests=150_000) as load:
        time.sleep(1)
        t0 = time.monotonic()
        res = p.fab("rollback", "-H", "t")
        t1 = time.monotonic()
        time.sleep(1)
    p.must(res)
    assert p.current() == before
    result = load.result
    assert not result.failed, [s.body for s in result.failed[:5]]
    assert {s.body for s in result.samples if s.start > t1} == {"before"}
    assert result.max_latency(t0, t1) < MAX_LATENCY, result.summary(t0, t1)


def test_requirements_change_is_graceful_without_failures(project):
    p = project(processes=2)
    p.must(p.deploy())
    (p.app_dir / "requirements.txt").write_text("flask==3.1.3\nsix==1.16.0\n")
    p.set_text("new venv")
    with Load(p.http_port, connections=4, max_seconds=90, max_requests=300_000) as load:
        time.sleep(1)
        res = p.deploy()
        time.sleep(1)
    out = p.must(res)
    assert re.search(r"uwsgi\s+[\d.]+s\s+graceful", out), out
    assert not load.result.failed, [s.body for s in load.result.failed[:5]]
    assert load.result.bodies()[-1] == "new venv"
