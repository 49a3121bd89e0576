"""wsgiship.commands.shared: the scripts that list, edit and put the app's shared files, run here
on a deploy tree in tmp_path with their data on stdin after the marker line, as Remote.feed
sends them (stream._SKIP first; $SUDO and $AS_APP set; the fakes stand in for sudo and
install). The values go in on stdin and never come out."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from fakes import as_app, as_deploy, calls, fake_env, priv, sudoed

from wsgiship import envvars, privilege
from wsgiship.commands import shared
from wsgiship.commands.appenv import run_in
from wsgiship.layout import Paths
from wsgiship.remote.stream import _SKIP, FEED_MARK
from wsgiship.shell import bash

SECRET = "tok-a9d2 $HOME `id` 'q'"
PY = sys.executable


@pytest.fixture
def tree(tmp_path: Path) -> Paths:
    """shared/ with the .env the live release links to, and the live release's rendered env."""
    p = Paths(str(tmp_path / "srv"), "app")
    Path(p.shared, "media").mkdir(parents=True)
    release = Path(p.release("r1"))
    (release / ".wsgiship").mkdir(parents=True)
    (release / ".wsgiship" / "env").write_text("GREETING=hi\nTOKEN=abc\n")
    Path(p.shared, ".env").write_text("")
    (release / ".env").symlink_to(Path(p.shared, ".env"))
    Path(p.current).symlink_to("releases/r1")
    return p


def fed(body: str, data: bytes, env: dict[str, str] | None = None, sudo: str = "",
        app: str = "") -> subprocess.CompletedProcess[str]:
    """Run the script as Remote.feed does: its data on stdin after the marker (a password line
    before it is skipped)."""
    script = priv(as_app(_SKIP + body, app), sudo)
    stdin = b"a-password-line\n" + FEED_MARK.encode() + b"\n" + data
    res = subprocess.run(bash(script), shell=True, input=stdin, capture_output=True, timeout=60,
                         env={**os.environ, **(env or {})})
    return subprocess.CompletedProcess(res.args, res.returncode, res.stdout.decode(),
                                       res.stderr.decode())


def events(res: subprocess.CompletedProcess[str]) -> list[dict]:
    return [json.loads(line) for line in res.stdout.splitlines()]


def edit(p: Paths, sets: dict[str, str], unset: list[str] = (), **kw: str):  # type: ignore[assignment]
    change = {"set": [[k, envvars.env_line(k, v)] for k, v in sets.items()], "unset": list(unset)}
    return fed(shared.edit_env(p, PY, ".env", "web"), json.dumps(change).encode(), **kw)


def mode(path: str) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def test_edit_sets_and_unsets_in_place_keeping_the_rest(tree: Path) -> None:
    p = tree
    env = Path(p.shared, ".env")
    env.write_text("# comment\nKEEP=1\nexport OLD='x'\nDUP=first\nDUP=second\nnot a variable\n")
    env.chmod(0o644)
    inode = env.stat().st_ino
    res = edit(p, {"NEW": SECRET, "DUP": "third", "KEEP": "1"}, ["OLD", "NOPE"])
    assert res.returncode == 0, res.stderr
    assert events(res) == [{"set": "NEW", "was": "new"}, {"set": "DUP", "was": "changed"},
                           {"set": "KEEP", "was": "same"}, {"unset": "OLD", "was": "removed"},
                           {"unset": "NOPE", "was": "absent"}, {"created": False}]
    assert SECRET not in res.stdout + res.stderr
    assert env.read_text() == f"# comment\nKEEP=1\nDUP=third\nnot a variable\nNEW={SECRET}\n"
    assert env.stat().st_ino == inode and mode(str(env)) == 0o600  # the same file, the app's


def test_what_edit_writes_is_what_the_app_reads(tree: Path, sh) -> None:
    p = tree
    values = {"A": SECRET, "B": "  padded ", "C": "'quoted'", "D": ""}
    assert edit(p, values).returncode == 0
    venv = Path(p.venvs, "k", "bin")
    venv.mkdir(parents=True)
    (venv / "python").symlink_to(PY)
    Path(p.release("r1"), ".venv").symlink_to(Path(p.venvs, "k"))
    show = ["python", "-c", "import json, os; print(json.dumps({k: os.environ[k] for k in 'ABCD'}))"]
    res = sh(run_in(p.current, show))
    assert json.loads(res.stdout) == values, res.stderr


