"""-H GROUP on the real test host: two aliases on the one host, each its own app (own name,
own port), grouped as `both`. `fab releases -H both` shows each table and the drift between
them; `fab rollback -H both` takes both back to the same release, leaving the one already
there untouched; a host that cannot be reached is named and fails the run.

A fleet deploy gives every host the same release name; here the two hosts get theirs from
`fab deploy` run with the release's timestamp fixed (FIXED_NAME), so they share it.
"""

from __future__ import annotations

import os
import subprocess
import sys

import testhost as th
import yaml
from conftest import ROOT

# `fab ARGS...` with release names stamped sys.argv[1] instead of the clock's time
FIXED_NAME = """\
import sys
import wsgiship.ops.deploy as d
stamp = sys.argv[1]
d.release_name = lambda short_rev, *_: f"{stamp}-{short_rev}"
from fabric.main import program
program.run(["fab", *sys.argv[2:]])
"""


def test_group_releases_drift_and_fleet_rollback(project) -> None:
    p = project()
    other = {"name": p.name + "b", "http_port": th.find_free_port()}
    login = {"host": p.host.host, "port": p.host.ssh_port, "user": "deploy",
             "identity": str(p.host.key_path), "known_hosts": str(p.host.known_hosts)}
    data = {"app": p.settings,
            "hosts": {"a": {**login, "http_port": p.http_port}, "b": {**login, **other},
                      "dead": {**login, "port": th.find_free_port(), "connect_timeout": 5}},
            "groups": {"both": ["a", "b"], "all": ["both", "dead"]}}
    p.hosts_file.write_text(yaml.safe_dump(data, sort_keys=False))
    env = {**os.environ, "WSGISHIP_HOSTS": str(p.hosts_file)}

    def fab_at(stamp: str, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-c", FIXED_NAME, stamp, *args], cwd=ROOT,
                              env=env, text=True, capture_output=True, timeout=600)

    def current(app: str) -> str:
        return p.remote(f"basename $(readlink /srv/{app}/current)").strip()

    p.set_text("first")
    out = p.must(fab_at("20260101T000001Z", "deploy", "-H", "both"))
    r1 = current(p.name)
    assert r1.startswith("20260101T000001Z-") and current(other["name"]) == r1, out
    p.set_text("second")
    p.must(fab_at("20260101T000002Z", "deploy", "-H", "a"))
    r2 = current(p.name)
    assert r2.startswith("20260101T000002Z-") and p.get("/")[:2] == (200, "second")

    out = p.must(p.fab("releases", "-H", "both"))
    assert f"[a] *  {r2}" in out and f"[a]    {r1}" in out and f"[b] *  {r1}" in out, out
    assert out.rstrip().endswith(f"drift: a serves {r2}; b serves {r1}"), out

    res = p.fab("releases", "-H", "all")
    assert res.returncode != 0, res.stdout
    assert "[dead] error:" in res.stderr and "error: could not read the releases of dead" in \
        res.stderr, res.stderr
    assert f"[b] *  {r1}" in res.stdout, res.stdout
    assert f"drift: a serves {r2}; b serves {r1}; dead could not be read" in res.stdout

    # --to a release b does not have: refused before anything moves
    res = p.fab("rollback", "-H", "both", "--to", r2)
    assert res.returncode != 0 and f"release {r2} cannot be every host's: not on b" in \
        res.stderr, res.stderr
    assert current(p.name) == r2

    out = p.must(p.fab("rollback", "-H", "both"))
    assert f"rolling back 2 hosts to {r1}" in out and f"[b] already on {r1}" in out, out
    assert f"[a] rolled back to {r1}" in out, out
    table = out[out.index("HOST "):].splitlines()
    assert table[1].split()[:3] == ["a", r1, "ok"] and table[2].split()[:4] == [
        "b", r1, "already", "-"], out
    assert current(p.name) == r1 == current(other["name"])
    assert p.get("/")[:2] == (200, "first")
    assert p.must(p.fab("releases", "-H", "both")).rstrip().endswith(f"all 2 hosts serve {r1}")
