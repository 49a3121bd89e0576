"""wsgiship.config and wsgiship.schema: the app keys of how the venv is installed (uwsgi_package,
build, installer, wheelhouse) and App.needs_compiler. (test_config.py has the rest of loading.)"""

from __future__ import annotations

from pathlib import Path

import pytest

from wsgiship import config
from wsgiship.errors import ConfigError

BASE = "app:\n  name: hello\n  wsgi: hello:app\n"


def load_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str) -> str:
    """The ConfigError's text for `text` loaded as ./hosts.yaml."""
    (tmp_path / "hosts.yaml").write_text(text, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as err:
        config.load(Path("hosts.yaml"))
    return str(err.value)


def test_defaults_are_the_pyuwsgi_wheel_and_so_no_compiler_and_uv_when_there(write_hosts) -> None:
    app = config.load(write_hosts(BASE + "hosts: {h: {}}\n")).host("h").app
    assert (app.uwsgi_package, app.build, app.installer, app.wheelhouse) == (
        "pyuwsgi", False, "auto", False)
    assert app.needs_compiler is False


def test_the_uwsgi_sdist_is_still_chosen_by_name_and_so_a_compiler(write_hosts) -> None:
    app = config.load(write_hosts(BASE + "  uwsgi_package: uwsgi\nhosts: {h: {}}\n")).host("h").app
    assert (app.uwsgi_package, app.build) == ("uwsgi", False)
    assert app.needs_compiler is True


def test_install_keys_per_app_and_per_host(write_hosts) -> None:
    inv = config.load(write_hosts(
        BASE + "  uwsgi_package: uwsgi\n  build: true\n  installer: pip\n  wheelhouse: true\n"
        "hosts:\n  old: {}\n"
        "  new: {uwsgi_package: pyuwsgi, build: false, installer: uv, wheelhouse: false}\n"))
    old, new = inv.host("old").app, inv.host("new").app
    assert (old.uwsgi_package, old.build, old.installer, old.wheelhouse) == (
        "uwsgi", True, "pip", True)
    assert (new.uwsgi_package, new.build, new.installer, new.wheelhouse) == (
        "pyuwsgi", False, "uv", False)


@pytest.mark.parametrize("key, value, expected, shown", [
    ("uwsgi_package", "uWSGI", "pyuwsgi or uwsgi", '"uWSGI"'),
    ("uwsgi_package", "pyuwsgi==2.0.30", "pyuwsgi or uwsgi", '"pyuwsgi==2.0.30"'),
    ("uwsgi_package", "[uwsgi]", "pyuwsgi or uwsgi", "a list"),
    ("installer", "poetry", "auto or uv or pip", '"poetry"'),
    ("installer", "UV", "auto or uv or pip", '"UV"'),
    ("installer", "''", "auto or uv or pip", '""'),
    ("build", '"true"', "true or false", '"true"'),
    ("build", "1", "true or false", "1"),
    ("wheelhouse", "dist/", "true or false", '"dist/"'),
])
def test_bad_install_keys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, key: str, value: str,
                          expected: str, shown: str) -> None:
    err = load_error(tmp_path, monkeypatch, BASE + f"  {key}: {value}\n")
    assert err == f"hosts.yaml: app.{key}: expected {expected}, got {shown}"


def test_a_bad_install_key_of_a_host_names_the_host(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    err = load_error(tmp_path, monkeypatch, BASE + "hosts:\n  web1: {installer: conda}\n")
    assert err == 'hosts.yaml: hosts.web1.installer: expected auto or uv or pip, got "conda"'


@pytest.mark.parametrize("settings, compiler", [
    ({}, False),                                     # the default: the pyuwsgi wheel
    ({"uwsgi_package": "pyuwsgi"}, False),           # the wheel: no compiler
    ({"uwsgi_package": "uwsgi"}, True),              # the sdist is compiled on the server
    ({"build": True, "uwsgi_package": "pyuwsgi"}, True),  # the app's own sdists
    ({"build": True, "uwsgi_package": "uwsgi"}, True),
    ({"installer": "uv", "wheelhouse": True, "uwsgi_package": "pyuwsgi"}, False),
])
def test_needs_compiler(make_app, settings: dict[str, object], compiler: bool) -> None:
    assert make_app(**settings).needs_compiler is compiler