@pytest.mark.parametrize("planted", [".env", "media"])
def test_a_symbolic_link_on_the_way_is_refused(tree: Path, tmp_path: Path, planted: str) -> None:
    p = tree
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "k.json").write_text("theirs\n")
    (outside / ".env").write_text("theirs\n")
    target = Path(p.shared, planted)
    target.unlink() if target.is_file() else target.rmdir()
    target.symlink_to(outside / planted if planted == ".env" else outside)
    name = ".env" if planted == ".env" else "media/k.json"
    res = fed(shared.put_file(p, PY, name, "web", 3), b"new")
    assert res.returncode == shared.REFUSED
    assert res.stderr == f"refusing: shared/{planted} is a symbolic link on the server\n"
    assert {f.read_text() for f in outside.iterdir()} == {"theirs\n"}


def test_put_writes_exactly_the_bytes_and_a_short_upload_changes_nothing(tree: Path) -> None:
    p = tree
    data = b"\x00binary\nline\r\n" + SECRET.encode() + b"\xff"
    target = Path(p.shared, "media", "creds.bin")
    res = fed(shared.put_file(p, PY, "media/creds.bin", "web", len(data)), data)
    assert res.returncode == 0, res.stderr
    assert events(res) == [{"bytes": len(data), "created": True}]
    assert target.read_bytes() == data and mode(str(target)) == 0o600
    res = fed(shared.put_file(p, PY, "media/creds.bin", "web", 2), b"ok")  # shorter: cut to it
    assert target.read_bytes() == b"ok" and events(res) == [{"bytes": 2, "created": False}]
    res = fed(shared.put_file(p, PY, "media/creds.bin", "web", 10), b"cut")
    assert res.returncode == shared.REFUSED and "cut short (3 of 10 bytes)" in res.stderr
    assert target.read_bytes() == b"ok"


@pytest.mark.parametrize("name, words", [("nodir/x", "shared/nodir: no such directory"),
                                         ("media", "shared/media is not a regular file"),
                                         (".env/x", "shared/.env is not a directory")])
def test_put_refuses_what_is_no_file_of_shared(tree: Path, name: str, words: str) -> None:
    res = fed(shared.put_file(tree, PY, name, "web", 1), b"x")
    assert res.returncode == shared.REFUSED and words in res.stderr


@pytest.fixture
def unwritable(tmp_path: Path) -> Path:
    """A python that says NO_FILE (the app's user may not create the file) until root made it:
    as the program does in a shared/ that is not the app's."""
    fake = tmp_path / "py-first-no-file"
    # (argv: -I -c PROGRAM MODE SHARED NAME ...)
    fake.write_text(f'#!/bin/bash\n[ -e "$5/$6" ] || exit {shared.NO_FILE}\nexec {PY} "$@"\n')
    fake.chmod(0o755)
    return fake


def test_root_creates_a_missing_file_for_the_app_when_it_may(tree: Path, fakebin: Path,
                                                              unwritable: Path) -> None:
    p = tree
    env = as_deploy(fakebin)
    res = fed(shared.put_file(p, str(unwritable), "new.json", "web", 2), b"{}", env=env,
              sudo="sudo -n", app="sudo -n -u web --")
    assert res.returncode == 0, res.stderr
    assert sudoed(fakebin) == [f"install -m 600 -o web -g www-data /dev/null {p.shared}/new.json"]
    assert Path(p.shared, "new.json").read_bytes() == b"{}"
    # the program ran as the app, twice (the second time with the file there)
    assert len([c for c in calls(fakebin) if c.startswith("sudo -n -u web -- ")]) == 2


def test_a_restricted_deploy_user_is_told_to_run_setup(tree: Path, fakebin: Path,
                                                       unwritable: Path) -> None:
    p = tree
    env = as_deploy(fakebin, SUDO_REFUSE="install")
    res = fed(shared.put_file(p, str(unwritable), "new.json", "web", 2), b"{}", env=env,
              sudo="sudo -n", app="sudo -n -u web --")
    assert res.returncode == shared.CANNOT_CREATE
    assert not Path(p.shared, "new.json").exists()
    asked = sudoed(fakebin)  # (refused)
    assert asked == [f"install -m 600 -o web -g www-data /dev/null {p.shared}/new.json"]
    # a nested one is never made by root: the program's own answer stands
    res = fed(shared.put_file(p, str(unwritable), "media/new.json", "web", 2), b"{}", env=env,
              sudo="sudo -n", app="sudo -n -u web --")
    assert res.returncode == shared.NO_FILE and sudoed(fakebin) == asked


