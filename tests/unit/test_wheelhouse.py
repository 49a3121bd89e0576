"""The wheelhouse built on this machine for the server's platform: the platform from the server's
facts, pip's arguments (every manylinux tag that glibc runs), the refusal naming a requirement
without a wheel, and the tarball of wheels."""

from __future__ import annotations

import io
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from wsgiship import wheelhouse
from wsgiship.errors import WsgishipError
from wsgiship.wheelhouse import Platform

FACTS = {"python": "3.11.2", "machine": "x86_64", "libc": "glibc 2.36"}


def test_the_platform_comes_from_the_servers_facts() -> None:
    plat = Platform.from_facts(FACTS, "web1")
    assert plat == Platform("3.11.2", "x86_64", "2.36")
    assert plat.tag == "cp311"
    assert plat.describe() == "cp311 manylinux_2_36_x86_64"


@pytest.mark.parametrize("libc", ["", "musl 1.2", "glibc", "glibc 2.x"])
def test_a_server_without_glibc_is_refused_with_the_fix(libc: str) -> None:
    with pytest.raises(WsgishipError) as err:
        Platform.from_facts({**FACTS, "libc": libc}, "web1")
    assert "web1" in str(err.value) and "set wheelhouse: false" in str(err.value)


def test_every_manylinux_tag_the_glibc_runs_newest_first() -> None:
    tags = Platform("3.12.1", "aarch64", "2.31").platforms()
    assert tags[0] == "manylinux_2_31_aarch64"
    assert tags[:27] == [f"manylinux_2_{m}_aarch64" for m in range(31, 4, -1)]
    assert {"manylinux2014_aarch64", "manylinux2010_aarch64", "manylinux1_aarch64"} <= set(tags)
    # an older glibc runs no newer wheel, nor a legacy tag above it
    old = Platform("3.11.2", "x86_64", "2.12").platforms()
    assert "manylinux_2_17_x86_64" not in old and "manylinux2014_x86_64" not in old
    assert "manylinux2010_x86_64" in old


def test_pip_download_gets_wheels_only_for_that_python(tmp_path: Path) -> None:
    args = wheelhouse.download_args(Platform.from_facts(FACTS, "w"), tmp_path / "d",
                                    tmp_path / "r.txt")
    assert args[:4] == [sys.executable, "-m", "pip", "download"]
    assert "--only-binary=:all:" in args
    assert args[args.index("--python-version") + 1] == "3.11"
    assert args[args.index("--abi") + 1] == "cp311"
    assert args[args.index("--implementation") + 1] == "cp"
    assert args[args.index("--dest") + 1] == str(tmp_path / "d")
    assert args[-2:] == ["-r", str(tmp_path / "r.txt")]
    platforms = [args[i + 1] for i, a in enumerate(args) if a == "--platform"]
    assert platforms == Platform.from_facts(FACTS, "w").platforms()


PIP_NO_WHEEL = """WARNING: Location 'file:///x' is ignored
ERROR: Could not find a version that satisfies the requirement psycopg2==2.9.9 (from versions: none)
ERROR: No matching distribution found for psycopg2==2.9.9
"""


def test_the_requirement_without_a_wheel_is_named() -> None:
    assert wheelhouse.missing_wheel(PIP_NO_WHEEL) == "psycopg2==2.9.9"
    assert wheelhouse.missing_wheel("ERROR: something else") == ""


def fake_pip(monkeypatch, code: int, output: str = "", wheels: tuple[str, ...] = ()) -> list:
    """subprocess.run for `pip download`: writes `wheels` into --dest, exits `code`."""
    calls = []

    def run(args, **kwargs):
        calls.append(args)
        dest = Path(args[args.index("--dest") + 1])
        dest.mkdir(parents=True, exist_ok=True)
        for name in wheels:
            (dest / name).write_bytes(b"wheel " + name.encode())
        req = Path(args[-1]).read_text()
        return subprocess.CompletedProcess(args, code, req and output, "")
    monkeypatch.setattr(wheelhouse.subprocess, "run", run)
    return calls


def test_build_packs_the_wheels(monkeypatch) -> None:
    calls = fake_pip(monkeypatch, 0, wheels=("a-1-py3-none-any.whl", "b-2-cp311-cp311-x.whl"))
    data, count = wheelhouse.build("a\nb\n", Platform.from_facts(FACTS, "w"), "web1")
    assert count == 2 and len(calls) == 1
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        assert sorted(tar.getnames()) == ["a-1-py3-none-any.whl", "b-2-cp311-cp311-x.whl"]
        assert tar.extractfile("a-1-py3-none-any.whl").read() == b"wheel a-1-py3-none-any.whl"


def test_build_refuses_a_requirement_without_a_wheel(monkeypatch) -> None:
    fake_pip(monkeypatch, 1, PIP_NO_WHEEL)
    with pytest.raises(WsgishipError) as err:
        wheelhouse.build("psycopg2==2.9.9\n", Platform.from_facts(FACTS, "w"), "web1")
    text = str(err.value)
    assert text.startswith("web1: wheelhouse: no wheel of psycopg2==2.9.9 for web1's platform "
                           "(cp311 manylinux_2_36_x86_64); nothing was changed"), text
    assert "wheelhouse: false" in text and "Traceback" not in text


def test_build_says_the_uwsgi_sdist_has_a_wheel_twin(monkeypatch) -> None:
    fake_pip(monkeypatch, 1, PIP_NO_WHEEL.replace("psycopg2==2.9.9", "uwsgi==2.0.31"))
    with pytest.raises(WsgishipError) as err:
        wheelhouse.build("uwsgi==2.0.31\n", Platform.from_facts(FACTS, "w"), "web1")
    assert "uwsgi==2.0.31 is a source package" in str(err.value)
    assert "set uwsgi_package: pyuwsgi (the same uWSGI as wheels)" in str(err.value)
    assert "drop any uwsgi pin from the requirements" in str(err.value)


def test_build_shows_another_pip_failure_without_its_warnings(monkeypatch) -> None:
    fake_pip(monkeypatch, 2, "WARNING: noise\nERROR: network unreachable\n")
    with pytest.raises(WsgishipError) as err:
        wheelhouse.build("x\n", Platform.from_facts(FACTS, "w"), "web1")
    assert "pip download failed on this machine: ERROR: network unreachable" in str(err.value)
    assert "noise" not in str(err.value)
