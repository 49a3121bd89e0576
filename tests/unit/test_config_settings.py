"""wsgiship.config: host names that are not aliases, the service manager, hooks, the user the
app runs as, forward_agent (loading and errors: test_config.py)."""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

import pytest
from test_config import BASE, load_in

from wsgiship import config, schema
from wsgiship.errors import ConfigError

# --- host names that are not aliases ---


def test_typo_alias_suggests_the_close_one(write_hosts, tmp_path: Path) -> None:
    path = write_hosts("app: {name: a, wsgi: 'a:app'}\nhosts: {demo: {}, web1: {}}\n")
    inv = config.load(path)
    with pytest.raises(ConfigError) as err:
        inv.host("dmeo")
    assert str(err.value) == (f"{path}: unknown host alias 'dmeo'; did you mean 'demo'? "
                              f"(known: demo, web1)")


@pytest.mark.parametrize("name", ["web9.example.com", "demo.internal", "10.0.0.9", "localhost",
                                  "staging"])
def test_real_or_unrelated_names_are_plain_hosts(write_hosts, name: str) -> None:
    inv = config.load(write_hosts(
        "app: {name: a, wsgi: 'a:app', processes: 3}\nhosts: {demo: {port: 2222}}\n"))
    host = inv.host(name)
    assert host.alias == name and host.host == name
    assert host.port is None  # nothing from the demo alias leaks in
    assert host.app.processes == 3 and host.app.deploy_to == "/srv/a"


# --- service_manager ---


def test_service_manager_defaults_to_systemd(write_hosts) -> None:
    inv = config.load(write_hosts(BASE + "hosts: {h: {}}\n"))
    assert inv.host("h").app.service_manager == "systemd"


def test_service_manager_per_app_and_per_host(write_hosts) -> None:
    inv = config.load(write_hosts(BASE + "  service_manager: supervisor\n"
                                         "hosts:\n  old: {}\n  new: {service_manager: systemd}\n"))
    assert inv.host("old").app.service_manager == "supervisor"
    assert inv.host("new").app.service_manager == "systemd"
    assert inv.host("web9.example.com").app.service_manager == "supervisor"


@pytest.mark.parametrize("value,shown", [
    ("upstart", '"upstart"'),
    ("Systemd", '"Systemd"'),
    ('"systemd "', '"systemd "'),
    ("supervisord", '"supervisord"'),
    ("''", '""'),
    ("1", "1"),
    ("[systemd]", "a list"),
])
def test_service_manager_must_be_systemd_or_supervisor(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: str, shown: str) -> None:
    err = load_in(tmp_path, monkeypatch, BASE + f"  service_manager: {value}\n")
    assert str(err) == (f"hosts.yaml: app.service_manager: expected systemd or supervisor, "
                        f"got {shown}")


def test_service_manager_error_names_the_host(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    err = load_in(tmp_path, monkeypatch, BASE + "hosts:\n  web1: {service_manager: runit}\n")
    assert str(err) == ('hosts.yaml: hosts.web1.service_manager: expected systemd or '
                        'supervisor, got "runit"')


def test_a_trailing_newline_is_not_a_service_manager(write_hosts) -> None:
    with pytest.raises(ConfigError, match=r"app\.service_manager: expected"):
        config.load(write_hosts(BASE + '  service_manager: "systemd\\n"\n'))


# --- hooks ---


def test_hooks_default_to_none(write_hosts) -> None:
    assert dict(config.load(write_hosts(BASE + "hosts: {h: {}}\n")).host("h").app.hooks) == {}


def test_hooks_forms(write_hosts) -> None:
    inv = config.load(write_hosts(BASE + """\
  hooks:
    before_switch:
      - python manage.py migrate --noinput
      - local: ./notify "deploying $WSGISHIP_RELEASE"
      - remote: python manage.py collectstatic --noinput
    after_switch: curl -fsS http://127.0.0.1/healthz
hosts: {h: {}}
"""))
    hooks = inv.host("h").app.hooks
    assert hooks["before_switch"] == (
        config.Hook("python manage.py migrate --noinput"),
        config.Hook('./notify "deploying $WSGISHIP_RELEASE"', local=True),
        config.Hook("python manage.py collectstatic --noinput", local=False),
    )
    assert hooks["after_switch"] == (config.Hook("curl -fsS http://127.0.0.1/healthz"),)


def test_a_single_local_hook_needs_no_list(write_hosts) -> None:
    inv = config.load(write_hosts(BASE + "  hooks: {after_switch: {local: make notify}}\n"))
    assert inv.app["hooks"]["after_switch"] == (config.Hook("make notify", local=True),)


def test_a_first_deploy_hook_point(write_hosts) -> None:
    inv = config.load(write_hosts(BASE + "  hooks: {first_deploy: [flask --app shop init-db,"
                                         " {local: make seed}]}\n"))
    assert inv.app["hooks"]["first_deploy"] == (config.Hook("flask --app shop init-db"),
                                                config.Hook("make seed", local=True))


def test_hooks_are_frozen_and_merge_per_point(write_hosts) -> None:
    inv = config.load(write_hosts(BASE + """\
  hooks:
    before_switch: [migrate]
    after_switch: [smoke]
hosts:
  web1:
    hooks: {after_switch: [smoke-web1, {local: notify}]}
  web2: {}
"""))
    web1, web2 = inv.host("web1").app.hooks, inv.host("web2").app.hooks
    assert web1["before_switch"] == (config.Hook("migrate"),)
    assert web1["after_switch"] == (config.Hook("smoke-web1"), config.Hook("notify", local=True))
    assert web2["after_switch"] == (config.Hook("smoke"),)
    with pytest.raises(TypeError):
        web1["after_switch"] = ()  # type: ignore[index]
    with pytest.raises(dataclasses.FrozenInstanceError):
        web1["before_switch"][0].command = "rm -rf /"  # type: ignore[misc]


@pytest.mark.parametrize("hooks,expected,offending", [
    ("[migrate]", "a mapping of hook point (first_deploy, before_switch, after_switch) to a "
                  "list of commands", None),
    ("migrate", "a mapping of hook point", None),
    ("{before_deploy: [migrate]}", "hook points first_deploy, before_switch or after_switch",
     '"before_deploy"'),
    ("{before_switch: 3}", "a list of commands under before_switch", None),
    ("{before_switch: null}", "a list of commands under before_switch", None),
    ("{after_switch: ['']}", "under after_switch: a command string, or {local: command}", '""'),
    ("{after_switch: ['  ']}", "under after_switch: a command string", '"  "'),
    ("{after_switch: [3]}", "under after_switch: a command string", "3"),
    ("{after_switch: [[a, b]]}", "under after_switch: a command string", "a list"),
    ("{after_switch: [{shell: make}]}", "under after_switch: a command string", "a mapping"),
    ("{after_switch: [{local: make, remote: make}]}", "under after_switch: a command string",
     "a mapping"),
    ("{after_switch: [{local: [make]}]}", "under after_switch: a command string", "a mapping"),
    ("{after_switch: [{local: 3}]}", "under after_switch: a command string", "a mapping"),
])
def test_bad_hooks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, hooks: str, expected: str,
                   offending: str | None) -> None:
    err = str(load_in(tmp_path, monkeypatch, BASE + f"  hooks: {hooks}\n"))
    assert err.startswith(f"hosts.yaml: app.hooks: expected {expected}"), err
    if offending:  # the bad entry itself is named (not just the whole hooks mapping)
        assert err.endswith(f"got {offending}") and err.count(" got ") == 1, err


