"""-H GROUP on the real test host: two aliases on the one host, each its own app (own name,
own port), grouped as `both`. `fab releases -H both` shows each table and the drift between
them; `fab rollback -H both` takes both back to the same release, leaving the one already
there untouched; a host that cannot be reached is named and fails the run.

A fleet deploy (`fab deploy -H both`) gives both hosts the same release name.
"""

from __future__ import annotations

import time

import testhost as th
import yaml


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

    def current(app: str) -> str:
        return p.remote(f"basename $(readlink /srv/{app}/current)").strip()

    p.set_text("first")
    out = p.must(p.fab("deploy", "-H", "both"))
    r1 = current(p.name)
    assert current(other["name"]) == r1, out
    time.sleep(1)  # release names are stamped to the second
    p.set_text("second")
    p.must(p.fab("deploy", "-H", "a"))
    r2 = current(p.name)
    assert r2 > r1 and p.get("/")[:2] == (200, "second")

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
