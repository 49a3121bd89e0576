"""wsgiship.ops.publish: following a publish job on the server. `_follow` reads the job's JSON
events from a stream (here a stand-in fed lines, as the server's `tail -f` of the job's log would
give them) and prints its steps through a Reporter writing to memory; `outcome` turns its result
into an Outcome and the error the user sees; `run_job` launches the job, follows it, and, cut
off or interrupted while following, leaves it to the server (Detached)."""

from __future__ import annotations

import io
import json
import os
import shlex
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fabric import Config
from fakes import line_with

from wsgiship import output
from wsgiship.commands import job as jobs
from wsgiship.config import App, Host
from wsgiship.errors import ConnectionLost, RemoteError, WsgishipError
from wsgiship.ops import publish
from wsgiship.ops.session import Session
from wsgiship.remote import Remote, Result

R1, R2 = "20250101T000001Z-0000001", "20250101T000002Z-0000002"
REASON = (f"health check failed: GET http://localhost:80/up answered 500, expected 200 from "
          f"release {R2} (waited 5.2s)")
HEALTH_OUT = f"status=500\nrelease={R2}\nwaited=5.2\nreason={REASON}\nbody line 1\nbody line 2"
HEALTH_FACTS = {"status": "500", "release": R2, "waited": "5.2", "reason": REASON}
APP_LOG = "Traceback (most recent call last):\nKeyError: 'DATABASE_URL'"


def ev(**event: object) -> str:
    """One line of the job's log."""
    return json.dumps(event)


def step(name: str, took: float, **facts: str) -> list[str]:
    """A step that starts and ends ok."""
    return [ev(step=name, state="start"), ev(step=name, state="ok", facts=facts, output="",
                                             took=took)]


def published(release: str, slot: str = "a") -> list[str]:
    """The events of the forward steps of a publish that passes: the release starts in `slot`,
    the one before it in the other slot stops."""
    return [*step("start", 1.25, slot=slot, uwsgi="started"),
            *step("check", 0.2, status="200", release=release),
            *step("switch", 0.1, slot=slot), *step("install", 0.2, site="unchanged"),
            *step("nginx", 0.05, nginx="reloaded"),
            *step("health", 0.3, status="200", release=release),
            *step("retire", 0.02, retired="b" if slot == "a" else "a")]


SWITCHED = 10  # the events of published() up to its nginx step: switched, not yet checked


class FakeStream:
    """A stand-in for remote.Stream: each pump gives the next batch, (stdout lines, stderr
    lines), or raises it if it is an exception; done when all are given. `lost`: what
    exit_code raises then (a dropped connection)."""

    def __init__(self, batches: list[object], lost: Exception | None = None) -> None:
        self.batches, self.lost, self.closed = list(batches), lost, False
        self.fd = os.open(os.devnull, os.O_RDONLY)  # always readable: select never waits

    def fileno(self) -> int:
        return self.fd

    def pump(self) -> tuple[list[str], list[str]]:
        batch = self.batches.pop(0) if self.batches else ([], [])
        if isinstance(batch, BaseException):
            raise batch
        return batch  # type: ignore[return-value]

    @property
    def done(self) -> bool:
        return not self.batches

    def exit_code(self) -> int:
        if self.lost is not None:
            raise self.lost
        return 0

    def close(self) -> None:
        if not self.closed:
            os.close(self.fd)
        self.closed = True


@pytest.fixture
def streams() -> Iterator[list[FakeStream]]:
    made: list[FakeStream] = []
    yield made
    for s in made:
        s.close()


@pytest.fixture
def session(deploy: Path, make_app: Callable[..., App]) -> Callable[..., Session]:
    def make(password: str | None = None) -> Session:
        app = make_app(deploy_to=str(deploy), health={"path": "/up"})
        config = Config(overrides={"sudo": {"password": password}}) if password else None
        remote = Remote(Host("web1", "192.0.2.1", app, user="deploy"), config)
        out = output.Reporter("web1", output.Printer(io.BytesIO(), io.BytesIO()), live=False)
        return Session(remote=remote, app=app, out=out, action="deploy", token="tok")
    return make


