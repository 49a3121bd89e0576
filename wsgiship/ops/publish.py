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

from .. import tls as tlsconf
from ..commands import health, nginx, services
from ..commands import job as jobs
from ..commands import release as rel
from ..config import App
from ..errors import ConnectionLost, RemoteError, WsgishipError
from ..remote import Remote, Result, Stream
from ..shell import Raw, q, script
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
    """The site's URL: https://name[:https_port]/ when TLS is on, else http://name[:port]/."""
    host = health_host(app)
    if host == "localhost":
        host = remote.conn.host
    scheme, port, default = (("https", app.https_port, 443) if app.tls is not None
                             else ("http", app.http_port, 80))
    return f"{scheme}://{host}{'' if port == default else f':{port}'}/"


def probes(app: App) -> tuple[int, bool, str]:
    """How the health checks reach the site: (its port, whether over HTTPS, a CA file to trust
    besides the system's: your own certificate's chain)."""
    if app.tls is None:
        return app.http_port, False, ""
    ca_file = tlsconf.files(app.name, "own")[0] if app.tls.kind == "own" else ""
    return app.https_port, True, ca_file


def as_login(r: Remote, body: str) -> str:
    """A script as the login user's, inside a step of a job that may run as root."""
    return script([f"{r.as_login} bash -c {q(body)}"]) if r.as_login else body


def forward_steps(s: Session, release: str, leaving_failed: bool = False,
                  watch: bool = False, reuse: str = "any") -> list[jobs.JobStep]:
    """Start a release in its own uWSGI beside the live one, check it on its own socket, switch
    `current` and nginx's socket link to it, check it through nginx, stop the other uWSGI.
    `leaving_failed`: the other one failed (it may hang): its workers are killed. `watch`
    (health.watch): the previous one stays warm while the new one's 5xx rate is watched.
    `reuse`: which running slot may serve as it is (services.start_slot)."""
    p, r, app, h = s.paths, s.remote, s.app, s.app.health
    host, step = health_host(app), jobs.JobStep
    port, https, ca_file = probes(app)
    slot_socket = Raw(q(p.run_dir) + '"/uwsgi-$WSGISHIP_SLOT.sock"')
    return [
        step("start", "start uWSGI",
             r.job_body(services.start_slot(p, release, reuse), priv=True, app_user=s.app_user),
             timeout=h.timeout + 150),
        step("check", "check the new uWSGI",
             r.job_body(health.slot_check(slot_socket, port, host, h.path, h.status,
                                          release, h.timeout, https), app_user=s.app_user),
             timeout=h.timeout + 30, show=True),
        step("switch", "switch current",
             r.job_body(as_login(r, rel.switch(p, release)) + services.switch_traffic(p),
                        app_user=s.app_user)),
        step("install", "install the site", r.job_body(services.install(p), priv=True)),
        step("nginx", "reload nginx", r.job_body(nginx.reload_nginx(p), priv=True)),
        step("health", "health check",
             r.job_body(health.health_check(port, host, h.path, h.status, release,
                                            h.timeout, https, ca_file)),
             timeout=h.timeout + 30, show=True),
        *([step("watch", "watch the new release",
                r.job_body(health.watch(p, release, services.slot_pid(p), h.watch,
                                        h.max_5xx_percent), priv=True, app_user=s.app_user),
                timeout=h.watch + 60)] if watch and h.watch else []),
        step("retire", "stop the old uWSGI",
             r.job_body(services.retire(p, kill=leaving_failed), priv=True,
                        app_user=s.app_user)),
    ]


def publish_job(s: Session, release: str, previous: str, *, mark: bool = False,
                back: bool = True, why: str = "", unswitched: bool = True,
                leaving_failed: bool = False, watch: bool = False,
                restart: bool = False) -> jobs.Job:
    """The job that publishes `release` and, when it fails and `back`, publishes `previous`
    again. `mark`: the release is pending: the job marks it ok, or failed ("<why><reason>").
    `unswitched`: a failure before the switch only stops the new release's uWSGI (not for a
    release that is live already: its way back is the whole way). `restart`: `release` is the
    live one (previous too), started afresh in the spare slot (so it reads its environment
    anew); the way back is to the slot that ran it."""
    p, r = s.paths, s.remote
    failed = [jobs.JobStep("applog", "read the app log",
                           r.job_body(services.error_log_tail(p, 12), app_user=s.app_user),
                           optional=True, show=True)]
    if not previous:
        # a first deploy: nothing to go back to; its uWSGI stops (it never served, or the site
        # is down either way)
        failed.append(jobs.JobStep("retire", "stop the new uWSGI", r.job_body(
            services.retire(p, keep_live=False, kill=True), priv=True, app_user=s.app_user),
            optional=True))
    if mark:
        failed.append(jobs.JobStep("mark", "mark failed", r.job_body(
            rel.mark_failed(p, release, Raw(q(why) + '"$WSGISHIP_REASON"'))), optional=True))
    return jobs.Job(
        # a first deploy has nothing to keep warm: no watch window
        forward=forward_steps(s, release, leaving_failed, watch and bool(previous),
                              reuse="none" if restart else "any"),
        ok=[jobs.JobStep("mark", "mark ok", r.job_body(rel.mark_ok(p, release)))] if mark else [],
        failed=failed,
        back=forward_steps(s, previous, leaving_failed=True, reuse="spare" if restart else "any")
        if back and previous else [],
        back_to=previous if back else "",
        unswitched=[jobs.JobStep("retire", "stop the new uWSGI", r.job_body(
            services.retire(p, kill=True), priv=True, app_user=s.app_user))] if unswitched else [])


