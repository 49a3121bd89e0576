"""Root commands come from one helper (wsgiship.privilege.root), and the sudoers rules that
`fab setup` installs are derived from the same builders: what a restricted deploy user may run
is exactly the set of granted root commands the deploy's scripts contain.

The deploy's scripts are taken from where a deploy takes them: the checks before the switch,
and every step of the publish job (start the new slot, check it, switch traffic, install the
site, reload nginx, check, watch, retire the old slot; the failure, way-back and
before-the-switch branches), for a deploy with a previous release and for a first deploy. A
rollback sends the same job."""

from __future__ import annotations

import dataclasses
import io
import re
import subprocess
from collections.abc import Callable

import pytest
from script_commands import prefixed_commands

from wsgiship import managers, output, privilege
from wsgiship.commands import checks, nginx, release, services, setup
from wsgiship.commands import job as jobs
from wsgiship.config import Host
from wsgiship.layout import Paths
from wsgiship.ops import publish
from wsgiship.ops.session import Session
from wsgiship.remote import Remote

NAME = "20250101T000000Z-abc1234"
OLDER = "20241231T000000Z-0000001"
SUDO_WORD = re.compile(r"\$SUDO ")  # `$SUDO cmd`, not `[ -n "$SUDO" ]`
# `$SUDO -l CMD`: whether sudo allows root's command (supervisor's stop in the background)
SUDO_QUERY = re.compile(r"\$SUDO -l ([^>;&|]+?) *>")
# the job's lists of steps: forward, ok, failed, back, unswitched
PARTS = tuple(f.name for f in dataclasses.fields(jobs.Job) if str(f.type).startswith("list"))


def session(make_app: Callable[..., object], manager: str, as_other: bool) -> Session:
    """A session of login user deploy for app `app` in /srv/app, run by `manager`, whose deploys
    watch the new release for a while; the app runs as web (as_other) or as deploy itself.
    Nothing connects: the tests only build scripts."""
    app = make_app(name="app", deploy_to="/srv/app", service_manager=manager,
                   app_user="web" if as_other else "deploy", health={"watch": 30})
    out = output.Reporter("web1", output.Printer(io.BytesIO(), io.BytesIO()), live=False)
    return Session(remote=Remote(Host("web1", "192.0.2.1", app, user="deploy")), app=app,
                   out=out, action="deploy")


def publish_jobs(s: Session) -> dict[str, Callable[[], jobs.Job]]:
    """The jobs as a deploy builds them (ops.deploy), with a previous release and without."""
    return {"deploy job": lambda: publish.publish_job(s, NAME, OLDER, mark=True, watch=True),
            "first deploy job": lambda: publish.publish_job(s, NAME, "", mark=True, watch=True)}


def steps(job: jobs.Job) -> list[tuple[str, jobs.JobStep]]:
    return [(f"{part} {step.name}", step) for part in PARTS for step in getattr(job, part)]


def deploy_scripts(s: Session) -> dict[str, Callable[[], str]]:
    """Every privileged script a deploy or rollback sends, across its branches."""
    p = s.paths
    scripts: dict[str, Callable[[], str]] = {
        "layout": lambda: release.layout(p, "deploy"),
        "app_dirs": lambda: services.app_dirs(p, "deploy", s.app_user, ("media", ".env")),
        "checks": lambda: (checks.nginx_check(p, NAME) + checks.unit_check(p, NAME, "web1")
                           + nginx.site_check(p, NAME, "web1")),
    }
    for name, job in publish_jobs(s).items():
        scripts[name] = lambda job=job: "".join(step.body for _, step in steps(job()))
    return scripts


def recorded(s: Session) -> dict[str, tuple[str, list[privilege.RootCommand]]]:
    """Each script's text and the root commands that went into it."""
    out = {}
    for name, build in deploy_scripts(s).items():
        with privilege.recording() as seen:
            text = build()
        out[name] = (text, list(seen))
    return out


def both(make_app: Callable[..., object], manager: str) -> list[tuple[str, list]]:
    """recorded() for an app running as another user and as the login user."""
    return [v for as_other in (False, True)
            for v in recorded(session(make_app, manager, as_other)).values()]


