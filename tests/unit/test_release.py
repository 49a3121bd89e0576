"""wsgiship.commands.release: prepare (the lock), unlock and layout, and the quoting of every
builder (unpack, switch, mark_failed and append_log run in test_release_unpack.py, prune in
test_release_prune.py).

Besides their text, the scripts run for real on a deploy tree in tmp_path (Paths accepts any
deploy_to), with the fakes of fakes.py on PATH where a real command would touch the machine.
"""

from __future__ import annotations

import json
import os
import shlex
import sys
from pathlib import Path

import pytest
from fakes import (
    HOSTILE,
    NAME,
    add_release,
    as_deploy,
    body_lines,
    calls,
    line_with,
    paths,
    priv,
    rel,
    sudoed,
)

from wsgiship.commands import release
from wsgiship.layout import Paths


def test_switch_quotes_the_release() -> None:
    p = Paths("/srv/app", "app")
    text = release.switch(p, HOSTILE)
    assert shlex.split(line_with(text, "ln -sfn")) == [
        "ln", "-sfn", "releases/" + HOSTILE, "/srv/app/.current.tmp"]
    assert shlex.split(line_with(text, "test -f")) == [
        "test", "-f", f"/srv/app/releases/{HOSTILE}/.wsgiship/uwsgi.ini"]


def test_paths_with_hostile_deploy_to_are_quoted() -> None:
    p = Paths("/srv/a b" + HOSTILE, "app")
    text = release.prune(p, 5, HOSTILE)
    assert shlex.split(body_lines(text)[0]) == ["cd", p.releases]
    assert shlex.split(line_with(text, "keep=")) == [
        "keep=5;", f"current={HOSTILE};", "good=0;", "failed=0;", "after_current=0"]
    assert shlex.split(line_with(release.prepare(p, "python3", {}), "D="))[0] == "D=" + p.deploy_to


def test_unpack_quotes_release_upload_and_shared_names() -> None:
    p = Paths("/srv/app", "app")
    text = release.unpack(p, HOSTILE, "/srv/app/.up " + HOSTILE, (), ())
    assert shlex.split(line_with(text, "R=")) == [f"R=/srv/app/releases/{HOSTILE}"]
    assert shlex.split(line_with(text, "rm -f")) == ["rm", "-f", "/srv/app/.up " + HOSTILE]


def test_mark_failed_and_log_quote_free_text() -> None:
    p = Paths("/srv/app", "app")
    text = release.mark_failed(p, NAME, HOSTILE)
    assert HOSTILE in shlex.split(line_with(text, "FAILED"))
    entry = {"reason": HOSTILE, "release": NAME}
    argv = shlex.split(line_with(release.append_log(p, entry), "printf"))
    assert argv[:3] == ["printf", "%s\\n", json.dumps(entry, sort_keys=True)]


def test_prepare_quotes_holder_and_python() -> None:
    p = Paths("/srv/app", "app")
    holder = {"by": HOSTILE, "token": "abc"}
    text = release.prepare(p, "python3" + HOSTILE, holder)
    argv = shlex.split(line_with(text, '> "$H"'))
    assert argv[:4] == ["if", "!", "printf", "%s\\n"]
    assert argv[4] == json.dumps(holder, sort_keys=True)
    assert shlex.split(line_with(text, "command -v").split(">")[0]) == [
        "command", "-v", "python3" + HOSTILE]


def test_unlock_quotes_the_token() -> None:
    text = release.unlock(Paths("/srv/app", "app"), HOSTILE)
    assert body_lines(text)[0] == release.ALIVE
    assert shlex.split(body_lines(text)[1]) == ["L=/srv/app/.lock"]
    assert shlex.split(body_lines(text)[2])[:5] == ["if", "grep", "-qF", HOSTILE, "$L/holder"]


