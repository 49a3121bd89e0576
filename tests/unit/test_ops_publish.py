"""wsgiship.ops.publish: the publish job as the client builds it (publish_job), and recovering:
what a client that died left (pending releases), resolved by the next deploy or rollback under
the lock.

The session is a real Session over a real Remote (never connected) whose SSH `run` runs the
scripts here, on a deploy tree in tmp_path: a mark_failed really marks the release, read_state
reads that tree, and `record` appends to its deploys.log. The job itself (SSH, services, nginx)
is not run: `run_job` is replaced by a recorder that answers the Outcome a test says, running
the job's own mark steps here as the server would (how the job runs is test_job.py's)."""

from __future__ import annotations

import io
import json
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from fabric import Config
from fakes import HOSTILE, add_release, local_runs, run_script

from wsgiship import output
from wsgiship.commands import job as jobs
from wsgiship.commands import services
from wsgiship.config import App, Host
from wsgiship.errors import RemoteError
from wsgiship.ops import publish
from wsgiship.ops.session import Session
from wsgiship.remote import Remote

R1, R2, R3, R4 = (f"20250101T00000{i}Z-{i:07x}" for i in range(1, 5))
ABANDONED = "abandoned: its deploy never finished"
FORWARD = ["start", "check", "switch", "install", "nginx", "health", "retire"]


