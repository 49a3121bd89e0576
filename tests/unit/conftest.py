"""Shared helpers for the unit tests: no SSH, no test host; everything runs locally."""

from __future__ import annotations

import os
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

from wsgiship import config  # noqa: E402
from wsgiship.config import App  # noqa: E402
from wsgiship.shell import bash  # noqa: E402


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


def run_script(body: str, cwd: Path | None = None,
               env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run a generated script the way Remote.run does: `bash -c <quoted body>` via a shell."""
    return subprocess.run(
        bash(body), shell=True, cwd=cwd, capture_output=True, text=True, timeout=60,
        env={**os.environ, **(env or {})},
    )


@pytest.fixture
def sh() -> Callable[..., subprocess.CompletedProcess[str]]:
    """run_script as a fixture, for the tests that execute generated scripts."""
    return run_script