def test_layout_quotes_owner() -> None:
    p = Paths("/srv/app", "app")
    text = release.layout(p, HOSTILE)
    install = [line for line in text.splitlines() if line.startswith("$SUDO install")]
    assert len(install) == 7
    for line in install:
        argv = shlex.split(line.removeprefix("$SUDO "))
        assert argv[:8] == ["install", "-d", "-o", HOSTILE, "-g", "www-data", "-m", "2750"]
    dirs = [shlex.split(line)[-1] for line in install]
    assert dirs == ["/srv/app", "/srv/app/releases", "/srv/app/shared", "/srv/app/venvs",
                    "/srv/app/shared/log", "/srv/app/shared/run", "/srv/app/slots"]
    assert dirs == p.dirs


def test_prepare_takes_the_lock_and_reports_facts(deploy: Path, sh) -> None:
    p = paths(deploy)
    (deploy / "current").symlink_to("releases/" + NAME)
    holder = {"by": "alice@laptop", "pid": "42", "token": "tok-1", "action": "deploy"}
    res = sh(release.prepare(p, sys.executable, holder))
    assert res.returncode == 0, res.stderr
    facts = dict(line.split("=", 1) for line in res.stdout.splitlines())
    assert facts["python"] == ".".join(map(str, sys.version_info[:3]))
    assert facts["current"] == "releases/" + NAME
    assert facts["user"]
    assert json.loads((deploy / ".lock" / "holder").read_text()) == holder


def test_prepare_without_current_reports_it_empty(deploy: Path, sh) -> None:
    res = sh(release.prepare(paths(deploy), sys.executable, {"token": "t"}))
    assert res.returncode == 0
    assert "current=\n" in res.stdout


def test_second_prepare_is_locked_and_prints_the_holder(deploy: Path, sh) -> None:
    p = paths(deploy)
    first = {"by": "alice@laptop", "token": "tok-1"}
    assert sh(release.prepare(p, sys.executable, first)).returncode == 0
    res = sh(release.prepare(p, sys.executable, {"by": "bob@desk", "token": "tok-2"}))
    assert res.returncode == release.LOCKED
    assert json.loads(res.stdout.splitlines()[0]) == first
    assert json.loads((deploy / ".lock" / "holder").read_text()) == first  # not overwritten


def test_unlock_with_a_wrong_token_leaves_the_lock(deploy: Path, sh) -> None:
    p = paths(deploy)
    assert sh(release.prepare(p, sys.executable, {"token": "tok-1"})).returncode == 0
    assert sh(release.unlock(p, "tok-2")).returncode == 0
    assert (deploy / ".lock" / "holder").is_file()
    assert sh(release.prepare(p, sys.executable, {"token": "tok-3"})).returncode == release.LOCKED
    assert sh(release.unlock(p, "tok-1")).returncode == 0
    assert not (deploy / ".lock").exists()
    assert sh(release.prepare(p, sys.executable, {"token": "tok-3"})).returncode == 0


def test_unlock_without_a_lock_succeeds(deploy: Path, sh) -> None:
    assert sh(release.unlock(paths(deploy), "tok")).returncode == 0


def test_prepare_asks_for_the_layout(tmp_path: Path, sh) -> None:
    res = sh(release.prepare(Paths(str(tmp_path / "missing"), "app"), sys.executable, {}))
    assert res.returncode == release.NEEDS_LAYOUT
    assert not (tmp_path / "missing").exists()


def test_prepare_without_python_does_not_lock(deploy: Path, sh) -> None:
    res = sh(release.prepare(paths(deploy), "no-such-python-wsgiship", {"token": "t"}))
    assert res.returncode == release.NO_PYTHON
    assert not (deploy / ".lock").exists()


# --- the lock's holder: written first, then moved into the lock ---


def temp_holders(deploy: Path) -> list[str]:
    """The holders prepare writes before taking the lock, left in <deploy_to>."""
    return sorted(p.name for p in deploy.iterdir() if p.name.startswith(".lock-holder."))


