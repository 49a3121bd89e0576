"""Benchmarks against a real test host: redeploy time, and a load through nginx during a
code-only deploy, a venv-changing deploy and a rollback. Prints figures; asserts nothing.

    python bench/run.py [--seconds 20] [--connections 8]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import testhost as th  # noqa: E402
import yaml  # noqa: E402

from bench.loadgen import Load  # noqa: E402

FAB = str(Path(sys.executable).parent / "fab")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=20.0, help="load duration per scenario")
    ap.add_argument("--connections", type=int, default=8)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="wsgiship-bench-"))
    host = th.boot("bench", work / "host")
    try:
        app_dir = work / "app"
        shutil.copytree(ROOT / "examples" / "hello", app_dir)
        port = th.find_free_port()
        hosts = work / "hosts.yaml"
        hosts.write_text(yaml.safe_dump({
            "app": {"name": "bench", "source": str(app_dir), "wsgi": "hello:app",
                    "server_name": "localhost", "processes": 4, "threads": 2},
            "hosts": {"b": {"host": host.host, "port": host.ssh_port, "user": "deploy",
                            "identity": str(host.key_path), "known_hosts": str(host.known_hosts),
                            "http_port": port}},
        }))
        env = {**os.environ, "WSGISHIP_HOSTS": str(hosts)}

        def fab(*a: str) -> tuple[float, str]:
            t0 = time.monotonic()
            res = subprocess.run([FAB, *a, "-H", "b"], cwd=ROOT, env=env, text=True,
                                 capture_output=True)
            if res.returncode:
                sys.exit(f"fab {' '.join(a)} failed:\n{res.stdout}\n{res.stderr}")
            return time.monotonic() - t0, res.stdout

        def set_text(text: str) -> None:
            path = app_dir / "hello.py"
            path.write_text(re.sub(r'return "[^"]*"', f'return "{text}"', path.read_text()))

        took, _ = fab("deploy")
        print(f"first deploy (venv built, no fab setup: pip): {took:6.1f} s")
        times = []
        for i in range(3):
            set_text(f"redeploy {i}")
            took, _ = fab("deploy")
            times.append(took)
        print(f"code-only redeploy (3 runs):                 {min(times):6.1f} s best, "
              f"{max(times):.1f} s worst")

        def under_load(label: str, action: tuple[str, ...], before: callable) -> None:
            before()
            with Load(port, connections=args.connections, max_seconds=args.seconds + 60,
                      max_requests=2_000_000) as load:
                time.sleep(2)
                t0 = time.monotonic()
                took, out = fab(*action)
                t1 = time.monotonic()
                time.sleep(max(0.0, args.seconds - (t1 - t0) - 2))
            mode = re.search(r"uwsgi\s+[\d.]+s\s+(\w+)", out)
            r = load.result
            print(f"{label:<28} reload={mode.group(1) if mode else '?':<9} took {took:5.1f} s | "
                  f"whole run: {r.summary()} | during the {action[0]}: {r.summary(t0, t1)}")

        under_load("code-only deploy", ("deploy",), lambda: set_text("load A"))
        under_load("rollback", ("rollback",), lambda: None)
        reqs = app_dir / "requirements.txt"
        under_load("requirements-change deploy", ("deploy",),
                   lambda: reqs.write_text(reqs.read_text() + "six==1.16.0\n"))
    finally:
        host.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
