"""What the benchmarks share: a test host, fresh apps on it, fab run against them."""

from __future__ import annotations

import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import testhost as th  # noqa: E402
import yaml  # noqa: E402

FAB = str(Path(sys.executable).parent / "fab")


class Bench:
    """Fresh apps (copies of examples/hello) on one test host, and `fab` run against them."""

    def __init__(self, host: th.TestHost, work: Path, prefix: str = "app") -> None:
        self.host, self.work, self.prefix, self.n = host, work, prefix, 0
        self.ports: dict[str, int] = {}  # app name -> its http_port on the host

    def app(self, **settings: object) -> tuple[Path, dict]:
        """A fresh app (fresh deploy_to: empty caches) and the env that deploys it."""
        self.n += 1
        name = f"{self.prefix}{self.n}"
        app_dir = self.work / name
        shutil.copytree(ROOT / "examples" / "hello", app_dir)
        self.write(app_dir, th.find_free_port(), **settings)
        return app_dir, self.env(app_dir)

    def hosts_file(self, app_dir: Path) -> Path:
        return self.work / f"{app_dir.name}.yaml"

    def env(self, app_dir: Path) -> dict:
        return {**os.environ, "WSGISHIP_HOSTS": str(self.hosts_file(app_dir))}

    def port(self, app_dir: Path) -> int:
        return self.ports[app_dir.name]

    def write(self, app_dir: Path, port: int, **settings: object) -> None:
        """(Re)write the app's hosts.yaml."""
        self.ports[app_dir.name] = port
        self.hosts_file(app_dir).write_text(yaml.safe_dump({
            "app": {"name": app_dir.name, "source": str(app_dir), "wsgi": "hello:app",
                    "server_name": "localhost", "processes": 2, **settings},
            "hosts": {"b": {"host": self.host.host, "port": self.host.ssh_port, "user": "deploy",
                            "identity": str(self.host.key_path),
                            "known_hosts": str(self.host.known_hosts),
                            "http_port": port}},
        }))

    def fab(self, env: dict, *a: str, check: bool = True) -> tuple[float, str]:
        """Run `fab A -H b`: (seconds it took, its stdout); exits the bench when it fails."""
        t0 = time.monotonic()
        res = subprocess.run([FAB, *a, "-H", "b"], cwd=ROOT, env=env, text=True,
                             capture_output=True)
        took = time.monotonic() - t0
        if check and res.returncode:
            sys.exit(f"fab {' '.join(a)} failed:\n{res.stdout}\n{res.stderr}")
        return took, res.stdout + res.stderr


@contextmanager
def booted(name: str, kind: type[Bench] = Bench) -> Iterator[Bench]:
    """A test host booted for one bench run (its apps named `name`1, 2, ...); stopped and its
    files removed after."""
    work = Path(tempfile.mkdtemp(prefix=f"wsgiship-{name}-"))
    host = th.boot(name, work / "host")
    try:
        yield kind(host, work, prefix=name)
    finally:
        host.stop()
        shutil.rmtree(work, ignore_errors=True)


def peak_child_rss_mb() -> float:
    """The peak RSS of the largest child process this bench waited for (the fab processes;
    the others, ssh and tar, are far smaller)."""
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def set_text(app_dir: Path, text: str) -> None:
    path = app_dir / "hello.py"
    path.write_text(re.sub(r'return "[^"]*"', f'return "{text}"', path.read_text()))
