"""wsgiship.commands.exec (`fab exec`'s builders, run for real on a deploy tree in tmp_path)
and wsgiship.remote.attached.Utf8Runner (its output and stdin, as bytes and whole characters)."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from fakes import HOSTILE_TOUCH as HOSTILE
from fakes import run_utc as run

from wsgiship.commands import exec as exec_cmds
from wsgiship.layout import Paths
from wsgiship.remote.attached import Utf8Runner
from wsgiship.shell import bash


def test_as_user_is_runuser_for_a_root_login() -> None:
    assert shlex.split(exec_cmds.as_user("id", "www-data", "root")) == [
        "runuser", "-u", "www-data", "--", "bash", "-c", "id"]
    with pytest.raises(ValueError):
        exec_cmds.as_user("id", "www-data", "deploy")


@pytest.fixture
def deployed(tmp_path: Path) -> Paths:
    """A deploy tree with a current release whose .venv's python is this machine's."""
    p = Paths(str(tmp_path / "srv"), "shop")
    release = Path(p.release("20260101T000000Z-abc1234"))
    venv = Path(p.venvs) / "k1"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").symlink_to(sys.executable)
    (venv / "bin" / "shop-tool").write_text("#!/bin/sh\necho tool from venv\n")
    (venv / "bin" / "shop-tool").chmod(0o755)
    (release / ".wsgiship").mkdir(parents=True)
    (release / ".venv").symlink_to("../../venvs/k1")
    Path(p.shared).mkdir(parents=True)
    (Path(p.shared) / ".env").write_text(
        "# comment\nexport FROM_DOTENV='a $b `c`'\nBOTH=dotenv\nSPACES = \"x y\" \n")
    (release / ".env").symlink_to(Path(p.shared) / ".env")
    (release / ".wsgiship" / "env").write_text("GREETING=hi\nBOTH=settings\nKEPT=settings\n")
    Path(p.current).symlink_to("releases/20260101T000000Z-abc1234")
    return p


def test_exec_runs_in_the_release_with_the_venv_and_the_apps_environment(deployed) -> None:
    code = ("import os, sys; print(os.getcwd()); print(os.environ['VIRTUAL_ENV']); "
            "print(os.environ['PATH'].split(':')[0]); "
            "print([os.environ.get(k) for k in ('GREETING', 'FROM_DOTENV', 'BOTH', 'SPACES', "
            "'KEPT')]); print(sys.argv[1:])")
    body = exec_cmds.exec_command(deployed, ["python", "-c", code, HOSTILE, "a b", ""])
    res = subprocess.run(bash(body), shell=True, capture_output=True, text=True, timeout=30,
                         env={**os.environ, "KEPT": "caller", "PATH": "/usr/bin:/bin"})
    assert res.returncode == 0, res.stderr
    cwd, venv, first_path, values, argv = res.stdout.splitlines()
    release = os.path.realpath(deployed.current)
    assert cwd == release
    assert venv == os.path.realpath(f"{deployed.venvs}/k1")
    assert first_path == f"{venv}/bin"
    # the shared .env first (as wsgi.py loads it), the caller's environment wins
    assert values == str(["hi", "a $b `c`", "dotenv", "x y", "caller"])
    assert argv == str([HOSTILE, "a b", ""])


def test_exec_finds_commands_in_the_venv_and_returns_their_exit_code(deployed) -> None:
    assert run(exec_cmds.exec_command(deployed, ["shop-tool"])).stdout == "tool from venv\n"
    assert run(exec_cmds.exec_command(deployed, ["sh", "-c", "exit 7"])).returncode == 7
    res = run(exec_cmds.exec_command(deployed, ["no-such-command-x"]))
    assert res.returncode == 127 and "no-such-command-x: command not found" in res.stderr


def test_exec_probe_says_when_nothing_is_deployed(deployed, tmp_path) -> None:
    res = run(exec_cmds.exec_probe(deployed))
    assert res.returncode == 0 and res.stdout == "release=20260101T000000Z-abc1234\n"
    res = run(exec_cmds.exec_probe(Paths(str(tmp_path / "none"), "none")))
    assert res.returncode == exec_cmds.NOT_DEPLOYED


# --- Utf8Runner ---


def test_exec_output_is_decoded_whole_across_reads() -> None:
    data = "ü✓ end".encode()
    chunks = [data[i:i + 1] for i in range(len(data))] + [b""]
    runner = Utf8Runner.__new__(Utf8Runner)
    runner.encoding = "utf-8"
    runner.read_chunk_size = 1
    assert "".join(runner.read_proc_output(lambda n: chunks.pop(0))) == "ü✓ end"


def test_exec_passes_piped_stdin_on_as_bytes(tmp_path) -> None:
    runner = Utf8Runner.__new__(Utf8Runner)
    runner.encoding, runner.using_pty = "utf-8", False
    sent: list[bytes] = []
    runner._write_proc_stdin = sent.append  # type: ignore[method-assign]
    data = b"\xff\xfe binary \xc3"
    path = tmp_path / "in"
    path.write_bytes(data)
    with open(path, "rb") as f:
        got = runner.read_our_stdin(f)
        runner.write_proc_stdin(got)
        assert runner.read_our_stdin(f) == b""  # the end: Fabric closes the remote stdin
    assert sent == [data]
