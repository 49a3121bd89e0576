"""wsgiship.config: the health settings of the watch after the switch (health.watch, the seconds
the previous release stays warm while the new one's 5xx share is watched, and
health.max_5xx_percent, the share above which it goes back): defaults, values, errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from wsgiship import config
from wsgiship.config import Health
from wsgiship.errors import ConfigError

BASE = "app:\n  name: hello\n  wsgi: hello:app\n"


def load(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str) -> config.Inventory:
    (tmp_path / "hosts.yaml").write_text(text, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    return config.load(Path("hosts.yaml"))


def test_no_watch_by_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    app = load(tmp_path, monkeypatch, BASE + "hosts: {web1: {}}\n").host("web1").app
    assert (app.health.watch, app.health.max_5xx_percent) == (0, 1.0)
    assert app.health == Health()


@pytest.mark.parametrize("value, watch", [("0", 0), ("300", 300), ("3600", 3600)])
@pytest.mark.parametrize("pct_value, pct", [("0", 0.0), ("2.5", 2.5), ("100", 100.0)])
def test_watch_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: str, watch: int,
                        pct_value: str, pct: float) -> None:
    text = BASE + f"  health: {{watch: {value}, max_5xx_percent: {pct_value}}}\nhosts: {{w: {{}}}}\n"
    health = load(tmp_path, monkeypatch, text).host("w").app.health
    assert (health.watch, health.max_5xx_percent) == (watch, pct)
    assert type(health.watch) is int and type(health.max_5xx_percent) is float
    assert (health.path, health.status, health.timeout) == ("/", 200, 60)  # the rest as before


def test_a_host_may_watch_longer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text = (BASE + "  health: {watch: 60}\n"
            "hosts:\n  web1: {}\n  web2:\n    health: {watch: 600, max_5xx_percent: 0.5}\n")
    hosts = load(tmp_path, monkeypatch, text)
    assert (hosts.host("web1").app.health.watch, hosts.host("web1").app.health.max_5xx_percent,
            hosts.host("web2").app.health.watch, hosts.host("web2").app.health.max_5xx_percent
            ) == (60, 1.0, 600, 0.5)


@pytest.mark.parametrize("setting, value, message", [
    ("watch", "-1", "expected an integer from 0 to 3600, got -1"),
    ("watch", "3601", "expected an integer from 0 to 3600, got 3601"),
    ("watch", "1.5", "expected an integer, got 1.5"),
    ("watch", "5m", 'expected an integer, got "5m"'),
    ("watch", "true", "expected an integer, got true"),
    ("watch", "null", "expected an integer, got nothing"),
    ("max_5xx_percent", "-0.1", "expected a number from 0 to 100, got -0.1"),
    ("max_5xx_percent", "100.5", "expected a number from 0 to 100, got 100.5"),
    ("max_5xx_percent", ".nan", "expected a number from 0 to 100, got nan"),
    ("max_5xx_percent", "1%", 'expected a number, got "1%"'),
    ("max_5xx_percent", "false", "expected a number, got false"),
    ("max_5xx_percent", "[1]", "expected a number, got a list"),
])
def test_bad_watch_settings_say_what_is_expected(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                 setting: str, value: str, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        load(tmp_path, monkeypatch, BASE + f"  health: {{{setting}: {value}}}\nhosts: {{w: {{}}}}\n")
    assert str(err.value) == f"hosts.yaml: app.health.{setting}: {message}"
    with pytest.raises(ConfigError) as err:  # a host's own, named by its host
        load(tmp_path, monkeypatch, BASE + f"hosts:\n  web1:\n    health: {{{setting}: {value}}}\n")
    assert str(err.value) == f"hosts.yaml: hosts.web1.health.{setting}: {message}"
