"""Package the app's source into a release tarball, with the rendered configs added."""

from __future__ import annotations

import hashlib
import io
import re
import subprocess
import tarfile
import time
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from .errors import ConfigError

# Never shipped from a plain directory: VCS data, caches, local virtualenvs.
EXCLUDED_DIRS = {".git", ".hg", ".svn", "__pycache__", ".venv", "venv", "env", ".tox", ".nox",
                 ".mypy_cache", ".pytest_cache", ".ruff_cache", "node_modules", ".idea"}
EXCLUDED_SUFFIXES = (".pyc", ".pyo")
# Pinned when the app does not pin uWSGI itself: the versions measured with these templates.
# pyuwsgi is the same uWSGI as manylinux wheels (no compiler on the server); uwsgi its sdist.
UWSGI_PACKAGES = {"pyuwsgi": "pyuwsgi==2.0.30.post1", "uwsgi": "uwsgi==2.0.31"}
UWSGI_REQUIREMENT = UWSGI_PACKAGES["pyuwsgi"]  # the default


@dataclass(frozen=True)
class Source:
    """The app's files, ready to ship."""

    files: dict[str, bytes]      # release-relative path -> content
    modes: dict[str, int]        # release-relative path -> file mode
    revision: str                # full git commit, or "sha256:<content hash>"
    short_rev: str
    dirty: bool                  # git work tree with uncommitted changes (not shipped)
    requirements: str            # what pip installs into the venv (text of a requirements file)
    requirements_from: str = ""  # REQUIREMENTS_TXT, PYPROJECT_DEPS, or "" (uWSGI alone)
    uwsgi_added: str = ""        # the uWSGI package added to them (pyuwsgi, uwsgi), or ""
    warnings: tuple[str, ...] = ()

    @property
    def venv_rule(self) -> str:
        """Where the venv's packages come from, in words: `pyproject.toml
        [project].dependencies + pyuwsgi`, or `no requirements.txt or [project].dependencies:
        only uWSGI (pyuwsgi)`."""
        return venv_rule(self.requirements_from, self.uwsgi_added)


def _git(root: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["git", "-C", str(root), *args], capture_output=True, check=False)


def _is_git_root(root: Path) -> bool:
    top = _git(root, "rev-parse", "--show-toplevel")
    return top.returncode == 0 and Path(top.stdout.decode().strip()).resolve() == root.resolve()


def _from_git(root: Path) -> tuple[dict[str, bytes], dict[str, int], str, bool]:
    head = _git(root, "rev-parse", "HEAD")
    if head.returncode != 0:
        raise ConfigError(f"{root}: git work tree has no commit yet; commit the app first")
    archive = _git(root, "archive", "--format=tar", "HEAD")
    if archive.returncode != 0:
        raise ConfigError(f"{root}: git archive failed: {archive.stderr.decode().strip()}")
    files, modes = {}, {}
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        for member in tar.getmembers():
            if member.isfile():
                files[member.name] = tar.extractfile(member).read()  # type: ignore[union-attr]
                modes[member.name] = member.mode
    dirty = bool(_git(root, "status", "--porcelain", "--untracked-files=no").stdout.strip())
    return files, modes, head.stdout.decode().strip(), dirty


