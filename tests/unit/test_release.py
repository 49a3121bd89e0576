"""wsgiship.commands.release: prepare (the lock), unlock, layout, unpack, switch, mark_failed,
append_log and prune.

Besides their text, the scripts run for real on a deploy tree in tmp_path (Paths accepts any
deploy_to), with the fakes of fakes.py on PATH where a real command would touch the machine.
"""

from __future__ import annotations

import io
import json
import os
import shlex
import sys
import tarfile
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
    survivors,
    venvs,
)

from wsgiship import source
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
    assert len(install) == 6
    for line in install:
        argv = shlex.split(line.removeprefix("$SUDO "))
        assert argv[:8] == ["install", "-d", "-o", HOSTILE, "-g", "www-data", "-m", "2750"]
    dirs = [shlex.split(line)[-1] for line in install]
    assert dirs == ["/srv/app", "/srv/app/releases", "/srv/app/shared", "/srv/app/venvs",
                    "/srv/app/shared/log", "/srv/app/shared/run"]
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


# --- pending releases: unpack marks them, mark_ok clears them, prepare lists them ---


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


def test_unpack_leaves_the_release_pending_until_mark_ok(deploy: Path, sh) -> None:
    p = paths(deploy)
    upload = write_upload(deploy, {"app.py": "x\n"})
    assert sh(release.unpack(p, NAME, str(upload), (), ())).returncode == 0
    marker = deploy / "releases" / NAME / "PENDING"
    assert marker.is_file() and marker.read_bytes() == b""
    res = sh(release.prepare(p, sys.executable, {"token": "t"}))
    assert f"pending={NAME} \n" in res.stdout
    res = sh(release.mark_ok(p, NAME))
    assert (res.returncode, res.stdout, res.stderr) == (0, "", "")
    assert not marker.exists()
    assert (deploy / "releases" / NAME / "app.py").read_text() == "x\n"  # the rest stays
    assert sh(release.mark_ok(p, NAME)).returncode == 0   # again: nothing to do
    assert sh(release.mark_ok(p, "missing")).returncode == 0
    assert not (deploy / "releases" / "missing").exists()


def test_a_release_whose_unpack_failed_stays_pending(deploy: Path, sh) -> None:
    upload = deploy / ".broken.tar.gz"
    upload.write_bytes(b"not a tarball")
    assert sh(release.unpack(paths(deploy), NAME, str(upload), (), ())).returncode != 0
    assert (deploy / "releases" / NAME / "PENDING").is_file()


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


def write_upload(root: Path, files: dict[str, str], name: str = "upload.tar.gz") -> Path:
    src = source.Source(files={k: v.encode() for k, v in files.items()},
                        modes={k: 0o755 if k.endswith(".sh") else 0o644 for k in files},
                        revision="sha256:x", short_rev="x", dirty=False, requirements="")
    upload = root / f".{name}"
    upload.write_bytes(source.tarball(src, {".wsgiship/uwsgi.ini": "[uwsgi]\n"}))
    return upload


def test_unpack_extracts_the_tarball(deploy: Path, sh) -> None:
    upload = write_upload(deploy, {"app.py": "v=1\n", "pkg/mod.py": "x\n", "run.sh": "#!/bin/sh\n"})
    res = sh(release.unpack(paths(deploy), NAME, str(upload), (), ()))
    assert res.returncode == 0, res.stderr
    r = deploy / "releases" / NAME
    assert (r / "app.py").read_text() == "v=1\n"
    assert (r / "pkg" / "mod.py").read_text() == "x\n"
    assert (r / ".wsgiship" / "uwsgi.ini").is_file()
    assert os.access(r / "run.sh", os.X_OK)
    assert not upload.exists()  # the upload is removed
    assert r.stat().st_mode & 0o777 == 0o750  # created under umask 027


def test_unpack_creates_the_log_and_run_dirs(tmp_path: Path, sh) -> None:
    # a layout from before shared/run existed (or one whose shared dirs were removed)
    root = tmp_path / "srv" / "old"
    (root / "releases").mkdir(parents=True)
    upload = write_upload(root, {"app.py": "x\n"})
    res = sh(release.unpack(paths(root), NAME, str(upload), (), ()))
    assert res.returncode == 0, res.stderr
    for d in ("shared/log", "shared/run"):
        assert (root / d).is_dir(), d
        assert (root / d).stat().st_mode & 0o777 == 0o750  # under umask 027
    assert Paths(str(root), "app").run_dir == str(root / "shared" / "run")
    # there already: left as they are
    (root / "shared" / "run" / "uwsgi.sock").touch()
    upload = write_upload(root, {"app.py": "y\n"})
    assert sh(release.unpack(paths(root), rel(1), str(upload), (), ())).returncode == 0
    assert (root / "shared" / "run" / "uwsgi.sock").exists()


