"""Adoption as a user meets it: wsgiship built as a wheel and installed into a fresh venv (not this
repository's), `wsgiship init` in an app's own repository, then `fab setup` and `fab deploy` from
that directory: a generated Django project (Django from PyPI) and a Flask factory app whose
dependencies are only in pyproject.toml and whose database needs a one-time init."""

from __future__ import annotations

import http.client
import os
import shutil
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest
import testhost as th
import yaml

ROOT = Path(__file__).resolve().parents[2]
DJANGO = "Django==5.2.8"
FLASK = "flask==3.1.3"


def run(argv: list[str], cwd: Path, venv: Path, timeout: float = 900) -> str:
    """Run a command of the fresh venv (its bin first on PATH, nothing of this repository)."""
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH",
                                                            "WSGISHIP_HOSTS")}
    env["PATH"] = f"{venv / 'bin'}:{env.get('PATH', '/usr/bin:/bin')}"
    res = subprocess.run(argv, cwd=cwd, env=env, text=True, capture_output=True, timeout=timeout)
    assert res.returncode == 0, f"{argv} exit {res.returncode}\n{res.stdout}\n{res.stderr}"
    return res.stdout + res.stderr


@pytest.fixture(scope="module")
def src(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """This repository's files, copied: setuptools' build/ in the work tree may hold files
    removed since."""
    copy = tmp_path_factory.mktemp("adopt-src") / "wsgiship"
    shutil.copytree(ROOT, copy, symlinks=True, ignore=shutil.ignore_patterns(
        ".venv", ".testhost", "build", "dist", "*.egg-info", "__pycache__", ".git"))
    return copy


@pytest.fixture(scope="module")
def venv(src: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with the wheel built from this repository, and Django (for django-admin)."""
    base = tmp_path_factory.mktemp("adopt")
    wheels = base / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(wheels),
                    str(src)], check=True, capture_output=True, timeout=600)
    wheel = next(wheels.glob("wsgiship-*.whl"))
    v = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(v)], check=True, timeout=300)
    run([str(v / "bin/pip"), "install", "-q", "--disable-pip-version-check", str(wheel), DJANGO],
        base, v)
    return v


def test_the_wheel_holds_the_package_and_no_top_level_tasks(venv: Path) -> None:
    probe = ("import importlib.util, wsgiship.tasks, wsgiship.render as r; "
             "print(importlib.util.find_spec('tasks'), sorted(p.name for p in "
             "r.TEMPLATE_DIR.glob('*.j2')))")
    out = run([str(venv / "bin/python"), "-c", probe], Path("/"), venv)
    assert out.startswith("None ['nginx.conf.j2'"), out
    assert str(ROOT) not in run([str(venv / "bin/python"), "-c",
                                 "import wsgiship; print(wsgiship.__file__)"], Path("/"), venv)


def test_the_sdist_builds_the_same_package(src: Path, tmp_path: Path) -> None:
    build = ("import sys; from setuptools import build_meta as b; "
             "print(b.build_sdist(sys.argv[1]))")
    subprocess.run([sys.executable, "-c", build, str(tmp_path / "sdist")], cwd=src, check=True,
                   capture_output=True, timeout=300)
    sdist = next((tmp_path / "sdist").glob("wsgiship-*.tar.gz"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w",
                    str(tmp_path / "w"), str(sdist)], check=True, capture_output=True, timeout=600)
    with zipfile.ZipFile(next((tmp_path / "w").glob("wsgiship-*.whl"))) as whl:
        names = whl.namelist()
        entry_points = next(n for n in names if n.endswith("entry_points.txt"))
        assert "wsgiship = wsgiship.cli:main" in whl.read(entry_points).decode()
    assert {n for n in names if n.startswith("wsgiship/templates/")} == {
        f"wsgiship/templates/{n}" for n in ("nginx.conf.j2", "supervisor.conf.j2",
                                            "systemd.service.j2", "uwsgi.ini.j2", "wsgi.py.j2")}
    assert not [n for n in names if n.startswith("tasks/")]


def point_at(app_dir: Path, host: th.TestHost, **app: object) -> tuple[str, int]:
    """What a user does after init with their own server: fill in how to reach it (here the
    test host's key, pinned host key and a free HTTP port); returns the alias and the port."""
    path = app_dir / "hosts.yaml"
    data = yaml.safe_load(path.read_text())
    (alias, entry), = data["hosts"].items()
    port = th.find_free_port()
    entry.update(identity=str(host.key_path), known_hosts=str(host.known_hosts), http_port=port)
    data["app"].update(server_name="localhost", **app)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return alias, port


def get(port: int, path: str, method: str = "GET") -> tuple[int, str, dict[str, str]]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=15)
    conn.request(method, path, headers={"Host": "localhost"})
    resp = conn.getresponse()
    body = resp.read().decode(errors="replace")
    headers = {k.lower(): v for k, v in resp.getheaders()}
    conn.close()
    return resp.status, body, headers


def init(app_dir: Path, host: th.TestHost, venv: Path) -> str:
    out = run([str(venv / "bin/wsgiship"), "init", "--host",
               f"deploy@{host.host}:{host.ssh_port}"], app_dir, venv)
    assert (app_dir / "fabfile.py").is_file() and (app_dir / "hosts.yaml").is_file(), out
    assert "fab setup -H" in out and "fab deploy -H" in out, out
    return out


def test_django_project_from_init_to_admin_page(host: th.TestHost, venv: Path,
                                                tmp_path: Path) -> None:
    app_dir = tmp_path / "shopsite"
    app_dir.mkdir()
    run([str(venv / "bin/django-admin"), "startproject", "shopsite", str(app_dir)], tmp_path, venv)
    settings = app_dir / "shopsite" / "settings.py"
    # what a user sets before going to production: where collectstatic writes, the host name,
    # and the SQLite file in a directory the app may write (the release is read-only to it)
    settings.write_text(settings.read_text().replace(
        "BASE_DIR / 'db.sqlite3'", "BASE_DIR / 'data' / 'db.sqlite3'").replace(
        "BASE_DIR / \"db.sqlite3\"", "BASE_DIR / \"data\" / \"db.sqlite3\"") + textwrap.dedent("""
        STATIC_ROOT = BASE_DIR / "staticfiles"
        ALLOWED_HOSTS = ["localhost"]
        """))
    (app_dir / "requirements.txt").write_text(DJANGO + "\n")
    out = init(app_dir, host, venv)
    assert "shopsite.wsgi:application" in out, out
    conf = yaml.safe_load((app_dir / "hosts.yaml").read_text())
    assert conf["app"]["wsgi"] == "shopsite.wsgi:application"
    assert conf["app"]["health"]["path"] == "/admin/login/"
    assert set(conf["app"]["shared_dirs"]) == {"data", "staticfiles"}
    assert conf["app"]["static"] == {"/static/": "staticfiles"}
    assert conf["app"]["hooks"]["before_switch"] == [
        "python manage.py collectstatic --noinput", "python manage.py migrate --noinput"]
    alias, port = point_at(app_dir, host)
    run(["fab", "setup", "-H", alias], app_dir, venv)
    deployed = run(["fab", "deploy", "-H", alias], app_dir, venv)
    assert "deployed" in deployed, deployed
    status, body, headers = get(port, "/admin/login/")
    assert status == 200 and "csrfmiddlewaretoken" in body, (status, body[:500])
    assert "x-wsgiship-release" in headers  # the app answered
    status, css, headers = get(port, "/static/admin/css/base.css")
    assert status == 200 and "body" in css
    assert "x-wsgiship-release" not in headers and headers.get("server", "").startswith("nginx")


NOTES = '''
import os
import sqlite3

import click
from flask import Flask


def create_app():
    app = Flask(__name__)

    def db():
        return sqlite3.connect(os.path.join(app.instance_path, "notes.db"))

    @app.get("/")
    def index():
        with db() as conn:
            rows = conn.execute("SELECT body FROM notes ORDER BY id").fetchall()
        return "{title}: " + ",".join(r[0] for r in rows)

    @app.post("/add/<body>")
    def add(body):
        with db() as conn:
            conn.execute("INSERT INTO notes (body) VALUES (?)", (body,))
        return "added"

    @app.cli.command("init-db")
    def init_db():
        with db() as conn:
            conn.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)")
        click.echo("created the notes table")

    return app
'''


def test_flask_factory_with_pyproject_and_first_deploy_init(host: th.TestHost, venv: Path,
                                                            tmp_path: Path) -> None:
    app_dir = tmp_path / "notes-app"
    (app_dir / "notes").mkdir(parents=True)
    (app_dir / "instance").mkdir()
    (app_dir / "instance" / ".gitkeep").write_text("")
    (app_dir / "notes" / "__init__.py").write_text(NOTES.replace("{title}", "notes"))
    (app_dir / "pyproject.toml").write_text(textwrap.dedent(f"""
        [project]
        name = "notes"
        version = "1.0"
        requires-python = ">=3.11"
        dependencies = ["{FLASK}"]
        """))
    out = init(app_dir, host, venv)
    assert "notes:create_app()" in out and "pyproject" in out, out
    conf = yaml.safe_load((app_dir / "hosts.yaml").read_text())
    assert conf["app"]["wsgi"] == "notes:create_app()"
    assert "instance" in conf["app"]["shared_dirs"]
    # the one-time init the generated hosts.yaml shows commented out, switched on
    alias, port = point_at(app_dir, host, hooks={"first_deploy": ["flask --app notes init-db"]})
    run(["fab", "setup", "-H", alias], app_dir, venv)
    first = run(["fab", "deploy", "-H", alias], app_dir, venv)
    assert "hook first_deploy" in first, first
    assert "pyproject.toml" in first  # the venv line names where its packages came from
    assert get(port, "/add/kept", "POST")[:2] == (200, "added")
    assert get(port, "/")[:2] == (200, "notes: kept")
    # a redeploy of new code: the hook does not run again, the data is still there
    (app_dir / "notes" / "__init__.py").write_text(NOTES.replace("{title}", "my notes"))
    second = run(["fab", "deploy", "-H", alias], app_dir, venv)
    assert "hook first_deploy" not in second, second
    assert get(port, "/")[:2] == (200, "my notes: kept")
