"""Which commands carry $SUDO (root's) or $AS_APP (the app's user's), across every branch of the
privileged scripts; and that the fakes refuse a root command run without $SUDO, so the executed
tests elsewhere would notice."""

from __future__ import annotations

from pathlib import Path

import pytest
from fakes import (
    MANAGERS,
    NAME,
    SITE,
    as_app,
    as_deploy,
    commands,
    current_release,
    local_runs,
    prefixed_commands,
    priv,
    rel,
    site,
    svc_paths,
)

from wsgiship import privilege, shell
from wsgiship.commands import checks, nginx, release, services
from wsgiship.layout import Paths


@pytest.mark.parametrize("script", ["install", "app_dirs", "uwsgi", "nginx", "layout"])
def test_a_root_command_without_sudo_fails_under_the_fakes(deploy: Path, fakebin: Path, sh,
                                                           script: str) -> None:
    # the fakes' check the executed tests rely on: without $SUDO a deploy user gets refused
    current_release(deploy, "systemd")
    site(deploy, rel(2), SITE.replace("80", "81"))
    p = svc_paths(deploy)
    body = {"install": services.install(p),
            "app_dirs": services.app_dirs(p, "deploy", "web"),
            "uwsgi": as_app(services.reload_uwsgi(p, rel(2), rel(1), 2, wait=0)),
            "nginx": nginx.reload_nginx(p),
            "layout": release.layout(p, "deploy")}[script]
    # (WSGISHIP_SITE: as the job's install step hands it on after installing the site)
    res = sh(priv(body, ""), env=as_deploy(fakebin, GETENT_RC="2", ACTIVE="1",
                                           WSGISHIP_SITE="installed"))
    assert res.returncode == 77
    assert "permission denied (run as deploy, not root)" in res.stdout + res.stderr


def test_a_root_command_as_the_app_fails_under_the_fakes(fakebin: Path, sh) -> None:
    # acting as the app's user is not acting as root: the fakes refuse root's commands then too
    res = sh(priv(as_app("$AS_APP systemctl restart wsgiship-app", "sudo -n -u web --"),
                  "sudo -n"), env=as_deploy(fakebin))
    assert res.returncode == 77
    assert "permission denied (run as web, not root)" in res.stderr


ROOT_SYSTEMCTL = {"start", "reload", "restart", "daemon-reload", "enable"}


READ_SYSTEMCTL = {"is-active", "show"}


ROOT_COMMANDS = {"install", "ln", "nginx", "supervisorctl", "chown", "groupadd", "useradd"}


# what the scripts do as the app's user: its fifo, its workers' /proc entries, its log, hooks,
# and killing its own workers left in a failed release
AS_APP_COMMANDS = {"timeout", "test", "readlink", "tail", "bash", "kill"}


# read-only, or the script's own shell work (`chain` is reload_uwsgi's own function)
SHELL_WORDS = {"export", "case", "esac", "echo", "exit", "true", "sleep", "seq", "set", "if",
               "then", "else", "elif", "fi", "for", "while", "do", "done", "break", "chain",
               "printf"}


# `sudo -n -l`: site_check asks what sudo allows, it runs nothing through it
PLAIN_COMMANDS = {"stat", "ps", "cmp", "readlink", "getent", "journalctl", "pgrep", "grep", "id",
                  "diff", "sudo", *SHELL_WORDS}


def sudo_scripts(manager: str, as_other: bool) -> dict[str, str]:
    p = Paths("/srv/app", "app", manager)
    return {
        "install": services.install(p),
        "app_dirs": services.app_dirs(p, "deploy", "web" if as_other else "deploy", ("media",)),
        "reload_uwsgi": services.reload_uwsgi(p, NAME, "older", 2),
        "reload_nginx": nginx.reload_nginx(p),
        "site_check": nginx.site_check(p, NAME, "web1"),
        "error_log_tail": services.error_log_tail(p),
        "hook": privilege.as_app("bash", "-c", "python manage.py migrate --noinput"),
        "layout": release.layout(p, "deploy"),
    }


