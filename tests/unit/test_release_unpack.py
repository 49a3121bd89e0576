"""wsgiship.commands.release: unpack, switch, mark_failed and append_log, run for real on a
deploy tree in tmp_path (prepare, the lock, layout and prune are in test_release.py and
test_release_prune.py)."""

from __future__ import annotations

import io
import json
import os
import shlex
import sys
import tarfile
from pathlib import Path

from fakes import (
    HOSTILE,
    NAME,
    add_release,
    paths,
    rel,
)

from wsgiship import source
from wsgiship.commands import release
from wsgiship.layout import Paths

# --- unpack ---


def write_upload(root: Path, files: dict[str, str], name: str = "upload.tar.gz") -> Path:
    src = source.Source(files={k: v.encode() for k, v in files.items()},
                        modes={k: 0o755 if k.endswith(".sh") else 0o644 for k in files},
                        revision="sha256:x", short_rev="x", dirty=False, requirements="")
    upload = root / f".{name}"
    upload.write_bytes(source.tarball(src, {".wsgiship/uwsgi.ini": "[uwsgi]\n"}))
    return upload


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
