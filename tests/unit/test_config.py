"""wsgiship.config: loading, defaults, per-host merging, paths, freezing and every error path."""

from __future__ import annotations

import dataclasses
import hashlib
import re
from pathlib import Path

import pytest
import yaml

from wsgiship import config, schema
from wsgiship.config import Health
from wsgiship.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]

VALID = """\
app:
  name: shop
  source: app
  wsgi: shop.web:create_app()
  server_name: shop.example.com
  processes: 4
  threads: 2
  static: {/static: static}
  shared_files: [.env]
  shared_dirs: [media]
  env:
    A: one
    B: two
    DEBUG: false
  health:
    path: /healthz
  uwsgi:
    harakiri: 30
  templates: overrides
hosts:
  web1:
    host: web1.example.com
    port: 2200
    user: deploy
    identity: keys/id_ed25519
    known_hosts: ~/known_hosts_test
    processes: 8
    env: {B: changed, C: three}
    health: {timeout: 5}
    uwsgi: {buffer-size: 32768}
  web2:
    host: 10.0.0.2
    deploy_to: /opt/shop/
    shared_dirs: [uploads]
  bare:
"""


@pytest.fixture
def inv(write_hosts, tmp_path: Path) -> config.Inventory:
    (tmp_path / "app").mkdir()
    (tmp_path / "overrides").mkdir()
    return config.load(write_hosts(VALID))


# --- valid files ---


def test_valid_file_loads_every_alias(inv: config.Inventory) -> None:
    assert sorted(inv.hosts) == ["bare", "web1", "web2"]
    web1 = inv.host("web1")
    assert (web1.alias, web1.host, web1.port, web1.user) == ("web1", "web1.example.com", 2200,
                                                             "deploy")
    assert web1.app.name == "shop"
    assert web1.app.wsgi_module == "shop.web"
    assert web1.app.wsgi_callable == "create_app"
    assert web1.app.wsgi_is_factory is True
    assert dict(web1.app.static) == {"/static/": "static"}  # prefixes normalised to end in /
    assert web1.app.shared_files == (".env",)
    # booleans in env become the lower-case strings a shell would expect
    assert web1.app.env["DEBUG"] == "false"


def test_repo_hosts_yaml_loads() -> None:
    inv = config.load(ROOT / "hosts.yaml")
    assert inv.app["name"] == "hello"
    assert inv.hosts, "the repo's hosts.yaml defines at least one alias"
    for alias in inv.hosts:
        host = inv.host(alias)
        assert host.app.name == "hello"
        assert host.app.source == (ROOT / "examples" / "hello").resolve()
        assert host.app.deploy_to == "/srv/hello"


def test_defaults(write_hosts) -> None:
    inv = config.load(write_hosts("app: {name: blog, wsgi: 'blog:app'}\nhosts: {h: {}}\n"))
    host = inv.host("h")
    app = host.app
    assert app.deploy_to == "/srv/blog"
    assert app.http_port == 80
    assert app.keep_releases == 5
    assert app.health == Health(path="/", status=200, timeout=60)
    assert (app.processes, app.threads, app.python, app.server_name) == (2, 1, "python3", "_")
    assert app.source == Path(inv.path).parent  # source defaults to the hosts.yaml dir
    assert app.templates is None and app.app_user is None
    assert dict(app.env) == {} and dict(app.uwsgi) == {}
    # connection defaults: the alias is the host name, port/user left to ssh
    assert (host.host, host.port, host.user, host.identity) == ("h", None, None, None)
    assert host.connect_timeout == 15


def test_null_host_entry_is_a_host_named_like_the_alias(inv: config.Inventory) -> None:
    bare = inv.host("bare")
    assert bare.host == "bare"
    assert bare.app.processes == 4  # app settings unchanged


def test_scalar_overrides_replace(inv: config.Inventory) -> None:
    assert inv.host("web1").app.processes == 8
    assert inv.host("web2").app.processes == 4
    assert inv.host("web2").app.deploy_to == "/opt/shop"  # trailing / dropped
    assert inv.host("web1").app.deploy_to == "/srv/shop"


