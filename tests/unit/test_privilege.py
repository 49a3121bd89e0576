"""Root commands come from one helper (wsgiship.privilege.root), and the sudoers rules that
`fab setup` installs are derived from the same builders: what a restricted deploy user may run
is exactly the set of granted root commands the deploy's scripts contain."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable

import pytest

from wsgiship import managers, privilege
from wsgiship.commands import checks, nginx, release, services, setup
from wsgiship.layout import Paths

NAME = "20250101T000000Z-abc1234"
SUDO_WORD = re.compile(r"\$SUDO ")  # `$SUDO cmd`, not `[ -n "$SUDO" ]`


def deploy_scripts(p: Paths, as_other: bool) -> dict[str, Callable[[], str]]:
    """Every privileged script a deploy or rollback sends, across its branches."""
    app_user = "web" if as_other else "deploy"
    return {
        "layout": lambda: release.layout(p, "deploy"),
        "install": lambda: services.install(p),
        "app_dirs": lambda: services.app_dirs(p, "deploy", app_user, ("media", ".env")),
        "reload_uwsgi": lambda: services.reload_uwsgi(p, NAME, "older", 2),
        "reload_uwsgi_first": lambda: services.reload_uwsgi(p, NAME, "", 2),
        "reload_nginx": lambda: nginx.reload_nginx(p),
        "checks": lambda: (checks.nginx_check(p, NAME) + checks.unit_check(p, NAME, "web1")
                           + nginx.site_check(p, NAME, "web1")),
        "error_log_tail": lambda: services.error_log_tail(p),
    }


def recorded(p: Paths, as_other: bool) -> dict[str, tuple[str, list[privilege.RootCommand]]]:
    """Each script's text and the root commands that went into it."""
    out = {}
    for name, build in deploy_scripts(p, as_other).items():
        with privilege.recording() as seen:
            text = build()
        out[name] = (text, list(seen))
    return out


@pytest.mark.parametrize("as_other", [False, True], ids=["own-user", "app-user"])
@pytest.mark.parametrize("manager", managers.names())
def test_every_sudo_in_a_script_is_a_root_command_of_the_helper(manager: str,
                                                                 as_other: bool) -> None:
    p = Paths("/srv/app", "app", manager)
    for name, (text, seen) in recorded(p, as_other).items():
        rest = text
        for line in sorted({str(c) for c in seen}, key=len, reverse=True):
            assert line in text, (name, line)
            rest = rest.replace(line, "ROOT_COMMAND")
        assert not SUDO_WORD.findall(rest), f"{name}: a $SUDO not built by root():\n{rest}"


@pytest.mark.parametrize("manager", managers.names())
def test_the_sudoers_rules_are_exactly_the_granted_root_commands_of_the_scripts(
        manager: str) -> None:
    p = Paths("/srv/app", "app", manager)
    granted = {c for as_other in (False, True) for _, seen in recorded(p, as_other).values()
               for c in seen if c.granted}
    rules_text = setup.sudo_rules(p, "deploy", "wsgiship-app")
    body = rules_text.split("=", 1)[1].split("\ndeploy ALL=")[0]
    rules = {r.strip() for r in body.replace("\\\n", "").split(",")}
    assert rules == {c.rule() for c in granted}
    # root: exactly those; the app's user: anything (it runs the code this user ships anyway)
    assert [line for line in rules_text.splitlines() if line.startswith("deploy ")] == [
        "deploy ALL=(root) NOPASSWD: WSGISHIP_APP", "deploy ALL=(wsgiship-app) NOPASSWD: ALL"]
    # nothing of nginx a restricted user could change the config with: no reload, no link
    assert not any(c.argv[0] == "ln" or c.argv[1:] == ("reload", "nginx") for c in granted)


def test_granted_commands_name_full_paths_and_no_shell() -> None:
    for manager in managers.names():
        p = Paths("/srv/app", "app", manager)
        for line in setup.sudo_rules(p, "deploy").splitlines()[2:-1]:  # no app-user line
            command = line.strip().rstrip(", \\")
            assert command.startswith("/usr/"), line
            assert not re.search(r"[;&|`$(){}<>*?]", command), line  # no shell, no wildcards


def test_the_not_granted_root_commands_are_the_ones_setup_does_for_a_restricted_user() -> None:
    p = Paths("/srv/app", "app")
    not_granted = {c.argv[0] for _, seen in recorded(p, True).values() for c in seen
                   if not c.granted}
    # layout (install -d, groupadd), the app's user and handing it its dirs (useradd, chown),
    # a changed unit or site (install, ln, systemctl daemon-reload/enable/reload nginx)
    assert not_granted == {"groupadd", "install", "chown", "useradd", "ln", "systemctl"}


@pytest.mark.parametrize("manager", managers.names())
def test_commands_on_the_apps_files_run_as_the_app_never_as_root(manager: str) -> None:
    p = Paths("/srv/app", "app", manager)
    for name, (_, seen) in recorded(p, True).items():
        for c in seen:  # no root command names the app's fifo, its /proc entries or its log
            assert not any(a in (p.fifo, p.app_log) or "/proc/" in a for a in c.argv), (name, c)
    reload = services.reload_uwsgi(p, NAME, "older", 2)
    assert f"$AS_APP timeout 5 tee {p.fifo}" in reload
    assert '$AS_APP readlink "/proc/$w/cwd"' in reload
    assert f"$AS_APP test -p {p.fifo}" in reload
    assert "sh -c" not in reload  # no path goes through a second shell


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
