"""Fixtures: the real test host (booted once per session) and a way to run `fab` against it."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))

import testhost as th  # noqa: E402

FAB = str(Path(sys.executable).parent / "fab")

# A suite started in the background of a non-interactive shell (`make test &`, nohup) inherits an
# ignored SIGINT, and so would every fab it starts: the Ctrl-C tests would send nothing. A
# handler of our own is reset to the default when a child execs.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(scope="session")
def host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[th.TestHost]:
    """One real Debian + systemd server for the session. It never skips: if it cannot boot,
    every test that needs it fails with the boot log."""
    state = tmp_path_factory.mktemp("testhost")
    instance = th.boot("itest", state)
    try:
        yield instance
    finally:
        instance.stop()


@dataclass
class Project:
    """A hosts.yaml + app directory in tmp_path, deployable to the test host as alias `t`."""

    dir: Path
    app_dir: Path
    host: th.TestHost
    settings: dict
    name: str
    http_port: int

    @property
    def hosts_file(self) -> Path:
        return self.dir / f"{self.name}-hosts.yaml"

    def write(self, **host_overrides: object) -> None:
        entry = {
            "host": self.host.host, "port": self.host.ssh_port, "user": "deploy",
            "identity": str(self.host.key_path), "known_hosts": str(self.host.known_hosts),
            "http_port": self.http_port, **host_overrides,
        }
        data = {"app": self.settings, "hosts": {"t": entry}}
        self.hosts_file.write_text(yaml.safe_dump(data, sort_keys=False))

    def fab(self, *args: str, input: str | None = None, env: dict | None = None,
            timeout: float = 600) -> subprocess.CompletedProcess[str]:
        full_env = {**os.environ, "WSGISHIP_HOSTS": str(self.hosts_file), **(env or {})}
        return subprocess.run([FAB, *args], cwd=ROOT, env=full_env, input=input, text=True,
                              capture_output=True, timeout=timeout)

    def deploy(self, *extra: str) -> subprocess.CompletedProcess[str]:
        res = self.fab("deploy", "-H", "t", *extra)
        return res

    def must(self, res: subprocess.CompletedProcess[str]) -> str:
        assert res.returncode == 0, f"exit {res.returncode}\n{res.stdout}\n{res.stderr}"
        return res.stdout

    def get(self, path: str = "/") -> tuple[int, str, str]:
        """GET through nginx on the test host: status, body, release header."""
        import http.client

        conn = http.client.HTTPConnection("127.0.0.1", self.http_port, timeout=10)
        conn.request("GET", path, headers={"Host": "localhost"})
        resp = conn.getresponse()
        body = resp.read().decode()
        release = resp.getheader("X-Wsgiship-Release") or ""
        conn.close()
        return resp.status, body, release

    def remote(self, command: str, check: bool = True) -> str:
        return self.host.run(command, check=check).stdout

    @property
    def deploy_to(self) -> str:
        return self.settings.get("deploy_to", f"/srv/{self.name}")

    def current(self) -> str:
        return self.remote(f"basename $(readlink {self.deploy_to}/current)").strip()

    def releases(self) -> list[str]:
        return self.remote(f"ls -1 {self.deploy_to}/releases").split()

    def lock_exists(self) -> bool:
        return self.remote(f"test -e {self.deploy_to}/.lock && echo yes || echo no").strip() == "yes"

    def assert_still_serving(self, release: str, text: str = "Hello World!") -> None:
        """What a failed deploy must leave: `release` current and serving `text`, no lock."""
        assert self.current() == release
        assert self.get("/")[:2] == (200, text)
        assert not self.lock_exists()

    def set_text(self, text: str) -> None:
        path = self.app_dir / "hello.py"
        src = path.read_text()
        path.write_text(re.sub(r'return "[^"]*"', f'return "{text}"', src, count=1))


_counter = iter(range(1, 1000))


def make_project(host: th.TestHost, base: Path, **settings: object) -> Project:
    """A fresh app (a copy of examples/hello) with its own name and HTTP port."""
    name = f"app{next(_counter)}"
    app_dir = base / name
    shutil.copytree(ROOT / "examples" / "hello", app_dir)
    app = {"name": name, "source": str(app_dir), "wsgi": "hello:app",
           "server_name": "localhost", "processes": 2, "threads": 2,
           "health": {"path": "/", "status": 200, "timeout": 30}}
    app.update(settings)
    proj = Project(base, app_dir, host, app, name, th.find_free_port())
    proj.write()
    return proj


@pytest.fixture
def project(host: th.TestHost, tmp_path: Path) -> Callable[..., Project]:
    """Factory of fresh apps on the test host, one per call."""
    return lambda **settings: make_project(host, tmp_path, **settings)
