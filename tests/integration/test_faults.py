"""Fault injection against the real test host: no failed deploy leaves a broken site.

After every fault: the site answers 200 with the previous release's content, `current` points
where it did, no lock remains, and a normal deploy right after succeeds.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import threading
import time

import pytest
from conftest import FAB, ROOT, Project, make_project

from bench.loadgen import Load


@pytest.fixture(scope="module")
def app(host, tmp_path_factory) -> Project:
    """One app deployed once, shared by the fault cases (each leaves it healthy)."""
    p = make_project(host, tmp_path_factory.mktemp("faults"))
    p.must(p.deploy())
    return p


def assert_unharmed(p: Project, current: str, text: str = "Hello World!") -> None:
    assert p.current() == current
    status, body, release = p.get("/")
    assert (status, body, release) == (200, text, current)
    assert not p.lock_exists()
    assert not p.remote(f"ls -A {p.deploy_to} | grep '^.upload-' || true").strip()


def assert_next_deploy_works(p: Project) -> None:
    p.set_text("Hello World!")
    p.must(p.deploy())
    assert p.get("/")[:2] == (200, "Hello World!")


def start_deploy(p: Project, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "WSGISHIP_HOSTS": str(p.hosts_file)}
    return subprocess.Popen([FAB, "deploy", "-H", "t", *args], cwd=ROOT, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def kill_deploy_ssh_when(p: Project, condition: str, timeout: float = 120) -> threading.Thread:
    """In the background: once `condition` (a shell test) holds on the host, kill the deploy
    user's sshd session processes — the connection drops mid-step."""

    def watch() -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            out = p.host.run(f"if {condition}; then pkill -KILL -f '^sshd: deploy' && echo cut; fi",
                             check=False).stdout
            if "cut" in out:
                return
            time.sleep(0.05)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def test_connection_cut_during_upload(app):
    current = app.current()
    (app.app_dir / "big.bin").write_bytes(os.urandom(60 * 1024 * 1024))
    try:
        watcher = kill_deploy_ssh_when(app, f"ls {app.deploy_to}/.upload-* >/dev/null 2>&1")
        res = app.deploy()
        watcher.join()
    finally:
        (app.app_dir / "big.bin").unlink()
    assert res.returncode != 0
    assert "connection lost" in res.stderr or "upload" in res.stderr
    assert "Traceback" not in res.stderr
    assert_unharmed(app, current)
    assert_next_deploy_works(app)


def test_connection_cut_during_pip_install(app):
    current = app.current()
    (app.app_dir / "requirements.txt").write_text("flask==3.1.3\nsix==1.16.0\n")
    try:
        watcher = kill_deploy_ssh_when(app, "pgrep -u deploy -f 'pip install' >/dev/null")
        res = app.deploy()
        watcher.join()
        assert res.returncode != 0
        assert "Traceback" not in res.stderr
        assert_unharmed(app, current)
        # no pip left running from the cut deploy once the next one has started
        assert_next_deploy_works(app)
        assert not app.remote("pgrep -u deploy -f 'pip install' || true").strip()
    finally:
        (app.app_dir / "requirements.txt").write_text("flask==3.1.3\n")


def test_pip_failure(app):
    current = app.current()
    (app.app_dir / "requirements.txt").write_text("flask==3.1.3\nno-such-dist-wsgiship==1.0\n")
    try:
        res = app.deploy()
    finally:
        (app.app_dir / "requirements.txt").write_text("flask==3.1.3\n")
    assert res.returncode != 0
    assert "no-such-dist-wsgiship" in res.stderr
    assert_unharmed(app, current)
    assert_next_deploy_works(app)


def deploy_with_override(app: Project, tmp_path, template: str, text: str):
    """Deploy once with one template overridden, then go back to the defaults."""
    overrides = tmp_path / "tpl"
    overrides.mkdir()
    (overrides / template).write_text(text)
    app.settings["templates"] = str(overrides)
    app.write()
    try:
        return app.deploy()
    finally:
        del app.settings["templates"]
        app.write()