def local_session(app: App, monkeypatch: pytest.MonkeyPatch, facts: dict[str, str] | None = None,
                  password: str | None = None) -> Session:
    """A Session as user deploy whose scripts run here; `remote.whats` lists what each run did,
    `out.printer.out` holds its lines."""
    config = Config(overrides={"sudo": {"password": password}}) if password else None
    remote = Remote(Host("web1", "192.0.2.1", app, user="deploy"), config)
    local_runs(remote, monkeypatch, run_script)
    whats: list[str] = []
    real = remote.run

    def run(body: str, **kwargs: object) -> object:
        whats.append(str(kwargs.get("what", "")))
        return real(body, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(remote, "run", run)
    remote.whats = whats  # type: ignore[attr-defined]
    out = output.Reporter("web1", output.Printer(io.BytesIO(), io.BytesIO()), live=False)
    return Session(remote=remote, app=app, out=out, action="deploy", facts=facts or {})


def lines(s: Session) -> list[str]:
    return s.out.printer.out.getvalue().decode().splitlines()  # type: ignore[attr-defined]


def logged(deploy: Path) -> list[dict[str, object]]:
    log = deploy / "deploys.log"
    return [json.loads(x) for x in log.read_text().splitlines()] if log.exists() else []


@dataclass
class Jobs:
    """The jobs run_job was given, in order, and how each ends: release -> Outcome (else ok).
    Like the server, it runs the job's mark steps here (ok steps, or failed steps with the
    outcome's reason as WSGISHIP_REASON)."""

    runs: list[tuple[str, jobs.Job, str, dict[str, dict] | None]] = field(default_factory=list)
    outcomes: dict[str, publish.Outcome] = field(default_factory=dict)

    def run_job(self, s: Session, job: jobs.Job, release: str, back_line: str = "",
                record: dict[str, dict] | None = None) -> publish.Outcome:
        self.runs.append((release, job, back_line, record))
        done = self.outcomes.get(release, publish.Outcome("ok"))
        steps = job.ok if done.result == "ok" else job.failed
        for step in (x for x in steps if x.name == "mark"):
            res = run_script(step.body, env={"WSGISHIP_REASON": done.reason})
            assert res.returncode == 0, res.stderr
        return done


@pytest.fixture
def ran(monkeypatch: pytest.MonkeyPatch) -> Jobs:
    j = Jobs()
    monkeypatch.setattr(publish, "run_job", j.run_job)
    return j


def good(deploy: Path, name: str) -> Path:
    """A release that passed its check: no PENDING, a venv with a python."""
    r = add_release(deploy, name, venv_key=name)
    (r / ".venv" / "bin").mkdir()
    (r / ".venv" / "bin" / "python").symlink_to(sys.executable)
    return r


def pending(deploy: Path, name: str) -> Path:
    """A release whose deploy never got through its health check."""
    r = good(deploy, name)
    (r / "PENDING").touch()
    return r


def failed_mark(deploy: Path, name: str) -> str | None:
    path = deploy / "releases" / name / "FAILED"
    return path.read_text() if path.exists() else None


def is_pending(deploy: Path, name: str) -> bool:
    return (deploy / "releases" / name / "PENDING").exists()


@pytest.fixture
def session(deploy: Path, make_app: Callable[..., App],
            monkeypatch: pytest.MonkeyPatch) -> Callable[..., Session]:
    """A session on `deploy` whose prepare said `current` (a release name) and `pending`."""

    def make(current: str, pending_text: str | None) -> Session:
        facts = {"current": f"releases/{current}" if current else ""}
        if current:
            (deploy / "current").symlink_to(f"releases/{current}")
        if pending_text is not None:
            facts["pending"] = pending_text
        return local_session(make_app(deploy_to=str(deploy)), monkeypatch, facts)

    return make


def publishes(job: jobs.Job) -> tuple[str, str]:
    """The release the job switches to, and the one its way back switches to ("" if none):
    the release its start step runs in a slot is the one its switch step makes current."""
    def target(steps: list[jobs.JobStep]) -> str:
        if not steps:
            return ""
        start, switch = (next(x for x in steps if x.name == n) for n in ("start", "switch"))
        [slot] = re.findall(r"ln -sfn '?\.\./releases/([^' ]+)", start.body)
        [current] = re.findall(r"ln -sfn '?releases/([^' ]+)", switch.body)
        assert slot == current
        return current
    return target(job.forward), target(job.back)


# --- recovering: nothing to resolve ---


@pytest.mark.parametrize("current, pending_text", [
    (R2, ""),
    (R2, None),       # no pending fact at all
    (R2, "  "),
    ("", ""),         # nothing deployed
])
def test_nothing_pending_runs_nothing(deploy: Path, session, ran: Jobs, current: str,
                                      pending_text: str | None) -> None:
    good(deploy, R1)
    good(deploy, R2)
    s = session(current, pending_text)
    assert publish.recovering(s) == current
    assert s.remote.whats == [] and ran.runs == []
    assert lines(s) == [] and logged(deploy) == []


@pytest.mark.parametrize("current, pending_names", [
    (R2, [R3]),            # unpacked, never switched to
    (R2, [R1, R3, R4]),    # several, older and newer than current
    ("", [R1]),            # a first deploy that died before its switch
])
def test_pending_releases_not_current_are_marked_abandoned(
        deploy: Path, session, ran: Jobs, current: str, pending_names: list[str]) -> None:
    for name in (R1, R2, R3, R4):
        (pending if name in pending_names else good)(deploy, name)
    s = session(current, "".join(f"{n} " for n in pending_names))
    assert publish.recovering(s) == current
    for name in (R1, R2, R3, R4):
        assert failed_mark(deploy, name) == (ABANDONED + "\n" if name in pending_names
                                             else None), name
    assert s.remote.whats == ["mark an abandoned release failed"] * len(pending_names)
    assert ran.runs == [] and logged(deploy) == [] and lines(s) == []


# --- recovering: current is pending, published and verified now by one job ---


def test_a_pending_current_that_passes_is_marked_ok(deploy: Path, session, ran: Jobs) -> None:
    good(deploy, R1)
    pending(deploy, R2)    # another abandoned one, newer than the good one
    pending(deploy, R3)
    s = session(R3, f"{R2} {R3} ")
    assert publish.recovering(s) == R3
    assert lines(s) == [f"[web1] release {R3} is current but was never verified (its deploy "
                        f"died): verifying it now"]
    # one job: R3 published, with the newest good release as the way back (R2 is no candidate)
    [(release, job, back_line, record)] = ran.runs
    assert release == R3 and publishes(job) == (R3, R1) and job.back_to == R1
    assert [x.name for x in job.ok] == ["mark"] and [x.name for x in job.failed] == [
        "applog", "mark"]
    # R3 is live already: a failure before the switch goes the whole way back too
    assert job.unswitched == []
    assert back_line.format(reason="boom") == f"release {R3} failed its check (boom); back to {R1}"
    assert record == s.entries(R3, R1, recovered=True)  # for the job, should this client die
    assert record is not None and record["back"]["rolled_back_to"] == R1
    assert {k: (v["release"], v["result"], v["recovered"]) for k, v in record.items()} == {
        "ok": (R3, "ok", True), "failed": (R3, "failed", True), "back": (R3, "failed", True),
        "back_failed": (R3, "failed", True)}
    assert failed_mark(deploy, R2) == ABANDONED + "\n"
    assert not is_pending(deploy, R3) and failed_mark(deploy, R3) is None   # the job marked ok
    [entry] = logged(deploy)
    assert (entry["release"], entry["result"], entry["recovered"]) == (R3, "ok", True)
    assert s.remote.whats == ["mark an abandoned release failed", "read releases", "deploy log"]


def test_a_pending_first_release_that_passes(deploy: Path, session, ran: Jobs) -> None:
    # the very first deploy died after its switch: nothing to leave, nothing to go back to
    pending(deploy, R1)
    s = session(R1, f"{R1} ")
    assert publish.recovering(s) == R1
    [(release, job, _, _)] = ran.runs
    assert publishes(job) == (R1, "") and job.back == [] and job.back_to == ""
    # nothing to go back to: a failure stops its uWSGI, whichever slot it is in
    assert [x.name for x in job.failed] == ["applog", "retire", "mark"]
    assert job.unswitched == []
    assert not is_pending(deploy, R1)
    assert [(e["release"], e["result"]) for e in logged(deploy)] == [(R1, "ok")]


HEALTH = RemoteError("health check failed: GET http://localhost:80/ answered 500, expected 200",
                     "--- response ---\nboom", host="web1")
START = RemoteError("start uWSGI failed (exit 1)", "uWSGI of slot b exited", host="web1")


@pytest.mark.parametrize("error", [HEALTH, START], ids=["health", "start"])
def test_a_pending_current_that_fails_goes_back_to_the_newest_good_release(
        deploy: Path, session, ran: Jobs, error: RemoteError) -> None:
    good(deploy, R1)
    good(deploy, R2)
    pending(deploy, R3)
    s = session(R3, f"{R3} ")
    ran.outcomes[R3] = publish.Outcome("back", error.reason, error)
    assert publish.recovering(s) == R2
    [(_, job, _, _)] = ran.runs
    assert publishes(job) == (R3, R2)
    # the way back publishes R2 as any release is published; R3 served: the whole way back
    assert [x.name for x in job.back] == FORWARD and job.unswitched == []
    assert failed_mark(deploy, R3) == f"unverified, then {error.reason}\n"
    [entry] = logged(deploy)
    assert (entry["release"], entry["result"], entry["reason"], entry["rolled_back_to"]) == (
        R3, "failed", error.reason, R2)
    assert failed_mark(deploy, R2) is None and failed_mark(deploy, R1) is None


@pytest.mark.parametrize("result", ["failed", "back_failed"])
def test_a_pending_current_that_fails_without_a_way_back_raises(deploy: Path, session, ran: Jobs,
                                                               result: str) -> None:
    if result == "failed":   # no good release: nothing to go back to
        add_release(deploy, R1, failed=True)
    else:                    # a good one, but going back to it failed too
        good(deploy, R1)
    pending(deploy, R2)
    pending(deploy, R3)
    s = session(R3, f"{R2} {R3} ")
    ran.outcomes[R3] = publish.Outcome(result, HEALTH.reason, HEALTH)
    with pytest.raises(RemoteError) as info:
        publish.recovering(s)
    assert info.value is HEALTH  # the job's own error, as it was
    assert publishes(ran.runs[0][1]) == ((R3, "") if result == "failed" else (R3, R1))
    assert failed_mark(deploy, R2) == ABANDONED + "\n"
    assert failed_mark(deploy, R3) == f"unverified, then {HEALTH.reason}\n"
    assert logged(deploy) == []  # the caller records the failed operation


# --- publish_job: the steps, in order ---


@pytest.fixture
def jsession(deploy: Path, make_app: Callable[..., App],
             monkeypatch: pytest.MonkeyPatch) -> Callable[..., Session]:
    def make(password: str | None = None, **settings: object) -> Session:
        app = make_app(deploy_to=str(deploy), **settings)
        return local_session(app, monkeypatch, password=password)
    return make


def test_publish_job_publishes_then_goes_back(jsession) -> None:
    s = jsession(health={"path": "/up", "timeout": 45})
    job = publish.publish_job(s, R2, R1)
    assert [x.name for x in job.forward] == FORWARD == [x.name for x in job.back]
    assert [x.what for x in job.forward] == [
        "start uWSGI", "check the new uWSGI", "switch current", "install the site",
        "reload nginx", "health check", "stop the old uWSGI"]
    assert publishes(job) == (R2, R1) and job.back_to == R1
    assert job.ok == [] and [x.name for x in job.failed] == ["applog"]  # not pending: no marks
    # root's steps carry $SUDO, the app's $AS_APP; only the checks' output is shown
    assert [x.body.startswith("SUDO=") for x in job.forward] == [
        True, False, False, True, True, False, True]
    assert ["AS_APP=" in x.body for x in job.forward] == [
        True, True, True, False, False, False, True]
    assert "AS_APP=" in job.failed[0].body
    assert [x.show for x in job.forward] == [False, True, False, False, False, True, False]
    start, check, switch, health = (job.forward[i] for i in (0, 1, 2, 5))
    assert start.timeout == 45 + 150
    # the new uWSGI is checked on its own socket, the slot its start step named
    assert check.timeout == 45 + 30 and "/up" in check.body and R2 in check.body
    assert '/uwsgi-$WSGISHIP_SLOT.sock"' in check.body
    assert "WSGISHIP_SLOT" in switch.body  # nginx's socket link goes to that slot
    assert health.timeout == 45 + 30 and "/up" in health.body and R2 in health.body
    assert (job.failed[0].optional, job.failed[0].show) == (True, True)
    assert s.remote.whats == []  # building it ran nothing


def keeps(retire: jobs.JobStep) -> str:
    """Which uWSGI a retire step's script leaves running: the live slot's (the one nginx's
    socket link names), or none."""
    assert retire.body.startswith("SUDO=") and "AS_APP=" in retire.body  # root's, and the app's
    first = next(x for x in retire.body.splitlines() if x.startswith("live="))
    return "none" if first == "live=''" else "live" if "readlink" in first else first


def test_publish_job_undoes_a_release_that_failed_before_the_switch_by_stopping_it(
        jsession) -> None:
    s = jsession()
    job = publish.publish_job(s, R2, R1, mark=True)
    # nginx still sends everything to R1's slot: stopping all but it stops R2's uWSGI only
    [retire] = job.unswitched
    assert (retire.name, retire.what, retire.optional) == ("retire", "stop the new uWSGI", False)
    assert keeps(retire) == keeps(job.forward[-1]) == "live"
    assert "retire" not in [x.name for x in job.failed]  # R1 keeps running: a way back
    # after the switch: the whole way back
    assert [x.name for x in job.back] == FORWARD and publishes(job) == (R2, R1)
    # a release that is live already (recovering) has no such shortcut
    whole = publish.publish_job(s, R2, R1, unswitched=False)
    assert whole.unswitched == [] and whole.back == job.back


@pytest.mark.parametrize("back", [True, False])
def test_a_first_deploy_that_fails_stops_every_uwsgi(jsession, back: bool) -> None:
    # nothing to go back to: whatever slot its uWSGI is in, it stops (killed: it failed)
    s = jsession()
    job = publish.publish_job(s, R2, "", mark=True, back=back)
    assert job.back == [] and job.back_to == ""
    assert [x.name for x in job.failed] == ["applog", "retire", "mark"]
    retire = job.failed[1]
    assert (retire.what, retire.optional) == ("stop the new uWSGI", True)
    assert keeps(retire) == "none" and keeps(job.forward[-1]) == "live"
    assert retire.body.endswith(services.retire(s.paths, keep_live=False, kill=True))


def test_a_publish_with_a_previous_release_but_no_way_back_stops_nothing_when_it_fails(
        jsession) -> None:
    # (after an after_switch hook failed, the deploy publishes the previous release again
    # without a way back: should that fail, the release it came from goes on serving)
    s = jsession()
    job = publish.publish_job(s, R1, R2, back=False, leaving_failed=True)
    assert job.back == [] and job.back_to == ""
    assert [x.name for x in job.failed] == ["applog"]


@pytest.mark.parametrize("why", ["", "unverified, then ", HOSTILE])
def test_publish_job_marks_a_pending_release(deploy: Path, jsession, why: str) -> None:
    s = jsession()
    job = publish.publish_job(s, R2, R1, mark=True, why=why)
    [ok] = job.ok
    assert (ok.name, ok.what, ok.optional) == ("mark", "mark ok", False)
    assert [x.name for x in job.failed] == ["applog", "mark"]
    mark = job.failed[1]
    assert (mark.what, mark.optional) == ("mark failed", True)
    pending(deploy, R2)
    reason = "health check failed: GET / answered 500 $(touch pwned)"
    res = run_script(mark.body, cwd=deploy, env={"WSGISHIP_REASON": reason})
    assert res.returncode == 0, res.stderr
    assert failed_mark(deploy, R2) == why + reason + "\n" and not is_pending(deploy, R2)
    assert not (deploy / "pwned").exists()
    pending(deploy, R3)
    assert run_script(publish.publish_job(s, R3, R2, mark=True).ok[0].body).returncode == 0
    assert not is_pending(deploy, R3) and failed_mark(deploy, R3) is None


def test_a_job_run_as_root_runs_the_login_users_steps_as_it(jsession) -> None:
    # a sudo password: the job runs as root, nothing could answer sudo later
    s = jsession(password="secret")
    assert s.remote.jobs_as_root and s.remote.as_login == "runuser -u deploy --"
    job = publish.publish_job(s, R2, R1, mark=True)
    start, check, switch, install, nginx, health, retire = job.forward
    assert all(x.body.startswith("exec runuser -u deploy -- bash -c ") for x in (health, job.ok[0]))
    assert all(x.body.startswith("SUDO=''\n") for x in (start, install, nginx, retire))
    for x in (start, check, switch, retire, *job.unswitched):  # the app's: as the app, by runuser
        assert "AS_APP='runuser -u wsgiship-hello --'" in x.body, x.name
        assert "exec runuser -u deploy" not in x.body


def test_health_host_is_the_first_plain_server_name(make_app: Callable[..., App]) -> None:
    assert publish.health_host(make_app(server_name="shop.example.com www.example.com")) == (
        "shop.example.com")
    for name in ("_", "*.example.com"):
        assert publish.health_host(make_app(server_name=name)) == "localhost"

