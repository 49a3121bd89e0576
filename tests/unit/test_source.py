"""wsgiship.source: what gets shipped, its revision, the requirements, and the tarball."""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import tarfile
from pathlib import Path

import pytest

from wsgiship import source
from wsgiship.errors import ConfigError

GIT_ENV = {
    "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com",
    "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com",
    "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1",
}


def git(root: Path, *args: str) -> str:
    res = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True,
                         env={**os.environ, **GIT_ENV}, check=True)
    return res.stdout.strip()


def make_tree(root: Path) -> Path:
    files = {
        "app.py": "def app(environ, start_response):\n    pass\n",
        "pkg/__init__.py": "",
        "pkg/views.py": "X = 1\n",
        "static/style.css": "body {}\n",
        "requirements.txt": "flask==3.1.3\n",
        # never shipped
        ".git/config": "[core]\n",
        "__pycache__/app.cpython-311.pyc": "x",
        "pkg/__pycache__/views.cpython-311.pyc": "x",
        "pkg/stale.pyc": "x",
        ".venv/bin/python": "x",
        "venv/lib/site.py": "x",
        "node_modules/a/index.js": "x",
        ".pytest_cache/v": "x",
    }
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    (root / "run.sh").write_text("#!/bin/sh\necho hi\n")
    (root / "run.sh").chmod(0o755)
    (root / "secret.txt").write_text("s\n")
    (root / "secret.txt").chmod(0o600)
    return root


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    return make_tree(tmp_path / "app")


# --- a plain directory ---


def test_plain_dir_ships_files_minus_vcs_caches_and_venvs(tree: Path) -> None:
    src = source.collect(tree)
    assert sorted(src.files) == ["app.py", "pkg/__init__.py", "pkg/views.py", "requirements.txt",
                                 "run.sh", "secret.txt", "static/style.css"]
    assert src.files["pkg/views.py"] == b"X = 1\n"
    assert src.modes["run.sh"] == 0o755
    assert src.modes["secret.txt"] == 0o600
    assert src.dirty is False


def test_plain_dir_skips_symlinks(tree: Path) -> None:
    (tree / "link.py").symlink_to(tree / "app.py")
    assert "link.py" not in source.collect(tree).files


def test_plain_dir_revision_is_a_content_hash(tree: Path) -> None:
    src = source.collect(tree)
    digest = hashlib.sha256()
    for name in sorted(src.files):
        digest.update(name.encode() + b"\0" + hashlib.sha256(src.files[name]).digest())
    assert src.revision == "sha256:" + digest.hexdigest()
    assert src.short_rev == digest.hexdigest()[:7]


def test_plain_dir_revision_is_stable_and_follows_content(tree: Path) -> None:
    first = source.collect(tree).revision
    assert source.collect(tree).revision == first
    # files that are not shipped do not change it
    (tree / "__pycache__" / "app.cpython-311.pyc").write_text("changed")
    (tree / "pkg" / "other.pyc").write_text("new")
    assert source.collect(tree).revision == first
    # a shipped file's content does
    (tree / "pkg" / "views.py").write_text("X = 2\n")
    second = source.collect(tree).revision
    assert second != first
    # and so does its name
    (tree / "pkg" / "views.py").rename(tree / "pkg" / "views2.py")
    assert source.collect(tree).revision not in (first, second)


def test_subdir_of_a_git_repo_is_shipped_as_a_plain_dir(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    make_tree(repo / "app")
    (repo / "app" / ".git").rename(repo / "app" / "not-git")  # only the outer repo
    git(repo, "init", "-q")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "init")
    (repo / "app" / "uncommitted.py").write_text("new\n")
    src = source.collect(repo / "app")
    assert src.revision.startswith("sha256:")
    assert "uncommitted.py" in src.files
    assert src.dirty is False


def test_missing_or_empty_source_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="app.source: directory .* not found"):
        source.collect(tmp_path / "nope")
    (tmp_path / "empty" / "__pycache__").mkdir(parents=True)
    (tmp_path / "empty" / "__pycache__" / "x.pyc").write_text("x")
    with pytest.raises(ConfigError, match="holds no files to ship"):
        source.collect(tmp_path / "empty")


# --- a git work tree ---


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    root.mkdir()
    (root / "app.py").write_text("VERSION = 1\n")
    (root / "tool.sh").write_text("#!/bin/sh\n")
    (root / "tool.sh").chmod(0o755)
    (root / "requirements.txt").write_text("flask\n")
    (root / ".gitignore").write_text("local.cfg\n")
    git(root, "init", "-q")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "first")
    return root


def test_git_tree_ships_head(repo: Path) -> None:
    src = source.collect(repo)
    assert sorted(src.files) == [".gitignore", "app.py", "requirements.txt", "tool.sh"]
    assert src.revision == git(repo, "rev-parse", "HEAD")
    assert src.short_rev == src.revision[:7]
    assert src.dirty is False
    assert src.modes["tool.sh"] & 0o111
    assert not src.modes["app.py"] & 0o111