def test_prepare_writes_the_holder_before_taking_the_lock() -> None:
    text = release.prepare(Paths("/srv/app", "app"), "python3", {"token": "t"})
    lines = body_lines(text)
    temp = lines.index('H="$D/.lock-holder.$$"')
    write = next(i for i, line in enumerate(lines) if '> "$H"' in line)
    lock = next(i for i, line in enumerate(lines) if "mkdir" in line)
    move = next(i for i, line in enumerate(lines) if line.startswith('mv "$H" '))
    assert temp < write < lock < move
    assert shlex.split(lines[move])[-1].endswith("/holder")


def test_prepare_moves_the_holder_into_the_lock(deploy: Path, sh) -> None:
    holder = {"by": "alice@laptop", "token": "tok-1"}
    res = sh(release.prepare(paths(deploy), sys.executable, holder))
    assert res.returncode == 0, res.stderr
    assert json.loads((deploy / ".lock" / "holder").read_text()) == holder
    assert temp_holders(deploy) == []  # moved, not copied


def test_a_locked_prepare_leaves_no_temp_holder_behind(deploy: Path, sh) -> None:
    p = paths(deploy)
    first = {"by": "alice@laptop", "token": "tok-1"}
    assert sh(release.prepare(p, sys.executable, first)).returncode == 0
    for _ in range(3):
        res = sh(release.prepare(p, sys.executable, {"by": "bob@desk", "token": "tok-2"}))
        assert res.returncode == release.LOCKED
    assert temp_holders(deploy) == []
    assert json.loads((deploy / ".lock" / "holder").read_text()) == first


def test_prepare_without_python_leaves_no_temp_holder(deploy: Path, sh) -> None:
    assert sh(release.prepare(paths(deploy), "no-such-python-wsgiship",
                              {"token": "t"})).returncode == release.NO_PYTHON
    assert temp_holders(deploy) == []


FAKE_DF = ('#!/bin/bash\necho "df $*" >> "$CALLS"\n'
           'echo "Filesystem     1048576-blocks  Used Available Capacity Mounted on"\n'
           'echo "/dev/vda1               20000 19993         7     100% /srv"\n')


def full_disk(body: str, deploy: Path) -> str:
    """`body` run by a shell whose temp holder ($D/.lock-holder.$$) is a link to /dev/full: its
    write fails with ENOSPC, as on a full disk (exec keeps the pid, so $$ is the same)."""
    return f"ln -s /dev/full {shlex.quote(str(deploy))}/.lock-holder.$$ && exec bash -c {shlex.quote(body)}"


def test_prepare_on_a_full_disk_says_the_free_space_and_takes_no_lock(deploy: Path,
                                                                      tmp_path: Path, sh) -> None:
    bin_ = tmp_path / "df-bin"  # a df saying 7 MB free; nothing else faked
    bin_.mkdir()
    (bin_ / "df").write_text(FAKE_DF)
    (bin_ / "df").chmod(0o755)
    res = sh(full_disk(release.prepare(paths(deploy), sys.executable, {"token": "t"}), deploy),
             env={"PATH": f"{bin_}:{os.environ['PATH']}", "CALLS": str(tmp_path / "calls")})
    assert res.returncode == release.DISK_FULL == 43, res.stderr
    assert res.stdout == "7\n"  # the MB free, df's 4th column
    assert (tmp_path / "calls").read_text() == f"df -Pm {deploy}\n"
    assert not (deploy / ".lock").exists()
    assert temp_holders(deploy) == []  # the failed temp holder (here: the link) is removed
    assert Path("/dev/full").is_char_device()  # (only the link went)


def test_prepare_on_a_full_disk_reads_the_real_df(deploy: Path, sh) -> None:
    res = sh(full_disk(release.prepare(paths(deploy), sys.executable, {"token": "t"}), deploy))
    assert res.returncode == release.DISK_FULL
    assert res.stdout.strip().isdigit(), res.stdout
    assert not (deploy / ".lock").exists() and temp_holders(deploy) == []


# --- pending releases: unpack marks them (test_release_unpack.py), prepare lists them ---