def test_list_overrides_replace(inv: config.Inventory) -> None:
    assert inv.host("web2").app.shared_dirs == ("uploads",)
    assert inv.host("web1").app.shared_dirs == ("media",)


def test_mapping_overrides_merge_one_level(inv: config.Inventory) -> None:
    web1, web2 = inv.host("web1").app, inv.host("web2").app
    assert dict(web1.env) == {"A": "one", "B": "changed", "C": "three", "DEBUG": "false"}
    assert dict(web2.env) == {"A": "one", "B": "two", "DEBUG": "false"}
    assert web1.health == Health(path="/healthz", status=200, timeout=5)
    assert web2.health == Health(path="/healthz", status=200, timeout=60)
    assert dict(web1.uwsgi) == {"harakiri": 30, "buffer-size": 32768}
    assert dict(web2.uwsgi) == {"harakiri": 30}


def test_uwsgi_list_override_replaces_the_list(write_hosts) -> None:
    inv = config.load(write_hosts("""\
        app:
          name: a
          wsgi: a:app
          uwsgi: {env: [X=1, Y=2]}
        hosts:
          h: {uwsgi: {env: [Z=3]}}
    """))
    assert inv.host("h").app.uwsgi["env"] == ("Z=3",)


def test_paths_resolve_relative_to_hosts_yaml(inv: config.Inventory, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir("/")  # the cwd must not matter
    web1 = inv.host("web1")
    assert web1.app.source == tmp_path / "app"
    assert web1.app.templates == tmp_path / "overrides"
    assert web1.identity == tmp_path / "keys" / "id_ed25519"
    assert web1.known_hosts == Path.home() / "known_hosts_test"  # ~ expanded
    assert inv.path == tmp_path / "hosts.yaml"


def test_relative_path_given_resolves_against_its_own_dir(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sub = tmp_path / "deploy"
    sub.mkdir()
    (sub / "hosts.yaml").write_text("app: {name: a, wsgi: 'a:app', source: ../src}\n"
                                    "hosts: {h: {identity: id_key}}\n")
    monkeypatch.chdir(tmp_path)
    host = config.load(Path("deploy/hosts.yaml")).host("h")
    assert host.app.source == tmp_path / "src"
    assert host.identity == sub / "id_key"


def test_wsgiship_hosts_env_names_the_default_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, write_hosts) -> None:
    path = write_hosts("app: {name: fromenv, wsgi: 'a:app'}\n", name="other.yaml")
    monkeypatch.setenv("WSGISHIP_HOSTS", str(path))
    monkeypatch.chdir("/")
    assert config.default_path() == path
    assert config.load().app["name"] == "fromenv"


def test_everything_is_frozen(inv: config.Inventory) -> None:
    host = inv.host("web1")
    with pytest.raises(dataclasses.FrozenInstanceError):
        host.port = 22  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        host.app.name = "other"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        host.app.health.timeout = 1  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        inv.app = {}  # type: ignore[misc]
    with pytest.raises(TypeError):
        inv.hosts["new"] = {}  # type: ignore[index]
    with pytest.raises(TypeError):
        inv.app["name"] = "x"  # type: ignore[index]
    with pytest.raises(TypeError):
        inv.host("web2").app.env["A"] = "x"  # type: ignore[index]


def test_mappings_merged_from_a_host_override_are_read_only_too(inv: config.Inventory) -> None:
    # web1 overrides env and uwsgi: the merged mappings must be as frozen as web2's.
    app = inv.host("web1").app
    with pytest.raises(TypeError):
        app.env["A"] = "x"  # type: ignore[index]
    with pytest.raises(TypeError):
        app.uwsgi["harakiri"] = 1  # type: ignore[index]


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


# --- error messages ---


def load_in(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str) -> ConfigError:
    """Load `text` as ./hosts.yaml (cwd = tmp_path) and return the ConfigError it raises."""
    (tmp_path / "hosts.yaml").write_text(text, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as err:
        config.load(Path("hosts.yaml"))
    return err.value


BASE = "app:\n  name: hello\n  wsgi: hello:app\n"


def test_bad_type_message_is_exact(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    err = load_in(tmp_path, monkeypatch, BASE + "hosts:\n  web1:\n    port: ssh\n")
    assert str(err) == 'hosts.yaml: hosts.web1.port: expected an integer, got "ssh"'


def test_message_starts_with_the_file_name_as_given(write_hosts) -> None:
    path = write_hosts(BASE + "hosts:\n  web1:\n    port: ssh\n")
    with pytest.raises(ConfigError) as err:
        config.load(path)
    assert str(err.value) == f'{path}: hosts.web1.port: expected an integer, got "ssh"'


def test_unknown_key_did_you_mean(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    err = load_in(tmp_path, monkeypatch, BASE + "  procesess: 4\n")
    assert str(err) == "hosts.yaml: app.procesess: unknown key; did you mean 'processes'?"


def test_unknown_host_key_did_you_mean(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    err = load_in(tmp_path, monkeypatch, BASE + "hosts:\n  web1:\n    identiy: k\n")
    assert str(err) == "hosts.yaml: hosts.web1.identiy: unknown key; did you mean 'identity'?"


def test_unknown_key_without_a_close_match_lists_known_keys(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    err = load_in(tmp_path, monkeypatch, BASE + "  zzzz: 1\n")
    assert str(err).startswith("hosts.yaml: app.zzzz: unknown key; known keys: name, source,")


def test_invalid_app_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    err = load_in(tmp_path, monkeypatch, "app:\n  name: my app\n  wsgi: a:app\n")
    assert str(err) == ('hosts.yaml: app.name: expected a name of letters, digits, - and _, '
                        'got "my app"')


@pytest.mark.parametrize("wsgi", ["hello", "hello:", "hello:app()x", "1mod:app", "a b:app",
                                  "hello:app:x", "hello.:app"])
def test_invalid_wsgi_entry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, wsgi: str) -> None:
    err = load_in(tmp_path, monkeypatch, f"app:\n  name: a\n  wsgi: '{wsgi}'\n")
    assert str(err) == ("hosts.yaml: app.wsgi: expected module:callable or module:factory(), "
                        f'e.g. hello:app, got "{wsgi}"')


@pytest.mark.parametrize("wsgi", ["hello:app", "pkg.sub.mod:application", "m:create_app()",
                                  "_m:_a"])
def test_valid_wsgi_entries(write_hosts, wsgi: str) -> None:
    assert config.load(write_hosts(f"app: {{name: a, wsgi: '{wsgi}'}}\n")).app["wsgi"] == wsgi


def test_invalid_yaml_reports_line_and_column(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    err = load_in(tmp_path, monkeypatch, BASE + "hosts:\n  web1:\n    port: [2222\n  web2: {}\n")
    assert str(err).startswith("hosts.yaml: invalid YAML at line 7, column 7: ")


def test_invalid_yaml_tab_indent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    err = load_in(tmp_path, monkeypatch, "app:\n\tname: x\n")
    assert str(err) == ("hosts.yaml: invalid YAML at line 2, column 1: "
                        "found character '\\t' that cannot start any token")


def test_missing_app_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert str(load_in(tmp_path, monkeypatch, "app:\n  wsgi: a:app\n")) == (
        "hosts.yaml: app.name: missing (required)")
    # the same with hosts, which are built (and checked) first
    assert str(load_in(tmp_path, monkeypatch, "app:\n  wsgi: a:app\nhosts: {h: {}}\n")) == (
        "hosts.yaml: app.name: missing (required)")


def test_missing_app_wsgi(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert str(load_in(tmp_path, monkeypatch, "app:\n  name: a\n")) == (
        "hosts.yaml: app.wsgi: missing (required)")


def test_missing_file_names_the_file_and_the_env_var(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError) as err:
        config.load(path)
    assert str(err.value) == (f"{path}: not found; create it (see README: hosts.yaml) "
                              "or set WSGISHIP_HOSTS")


def test_missing_default_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WSGISHIP_HOSTS", raising=False)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match=r"^hosts\.yaml: not found; .*WSGISHIP_HOSTS"):
        config.load()


def test_missing_templates_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    err = load_in(tmp_path, monkeypatch, BASE + "  templates: mine\nhosts: {h: {}}\n")
    assert str(err) == f"hosts.yaml: app.templates: directory {tmp_path / 'mine'} not found"


def test_host_health_error_names_the_host(tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    err = load_in(tmp_path, monkeypatch, BASE + "hosts:\n  web1:\n    health: {status: 9999}\n")
    assert str(err) == ("hosts.yaml: hosts.web1.health.status: expected an integer from 100 "
                        "to 599, got 9999")


def test_config_error_is_a_usage_error() -> None:
    assert ConfigError.exit_code == 2


# Every failure is a ConfigError whose message names the file: never a traceback.
BAD_INPUTS = {
    "empty file": "",
    "top-level list": "- a\n- b\n",
    "unknown top key": BASE + "host: {}\n",
    "app not a mapping": "app: hello\n",
    "hosts not a mapping": BASE + "hosts: [a, b]\n",
    "host entry not a mapping": BASE + "hosts:\n  web1: 5\n",
    "alias with a space": BASE + "hosts:\n  'a b': {}\n",
    "alias not a string": BASE + "hosts:\n  1: {}\n",
    "port out of range": BASE + "hosts:\n  web1: {port: 70000}\n",
    "bool for an integer": BASE + "  threads: true\n",
    "keep_releases too low": BASE + "  keep_releases: 1\n",
    "deploy_to relative": BASE + "  deploy_to: srv/app\n",
    "deploy_to with a quote": BASE + "  deploy_to: \"/srv/a'b\"\n",
    "shared file escapes": BASE + "  shared_files: [../etc/passwd]\n",
    "static not a mapping": BASE + "  static: [static]\n",
    "static dir absolute": BASE + "  static: {/s: /etc}\n",
    "uwsgi bad option name": BASE + "  uwsgi: {Harakiri: 3}\n",
    "uwsgi nested value": BASE + "  uwsgi: {a: {b: 1}}\n",
    "env bad name": BASE + "  env: {1X: a}\n",
    "env null value": BASE + "  env: {A: null}\n",
    "env multi-line value": BASE + "  env: {A: \"x\\ny\"}\n",
    "health not a mapping": BASE + "  health: 200\n",
    "health unknown key": BASE + "  health: {code: 200}\n",
    "health path": BASE + "  health: {path: healthz}\n",
    "host with a space": BASE + "hosts:\n  web1: {host: 'a b'}\n",
    "user upper-case": BASE + "hosts:\n  web1: {user: Root}\n",
    "python tag": BASE + "  x: !!python/object/apply:os.system [id]\n",
    "undefined YAML alias": BASE + "  source: *nope\n",
    "unhashable key": BASE + "hosts:\n  ? [a]\n  : 1\n",
    "control character": "app: \"\x07\"\n",
    "missing templates dir": BASE + "  templates: nowhere\nhosts: {h: {}}\n",
    "not UTF-8": b"app:\n  name: caf\xe9\n  wsgi: a:app\n",
    "NUL byte in identity": BASE + "hosts:\n  web1: {identity: \"id\\0x\"}\n",
    "NUL byte in source": BASE + "  source: \"src\\0x\"\nhosts: {h: {}}\n",
}


@pytest.mark.parametrize("text", list(BAD_INPUTS.values()), ids=list(BAD_INPUTS))
def test_every_failure_is_a_config_error_naming_the_file(tmp_path: Path,
                                                         text: str | bytes) -> None:
    path = tmp_path / "bad-hosts.yaml"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    try:
        config.load(path)
    except ConfigError as exc:
        assert str(path) in str(exc)
    except Exception as exc:  # noqa: BLE001 - the point: nothing but ConfigError escapes
        pytest.fail(f"{type(exc).__name__} escaped instead of ConfigError: {exc}")
    else:
        pytest.fail("loaded without an error")


@pytest.mark.parametrize("field,yaml_value", [
    ("name", '"hello\\n"'),
    ("wsgi", '"hello:app\\n"'),
])
def test_a_trailing_newline_is_not_a_valid_value(write_hosts, field: str,
                                                 yaml_value: str) -> None:
    # `$` in the validation regexes also matches before a final newline; a block scalar
    # (`name: |`) gives exactly such a value, which then ends up in paths, units and code.
    settings = {"name": "hello", "wsgi": "hello:app", field: yaml_value}
    text = "app:\n" + "".join(f"  {k}: {v}\n" for k, v in settings.items())
    with pytest.raises(ConfigError, match=rf"app\.{field}: expected"):
        config.load(write_hosts(text))


def test_a_trailing_newline_in_an_env_name_is_rejected(write_hosts) -> None:
    with pytest.raises(ConfigError, match=r"app\.env: expected variable names"):
        config.load(write_hosts(BASE + '  env: {"A\\n": x}\n'))


def test_uwsgi_list_values_must_be_single_line(write_hosts) -> None:
    # A newline inside a list item would add arbitrary lines to uwsgi.ini.
    with pytest.raises(ConfigError, match=r"app\.uwsgi: expected single-line values"):
        config.load(write_hosts(BASE + '  uwsgi: {env: ["A=1\\nprocesses = 99"]}\n'))


def test_uwsgi_scalar_values_must_be_single_line(write_hosts) -> None:
    with pytest.raises(ConfigError, match=r"app\.uwsgi: expected single-line values"):
        config.load(write_hosts(BASE + '  uwsgi: {harakiri: "3\\nprocesses = 99"}\n'))


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
    ("[migrate]", "a mapping of hook point (before_switch, after_switch) to a list of commands",
     None),
    ("migrate", "a mapping of hook point", None),
    ("{before_deploy: [migrate]}", "hook points before_switch or after_switch",
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
                               'before_switch or after_switch, got "after_swich"')


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


# --- hostile values: what goes into scripts, sudo rules, the nginx site and one-line files ---


def load_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, app: dict[str, object],
               host: dict[str, object] | None = None) -> str:
    """The ConfigError for app settings `app` (and host web1's `host`), written by yaml.dump."""
    data: dict[str, object] = {"app": {"name": "hello", "wsgi": "hello:app", **app}}
    if host is not None:
        data["hosts"] = {"web1": host}
    return str(load_in(tmp_path, monkeypatch, yaml.safe_dump(data, allow_unicode=False)))


# every character str.splitlines() splits a line at
SPLITLINES = [chr(c) for c in range(0x3000) if len(f"a{chr(c)}b".splitlines()) == 2]


def test_the_line_breaks_refused_are_all_splitlines_knows() -> None:
    assert set(SPLITLINES) == set(schema.LINE_BREAKS)
    assert "".join(SPLITLINES) == "\n\v\f\r\x1c\x1d\x1e\x85\u2028\u2029"


PATH_MESSAGE = ("expected a path of letters, digits and . _ - / only (it goes into shell scripts, "
                "sudo rules and the nginx site)")


@pytest.mark.parametrize("value", [f"/srv/a{ch}b" for ch in "|;&()*,:=!# '\"\\$`{}<>?~\t\r\x0b"]
                         + ["/srv/café", "/srv/a\u2028b", "/srv/app/x y"])
@pytest.mark.parametrize("where", ["app", "host"])
def test_deploy_to_refuses_every_character_but_letters_digits_and_dot_underscore_dash_slash(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: str, where: str) -> None:
    setting = {"deploy_to": value}
    err = (load_error(tmp_path, monkeypatch, setting) if where == "app"
           else load_error(tmp_path, monkeypatch, {}, setting))
    key = "app.deploy_to" if where == "app" else "hosts.web1.deploy_to"
    assert err == f'hosts.yaml: {key}: {PATH_MESSAGE}, got "{value}"'


@pytest.mark.parametrize("value", ["/srv/a\nb", "/srv/a\0b", "srv/app", "/srv/../etc"])
def test_deploy_to_must_be_an_absolute_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                            value: str) -> None:
    err = load_error(tmp_path, monkeypatch, {"deploy_to": value})
    assert err == f'hosts.yaml: app.deploy_to: expected an absolute path such as /srv/myapp, got "{value}"'


@pytest.mark.parametrize("value, kept", [("/srv/my-app_2.0/x", "/srv/my-app_2.0/x"),
                                         ("/opt/Shop/", "/opt/Shop"), ("/srv/a.b", "/srv/a.b")])
def test_deploy_to_accepts_plain_paths(write_hosts, value: str, kept: str) -> None:
    inv = config.load(write_hosts(BASE + f"  deploy_to: {value}\nhosts: {{h: {{}}}}\n"))
    assert inv.host("h").app.deploy_to == kept


@pytest.mark.parametrize("directory", [f"static{ch}x" for ch in ";{}#$ '\"`\\|&*:=!(),<>"])
def test_static_directories_refuse_the_characters_deploy_to_refuses(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, directory: str) -> None:
    err = load_error(tmp_path, monkeypatch, {"static": {"/static": directory}})
    assert err == ("hosts.yaml: app.static: expected directories of letters, digits and . _ - / "
                   f'only (got "{directory}"), got a mapping')


def test_static_directories_of_plain_names_load(write_hosts) -> None:
    inv = config.load(write_hosts(BASE + "  static: {/static: assets/static-v2, /m: my_media.d}\n"))
    assert dict(inv.app["static"]) == {"/static/": "assets/static-v2", "/m/": "my_media.d"}


@pytest.mark.parametrize("ch", [*SPLITLINES, "\0"], ids=lambda ch: f"{ord(ch):#x}")
@pytest.mark.parametrize("where", ["app", "host"])
def test_env_values_refuse_every_line_break_and_nul(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch, ch: str,
                                                    where: str) -> None:
    setting = {"env": {"OK": "fine", "TOKEN": f"abc{ch}EVIL=1"}}
    err = (load_error(tmp_path, monkeypatch, setting) if where == "app"
           else load_error(tmp_path, monkeypatch, {}, setting))
    key = "app.env" if where == "app" else "hosts.web1.env"
    assert err == (f"hosts.yaml: {key}: expected single-line values (got a line break or NUL "
                   "in TOKEN), got a mapping")


@pytest.mark.parametrize("ch", [*SPLITLINES, "\0"], ids=lambda ch: f"{ord(ch):#x}")
@pytest.mark.parametrize("value", ["3{ch}processes = 99", ["A=1", "B=2{ch}processes = 99"]],
                         ids=["scalar", "list"])
def test_uwsgi_values_refuse_every_line_break_and_nul(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch, ch: str,
                                                      value: str | list[str]) -> None:
    hostile = value.format(ch=ch) if isinstance(value, str) else [v.format(ch=ch) for v in value]
    err = load_error(tmp_path, monkeypatch, {}, {"uwsgi": {"harakiri": 3, "env": hostile}})
    assert err == "hosts.yaml: hosts.web1.uwsgi: expected single-line values, got a mapping"


def test_one_line_values_with_tabs_and_unicode_load(write_hosts) -> None:
    inv = config.load(write_hosts(BASE + '  env: {A: "tab\\there", B: "caf\\u00e9 \\u00a0ok"}\n'
                                         '  uwsgi: {env: ["X=a\\tb"]}\n'))
    assert dict(inv.app["env"]) == {"A": "tab\there", "B": "café \u00a0ok"}
    assert inv.app["uwsgi"]["env"] == ("X=a\tb",)


def test_default_app_users_of_different_apps_differ() -> None:
    names = ["shop", "Shop", "my_app", "my-app", "customer_portal_backend_v1",
             "customer_portal_backend_v2", "x" * 40, "x" * 41]
    users = [config.default_app_user(n) for n in names]
    assert len(set(users)) == len(names)
    assert all(len(u) <= 32 and re.fullmatch(r"[a-z0-9-]+", u) for u in users), users
