"""wsgiship.commands.release.prepare: the uv=1 fact, said when fab setup's uv is on the server
(run here on a deploy tree in tmp_path). The rest of prepare: test_release.py."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from fakes import paths

from wsgiship.commands import release

pytestmark = pytest.mark.usefixtures("tools_here")


def facts(deploy: Path, sh) -> dict[str, str]:
    res = sh(release.prepare(paths(deploy), sys.executable, {"token": "t"}))
    assert res.returncode == 0, res.stderr
    return dict(line.split("=", 1) for line in res.stdout.splitlines())


def place_uv(deploy: Path, mode: int) -> Path:
    uv = Path(paths(deploy).uv)
    uv.parent.mkdir(parents=True)
    uv.write_text("#!/bin/sh\n")
    uv.chmod(mode)
    return uv


def test_prepare_says_uv_when_setup_installed_it(deploy: Path, sh) -> None:
    place_uv(deploy, 0o755)
    assert facts(deploy, sh)["uv"] == "1"


@pytest.mark.parametrize("mode", [None, 0o644])
def test_prepare_says_nothing_of_uv_when_it_is_not_there(deploy: Path, sh,
                                                        mode: int | None) -> None:
    if mode is not None:
        place_uv(deploy, mode)  # there, but not executable
    got = facts(deploy, sh)
    assert "uv" not in got
    assert got["python"] == ".".join(map(str, sys.version_info[:3]))  # the other facts still come


def test_prepare_does_not_take_a_uv_elsewhere(deploy: Path, sh, tmp_path: Path) -> None:
    # a uv on PATH is not fab setup's: deploys only ever run Paths.uv
    bin_ = tmp_path / "bin"
    bin_.mkdir()
    (bin_ / "uv").write_text("#!/bin/sh\n")
    (bin_ / "uv").chmod(0o755)
    res = sh(release.prepare(paths(deploy), sys.executable, {"token": "t"}),
             env={"PATH": f"{bin_}:/usr/bin:/bin"})
    assert res.returncode == 0, res.stderr
    assert "uv=1" not in res.stdout.splitlines()
