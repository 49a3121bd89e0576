"""wsgiship.ops.publish: the publish job's steps for the watch after the switch (health.watch),
for a release that failed (its uWSGI killed, not waited for), and for a job run as root (the
switch made as the login user); how `_follow` and `outcome` read them. The job's steps are run
here where their behaviour is the point (the switch, with the fakes of fakes.py); the event
stream is fed as in test_ops_publish_follow.py."""

from __future__ import annotations

import io
import os
from collections.abc import Callable
from pathlib import Path

import pytest
from fabric import Config
from fakes import add_release, calls, fake_env, run_script
from test_ops_publish_follow import (
    APP_LOG,
    FakeStream,
    ev,
    failed_event,
    published,
    row,
    step,
)
from test_ops_publish_follow import streams as streams  # the fixture

from wsgiship import output
from wsgiship.commands import health, services
from wsgiship.config import App, Host
from wsgiship.errors import RemoteError, WsgishipError
from wsgiship.ops import publish
from wsgiship.ops.session import Session
from wsgiship.remote import Remote

R1, R2 = "20250101T000001Z-0000001", "20250101T000002Z-0000002"
FORWARD = ["start", "check", "switch", "install", "nginx", "health", "retire"]
WATCHED = [*FORWARD[:-1], "watch", "retire"]


@pytest.fixture
def session(deploy: Path, make_app: Callable[..., App]) -> Callable[..., Session]:
    """A session of login user deploy (the job run as root when a sudo password is given) for
    an app deployed to `deploy` that runs as web. Nothing connects."""

    def make(password: str | None = None, **health_settings: object) -> Session:
        app = make_app(deploy_to=str(deploy), app_user="web",
                       health={"path": "/up", **health_settings})
        config = Config(overrides={"sudo": {"password": password}}) if password else None
        remote = Remote(Host("web1", "192.0.2.1", app, user="deploy"), config)
        out = output.Reporter("web1", output.Printer(io.BytesIO(), io.BytesIO()), live=False)
        return Session(remote=remote, app=app, out=out, action="deploy", token="tok")
    return make


def names(steps: list) -> list[str]:
    return [x.name for x in steps]


# --- the watch step ---


def test_a_deploy_watches_the_new_release_before_the_old_uwsgi_stops(session) -> None:
    s = session(watch=120, max_5xx_percent=2.5)
    p = s.paths
    job = publish.publish_job(s, R2, R1, mark=True, watch=True)
    assert names(job.forward) == WATCHED
    watch = job.forward[-2]
    assert (watch.what, watch.timeout, watch.show, watch.optional) == (
        "watch the new release", 180, False, False)
    # root's part (the manager's pid of the new slot), the app's (its log)
    assert watch.body.startswith("SUDO=") and "AS_APP='sudo -n -u web --'" in watch.body
    assert watch.body.endswith(health.watch(p, R2, services.slot_pid(p), 120, 2.5))
    # the way back is not watched: it publishes the release that served before
    assert names(job.back) == FORWARD and names(job.unswitched) == ["retire"]


@pytest.mark.parametrize("seconds, watch", [(0, True), (120, False)])
def test_no_watch_step_without_a_window_or_outside_a_deploy(session, seconds: int,
                                                            watch: bool) -> None:
    # health.watch 0 (the default); a rollback or a recovering publish does not watch
    job = publish.publish_job(session(watch=seconds), R2, R1, watch=watch)
    assert names(job.forward) == FORWARD == names(job.back)


# --- a failed release's uWSGI: killed, not waited for ---


def retire_of(s: Session, steps: list) -> str:
    [retire] = [x for x in steps if x.name == "retire"]
    return retire.body


def test_the_uwsgi_of_a_failed_release_is_killed_on_the_way_out(session) -> None:
    s = session()
    p = s.paths
    job = publish.publish_job(s, R2, R1, mark=True)
    # forward: the previous release served well; its requests finish gracefully
    assert retire_of(s, job.forward).endswith(services.retire(p))
    # going back (after the switch, or before it): what stops is the release that failed
    assert retire_of(s, job.back).endswith(services.retire(p, kill=True))
    assert retire_of(s, job.unswitched).endswith(services.retire(p, kill=True))
    # a deploy going back after its after_switch hook failed: the release it leaves failed
    again = publish.publish_job(s, R1, R2, back=False, leaving_failed=True)
    assert retire_of(s, again.forward).endswith(services.retire(p, kill=True))
    assert services.retire(p, kill=True) != services.retire(p)