def test_the_jobs_send_the_service_scripts(make_app) -> None:
    # what `recorded` covers: the publish job's steps are these builders' scripts
    s = session(make_app, "systemd", True)
    p, job = s.paths, publish_jobs(s)["deploy job"]()
    bodies = dict(steps(job))
    for where, script in [("forward start", services.start_slot(p, NAME)),
                          ("forward switch", services.switch_traffic(p)),
                          ("forward install", services.install(p)),
                          ("forward nginx", nginx.reload_nginx(p)),
                          ("forward retire", services.retire(p)),
                          ("back start", services.start_slot(p, OLDER))]:
        assert bodies[where].body.endswith(script), where
    assert PARTS == ("forward", "ok", "failed", "back", "unswitched")
    # every branch's privileged steps are there (the first deploy's failed one stops them all)
    assert {"forward watch", "back retire", "unswitched retire"} <= bodies.keys()
    first = dict(steps(publish_jobs(s)["first deploy job"]()))
    assert first["failed retire"].body.endswith(services.retire(p, keep_live=False, kill=True))


@pytest.mark.parametrize("as_other", [False, True], ids=["own-user", "app-user"])
@pytest.mark.parametrize("manager", managers.names())
def test_every_sudo_in_a_script_is_a_root_command_of_the_helper(make_app, manager: str,
                                                                 as_other: bool) -> None:
    asked = set()
    for name, (text, seen) in recorded(session(make_app, manager, as_other)).items():
        rest = text
        for line in sorted({str(c) for c in seen}, key=len, reverse=True):
            assert line in text, (name, line)
            rest = rest.replace(line, "ROOT_COMMAND")
        # a query asks for exactly a granted rule of a root command the script runs
        queries = SUDO_QUERY.findall(rest)
        assert set(queries) <= {c.rule() for c in seen if c.granted}, (name, queries)
        asked.update(queries)
        rest = SUDO_QUERY.sub(">", rest)
        assert not SUDO_WORD.findall(rest), f"{name}: a $SUDO not built by root():\n{rest}"
    assert asked == ({f"/usr/bin/supervisorctl stop wsgiship-app-{s}" for s in "ab"}
                     if manager == "supervisor" else set())


def step_prefixes(s: Session) -> dict[tuple[str, str], tuple[bool, bool, bool, bool]]:
    """(job, step) -> whether the step sets $SUDO, uses it, sets $AS_APP, uses it."""
    out = {}
    for job_name, job in publish_jobs(s).items():
        for name, step in steps(job()):
            head = step.body.splitlines()[:2]  # what job_body puts first
            out[job_name, name] = (any(x.startswith("SUDO=") for x in head),
                                   bool(SUDO_WORD.search(step.body)),
                                   any(x.startswith("AS_APP=") for x in head),
                                   "$AS_APP " in step.body)
    return out


@pytest.mark.parametrize("as_other", [False, True], ids=["own-user", "app-user"])
def test_a_step_runs_privileged_or_as_the_app_exactly_when_it_needs_to(
        make_app, as_other: bool) -> None:
    # a $SUDO or $AS_APP the step does not set stops it (set -u); one it sets but uses with no
    # service manager is a privilege the step never needs
    found = {m: step_prefixes(session(make_app, m, as_other)) for m in managers.names()}
    for where in found["systemd"]:
        for m in managers.names():
            sets_sudo, uses_sudo, sets_app, uses_app = found[m][where]
            assert sets_sudo or not uses_sudo, (m, where)
            assert sets_app == uses_app, (m, where)
        # (the watch step asks supervisor for a pid as root, systemd without)
        needs = any(found[m][where][1] for m in managers.names())
        assert found["systemd"][where][0] == needs, where


@pytest.mark.parametrize("manager", managers.names())
def test_the_sudoers_rules_are_exactly_the_granted_root_commands_of_the_scripts(
        make_app, manager: str) -> None:
    granted = {c for _, seen in both(make_app, manager) for c in seen if c.granted}
    p = Paths("/srv/app", "app", manager)
    rules_text = setup.sudo_rules(p, "deploy", "wsgiship-app")
    body = rules_text.split("=", 1)[1].split("\ndeploy ALL=")[0]
    rules = {r.strip() for r in body.replace("\\\n", "").split(",")}
    assert rules == {c.rule() for c in granted}
    # root: exactly those; the app's user: anything (it runs the code this user ships anyway)
    assert [line for line in rules_text.splitlines() if line.startswith("deploy ")] == [
        "deploy ALL=(root) NOPASSWD: WSGISHIP_APP", "deploy ALL=(wsgiship-app) NOPASSWD: ALL"]
    # nothing of nginx a restricted user could change the config with: no reload, no link
    assert not any(c.argv[0] == "ln" or c.argv[1:] == ("reload", "nginx") for c in granted)
    # nor of the service's config: no install, no daemon-reload, no enable
    assert not any(c.argv[0] == "install" or c.argv[1] in ("daemon-reload", "enable")
                   for c in granted)


def test_granted_commands_name_full_paths_and_no_shell() -> None:
    for manager in managers.names():
        p = Paths("/srv/app", "app", manager)
        for line in setup.sudo_rules(p, "deploy").splitlines()[2:-1]:  # no app-user line
            command = line.strip().rstrip(", \\")
            assert command.startswith("/usr/"), line
            assert not re.search(r"[;&|`$(){}<>*?]", command), line  # no shell, no wildcards