def lines(s: Session) -> list[str]:
    return s.out.printer.out.getvalue().decode().splitlines()  # type: ignore[attr-defined]


def follow(s: Session, streams: list[FakeStream], batches: list[object],
           back_line: str = "", lost: Exception | None = None) -> publish.Outcome:
    streams.append(FakeStream(batches, lost))
    return publish._follow(s, streams[-1], R2, back_line)  # type: ignore[arg-type]


def row(name: str, tail: str) -> str:
    """A step's line as the Reporter writes it (not live)."""
    return f"[web1] {name:<19}{tail}"


# --- _follow ---


def test_follow_prints_the_steps_of_a_publish_that_passes(session, streams) -> None:
    s = session()
    events = [*published(R2), *step("mark", 0.01), ev(result="ok", reason="", output="", log="",
                                                      back_reason="")]
    # the lines come as the server writes them: a few at a time
    done = follow(s, streams, [(events[:3], []), ([], []), (events[3:], [])])
    assert (done.result, done.error, done.switched) == ("ok", None, True)
    assert lines(s) == [row("start", "  1.25s  slot a started, 2 workers"),
                        row("check", "  0.20s  /up -> 200 (its own socket)"),
                        row("switch", f"  0.10s  current -> releases/{R2}, nginx -> slot a"),
                        row("nginx", "  0.05s  reloaded"),
                        row("health", "  0.30s  /up -> 200"),
                        row("retire", "  0.02s  slot b stopping gracefully")]
    # install and mark stay quiet


def test_follow_turns_back_after_a_failed_check(session, streams) -> None:
    s = session()
    events = [*published(R2)[:SWITCHED], ev(step="health", state="start"),
              ev(step="health", state="failed", code=1, output=HEALTH_OUT, facts=HEALTH_FACTS,
                 reason=REASON, what="health check", took=5.2),
              *step("applog", 0.02), *step("mark", 0.01), ev(back=R1, way="back"),
              *published(R1, "b"),
              ev(result="back", reason=REASON, output=HEALTH_OUT, log=APP_LOG, back_reason="")]
    done = follow(s, streams, [(events, [])], back_line=f"rolling back to {R1} ({{reason}})")
    # R2 served requests: the caller's line; the way back starts R1 again and switches to it
    assert lines(s)[4:8] == [row("health", "  5.20s  FAILED"),
                             f"[web1] rolling back to {R1} ({REASON})",
                             row("start", "  1.25s  slot b started, 2 workers"),
                             row("check", "  0.20s  /up -> 200 (its own socket)")]
    assert lines(s)[8] == row("switch", f"  0.10s  current -> releases/{R1}, nginx -> slot b")
    assert len(lines(s)) == 12
    assert done.result == "back" and done.reason == REASON and done.switched
    assert isinstance(done.error, RemoteError) and done.error.host == "web1"
    assert done.error.message == REASON


def test_follow_shows_a_quiet_step_that_fails_and_a_test_pause(session, streams) -> None:
    s = session()
    events = [*step("switch", 0.1, slot="b"), ev(pause="switch"),
              ev(step="install", state="start"),
              ev(step="install", state="failed", code=1, facts={}, took=0.2,
                 output="install: cannot stat 'x'", reason="install the site failed (exit 1)",
                 what="install the site"),
              ev(result="failed", reason="install the site failed (exit 1)",
                 output="install: cannot stat 'x'", log="", back_reason="")]
    done = follow(s, streams, [(events, [])])
    assert lines(s) == [row("switch", f"  0.10s  current -> releases/{R2}, nginx -> slot b"),
                        "[web1] test pause after switch", row("install", "  0.20s  FAILED")]
    assert done.result == "failed" and done.error is not None and done.switched
    assert done.error.message == "install the site failed (exit 1)"
    assert done.error.detail == "install: cannot stat 'x'"  # type: ignore[attr-defined]


