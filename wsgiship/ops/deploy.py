"""`fab deploy` as its named stages; a failure in any of them runs `failed`.

    starting    connect, take the lock (create the layout on a first deploy); resolve what a
                dead client left
    updating    upload the release, build or reuse its venv
    validating  import the app in its venv, `nginx -t` the new site, check the service config
    publishing  on the server, as one job that no client death stops (ops/publish): switch
                `current`, install/reload uWSGI, reload nginx, health check through nginx;
                on failure mark the release failed and go back to the previous one
    finishing   prune old releases and venvs, append to deploys.log
    failed      mark the release failed, go back if it was published, log
    (always)    release the lock, disconnect

The app's hooks run around stages: first_deploy (only when the host has no current release)
then before_switch before publishing, after_switch after it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial

from .. import appwheel, wheelhouse
from ..commands import checks, nginx, project, services, venv
from ..commands import release as rel
from ..config import App
from ..errors import FleetStop, reason_of
from ..layout import CONFIG_DIR, SITE_DIR
from ..output import Reporter
from ..remote import Remote
from ..render import render
from ..source import Source, collect, tarball
from ..wheelhouse import Platform
from .hooks import FIRST_ONLY, POINTS, run_hooks
from .publish import Detached, Outcome, publish_job, recovering, run_job, staging_job, stop_staged
from .session import Session, locked, pause_point

STAGES = ("updating", "validating", "publishing", "finishing")


def venv_line(facts: dict[str, str], key: str, installer: str, rule: str) -> str:
    """What the venv step says: built or reused, by which installer, and the rule its packages
    came by (Source.venv_rule: `requirements.txt + pyuwsgi`, ...)."""
    how, count = facts.get("venv", "?"), facts.get("packages", "?")
    what = f"{count} package{'' if count == '1' else 's'}"
    what += f"; {rule}" if rule.startswith("no ") else f" from {rule}"
    if how == "reused":
        return f"reused venvs/{key} ({installer}: {what})"
    return f"{how} venvs/{key} with {installer}: {what}"


def release_name(short_rev: str) -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + short_rev


@dataclass
class Deploy:
    remote: Remote
    app: App
    out: Reporter
    source: Source = field(init=False)
    s: Session = field(init=False)
    release: str = ""
    previous: str = ""
    published: Outcome | None = None  # how the publish job ended
    created: bool = False
    staged: bool = False  # a fleet's prepare started the new release in the spare slot

    def run(self) -> str:
        """Deploy and return the release name; raise WsgishipError on failure."""
        if not self.release:  # (a fleet's --serial gave it already)
            self.collect()
        with locked(self.remote, self.app, self.out, "deploy") as self.s:
            self.previous = recovering(self.s)
            try:
                for stage in STAGES:
                    self.stage(stage)
            except BaseException as exc:
                self.s.cleanup(partial(self.failed, exc))
                raise
        return self.release

    def collect(self, source: Source | None = None, release: str = "") -> None:
        """What is shipped and its release name: read here, or given (a fleet reads them once
        for all its hosts, so every host gets the same release)."""
        if source is None:
            source = collect(self.app.source, self.app.uwsgi_package)
            if source.dirty:
                self.out.line(f"warning: {self.app.source} has uncommitted changes; shipping "
                              f"HEAD {source.short_rev}")
            for warning in source.warnings:
                self.out.line(f"warning: {warning}")
        self.source = source
        self.release = release or release_name(source.short_rev)

    def stage(self, stage: str) -> None:
        pause_point(self.out, f"before:{stage}")
        self.hooks("before", stage)
        getattr(self, stage)()
        self.hooks("after", stage)

    # A fleet (ops/fleet) runs a deploy in three parts, under one lock: `prepare` on every
    # host, then `switch` (in batches), then `finish`; `undo` on any failure.

    def prepare(self) -> None:
        """Everything up to the switch: upload, venv, configs, the hooks before the switch, and
        the new release started in the spare slot and checked there."""
        self.stage("updating")
        self.stage("validating")
        pause_point(self.out, "before:publishing")
        self.hooks("before", "publishing")
        done = run_job(self.s, staging_job(self.s, self.release, self.previous), self.release,
                       name="stage")
        if done.error is not None:
            raise done.error
        self.staged = True
        pause_point(self.out, "before:switching")

    def switch(self) -> None:
        self.publishing()
        self.hooks("after", "publishing")

    def undo(self, exc: BaseException) -> None:
        """After a failure (its own, or a FleetStop): the new release marked failed, its staged
        uWSGI stopped, and a host it was published on sent back to its previous release."""
        self.s.cleanup(partial(self.failed, exc))

    def hooks(self, when: str, stage: str) -> None:
        for point, at in POINTS.items():
            # a first deploy: the host has no current release (none, or none left good)
            if at == (when, stage) and (point not in FIRST_ONLY or not self.previous):
                run_hooks(self.s, point, self.release, self.source.revision)

    def updating(self) -> None:
        p, app, src, remote = self.s.paths, self.app, self.source, self.remote
        installer = venv.installer_for(app.installer, self.s.facts.get("uv") == "1")
        if installer == "uv" and self.s.facts.get("uv") != "1":
            raise remote.error(f"app.installer is uv but uv is not on {remote.label}: run "
                               f"fab setup -H {remote.label} (it installs uv), or set installer: auto")
        key = venv.venv_key(src.requirements, app.python, self.s.facts.get("python", ""),
                            installer, app.wheelhouse)
        configs = render(app, self.release, self.s.app_user, src.revision)
        extra: dict[str, str | bytes] = {**configs, "REVISION": src.revision + "\n",
                                         f"{CONFIG_DIR}/requirements.txt": src.requirements}
        wheel = self.app_wheel() if app.install == "project" else None
        if wheel is not None:
            extra[f"{project.WHEEL_DIR}/{wheel.filename}"] = wheel.data
        find_links = self.wheels(key) if app.wheelhouse else ""
        with self.out.step("upload") as st:
            data = tarball(src, extra)
            upload = p.upload(self.release)
            self.created = True
            remote.put(data, upload)
            remote.run(rel.unpack(p, self.release, upload, app.shared_files, app.shared_dirs),
                       what="unpack release")
            remote.run(services.app_dirs(p, remote.user, self.s.app_user,
                                         app.shared_dirs + app.shared_files),
                       priv=True, what=f"the app's user {self.s.app_user} and its dirs")
            st.detail = f"{len(data) // 1024 + 1} KiB, releases/{self.release}"
        with self.out.step("venv") as st:
            res = remote.run(venv.ensure(p, self.release, key, app.python, installer, find_links),
                             what=f"{installer} install (venv {key})")
            st.detail = venv_line(res.facts(), key, installer, src.venv_rule)
        if wheel is not None:
            self.install_app(wheel, installer)

    def app_wheel(self) -> appwheel.Wheel:
        """install: project: the app's own wheel, built here from the files shipped."""
        with self.out.step("build") as st:
            wheel = appwheel.build(self.source, self.app.source, self.remote.label)
            st.detail = f"{wheel.filename} ({len(wheel.data) // 1024 + 1} KiB, {wheel.tool} here)"
        return wheel

    def install_app(self, wheel: appwheel.Wheel, installer: str) -> None:
        """install: project: the app into the release's own .wsgiship/site (first on its
        import path), without dependencies: the shared venv never holds the app's code."""
        with self.out.step("install") as st:
            res = self.remote.run(project.install(self.s.paths, self.release, wheel.filename,
                                                  installer),
                                  what=f"{installer} install of {wheel.filename}")
            scripts = res.facts().get("scripts", "0")
            st.detail = (f"{wheel.project} into the release's {SITE_DIR} ({installer} --no-deps: "
                         f"the venv stays shared), {scripts} script{'' if scripts == '1' else 's'}")

    def wheels(self, key: str) -> str:
        """The venv's wheels on the server (wheelhouse/<key>): built here for the server's
        platform and uploaded, unless the venv or its wheels are there already."""
        p, remote = self.s.paths, self.remote
        with self.out.step("wheelhouse") as st:
            if "wheelhouse=present" in remote.run(venv.wheelhouse_present(p, key),
                                                  what="wheelhouse check").stdout:
                st.detail = f"on the server (wheelhouse/{key})"
            else:
                platform = Platform.from_facts(self.s.facts, remote.label)
                data, count = wheelhouse.build(self.source.requirements, platform, remote.label)
                upload = f"{p.deploy_to}/.wheels-{key}.tar.gz"
                remote.put(data, upload, what="wheelhouse upload")
                remote.run(venv.unpack_wheelhouse(p, key, upload), what="unpack the wheelhouse")
                st.detail = (f"{count} wheels for {platform.describe()}, "
                             f"{len(data) // 1024 + 1} KiB uploaded")
        return f"{p.wheelhouse}/{key}"

    def validating(self) -> None:
        # (the app itself is checked by starting it beside the live one: the publish's start
        # and check steps, before any request can reach it)
        p = self.s.paths
        with self.out.step("check configs"):
            label = self.remote.label
            self.remote.run(checks.nginx_check(p, self.release)
                            + checks.unit_check(p, self.release, label)
                            + nginx.site_check(p, self.release, label),
                            priv=True, what="nginx -t of the new site and service config check")

    def publishing(self) -> None:
        job = publish_job(self.s, self.release, self.previous, mark=True, watch=True)
        self.published = run_job(
            self.s, job, self.release, f"rolling back to {self.previous}",
            record=self.s.entries(self.release, self.previous, revision=self.source.revision))
        if self.published.error is not None:
            raise self.published.error

    def finishing(self) -> None:
        with self.out.step("prune") as st:
            res = self.remote.run(rel.prune(self.s.paths, self.app.keep_releases, self.release),
                                  what="prune")
            st.detail = f"{res.stdout.count('pruned')} removed"
        self.s.record(self.release, "ok", revision=self.source.revision)

    def failed(self, exc: BaseException) -> None:
        if isinstance(exc, Detached):
            return  # the server finishes the publish job and logs it
        reason, done, back_to = reason_of(exc), self.published, None
        if self.staged and done is None:
            self.remote.run(stop_staged(self.s), priv=True, app_user=self.s.app_user,
                            what="stop the new uWSGI", check=False)
            self.out.line(f"release {self.release} never served a request: its uWSGI stopped; "
                          f"{self.previous or 'nothing'} keeps serving")
        if self.created and not (done and done.error):
            self.remote.run(rel.mark_failed(self.s.paths, self.release, reason),
                            what="mark failed", check=False)
        if done and done.error is None and not self.previous:
            self.out.line(f"release {self.release} stays live: a first deploy has no release to "
                          f"go back to")
        elif done and done.error is None:
            # published and checked, then a later step (an after_switch hook) failed
            self.out.line(f"rolling back to {self.previous}")
            # a release sent back only because of the rest of its fleet is healthy: its workers
            # finish their requests
            back = run_job(self.s, publish_job(self.s, self.previous, self.release, back=False,
                                               leaving_failed=not isinstance(exc, FleetStop)),
                           self.previous)
            if back.error is not None:
                raise back.error
            back_to = self.previous
        elif done and done.result == "back":
            back_to = self.previous
        elif done and done.result == "failed" and done.switched:
            self.out.line(f"first deploy failed after the switch: the site is DOWN; release "
                          f"{self.release} is kept for inspection "
                          f"({self.s.paths.release(self.release)})")
        elif done and done.result == "failed":
            self.out.line(f"release {self.release} never served a request: it failed before "
                          f"the switch; it is kept for inspection "
                          f"({self.s.paths.release(self.release)})")
        self.s.record(self.release, "failed", revision=self.source.revision, reason=reason,
                      rolled_back_to=back_to)
