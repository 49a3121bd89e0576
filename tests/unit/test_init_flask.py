"""wsgiship init on Flask apps and plain WSGI modules: the entry point, static and instance
folders, the first_deploy example, requirements from pyproject.toml, a src/ layout."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from init_apps import flask_factory, flask_module, initialized, plain_wsgi, src_layout, write


def test_a_factory_package_with_pyproject_dependencies(tmp_path: Path) -> None:
    root = flask_factory(tmp_path / "blog-site", package="blog")
    report, text, data, inv = initialized(root)
    app = inv.host("web1").app
    assert app.name == "blog"  # pyproject's project name
    assert app.wsgi == "blog:create_app()" and app.wsgi_is_factory
    assert app.static == {"/static/": "blog/static"}
    # Flask's instance folder of a package that is not installed: beside the package
    assert app.shared_dirs == ("instance",)
    assert app.health.path == "/"
    lines = report.lines()
    assert "wsgi: blog:create_app() (Flask: a create_app() factory in blog/__init__.py)" in lines
    assert "requirements: pyproject.toml [project].dependencies (no requirements.txt; " \
           "1 dependency, installed into the server's venv)" in lines
    assert any(line.startswith("python: >=3.11 (pyproject.toml requires-python; a comment only")
               for line in lines)
    # first_deploy: written commented out, with what it does
    assert "hooks" not in data["app"]
    assert "# first_deploy runs once, when the host has no release yet" in text
    assert '#   first_deploy: ["flask --app blog init-db"]' in text
    assert "# Python >=3.11 (pyproject.toml requires-python)" in text


def test_the_first_deploy_example_is_the_hook_once_uncommented(tmp_path: Path) -> None:
    text = initialized(flask_factory(tmp_path / "blog"))[1]
    live = text.replace("  # hooks:\n", "  hooks:\n").replace(
        '  #   first_deploy: ["flask --app blog init-db"]', '    first_deploy: ["flask --app blog init-db"]')
    assert yaml.safe_load(live)["app"]["hooks"] == {"first_deploy": ["flask --app blog init-db"]}


def test_an_app_module(tmp_path: Path) -> None:
    root = flask_module(tmp_path / "hello")
    report, _, _, inv = initialized(root)
    app = inv.host("web1").app
    assert (app.wsgi, app.static, app.shared_dirs) == ("app:app", {}, ())
    lines = report.lines()
    assert "wsgi: app:app (Flask: app = Flask(...) in app.py)" in lines
    assert "static: none (no static folder: Flask serves its static files itself)" in lines
    assert "health.path: / (a route for / in app.py)" in lines


def test_an_app_module_with_its_static_and_instance_folders(tmp_path: Path) -> None:
    root = flask_module(tmp_path / "hello")
    write(root, {"static/site.css": "", "instance/config.py": "SECRET = 1\n"})
    report, _, _, inv = initialized(root)
    app = inv.host("web1").app
    assert app.static == {"/static/": "static"} and app.shared_dirs == ("instance",)
    assert "shared_dirs: instance (Flask's instance folder (instance/ exists): its data survives " \
           "deploys)" in report.lines()


def test_static_folder_and_url_from_the_flask_call(tmp_path: Path) -> None:
    root = write(tmp_path / "shop", {
        "shop/__init__.py": "from flask import Flask\n\n"
                            "app = Flask(__name__, static_folder='assets', static_url_path='/s')\n",
        "shop/assets/app.js": "",
    })
    _, _, _, inv = initialized(root)
    assert inv.host("web1").app.static == {"/s/": "shop/assets"}
    assert inv.host("web1").app.wsgi == "shop:app"


def test_a_src_layout(tmp_path: Path) -> None:
    root = src_layout(tmp_path / "acme")
    report, text, data, inv = initialized(root)
    app = inv.host("web1").app
    assert app.name == "acme-site" and app.wsgi == "acme.web:app"
    # the app is not pip-installed: src/ goes on uWSGI's and the hooks' import paths
    assert dict(app.uwsgi) == {"pythonpath": "src"} and dict(app.env) == {"PYTHONPATH": "src"}
    assert "  # install: project\n" in text and "install" not in data["app"]
    assert "python: 3.12 (.python-version; a comment only: the server's python3 makes the venv)" \
        in report.lines()


def test_a_plain_wsgi_module(tmp_path: Path) -> None:
    root = plain_wsgi(tmp_path / "plain")
    report, text, _, inv = initialized(root)
    app = inv.host("web1").app
    assert app.wsgi == "hello:application" and app.health.path == "/"
    assert "wsgi: hello:application (a module-level application in hello.py)" in report.lines()
    assert "# a 404 on / fails the health check: set health.path" in text


@pytest.mark.parametrize("code", [
    "app = object()\n",
    "from .core import app\n",
    "def application(environ, start_response):\n    pass\n",
])
def test_any_module_level_app_or_application(tmp_path: Path, code: str) -> None:
    root = write(tmp_path / "x", {"svc/__init__.py": "", "svc/wsgi.py": code})
    _, _, _, inv = initialized(root)
    assert inv.host("web1").app.wsgi.startswith("svc.wsgi:")


def test_an_asgi_app_is_not_taken_for_a_wsgi_one(tmp_path: Path) -> None:
    root = write(tmp_path / "api", {"main.py": "from fastapi import FastAPI\n\napp = FastAPI()\n"})
    report, _, _, inv = initialized(root)
    assert inv.host("web1").app.wsgi == "CHANGE_ME:app"
    assert "hint: main:app = FastAPI(...): an ASGI app; uWSGI here serves WSGI apps only" \
        in report.lines()


def test_flask_is_preferred_over_a_generic_callable(tmp_path: Path) -> None:
    root = flask_factory(tmp_path / "blog")
    write(root, {"wsgi.py": "from blog import create_app\n\napp = create_app()\n"})
    _, _, _, inv = initialized(root)
    assert inv.host("web1").app.wsgi == "blog:create_app()"


def test_a_factory_that_needs_arguments_is_named_in_a_hint(tmp_path: Path) -> None:
    root = write(tmp_path / "svc", {
        "svc/__init__.py": "from flask import Flask\n\n\ndef create_app(config):\n"
                           "    return Flask(__name__)\n",
    })
    report, _, _, inv = initialized(root)
    assert inv.host("web1").app.wsgi == "svc:create_app()"
    assert any(line.startswith("hint: svc.create_app() needs arguments") for line in report.lines())