def test_unpack_never_overwrites_an_existing_release(deploy: Path, sh) -> None:
    add_release(deploy, NAME)
    (deploy / "releases" / NAME / "app.py").write_text("old\n")
    upload = write_upload(deploy, {"app.py": "new\n"})
    assert sh(release.unpack(paths(deploy), NAME, str(upload), (), ())).returncode != 0
    assert (deploy / "releases" / NAME / "app.py").read_text() == "old\n"


def write_raw_upload(root: Path, members: dict[str, tuple[int, bytes | None]]) -> Path:
    """An upload tarball with exactly these members (name: (mode, file content, or None for a
    dir)), owned by uid/gid 4321."""
    upload = root / ".raw.tar.gz"
    with tarfile.open(upload, "w:gz") as tar:
        for name, (mode, data) in members.items():
            info = tarfile.TarInfo(name)
            info.mode, info.uid, info.gid = mode, 4321, 4321
            if data is None:
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            else:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return upload


def test_unpack_takes_modes_from_the_umask_not_from_the_archive(deploy: Path, sh) -> None:
    # whoever logs in (root keeps an archive's modes and owners unless told not to), the
    # release is the login's, group-readable at most: nobody else writes the app's code
    upload = write_raw_upload(deploy, {
        "open.txt": (0o666, b"x\n"),
        "tool.sh": (0o777, b"#!/bin/sh\n"),
        "data": (0o777, None),
        "data/inner.txt": (0o666, b"y\n"),
        "plain.py": (0o644, b"z\n"),
        "script.sh": (0o755, b"#!/bin/sh\n"),
        "private": (0o600, b"k\n"),
        "setuid": (0o4777, b"#!/bin/sh\n"),
    })
    res = sh(release.unpack(paths(deploy), NAME, str(upload), (), ()))
    assert res.returncode == 0, res.stderr
    r = deploy / "releases" / NAME
    modes = {name: (r / name).stat().st_mode & 0o7777 for name in (
        "open.txt", "tool.sh", "data", "data/inner.txt", "plain.py", "script.sh", "private",
        "setuid")}
    assert modes == {"open.txt": 0o640, "tool.sh": 0o750, "data": 0o750, "data/inner.txt": 0o640,
                     "plain.py": 0o640, "script.sh": 0o750, "private": 0o600, "setuid": 0o750}
    assert {(r / name).stat().st_uid for name in modes} == {os.getuid()}


def test_unpack_seeds_shared_files_and_dirs_then_links_them(deploy: Path, sh) -> None:
    p, shared = paths(deploy), deploy / "shared"
    files, dirs = (".env", "conf/local.py", "secret.key"), ("media", "var/uploads")
    first = write_upload(deploy, {"app.py": "1\n", ".env": "A=1\n", "conf/local.py": "L = 1\n",
                                  "media/logo.png": "png1", "media/sub/x": "x1"})
    res = sh(release.unpack(p, rel(1), str(first), files, dirs))
    assert res.returncode == 0, res.stderr
    r1 = deploy / "releases" / rel(1)
    # seeded from the release on first use
    assert (shared / ".env").read_text() == "A=1\n"
    assert (shared / "conf" / "local.py").read_text() == "L = 1\n"
    assert (shared / "media" / "logo.png").read_text() == "png1"
    assert (shared / "media" / "sub" / "x").read_text() == "x1"
    # absent from the release: an empty private file, an empty dir
    assert (shared / "secret.key").read_bytes() == b""
    assert (shared / "secret.key").stat().st_mode & 0o077 == 0
    assert (shared / "var" / "uploads").is_dir()
    # and the release links to the shared copies
    for name in files + dirs:
        assert (r1 / name).is_symlink(), name
        assert os.readlink(r1 / name) == str(shared / name)
    # the next release brings its own copies: the shared ones win and are linked
    (shared / "media" / "uploaded.jpg").write_text("user data")
    second = write_upload(deploy, {"app.py": "2\n", ".env": "A=2\n", "media/logo.png": "png2"},
                          name="second.tar.gz")
    res = sh(release.unpack(p, rel(2), str(second), files, dirs))
    assert res.returncode == 0, res.stderr
    r2 = deploy / "releases" / rel(2)
    assert (r2 / ".env").read_text() == "A=1\n"
    assert (r2 / "media" / "logo.png").read_text() == "png1"
    assert (r2 / "media" / "uploaded.jpg").read_text() == "user data"
    assert (r2 / "app.py").read_text() == "2\n"
    for name in files + dirs:
        assert os.readlink(r2 / name) == str(shared / name)