@pytest.mark.parametrize("as_other", [False, True], ids=["own-user", "app-user"])
@pytest.mark.parametrize("manager", MANAGERS)
def test_exactly_the_root_commands_carry_sudo(manager: str, as_other: bool) -> None:
    seen: dict[str, set[str]] = {}
    for name, text in sudo_scripts(manager, as_other).items():
        for prefix, word, args in prefixed_commands(text):
            sub = args.split()[0] if args else ""
            where = f"{name}: {prefix} {word} {args}"
            if prefix == "$AS_APP":
                assert word in AS_APP_COMMANDS, where
            elif word == "systemctl":
                assert sub in ROOT_SYSTEMCTL | READ_SYSTEMCTL or args == "reload nginx", where
                assert (prefix == "$SUDO") == (sub in ROOT_SYSTEMCTL), where
                word = f"systemctl {sub}"
            elif word in ROOT_COMMANDS:
                assert prefix == "$SUDO", where
            else:
                assert word in PLAIN_COMMANDS, f"unclassified command: {where}"
                assert prefix == "", where
            if word not in SHELL_WORDS:
                seen.setdefault(name, set()).add(f"{prefix} {word}".strip())
    # the checks above saw the commands that matter (a parse that found nothing would pass)
    apply = ({"$SUDO systemctl daemon-reload", "$SUDO systemctl enable"} if manager == "systemd"
             else {"$SUDO supervisorctl"})
    assert seen["install"] == {"cmp", "readlink", "stat", "grep", "$SUDO install", "$SUDO ln",
                               *apply}
    assert seen.get("app_dirs", set()) == ({"id", "$SUDO useradd", "stat", "$SUDO chown"}
                                           if as_other else set())
    assert seen["reload_uwsgi"] >= {"$AS_APP timeout", "$AS_APP test", "$AS_APP readlink",
                                    "$AS_APP tail", "$AS_APP kill", "readlink", "cmp", "pgrep",
                                    "ps"}
    if manager == "systemd":
        assert seen["reload_uwsgi"] >= {
            "systemctl is-active", "$SUDO systemctl start", "$SUDO systemctl restart",
            "$SUDO systemctl reload", "systemctl show"}
    else:
        assert "$SUDO supervisorctl" in seen["reload_uwsgi"]
        assert not any("systemctl" in c for c in seen["reload_uwsgi"])
    assert not any(c.startswith("$SUDO") and c.split()[1] in AS_APP_COMMANDS
                   for c in set().union(*seen.values()))
    assert seen["reload_nginx"] == {"systemctl is-active", "$SUDO nginx", "$SUDO systemctl reload",
                                    "$SUDO systemctl start"}
    assert seen["site_check"] == {"stat", "cmp", "grep", "sudo", "diff", "readlink"}
    assert seen["error_log_tail"] == {"$AS_APP tail"}
    assert seen["hook"] == {"$AS_APP bash"}
    assert seen["layout"] == {"getent", "$SUDO groupadd", "$SUDO install"}


def test_the_checks_before_the_switch_need_no_sudo() -> None:
    p = Paths("/srv/app", "app")
    for text in (checks.nginx_check(p, NAME), checks.import_check(p, NAME)):
        assert "$SUDO" not in text
    # unit_check only asks sudo what it allows (sudo -l), it runs nothing through it
    assert [c for c in commands(checks.unit_check(p, NAME, "web1")) if c[0]] == []


def test_remote_run_sets_sudo_for_privileged_scripts(monkeypatch: pytest.MonkeyPatch,
                                                     make_app, sh) -> None:
    from fabric import Config

    from wsgiship.config import Host
    from wsgiship.remote import Remote

    def remote(user: str, password: str | None = None) -> tuple[Remote, list[str]]:
        config = Config(overrides={"sudo": {"password": password}}) if password else None
        r = Remote(Host("web1", "192.0.2.1", make_app(), user=user), config)
        return r, local_runs(r, monkeypatch, sh)

    body = shell.script(['echo "[$SUDO]"'])
    r, seen = remote("root")
    assert r.run(body, priv=True).stdout == "[]\n" and seen == ["run"]
    r, seen = remote("deploy")
    assert r.run(body, priv=True).stdout == "[sudo -n]\n" and seen == ["run"]
    assert not r.run(body, check=False).ok  # unprivileged: no $SUDO at all (set -u)
    r, seen = remote("deploy", password="secret")
    assert r.run(body, priv=True).stdout == "[]\n" and seen == ["sudo"]
