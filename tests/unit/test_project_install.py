"""install: project on the server side: commands.project.install run for real (pip: this
machine's own venv as the release's .venv, a wheel made here, --no-index; uv: a fake uv that
records its argv), the rendered wsgi.py putting the release's site first on sys.path, and
appenv.run_in (fab exec, hooks) putting it on PYTHONPATH and its scripts on PATH."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from fakes import NAME, add_release, paths

from wsgiship import render
from wsgiship.commands import project
from wsgiship.commands.appenv import run_in

WHEEL = "shopapp-1.0-py3-none-any.whl"
FILES = {
    "shopapp/__init__.py": "def app(environ, start_response):\n    pass\n\n\n"
                           "def hello():\n    print('hello from shopapp')\n",
    "shopapp-1.0.dist-info/METADATA": "Metadata-Version: 2.1\nName: shopapp\nVersion: 1.0\n",
    "shopapp-1.0.dist-info/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\n"
                                   "Tag: py3-none-any\n",
    "shopapp-1.0.dist-info/entry_points.txt": "[console_scripts]\nshopapp-hello = shopapp:hello\n",
}


def make_wheel(path: Path) -> None:
    """A real pure-Python wheel of `shopapp` with one console script."""
    record = []
    with zipfile.ZipFile(path, "w") as whl:
        for name, text in FILES.items():
            whl.writestr(name, text)
            digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=")
            record.append(f"{name},sha256={digest.decode()},{len(text.encode())}")
        whl.writestr("shopapp-1.0.dist-info/RECORD",
                     "\n".join([*record, "shopapp-1.0.dist-info/RECORD,,"]) + "\n")


@pytest.fixture
def release(deploy: Path) -> Path:
    """A release whose .venv is this machine's venv (pip in it), with the app's wheel."""
    r = add_release(deploy, NAME, venv_key=None)
    (r / ".venv").symlink_to(sys.prefix)
    (r / project.WHEEL_DIR).mkdir(parents=True)
    make_wheel(r / project.WHEEL_DIR / WHEEL)
    return r


def test_pip_installs_the_app_into_the_release_alone(deploy: Path, release: Path, sh) -> None:
    before = sorted(os.listdir(next(Path(sys.prefix, "lib").glob("python3*/site-packages"))))
    res = sh(project.install(paths(deploy), NAME, WHEEL, "pip"))
    assert res.returncode == 0, res.stderr
    assert res.stdout == "installed=shopapp-1.0\nscripts=1\n"
    site = release / ".wsgiship" / "site"
    assert (site / "shopapp" / "__init__.py").is_file()
    assert list((site / "shopapp" / "__pycache__").glob("__init__.cpython-*.pyc"))  # compiled
    assert (site / "bin" / "shopapp-hello").read_text().startswith(f"#!{release}/.venv/bin/python")
    # the venv is untouched: releases share it
    assert sorted(os.listdir(next(Path(sys.prefix, "lib").glob("python3*/site-packages")))) == before
    # the app's user reads it (group), nobody else (umask 027); the installer's output is kept
    assert (site / "shopapp" / "__init__.py").stat().st_mode & 0o777 == 0o640
    assert (release / ".wsgiship" / "install.log").is_file()


def test_a_failed_install_shows_its_output_and_leaves_no_site(deploy: Path, release: Path,
                                                              sh) -> None:
    (release / project.WHEEL_DIR / WHEEL).write_bytes(b"not a zip")
    res = sh(project.install(paths(deploy), NAME, WHEEL, "pip"))
    assert res.returncode == 1
    assert "shopapp-1.0-py3-none-any.whl" in res.stderr
    assert not (release / ".wsgiship" / "site").exists()


FAKE_UV = """#!/bin/bash
printf '%s\\n' "$*" > "$UV_ARGS"
env | grep -E '^UV_(COMPILE_BYTECODE|PYTHON_DOWNLOADS)=' | sort >> "$UV_ARGS"
t=""; while [ $# -gt 0 ]; do [ "$1" = --target ] && t=$2; shift; done
mkdir -p "$t/shopapp-1.0.dist-info" "$t/bin" && : > "$t/.lock" && : > "$t/bin/shopapp-hello"
"""


@pytest.mark.usefixtures("tools_here")
def test_uv_installs_it_without_deps_index_or_cache(deploy: Path, release: Path, sh,
                                                     tmp_path: Path) -> None:
    p = paths(deploy)
    Path(p.uv).parent.mkdir(parents=True)
    Path(p.uv).write_text(FAKE_UV)
    Path(p.uv).chmod(0o755)
    res = sh(project.install(p, NAME, WHEEL, "uv"), env={"UV_ARGS": str(tmp_path / "args")})
    assert res.returncode == 0, res.stderr
    assert res.stdout == "installed=shopapp-1.0\nscripts=1\n"
    args, *env = (tmp_path / "args").read_text().splitlines()
    assert args == (f"pip install --python {release}/.venv/bin/python --no-deps --no-index "
                    f"--no-cache --target {release}/.wsgiship/site "
                    f"{release}/.wsgiship/dist/{WHEEL}")
    assert env == ["UV_COMPILE_BYTECODE=1", "UV_PYTHON_DOWNLOADS=never"]
    assert not (release / ".wsgiship" / "site" / ".lock").exists()


def test_a_wheel_name_is_one_shell_word(deploy: Path) -> None:
    body = project.install(paths(deploy), NAME, "x'; touch /tmp/pwned #.whl", "pip")
    assert "'\"'\"'; touch /tmp/pwned #.whl'" in body


# --- the app's import path: uWSGI (wsgi.py), fab exec and hooks (run_in) ---


def site_release(tmp_path: Path, app) -> Path:
    """A release with the app only in .wsgiship/site (a src/ layout), wsgi.py rendered."""
    r = tmp_path / "releases" / NAME
    (r / "src" / "shopapp").mkdir(parents=True)
    site = r / ".wsgiship" / "site"
    (site / "shopapp").mkdir(parents=True)
    (site / "shopapp" / "__init__.py").write_text(
        "import os\n\ndef app(environ, start_response):\n"
        "    start_response('200 OK', [])\n    return [__file__.encode()]\n")
    for target, text in render.render(app, NAME, "deploy", "r").items():
        (r / target).write_text(text)
    return r


def test_wsgi_py_puts_the_releases_site_first(tmp_path: Path, make_app) -> None:
    r = site_release(tmp_path, make_app(wsgi="shopapp:app", install="project"))
    # a flat copy in the release root too: the installed one wins
    (r / "shopapp.py").write_text("raise SystemExit('the uninstalled copy was imported')\n")
    driver = ("import runpy, sys; m = runpy.run_path(sys.argv[1]);"
              " print(b''.join(m['application']({}, lambda s, h, e=None: None)).decode())")
    res = subprocess.run([sys.executable, "-c", driver, str(r / ".wsgiship" / "wsgi.py")],
                         capture_output=True, text=True, timeout=30)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == str(r / ".wsgiship" / "site" / "shopapp" / "__init__.py")


def test_wsgi_py_leaves_the_path_alone_by_default(make_app) -> None:
    text = render.render(make_app(), NAME, "deploy", "r")[".wsgiship/wsgi.py"]
    assert "site" not in text
    assert "sys.path.insert(0, os.path.join(ROOT, \".wsgiship\", \"site\"))" in render.render(
        make_app(install="project"), NAME, "deploy", "r")[".wsgiship/wsgi.py"]


def test_run_in_puts_the_site_on_pythonpath_and_its_scripts_on_path(tmp_path: Path, sh) -> None:
    venv = tmp_path / "venvs" / "k1"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").symlink_to(sys.executable)
    r = tmp_path / "releases" / "r1"
    (r / ".wsgiship" / "site" / "bin").mkdir(parents=True)
    (r / ".venv").symlink_to("../../venvs/k1")
    show = ["python", "-c", "import json, os; print(json.dumps([os.environ['PYTHONPATH'], "
            "os.environ['PATH'].split(':')[:2]]))"]
    res = sh(run_in(str(r), show), env={"PYTHONPATH": "/elsewhere"})
    assert res.returncode == 0, res.stderr
    site = str(r.resolve() / ".wsgiship" / "site")
    assert json.loads(res.stdout) == [f"{site}:/elsewhere", [str(venv.resolve() / "bin"),
                                                             f"{site}/bin"]]
    # a release without one (install: requirements) gets neither
    (r / ".wsgiship" / "site" / "bin").rmdir()
    (r / ".wsgiship" / "site").rmdir()
    res = sh(run_in(str(r), ["python", "-c", "import os; print(os.environ.get('PYTHONPATH'))"]),
             env={"PYTHONPATH": ""})
    assert res.stdout.strip() == ""
