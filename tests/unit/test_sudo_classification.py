"""Which commands carry $SUDO (root's) or $AS_APP (the app's user's), across every branch of the
privileged scripts; and that the fakes refuse a root command run without $SUDO, so the executed
tests elsewhere would notice."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from fakes import (
    MANAGERS,
    NAME,
    SITE,
    as_app,
    as_deploy,
    calls,
    current_release,
    local_runs,
    priv,
    rel,
    site,
    svc_paths,
)
from script_commands import commands, prefixed_commands

from wsgiship import privilege, shell
from wsgiship.commands import checks, nginx, release, services
from wsgiship.layout import Paths

# each script's first root command, run without $SUDO: (the command the fakes refuse, its call)
REFUSED = {
    "install": ("install", "install -m 644 -o root -g root "),
    "app_dirs": ("useradd", "useradd --system "),
    "start": ("systemctl", "systemctl stop wsgiship-app@b.service"),  # left in the free slot
    "retire": ("systemctl", "systemctl stop --no-block wsgiship-app@b.service"),  # the free slot
    "nginx": ("nginx", "nginx -t -q"),
    "layout": ("groupadd", "groupadd --system www-data"),
}


@pytest.mark.parametrize("script", REFUSED)
def test_a_root_command_without_sudo_fails_under_the_fakes(deploy: Path, fakebin: Path, sh,
                                                           script: str) -> None:
    # the fakes' check the executed tests rely on: without $SUDO a deploy user gets refused
    current_release(deploy, "systemd")
    site(deploy, rel(2), SITE.replace("80", "81"))
    (deploy / "releases" / rel(2) / ".wsgiship" / "uwsgi.ini").write_text(
        "[uwsgi]\nsocket = %d/uwsgi-$(WSGISHIP_SLOT).sock\n")
    (deploy / "shared" / "run" / "uwsgi.sock").symlink_to("uwsgi-a.sock")  # slot a is live
    p = svc_paths(deploy)
    body = {"install": services.install(p),
            "app_dirs": services.app_dirs(p, "deploy", "web"),
            "start": as_app(services.start_slot(p, rel(2))),
            "retire": as_app(services.retire(p)),
            "nginx": nginx.reload_nginx(p),
            "layout": release.layout(p, "deploy")}[script]
    # (WSGISHIP_SITE: as the job's install step hands it on after installing the site)
    res = sh(priv(body, ""), env=as_deploy(fakebin, GETENT_RC="2", ACTIVE="1",
                                           WSGISHIP_SITE="installed"))
    refused, call = REFUSED[script]
    assert res.returncode == 77, res.stderr
    assert f"{refused}: permission denied (run as deploy, not root)" in res.stdout + res.stderr
    assert any(c.startswith(call) for c in calls(fakebin)), calls(fakebin)


def test_a_root_command_as_the_app_fails_under_the_fakes(fakebin: Path, sh) -> None:
    # acting as the app's user is not acting as root: the fakes refuse root's commands then too
    res = sh(priv(as_app("$AS_APP systemctl restart wsgiship-app", "sudo -n -u web --"),
                  "sudo -n"), env=as_deploy(fakebin))
    assert res.returncode == 77
    assert "permission denied (run as web, not root)" in res.stderr


ROOT_SYSTEMCTL = {"start", "stop", "disable", "reload", "daemon-reload", "enable"}


READ_SYSTEMCTL = {"is-active", "show", "status"}


ROOT_COMMANDS = {"install", "nginx", "supervisorctl", "chown", "groupadd", "useradd"}


# links and renames: who makes them depends on where: root under /etc (nginx's site), the app's
# user in the run dir it owns (nginx's socket link), the deploy user in its tree (slot links)
FILE_COMMANDS = {"ln", "mv", "rm", "mkdir"}
RUN_DIR = "/srv/app/shared/run/"


# what the scripts do as the app's user (besides its links, above): its run dir (sockets, the
# old fifo), its log, hooks, and its workers (a failed release's, killed)
AS_APP_COMMANDS = {"timeout", "test", "readlink", "tail", "bash", "kill", "pkill"}


# read-only, or the script's own shell work
SHELL_WORDS = {"export", "case", "esac", "echo", "exit", "true", "sleep", "seq", "set", "if",
               "then", "else", "elif", "fi", "for", "while", "do", "done", "break", "printf"}


# `sudo -n -l`: site_check asks what sudo allows, it runs nothing through it
PLAIN_COMMANDS = {"stat", "cmp", "readlink", "getent", "journalctl", "grep", "id", "diff", "sudo",
                  "sed", "ss", "awk", "tr", *SHELL_WORDS}


def script_commands(text: str) -> list[tuple[str, str, str]]:
    """prefixed_commands of a script, its single-quoted text (messages, sed and awk programs)
    emptied first (its `;` and `|` are not the script's), and its case patterns (`a|b)`) made
    `;` (the command after one starts there)."""
    # (an apostrophe inside a quoted message is shlex.quote's '"'"': one quoted text goes on)
    text = re.sub(r"'[^']*'", "''", text.replace("'\"'\"'", ""))
    return prefixed_commands(re.sub(r"(\bin\s|;;)\s*[\w*|]+\)", r"\1;", text))


def sudo_scripts(manager: str, as_other: bool) -> dict[str, str]:
    p = Paths("/srv/app", "app", manager)
    return {
        "install": services.install(p),
        "app_dirs": services.app_dirs(p, "deploy", "web" if as_other else "deploy", ("media",)),
        "start_slot": services.start_slot(p, NAME),
        "switch_traffic": services.switch_traffic(p),
        "retire": services.retire(p),
        "retire_failed": services.retire(p, keep_live=False, kill=True),
        "slot_pid": services.slot_pid(p),  # (the watch step's root part)
        "reload_nginx": nginx.reload_nginx(p),
        "site_check": nginx.site_check(p, NAME, "web1"),
        "error_log_tail": services.error_log_tail(p),
        "hook": privilege.as_app("bash", "-c", "python manage.py migrate --noinput"),
        "layout": release.layout(p, "deploy"),
    }


def classified(manager: str, as_other: bool) -> dict[str, set[str]]:
    """Check each command of each script: its prefix is the one its kind needs. Returns what
    was seen, per script: `[prefix] command` (systemctl and supervisorctl with their verb)."""
    seen: dict[str, set[str]] = {}
    for name, text in sudo_scripts(manager, as_other).items():
        for prefix, word, args in script_commands(text):
            sub = args.split()[0] if args else ""
            where = f"{name}: {prefix} {word} {args}"
            if word in FILE_COMMANDS:
                target = args.split()[-1]
                assert prefix == ("$SUDO" if target.startswith("/etc/") else
                                  "$AS_APP" if target.startswith(RUN_DIR) else ""), where
            elif prefix == "$AS_APP":
                assert word in AS_APP_COMMANDS, where
            elif prefix == "$SUDO" and word == "-l":
                # `$SUDO -l CMD`: asks whether sudo allows root's command (by its full path, as
                # the sudoers rule names it); runs nothing
                assert sub.startswith("/usr/") and sub.rsplit("/")[-1] in ROOT_COMMANDS, where
            elif word == "systemctl":
                assert sub in ROOT_SYSTEMCTL | READ_SYSTEMCTL, where
                assert sub != "reload" or args == "reload nginx", where  # the app's: never
                assert (prefix == "$SUDO") == (sub in ROOT_SYSTEMCTL), where
            elif word in ROOT_COMMANDS:
                assert prefix == "$SUDO", where
            else:
                assert word in PLAIN_COMMANDS, f"unclassified command: {where}"
                assert prefix == "", where
            if word in ("systemctl", "supervisorctl"):
                word = f"{word} {sub}"
            if word not in SHELL_WORDS:
                seen.setdefault(name, set()).add(f"{prefix} {word}".strip())
    return seen


def prefixed(seen: set[str]) -> set[str]:
    return {c for c in seen if c.startswith("$")}


def slot_commands(manager: str) -> dict[str, set[str]]:
    """The root and the app's commands of start_slot and retire, per manager."""
    if manager == "systemd":
        start = {"$SUDO systemctl stop", "$SUDO systemctl daemon-reload", "$SUDO systemctl enable",
                 "$SUDO systemctl start"}
        retire = {"$SUDO systemctl stop", "$SUDO systemctl disable", "$AS_APP test",
                  "$AS_APP timeout"}  # the fifo of the single uWSGI of before
    else:
        start = {"$SUDO supervisorctl status", "$SUDO supervisorctl stop",
                 "$SUDO supervisorctl reread", "$SUDO supervisorctl update",
                 "$SUDO supervisorctl start", "$SUDO supervisorctl tail"}
        retire = {"$SUDO supervisorctl status", "$SUDO supervisorctl pid",
                  "$SUDO supervisorctl stop", "$SUDO supervisorctl update",
                  "$SUDO -l"}  # may it stop a slot? (its stop runs in the background)
    return {"start_slot": start | {"$SUDO install", "$AS_APP readlink", "$AS_APP tail",
                                   "$AS_APP test"},
            "retire": retire | {"$AS_APP readlink"},  # nginx's link: which slot is live
            "retire_failed": retire | {"$AS_APP pkill", "$AS_APP kill"}}


@pytest.mark.parametrize("as_other", [False, True], ids=["own-user", "app-user"])
@pytest.mark.parametrize("manager", MANAGERS)
def test_exactly_the_root_commands_carry_sudo(manager: str, as_other: bool) -> None:
    seen = classified(manager, as_other)
    # the checks above saw the commands that matter (a parse that found nothing would pass)
    assert seen["install"] == {"cmp", "readlink", "stat", "grep", "$SUDO install", "$SUDO ln"}
    assert seen.get("app_dirs", set()) == ({"id", "$SUDO useradd", "stat", "$SUDO chown"}
                                           if as_other else set())
    for name, wanted in slot_commands(manager).items():
        assert prefixed(seen[name]) == wanted, name
    # the slot's link is the deploy user's; the manager reads its state without root
    assert seen["start_slot"] >= {"grep", "readlink", "mkdir", "ln", "mv", "cmp"}
    assert seen["retire"] >= {"rm", "ss", "awk"}
    if manager == "systemd":
        assert seen["start_slot"] >= {"systemctl is-active", "systemctl status", "journalctl"}
        assert seen["retire"] >= {"systemctl is-active", "systemctl show"}
        assert seen["slot_pid"] == {"systemctl show"}
    else:
        assert not any("systemctl" in c for c in seen["start_slot"] | seen["retire"])
        assert seen["slot_pid"] == {"$SUDO supervisorctl pid"}
    assert seen["switch_traffic"] == {"$AS_APP ln", "$AS_APP mv"}
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
    assert "$SUDO" not in checks.nginx_check(p, NAME)
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
