"""wsgiship.commands.release: prune, run for real on a deploy tree in tmp_path."""

from __future__ import annotations

from pathlib import Path

from fakes import (
    add_release,
    paths,
    rel,
    survivors,
    venvs,
)

from wsgiship.commands import release

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