def test_unpack_handles_names_with_spaces_and_quotes(deploy: Path, sh) -> None:
    name, odd = "r1 it's $(id)", "it's \"odd\" $HOME.txt"
    upload = write_upload(deploy, {"app.py": "x\n", odd: "secret\n"})
    res = sh(release.unpack(paths(deploy), name, str(upload), (odd,), ("my media",)))
    assert res.returncode == 0, res.stderr
    r = deploy / "releases" / name
    assert (r / "app.py").read_text() == "x\n"
    assert os.readlink(r / odd) == f"{deploy}/shared/{odd}"
    assert (deploy / "shared" / odd).read_text() == "secret\n"
    assert (r / "my media").is_symlink() and (deploy / "shared" / "my media").is_dir()
    assert sorted(p.name for p in (deploy / "releases").iterdir()) == [name]


def test_switch_points_current_at_the_release(deploy: Path, sh) -> None:
    p = paths(deploy)
    add_release(deploy, rel(1))
    add_release(deploy, rel(2))
    before = sorted(p.name for p in (deploy / "releases" / rel(1)).iterdir())
    assert sh(release.switch(p, rel(1))).returncode == 0
    current = deploy / "current"
    assert current.is_symlink() and os.readlink(current) == f"releases/{rel(1)}"
    first_inode = current.lstat().st_ino
    res = sh(release.switch(p, rel(2)))
    assert res.returncode == 0, res.stderr
    assert current.is_symlink() and os.readlink(current) == f"releases/{rel(2)}"
    assert current.resolve() == deploy / "releases" / rel(2)
    # a new link renamed over the old one: a different inode, no leftovers, and nothing
    # written inside the old release (the classic `ln -sf` into a dir link mistake)
    assert current.lstat().st_ino != first_inode
    assert not (deploy / ".current.tmp").exists()
    assert sorted(p.name for p in (deploy / "releases" / rel(1)).iterdir()) == before
    # and back (a rollback)
    assert sh(release.switch(p, rel(1))).returncode == 0
    assert os.readlink(current) == f"releases/{rel(1)}"


def test_switch_is_a_rename_never_a_removal() -> None:
    text = release.switch(Paths("/srv/app", "app"), NAME)
    last = shlex.split(text.splitlines()[-1])
    assert last == ["mv", "-T", "/srv/app/.current.tmp", "/srv/app/current"]
    assert "rm " not in text


def test_switch_refuses_a_release_without_configs(deploy: Path, sh) -> None:
    p = paths(deploy)
    add_release(deploy, rel(1))
    add_release(deploy, rel(2), configs=False)
    assert sh(release.switch(p, rel(1))).returncode == 0
    assert sh(release.switch(p, rel(2))).returncode != 0
    assert os.readlink(deploy / "current") == f"releases/{rel(1)}"
    assert sh(release.switch(p, "missing")).returncode != 0


def test_mark_failed_writes_the_reason(deploy: Path, sh) -> None:
    add_release(deploy, NAME)
    assert sh(release.mark_failed(paths(deploy), NAME, HOSTILE)).returncode == 0
    assert (deploy / "releases" / NAME / "FAILED").read_text() == HOSTILE + "\n"
    # a release that never got unpacked: nothing to mark, no error
    assert sh(release.mark_failed(paths(deploy), "missing", "x")).returncode == 0
    assert not (deploy / "releases" / "missing").exists()


def test_append_log_appends_json_lines(deploy: Path, sh) -> None:
    p = paths(deploy)
    entries = [{"release": rel(1), "result": "ok"}, {"release": rel(2), "reason": HOSTILE}]
    for entry in entries:
        assert sh(release.append_log(p, entry)).returncode == 0
    lines = (deploy / "deploys.log").read_text().splitlines()
    assert [json.loads(line) for line in lines] == entries


# --- prune ---


def test_prune_keeps_the_newest_good_releases(deploy: Path, sh) -> None:
    for i in range(1, 8):
        add_release(deploy, rel(i))
    res = sh(release.prune(paths(deploy), 3, rel(7)))
    assert res.returncode == 0, res.stderr
    assert survivors(deploy) == [5, 6, 7]
    assert sorted(res.stdout.splitlines()) == [f"pruned {rel(i)}" for i in range(1, 5)]


def test_prune_with_nothing_to_do(deploy: Path, sh) -> None:
    add_release(deploy, rel(1), venv_key="k1")
    res = sh(release.prune(paths(deploy), 5, rel(1)))
    assert res.returncode == 0, res.stderr
    assert res.stdout == ""
    assert survivors(deploy) == [1] and venvs(deploy) == {"k1"}