@pytest.mark.parametrize("releases, expected", [
    ({}, ""),                                               # an empty releases dir
    ({1: False}, ""),
    ({1: False, 2: True}, f"{rel(2)} "),
    ({1: True, 2: False, 3: True}, f"{rel(1)} {rel(3)} "),
    ({1: True, 2: True}, f"{rel(1)} {rel(2)} "),
])
def test_prepare_lists_the_pending_releases(deploy: Path, sh, releases: dict[int, bool],
                                            expected: str) -> None:
    for i, is_pending in releases.items():
        r = add_release(deploy, rel(i))
        if is_pending:
            (r / "PENDING").touch()
    (deploy / "releases" / "notes.txt").write_text("a stray file is no release\n")
    res = sh(release.prepare(paths(deploy), sys.executable, {"token": "t"}))
    assert res.returncode == 0, res.stderr
    assert f"pending={expected}\n" in res.stdout
    assert res.stdout.endswith(f"pending={expected}\n")


def test_unpack_creates_pending_before_extracting() -> None:
    lines = body_lines(release.unpack(Paths("/srv/app", "app"), NAME, "/srv/app/.up", (), ()))
    pending = lines.index(': > "$R/PENDING"')
    assert lines.index('mkdir "$R"') < pending < next(
        i for i, line in enumerate(lines) if line.startswith("tar "))


def test_mark_ok_quotes_the_release() -> None:
    text = release.mark_ok(Paths("/srv/app", "app"), HOSTILE)
    assert [shlex.split(line) for line in body_lines(text)] == [
        ["rm", "-f", f"/srv/app/releases/{HOSTILE}/PENDING"]]


# --- force_unlock: says whether it removed a lock, and whose ---


@pytest.mark.parametrize("lock, expected", [
    (None, ""),                                            # no lock: nothing printed
    ('{"by": "alice@laptop", "token": "t"}\n', 'removed\n{"by": "alice@laptop", "token": "t"}\n'),
    ("", "removed\n"),                                     # an empty holder
    (False, "removed\n"),                                  # a lock dir without a holder
])
def test_force_unlock_prints_removed_then_the_holder(deploy: Path, sh, lock: str | bool | None,
                                                      expected: str) -> None:
    if lock is not None:
        (deploy / ".lock").mkdir()
        if lock is not False:
            (deploy / ".lock" / "holder").write_text(str(lock))
    res = sh(release.force_unlock(paths(deploy)))
    assert (res.returncode, res.stdout) == (0, expected), res.stderr
    assert not (deploy / ".lock").exists()


def test_force_unlock_removes_a_lock_prepare_took(deploy: Path, sh) -> None:
    p, holder = paths(deploy), {"by": "alice@laptop", "token": "tok-1"}
    assert sh(release.prepare(p, sys.executable, holder)).returncode == 0
    res = sh(release.force_unlock(p))
    removed, holder_line = res.stdout.splitlines()
    assert removed == "removed" and json.loads(holder_line) == holder
    assert sh(release.prepare(p, sys.executable, {"token": "tok-2"})).returncode == 0


# --- layout, executed ---


def test_layout_runs_each_root_command_through_sudo(tmp_path: Path, fakebin: Path,
                                                    sh) -> None:
    p = paths(tmp_path / "srv" / "new")
    res = sh(priv(release.layout(p, "deploy"), "sudo -n"), env=as_deploy(fakebin, GETENT_RC="2"))
    assert res.returncode == 0, res.stderr
    assert calls(fakebin)[0] == "getent group www-data"  # a read: no sudo
    assert sudoed(fakebin) == ["groupadd --system www-data"] + [
        f"install -d -o deploy -g www-data -m 2750 {d}" for d in p.dirs]
    assert all(Path(d).is_dir() for d in p.dirs)
    # www-data there already: no groupadd
    (fakebin / "calls").unlink()
    assert sh(priv(release.layout(p, "deploy"), "sudo -n"),
              env=as_deploy(fakebin)).returncode == 0
    assert not any("groupadd" in c for c in calls(fakebin))
