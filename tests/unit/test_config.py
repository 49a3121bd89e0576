"""wsgiship.config: loading, defaults, per-host merging, paths, freezing and every error path."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from wsgiship import config
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


@pytest.mark.parametrize("wsgi, dotted", [("hello.py:app", "hello:app"),
                                          ("pkg/wsgi.py:application", "pkg.wsgi:application"),
                                          ("./pkg/app.py:create_app()", "pkg.app:create_app()")])
def test_a_file_path_as_the_wsgi_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                        wsgi: str, dotted: str) -> None:
    err = load_in(tmp_path, monkeypatch, f"app:\n  name: a\n  wsgi: '{wsgi}'\n")
    assert str(err) == ("hosts.yaml: app.wsgi: expected module:callable with the module's dotted"
                        f' name, not a file path (here: {dotted}), got "{wsgi}"')


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
