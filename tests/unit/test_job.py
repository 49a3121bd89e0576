"""wsgiship.commands.job: the publish job's runner, run for real here (python, bash) on a deploy
tree in tmp_path, with steps that are small bash scripts; and `launch`, which starts it detached
under the lock, followed as the client follows it (`follow`: tail of its log until it ends).

The lock is a dir with a holder naming its token and its client's keeper ("PID START"): this test
process when the client is alive, a process that has exited when it is gone."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fakes import paths, run_script
from procs import dead_ident, ident

from wsgiship.commands import job as jobs

R1 = "20250101T000001Z-0000001"
RECORD = {result: {"action": "deploy", "release": "r2", "result": "failed" if result != "ok"
                   else "ok"} for result in ("ok", "failed", "back", "back_failed")}
RECORD["back"] = {**RECORD["back"], "rolled_back_to": R1}


ALIVE = "alive"   # the keeper: this process
TOKEN, OTHER = "4f1c9e2a7b3d5e60", "9a8b7c6d5e4f3a21"  # as secrets.token_hex(8) makes them


def lock(deploy: Path, keeper: str = ALIVE, token: str = TOKEN) -> Path:
    """The lock as prepare leaves it, held by `token`; its keeper alive, or gone ("dead")."""
    d = deploy / ".lock"
    d.mkdir()
    who = ident(os.getpid()) if keeper == ALIVE else dead_ident()
    (d / "holder").write_text(json.dumps({"token": token, "keeper": who}) + "\n")
    (d / "job").write_text("1 0\n")  # as launch writes it
    return d


def step(name: str, body: str, **kw: object) -> jobs.JobStep:
    return jobs.JobStep(name, f"{name}-what", body, **kw)  # type: ignore[arg-type]


def run(deploy: Path, job: jobs.Job, **spec: object) -> list[dict[str, object]]:
    """Run the job's runner to its end; its events, without their times."""
    path = deploy / "spec.json"
    path.write_text(jobs.spec(job, paths(deploy), TOKEN, **spec))  # type: ignore[arg-type]
    res = subprocess.run([sys.executable, "-c", jobs.RUNNER, str(path)], cwd=deploy,
                         capture_output=True, text=True, timeout=30)
    assert res.returncode == 0 and res.stderr == "", res.stderr
    return [{k: v for k, v in json.loads(x).items() if k != "took"} for x in res.stdout.splitlines()]


def names(events: list[dict[str, object]]) -> list[str]:
    """The events in short: `state step`, or the pause, back and result events as `key value`."""
    out = []
    for e in events:
        key = next((k for k in ("pause", "back", "result") if k in e), "")
        out.append(f"{key} {e[key]}" if key else f"{e['state']} {e['step']}")
    return out


def touch(deploy: Path, name: str) -> str:
    return f'echo "${{WSGISHIP_REASON-}}" > {deploy}/ran-{name}'


def ran(deploy: Path) -> dict[str, str]:
    """The steps made with `touch` that ran, and the WSGISHIP_REASON each saw."""
    return {p.name[4:]: p.read_text().strip() for p in deploy.glob("ran-*")}


def full_job(deploy: Path, forward: list[jobs.JobStep], back: bool = True) -> jobs.Job:
    return jobs.Job(forward=forward, ok=[step("mark", touch(deploy, "ok"))],
                    failed=[step("applog", "echo app log line", optional=True, show=True),
                            step("mark", touch(deploy, "failed"))],
                    back=[step("switch", touch(deploy, "back"))] if back else [],
                    back_to=R1 if back else "")


# --- the steps ---


def test_a_job_whose_steps_pass_runs_them_then_its_ok_steps(deploy: Path) -> None:
    held = lock(deploy)
    events = run(deploy, full_job(deploy, [step("a", touch(deploy, "a")),
                                           step("b", "echo status=200", show=True)]))
    assert names(events) == ["start a", "ok a", "start b", "ok b", "start mark", "ok mark",
                             "result ok"]
    assert events[3] == {"step": "b", "state": "ok", "facts": {"status": "200"},
                         "output": "status=200"}                     # shown
    assert events[1]["output"] == ""                                 # not shown
    assert events[-1] == {"result": "ok", "reason": "", "output": "", "log": "", "back_reason": ""}
    assert ran(deploy) == {"a": "", "ok": ""}  # neither the failed steps nor the way back
    assert not (held / "job").exists() and (held / "holder").exists()