# --- the switch, made as the login user in a job run as root ---


@pytest.fixture
def ln_as(fakebin: Path) -> None:
    """An `ln` that links anywhere and notes as whom: `ln as USER ARGS`."""
    (fakebin / "ln").write_text('#!/bin/bash\necho "ln as ${FAKE_LOGIN:-root} $*" >> "$CALLS"\n'
                                'exec /usr/bin/ln "$@"\n')


@pytest.mark.parametrize("password, login", [("secret", "root"), (None, "deploy")])
def test_the_switch_step_moves_current_as_the_login_user(session, deploy: Path, fakebin: Path,
                                                         ln_as, password: str | None,
                                                         login: str) -> None:
    # `current` is in the login user's tree: a root-owned link there would outlive its owner
    s = session(password)
    assert s.remote.jobs_as_root == (login == "root")
    add_release(deploy, R1)
    add_release(deploy, R2)
    (deploy / "current").symlink_to(f"releases/{R1}")
    run = deploy / "shared" / "run"
    (run / "uwsgi.sock").symlink_to("uwsgi-a.sock")
    [switch] = [x for x in publish.forward_steps(s, R2) if x.name == "switch"]
    env = fake_env(fakebin, WSGISHIP_SLOT="b", **({} if login == "root" else
                                                  {"FAKE_LOGIN": "deploy"}))
    res = run_script(switch.body, env=env)
    assert (res.returncode, res.stdout) == (0, "slot=b\n"), res.stderr
    assert os.readlink(deploy / "current") == f"releases/{R2}"
    assert os.readlink(run / "uwsgi.sock") == "uwsgi-b.sock"
    # current as the login user (runuser from root), nginx's socket link as the app
    assert [c for c in calls(fakebin) if c.startswith("ln ")] == [
        f"ln as deploy -sfn releases/{R2} {deploy}/.current.tmp",
        f"ln as web -sfn uwsgi-b.sock {run}/.uwsgi.sock.tmp"]
    assert any(c.startswith("runuser -u deploy -- bash -c ") for c in calls(fakebin)) == (
        login == "root")


# --- reading the steps: detail_of, _follow, outcome ---


@pytest.mark.parametrize("name, facts, detail", [
    ("watch", {"watched": "120", "requests": "3412", "errors": "2", "note": ""},
     "3412 requests, 2 answered 5xx in 120s"),
    ("watch", {"watched": "14", "requests": "80", "errors": "0",
               "note": "ended by the next deploy"},
     "80 requests, 0 answered 5xx in 14s (ended by the next deploy)"),
    ("watch", {}, "? requests, ? answered 5xx in ?s"),
    ("retire", {"retired": "a,b"}, "slot a stopping gracefully, slot b stopping gracefully"),
    ("retire", {"retired": "b,single"},
     "slot b stopping gracefully, the single uWSGI of before stopped"),
    ("retire", {"retired": ""}, "nothing else ran"),
])
def test_the_detail_of_the_watch_and_of_a_retire_of_several(session, name: str,
                                                           facts: dict[str, str],
                                                           detail: str) -> None:
    assert publish.detail_of(name, facts, session()) == detail


def follow(s: Session, streams: list[FakeStream], events: list[str],
           back_line: str = "") -> publish.Outcome:
    streams.append(FakeStream([(events, [])]))
    return publish._follow(s, streams[-1], R2, back_line)  # type: ignore[arg-type]


def lines(s: Session) -> list[str]:
    return s.out.printer.out.getvalue().decode().splitlines()  # type: ignore[attr-defined]


WATCH_REASON = ("watch: 9 of 40 requests answered 5xx (22.5%) within 12s, above"
                " health.max_5xx_percent 1")
WATCH_OUT = (f"watched=12\nrequests=40\nerrors=9\nnote={WATCH_REASON[7:]}\n"
             f"reason={WATCH_REASON}")


