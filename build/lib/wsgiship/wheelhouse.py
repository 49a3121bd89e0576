"""A wheelhouse: the venv's wheels resolved on this machine for the server's platform (its
Python version, architecture and glibc, read from the server), so a server that cannot reach
the package index installs with `--no-index`. Built with pip's own resolver (`pip download
--only-binary=:all: --platform ...`); a requirement with no wheel for that platform is refused
here, before anything changes on the server."""

from __future__ import annotations

import io
import re
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .errors import WsgishipError


@dataclass(frozen=True)
class Platform:
    """The server's: Python `3.11.2`, machine `x86_64`, glibc `2.36`."""

    python: str
    machine: str
    glibc: str

    @classmethod
    def from_facts(cls, facts: dict[str, str], host: str) -> Platform:
        libc = facts.get("libc", "").split()
        if len(libc) != 2 or libc[0] != "glibc" or not re.fullmatch(r"2\.\d+", libc[1]):
            raise WsgishipError(f"wheelhouse: {host} runs no glibc that wheels are built for "
                                f"(libc: {facts.get('libc') or 'unknown'}); set wheelhouse: false",
                                host=host)
        return cls(facts.get("python", ""), facts.get("machine", ""), libc[1])

    @property
    def tag(self) -> str:
        major, minor = self.python.split(".")[:2]
        return f"cp{major}{minor}"

    def platforms(self) -> list[str]:
        """Every manylinux tag this glibc runs, newest first (pip does not expand them)."""
        newest = int(self.glibc.split(".")[1])
        tags = [f"manylinux_2_{m}_{self.machine}" for m in range(newest, 4, -1)]
        legacy = {17: "manylinux2014", 12: "manylinux2010", 5: "manylinux1"}
        tags += [f"{name}_{self.machine}" for m, name in legacy.items() if m <= newest]
        return tags

    def describe(self) -> str:
        return f"{self.tag} manylinux_2_{self.glibc.split('.')[1]}_{self.machine}"


def download_args(platform: Platform, dest: Path, requirements: Path) -> list[str]:
    """`pip download` of wheels only, for the server's platform."""
    args = [sys.executable, "-m", "pip", "download", "--disable-pip-version-check", "--no-input",
            "--quiet", "--only-binary=:all:", "--dest", str(dest),
            "--python-version", ".".join(platform.python.split(".")[:2]),
            "--implementation", "cp", "--abi", platform.tag]
    for tag in platform.platforms():
        args += ["--platform", tag]
    return args + ["-r", str(requirements)]


def missing_wheel(pip_output: str) -> str:
    """The requirement pip found no wheel for, from its error."""
    found = re.findall(r"No matching distribution found for (\S+)", pip_output)
    return found[-1] if found else ""


def build(requirements: str, platform: Platform, host: str) -> tuple[bytes, int]:
    """The wheels for `requirements` as a .tar.gz, and how many there are."""
    with tempfile.TemporaryDirectory(prefix="wsgiship-wheels-") as tmp:
        dest, req = Path(tmp) / "wheels", Path(tmp) / "requirements.txt"
        req.write_text(requirements)
        res = subprocess.run(download_args(platform, dest, req), capture_output=True, text=True)
        if res.returncode != 0:
            output = (res.stdout + res.stderr).strip()
            name = missing_wheel(output)
            if name.lower().startswith("uwsgi"):
                raise WsgishipError(
                    f"wheelhouse: {name} is a source package (it is compiled on the server): "
                    f"set uwsgi_package: pyuwsgi (the same uWSGI as wheels) and drop any uwsgi "
                    f"pin from the requirements; nothing was changed", host=host)
            if name:
                raise WsgishipError(
                    f"wheelhouse: no wheel of {name} for {host}'s platform "
                    f"({platform.describe()}); nothing was changed. Pin a version that has one, "
                    f"build it yourself (pip wheel) and serve it from an index, or set "
                    f"wheelhouse: false (and build: true if it needs compiling)", host=host)
            tail = "\n".join(line for line in output.splitlines()
                             if not line.startswith("WARNING"))[-2000:]
            raise WsgishipError(f"wheelhouse: pip download failed on this machine: {tail}",
                                host=host)
        wheels = sorted(dest.glob("*.whl"))
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w:gz") as tar:
            for wheel in wheels:
                tar.add(wheel, arcname=wheel.name)
        return buf.getvalue(), len(wheels)
