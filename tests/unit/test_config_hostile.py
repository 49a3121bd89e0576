"""wsgiship.config: hostile values, refused before they reach scripts, sudo rules, the nginx
site and one-line files (loading and errors: test_config.py)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from test_config import BASE, load_in

from wsgiship import config, schema
from wsgiship.errors import ConfigError

# --- hostile values: what goes into scripts, sudo rules, the nginx site and one-line files ---


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