def test_git_tree_does_not_ship_uncommitted_edits(repo: Path) -> None:
    head = git(repo, "rev-parse", "HEAD")
    (repo / "app.py").write_text("VERSION = 2\n")     # modified, not committed
    (repo / "untracked.py").write_text("x\n")         # never added
    (repo / "local.cfg").write_text("ignored\n")      # ignored
    src = source.collect(repo)
    assert src.files["app.py"] == b"VERSION = 1\n"
    assert "untracked.py" not in src.files and "local.cfg" not in src.files
    assert src.dirty is True
    assert src.revision == head


def test_untracked_files_alone_do_not_make_the_tree_dirty(repo: Path) -> None:
    (repo / "untracked.py").write_text("x\n")
    assert source.collect(repo).dirty is False


def test_git_revision_follows_commits(repo: Path) -> None:
    first = source.collect(repo).revision
    (repo / "app.py").write_text("VERSION = 2\n")
    git(repo, "commit", "-qam", "second")
    src = source.collect(repo)
    assert src.revision != first and src.revision == git(repo, "rev-parse", "HEAD")
    assert src.files["app.py"] == b"VERSION = 2\n"


def test_git_tree_without_commits_is_a_config_error(tmp_path: Path) -> None:
    root = tmp_path / "fresh"
    root.mkdir()
    (root / "app.py").write_text("x\n")
    git(root, "init", "-q")
    with pytest.raises(ConfigError, match="no commit yet"):
        source.collect(root)


# --- requirements ---


def req(files: dict[str, str]) -> str:
    return source.requirements_of({k: v.encode() for k, v in files.items()}, Path("/app"))


def test_requirements_txt_is_used_and_uwsgi_appended() -> None:
    assert req({"requirements.txt": "flask==3.1.3\n# db\npsycopg[binary]\n"}) == (
        "flask==3.1.3\n# db\npsycopg[binary]\n" + source.UWSGI_REQUIREMENT + "\n")


def test_requirements_without_final_newline() -> None:
    assert req({"requirements.txt": "flask"}) == "flask\n" + source.UWSGI_REQUIREMENT + "\n"


@pytest.mark.parametrize("line", ["uwsgi==2.0.28", "uWSGI>=2.0", "uwsgi", "  uwsgi ; python_version>'3'",
                                  "uwsgi==2.0.28  # pinned"])
def test_uwsgi_not_appended_when_the_app_pins_it(line: str) -> None:
    text = f"flask\n{line}\n"
    assert req({"requirements.txt": text}) == text


@pytest.mark.parametrize("other", ["uwsgitop==0.12", "uwsgi-tools", "# uwsgi==1.0"])
def test_uwsgi_appended_when_only_a_lookalike_is_listed(other: str) -> None:
    # uwsgitop (a monitoring tool) and uwsgi-tools are other packages, not uWSGI itself.
    assert req({"requirements.txt": f"{other}\n"}).endswith(source.UWSGI_REQUIREMENT + "\n")


def test_pyproject_dependencies_when_no_requirements_txt() -> None:
    pyproject = '[project]\nname = "x"\ndependencies = ["flask>=3", "redis"]\n'
    assert req({"pyproject.toml": pyproject}) == (
        "flask>=3\nredis\n" + source.UWSGI_REQUIREMENT + "\n")


def test_pyproject_that_pins_uwsgi() -> None:
    pyproject = '[project]\nname = "x"\ndependencies = ["flask", "uwsgi==2.0.30"]\n'
    assert req({"pyproject.toml": pyproject}) == "flask\nuwsgi==2.0.30\n"


def test_requirements_txt_wins_over_pyproject() -> None:
    pyproject = '[project]\nname = "x"\ndependencies = ["django"]\n'
    text = req({"requirements.txt": "flask\n", "pyproject.toml": pyproject})
    assert "django" not in text and text.startswith("flask\n")


def test_no_requirements_at_all_is_just_uwsgi() -> None:
    assert req({"app.py": "x"}) == source.UWSGI_REQUIREMENT + "\n"
    assert req({"pyproject.toml": "[tool.ruff]\n"}) == source.UWSGI_REQUIREMENT + "\n"


def test_broken_pyproject_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"/app/pyproject\.toml: cannot parse"):
        req({"pyproject.toml": "[project\n"})


def test_collect_fills_in_requirements(tree: Path) -> None:
    assert source.collect(tree).requirements == "flask==3.1.3\n" + source.UWSGI_REQUIREMENT + "\n"


# --- which uWSGI: the pyuwsgi wheel (default) or the uwsgi sdist ---


def test_uwsgi_comes_from_the_pyuwsgi_wheel_by_default() -> None:
    assert source.UWSGI_PACKAGES == {"pyuwsgi": "pyuwsgi==2.0.30.post1", "uwsgi": "uwsgi==2.0.31"}
    assert source.UWSGI_REQUIREMENT == "pyuwsgi==2.0.30.post1"
    assert req({"requirements.txt": "flask\n"}) == "flask\npyuwsgi==2.0.30.post1\n"


