"""The `wsgiship` console script, `python -m wsgiship` and `fab init`, run as a user runs them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from init_apps import django_project, flask_factory

from wsgiship import __version__, config

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent  # the venv's bin: wsgiship and fab are installed there


def run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != config.HOSTS_ENV}
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, env=env, timeout=120)


def test_wsgiship_init_in_the_apps_directory(tmp_path: Path) -> None:
    root = django_project(tmp_path / "shop")
    res = run([str(BIN / "wsgiship"), "init", "--host", "deploy@shop1.example.com"], cwd=root)
    assert res.returncode == 0, res.stderr
    out = res.stdout.splitlines()
    assert out[0] == f"wsgiship init: Django app in {root.resolve()}"
    assert "wsgi: shop.wsgi:application (from manage.py: DJANGO_SETTINGS_MODULE=shop.settings)" \
        in out
    assert out[-3:] == ["next:", "  fab setup -H shop1", "  fab deploy -H shop1"]
    assert config.load(root / "hosts.yaml").host("shop1").host == "shop1.example.com"
    # again: both files are there now, left as they are
    again = run([str(BIN / "wsgiship"), "init"], cwd=root)
    assert again.returncode == 0
    assert "fabfile.py exists, left as is" in again.stdout
    assert "hosts.yaml exists, left as is" in again.stdout


def test_python_m_wsgiship_and_version(tmp_path: Path) -> None:
    root = flask_factory(tmp_path / "blog")
    res = run([sys.executable, "-m", "wsgiship", "init", str(root), "--name", "blog2"],
              cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert f"next, in {root.resolve()}:" in res.stdout
    assert config.load(root / "hosts.yaml").host("web1").app.name == "blog2"
    version = run([str(BIN / "wsgiship"), "--version"], cwd=tmp_path)
    assert version.returncode == 0 and version.stdout.strip() == f"wsgiship {__version__}"


def test_errors_are_one_line_and_no_traceback(tmp_path: Path) -> None:
    res = run([str(BIN / "wsgiship"), "init", str(tmp_path / "missing")], cwd=tmp_path)
    assert res.returncode == 2 and res.stdout == ""
    assert res.stderr == f"error: {tmp_path / 'missing'}: no such directory; give your app's " \
                         f"directory (wsgiship init PATH) or run wsgiship init inside it\n"
    (tmp_path / "lib.py").write_text("X = 1\n")
    res = run([str(BIN / "wsgiship"), "init"], cwd=tmp_path)
    assert res.returncode == 1 and "Traceback" not in res.stderr
    assert res.stderr.startswith(f"error: no WSGI callable found in {tmp_path.resolve()}")
    assert (tmp_path / "hosts.yaml").exists()  # written, with CHANGE_ME to edit


def test_fab_init_from_the_kit(tmp_path: Path) -> None:
    root = flask_factory(tmp_path / "blog")
    res = run([str(BIN / "fab"), "init", "--path", str(root), "--host", "web7.example.com",
               "--server-name", "blog.example.com"], cwd=ROOT)
    assert res.returncode == 0, res.stderr
    assert "wsgi: blog:create_app() (Flask: a create_app() factory in blog/__init__.py)" \
        in res.stdout
    host = config.load(root / "hosts.yaml").host("web7")
    assert (host.host, host.app.server_name) == ("web7.example.com", "blog.example.com")
    bad = run([str(BIN / "fab"), "init", "--path", str(tmp_path / "none")], cwd=ROOT)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert "no such directory" in bad.stderr
