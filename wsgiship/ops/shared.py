"""The app's environment and shared files on one host: `fab env` (list masked, set, unset, and
apply at once: the live release restarted in the spare slot, a publish job like a rollback's),
`fab put` (a file into shared/). Values and contents travel on stdin only (remote.run_fed),
are written by the app's user, mode 600, and are never printed or logged: the output and
deploys.log name variables, never their values."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .. import envvars
from ..commands import checks, nginx
from ..commands import shared as cmds
from ..config import App
from ..errors import WsgishipError
from ..layout import paths_for
from ..output import Reporter
from ..remote import Remote, Result
from .publish import publish_job, recovering, run_job
from .session import Session, locked

NAME = envvars.SHARED_ENV


@dataclass
class EnvFacts:
    """What the server holds: the shared .env's and the live release's variables (names and
    lengths), and whether the live release reads the shared .env."""

    shared: list[tuple[str, int]] = field(default_factory=list)
    deployed: dict[str, int] | None = None
    states: dict[str, str] = field(default_factory=dict)  # file -> present/missing/...
    why: dict[str, str] = field(default_factory=dict)
    linked: bool = False


def parse_facts(stdout: str) -> EnvFacts:
    """The list program's JSON lines (commands/shared.PROGRAM)."""
    facts, deployed = EnvFacts(), {}
    for line in stdout.splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if "file" in event:
            facts.states[event["file"]] = event.get("state", "")
            facts.why[event["file"]] = event.get("why", "")
        elif event.get("entry") == "shared":
            facts.shared.append((str(event["key"]), int(event["length"])))
        elif event.get("entry") == "deployed":
            deployed[str(event["key"])] = int(event["length"])
        elif "linked" in event:
            facts.linked = bool(event["linked"])
    facts.deployed = deployed if facts.states.get("deployed") == "present" else None
    return facts


def read_facts(remote: Remote, app: App) -> EnvFacts:
    res = remote.run(cmds.list_env(paths_for(app), app.python, NAME),
                     app_user=app.runs_as(remote.user), what="read the app's env files")
    return parse_facts(res.stdout)


def env_notes(app: App, facts: EnvFacts, label: str) -> list[str]:
    """What the listing should say besides the variables (to stderr)."""
    notes = []
    shared = facts.states.get("shared", "")
    if NAME not in app.shared_files:
        notes.append(f"app.shared_files does not list {NAME}: releases do not read shared/{NAME}")
    elif shared == "missing":
        notes.append(f"shared/{NAME}: not on the server yet (fab setup -H {label} creates it)")
    elif shared in ("refused", "unreadable"):
        notes.append(f"shared/{NAME}: {facts.why.get('shared') or 'the app cannot read it'}")
    elif facts.states.get("deployed") == "present" and not facts.linked:
        notes.append(f"the live release does not read shared/{NAME} (deployed before "
                     f"shared_files listed it): fab deploy -H {label}")
    return notes


def show_env(remote: Remote, app: App) -> tuple[list[str], list[str]]:
    """`fab env`: the lines (KEY=**** with a length and where it comes from), and the notes."""
    remote.open()
    try:
        facts = read_facts(remote, app)
    finally:
        remote.close()
    lines = envvars.listing(facts.shared, app.env, facts.deployed)
    if not lines:
        lines = [f"no variables (set one: fab env -H {remote.label} --set KEY=VALUE)"]
    return lines, env_notes(app, facts, remote.label)


def _written(remote: Remote, res: Result, name: str, app_user: str) -> Result:
    """The outcome of a program writing shared/NAME, its failures said plainly."""
    label = remote.label
    if res.code == cmds.CANNOT_CREATE:
        raise remote.error(
            f"shared/{name} is not on {label}, and {remote.user} may not create a file for the "
            f"app's user {app_user}: list it in app.shared_files and run fab setup -H {label} "
            f"(it creates it, empty, mode 600), then try again")
    if res.code == cmds.NO_FILE:
        raise remote.error(f"shared/{name} is not on {label}, and the app's user {app_user} "
                           f"may not create it there: list it in app.shared_files and run "
                           f"fab setup -H {label}, then try again")
    if res.code == cmds.REFUSED:
        raise remote.error(res.stderr.strip().splitlines()[-1] if res.stderr.strip()
                           else f"shared/{name}: refused")
    if not res.ok:
        # (the program never writes a value to its output: its stderr is safe to show)
        raise remote.failure(Result(res.code, "", res.stderr))
    return res