def test_a_failed_way_back_keeps_the_first_failure_as_the_error(session, streams) -> None:
    s = session()
    events = [*published(R2)[:SWITCHED], ev(step="health", state="start"),
              ev(step="health", state="failed", code=1, output=HEALTH_OUT, facts=HEALTH_FACTS,
                 reason=REASON, what="health check", took=5.2),
              ev(back=R1, way="back"), ev(step="start", state="start"),
              ev(step="start", state="failed", code=1, output="uWSGI of slot b exited",
                 facts={}, reason="start uWSGI failed (exit 1)", what="start uWSGI", took=1.0),
              ev(result="back_failed", reason=REASON, output=HEALTH_OUT, log=APP_LOG,
                 back_reason="start uWSGI failed (exit 1)")]
    done = follow(s, streams, [(events, [])], back_line="back ({reason})")
    assert lines(s)[-3:] == [row("health", "  5.20s  FAILED"), f"[web1] back ({REASON})",
                             row("start", "  1.00s  FAILED")]
    assert done.result == "back_failed" and isinstance(done.error, RemoteError)
    assert done.error.message.startswith(REASON)  # the check's failure, its response shown
    assert "body line 1" in done.error.detail
    assert done.reason == f"{REASON}; going back failed too: start uWSGI failed (exit 1)"


CHECK_OUT = HEALTH_OUT.replace("http://localhost:80/up", "http://localhost:80/up on the new "
                                                        "uWSGI's own socket (before the switch)")


def check_failed(way: str = "unswitched") -> list[str]:
    """R2 started in slot b, then failed its check on its own socket: nothing was switched; the
    job takes `way` back."""
    return [*step("start", 1.25, slot="b", uwsgi="started"), ev(step="check", state="start"),
            ev(step="check", state="failed", code=1, output=CHECK_OUT, facts=HEALTH_FACTS,
               reason=REASON, what="check the new uWSGI", took=5.2),
            *step("applog", 0.02), *step("mark", 0.01), ev(back=R1, way=way)]


def test_a_release_that_failed_before_the_switch_is_said_to_have_never_served(
        session, streams) -> None:
    s = session()
    events = [*check_failed(), *step("retire", 0.02, retired="b"),
              ev(result="back", reason=REASON, output=CHECK_OUT, log=APP_LOG, back_reason="")]
    done = follow(s, streams, [(events, [])], back_line=f"rolling back to {R1} ({{reason}})")
    # not the caller's line: R1 was never left; only R2's uWSGI is stopped
    assert lines(s) == [row("start", "  1.25s  slot b started, 2 workers"),
                        row("check", "  5.20s  FAILED"),
                        f"[web1] release {R2} failed before the switch and never served a "
                        f"request ({REASON}); {R1} keeps serving",
                        row("retire", "  0.02s  slot b stopping gracefully")]
    assert (done.result, done.switched) == ("back", False)
    assert done.error is not None and "body line 1" in done.error.detail


def test_the_switch_of_the_way_back_is_not_the_releases_own(session, streams) -> None:
    # a release with no shortcut back (recovering): the way back publishes R1 again
    s = session()
    events = [*check_failed("back"), *published(R1),
              ev(result="back", reason=REASON, output=CHECK_OUT, log=APP_LOG, back_reason="")]
    done = follow(s, streams, [(events, [])])
    assert row("switch", f"  0.10s  current -> releases/{R1}, nginx -> slot a") in lines(s)
    assert (done.result, done.switched) == ("back", False)