def test_a_failing_step_ends_the_steps_and_the_job_goes_back(deploy: Path) -> None:
    lock(deploy)
    bad = step("b", "echo out; echo reason=it broke; echo err >&2; exit 3")
    events = run(deploy, full_job(deploy, [step("a", touch(deploy, "a")), bad,
                                           step("c", touch(deploy, "c"))]))
    assert names(events) == ["start a", "ok a", "start b", "failed b", "start applog",
                             "ok applog", "start mark", "ok mark", f"back {R1}", "start switch",
                             "ok switch", "result back"]
    output = "out\nreason=it broke\n\nerr"  # stdout, then stderr (as Result.output joins them)
    assert events[3] == {"step": "b", "state": "failed", "code": 3, "what": "b-what",
                         "output": output, "facts": {"reason": "it broke"}, "reason": "it broke"}
    assert events[-1] == {"result": "back", "reason": "it broke", "back_reason": "",
                          "output": output, "log": "app log line"}
    # the failed steps see the reason; the way back does not
    assert ran(deploy) == {"a": "", "failed": "it broke", "back": ""}


@pytest.mark.parametrize("back_body, result, back_reason", [
    ("exit 1", "back_failed", "switch-what failed (exit 1)"),
    ("echo reason=no way; exit 2", "back_failed", "no way"),
    (None, "failed", ""),                                    # nothing to go back to
])
def test_the_way_back_fails_or_there_is_none(deploy: Path, back_body: str | None, result: str,
                                             back_reason: str) -> None:
    lock(deploy)
    job = full_job(deploy, [step("a", "exit 4")], back=back_body is not None)
    if back_body is not None:
        job.back.insert(0, step("switch", back_body))
    events = run(deploy, job)
    assert ("back " + R1 in names(events)) == (back_body is not None)
    assert events[-1] == {"result": result, "reason": "a-what failed (exit 4)", "output": "",
                          "log": "app log line", "back_reason": back_reason}
    assert "back" not in ran(deploy)  # a failed step of the way back ends it too


SLOTS = ("start", "check", "switch", "health", "retire")  # a blue/green publish's steps


def slots_job(deploy: Path, fail_at: str, unswitched: bool = True, back: bool = True,
              way_back: str = "true") -> jobs.Job:
    """A publish whose step `fail_at` fails; the way back and the unswitched way (stop the new
    uWSGI, its body `way_back`) note that they ran."""
    return jobs.Job(
        forward=[step(n, touch(deploy, n) + ("; exit 3" if n == fail_at else ""))
                 for n in SLOTS],
        failed=[step("mark", touch(deploy, "failed"))],
        back=[step("switch", touch(deploy, "back"))] if back else [],
        back_to=R1 if back else "",
        unswitched=[step("retire", f"{touch(deploy, 'unswitched')}; {way_back}")]
        if unswitched else [])


@pytest.mark.parametrize("fail_at, unswitched, back, way", [
    ("start", True, True, "unswitched"),
    ("check", True, True, "unswitched"),
    ("switch", True, True, "back"),        # a switch that began may have moved a link
    ("health", True, True, "back"),        # nginx sent the new release requests already
    ("retire", True, True, "back"),
    ("check", False, True, "back"),        # no shortcut (a release live already): the whole way
    ("check", True, False, ""),            # nothing to go back to: the failed steps stop it
])
def test_the_way_back_depends_on_whether_the_switch_passed(
        deploy: Path, fail_at: str, unswitched: bool, back: bool, way: str) -> None:
    lock(deploy)
    events = run(deploy, slots_job(deploy, fail_at, unswitched, back))
    reached = SLOTS[:SLOTS.index(fail_at) + 1]
    after = {"unswitched": [f"back {R1}", "start retire", "ok retire"],
             "back": [f"back {R1}", "start switch", "ok switch"], "": []}[way]
    assert names(events) == [*(f"{e} {n}" for n in reached[:-1] for e in ("start", "ok")),
                             f"start {fail_at}", f"failed {fail_at}", "start mark", "ok mark",
                             *after, f"result {'back' if way else 'failed'}"]
    reason = f"{fail_at}-what failed (exit 3)"
    # the unswitched way is instead of the way back, never both
    assert ran(deploy) == {**{n: "" for n in reached}, "failed": reason,
                           **({way: ""} if way else {})}
    assert events[-1]["reason"] == reason and events[-1]["back_reason"] == ""
    # the back event names the way taken (the client words its line by it)
    assert [e["way"] for e in events if "back" in e] == ([way] if way else [])


