"""The deploy as a list of named stages; a failure anywhere runs `failed`.

    starting    connect, take the lock (create the layout on a first deploy)
    updating    upload the release, build or reuse its venv
    validating  import the app in its venv, `nginx -t` the new site
    publishing  switch `current`, install/reload uWSGI, reload nginx
    verifying   health check through nginx
    finishing   prune old releases and venvs, append to deploys.log
    failed      mark the release failed, switch back if it was switched, log
    (always)    release the lock
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from .commands import release as rel
from .commands import services, setup, venv
from .commands.appenv import run_in
from .config import App, Host
from .errors import ConnectionLost, LockedError, RemoteError, WsgishipError
from .facts import State, parse_state, state_command
from .output import Reporter
from .remote import Remote, local_identity
from .render import CONFIG_DIR, Paths, paths_for, render
from .shell import cmd, q
from .source import Source, collect, tarball


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def release_name(short_rev: str) -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + short_rev


def health_host(app: App) -> str:
    first = app.server_name.split()[0]
    return "localhost" if first in ("_", "") or "*" in first else first


def site_url(remote: Remote, app: App) -> str:
    host = health_host(app)
    if host == "localhost":
        host = remote.conn.host
    port = "" if app.http_port == 80 else f":{app.http_port}"
    return f"http://{host}{port}/"


def describe_lock(text: str, stale_after: int) -> str:
    """'user@machine (pid N) since T, running deploy' from the lock's holder file."""
    try:
        info = json.loads(text.strip().splitlines()[0])
    except (ValueError, IndexError):
        return "an unknown holder (unreadable lock)"
    since = info.get("since", "?")
    msg = f"{info.get('by', '?')} ({info.get('action', 'deploy')}) since {since}"
    try:
        age = time.time() - datetime.strptime(since, "%Y-%m-%dT%H:%M:%SZ").replace(
            tzinfo=UTC).timestamp()
    except ValueError:
        return msg
    if age > stale_after:
        msg += f" — STALE ({int(age // 60)} min old); if no deploy is running: fab unlock -H HOST"
    return msg


@dataclass
class Session:
    """One locked operation on one host: connect, lock, and always unlock."""

    remote: Remote
    app: App
    out: Reporter
    action: str
    token: str = field(default_factory=lambda: secrets.token_hex(8))
    facts: dict[str, str] = field(default_factory=dict)
    locked: bool = False

    @property
    def paths(self) -> Paths:
        return paths_for(self.app)

    def holder(self) -> dict[str, str]:
        return {"by": local_identity(), "pid": str(os.getpid()), "since": now_iso(),
                "action": self.action, "token": self.token}

    def lock(self) -> None:
        """Take the lock; on a first deploy create <deploy_to> with sudo first."""
        p = self.paths
        res = self.remote.run(rel.prepare(p, self.app.python, self.holder()), check=False,
                              what="prepare")
        if res.code == rel.NEEDS_LAYOUT:
            self.remote.run(rel.layout(p, self.remote.user), priv=True,
                            what=f"create {p.deploy_to}")
            res = self.remote.run(rel.prepare(p, self.app.python, self.holder()), check=False,
                                  what="prepare")
        if res.code == rel.LOCKED:
            raise LockedError(f"{self.remote.label}: {p.deploy_to} is locked by "
                              f"{describe_lock(res.stdout, self.app.lock_stale_after)}")
        if res.code == rel.NO_PYTHON:
            raise WsgishipError(f"{self.remote.label}: {self.app.python} not found on the server; "
                                f"install it (apt-get install python3 python3-venv) or set "
                                f"app.python in hosts.yaml")
        if not res.ok:
            raise RemoteError(f"{self.remote.label}: prepare failed (exit {res.code})", res.output)
        self.locked = True
        self.facts = res.facts()

    def unlock(self) -> None:
        if self.locked:
            self.remote.run(rel.unlock(self.paths, self.token), what="unlock", check=False)
            self.locked = False

    def log(self, entry: dict[str, object]) -> None:
        base = {"action": self.action, "host": self.remote.label, "by": local_identity()}
        self.remote.run(rel.append_log(self.paths, {**base, **entry}), what="deploy log",
                        check=False)

    def cleanup(self, body: Callable[[], None]) -> None:
        """Run failure handling; after a lost connection, reconnect once to do it."""
        try:
            body()
        except ConnectionLost:
            self.remote.reconnect()
            body()