@pytest.mark.parametrize("manager, apply", [
    ("systemd", {("systemctl", "daemon-reload"), ("systemctl", "enable")}),
    ("supervisor", set()),  # supervisorctl reread and update are granted (its slots' start)
])
def test_the_not_granted_root_commands_are_the_ones_setup_does_for_a_restricted_user(
        make_app, manager: str, apply: set[tuple[str, str]]) -> None:
    not_granted = {c.argv[:2] if c.argv[0] == "systemctl" else c.argv[:1]
                   for _, seen in both(make_app, manager) for c in seen if not c.granted}
    # layout (install -d, groupadd), the app's user and handing it its dirs (useradd, chown),
    # a changed service config (install, then the manager told) or site (install, ln, reload)
    assert not_granted == {("groupadd",), ("install",), ("chown",), ("useradd",), ("ln",),
                           ("systemctl", "reload"), *apply}


@pytest.mark.parametrize("manager", managers.names())
def test_commands_on_the_apps_files_run_as_the_app_never_as_root(make_app, manager: str) -> None:
    s = session(make_app, manager, True)
    p = s.paths
    inside = re.compile(re.escape(p.run_dir) + '"?/')  # a path in the run dir (not the dir)
    checked = set()
    for name, (text, seen) in recorded(s).items():
        for c in seen:  # no root command names what is in the run dir, /proc or the log
            assert not any(inside.match(a) or a == p.app_log or "/proc/" in a
                           for a in c.argv), (name, c)
        for prefix, word, args in prefixed_commands(text):
            # awk only compares a socket's path with what ss prints; it opens nothing
            if ((inside.search(args) or p.app_log in args) and word != "awk"
                    or word in ("kill", "pkill", "tee")):  # the app's processes, its fifo
                assert prefix == "$AS_APP", (name, word, args)
                checked.add(word)
    # the slot's link and socket, nginx's link, the log, a failed release's workers; the fifo
    # of an older wsgiship's single uWSGI (systemd's graceful stop of it)
    assert checked == {"readlink", "test", "ln", "mv", "tail", "kill", "pkill",
                       *(["timeout"] if manager == "systemd" else [])}
    for script in (services.start_slot(p, NAME), services.switch_traffic(p),
                   services.retire(p), services.retire(p, keep_live=False, kill=True)):
        assert "sh -c" not in script  # no path goes through a second shell


@pytest.mark.parametrize("arg, escaped", [("a,b", "a\\,b"), ("k=v", "k\\=v"), ("h:m", "h\\:m"),
                                          ("back\\slash", "back\\\\slash")])
def test_rule_escapes_sudoers_special_characters(arg: str, escaped: str) -> None:
    assert privilege.root("ln", "-sfn", arg, "/x").rule() == f"/usr/bin/ln -sfn {escaped} /x"


def test_a_rule_for_a_command_without_a_known_path_is_refused() -> None:
    with pytest.raises(ValueError, match="no sudo rule for chown"):
        privilege.root("chown", "a", "/b", granted=False).rule()


def test_root_quotes_every_argument_in_the_script() -> None:
    line = str(privilege.root("chown", "x'; rm -rf / #", "/srv/a b"))
    assert line == "$SUDO chown 'x'\"'\"'; rm -rf / #' '/srv/a b'"


def test_recording_sees_only_what_its_block_builds() -> None:
    with privilege.recording() as outer:
        str(privilege.root("systemctl", "reload", "nginx"))
        with privilege.recording() as inner:
            str(privilege.root("nginx", "-t", "-q"))
    str(privilege.root("systemctl", "start", "nginx"))
    assert [c.argv for c in outer] == [("systemctl", "reload", "nginx"), ("nginx", "-t", "-q")]
    assert [c.argv for c in inner] == [("nginx", "-t", "-q")]


def test_visudo_accepts_the_rules(tmp_path) -> None:
    visudo = subprocess.run(["sh", "-c", "command -v visudo"], capture_output=True, text=True)
    if visudo.returncode != 0:
        pytest.fail("visudo is missing: apt-get install sudo (make system-deps installs it)")
    for manager in managers.names():
        rules = tmp_path / f"rules-{manager}"
        rules.write_text(setup.sudo_rules(Paths("/srv/my-app", "my-app", manager), "deploy"))
        res = subprocess.run([visudo.stdout.strip(), "-c", "-q", "-f", str(rules)],
                             capture_output=True, text=True)
        assert res.returncode == 0, res.stdout + res.stderr