def test_template_error_in_override(app, tmp_path):
    current = app.current()
    res = deploy_with_override(app, tmp_path, "uwsgi.ini.j2",
                               "[uwsgi]\nprocesses = {{ app.procs }}\n")
    assert res.returncode != 0
    assert re.search(r"uwsgi\.ini\.j2:2: template error: .*procs", res.stderr), res.stderr
    assert_unharmed(app, current)
    assert_next_deploy_works(app)


def test_broken_nginx_override(app, tmp_path):
    current = app.current()
    original = (ROOT / "templates" / "nginx.conf.j2").read_text()
    res = deploy_with_override(app, tmp_path, "nginx.conf.j2",
                               original.replace("server_name {{", "server_nmae {{"))
    assert res.returncode != 0
    assert "nginx -t" in res.stderr and "server_nmae" in res.stderr
    assert_unharmed(app, current)
    assert_next_deploy_works(app)


def test_app_fails_to_import(app):
    current = app.current()
    (app.app_dir / "hello.py").write_text("import no_such_module_anywhere\n")
    res = app.deploy()
    assert res.returncode != 0
    assert "No module named 'no_such_module_anywhere'" in res.stderr
    assert_unharmed(app, current)
    (app.app_dir / "hello.py").write_text((ROOT / "examples/hello/hello.py").read_text())
    assert_next_deploy_works(app)


def test_health_check_500_rolls_back(app):
    current = app.current()
    app.settings["health"] = {"path": "/", "status": 200, "timeout": 10}
    app.write()
    src = (ROOT / "examples/hello/hello.py").read_text()
    (app.app_dir / "hello.py").write_text(src.replace('return "Hello World!"',
                                                      'raise ValueError("view is broken")'))
    try:
        res = app.deploy()
    finally:
        (app.app_dir / "hello.py").write_text(src)
    assert res.returncode != 0
    err = res.stderr
    assert "health check failed" in err and "answered 500" in err
    assert f"http://localhost:{app.http_port}/" in err and "before the switch" in err
    assert "Internal Server Error" in err          # first lines of the body
    assert "ValueError: view is broken" in err     # last lines of the app log
    assert "never served a request" in res.stdout and f"{current} keeps serving" in res.stdout
    assert_unharmed(app, current)
    newest = sorted(app.releases())[-1]
    assert "health check failed" in app.remote(f"cat {app.deploy_to}/releases/{newest}/FAILED")
    log = app.remote(f"tail -n1 {app.deploy_to}/deploys.log")
    assert '"result": "failed"' in log and '"rolled_back_to": "' + current in log
    assert_next_deploy_works(app)
    # the failed release is never a rollback target
    res = app.fab("rollback", "-H", "t", "--to", newest)
    assert res.returncode != 0 and "is not a good one (failed: " in res.stderr


def test_disk_full_during_upload(host, tmp_path):
    p = make_project(host, tmp_path)
    host.run(f"mkdir -p {p.deploy_to} && mount -t tmpfs -o size=90m tmpfs {p.deploy_to}")
    try:
        p.must(p.deploy())
        current = p.current()
        free = int(p.remote(f"df --output=avail -B1 {p.deploy_to} | tail -1"))
        (p.app_dir / "big.bin").write_bytes(os.urandom(free + 5 * 1024 * 1024))
        res = p.deploy()
        (p.app_dir / "big.bin").unlink()
        assert res.returncode != 0
        assert "disk" in res.stderr or "No space left" in res.stderr
        assert "Traceback" not in res.stderr
        assert_unharmed(p, current)
        assert_next_deploy_works(p)
    finally:
        site = f"wsgiship-{p.name}"
        host.run(f"systemctl stop {site}; rm -f /etc/nginx/sites-enabled/{site} "
                 f"/etc/nginx/sites-available/{site}; systemctl reload nginx; "
                 f"umount -l {p.deploy_to}", check=False)


def test_two_deploys_at_once(app):
    current = app.current()
    app.set_text("concurrent")
    first, second = start_deploy(app), start_deploy(app)
    results = [(proc.wait(300), *proc.communicate()) for proc in (first, second)]
    codes = sorted(code for code, _, _ in results)
    assert codes[0] == 0 and codes[1] != 0, results
    refused = next(err for code, _, err in results if code != 0)
    assert "is locked by" in refused and "(deploy) since" in refused
    assert app.get("/")[:2] == (200, "concurrent")
    assert app.current() != current
    assert not app.lock_exists()
    assert_next_deploy_works(app)