def activate(s: Session, release: str, previous: str) -> None:
    """Switch `current` to a release and make the services serve it, in deploy order."""
    p, remote, app = s.paths, s.remote, s.app
    with s.out.step("switch") as st:
        remote.run(rel.switch(p, release), what="switch current")
        st.detail = f"current -> releases/{release}"
    with s.out.step("uwsgi") as st:
        res = remote.run(services.install(p, remote.user, app_user_for(app, remote.user),
                                          app.shared_dirs + app.shared_files),
                         priv=True, what="install service and site")
        changed = "1" if "unit=installed" in res.stdout else "0"
        site_new = "site=installed" in res.stdout
        res = remote.run(f"UNIT_CHANGED={changed}\n"
                         + services.reload_uwsgi(p, release, previous, app.processes,
                                                 app_user_for(app, remote.user) != remote.user),
                         priv=True, what="reload uWSGI")
        facts = res.facts()
        st.detail = f"{facts.get('uwsgi', '')}, {facts.get('workers', '?')} workers on the release"
    with s.out.step("nginx") as st:
        res = remote.run(services.reload_nginx(p, release, previous, force=site_new),
                         priv=True, what="reload nginx")
        st.detail = res.facts().get("nginx", "")


def verify(s: Session, release: str) -> None:
    app, h = s.app, s.app.health
    with s.out.step("health") as st:
        res = s.remote.run(
            services.health_check(app.http_port, health_host(app), h.path, h.status, release,
                                  h.timeout),
            check=False, what="health check", timeout=h.timeout + 30)
        if not res.ok:
            facts = res.facts()
            body = "\n".join(line for line in res.stdout.splitlines()
                             if line.split("=")[0] not in ("status", "release", "waited"))
            logs = s.remote.run(services.error_log_tail(s.paths, 12), check=False).stdout
            answered = facts.get("status", "none")
            answer = "no answer" if answered == "none" else f"answered {answered}"
            if facts.get("release") not in (release, "none", None):
                answer += f" from release {facts.get('release')} (still the old workers)"
            raise RemoteError(
                f"{s.remote.label}: health check failed: GET http://{health_host(app)}:"
                f"{app.http_port}{h.path} {answer}, expected {h.status} from release {release} "
                f"(waited {facts.get('waited', '?')}s)",
                ("--- response (first lines) ---\n" + body + "\n" if body.strip() else "")
                + ("--- app log (last lines) ---\n" + logs if logs.strip() else ""),
            )
        st.detail = f"{h.path} -> {res.facts().get('status')}"


def run_hooks(s: Session, point: str, release: str, revision: str) -> None:
    """Run the app's hooks for `point`, each timed; a failing hook raises with its output."""
    variables = {"WSGISHIP_RELEASE": release, "WSGISHIP_REVISION": revision,
                 "WSGISHIP_HOST": s.remote.label, "WSGISHIP_STAGE": point}
    for hook in s.app.hooks.get(point, ()):
        where = "local" if hook.local else "remote"
        with s.out.step(f"hook {point}") as st:
            st.detail = f"{where}: {hook.command[:70]}"
            if hook.local:
                res = subprocess.run(hook.command, shell=True, capture_output=True, text=True,
                                     cwd=s.app.source, env={**os.environ, **variables})
                if res.returncode != 0:
                    raise RemoteError(f"{s.remote.label}: local hook {point} failed (exit "
                                      f"{res.returncode}): {hook.command}",
                                      (res.stdout + res.stderr).strip())
                continue
            exports = " ".join(f"{k}={q(v)}" for k, v in variables.items())
            body = f"export {exports}\n" + run_in(s.paths.release(release),
                                                   ["bash", "-c", hook.command])
            user = app_user_for(s.app, s.remote.user)
            if user != s.remote.user:
                s.remote.run("$SUDO " + cmd("runuser", "-u", user, "--", "bash", "-c", body),
                             priv=True,
                             what=f"hook {point}: {hook.command}")
            else:
                s.remote.run(body, what=f"hook {point}: {hook.command}")


def app_user_for(app: App, login_user: str) -> str:
    if app.app_user:
        return app.app_user
    return "www-data" if login_user == "root" else login_user


