"""Smoke test of the test host itself: boot one, reach it over SSH, stop it."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import testhost  # noqa: E402

pytestmark = pytest.mark.integration


def test_boot_ssh_sudo_nginx_and_stop(tmp_path: Path) -> None:
    state_dir = tmp_path / "smoke"
    host = testhost.boot("smoke", state_dir)
    try:
        assert host.alive()
        assert testhost.load(state_dir) == host

        assert host.run("hostname", user="deploy").stdout.strip() == "wsgiship-smoke"
        assert host.run("id -un", user="deploy").stdout.strip() == "deploy"
        assert host.run("sudo -n id -u", user="deploy").stdout.strip() == "0"
        assert host.run("systemctl is-active nginx ssh").stdout.split() == ["active", "active"]
        assert host.run("systemctl is-active supervisor", check=False).stdout.strip() == "inactive"

        no_sudo = host.run("sudo -n true", user="deploypw", check=False)
        assert no_sudo.returncode != 0
        host.run("echo testpw | sudo -S -p '' true", user="deploypw")

        nginx_ports = host.run("ss -Hltnp | grep nginx || true").stdout
        assert nginx_ports == ""  # no default site: nothing on port 80 of the shared network
    finally:
        host.stop()

    assert not host.alive()
    assert testhost.load(state_dir) is None
    assert not (state_dir / "upper").exists()
    host.stop()  # idempotent
