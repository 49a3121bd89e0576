"""Crash safety on a real host: a client killed mid-deploy leaves no lock and no release that
could be rolled back to unverified; a hung release is left after two probes; logs are bounded;
a full disk is named."""

from __future__ import annotations

import os
import subprocess
import time
import uuid

import pytest
from conftest import FAB, ROOT, Project, make_project

from bench.loadgen import Load


@pytest.fixture(scope="module")
def app(host, tmp_path_factory) -> Project:
    p = make_project(host, tmp_path_factory.mktemp("crash"))
    p.must(p.deploy())
    return p


def deploy_killed_when(p: Project, condition: str, timeout: float = 180) -> str:
    """Start `fab deploy`, SIGKILL it once `condition` (a shell test on the host) holds; its
    output so far."""
    env = {**os.environ, "WSGISHIP_HOSTS": str(p.hosts_file)}
    proc = subprocess.Popen([FAB, "deploy", "-H", "t"], cwd=ROOT, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if "yes" in p.host.run(f"if {condition}; then echo yes; fi", check=False).stdout:
                proc.kill()
                break
            time.sleep(0.05)
        out, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -9, f"the deploy was not killed in time:\n{out}"
    return out


def app_returning(body: str) -> str:
    """hello.py whose index runs `body`."""
    return f"import time\n\nfrom flask import Flask\n\napp = Flask(__name__)\n\n\n" \
           f"@app.route('/')\ndef index():\n    {body}\n"


def app_failing_after_its_first_answer() -> str:
    """hello.py that answers its first request (the check on its own socket, before the
    switch) and 500 to every later one (the health check through nginx, after the switch)."""
    marker = f"/tmp/answered-{uuid.uuid4().hex}"
    return app_returning(f"if os.path.exists({marker!r}):\n        return 'broken', 500\n"
                         f"    open({marker!r}, 'w').close()\n    return 'first'").replace(
        "import time\n", "import os\nimport time\n", 1)


def statuses(p: Project) -> dict[str, str]:
    """release -> its STATUS column in `fab releases`."""
    out = p.must(p.fab("releases", "-H", "t"))
    rows = {}
    for line in out.splitlines()[1:]:
        words = line.removeprefix("[t] ").replace("*", " ").split()
        if words and words[0][:1].isdigit():
            rows[words[0]] = " ".join(words[4:])
    return rows


def lock_gone(p: Project, timeout: float = 30) -> bool:
    deadline = time.monotonic() + timeout
    while p.lock_exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    return not p.lock_exists()


def test_a_client_killed_during_pip_leaves_no_lock_and_no_rollback_target(app: Project) -> None:
    p, good = app, app.current()
    (p.app_dir / "requirements.txt").write_text("flask==3.1.3\nsix==1.16.0\n")
    try:
        deploy_killed_when(p, "pgrep -u deploy -f 'pip install' >/dev/null")
        abandoned = p.remote(f"ls -1t {p.deploy_to}/releases | head -n1").strip()
        assert abandoned != good
        assert p.current() == good and p.get("/")[:2] == (200, "Hello World!")
        # the client's keeper on the server saw its channel close and removed the lock
        assert lock_gone(p)
        p.set_text("after the crash")
        out = p.must(p.deploy())
    finally:
        (p.app_dir / "requirements.txt").write_text("flask==3.1.3\n")
    assert "took over" not in out, out
    assert p.get("/")[:2] == (200, "after the crash")
    assert not p.lock_exists()
    rows = statuses(p)
    assert rows[abandoned].startswith("failed: abandoned"), rows
    # a rollback never picks the abandoned release
    p.must(p.fab("rollback", "-H", "t"))
    assert p.current() == good
    assert p.get("/")[:2] == (200, "Hello World!")
    p.set_text("Hello World!")
    p.must(p.deploy())


def test_a_client_killed_after_the_switch_leaves_the_server_to_check_and_go_back(
        app: Project) -> None:
    p, good = app, app.current()
    hello = p.app_dir / "hello.py"
    source = hello.read_text()
    hello.write_text(app_failing_after_its_first_answer())
    try:
        deploy_killed_when(p, f'[ "$(readlink {p.deploy_to}/current)" != "releases/{good}" ]')
        broken = p.remote(f"ls -1t {p.deploy_to}/releases | head -n1").strip()
        assert broken != good
        # the publish job on the server checks it, goes back, logs it and releases the lock
        assert lock_gone(p, 90)
    finally:
        hello.write_text(source)
    assert p.current() == good and p.get("/")[:2] == (200, "Hello World!")
    assert statuses(p)[broken].startswith("failed: health check failed"), statuses(p)
    last = p.remote(f"tail -n1 {p.deploy_to}/deploys.log")
    assert '"finished_by": "server (its client was gone)"' in last, last
    assert f'"rolled_back_to": "{good}"' in last, last


def test_a_release_left_unverified_by_a_dead_job_is_resolved_by_the_next_deploy(
        app: Project) -> None:
    """The client and its publish job both killed after the switch (a server reboot would do
    the same): the next deploy verifies the current pending release and leaves it."""
    p, good = app, app.current()
    hello = p.app_dir / "hello.py"
    source = hello.read_text()
    hello.write_text(app_failing_after_its_first_answer())
    env = {**os.environ, "WSGISHIP_HOSTS": str(p.hosts_file), "WSGISHIP_TEST_PAUSE": "job:switch"}
    proc = subprocess.Popen([FAB, "deploy", "-H", "t"], cwd=ROOT, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        for line in proc.stdout:  # type: ignore[union-attr]
            if "test pause" in line:
                p.remote(f"kill -9 $(cut -d' ' -f1 {p.deploy_to}/.lock/job)")
                proc.kill()
                break
        proc.wait(timeout=30)
        broken = p.current()
        assert broken != good
        assert lock_gone(p)
        hello.write_text(app_returning('return "fixed"'))
        out = p.must(p.deploy())
    finally:
        hello.write_text(source)
        if proc.poll() is None:
            proc.kill()
    assert f"release {broken} is current but was never verified" in out, out
    assert "back to" in out, out
    assert p.get("/")[:2] == (200, "fixed")
    assert statuses(p)[broken].startswith("failed: unverified"), statuses(p)
    p.must(p.deploy())


def test_a_release_whose_health_path_hangs_is_left_after_two_probes(app: Project) -> None:
    p, good = app, app.current()
    hello = p.app_dir / "hello.py"
    source = hello.read_text()
    hello.write_text(app_returning('time.sleep(40); return "slow"'))
    try:
        res = p.deploy()
    finally:
        hello.write_text(source)
    assert res.returncode != 0
    assert "no answer within 5 s (2 in a row)" in res.stderr, res.stderr
    assert p.current() == good and p.get("/")[0] == 200 and not p.lock_exists()
    assert "before the switch" in res.stderr, res.stderr
    # the hung workers were killed, not waited for: none is left in that release
    failed = p.remote(f"ls -1t {p.deploy_to}/releases | head -n1").strip()
    cwds = p.remote(f"for w in $(pgrep -f 'uwsgi --ini {p.deploy_to}'); do"
                    f" readlink /proc/$w/cwd; done")
    assert failed not in cwds


def test_the_app_log_stays_bounded_under_load(project) -> None:
    p = project(uwsgi={"log-maxsize": 20000})
    p.must(p.deploy())
    with Load(p.http_port, connections=4, max_seconds=8, max_requests=30000) as load:
        time.sleep(6)
    served = load.result.served
    assert served > 3000
    time.sleep(3)  # the master rotates on its next check
    files = dict(line.split() for line in p.remote(
        f"cd {p.deploy_to}/shared/log && stat -c '%n %s' *").splitlines())
    assert set(files) <= {"uwsgi.log", "uwsgi.log.1"}, files
    assert "uwsgi.log.1" in files  # it did rotate
    # each request logs a line of about 200 bytes: far more was written than is kept (uWSGI
    # rotates on its master's next check, so the backup holds up to a second more than 20000)
    assert sum(int(v) for v in files.values()) < served * 200 / 3, (files, served)


def test_a_full_disk_refuses_the_lock_and_says_so(project) -> None:
    p = project()
    host, d = p.host, p.deploy_to
    host.run(f"mkdir -p {d} && mount -t tmpfs -o size=256k tmpfs {d} && chown deploy:www-data {d}"
             f" && install -d -o deploy -g www-data {d}/releases {d}/shared {d}/venvs"
             f" && (dd if=/dev/zero of={d}/filler bs=4k 2>/dev/null || true)")
    try:
        res = p.deploy()
        assert res.returncode != 0
        assert f"disk full on {d} (0 MB free)" in res.stderr, res.stderr
        assert "Traceback" not in res.stderr
        assert not p.lock_exists()
        assert not p.remote(f"ls -A {d} | grep '^.lock' || true").strip()
    finally:
        host.run(f"umount {d}", check=False)
