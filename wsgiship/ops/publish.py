"""The publish stage shared by deploy, rollback and recovery: switch `current`, make uWSGI then
nginx serve it, check it through nginx, and on failure go back, as one job on the server
(commands/job) that the client starts and follows. What the job does no longer depends on the
client: killed, cut off or interrupted, the server still finishes or undoes the switch."""

from __future__ import annotations

import json
import os
import select
from collections.abc import Callable
from dataclasses import dataclass

from ..commands import health, nginx, services
from ..commands import job as jobs
from ..commands import release as rel
from ..config import App
from ..errors import ConnectionLost, RemoteError, WsgishipError
from ..remote import Remote, Result, Stream
from ..shell import Raw, q
from .session import Session, pause_point
from .state import read_state

# steps of the job the client does not print a line for (unless they fail)
QUIET = ("install", "mark", "applog")


class Detached(WsgishipError):
    """The client stopped following a publish job (interrupted, or the connection dropped): the
    server finishes it on its own."""


def health_host(app: App) -> str:
    """The Host header of the health check: the first server_name, unless it is a wildcard."""
    first = app.server_name.split()[0]
    return "localhost" if first in ("_", "") or "*" in first else first


def site_url(remote: Remote, app: App) -> str:
    host = health_host(app)
    if host == "localhost":
        host = remote.conn.host
    port = "" if app.http_port == 80 else f":{app.http_port}"
    return f"http://{host}{port}/"


def forward_steps(s: Session, release: str, previous: str, leaving_failed: bool = False
                  ) -> list[jobs.JobStep]:
    """Switch `current` to a release, make the services serve it, check it through nginx.
    `leaving_failed`: `previous` failed (it may hang): its workers are killed, not waited for."""
    p, r, app, h = s.paths, s.remote, s.app, s.app.health
    step = jobs.JobStep
    return [
        step("switch", "switch current", r.job_body(rel.switch(p, release))),
        step("install", "install service and site", r.job_body(services.install(p), priv=True)),
        step("uwsgi", "reload uWSGI",
             r.job_body(services.reload_uwsgi(p, release, previous, app.processes,
                                              kill_previous=leaving_failed),
                        priv=True, app_user=s.app_user)),
        step("nginx", "reload nginx", r.job_body(nginx.reload_nginx(p), priv=True)),
        step("health", "health check",
             r.job_body(health.health_check(app.http_port, health_host(app), h.path, h.status,
                                            release, h.timeout)),
             timeout=h.timeout + 30, show=True),
    ]


def publish_job(s: Session, release: str, previous: str, *, mark: bool = False,
                back: bool = True, leaving_failed: bool = False, why: str = "") -> jobs.Job:
    """The job that publishes `release` and, when it fails and `back`, publishes `previous`
    again. `mark`: the release is pending: the job marks it ok, or failed ("<why><reason>")."""
    p, r = s.paths, s.remote
    failed = [jobs.JobStep("applog", "read the app log",
                           r.job_body(services.error_log_tail(p, 12), app_user=s.app_user),
                           optional=True, show=True)]
    if mark:
        failed.append(jobs.JobStep("mark", "mark failed", r.job_body(
            rel.mark_failed(p, release, Raw(q(why) + '"$WSGISHIP_REASON"'))), optional=True))
    return jobs.Job(
        forward=forward_steps(s, release, previous, leaving_failed),
        ok=[jobs.JobStep("mark", "mark ok", r.job_body(rel.mark_ok(p, release)))] if mark else [],
        failed=failed,
        back=forward_steps(s, previous, release, True) if back and previous else [],
        back_to=previous if back else "")


@dataclass
class Outcome:
    """How a publish job ended: `result` ok, failed (nothing to go back to), back (it went back
    to the previous release) or back_failed."""

    result: str
    reason: str = ""
    error: WsgishipError | None = None


def detail_of(name: str, facts: dict[str, str], s: Session) -> str:
    if name == "switch":
        return f"current -> releases/{facts.get('release', '?')}"
    if name == "uwsgi":
        return f"{facts.get('uwsgi', '')}, {facts.get('workers', '?')} workers on the release"
    if name == "nginx":
        return facts.get("nginx", "")
    if name == "health":
        return f"{s.app.health.path} -> {facts.get('status', '?')}"
    return ""