def _from_dir(root: Path) -> tuple[dict[str, bytes], dict[str, int]]:
    files, modes = {}, {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if any(part in EXCLUDED_DIRS for part in rel.parts) or path.suffix in EXCLUDED_SUFFIXES:
            continue
        if path.is_file() and not path.is_symlink():
            files[rel.as_posix()] = path.read_bytes()
            modes[rel.as_posix()] = path.stat().st_mode & 0o777
    return files, modes


def _content_hash(files: dict[str, bytes]) -> str:
    digest = hashlib.sha256()
    for name in sorted(files):
        digest.update(name.encode() + b"\0" + hashlib.sha256(files[name]).digest())
    return digest.hexdigest()


REQUIREMENTS_TXT = "requirements.txt"
PYPROJECT_DEPS = "pyproject.toml [project].dependencies"


def _project_table(files: dict[str, bytes], where: Path) -> dict:
    """pyproject.toml's [project] table ({} without the file or the table)."""
    if "pyproject.toml" not in files:
        return {}
    try:
        project = tomllib.loads(files["pyproject.toml"].decode()).get("project", {})
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{where / 'pyproject.toml'}: cannot parse: {exc}") from None
    return project if isinstance(project, dict) else {}


def requirements_from(files: dict[str, bytes], where: Path = Path(".")) -> str:
    """Where the venv's requirements come from: requirements.txt when the app has one, else
    pyproject.toml's [project].dependencies when it lists any, else "" (uWSGI alone)."""
    if REQUIREMENTS_TXT in files:
        return REQUIREMENTS_TXT
    return PYPROJECT_DEPS if _project_table(files, where).get("dependencies") else ""


def venv_rule(origin: str, added: str) -> str:
    """The rule the venv was filled by, in words (see Source.venv_rule)."""
    if not origin:
        return f"no requirements.txt or [project].dependencies: only uWSGI ({added or 'uwsgi'})"
    return origin + (f" + {added}" if added else "")


def requirement_names(text: str) -> list[str]:
    """The normalised project names of requirement lines."""
    return [re.split(r"[\s<>=!~;\[@(]", line.split("#")[0].strip(), maxsplit=1)[0]
            .lower().replace("_", "-") for line in text.splitlines()]


def pins_uwsgi_sdist(root: Path) -> bool:
    """The app's own requirements name `uwsgi`, the sdist compiled on the server (so `fab setup`
    installs a compiler for it, whatever uwsgi_package says)."""
    files = {n: (root / n).read_bytes() for n in ("requirements.txt", "pyproject.toml")
             if (root / n).is_file()}
    try:
        return "uwsgi" in requirement_names(requirements_of(files, root))
    except ConfigError:
        return False  # the deploy says what is wrong with it


def listed_requirements(files: dict[str, bytes], where: Path) -> str:
    """The app's own requirements: requirements.txt, else pyproject.toml's
    [project].dependencies, else none."""
    origin = requirements_from(files, where)
    if origin == REQUIREMENTS_TXT:
        return files[REQUIREMENTS_TXT].decode("utf-8", "replace")
    if origin == PYPROJECT_DEPS:
        deps = _project_table(files, where)["dependencies"]
        if not isinstance(deps, list) or not all(isinstance(d, str) for d in deps):
            raise ConfigError(f"{where / 'pyproject.toml'}: [project].dependencies: expected a "
                              f"list of requirement strings")
        return "".join(f"{dep}\n" for dep in deps)
    return ""


def needs_uwsgi(text: str) -> bool:
    """uWSGI is added to these requirements: they name neither uwsgi nor pyuwsgi."""
    return not {"uwsgi", "pyuwsgi"} & set(requirement_names(text))


def requirements_of(files: dict[str, bytes], where: Path, uwsgi_package: str = "pyuwsgi") -> str:
    """What the venv gets: the app's own requirements (listed_requirements), plus uWSGI (from
    `uwsgi_package`) unless they name uwsgi or pyuwsgi themselves."""
    text = listed_requirements(files, where)
    if needs_uwsgi(text):
        text = (text.rstrip("\n") + ("\n" if text.strip() else "")
                + UWSGI_PACKAGES[uwsgi_package] + "\n")
    return text


def _warnings(files: dict[str, bytes], where: Path) -> tuple[str, ...]:
    """What the operator should know about the requirements: dependencies pyproject.toml
    declares dynamic are not read (only requirements.txt or a literal list are)."""
    if REQUIREMENTS_TXT not in files and "dependencies" in _project_table(files, where).get(
            "dynamic", []):
        return (f"{where / 'pyproject.toml'} declares its dependencies dynamic, which wsgiship "
                f"does not read: the venv gets only uWSGI; list them in requirements.txt",)
    return ()


def collect(root: Path, uwsgi_package: str = "pyuwsgi") -> Source:
    """Read the app at `root`: git HEAD when root is a git work tree's top, else the directory."""
    if not root.is_dir():
        raise ConfigError(f"app.source: directory {root} not found")
    if _is_git_root(root):
        files, modes, revision, dirty = _from_git(root)
        short = revision[:7]
    else:
        files, modes = _from_dir(root)
        revision, dirty = "sha256:" + _content_hash(files), False
        short = revision[7:14]
    if not files:
        raise ConfigError(f"app.source: {root} holds no files to ship")
    listed = listed_requirements(files, root)
    return Source(files, modes, revision, short, dirty,
                  requirements_of(files, root, uwsgi_package), requirements_from(files, root),
                  uwsgi_package if needs_uwsgi(listed) else "", _warnings(files, root))


def tarball(source: Source, extra: Mapping[str, str | bytes]) -> bytes:
    """A gzip tarball of the source files plus generated files (configs, REVISION, the app's
    wheel)."""
    buf, now = io.BytesIO(), int(time.time())
    with tarfile.open(fileobj=buf, mode="w:gz", compresslevel=6) as tar:
        entries = {**{k: (v, source.modes.get(k, 0o644)) for k, v in source.files.items()},
                   **{k: (v.encode() if isinstance(v, str) else v, 0o644)
                      for k, v in extra.items()}}
        for name in sorted(entries):
            data, mode = entries[name]
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), mode, now
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()
