"""The core deploy, end to end through `fab` against the real test host."""

from __future__ import annotations

import re


def test_deploy_redeploy_reuses_venv(project):
    p = project()
    out = p.must(p.deploy())
    assert "venv" in out and "created" in out
    status, body, release = p.get("/")
    assert (status, body) == (200, "Hello World!")
    first = p.current()
    assert release == first
    last = out.strip().splitlines()[-1]
    assert re.search(rf"deployed {first} -> http://\S+:{p.http_port}/ in [\d.]+s", last)

    p.set_text("Hello again!")
    out = p.must(p.deploy())
    assert re.search(r"venv\s+[\d.]+s\s+reused", out), out
    status, body, release = p.get("/")
    assert (status, body) == (200, "Hello again!")
    second = p.current()
    assert second != first and release == second
    assert sorted(p.releases()) == sorted([first, second])
    # the second deploy ran no pip: its release has no pip log, and both link the same venv
    assert "no" in p.remote(f"test -e {p.deploy_to}/releases/{second}/.wsgiship/pip.log "
                            f"&& echo yes || echo no")
    venvs = p.remote(f"readlink {p.deploy_to}/releases/{first}/.venv "
                     f"{p.deploy_to}/releases/{second}/.venv").split()
    assert venvs[0] == venvs[1]
    assert not p.lock_exists()
    log = p.remote(f"cat {p.deploy_to}/deploys.log").splitlines()
    assert len(log) == 2 and all('"result": "ok"' in line for line in log)


def test_requirements_change_builds_new_venv_and_prunes_old(project):
    p = project(keep_releases=2)
    p.must(p.deploy())
    old_venv = p.remote(f"basename $(readlink {p.deploy_to}/current/.venv)").strip()
    (p.app_dir / "requirements.txt").write_text("flask==3.1.3\nsix==1.16.0\n")
    out = p.must(p.deploy())
    assert re.search(r"venv\s+[\d.]+s\s+created", out), out
    new_venv = p.remote(f"basename $(readlink {p.deploy_to}/current/.venv)").strip()
    assert new_venv != old_venv
    assert p.remote(f"{p.deploy_to}/current/.venv/bin/python -c 'import six; print(six.__version__)'"
                    ).strip() == "1.16.0"
    # old venv still used by the previous release (the rollback target): kept
    assert old_venv in p.remote(f"ls {p.deploy_to}/venvs")
    p.set_text("third")
    p.must(p.deploy())
    # keep_releases=2: the first release is gone, and with it the only user of the old venv
    assert len(p.releases()) == 2
    venvs = p.remote(f"ls {p.deploy_to}/venvs").split()
    assert venvs == [new_venv]
    assert p.get("/")[1] == "third"


def test_import_error_fails_before_the_switch(project):
    p = project()
    p.must(p.deploy())
    good = p.current()
    (p.app_dir / "hello.py").write_text("raise RuntimeError('boom at import')\n")
    res = p.deploy()
    assert res.returncode != 0
    assert "uWSGI did not start" in res.stderr and "boom at import" in res.stderr, res.stderr
    assert "Traceback (most recent call last)" not in res.stderr.split("|")[0]
    p.assert_still_serving(good)
    failed = [r for r in p.releases() if r != good]
    assert len(failed) == 1
    assert p.remote(f"cat {p.deploy_to}/releases/{failed[0]}/FAILED").strip()


def test_missing_requirement_fails_with_pip_output(project):
    p = project()
    p.must(p.deploy())
    good = p.current()
    (p.app_dir / "requirements.txt").write_text("flask==3.1.3\nno-such-package-wsgiship-test==9.9\n")
    res = p.deploy()
    assert res.returncode != 0
    assert re.search(r"(pip|uv) install \(venv \w+\) failed", res.stderr), res.stderr
    assert "no-such-package-wsgiship-test" in res.stderr  # the installer's own last lines
    p.assert_still_serving(good)
    # the half-built venv was removed; only the good one is left
    assert len(p.remote(f"ls {p.deploy_to}/venvs").split()) == 1


def test_root_login_runs_the_app_as_its_own_user(project):
    p = project()
    p.write(user="root")
    p.must(p.deploy())
    assert p.get("/")[:2] == (200, "Hello World!")
    user = p.remote(f"systemctl show -p User --value wsgiship-{p.name}@a").strip()
    assert user == f"wsgiship-{p.name}"
    assert p.remote(f"id -gn {user}; getent passwd {user} | cut -d: -f7").split() == [
        "www-data", "/usr/sbin/nologin"]


def test_sudo_with_password_prompt(project):
    # the app runs as the login user here (set explicitly): a code-only deploy then needs no
    # sudo at all, not even to act as the app's own user
    p = project(app_user="deploypw")
    p.write(user="deploypw")
    res = p.fab("--prompt-for-sudo-password", "deploy", "-H", "t", input="testpw\n")
    p.must(res)
    assert p.get("/")[:2] == (200, "Hello World!")
    # every deploy starts a uWSGI through systemd: without the password (and with no sudo rules
    # from `fab setup`), a clear error, and the site keeps serving
    p.set_text("x")
    res = p.deploy()
    assert res.returncode != 0
    assert "--prompt-for-sudo-password" in res.stderr, res.stderr
    assert "Traceback" not in res.stderr
    assert not p.lock_exists()
    assert p.get("/")[:2] == (200, "Hello World!")


def test_sudo_password_with_the_apps_own_user(project):
    # everything done as the app's user (import check, fifo, log) goes through the one sudo
    # the password answers: nothing asks for it again
    p = project(shared_files=[".env"])
    p.write(user="deploypw")
    for text in ("first", "second"):
        p.set_text(text)
        res = p.fab("--prompt-for-sudo-password", "deploy", "-H", "t", input="testpw\n")
        out = p.must(res)
        assert p.get("/")[:2] == (200, text)
    assert re.search(r"start\s+[\d.]+s\s+slot [ab] started", out), out
    users = p.remote(f"ps -o user:32=,args= -C uwsgi | grep -F ' --ini {p.deploy_to}/'"
                     " | awk '{print $1}' | sort -u")
    assert users.split() == [f"wsgiship-{p.name}"]


def test_factory_entry_and_pyproject_dependencies(project):
    p = project(wsgi="hello:create_app()")
    (p.app_dir / "requirements.txt").unlink()
    (p.app_dir / "pyproject.toml").write_text(
        '[project]\nname = "hello"\nversion = "1"\ndependencies = ["flask==3.1.3"]\n')
    (p.app_dir / "hello.py").write_text(
        "from flask import Flask\n\n\ndef create_app():\n    app = Flask(__name__)\n"
        "    app.add_url_rule('/', 'index', lambda: 'from a factory')\n    return app\n")
    p.must(p.deploy())
    assert p.get("/")[:2] == (200, "from a factory")
