"""wsgiship.managers: the registry, each manager's files and packages, and that the root commands
of its snippets carry $SUDO (and are exactly the ones the sudo rules grant)."""

from __future__ import annotations

from pathlib import Path

import pytest
from fakes import commands

from wsgiship import managers, privilege
from wsgiship.managers import ServiceManager, Supervisor, Systemd
from wsgiship.shell import cmd

TEMPLATES = Path(__file__).resolve().parents[2] / "templates"
DEPLOY_SNIPPETS = ("is_active", "start", "restart", "graceful", "main_pid", "why_not_started",
                   "apply_config")
SETUP_SNIPPETS = ("setup_enable", "setup_apply")
# which of a manager's commands need root: systemctl by verb, supervisorctl always (its socket
# is root's), journalctl never (the deploy user reads the journal as a member of adm)
ROOT_VERBS = {"systemctl": {"start", "reload", "restart", "daemon-reload", "enable"},
              "supervisorctl": {"start", "status", "pid", "signal", "update", "reread", "tail"},
              "journalctl": set()}
READ_VERBS = {"systemctl": {"is-active", "show"}, "supervisorctl": set(), "journalctl": {"-u"}}


def test_names_list_the_managers() -> None:
    assert managers.names() == ("systemd", "supervisor")
    assert managers.MANAGERS == {"systemd": Systemd, "supervisor": Supervisor}


@pytest.mark.parametrize("kind", ["upstart", "", "Systemd"])
def test_get_an_unknown_manager(kind: str) -> None:
    with pytest.raises(ValueError) as info:
        managers.get(kind, "wsgiship-shop")
    assert str(info.value) == f"unknown service manager {kind!r} (known: systemd, supervisor)"


@pytest.mark.parametrize("kind, cls, service_file, template, packages", [
    ("systemd", Systemd, "/etc/systemd/system/wsgiship-shop.service", "systemd.service.j2", ()),
    ("supervisor", Supervisor, "/etc/supervisor/conf.d/wsgiship-shop.conf", "supervisor.conf.j2",
     ("supervisor",)),
])
def test_each_manager(kind: str, cls: type[ServiceManager], service_file: str, template: str,
                      packages: tuple[str, ...]) -> None:
    m = managers.get(kind, "wsgiship-shop")
    assert type(m) is cls and m.name == kind and m.service == "wsgiship-shop"
    assert m.service_file("wsgiship-shop") == service_file
    assert (m.template, m.packages) == (template, packages)
    assert (TEMPLATES / template).is_file()


def snippets(m: ServiceManager, names: tuple[str, ...]) -> tuple[dict[str, str], list[privilege.RootCommand]]:
    """The snippets' text, and the root commands they put in."""
    with privilege.recording() as seen:
        texts = {name: getattr(m, name) for name in names}
    return texts, seen


@pytest.mark.parametrize("kind", managers.names())
@pytest.mark.parametrize("snippet", DEPLOY_SNIPPETS)
def test_deploy_snippets_run_exactly_the_root_commands_with_sudo(kind: str, snippet: str) -> None:
    m = managers.get(kind, "wsgiship-shop")
    texts, seen = snippets(m, (snippet,))
    text = texts[snippet]
    for c in seen:
        assert "$SUDO " + cmd(*c.argv) in text, (c, text)
    found = [(sudo, word, args) for sudo, word, args in commands(text) if word in ROOT_VERBS]
    assert found, text  # every snippet drives its manager
    for sudo, word, args in found:
        verb = args.split()[0]
        assert verb in ROOT_VERBS[word] | READ_VERBS[word], (word, args)
        assert sudo == (verb in ROOT_VERBS[word]), f"{snippet}: {word} {args}"


@pytest.mark.parametrize("kind", managers.names())
def test_the_granted_commands_are_the_deploys_root_commands(kind: str) -> None:
    m = managers.get(kind, "wsgiship-shop")
    _, seen = snippets(m, DEPLOY_SNIPPETS)
    granted = m.granted()
    assert all(c.granted for c in granted)
    # what a restricted deploy user may run is what the snippets run with sudo, but for the
    # commands that need root itself (systemd's daemon-reload and enable, done by fab setup)
    assert {c for c in seen if c.granted} == set(granted)
    assert len(set(granted)) == len(granted)
    for c in granted:
        assert c.rule().split()[0] == privilege.FULL_PATHS[c.argv[0]]


def test_systemd_leaves_the_unit_changes_to_root() -> None:
    _, seen = snippets(managers.get("systemd", "wsgiship-shop"), ("apply_config",))
    assert seen == [privilege.RootCommand(("systemctl", "daemon-reload"), granted=False),
                    privilege.RootCommand(("systemctl", "enable", "-q", "wsgiship-shop"), granted=False)]


@pytest.mark.parametrize("kind", managers.names())
def test_setup_snippets_run_as_root_without_sudo(kind: str) -> None:
    texts, seen = snippets(managers.get(kind, "wsgiship-shop"), SETUP_SNIPPETS)
    assert seen == []
    for text in texts.values():
        assert "$SUDO" not in text


@pytest.mark.parametrize("kind", managers.names())
def test_snippets_quote_the_service_name(kind: str) -> None:
    hostile = "svc'; rm -rf / #"
    texts, _ = snippets(managers.get(kind, hostile), DEPLOY_SNIPPETS + SETUP_SNIPPETS)
    for name, text in texts.items():
        if name in DEPLOY_SNIPPETS:
            assert cmd(hostile) in text, name
        assert "rm -rf" not in text.replace(cmd(hostile), ""), name