def run_job(s: Session, job: jobs.Job, release: str, back_line: str = "",
            record: dict[str, dict] | None = None) -> Outcome:
    """Start the job on the server and print its steps as they happen; its outcome. `back_line`
    is printed when it turns back ({reason} is filled in). Interrupted or cut off while it runs:
    Detached (the server finishes it and logs it)."""
    p, remote = s.paths, s.remote
    job_id = f"{release}-{s.action}-{s.token}"
    spec = jobs.spec(job, p, s.token, record=record, elapsed=s.out.elapsed,
                     pause=pause_point(s.out, "job"))
    res = remote.run(jobs.launch(p, job_id, spec, s.token, remote.as_login),
                     root=remote.whole_script_sudo, what="start the publish job")
    pid = int(res.facts().get("job", "0"))
    stream = Stream(remote, jobs.follow(p, job_id, pid))
    try:
        return _follow(s, stream, release, back_line)
    except (KeyboardInterrupt, ConnectionLost) as exc:
        how = "interrupted" if isinstance(exc, KeyboardInterrupt) else "connection lost"
        raise Detached(f"{how} while the server publishes {release}: the server finishes it (or "
                       f"goes back) on its own and logs it; `fab releases -H {remote.label}` "
                       f"shows the outcome", host=remote.label) from None
    finally:
        stream.close()


def _follow(s: Session, stream: Stream, release: str, back_line: str) -> Outcome:
    ends: dict[str, Callable[..., None]] = {}
    raw: list[str] = []
    failure: dict = {}
    shown = release  # the release the steps now publish: the way back publishes another
    while True:
        select.select([stream], [], [], 1.0)
        lines, err = stream.pump()
        raw += err
        for line in lines:
            try:
                event = json.loads(line)
            except ValueError:
                raw.append(line)
                continue
            name = event.get("step", "")
            if event.get("state") == "start" and name not in QUIET:
                ends[name] = s.out.begin(name)
            elif event.get("state") == "ok" and name in ends:
                facts = {**event.get("facts", {}), "release": shown}
                ends.pop(name)(detail_of(name, facts, s), took=event.get("took"))
            elif event.get("state") == "failed":
                failure = failure or event  # the forward failure, not one on the way back
                end = ends.pop(name, None) or s.out.begin(name)
                end("", failed=True, took=event.get("took"))
            elif "pause" in event:
                s.out.line(f"test pause after {event['pause']}")
            elif "back" in event:
                shown = event["back"]
                if back_line:
                    s.out.line(back_line.format(reason=failure.get("reason", "?")))
            elif "result" in event:
                return outcome(s.remote, event, failure)
        if stream.done:
            stream.exit_code()  # a dropped connection raises here
            raise s.remote.error("the publish job on the server ended without a result; its "
                                 f"log is in {jobs.jobs_dir(s.paths)}", "\n".join(raw[-20:]))


def outcome(remote: Remote, event: dict, failure: dict) -> Outcome:
    """The job's result event as an Outcome, with the error of its failed step."""
    result = event["result"]
    if result == "ok":
        return Outcome(result)
    reason, output = event.get("reason", ""), event.get("output", "")
    if failure.get("step") == "health":
        facts = failure.get("facts", {})
        body = "\n".join(line for line in output.splitlines()
                         if line.split("=")[0] not in facts)
        logs = event.get("log", "")
        error: WsgishipError = remote.error(
            reason, ("--- response (first lines) ---\n" + body + "\n" if body.strip() else "")
            + ("--- app log (last lines) ---\n" + logs if logs.strip() else ""), kind=RemoteError)
    else:
        error = remote.failure(Result(int(failure.get("code", 1)), "", output),
                               failure.get("what", ""))
    if event.get("back_reason"):
        error.message = f"{error.message}; going back failed too: {event['back_reason']}"
    return Outcome(result, error.reason, error)


def recovering(s: Session) -> str:
    """What a client that died left, resolved under the lock: a pending release that is not
    current is marked failed; a pending release that is current is published and verified now,
    and left for the newest good release if that fails. Returns the current release after it."""
    current = os.path.basename(s.facts.get("current", ""))
    pending = s.facts.get("pending", "").split()
    for name in pending:
        if name != current:
            s.remote.run(rel.mark_failed(s.paths, name, "abandoned: its deploy never finished"),
                         what="mark an abandoned release failed", check=False)
    if current not in pending:
        return current
    s.out.line(f"release {current} is current but was never verified (its deploy died): "
               f"verifying it now")
    good = read_state(s.remote, s.app).previous_good()
    back_to = good.name if good else ""
    job = publish_job(s, current, back_to, mark=True, why="unverified, then ")
    done = run_job(s, job, current, f"release {current} failed its check ({{reason}}); "
                                    f"back to {back_to}",
                   record=s.entries(current, back_to, recovered=True))
    if done.error is None:
        s.record(current, "ok", recovered=True)
        return current
    if done.result != "back":
        raise done.error
    s.record(current, "failed", reason=done.reason, rolled_back_to=back_to)
    return back_to
