"""`fab setup` on a bare server, then deploys as a deploy user whose sudo is limited to exactly
the deploy's root commands; supervisor as the service manager, under load."""

from __future__ import annotations

import re
import time

import pytest
import testhost as th
from conftest import Project, make_project

from bench.loadgen import Load


@pytest.fixture(scope="module")
def bare(tmp_path_factory):
    """A test host without nginx and without the deploy user."""
    host = th.boot("bare", tmp_path_factory.mktemp("bare"))
    try:
        host.run("apt-get purge -y -qq nginx-light nginx-common >/dev/null 2>&1; "
                 "userdel -r deploy 2>/dev/null; rm -f /etc/sudoers.d/deploy")
        assert host.run("id deploy; command -v nginx", check=False).returncode != 0
        yield host
    finally:
        host.stop()


def setup_steps(out: str) -> dict[str, str]:
    return dict(re.findall(r"^\[t\] (\S[\w ]*?)\s+[\d.]+s\s+(.*)$", out, re.M))


def test_setup_then_deploy_as_restricted_user(bare, tmp_path):
    p = make_project(bare, tmp_path, remove_default_site=True)
    first = p.must(p.fab("setup", "-H", "t"))
    steps = setup_steps(first)
    for step in ("packages", "deploy user", "layout", "service", "site", "sudo rules"):
        assert steps[step].startswith("changed"), (step, first)
    assert "installed nginx" in steps["packages"]
    # the second run changes nothing
    second = p.must(p.fab("setup", "-H", "t"))
    assert "nothing to change" in second
    assert all(v.startswith(("ok", "Debian")) for k, v in setup_steps(second).items()
               if k not in ("connect", "setup done")), second
    # sudo rules: exactly the deploy's commands, checked by visudo; nothing else
    rules = p.remote(f"cat /etc/sudoers.d/wsgiship-{p.name}")
    assert f"/usr/bin/systemctl start wsgiship-{p.name}@a.service" in rules
    assert f"deploy ALL=(wsgiship-{p.name}) NOPASSWD: ALL" in rules
    # the site nginx loads is root's own file, not a link into a release
    assert p.remote(f"stat -c '%F %U %a' /etc/nginx/sites-available/wsgiship-{p.name}").strip() == (
        "regular file root 644")
    assert p.remote("visudo -c -q -f /etc/sudoers.d/wsgiship-" + p.name + " && echo valid").strip() == "valid"
    assert bare.run("sudo -n true", user="deploy", check=False).returncode != 0
    assert bare.run(f"sudo -n /usr/bin/systemctl start wsgiship-{p.name}@a.service --help", user="deploy",
                    check=False).returncode != 0
    # deploy as the restricted user, then a code change, then a rollback
    p.must(p.deploy())
    assert p.get("/")[:2] == (200, "Hello World!")
    p.set_text("set up")
    out = p.must(p.deploy())
    assert "slot" in out and "stopping gracefully" in out, out
    assert p.get("/")[:2] == (200, "set up")
    p.must(p.fab("rollback", "-H", "t"))
    assert p.get("/")[:2] == (200, "Hello World!")
    assert p.remote("test -e /etc/nginx/sites-enabled/default && echo yes || echo no").strip() == "no"


def test_supervisor_deploy_and_rollback_under_load(bare, tmp_path):
    p: Project = make_project(bare, tmp_path, service_manager="supervisor")
    p.must(p.fab("setup", "-H", "t"))
    p.set_text("sup one")
    out = p.must(p.deploy())
    assert re.search(r"start\s+[\d.]+s\s+slot a started", out), out
    assert "RUNNING" in p.remote(f"supervisorctl status wsgiship-{p.name}-a")
    one = p.current()
    p.set_text("sup two")
    for action in (("deploy", "-H", "t"), ("rollback", "-H", "t")):
        with Load(p.http_port, connections=8, max_seconds=40, max_requests=150_000) as load:
            time.sleep(1)
            res = p.fab(*action)
            time.sleep(1)
        out = p.must(res)
        assert "stopping gracefully" in out, out
        assert not load.result.failed, [s.body for s in load.result.failed[:5]]
    assert p.current() == one
    assert p.get("/")[:2] == (200, "sup one")
