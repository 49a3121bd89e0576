"""Shared fixtures for the unit tests: no SSH, no test host; everything runs locally.

The plain helpers (fake commands, deploy-tree builders) are in fakes.py."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from fakes import add_fakes, fake_scripts, run_script  # noqa: E402

from wsgiship import config  # noqa: E402
from wsgiship.config import App  # noqa: E402


@pytest.fixture
def write_hosts(tmp_path: Path) -> Callable[..., Path]:
    """Write (dedented) hosts.yaml text into tmp_path and return its path."""

    def write(text: str, name: str = "hosts.yaml") -> Path:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text), encoding="utf-8")
        return path

    return write


@pytest.fixture
def make_app(tmp_path: Path) -> Callable[..., App]:
    """An App as hosts.yaml would give it: app settings (plus overrides) loaded for host web1."""

    def make(**settings: object) -> App:
        app = {"name": "hello", "wsgi": "hello:app", "source": ".", **settings}
        path = tmp_path / "app-hosts.yaml"
        path.write_text(yaml.safe_dump({"app": app, "hosts": {"web1": {"host": "10.0.0.1"}}},
                                       sort_keys=False))
        return config.load(path).host("web1").app

    return make


@pytest.fixture
def sh() -> Callable[..., subprocess.CompletedProcess[str]]:
    """run_script as a fixture, for the tests that execute generated scripts."""
    return run_script


@pytest.fixture
def deploy(tmp_path: Path) -> Path:
    """A deploy tree as layout makes it (releases, shared/log, shared/run, venvs), empty."""
    root = tmp_path / "srv" / "app"
    for d in ("releases", "shared/log", "shared/run", "venvs"):
        (root / d).mkdir(parents=True)
    return root


def which(command: str) -> str:
    """The path of a real command (a fake may hand over to it)."""
    path = shutil.which(command)
    assert path, f"{command} not found"
    return path


@pytest.fixture
def fakebin(tmp_path: Path) -> Path:
    """Stand-ins for sudo, runuser, the service managers, nginx, the root-only file commands,
    the account commands, stat (see fakes.fake_scripts) and python3; each logs its call to
    $CALLS (stat and id do not)."""
    bin_ = tmp_path / "fakebin"
    bin_.mkdir()
    add_fakes(bin_, fake_scripts(*(which(c) for c in ("ln", "readlink", "stat", "id"))))
    (bin_ / "python3").symlink_to(sys.executable)
    return bin_


@pytest.fixture
def tools_here(monkeypatch: pytest.MonkeyPatch, deploy: Path) -> Path:
    """Root's tools (layout.TOOLS, /opt/wsgiship on a server) at <deploy>/.tools for a test."""
    from wsgiship import layout

    tools = deploy / ".tools"
    monkeypatch.setattr(layout, "TOOLS", str(tools))
    return tools