@pytest.mark.parametrize("name, facts, detail", [
    ("start", {"slot": "b", "uwsgi": "running"}, "slot b already running, 2 workers"),
    ("start", {}, "slot ? started, 2 workers"),
    ("retire", {"retired": "a"}, "slot a stopping gracefully"),
    ("retire", {"retired": "single"}, "the single uWSGI of before stopped"),
    ("retire", {"retired": "none"}, "nothing else ran"),
    ("retire", {}, "nothing else ran"),
    ("switch", {"release": R1}, f"current -> releases/{R1}, nginx -> slot ?"),
])
def test_the_detail_of_a_slot_step(session, name: str, facts: dict[str, str],
                                   detail: str) -> None:
    assert publish.detail_of(name, facts, session()) == detail


def test_a_job_that_ends_without_a_result_is_an_error(session, streams, deploy: Path) -> None:
    s = session()
    batches = [([ev(step="switch", state="start"), "Traceback (most recent call last):",
                 "MemoryError"], ["tail: warning"])]
    with pytest.raises(RemoteError) as info:
        follow(s, streams, batches)
    assert info.value.message == ("the publish job on the server ended without a result; its "
                                  f"log is in {deploy}/.jobs")
    # what was no event is shown: the runner's own traceback, tail's complaints
    assert info.value.detail.splitlines() == ["tail: warning", "Traceback (most recent call "
                                              "last):", "MemoryError"]


def test_a_connection_dropped_while_following_is_lost(session, streams) -> None:
    s = session()
    lost = s.remote.lost("during the publish job")
    with pytest.raises(ConnectionLost):
        follow(s, streams, [(step("switch", 0.1, slot="a"), [])], lost=lost)
    assert lines(s) == [row("switch", f"  0.10s  current -> releases/{R2}, nginx -> slot a")]


# --- outcome ---


def failed_event(name: str, what: str, code: int, out: str, facts: dict[str, str] | None = None,
                 reason: str = "") -> dict[str, object]:
    return {"step": name, "state": "failed", "code": code, "output": out, "facts": facts or {},
            "reason": reason or f"{what} failed (exit {code})", "what": what}


def test_outcome_of_a_passing_job(session) -> None:
    assert publish.outcome(session().remote, {"result": "ok"}, {}) == publish.Outcome("ok")


@pytest.mark.parametrize("out, log, detail", [
    (HEALTH_OUT, APP_LOG, "--- response (first lines) ---\nbody line 1\nbody line 2\n"
                          f"--- app log (last lines) ---\n{APP_LOG}"),
    (HEALTH_OUT, "", "--- response (first lines) ---\nbody line 1\nbody line 2\n"),
    (HEALTH_OUT.rsplit("\nbody", 2)[0], APP_LOG, f"--- app log (last lines) ---\n{APP_LOG}"),
    (HEALTH_OUT.rsplit("\nbody", 2)[0], "  ", ""),
])
def test_outcome_of_a_failed_health_check(session, out: str, log: str, detail: str) -> None:
    remote = session().remote
    failure = failed_event("health", "health check", 1, out, HEALTH_FACTS, REASON)
    done = publish.outcome(remote, {"result": "back", "reason": REASON, "output": out,
                                    "log": log, "back_reason": ""}, failure)
    assert (done.result, done.reason) == ("back", REASON)
    assert isinstance(done.error, RemoteError)  # even without any detail
    assert (done.error.message, done.error.detail, done.error.host) == (REASON, detail, "web1")


@pytest.mark.parametrize("out, message", [
    ("uWSGI of slot a exited", "start uWSGI failed (exit 3)"),
    ("cp: No space left on device", "start uWSGI failed (exit 3) (disk full on the server: free "
                                    "some space)"),
    ("sudo: a password is required", "sudo asked deploy for a password during start uWSGI; run "
                                     "with --prompt-for-sudo-password, or allow NOPASSWD for the "
                                     "deploy commands (fab setup)"),
])
def test_outcome_of_another_failed_step_is_said_as_remote_run_says_it(
        session, out: str, message: str) -> None:
    remote = session().remote
    failure = failed_event("start", "start uWSGI", 3, out)
    done = publish.outcome(remote, {"result": "failed", "reason": failure["reason"],
                                    "output": out, "log": APP_LOG}, failure)
    assert done.result == "failed" and done.error is not None
    assert done.error.message == message and done.reason == message
    assert done.error.describe() == remote.failure(Result(3, "", out), "start uWSGI").describe()