def test_an_unswitched_way_that_fails_is_a_failed_way_back(deploy: Path) -> None:
    lock(deploy, keeper="dead")
    job = slots_job(deploy, "check", way_back="echo reason=still running; exit 1")
    events = run(deploy, job, record=RECORD, elapsed=1.0)
    assert names(events)[-4:] == [f"back {R1}", "start retire", "failed retire",
                                  "result back_failed"]
    assert events[-1]["back_reason"] == "still running"
    assert "back" not in ran(deploy)  # not the whole way back after it either
    [entry] = logged(deploy)  # its client gone: the job says so in the log
    assert (entry["result"], entry["reason"]) == (
        "failed", "check-what failed (exit 3); the way back failed too: still running")


def test_facts_of_a_step_reach_the_later_steps_of_its_phase(deploy: Path) -> None:
    lock(deploy)
    show = 'echo "${WSGISHIP_UNIT-unset} ${WSGISHIP_SITE-unset} ${WSGISHIP_REASON-unset}"'
    job = jobs.Job(
        forward=[step("install", "echo unit=installed; echo site=installed; echo not a fact;"
                                 " echo 'x-y=1'"),
                 step("uwsgi", f"{show} > {deploy}/uwsgi"),
                 step("nginx", "echo site=unchanged"),
                 step("health", f"{show} > {deploy}/health; exit 1")],
        failed=[step("mark", f"{show} > {deploy}/mark")],
        back=[step("switch", f"{show} > {deploy}/back")], back_to=R1)
    events = run(deploy, job)
    assert events[1]["facts"] == {"unit": "installed", "site": "installed"}
    assert (deploy / "uwsgi").read_text() == "installed installed unset\n"
    assert (deploy / "health").read_text() == "installed unchanged unset\n"  # the latest fact
    # each phase starts afresh: the failed steps know the reason, the way back nothing
    assert (deploy / "mark").read_text() == "unset unset health-what failed (exit 1)\n"
    assert (deploy / "back").read_text() == "unset unset unset\n"


def test_an_optional_step_that_fails_does_not_stop_the_others(deploy: Path) -> None:
    lock(deploy)
    job = jobs.Job(forward=[step("a", "echo oops >&2; exit 5", optional=True, show=True),
                            step("b", touch(deploy, "b"))],
                   failed=[step("mark", touch(deploy, "failed"))])
    events = run(deploy, job)
    assert names(events) == ["start a", "ok a", "start b", "ok b", "result ok"]
    assert events[1]["output"] == "oops"
    assert ran(deploy) == {"b": ""}


def test_a_step_that_outlives_its_timeout_fails_with_124(deploy: Path) -> None:
    lock(deploy)
    t0 = time.monotonic()
    events = run(deploy, jobs.Job(forward=[step("health", "sleep 20", timeout=1)]))
    assert time.monotonic() - t0 < 10
    assert events[1] == {"step": "health", "state": "failed", "code": 124, "facts": {},
                         "output": "timed out after 1s", "what": "health-what",
                         "reason": "health-what failed (exit 124)"}
    assert events[-1]["result"] == "failed"


# --- the end: a client gone leaves the record and the lock to the job ---


def logged(deploy: Path) -> list[dict[str, object]]:
    log = deploy / "deploys.log"
    return [json.loads(x) for x in log.read_text().splitlines()] if log.exists() else []


@pytest.mark.parametrize("forward, back, result, reason", [
    ("true", "true", "ok", None),
    ("echo reason=boom; exit 1", "true", "back", "boom"),
    ("echo reason=boom; exit 1", "exit 7", "back_failed",
     "boom; the way back failed too: switch-what failed (exit 7)"),
    ("echo reason=boom; exit 1", None, "failed", "boom"),
])
def test_a_job_whose_client_is_gone_records_it_and_unlocks(
        deploy: Path, forward: str, back: str | None, result: str, reason: str | None) -> None:
    lock(deploy, keeper="dead")
    job = jobs.Job(forward=[step("health", forward)],
                   back=[step("switch", back)] if back else [], back_to=R1 if back else "")
    events = run(deploy, job, record=RECORD, elapsed=12.5)
    assert events[-1]["result"] == result
    [entry] = logged(deploy)
    duration = entry.pop("duration")
    assert isinstance(duration, float) and 12.5 <= duration < 12.5 + 10
    expected = {**RECORD[result], "finished_by": "server (its client was gone)"}
    assert entry == (expected if reason is None else {**expected, "reason": reason})
    assert not (deploy / ".lock").exists()


def test_a_job_whose_client_lives_leaves_both_to_it(deploy: Path) -> None:
    held = lock(deploy)
    assert run(deploy, jobs.Job([step("a", "true")]), record=RECORD)[-1]["result"] == "ok"
    assert logged(deploy) == []
    assert (held / "holder").exists() and not (held / "job").exists()


