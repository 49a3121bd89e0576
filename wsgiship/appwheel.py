"""`install: project`: the app's own wheel, built on this machine from exactly the files a
release ships, uploaded with the release and installed on the server into that release alone
(commands/project.py: `--no-deps --no-index --target <release>/.wsgiship/site`).

Built here rather than on the server: the server then needs neither a package index nor the
project's build backend (setuptools, hatchling...: a venv made by uv has none) nor a
compiler, the same install works with uv and pip and behind a wheelhouse, and a project that
does not build is refused before anything is uploaded. The wheel must be pure Python (it is
built for this machine); compiled code belongs in a requirement of its own.
"""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

from .errors import ConfigError, WsgishipError
from .source import Source

# name-version(-build)-python-abi-platform.whl (PEP 427)
WHEEL_RE = re.compile(r"^(?P<name>[^-]+)-(?P<version>[^-]+)(-\d[^-]*)?-(?P<py>[^-]+)"
                      r"-(?P<abi>[^-]+)-(?P<platform>[^-]+)\.whl$")
PACKAGING_FILES = ("pyproject.toml", "setup.py")


@dataclass(frozen=True)
class Wheel:
    filename: str     # shopapp-1.0-py3-none-any.whl
    data: bytes
    tool: str         # what built it: "pip wheel" or "uv build"

    @property
    def project(self) -> str:
        """`shopapp 1.0`"""
        match = WHEEL_RE.match(self.filename)
        return f"{match['name']} {match['version']}" if match else self.filename


# one build per revision in a run: `fab deploy -H web1,web2` ships the same wheel to both
_built: dict[str, Wheel] = {}
_lock = threading.Lock()


def build_command(src: Path, out: Path) -> tuple[list[str], str]:
    """The command building the wheel of the project in `src` into `out` (build isolation:
    the project's build backend comes from the index, as any build front end does): pip in
    wsgiship's own Python, else uv."""
    if importlib.util.find_spec("pip") is not None:
        return ([sys.executable, "-m", "pip", "wheel", "--no-deps", "--disable-pip-version-check",
                 "--no-input", "--quiet", "--wheel-dir", str(out), str(src)], "pip wheel")
    uv = shutil.which("uv")
    if uv:
        return [uv, "build", "--wheel", "--quiet", "--out-dir", str(out), str(src)], "uv build"
    raise WsgishipError("install: project builds the app's wheel on this machine with pip or uv, "
                        "and neither is here: install pip into wsgiship's Python, or uv")


def check_pure(filename: str, host: str) -> None:
    """Refuse a wheel built for this machine's platform (compiled code)."""
    match = WHEEL_RE.match(filename)
    if match is None or match["abi"] != "none" or match["platform"] != "any":
        raise WsgishipError(
            f"install: project: the app's wheel {filename} is built for this machine's platform "
            f"(it has compiled code), not for the server's; nothing was changed. Move the "
            f"compiled part into a requirement of its own, or set install: requirements",
            host=host)


def build(source: Source, where: Path, host: str) -> Wheel:
    """The app's wheel, from the files `source` ships (once per revision in a run)."""
    if not set(PACKAGING_FILES) & set(source.files):
        raise ConfigError(f"app.install is project but {where} has no pyproject.toml or setup.py "
                          f"to build the app from: add a pyproject.toml ([project] and "
                          f"[build-system]), or set install: requirements")
    with _lock:
        if source.revision not in _built:
            _built[source.revision] = _build(source, host)
        wheel = _built[source.revision]
    check_pure(wheel.filename, host)
    return wheel


def _build(source: Source, host: str) -> Wheel:
    with tempfile.TemporaryDirectory(prefix="wsgiship-app-") as tmp:
        src, out = Path(tmp) / "src", Path(tmp) / "dist"
        for name, data in source.files.items():
            path = src / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            path.chmod(source.modes.get(name, 0o644) | 0o600)
        command, tool = build_command(src, out)
        res = subprocess.run(command, capture_output=True, text=True, cwd=tmp)
        wheels = sorted(out.glob("*.whl")) if out.is_dir() else []
        if res.returncode != 0 or len(wheels) != 1:
            output = "\n".join(line for line in (res.stdout + res.stderr).strip().splitlines()
                               if not line.startswith("WARNING"))
            tail = "\n".join(output.splitlines()[-15:]) or f"{len(wheels)} wheels made"
            raise WsgishipError(f"install: project: building the app's wheel here ({tool}) "
                                f"failed; nothing was changed:\n{tail}", host=host)
        return Wheel(wheels[0].name, wheels[0].read_bytes(), tool)
