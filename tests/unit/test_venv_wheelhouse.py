"""The wheelhouse on the server (commands/venv.py, release.prune): whether wheels must be
uploaded, unpacking them, and pruning the wheels of venvs that are gone (run here on a deploy
tree in tmp_path)."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

from fakes import add_release, paths, rel

from wsgiship.commands import release, venv


def tarball(path: Path, names: tuple[str, ...]) -> Path:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name in names:
            data = name.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    path.write_bytes(buf.getvalue())
    return path


def test_wheels_are_needed_unless_the_venv_or_its_wheels_are_there(deploy: Path, sh) -> None:
    p = paths(deploy)
    assert sh(venv.wheelhouse_present(p, "k1")).stdout == ""
    (deploy / "venvs" / "k1").mkdir()
    assert sh(venv.wheelhouse_present(p, "k1")).stdout == ""      # a venv half built
    (deploy / "venvs" / "k1" / ".complete").touch()
    assert sh(venv.wheelhouse_present(p, "k1")).stdout == "wheelhouse=present\n"
    (deploy / "wheelhouse" / "k2").mkdir(parents=True)
    assert sh(venv.wheelhouse_present(p, "k2")).stdout == ""      # an upload cut short
    (deploy / "wheelhouse" / "k2" / ".complete").touch()
    assert sh(venv.wheelhouse_present(p, "k2")).stdout == "wheelhouse=present\n"


def test_unpack_puts_every_wheel_then_marks_it_complete(deploy: Path, sh) -> None:
    p = paths(deploy)
    upload = tarball(deploy / ".wheels-k1.tar.gz", ("a-1-py3-none-any.whl", "b-2-cp311.whl"))
    (deploy / "wheelhouse" / "k1").mkdir(parents=True)
    (deploy / "wheelhouse" / "k1" / "stale.whl").write_text("x")   # a cut-short earlier try
    res = sh(venv.unpack_wheelhouse(p, "k1", str(upload)))
    assert res.returncode == 0, res.stderr
    w = deploy / "wheelhouse" / "k1"
    assert sorted(f.name for f in w.iterdir()) == [".complete", "a-1-py3-none-any.whl",
                                                   "b-2-cp311.whl"]
    assert (w / "a-1-py3-none-any.whl").read_text() == "a-1-py3-none-any.whl"
    assert not upload.exists()


def test_a_broken_upload_is_never_complete(deploy: Path, sh) -> None:
    upload = deploy / ".wheels-k1.tar.gz"
    upload.write_bytes(b"not a tarball")
    res = sh(venv.unpack_wheelhouse(paths(deploy), "k1", str(upload)))
    assert res.returncode != 0
    assert not (deploy / "wheelhouse" / "k1" / ".complete").exists()


def test_prune_drops_the_wheels_of_venvs_that_are_gone(deploy: Path, sh) -> None:
    for i in (1, 2):
        add_release(deploy, rel(i), venv_key=f"k{i}")
        (deploy / "wheelhouse" / f"k{i}").mkdir(parents=True)
    (deploy / "wheelhouse" / "gone").mkdir()
    res = sh(release.prune(paths(deploy), 5, rel(2)))
    assert res.returncode == 0, res.stderr
    assert f"pruned wheels {deploy}/wheelhouse/gone" in res.stdout
    assert sorted(d.name for d in (deploy / "wheelhouse").iterdir()) == ["k1", "k2"]


def test_prune_without_a_wheelhouse_says_nothing_of_wheels(deploy: Path, sh) -> None:
    add_release(deploy, rel(1), venv_key="k1")
    res = sh(release.prune(paths(deploy), 5, rel(1)))
    assert res.returncode == 0 and "wheels" not in res.stdout
