"""wsgiship.commands.appenv: run a command as the app runs (run_in, executed in a release dir in
tmp_path whose .venv's python is this machine's), and as the app's user through $AS_APP
(privilege.as_app, as hooks run)."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

import pytest
from fakes import HOSTILE, HOSTILE_TOUCH, PWNED, as_app, as_deploy, calls, fake_env, sudoed

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


# --- as the app's user: $AS_APP bash -c BODY (how hooks run) ---


@pytest.mark.parametrize("body", ["id -un", f"echo {shlex.quote(HOSTILE)}", HOSTILE_TOUCH,
                                  "echo a\necho b"])
def test_as_app_is_not_a_root_command(body: str) -> None:
    with privilege.recording() as seen:
        text = privilege.as_app("bash", "-c", body)
    assert shlex.split(text) == ["$AS_APP", "bash", "-c", body]
    assert seen == []  # nothing for $SUDO nor for the sudo rules


# prints who runs it (the fakes' FAKE_LOGIN) and its arguments
WHO = f"printf '%s\\n' \"${{FAKE_LOGIN:-root}}\" {shlex.quote(HOSTILE)} \"$0\""


@pytest.mark.parametrize("login, prefix, who, via", [
    ("deploy", "", "deploy", None),                     # the app runs as the login user
    ("deploy", "sudo -n -u web --", "web", "sudo -n -u web -- bash -c "),
    ("root", "runuser -u web --", "web", "runuser -u web -- bash -c "),
])
def test_as_app_runs_the_body_as_the_apps_user(fakebin: Path, sh, login: str, prefix: str,
                                               who: str, via: str | None) -> None:
    env = as_deploy(fakebin) if login == "deploy" else fake_env(fakebin)
    res = sh(as_app(privilege.as_app("bash", "-c", WHO), prefix), env=env)
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines() == [who, HOSTILE, "bash"]
    assert [c for c in calls(fakebin) if c.startswith(("sudo", "runuser"))] == (
        [via + WHO] if via else [])
    assert sudoed(fakebin) == []  # never root
    assert not PWNED.exists()


def test_as_app_fails_when_sudo_may_not_act_as_the_app(fakebin: Path, sh) -> None:
    res = sh(as_app(privilege.as_app("bash", "-c", "echo ran"), "sudo -n -u web --"),
             env=as_deploy(fakebin, SUDO_REFUSE="bash"))
    assert res.returncode == 1 and res.stdout == ""
    assert "sudo: a password is required" in res.stderr


def test_run_in_as_the_app_keeps_the_environment_loading(release: Path, fakebin: Path, sh) -> None:
    env_files(release, "T_A=dotenv\n", None)
    body = "export T_B=hook\n" + run_in(str(release), SHOW)  # as hooks send it
    res = sh(as_app(privilege.as_app("bash", "-c", body), "sudo -n -u web --"),
             env=as_deploy(fakebin))
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout) == {"T_A": "dotenv", "T_B": "hook", "T_C": None}
    assert [c.split(" -- ")[0] for c in calls(fakebin) if c.startswith("sudo")] == [
        "sudo -n -u web"]
