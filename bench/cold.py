"""Cold deploys against a real test host, side by side in one run: the floor (a bare `uv venv` +
`uv pip install` of the same requirements plus pyuwsgi, caches empty, then uWSGI started once),
wsgiship's cold first deploy (fresh app, empty caches, after `fab setup`), a requirements
change against a warm code-only deploy, and for the record the old path (pip + the uWSGI sdist)
and the wheelhouse path. Prints figures and ratios; asserts nothing.

    python bench/cold.py [--runs 3]
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import ROOT, Bench, booted, set_text, th  # noqa: E402
from wsgiship.source import UWSGI_PACKAGES  # noqa: E402

# the floor, as the deploy user in one SSH session: timed on the server
FLOOR = r'''
set -euo pipefail
UV={uv}; W=$(mktemp -d /tmp/floor.XXXXXX); PORT={port}
export UV_CACHE_DIR=$W/cache UV_PYTHON_DOWNLOADS=never UV_SYSTEM_CERTS=1 UV_NO_PROGRESS=1
cp -r {app} $W/app; printf '%s\n' {req} > $W/req.txt
t0=$(date +%s.%N)
$UV venv --quiet --python "$(command -v python3)" $W/v
$UV pip install --quiet --python $W/v/bin/python -r $W/req.txt
cd $W/app
$W/v/bin/uwsgi --master --processes 2 --http-socket 127.0.0.1:$PORT --wsgi-file hello.py \
  --callable app --daemonize $W/uwsgi.log --pidfile $W/pid
until curl -fs -o /dev/null http://127.0.0.1:$PORT/; do sleep 0.02; done
t1=$(date +%s.%N)
kill -INT "$(cat $W/pid)"; sleep 0.5; rm -rf $W
echo "took=$(python3 -c "print($t1 - $t0)")"
'''


class ColdBench(Bench):
    def cold(self, **settings: object) -> tuple[float, str, Path, dict]:
        """`fab setup` (not timed), then the timed first deploy."""
        app_dir, env = self.app(**settings)
        self.fab(env, "setup")
        took, out = self.fab(env, "deploy")
        return took, out, app_dir, env

    def floor(self, uv: str) -> float:
        req = (ROOT / "examples/hello/requirements.txt").read_text().split() + [
            UWSGI_PACKAGES["pyuwsgi"]]
        script = FLOOR.format(uv=uv, port=th.find_free_port(), app="/tmp/floor-app",
                              req=" ".join(req))
        self.host.run("rm -rf /tmp/floor-app && mkdir -p /tmp/floor-app", check=True)
        hello = (ROOT / "examples/hello/hello.py").read_text()
        self.host.run("cat > /tmp/floor-app/hello.py && chmod -R a+rX /tmp/floor-app",
                      input=hello)
        res = self.host.run(script, user="deploy", timeout=300)
        return float(re.search(r"took=([\d.]+)", res.stdout).group(1))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3, help="paired runs of floor and cold deploy")
    args = ap.parse_args()
    with booted("cold", ColdBench) as b:
        floors, colds = [], []
        for _ in range(args.runs):
            took, out, app_dir, env = b.cold(uwsgi_package="pyuwsgi")
            colds.append(took)
            uv = "/opt/wsgiship/uv/bin/uv"
            floors.append(b.floor(uv))
        venv = re.search(r"venv\s+([\d.]+)s\s+(.*)", out)
        print(f"cold floor (uv venv + uv pip install + uWSGI up, {args.runs} runs): "
              f"{min(floors):5.2f} s best")
        print(f"wsgiship cold first deploy ({args.runs} runs):          {min(colds):5.2f} s best"
              f"  -> {min(colds) / min(floors):.2f}x the floor (target <= 1.5x, <= 3 s)")
        print(f"  its venv step: {venv.group(1) if venv else '?'} s, {venv.group(2) if venv else ''}")
        warm = []
        for i in range(3):
            set_text(app_dir, f"warm {i}")
            warm.append(b.fab(env, "deploy")[0])
        reqs = app_dir / "requirements.txt"
        reqs.write_text(reqs.read_text() + "six==1.16.0\n")
        changed = b.fab(env, "deploy")[0]
        print(f"warm code-only deploy: {min(warm):5.2f} s best; requirements change: "
              f"{changed:5.2f} s -> {changed / min(warm):.2f}x (target <= 1.5x)")
        old, _, _, _ = b.cold(installer="pip", uwsgi_package="uwsgi")
        print(f"the old path (uWSGI compiled from its sdist, by pip): {old:5.2f} s"
              f" -> {old / min(colds):.1f}x the new cold deploy")
        wh, out, _, _ = b.cold(wheelhouse=True, uwsgi_package="pyuwsgi")
        size = re.search(r"wheelhouse\s+[\d.]+s\s+(.*)", out)
        print(f"wheelhouse cold first deploy: {wh:5.2f} s ({size.group(1) if size else '?'})")


if __name__ == "__main__":
    main()