def test_a_client_that_said_it_is_gone_is_gone(deploy: Path) -> None:
    # the keeper lives, but its channel closed while the job ran (it touched client-gone)
    held = lock(deploy)
    (held / "client-gone").touch()
    run(deploy, jobs.Job([step("a", "true")]), record=RECORD)
    assert [e["result"] for e in logged(deploy)] == ["ok"]
    assert not held.exists()


def test_a_lock_taken_over_meanwhile_is_not_removed(deploy: Path) -> None:
    held = lock(deploy, keeper="dead", token=OTHER)
    run(deploy, jobs.Job([step("a", "true")]))  # no record given: none written
    assert logged(deploy) == []
    assert json.loads((held / "holder").read_text())["token"] == OTHER
    assert not (held / "job").exists()


def test_the_pause_point_waits_until_the_client_is_gone(deploy: Path) -> None:
    held = lock(deploy)
    path = deploy / "spec.json"
    path.write_text(jobs.spec(jobs.Job([step("a", "true"), step("b", touch(deploy, "b"))]),
                              paths(deploy), TOKEN, pause="a"))
    proc = subprocess.Popen([sys.executable, "-c", jobs.RUNNER, str(path)], cwd=deploy,
                            stdout=subprocess.PIPE, text=True)
    time.sleep(0.8)
    assert proc.poll() is None and ran(deploy) == {}  # paused after a: b has not run
    t0 = time.monotonic()
    (held / "client-gone").touch()
    out, _ = proc.communicate(timeout=10)
    assert time.monotonic() - t0 < 5
    assert names([json.loads(x) for x in out.splitlines()]) == [
        "start a", "ok a", "pause a", "start b", "ok b", "result ok"]
    assert ran(deploy) == {"b": ""}


# --- launch: detached, under the lock, followed ---


def launch(deploy: Path, job: jobs.Job) -> subprocess.CompletedProcess[str]:
    p = paths(deploy)
    return run_script(jobs.launch(p, "r2-deploy-tok", jobs.spec(job, p, TOKEN), TOKEN))


def test_launch_starts_the_job_detached_and_follow_shows_it(deploy: Path) -> None:
    held = lock(deploy)
    res = launch(deploy, jobs.Job([step("a", f"sleep 0.5; {touch(deploy, 'a')}"),
                                   step("b", "echo status=200")]))
    assert res.returncode == 0, res.stderr
    pid = int(res.stdout.removeprefix("job="))
    assert (held / "job").read_text() == ident(pid) + "\n"  # while it runs
    assert os.getsid(pid) == pid  # its own session: off the SSH channel's
    follow = subprocess.run(["bash", "-c", jobs.follow(paths(deploy), "r2-deploy-tok", pid)],
                            capture_output=True, text=True, timeout=10)
    events = [json.loads(x) for x in follow.stdout.splitlines()]
    assert names(events) == ["start a", "ok a", "start b", "ok b", "result ok"]
    assert events[3]["facts"] == {"status": "200"}
    assert ran(deploy) == {"a": ""} and not (held / "job").exists()
    d = deploy / ".jobs"
    assert sorted(x.name for x in d.iterdir()) == ["r2-deploy-tok.json", "r2-deploy-tok.log"]
    assert all(x.stat().st_mode & 0o077 == 0 for x in d.iterdir())  # the spec and log are private


def test_launch_refuses_a_lock_it_does_not_hold(deploy: Path) -> None:
    held = lock(deploy, token=OTHER)
    res = launch(deploy, jobs.Job([step("a", touch(deploy, "a"))]))
    assert res.returncode == 1
    assert res.stderr.strip() == "the lock is not held by this deploy any more"
    assert not (deploy / ".jobs").exists() and (held / "job").read_text() == "1 0\n"
    time.sleep(0.3)
    assert ran(deploy) == {}


def test_launch_keeps_the_last_jobs_files(deploy: Path) -> None:
    lock(deploy)
    d = deploy / ".jobs"
    d.mkdir()
    for i in range(50):  # 25 old jobs, the newest last
        (d / f"old-{i:02d}").touch()
        os.utime(d / f"old-{i:02d}", (1_000_000 + i, 1_000_000 + i))
    res = launch(deploy, jobs.Job([step("a", "true")]))
    assert res.returncode == 0, res.stderr
    kept = sorted(x.name for x in d.iterdir())
    assert kept == [f"old-{i:02d}" for i in range(10, 50)] + [
        "r2-deploy-tok.json", "r2-deploy-tok.log"]
    pid = int(res.stdout.removeprefix("job="))
    deadline = time.monotonic() + 10
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