@pytest.mark.parametrize("package", ["pyuwsgi", "uwsgi"])
def test_the_chosen_uwsgi_package_is_appended(package: str) -> None:
    files = {"requirements.txt": b"flask\n"}
    assert source.requirements_of(files, Path("/app"), package) == (
        "flask\n" + source.UWSGI_PACKAGES[package] + "\n")
    assert source.requirements_of({}, Path("/app"), package) == source.UWSGI_PACKAGES[package] + "\n"


@pytest.mark.parametrize("line", ["pyuwsgi", "pyuwsgi==2.0.29", "PyUWSGI>=2", "uwsgi==2.0.28",
                                  "pyuwsgi ; sys_platform == 'linux'"])
@pytest.mark.parametrize("package", ["pyuwsgi", "uwsgi"])
def test_nothing_appended_when_the_app_names_either_uwsgi(line: str, package: str) -> None:
    # never both: they install the same `uwsgi` command
    text = f"flask\n{line}\n"
    assert source.requirements_of({"requirements.txt": text.encode()}, Path("/app"), package) == text


@pytest.mark.parametrize("other", ["pyuwsgitop", "pyuwsgi-stubs", "py-uwsgi"])
def test_pyuwsgi_lookalikes_are_other_packages(other: str) -> None:
    assert req({"requirements.txt": f"{other}\n"}).endswith(source.UWSGI_REQUIREMENT + "\n")


DEPS = b'[project]\nname = "x"\ndependencies = ["redis"]\n'


@pytest.mark.parametrize("files, origin", [
    ({"requirements.txt": b"", "pyproject.toml": DEPS, "app.py": b""}, "requirements.txt"),
    ({"pyproject.toml": DEPS, "app.py": b""}, "pyproject.toml [project].dependencies"),
    # a pyproject.toml that lists no dependencies is not where they come from
    ({"pyproject.toml": b"[tool.ruff]\n"}, ""),
    ({"pyproject.toml": b'[project]\nname = "x"\ndependencies = []\n'}, ""),
    ({"app.py": b""}, ""),
    ({"sub/requirements.txt": b"", "requirements-dev.txt": b""}, ""),  # only the top-level file
])
def test_requirements_from(files: dict[str, bytes], origin: str) -> None:
    assert source.requirements_from(files) == origin


def test_collect_names_the_requirements_file_and_the_uwsgi_package(tree: Path) -> None:
    src = source.collect(tree, "uwsgi")
    assert src.requirements == "flask==3.1.3\nuwsgi==2.0.31\n"
    assert (src.requirements_from, src.uwsgi_added) == ("requirements.txt", "uwsgi")
    (tree / "requirements.txt").unlink()
    (tree / "pyproject.toml").write_bytes(DEPS)
    src = source.collect(tree)  # the default: the pyuwsgi wheel
    assert (src.requirements, src.requirements_from) == ("redis\npyuwsgi==2.0.30.post1\n",
                                                         "pyproject.toml [project].dependencies")
    (tree / "pyproject.toml").unlink()
    assert source.collect(tree).requirements_from == ""


# --- tarball ---


def test_tarball_round_trips_files_and_modes(tree: Path) -> None:
    src = source.collect(tree)
    data = source.tarball(src, {".wsgiship/uwsgi.ini": "[uwsgi]\n", "REVISION": "abc\n"})
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        members = {m.name: m for m in tar.getmembers()}
        contents = {n: tar.extractfile(m).read() for n, m in members.items()}  # type: ignore[union-attr]
    assert set(members) == set(src.files) | {".wsgiship/uwsgi.ini", "REVISION"}
    for name, data_ in src.files.items():
        assert contents[name] == data_
        assert members[name].mode == src.modes[name]
        assert members[name].isfile()
    assert contents["REVISION"] == b"abc\n"
    assert members[".wsgiship/uwsgi.ini"].mode == 0o644
    assert list(members) == sorted(members)  # deterministic order


def test_tarball_extra_overrides_a_source_file(tree: Path) -> None:
    src = source.collect(tree)
    data = source.tarball(src, {"app.py": "generated\n"})
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        names = tar.getnames()
        assert names.count("app.py") == 1
        assert tar.extractfile("app.py").read() == b"generated\n"  # type: ignore[union-attr]


def test_tarball_extracts_with_tar(tree: Path, tmp_path: Path) -> None:
    src = source.collect(tree)
    archive = tmp_path / "r.tar.gz"
    archive.write_bytes(source.tarball(src, {}))
    out = tmp_path / "out"
    out.mkdir()
    subprocess.run(["tar", "-xzf", str(archive), "-C", str(out)], check=True)
    assert (out / "pkg" / "views.py").read_bytes() == src.files["pkg/views.py"]
    assert os.access(out / "run.sh", os.X_OK)
