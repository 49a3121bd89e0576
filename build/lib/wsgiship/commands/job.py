"""Pure builders for a job that runs on the server on its own: the publish stage (switch `current`,
reload uWSGI and nginx, health check, and the way back when that fails).

The client builds the job as data (the scripts of its steps, in `Job`), `launch` starts it
detached from the SSH session (its own session id, no file of the channel kept open) and
`follow` prints its log. A client that dies while the job runs changes nothing about its outcome:
the job finishes the switch or undoes it, marks the release, and, its client gone, writes the
deploy log entry and releases the lock itself.

The lock lives while its client's keeper (commands/release.keeper) or the job (`<lock>/job`,
"PID START") lives. Both end under `flock <lock>/.end`: the last one out removes the lock.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

from ..layout import Paths
from ..shell import q, script

# The job's runner, run by the server's python3 with the job's spec file as its argument. Every
# line it writes to its log is one JSON event for the client following it.
RUNNER = r'''
import fcntl, json, os, shutil, subprocess, sys, time
spec = json.load(open(sys.argv[1]))
lock, t0, outputs = spec["lock"], time.monotonic(), {}

def emit(**event):
    print(json.dumps(event), flush=True)

def alive(ident):
    """A process "PID START" still running (not a zombie)."""
    try:
        pid, start = ident.split()
        text = open(f"/proc/{pid}/stat").read()
    except (OSError, ValueError):
        return False
    rest = text[text.rfind(")") + 2:].split()
    return rest[0] != "Z" and rest[19] == start

def ours():
    try:
        return json.loads(open(f"{lock}/holder").readline()).get("token") == spec["token"]
    except (OSError, ValueError):
        return False

def client_gone():
    if os.path.exists(f"{lock}/client-gone"):
        return True
    try:
        keeper = json.loads(open(f"{lock}/holder").readline()).get("keeper", "")
    except (OSError, ValueError):
        return True
    return not alive(keeper)

def run(steps, facts, started=None):
    """Run steps in order; the first failure ends them: (ok, reason, the failed step's output).
    `started` collects the names of the steps that started."""
    for step in steps:
        name = step["name"]
        emit(step=name, state="start")
        if started is not None:
            started.add(name)
        began = time.monotonic()
        env = dict(os.environ, **{f"WSGISHIP_{k.upper()}": v for k, v in facts.items()})
        proc = subprocess.Popen(["bash", "-c", step["body"]], env=env, stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                errors="replace", start_new_session=True)
        try:
            out, err = proc.communicate(timeout=step["timeout"])
            code = proc.returncode
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)  # the step and whatever it started
            proc.communicate()
            code, out, err = 124, "", f"timed out after {step['timeout']}s"
        found = dict(line.split("=", 1) for line in out.splitlines()
                     if "=" in line and line.split("=", 1)[0].isidentifier())
        facts.update(found)
        output = outputs[name] = (out + ("\n" if out and err else "") + err).strip()
        took = round(time.monotonic() - began, 3)
        if code != 0 and not step.get("optional"):
            reason = found.get("reason") or f"{step['what']} failed (exit {code})"
            emit(step=name, state="failed", code=code, output=output, facts=found, reason=reason,
                 what=step["what"], took=took)
            return False, reason, output
        emit(step=name, state="ok", facts=found, output=output if step.get("show") else "",
             took=took)
        if spec.get("pause") == name:
            emit(pause=name)
            deadline = time.monotonic() + 60
            while not client_gone() and time.monotonic() < deadline:
                time.sleep(0.1)
    return True, "", ""

started = set()
ok, reason, output = run(spec["forward"], {}, started)
back, back_reason = None, ""
if ok:
    run(spec["ok"], {})
    result = "ok"
else:
    facts = {"reason": reason}
    run(spec["failed"], facts)
    result = "failed"
    # failed before the switch began: the previous release still serves; only the new one is
    # undone (a switch that began may have moved a link: that takes the whole way back)
    short = "switch" not in started and bool(spec["unswitched"])
    way = spec["unswitched"] if short else spec["back"]
    if spec["back"]:
        emit(back=spec["back_to"], way="unswitched" if short else "back")
        back, back_reason, _ = run(way, {})
        result = "back" if back else "back_failed"
with open(f"{lock}/.end", "a") as end:
    fcntl.flock(end, fcntl.LOCK_EX)
    gone = client_gone()
    if gone and spec.get("record"):
        entry = dict(spec["record"][result], duration=round(spec["elapsed"] + time.monotonic() - t0, 2),
                     finished_by="server (its client was gone)")
        if not ok:
            entry["reason"] = reason + (f"; the way back failed too: {back_reason}" if back_reason else "")
        with open(spec["deploys_log"], "a") as f:
            f.write(json.dumps(entry, sort_keys=True) + "\n")
    try:
        os.unlink(f"{lock}/job")
    except OSError:
        pass
    emit(result=result, reason=reason, output=output, log=outputs.get("applog", ""),
         back_reason=back_reason)
    if gone and ours():
        shutil.rmtree(lock, ignore_errors=True)
'''


@dataclass(frozen=True)
class JobStep:
    """One step: a whole bash script, named for the client's output (`name`) and for its error
    (`what`). `optional`: a failure does not end the steps. `show`: its output goes to the log."""

    name: str
    what: str
    body: str
    timeout: int = 600
    optional: bool = False
    show: bool = False


@dataclass(frozen=True)
class Job:
    """Forward steps; on success the `ok` steps; on failure the `failed` steps (with $REASON in
    their env as WSGISHIP_REASON), then the `back` steps (the way back to `back_to`), or, when
    the forward steps failed before their `switch` step began and there are `unswitched` steps,
    those (`back_to` still serves: only the new release is undone)."""

    forward: list[JobStep]
    ok: list[JobStep] = field(default_factory=list)
    failed: list[JobStep] = field(default_factory=list)
    back: list[JobStep] = field(default_factory=list)
    back_to: str = ""
    unswitched: list[JobStep] = field(default_factory=list)  # the way back before the switch


def spec(job: Job, p: Paths, token: str, *, record: dict[str, dict] | None = None,
         elapsed: float = 0.0, pause: str = "") -> str:
    """The job's spec file (JSON): what the runner runs. `record`: the deploys.log entry per
    result (ok, failed, back, back_failed) it writes when its client is gone."""
    return json.dumps({
        "lock": p.lock, "token": token, "deploys_log": p.log, "record": record,
        "elapsed": round(elapsed, 2), "pause": pause, "back_to": job.back_to,
        **{part: [asdict(s) for s in getattr(job, part)]
           for part in ("forward", "ok", "failed", "back", "unswitched")},
    }, sort_keys=True)


def jobs_dir(p: Paths) -> str:
    return f"{p.deploy_to}/.jobs"


def launch(p: Paths, job_id: str, spec_json: str, token: str, as_login: str = "") -> str:
    """Start the job detached (its own session; stdin, stdout and stderr off the channel), under
    the lock `token` holds, and record it as the lock's job. `as_login`: the prefix that makes
    a command the login user's when this runs as root for them (the log stays theirs)."""
    d = jobs_dir(p)
    return script([
        "umask 077",
        f"J={q(d)}; L={q(p.lock)}; ID={q(job_id)}",
        f'grep -qF {q(token)} "$L/holder" 2>/dev/null'
        ' || { echo "the lock is not held by this deploy any more" >&2; exit 1; }',
        f'{as_login} mkdir -p "$J"',
        # the last 20 jobs' spec and log are kept for inspection
        'ls -1t "$J" | tail -n +41 | while read -r f; do rm -f "$J/$f"; done',
        # the files the client's side writes too are the login user's, whoever runs the job
        f'{as_login} touch "$J/$ID.log" "$L/.end"',
        f'printf "%s" {q(spec_json)} > "$J/$ID.json"',
        "cd /",
        f'setsid python3 -c {q(RUNNER)} "$J/$ID.json" < /dev/null >> "$J/$ID.log" 2>&1 &',
        "pid=$!",
        'printf "%s %s\\n" "$pid" "$(cut -d" " -f22 "/proc/$pid/stat" 2>/dev/null || echo 0)"'
        ' > "$L/job.tmp" && mv "$L/job.tmp" "$L/job"',
        'echo "job=$pid"',
    ])


def follow(p: Paths, job_id: str, pid: int) -> str:
    """The job's log from its first line, as it grows, until the job has ended."""
    return script([
        f"exec tail -n +1 -s 0.1 -f --pid={int(pid)} {q(jobs_dir(p) + '/' + job_id + '.log')}",
    ])