def test_outcome_adds_that_the_way_back_failed_too(session) -> None:
    remote = session().remote
    failure = failed_event("start", "start uWSGI", 1, "uWSGI of slot b exited")
    done = publish.outcome(remote, {"result": "back_failed", "reason": failure["reason"],
                                    "output": "", "back_reason": "switch current failed (exit 1)"},
                           failure)
    assert done.reason == ("start uWSGI failed (exit 1); going back failed too: "
                           "switch current failed (exit 1)")
    assert done.error is not None and done.error.reason == done.reason


# --- run_job: launch, then follow ---


def launched(s: Session, monkeypatch: pytest.MonkeyPatch, streams: list[FakeStream],
             batches: list[object]) -> list[tuple[str, dict[str, object]]]:
    """Make `s` launch a job as pid 4242 and follow `batches`; the scripts it ran."""
    ran: list[tuple[str, dict[str, object]]] = []

    def run(body: str, **kwargs: object) -> Result:
        ran.append((body, kwargs))
        return Result(0, "job=4242\n", "")

    def stream(remote: Remote, body: str) -> FakeStream:
        ran.append((body, {"stream": True}))
        streams.append(FakeStream(batches))
        return streams[-1]

    monkeypatch.setattr(s.remote, "run", run)
    monkeypatch.setattr(publish, "Stream", stream)
    return ran


@pytest.mark.parametrize("password", [None, "secret"])
def test_run_job_launches_the_job_and_follows_it(session, streams, monkeypatch,
                                                 password: str | None) -> None:
    s = session(password)
    monkeypatch.setenv("WSGISHIP_TEST_PAUSE", "job:health")
    ran = launched(s, monkeypatch, streams, [([*published(R2), ev(result="ok")], [])])
    job = publish.publish_job(s, R2, R1, mark=True)
    record = s.entries(R2, R1)
    done = publish.run_job(s, job, R2, "back", record=record)
    assert done == publish.Outcome("ok", switched=True)
    [(launch, how), (follow_body, _)] = ran
    job_id = f"{R2}-deploy-tok"
    assert how == {"root": password is not None, "what": "start the publish job"}
    assert f"ID={job_id}" in launch and "grep -qF tok " in launch
    assert ("runuser -u deploy -- mkdir" in launch) == (password is not None)
    spec = json.loads(shlex.split(line_with(launch, 'printf "%s"'))[2])
    assert spec["token"] == "tok" and spec["pause"] == "health" and spec["record"] == record
    whole = json.loads(jobs.spec(job, s.paths, "tok"))
    assert [spec[k] for k in ("forward", "back", "unswitched")] == [
        whole[k] for k in ("forward", "back", "unswitched")]
    assert [x["name"] for x in spec["unswitched"]] == ["retire"]
    assert (spec["back_to"], spec["lock"]) == (R1, s.paths.lock)
    assert follow_body == jobs.follow(s.paths, job_id, 4242)
    assert streams[0].closed


@pytest.mark.parametrize("cut, how", [(KeyboardInterrupt(), "interrupted"),
                                      (ConnectionLost("connection lost"), "connection lost")])
def test_run_job_leaves_the_job_to_the_server_when_cut_off(session, streams, monkeypatch,
                                                           cut: BaseException, how: str) -> None:
    s = session()
    launched(s, monkeypatch, streams, [(step("switch", 0.1), []), cut])
    with pytest.raises(publish.Detached) as info:
        publish.run_job(s, publish.publish_job(s, R2, R1), R2)
    assert isinstance(info.value, WsgishipError) and info.value.host == "web1"
    assert info.value.message.startswith(f"{how} while the server publishes {R2}: the server "
                                         "finishes it (or goes back) on its own")
    assert "`fab releases -H web1`" in info.value.message
    assert streams[0].closed