def test_prune_keeps_current_and_the_rollback_target_after_a_rollback(deploy: Path, sh) -> None:
    # a rollback made current (3) older than releases 4..6
    for i in range(1, 7):
        add_release(deploy, rel(i))
    res = sh(release.prune(paths(deploy), 2, rel(3)))
    assert res.returncode == 0, res.stderr
    # 6 and 5 are the newest 2; 3 is current; 2 is the newest good one before current
    assert survivors(deploy) == [2, 3, 5, 6]


def test_prune_keeps_current_even_when_it_is_the_oldest(deploy: Path, sh) -> None:
    for i in range(1, 6):
        add_release(deploy, rel(i))
    assert sh(release.prune(paths(deploy), 2, rel(1))).returncode == 0
    assert survivors(deploy) == [1, 4, 5]


def test_prune_rollback_target_skips_failed_releases(deploy: Path, sh) -> None:
    add_release(deploy, rel(1))
    add_release(deploy, rel(2))
    add_release(deploy, rel(3), failed=True)
    add_release(deploy, rel(4), failed=True)
    add_release(deploy, rel(5))
    res = sh(release.prune(paths(deploy), 2, rel(5)))
    assert res.returncode == 0, res.stderr
    # 5 current, 4 the newest failed (kept for inspection), 3 an older failed one (pruned),
    # 2 the rollback target, 1 beyond keep=2
    assert survivors(deploy) == [2, 4, 5]
    assert f"pruned {rel(3)} (failed)" in res.stdout.splitlines()


def test_prune_drops_all_failed_releases_but_the_newest(deploy: Path, sh) -> None:
    add_release(deploy, rel(1))
    for i in (2, 3, 4):
        add_release(deploy, rel(i), failed=True)
    add_release(deploy, rel(5))
    add_release(deploy, rel(6), failed=True)
    add_release(deploy, rel(7))
    res = sh(release.prune(paths(deploy), 5, rel(7)))
    assert res.returncode == 0, res.stderr
    assert survivors(deploy) == [1, 5, 6, 7]
    assert sorted(res.stdout.splitlines()) == [f"pruned {rel(i)} (failed)" for i in (2, 3, 4)]


def test_prune_failed_releases_do_not_count_toward_keep(deploy: Path, sh) -> None:
    for i in range(1, 4):
        add_release(deploy, rel(i))
    add_release(deploy, rel(4), failed=True)
    add_release(deploy, rel(5), failed=True)
    add_release(deploy, rel(6))
    assert sh(release.prune(paths(deploy), 3, rel(6))).returncode == 0
    assert survivors(deploy) == [2, 3, 5, 6]


def test_prune_ignores_stray_files(deploy: Path, sh) -> None:
    for i in range(1, 4):
        add_release(deploy, rel(i))
    (deploy / "releases" / "zz-notes.txt").write_text("x")
    assert sh(release.prune(paths(deploy), 2, rel(3))).returncode == 0
    assert (deploy / "releases" / "zz-notes.txt").exists()
    assert {p.name for p in (deploy / "releases").iterdir()} == {rel(2), rel(3), "zz-notes.txt"}


def test_prune_removes_unused_venvs_and_keeps_used_ones(deploy: Path, sh) -> None:
    add_release(deploy, rel(1), venv_key="old")
    add_release(deploy, rel(2), venv_key="shared")
    add_release(deploy, rel(3), venv_key="shared")
    add_release(deploy, rel(4), failed=True, venv_key="broken")
    add_release(deploy, rel(5), failed=True, venv_key="failed")
    add_release(deploy, rel(6), venv_key="new")
    add_release(deploy, rel(7), failed=True, venv_key=None)  # pip failed: no .venv link
    (deploy / "venvs" / "orphan").mkdir()
    (deploy / "venvs" / "orphan" / ".complete").touch()
    res = sh(release.prune(paths(deploy), 2, rel(6)))
    assert res.returncode == 0, res.stderr
    # 6 is current, 7 the newest failed; 5 and 4 are older failed ones; 3 is the rollback
    # target; 2 and 1 are beyond keep=2 (current counts as one)
    assert survivors(deploy) == [3, 6, 7]
    assert venvs(deploy) == {"shared", "new"}
    out = res.stdout.splitlines()
    assert {line for line in out if line.startswith("pruned venv")} == {
        "pruned venv old", "pruned venv broken", "pruned venv failed", "pruned venv orphan"}


def test_prune_keeps_a_venv_linked_by_a_kept_failed_release(deploy: Path, sh) -> None:
    add_release(deploy, rel(1), venv_key="a")
    add_release(deploy, rel(2), failed=True, venv_key="b")
    add_release(deploy, rel(3), venv_key="a")
    assert sh(release.prune(paths(deploy), 2, rel(3))).returncode == 0
    assert survivors(deploy) == [1, 2, 3]
    assert venvs(deploy) == {"a", "b"}


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
