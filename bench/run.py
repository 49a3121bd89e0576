"""Benchmarks against a real test host, side by side in one run. Prints figures; asserts nothing.

1. Warm code-only redeploy against the floor (bench/floor.sh: the same job bare, in one SSH
   session), paired and alternated, 2 workers; then wsgiship alone with 8 workers.
2. Under a loopback load through nginx: a code-only deploy, a requirements-changing deploy, a
   rollback, and a deploy whose new release answers 500: requests served and failed, 5xx seen,
   worst latency during the operation.
3. The peak RSS of `fab`.

    python bench/run.py [--pairs 5] [--connections 8] [--seconds 12]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import ROOT, Bench, booted, peak_child_rss_mb, set_text, th  # noqa: E402
from bench.loadgen import Load  # noqa: E402

FLOOR = str(ROOT / "bench" / "floor.sh")
BROKEN = ("from flask import Flask\n\napp = Flask(__name__)\n\n\n"
          "@app.route('/')\ndef index():\n    return 'broken', 500\n")


def floor(host: th.TestHost, *args: str) -> float:
    env = {"SSH": " ".join(host.ssh_args("root")), "PATH": "/usr/bin:/bin"}
    t0 = time.monotonic()
    subprocess.run([FLOOR, *args], env=env, check=True, capture_output=True)
    return time.monotonic() - t0


def redeploys(b: Bench, app_dir: Path, env: dict, pairs: int, floor_port: int) -> None:
    host = b.host
    venv = host.run(f"readlink -f /srv/{app_dir.name}/current/.venv").stdout.strip()
    floor(host, "setup", venv, str(floor_port), "2")
    floor_dir = b.work / "floor-app"
    shutil.copytree(app_dir, floor_dir)
    set_text(floor_dir, "floor 0")
    floor(host, "deploy", str(floor_dir), str(floor_port), "floor 0")  # starts its uWSGI
    ours, bare = [], []
    for i in range(pairs):
        set_text(app_dir, f"pair {i}")
        ours.append(b.fab(env, "deploy")[0])
        set_text(floor_dir, f"floor {i + 1}")
        bare.append(floor(host, "deploy", str(floor_dir), str(floor_port), f"floor {i + 1}"))
    two = statistics.median(ours)
    print(f"warm code-only redeploy, 2 workers ({pairs} pairs, medians): wsgiship {two:.2f} s, "
          f"floor {statistics.median(bare):.2f} s: {two / statistics.median(bare):.2f}x the floor")
    print(f"  wsgiship runs: {', '.join(f'{t:.2f}' for t in ours)}")
    print(f"  floor runs:    {', '.join(f'{t:.2f}' for t in bare)}")
    port = b.port(app_dir)
    b.write(app_dir, port, processes=8)
    b.fab(env, "deploy")
    eight = []
    for i in range(pairs):
        set_text(app_dir, f"eight {i}")
        eight.append(b.fab(env, "deploy")[0])
    print(f"warm code-only redeploy, 8 workers ({pairs} runs, median): "
          f"{statistics.median(eight):.2f} s: {statistics.median(eight) / two:.2f}x the 2-worker "
          f"figure")
    b.write(app_dir, port, processes=2)
    b.fab(env, "deploy")


def under_load(b: Bench, env: dict, port: int, label: str, action: tuple[str, ...],
               seconds: float, connections: int) -> None:
    with Load(port, connections=connections, max_seconds=seconds + 120,
              max_requests=3_000_000) as load:
        time.sleep(2)
        t0 = time.monotonic()
        took, _ = b.fab(env, *action, check=False)
        t1 = time.monotonic()
        time.sleep(max(0.0, seconds - (t1 - t0) - 2))
    r = load.result
    fives = sum(1 for s in r.samples if s.status is not None and s.status >= 500)
    print(f"{label:<30} took {took:5.1f} s | failed {len(r.failed)}, 5xx {fives}, worst latency "
          f"during it {r.max_latency(t0, t1) * 1000:.0f} ms | whole run: {r.summary()}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pairs", type=int, default=5, help="paired redeploys, floor and wsgiship")
    ap.add_argument("--seconds", type=float, default=12.0, help="load duration per scenario")
    ap.add_argument("--connections", type=int, default=8)
    args = ap.parse_args()
    with booted("bench") as b:
        app_dir, env = b.app(threads=2)
        took, _ = b.fab(env, "deploy")
        print(f"first deploy (venv built with pip, no fab setup): {took:.1f} s")
        redeploys(b, app_dir, env, args.pairs, th.find_free_port())
        port = b.port(app_dir)

        def run(label: str, action: tuple[str, ...]) -> None:
            under_load(b, env, port, label, action, args.seconds, args.connections)

        set_text(app_dir, "load A")
        run("code-only deploy", ("deploy",))
        run("rollback", ("rollback",))
        reqs = app_dir / "requirements.txt"
        reqs.write_text(reqs.read_text() + "six==1.16.0\n")
        set_text(app_dir, "load B")
        run("requirements-change deploy", ("deploy",))
        hello = app_dir / "hello.py"
        good = hello.read_text()
        hello.write_text(BROKEN)
        run("deploy of a release failing", ("deploy",))
        hello.write_text(good)
        print(f"peak RSS of fab: {peak_child_rss_mb():.0f} MB")


if __name__ == "__main__":
    main()