def test_a_release_that_fails_its_watch_goes_back(session, streams) -> None:
    s = session()
    events = [*published(R2)[:-2], ev(step="watch", state="start"),
              ev(step="watch", state="failed", code=1, output=WATCH_OUT, what="watch the new "
                 "release", reason=WATCH_REASON, took=12.0,
                 facts={"watched": "12", "requests": "40", "errors": "9",
                        "note": WATCH_REASON[7:], "reason": WATCH_REASON}),
              *step("applog", 0.02), *step("mark", 0.01), ev(back=R1, way="back"),
              *published(R1, "b"), ev(result="back", reason=WATCH_REASON, output=WATCH_OUT,
                                      log=APP_LOG, back_reason="")]
    done = follow(s, streams, events, back_line=f"rolling back to {R1} ({{reason}})")
    # the window is announced when it opens: a long watch is not a silent wait
    assert lines(s)[5] == (f"[web1] watching {R2} for {s.app.health.watch}s, the previous "
                           "release kept warm (`fab rollback` now switches back at once)")
    assert lines(s)[6:9] == [row("watch", " 12.00s  FAILED"),
                             f"[web1] rolling back to {R1} ({WATCH_REASON})",
                             row("start", "  1.25s  slot b started, 2 workers")]
    assert (done.result, done.reason, done.switched) == ("back", WATCH_REASON, True)
    assert isinstance(done.error, RemoteError) and done.error.message == WATCH_REASON
    assert done.error.detail == WATCH_OUT.rsplit("\n", 1)[0]  # its counts, not its reason again


def test_a_switch_that_failed_is_followed_the_whole_way_back(session, streams) -> None:
    # it may have moved a link: the job went the whole way back, and says so; the release may
    # have served (switched)
    s = session()
    events = [*published(R2)[:4], ev(step="switch", state="start"),
              ev(step="switch", state="failed", code=1, output="mv: cannot move", facts={},
                 reason="switch current failed (exit 1)", what="switch current", took=0.1),
              *step("applog", 0.02), ev(back=R1, way="back"), *published(R1, "b"),
              ev(result="back", reason="switch current failed (exit 1)", output="", log="",
                 back_reason="")]
    done = follow(s, streams, events, back_line=f"rolling back to {R1} ({{reason}})")
    assert lines(s)[2:4] == [row("switch", "  0.10s  FAILED"),
                             f"[web1] rolling back to {R1} (switch current failed (exit 1))"]
    assert not any("never served" in line for line in lines(s))
    assert (done.result, done.switched) == ("back", True)


NOT_STARTED = services.NOT_STARTED.removeprefix("reason=")
CHECK_REASON = ("health check failed: GET http://localhost:80/up on the new uWSGI's own socket"
                f" (before the switch) answered 500, expected 200 from release {R2}"
                " (waited 5.0s)")


@pytest.mark.parametrize("name, what, out, facts, message, detail", [
    # a failed check on the new uWSGI's own socket reads as a failed health check
    ("check", "check the new uWSGI", f"status=500\nreason={CHECK_REASON}\nTraceback",
     {"status": "500", "reason": CHECK_REASON}, CHECK_REASON,
     f"--- response (first lines) ---\nTraceback\n--- app log (last lines) ---\n{APP_LOG}"),
    # a step that said why: its words, its other output the detail
    ("start", "start uWSGI", f"ImportError: no module named shop\n{services.NOT_STARTED}",
     {"reason": NOT_STARTED}, NOT_STARTED, "ImportError: no module named shop"),
    ("watch", "watch the new release", WATCH_OUT, {"reason": WATCH_REASON}, WATCH_REASON,
     WATCH_OUT.rsplit("\n", 1)[0]),
    # sudo's refusal says more than what the step guessed
    ("retire", "stop the old uWSGI", "sudo: a password is required\nreason=still running",
     {"reason": "still running"}, "sudo asked deploy for a password during stop the old uWSGI;"
     " run with --prompt-for-sudo-password, or allow NOPASSWD for the deploy commands (fab"
     " setup)", ""),
])
def test_outcome_says_what_the_failed_step_said(session, name: str, what: str, out: str,
                                                facts: dict[str, str], message: str,
                                                detail: str) -> None:
    remote = session().remote
    failure = failed_event(name, what, 1, out, facts, facts["reason"])
    done = publish.outcome(remote, {"result": "back", "reason": facts["reason"], "output": out,
                                    "log": APP_LOG, "back_reason": ""}, failure)
    assert isinstance(done.error, WsgishipError) and done.error.host == "web1"
    assert (done.error.message, getattr(done.error, "detail", "")) == (message, detail)
    assert done.reason == message