def test_interrupt_releases_lock(app):
    current = app.current()
    (app.app_dir / "requirements.txt").write_text("flask==3.1.3\nsix==1.15.0\n")
    try:
        proc = start_deploy(app)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if app.remote("pgrep -u deploy -f 'pip install' >/dev/null && echo y || true").strip():
                break
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)
    finally:
        (app.app_dir / "requirements.txt").write_text("flask==3.1.3\n")
    assert proc.returncode != 0
    assert "Traceback" not in err
    assert_unharmed(app, current)
    assert_next_deploy_works(app)


def test_stale_lock_is_reported_and_unlock_says_whose(app):
    holder = ('{"by": "alice@laptop", "pid": "1", "since": "2020-01-01T00:00:00Z", '
              '"action": "deploy", "token": "x"}')
    app.remote(f"mkdir {app.deploy_to}/.lock && echo '{holder}' > {app.deploy_to}/.lock/holder "
               f"&& chown -R deploy {app.deploy_to}/.lock")
    res = app.deploy()
    assert res.returncode != 0
    assert "locked by alice@laptop (deploy) since 2020-01-01T00:00:00Z" in res.stderr
    assert "STALE" in res.stderr and "fab unlock" in res.stderr
    out = app.must(app.fab("unlock", "-H", "t"))
    assert "removed the lock" in out and "alice@laptop" in out
    assert not app.lock_exists()
    assert_next_deploy_works(app)


def test_rollback_under_load_has_no_failed_request(app):
    app.set_text("version one")
    app.must(app.deploy())
    one = app.current()
    app.set_text("version two")
    app.must(app.deploy())
    with Load(app.http_port, connections=4, max_seconds=30, max_requests=100_000) as load:
        time.sleep(1)
        res = app.fab("rollback", "-H", "t")
        time.sleep(1)
    app.must(res)
    assert app.current() == one
    result = load.result
    assert not result.failed, [s.body for s in result.failed[:5]]
    assert result.bodies()[-1] == "version one"
    assert result.served > 100
    out = app.must(app.fab("releases", "-H", "t"))
    assert re.search(rf"\*\s+{one}", out)
    log = app.remote(f"tail -n1 {app.deploy_to}/deploys.log")
    assert '"action": "rollback"' in log and '"result": "ok"' in log


def test_rollback_errors_change_nothing(host, tmp_path):
    p = make_project(host, tmp_path)
    res = p.fab("rollback", "-H", "t")
    assert res.returncode != 0 and "nothing deployed yet" in res.stderr
    p.must(p.deploy())
    current = p.current()
    res = p.fab("rollback", "-H", "t")
    assert res.returncode != 0 and "no good release before" in res.stderr
    res = p.fab("rollback", "-H", "t", "--to", "20200101T000000Z-nope")
    assert res.returncode != 0 and "no release '20200101T000000Z-nope'" in res.stderr
    assert_unharmed(p, current)



def test_first_deploy_failing_its_check_says_so_and_keeps_release(host, tmp_path):
    p = make_project(host, tmp_path, health={"path": "/", "status": 200, "timeout": 5})
    src = (p.app_dir / "hello.py").read_text()
    (p.app_dir / "hello.py").write_text(src.replace('return "Hello World!"',
                                                    'raise ValueError("never worked")'))
    res = p.deploy()
    assert res.returncode != 0
    assert "never served a request: it failed before the switch" in res.stdout, res.stdout
    assert "health check failed" in res.stderr and "ValueError: never worked" in res.stderr
    assert "before the switch" in res.stderr, res.stderr
    # its uWSGI was stopped: nothing of it is left running
    assert not p.remote(f"systemctl list-units --no-legend --state=active 'wsgiship-{p.name}@*'",
                        check=False).strip()
    (release,) = p.releases()
    assert p.remote(f"cat {p.deploy_to}/releases/{release}/FAILED").strip()
    assert not p.lock_exists()
    (p.app_dir / "hello.py").write_text(src)
    p.must(p.deploy())
    assert p.get("/")[:2] == (200, "Hello World!")