def staging_job(s: Session, release: str, previous: str) -> jobs.Job:
    """A fleet's prepare (ops/fleet): start `release` in the spare slot and check it on its own
    socket, nothing switched; the publish job later finds it running there and uses it as it
    is. On failure its uWSGI stops and `previous` keeps serving."""
    p, r = s.paths, s.remote
    stop = [jobs.JobStep("retire", "stop the new uWSGI", r.job_body(
        stop_staged(s), priv=True, app_user=s.app_user))]
    return jobs.Job(
        forward=[st for st in forward_steps(s, release) if st.name in ("start", "check")],
        failed=[jobs.JobStep("applog", "read the app log",
                             r.job_body(services.error_log_tail(p, 12), app_user=s.app_user),
                             optional=True, show=True)],
        back=stop, back_to=previous, unswitched=stop)


def stop_staged(s: Session) -> str:
    """Stop what staging_job started (every uWSGI but the live slot's)."""
    return services.retire(s.paths, kill=True)


@dataclass
class Outcome:
    """How a publish job ended: `result` ok, failed (nothing to go back to), back (it went back
    to the previous release) or back_failed."""

    result: str
    reason: str = ""
    error: WsgishipError | None = None
    switched: bool = False  # the new release received traffic before it failed


def detail_of(name: str, facts: dict[str, str], s: Session) -> str:
    if name == "switch":
        return f"current -> releases/{facts.get('release', '?')}, nginx -> slot {facts.get('slot', '?')}"
    if name == "start":
        how = "already running" if facts.get("uwsgi") == "running" else "started"
        return f"slot {facts.get('slot', '?')} {how}, {s.app.processes} workers"
    if name == "check":
        return f"{s.app.health.path} -> {facts.get('status', '?')} (its own socket)"
    if name == "watch":
        note = facts.get("note", "")
        return (f"{facts.get('requests', '?')} requests, {facts.get('errors', '?')} answered 5xx"
                f" in {facts.get('watched', '?')}s" + (f" ({note})" if note else ""))
    if name == "retire":
        gone = [g for g in facts.get("retired", "none").split(",") if g not in ("", "none")]
        words = [f"slot {g} stopping gracefully" if g != "single" else
                 "the single uWSGI of before stopped" for g in gone]
        return ", ".join(words) or "nothing else ran"
    if name == "nginx":
        return facts.get("nginx", "")
    if name == "health":
        return f"{s.app.health.path} -> {facts.get('status', '?')}"
    return ""


def run_job(s: Session, job: jobs.Job, release: str, back_line: str = "",
            record: dict[str, dict] | None = None, name: str = "") -> Outcome:
    """Start the job on the server and print its steps as they happen; its outcome. `back_line`
    is printed when it turns back ({reason} is filled in). Interrupted or cut off while it runs:
    Detached (the server finishes it and logs it). `name` tells apart two jobs of one
    operation on one release (default: the operation's action)."""
    p, remote = s.paths, s.remote
    job_id = f"{release}-{name or s.action}-{s.token}"
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
    switched = False
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
            if event.get("state") == "start" and name == "switch" and shown == release:
                switched = True  # it may move a link from here on
            if event.get("state") == "start" and name == "watch":
                s.out.line(f"watching {release} for {s.app.health.watch}s, the previous release "
                           f"kept warm (`fab rollback` now switches back at once)")
            if event.get("state") == "start" and name not in QUIET:
                ends[name] = s.out.begin(name)
            elif event.get("state") == "ok" and name == "switch" and shown == release:
                if name in ends:
                    facts = {**event.get("facts", {}), "release": shown}
                    ends.pop(name)(detail_of(name, facts, s), took=event.get("took"))
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
                if event.get("way") == "unswitched" and shown == release:
                    s.out.line(f"the new uWSGI of {release} failed before the switch and never "
                               f"served a request ({failure.get('reason', '?')}); the one that "
                               f"ran keeps serving")
                elif event.get("way") == "unswitched":
                    still = f"{shown} keeps serving" if shown else "nothing else was live"
                    s.out.line(f"release {release} failed before the switch and never served a "
                               f"request ({failure.get('reason', '?')}); {still}")
                elif back_line:
                    s.out.line(back_line.format(reason=failure.get("reason", "?")))
            elif "result" in event:
                done = outcome(s.remote, event, failure)
                done.switched = switched
                return done
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
    if failure.get("step") in ("health", "check"):
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
        said = failure.get("facts", {}).get("reason", "")
        if said and "sudo" not in error.message:  # the step said what went wrong
            error.message = said
            error.detail = "\n".join(line for line in output.splitlines()
                                     if not line.startswith("reason="))
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
    job = publish_job(s, current, back_to, mark=True, why="unverified, then ", unswitched=False)
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