def test_bad_host_hooks_name_the_host(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    err = load_in(tmp_path, monkeypatch,
                  BASE + "hosts:\n  web1: {hooks: {after_swich: [smoke]}}\n")
    assert str(err).startswith("hosts.yaml: hosts.web1.hooks: expected hook points "
                               'first_deploy, before_switch or after_switch, got "after_swich"')


# --- the user the app runs as ---


@pytest.mark.parametrize("login", ["root", "deploy", ""])
def test_the_app_runs_as_its_own_user_whoever_logs_in(make_app, login: str) -> None:
    assert make_app().runs_as(login) == "wsgiship-hello"
    assert make_app(app_user="web").runs_as(login) == "web"


def h6(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()[:6]


@pytest.mark.parametrize("name, user", [
    ("hello", "wsgiship-hello"),
    ("9lives", "wsgiship-9lives"),
    ("my-app", "wsgiship-my-app"),
    ("x" * 23, "wsgiship-" + "x" * 23),                          # 32 characters: kept
    # a name that had to change gets a hash of itself: two apps never share a user
    ("Shop_Front", f"wsgiship-shop-front-{h6('Shop_Front')}"),   # lower case, _ -> -
    ("my_app", f"wsgiship-my-app-{h6('my_app')}"),
    ("x" * 40, f"wsgiship-{'x' * 16}-{h6('x' * 40)}"),           # cut, to 32 at most
    ("x" * 15 + "_y", f"wsgiship-{'x' * 15}-{h6('x' * 15 + '_y')}"),  # no "--" at the cut
])
def test_default_app_user(name: str, user: str) -> None:
    assert config.default_app_user(name) == user
    assert len(user) <= 32 and schema.USER_RE.fullmatch(user)


def test_app_user_setting_wins(write_hosts) -> None:
    inv = config.load(write_hosts(BASE + "hosts:\n  a: {}\n  b: {app_user: web}\n"))
    assert inv.host("a").app.runs_as("deploy") == "wsgiship-hello"
    assert inv.host("b").app.runs_as("deploy") == "web"


# --- forward_agent ---


def test_forward_agent_defaults_to_false_and_is_per_host(write_hosts) -> None:
    inv = config.load(write_hosts(BASE + "hosts:\n  a: {}\n  b: {forward_agent: true}\n"
                                         "  c: {forward_agent: false}\n"))
    assert [inv.host(h).forward_agent for h in "abc"] == [False, True, False]
    assert inv.host("web9.example.com").forward_agent is False


@pytest.mark.parametrize("value, shown", [('"true"', '"true"'), ("1", "1"), ("[true]", "a list")])
def test_forward_agent_must_be_true_or_false(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                             value: str, shown: str) -> None:
    err = load_in(tmp_path, monkeypatch, BASE + f"hosts:\n  web1: {{forward_agent: {value}}}\n")
    assert str(err) == f"hosts.yaml: hosts.web1.forward_agent: expected true or false, got {shown}"


def test_forward_agent_is_not_an_app_setting(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    err = load_in(tmp_path, monkeypatch, BASE + "  forward_agent: true\n")
    assert str(err).startswith("hosts.yaml: app.forward_agent: unknown key")