def edit_env(s: Session, sets: Mapping[str, str], unsets: Sequence[str]) -> str:
    """Set and unset variables in the shared .env: a line saying what changed (names only)."""
    remote, app = s.remote, s.app
    change = {"set": [[k, envvars.env_line(k, v)] for k, v in sets.items()], "unset": list(unsets)}
    res = remote.feed(cmds.edit_env(s.paths, app.python, NAME, s.app_user),
                      json.dumps(change).encode(), priv=True, app_user=s.app_user,
                      what=f"edit shared/{NAME}")
    _written(remote, res, NAME, s.app_user)
    said = []
    for line in res.stdout.splitlines():
        event = json.loads(line) if line.startswith("{") else {}
        if "set" in event:
            said.append(f"{event['set']} {'set' if event['was'] == 'new' else event['was']}")
        elif "unset" in event:
            said.append(f"{event['unset']} {'unset' if event['was'] == 'removed' else 'was not set'}")
    return f"shared/{NAME}: " + ", ".join(said)


@dataclass
class EnvChange:
    """`fab env --set/--unset [--apply]`, under the deploy lock: edit the shared .env, then (with
    `apply`) restart the live release in the spare slot, checked before the switch."""

    remote: Remote
    app: App
    out: Reporter
    sets: Mapping[str, str]
    unsets: Sequence[str]
    apply: bool = False

    def run(self) -> str:
        """Do it; the line to end with."""
        label = self.remote.label
        if (self.sets or self.unsets) and NAME not in self.app.shared_files:
            raise WsgishipError(
                f"app.shared_files does not list {NAME}: releases would not read shared/{NAME}; "
                f"add it (shared_files: [{NAME}]), run fab setup -H {label} and deploy, then set "
                f"variables", host=label)
        fields = {"set": sorted(self.sets), "unset": sorted(self.unsets), "restart": self.apply}
        with locked(self.remote, self.app, self.out, "env") as s:
            current = recovering(s)
            if self.sets or self.unsets:
                with self.out.step("env") as st:
                    st.detail = edit_env(s, self.sets, self.unsets)
            facts = read_facts(self.remote, self.app)
            if current and not facts.linked and NAME in self.app.shared_files:
                self.out.line(f"release {current} does not read shared/{NAME} (deployed before "
                              f"shared_files listed it): fab deploy -H {label} loads it")
            if not self.apply:
                s.record(current, "ok", **fields)
                return (f"not applied yet: the next deploy loads it, or now: "
                        f"fab env -H {label} --apply")
            if not current:
                raise self.remote.error("nothing deployed yet: the first deploy loads the "
                                        "environment")
            self.restart(s, current, fields)
        return f"restarted {current} with its environment in {self.out.elapsed:.1f}s"

    def restart(self, s: Session, current: str, fields: dict[str, object]) -> None:
        """The live release started afresh beside itself, checked, switched to, the old one
        retired: a publish job whose way back is the instance that ran (zero failed requests;
        a failure leaves it serving)."""
        label = self.remote.label
        self.remote.run(checks.unit_check(s.paths, current, label)
                        + nginx.site_check(s.paths, current, label),
                        priv=True, what="service config and site check")
        job = publish_job(s, current, current, restart=True)
        done = run_job(s, job, current, f"the restart failed ({{reason}}); back to the uWSGI "
                                        f"that ran {current}",
                       record=s.entries(current, current, **fields))
        if done.error is not None:
            s.record(current, "failed", reason=done.reason, **fields)
            raise done.error
        s.record(current, "ok", **fields)


def put_file(remote: Remote, app: App, out: Reporter, local: Path, name: str) -> str:
    """`fab put`: the local file into shared/NAME, as the app's user, mode 600; a line saying
    what was done (its size, never its content)."""
    try:
        data = local.read_bytes()
    except OSError as exc:
        raise WsgishipError(f"--local {local}: cannot read it ({exc.strerror or exc})") from None
    if len(data) > envvars.MAX_PUT:
        raise WsgishipError(f"--local {local}: {len(data) >> 20} MiB; fab put takes files up "
                            f"to {envvars.MAX_PUT >> 20} MiB (secrets and config files)")
    p, user = paths_for(app), app.runs_as(remote.user)
    remote.open()
    try:
        with out.step("put") as st:
            res = remote.feed(cmds.put_file(p, app.python, name, user, len(data)), data,
                              priv=True, app_user=user, what=f"put shared/{name}")
            _written(remote, res, name, user)
            created = '"created": true' in res.stdout
            st.detail = (f"shared/{name}, {len(data)} bytes, mode 600, owner {user}"
                         + (" (new)" if created else ""))
    finally:
        remote.close()
    return f"put shared/{name}" + _where_releases_see(name, app, p.shared, remote.label)


def _where_releases_see(name: str, app: App, shared: str, label: str) -> str:
    """What the put file is to a release: a shared file, a file in a shared dir, or neither."""
    apply = f"the next deploy (or fab env -H {label} --apply) loads it"
    if name in app.shared_files:
        return f": releases link {name} to it; {apply}"
    if any(name.startswith(d.rstrip("/") + "/") for d in app.shared_dirs):
        return f": every release sees it as {name} (a shared dir); {apply}"
    return f" ({shared}/{name}; neither in app.shared_files nor in a shared dir: no release links to it)"