def test_only_an_empty_file_for_the_app_is_roots() -> None:
    p = Paths("/srv/app", "app")
    with privilege.recording() as seen:
        scripts = [shared.edit_env(p, "python3", ".env", "web"),
                   shared.put_file(p, "python3", "x", "web", 1),
                   shared.put_file(p, "python3", "media/x", "web", 1),
                   shared.list_env(p, "python3", ".env"), shared.stage_env("python3")]
    assert [c.argv for c in seen] == [
        ("install", "-m", "600", "-o", "web", "-g", "www-data", "/dev/null", f"{p.shared}/.env"),
        ("install", "-m", "600", "-o", "web", "-g", "www-data", "/dev/null", f"{p.shared}/x")]
    assert not any(c.granted for c in seen)  # never a sudo rule: a restricted user cannot
    assert all("$AS_APP python3 -I -c" in s for s in scripts)


def test_list_gives_names_and_lengths_never_values(tree: Path) -> None:
    p = tree
    Path(p.shared, ".env").write_text(f"A={SECRET}\nA=second\n# B=1\nexport C=' x '\n")
    res = fed(shared.list_env(p, PY, ".env"), b"")
    assert res.returncode == 0, res.stderr
    assert SECRET not in res.stdout and "second" not in res.stdout and "abc" not in res.stdout
    assert events(res) == [
        {"file": "shared", "state": "present"},
        {"entry": "shared", "key": "A", "length": len(SECRET)},  # the first one counts
        {"entry": "shared", "key": "C", "length": 3},
        {"file": "deployed", "state": "present"},
        {"entry": "deployed", "key": "GREETING", "length": 2},
        {"entry": "deployed", "key": "TOKEN", "length": 3},
        {"linked": True}]


def test_list_says_what_is_missing_or_refused(tree: Path, tmp_path: Path) -> None:
    p = tree
    Path(p.release("r1"), ".env").unlink()  # a release deployed before shared_files listed it
    Path(p.shared, ".env").unlink()
    res = fed(shared.list_env(p, PY, ".env"), b"")
    assert events(res)[0] == {"file": "shared", "state": "missing"}
    assert events(res)[-1] == {"linked": False}
    Path(p.shared, ".env").symlink_to(tmp_path / "elsewhere")
    res = fed(shared.list_env(p, PY, ".env"), b"")
    assert events(res)[0] == {"file": "shared", "state": "refused",
                              "why": "refusing: shared/.env is a symbolic link on the server"}


def test_stage_env_hands_the_command_its_variables_and_goes(tree: Path, tmp_path: Path,
                                                            sh) -> None:
    p = tree
    values = {"FOO": SECRET, "GREETING": "over"}
    res = fed(shared.stage_env(PY), envvars.env_text(values).encode(),
              env={"TMPDIR": str(tmp_path)})
    path = res.stdout.strip().removeprefix("file=")
    assert res.returncode == 0 and Path(path).parent == tmp_path, res.stderr
    assert mode(path) == 0o600
    venv = Path(p.venvs, "k", "bin")
    venv.mkdir(parents=True)
    (venv / "python").symlink_to(PY)
    Path(p.release("r1"), ".venv").symlink_to(Path(p.venvs, "k"))
    show = ["python", "-c", "import os; print(os.environ['FOO'], os.environ['GREETING'],"
                            " os.environ.get('WSGISHIP_EXEC_ENV'))"]
    res = sh(run_in(p.current, show, path), env={"GREETING": "caller"})
    # over the app's own and the caller's; the file gone once the command runs
    assert res.stdout == f"{SECRET} over None\n", res.stderr
    assert not Path(path).exists()
    # without one, a stray $WSGISHIP_EXEC_ENV is never taken for one (nor removed)
    keep = tmp_path / "keep"
    keep.write_text("FOO=x\n")
    res = sh(run_in(p.current, show), env={"WSGISHIP_EXEC_ENV": str(keep), "FOO": "caller"})
    assert res.stdout == "caller hi None\n" and keep.exists(), res.stderr


def test_the_fed_script_runs_as_the_app(tree: Path, fakebin: Path) -> None:
    res = fed(shared.list_env(tree, PY, ".env"), b"", env=fake_env(fakebin, FAKE_LOGIN="deploy"),
              app="sudo -n -u web --")
    assert res.returncode == 0, res.stderr
    assert [c.split(" -c ")[0] for c in calls(fakebin)] == [f"sudo -n -u web -- {PY} -I"]
