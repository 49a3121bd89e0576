"""wsgiship.commands.appenv: run a command as the app runs (run_in, executed in a release dir in
tmp_path whose .venv's python is this machine's), and as the app's user (as_app_user)."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

import pytest
from fakes import HOSTILE, HOSTILE_TOUCH, PWNED, add_fakes, as_deploy, calls, priv, sudoed

from wsgiship import privilege
from wsgiship.commands.appenv import run_in

KEYS = ("T_A", "T_B", "T_C")
# prints the KEYS as the command sees them, as JSON
SHOW = ["python", "-c", "import json, os; print(json.dumps({k: os.environ.get(k) for k in "
        f"{KEYS!r}}}))"]


@pytest.fixture
def release(tmp_path: Path) -> Path:
    """A release dir whose .venv links to a venv with this machine's python."""
    venv = tmp_path / "venvs" / "k1"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").symlink_to(sys.executable)
    r = tmp_path / "releases" / "r1"
    (r / ".wsgiship").mkdir(parents=True)
    (r / ".venv").symlink_to("../../venvs/k1")
    return r


def env_files(release: Path, dotenv: str | None, settings: str | None) -> None:
    if dotenv is not None:
        (release / ".env").write_text(dotenv)
    if settings is not None:
        (release / ".wsgiship" / "env").write_text(settings)


@pytest.mark.parametrize("dotenv, settings, caller, expected", [
    ("T_A=1\n", None, {}, {"T_A": "1"}),
    (None, "T_A=1\n", {}, {"T_A": "1"}),
    (None, None, {}, {}),                                          # no env file at all
    # quotes around a value are stripped, `export` too; spaces around key and value go
    ("export T_A='x y'\nT_B=\"p q\"\n  T_C = 3  \n", None, {}, {"T_A": "x y", "T_B": "p q", "T_C": "3"}),
    # a lone or mismatched quote stays
    ("T_A=\"x\nT_B='y\"\nT_C='\n", None, {}, {"T_A": '"x', "T_B": "'y\"", "T_C": "'"}),
    # no shell expansion, and only the first = splits
    ("T_A=$HOME `id` $(id)\nT_B=b=c\n", None, {}, {"T_A": "$HOME `id` $(id)", "T_B": "b=c"}),
    # comments, blank lines and lines without = are skipped
    ("# T_A=1\n\nT_B\nT_C=3\n", None, {}, {"T_C": "3"}),
    # the shared .env first, then the rendered .wsgiship/env: the first one wins
    ("T_A=dotenv\n", "T_A=settings\nT_B=settings\n", {}, {"T_A": "dotenv", "T_B": "settings"}),
    # the caller's environment wins over both, even when empty
    ("T_A=dotenv\n", "T_B=settings\n", {"T_A": "caller", "T_B": ""}, {"T_A": "caller", "T_B": ""}),
])
def test_run_in_loads_the_apps_environment(release: Path, sh, dotenv: str | None, settings: str | None,
                                           caller: dict[str, str], expected: dict[str, str]) -> None:
    env_files(release, dotenv, settings)
    res = sh(run_in(str(release), SHOW), env=caller)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout) == {k: expected.get(k) for k in KEYS}


def test_run_in_runs_in_the_release_with_its_venv_first(release: Path, tmp_path: Path, sh) -> None:
    (tmp_path / "current").symlink_to("releases/r1")
    code = ("import os, sys; print(os.getcwd()); print(os.environ['VIRTUAL_ENV']);"
            " print(os.environ['PATH'].split(':')[0]); print(sys.argv[1:])")
    res = sh(run_in(str(tmp_path / "current"), ["python", "-c", code, HOSTILE, "a b", ""]),
             env={"PYTHONHOME": "/nowhere"})  # would break python: unset
    assert res.returncode == 0, res.stderr
    cwd, venv, first, argv = res.stdout.splitlines()
    assert cwd == str(release)  # the release itself, not `current`
    assert venv == str(tmp_path / "venvs" / "k1")
    assert first == f"{venv}/bin"
    assert argv == str([HOSTILE, "a b", ""])


@pytest.mark.parametrize("argv, code, err", [
    (["sh", "-c", "exit 7"], 7, ""),
    (["no-such-command-x"], 127, "no-such-command-x: command not found\n"),
    ([".wsgiship/not-executable"], 126, ".wsgiship/not-executable: permission denied\n"),
    ([HOSTILE_TOUCH], 127, f"{HOSTILE_TOUCH}: command not found\n"),
])
def test_run_in_returns_the_commands_exit_code(release: Path, sh, argv: list[str], code: int,
                                               err: str) -> None:
    (release / ".wsgiship" / "not-executable").write_text("#!/bin/sh\necho ran\n")
    res = sh(run_in(str(release), argv))
    assert (res.returncode, res.stdout, res.stderr) == (code, "", err)
    assert not PWNED.exists()


def test_run_in_a_missing_directory_fails(tmp_path: Path, sh) -> None:
    res = sh(run_in(str(tmp_path / "nowhere"), ["true"]))
    assert res.returncode == 1 and "nowhere" in res.stderr


# --- as_app_user ---


@pytest.mark.parametrize("body, user", [
    ("id -un", "www-data"),
    (f"echo {shlex.quote(HOSTILE)}", "web"),
    (HOSTILE_TOUCH, "web" + HOSTILE),
])
def test_as_app_user_is_a_root_runuser(body: str, user: str) -> None:
    with privilege.recording() as seen:
        text = as_app_user(body, user)
    assert shlex.split(text) == ["$SUDO", "runuser", "-u", user, "--", "bash", "-c", body]
    # root for itself, not one of the commands a restricted deploy user is granted
    assert seen == [privilege.RootCommand(("runuser", "-u", user, "--", "bash", "-c", body), granted=False)]


# runuser -u USER -- CMD...: records the user, runs CMD
RUNUSER = {"runuser": 'echo "runuser $1 $2" >> "$CALLS"\nneed_root runuser\n'
                      '[ "$1" = -u ] && [ "$3" = -- ] || exit 9\nshift 3\nexec "$@"\n'}


def test_as_app_user_runs_the_body_through_sudo(fakebin: Path, sh) -> None:
    add_fakes(fakebin, RUNUSER)
    body = f"printf '%s\\n' {shlex.quote(HOSTILE)} \"$0\""
    res = sh(priv(as_app_user(body, "web"), "sudo -n"), env=as_deploy(fakebin))
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines() == [HOSTILE, "bash"]
    assert sudoed(fakebin) == [f"runuser -u web -- bash -c {body}"]
    assert calls(fakebin)[-1] == "runuser -u web"
    # without $SUDO a deploy user is refused
    res = sh(priv(as_app_user(body, "web"), ""), env=as_deploy(fakebin))
    assert res.returncode == 77 and res.stdout == ""


def test_run_in_as_app_user_keeps_the_environment_loading(release: Path, fakebin: Path, sh) -> None:
    add_fakes(fakebin, RUNUSER)
    env_files(release, "T_A=dotenv\n", None)
    res = sh(priv(as_app_user(run_in(str(release), SHOW), "web"), "sudo -n"), env=as_deploy(fakebin))
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["T_A"] == "dotenv"
    assert calls(fakebin)[-1] == "runuser -u web"
