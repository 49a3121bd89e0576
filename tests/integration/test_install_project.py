"""install: project on the real test host: a src/ layout app (src/shopapp, a pyproject.toml
with dependencies and a build backend) is installed into each release, never into the venv
the releases share; uWSGI, hooks and `fab exec` import it from the release; a rollback serves
the previous release's own installed copy. With uv and a wheelhouse, nothing is fetched on
the server."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from conftest import Project, make_project

PYPROJECT = """\
[build-system]
requires = ["setuptools>=61"]
build-backend = "setuptools.build_meta"

[project]
name = "shopapp"
version = "{version}"
dependencies = ["flask==3.1.3"]

[project.scripts]
shopapp-hello = "shopapp:hello"
"""
APP = """\
from importlib.metadata import version

from flask import Flask

app = Flask(__name__)


@app.route("/")
def index() -> str:
    # its own metadata: only an installed project has it
    return "shop " + version("shopapp") + ": {text}"


def hello() -> None:
    print("hello from shopapp " + version("shopapp"))
"""
HOOK = "python -c 'import shopapp' && shopapp-hello"


def shop(p: Project, version: str, text: str) -> None:
    """The app as a src/ layout project (nothing importable at the top of the release)."""
    for name in ("hello.py", "requirements.txt"):
        (p.app_dir / name).unlink(missing_ok=True)
    (p.app_dir / "pyproject.toml").write_text(PYPROJECT.format(version=version))
    (p.app_dir / "src" / "shopapp").mkdir(parents=True, exist_ok=True)
    (p.app_dir / "src" / "shopapp" / "__init__.py").write_text(APP.replace("{text}", text))


def imported_from(p: Project) -> str:
    code = "import shopapp; print(shopapp.__file__)"
    return p.must(p.fab("exec", "-H", "t", "--", "python", "-c", code)).strip()


def test_a_src_layout_app_is_installed_per_release_and_rolls_back(project) -> None:
    p = project(wsgi="shopapp:app", install="project", hooks={"before_switch": [HOOK]})
    shop(p, "1.0", "first")
    out = p.must(p.deploy())
    assert re.search(r"build\s+[\d.]+s\s+shopapp-1\.0-py3-none-any\.whl \(\d+ KiB, "
                     r"(pip wheel|uv build) here\)", out), out
    assert re.search(r"venv\s+[\d.]+s\s+created venvs/\w+ with pip: \d+ packages from "
                     r"pyproject\.toml \[project\]\.dependencies \+ pyuwsgi", out), out
    assert re.search(r"install\s+[\d.]+s\s+shopapp 1\.0 into the release's \.wsgiship/site "
                     r"\(pip --no-deps: the venv stays shared\), 1 script", out), out
    assert p.get("/")[:2] == (200, "shop 1.0: first")
    first = p.current()
    site = f"{p.deploy_to}/releases/{first}/.wsgiship/site"
    assert imported_from(p) == f"{site}/shopapp/__init__.py"
    assert p.must(p.fab("exec", "-H", "t", "--", "shopapp-hello")).strip() == (
        "hello from shopapp 1.0")
    # the shared venv has the dependencies, never the app
    venv_site = p.remote(f"ls {p.deploy_to}/current/.venv/lib/python3*/site-packages").lower()
    assert "flask" in venv_site and "shopapp" not in venv_site
    # the app's user reads its installed copy but cannot change it
    app_user = f"wsgiship-{p.name}"
    assert p.host.run(f"runuser -u {app_user} -- touch {site}/shopapp/x",
                      check=False).returncode != 0

    shop(p, "1.1", "second")
    out = p.must(p.deploy())
    assert re.search(r"venv\s+[\d.]+s\s+reused venvs/\w+ \(pip: \d+ packages from "
                     r"pyproject\.toml \[project\]\.dependencies \+ pyuwsgi\)", out), out
    assert p.get("/")[:2] == (200, "shop 1.1: second")
    second = p.current()
    assert imported_from(p) == f"{p.deploy_to}/releases/{second}/.wsgiship/site/shopapp/__init__.py"

    # back to the first release: its own installed copy, nothing rebuilt
    out = p.must(p.fab("rollback", "-H", "t"))
    assert "build" not in out and "install " not in out
    assert p.get("/")[:2] == (200, "shop 1.0: first")
    assert p.current() == first
    assert imported_from(p) == f"{site}/shopapp/__init__.py"


@pytest.fixture
def uv_and_no_index(host) -> Iterator[None]:
    """uv from fab setup (removed after: the other tests of this host deploy with pip), then
    pip and uv on the server pointed at an index that refuses every connection."""
    try:
        yield
    finally:
        host.run("rm -rf /opt/wsgiship; if [ -f /etc/pip.conf.deps ]; then"
                 " mv /etc/pip.conf.deps /etc/pip.conf; fi; rm -rf /etc/uv")


def test_with_uv_and_a_wheelhouse_the_server_fetches_nothing(host, tmp_path,
                                                              uv_and_no_index) -> None:
    p = make_project(host, tmp_path, wsgi="shopapp:app", install="project", installer="uv",
                     wheelhouse=True)
    shop(p, "2.0", "offline")
    p.must(p.fab("setup", "-H", "t"))
    host.run("cp /etc/pip.conf /etc/pip.conf.deps && printf 'index-url = http://127.0.0.1:9/simple"
             "\\n' >> /etc/pip.conf && mkdir -p /etc/uv"
             " && echo 'index-url = \"http://127.0.0.1:9/simple\"' > /etc/uv/uv.toml")
    out = p.must(p.deploy())
    assert re.search(r"venv\s+[\d.]+s\s+created venvs/\w+ with uv: \d+ packages from "
                     r"pyproject\.toml \[project\]\.dependencies \+ pyuwsgi", out), out
    assert re.search(r"install\s+[\d.]+s\s+shopapp 2\.0 into the release's \.wsgiship/site "
                     r"\(uv --no-deps: the venv stays shared\), 1 script", out), out
    assert p.get("/")[:2] == (200, "shop 2.0: offline")
    assert imported_from(p).endswith(f"/releases/{p.current()}/.wsgiship/site/shopapp/__init__.py")