@dataclass
class Deploy:
    remote: Remote
    app: App
    out: Reporter
    source: Source | None = None
    release: str = ""
    previous: str = ""
    switched: bool = False
    created: bool = False

    def run(self) -> str:
        """Deploy and return the release name; raise WsgishipError on failure."""
        started, t0 = now_iso(), time.monotonic()
        self.source = collect(self.app.source)
        if self.source.dirty:
            self.out.line(f"warning: {self.app.source} has uncommitted changes; shipping HEAD "
                          f"{self.source.short_rev}")
        self.release = release_name(self.source.short_rev)
        s = Session(self.remote, self.app, self.out, "deploy")
        with self.out.step("connect") as st:
            self.remote.open()
            s.lock()
            self.previous = os.path.basename(s.facts.get("current", ""))
            st.detail = f"{self.remote.user}@{self.remote.conn.host}, locked"
        try:
            try:
                self.updating(s)
                self.validating(s)
                run_hooks(s, "before_switch", self.release, self.source.revision)
                self.switched = True
                activate(s, self.release, self.previous)
                verify(s, self.release)
                run_hooks(s, "after_switch", self.release, self.source.revision)
                self.finishing(s, started, t0)
            except BaseException as exc:
                error = exc
                s.cleanup(lambda: self.failed(s, error, started, t0))
                raise
        finally:
            s.cleanup(s.unlock)
            self.remote.close()
        return self.release

    def updating(self, s: Session) -> None:
        p, app, src = s.paths, self.app, self.source
        assert src is not None
        key = venv.venv_key(src.requirements, app.python, s.facts.get("python", ""))
        configs = render(app, self.release, app_user_for(app, self.remote.user), src.revision)
        extra = {**configs, "REVISION": src.revision + "\n",
                 f"{CONFIG_DIR}/requirements.txt": src.requirements}
        with self.out.step("upload") as st:
            data = tarball(src, extra)
            upload = rel.upload_path(p, self.release)
            self.created = True
            self.remote.put(data, upload)
            self.remote.run(rel.unpack(p, self.release, upload, app.shared_files, app.shared_dirs),
                            what="unpack release")
            st.detail = f"{len(data) // 1024 + 1} KiB, releases/{self.release}"
        with self.out.step("venv") as st:
            res = self.remote.run(venv.ensure(p, self.release, key, app.python),
                                  what="pip install (venv " + key + ")")
            st.detail = f"{res.facts().get('venv', '?')} venvs/{key}"

    def validating(self, s: Session) -> None:
        with self.out.step("check app"):
            self.remote.run(services.import_check(s.paths, self.release),
                            what=f"import check of {self.app.wsgi} in the new venv")
        with self.out.step("check configs"):
            self.remote.run(services.nginx_check(s.paths, self.release)
                            + services.unit_check(s.paths, self.release, self.remote.label),
                            priv=True, what="nginx -t of the new site and service config check")

    def finishing(self, s: Session, started: str, t0: float) -> None:
        with self.out.step("prune") as st:
            res = self.remote.run(rel.prune(s.paths, self.app.keep_releases, self.release),
                                  what="prune")
            st.detail = f"{res.stdout.count('pruned')} removed"
        s.log({"release": self.release, "revision": self.source.revision if self.source else "",
               "started": started, "duration": round(time.monotonic() - t0, 2), "result": "ok"})

    def failed(self, s: Session, exc: BaseException, started: str, t0: float) -> None:
        reason = "interrupted" if isinstance(exc, KeyboardInterrupt) else (
            str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
        reason = reason.removeprefix(f"{self.remote.label}: ")
        p = s.paths
        if self.created:
            self.remote.run(rel.mark_failed(p, self.release, reason), what="mark failed",
                            check=False)
        if self.switched and self.previous:
            self.out.line(f"rolling back to {self.previous}")
            activate(s, self.previous, self.release)
            verify(s, self.previous)
        elif self.switched:
            self.out.line(f"first deploy failed after the switch: the site is DOWN; release "
                          f"{self.release} is kept for inspection ({p.release(self.release)})")
        s.log({"release": self.release, "revision": self.source.revision if self.source else "",
               "started": started, "duration": round(time.monotonic() - t0, 2),
               "result": "failed", "reason": reason,
               "rolled_back_to": self.previous if self.switched else None})


def read_state(remote: Remote, app: App) -> State:
    res = remote.run(state_command(paths_for(app)), what="read releases")
    return parse_state(res.stdout)


@dataclass
class Rollback:
    remote: Remote
    app: App
    out: Reporter
    to: str = ""

    def choose(self, state: State) -> str:
        """The release to go back to; an error (changing nothing) when there is none."""
        label = self.remote.label
        if self.to:
            target = state.get(self.to)
            known = ", ".join(r.name for r in state.releases if r.ok) or "none"
            if target is None:
                raise WsgishipError(f"{label}: no release {self.to!r} (good releases: {known})")
            if not target.ok:
                raise WsgishipError(f"{label}: release {self.to} is marked failed "
                                    f"({target.failed}); pick a good one: {known}")
            if target.name == state.current:
                raise WsgishipError(f"{label}: {self.to} is already current")
            return target.name
        if not state.current:
            raise WsgishipError(f"{label}: nothing deployed yet, nothing to roll back")
        previous = state.previous_good()
        if previous is None:
            raise WsgishipError(f"{label}: no good release before {state.current} to roll back to")
        return previous.name

    def run(self) -> str:
        started, t0 = now_iso(), time.monotonic()
        s = Session(self.remote, self.app, self.out, "rollback")
        with self.out.step("connect") as st:
            self.remote.open()
            s.lock()
            st.detail = f"{self.remote.user}@{self.remote.conn.host}, locked"
        try:
            state = read_state(self.remote, self.app)
            target = self.choose(state)
            from_release = state.current
            self.out.line(f"rolling back {from_release} -> {target}")
            try:
                activate(s, target, from_release)
                verify(s, target)
            except BaseException as exc:
                error = exc
                def back() -> None:
                    self.out.line(f"rollback failed ({str(error).splitlines()[0]}); "
                                  f"switching back to {from_release}")
                    activate(s, from_release, target)
                    s.log({"release": target, "from": from_release, "started": started,
                           "duration": round(time.monotonic() - t0, 2), "result": "failed",
                           "reason": str(error).splitlines()[0]})
                if from_release:
                    s.cleanup(back)
                raise
            s.log({"release": target, "from": from_release, "started": started,
                   "duration": round(time.monotonic() - t0, 2), "result": "ok"})
            return target
        finally:
            s.cleanup(s.unlock)
            self.remote.close()


def force_unlock(remote: Remote, app: App) -> str:
    """Remove the lock whoever holds it; say whose it was."""
    p = paths_for(app)
    remote.open()
    try:
        res = remote.run(rel.force_unlock(p), what="unlock")
    finally:
        remote.close()
    holder = res.stdout.strip()
    if not holder:
        return f"{remote.label}: no lock on {p.deploy_to}"
    return (f"{remote.label}: removed the lock on {p.deploy_to} held by "
            f"{describe_lock(holder, app.lock_stale_after)}")


@dataclass
class Setup:
    """`fab setup`: each step reports `changed: ...` or `ok` (already done)."""

    remote: Remote
    host: Host
    out: Reporter

    def keys(self) -> tuple[str, ...]:
        files = self.host.authorized_keys or (
            (self.host.identity.with_name(self.host.identity.name + ".pub"),)
            if self.host.identity else ())
        keys = []
        for path in files:
            try:
                lines = path.read_text(encoding="utf-8").splitlines()
            except OSError as exc:
                raise WsgishipError(f"hosts.{self.host.alias}.authorized_keys: cannot read "
                                    f"{path}: {exc.strerror}") from None
            keys += [line.strip() for line in lines if line.strip() and not line.startswith("#")]
        return tuple(keys)

    def run(self) -> int:
        app, host = self.host.app, self.host
        user = host.user or "root"
        app_user = app_user_for(app, user)
        p = paths_for(app)
        service_config = render(app, "setup", app_user, "")[f"{CONFIG_DIR}/service"]
        steps: list[tuple[str, str]] = [("os", setup.check_os())]
        extra = ("supervisor",) if app.service_manager == "supervisor" else ()
        steps.append(("packages", setup.packages(extra)))
        if user != "root":
            steps.append(("deploy user", setup.deploy_user(user, self.keys())))
        steps += [("layout", setup.layout(p, user, app_user)),
                  ("service", setup.service(p, service_config))]
        if user != "root":
            steps.append(("sudo rules", setup.sudoers(p, user)))
        steps.append(("nginx", setup.nginx(app.remove_default_site)))
        with self.out.step("connect") as st:
            self.remote.open()
            st.detail = f"{self.remote.user}@{self.remote.conn.host}"
        changed = 0
        try:
            for name, body in steps:
                with self.out.step(name) as st:
                    res = self.remote.run(body, root=True, check=False, what=f"setup: {name}",
                                          timeout=900)
                    if res.code == setup.UNSUPPORTED_OS:
                        raise WsgishipError(f"{self.remote.label}: {res.stderr.strip()}")
                    if not res.ok:
                        raise RemoteError(f"{self.remote.label}: setup step {name} failed "
                                          f"(exit {res.code})", res.output)
                    facts = res.facts()
                    if "changed" in facts:
                        changed += 1
                        st.detail = "changed: " + facts["changed"]
                    else:
                        st.detail = facts.get("os", "ok (already done)")
        finally:
            self.remote.close()
        return changed
