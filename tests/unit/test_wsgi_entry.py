"""The rendered wsgi.py loading the app app.wsgi names: a mistake stops the load with one
`wsgiship: release R: app.wsgi: ...` line (the deploy shows it first), an import failure keeps
its traceback; any WSGI callable (a function, an object with __call__, a functools.partial, a
factory's result) loads. Each case runs the rendered file in a fresh Python, as uWSGI would."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from wsgiship import render

RELEASE = "20250101T000000Z-abc1234"
MARK = f"wsgiship: release {RELEASE}: app.wsgi: "

PKG = textwrap.dedent("""\
    import functools

    def create_app():
        def app(environ, start_response):
            start_response("200 OK", [])
            return [b"from the factory"]
        return app

    def make_config(name):
        return name

    def needs_config(config_name):
        return None

    def returns_none():
        return None

    def returns_thunk():
        return lambda: None

    def explodes():
        raise ValueError("no database configured")

    def application(environ, start_response):
        start_response("200 OK", [])
        return [b"plain function"]

    class Handler:
        def __call__(self, environ, start_response):
            start_response("200 OK", [])
            return [b"object with __call__"]

    handler = Handler()

    def _takes_extra(greeting, environ, start_response):
        start_response("200 OK", [])
        return [greeting.encode()]

    partial_app = functools.partial(_takes_extra, "partial")
    VERSION = "1.0"
""")


def load(tmp_path: Path, make_app, wsgi: str, files: dict[str, str] | None = None
         ) -> subprocess.CompletedProcess[str]:
    """Render wsgi.py for `wsgi` into a release holding the package `pkg` (PKG, plus `files`),
    load it and call the app once: prints its body, or fails as uWSGI's load would."""
    release = tmp_path / "releases" / RELEASE
    (release / "pkg").mkdir(parents=True)
    for name, text in {"pkg/__init__.py": PKG, **(files or {})}.items():
        (release / name).parent.mkdir(parents=True, exist_ok=True)
        (release / name).write_text(text)
    wsgi_py = release / ".wsgiship" / "wsgi.py"
    wsgi_py.parent.mkdir()
    wsgi_py.write_text(render.render(make_app(wsgi=wsgi), RELEASE, "u", "r")[".wsgiship/wsgi.py"])
    driver = ("import runpy, sys\nns = runpy.run_path(sys.argv[1])\n"
              "print(b''.join(ns['application']({}, lambda s, h, e=None: None)).decode())\n")
    return subprocess.run([sys.executable, "-c", driver, str(wsgi_py)], capture_output=True,
                          text=True, cwd=tmp_path, timeout=30)


def reason(res: subprocess.CompletedProcess[str]) -> str:
    """The one line the load failed with (after the marker), and that it failed."""
    assert res.returncode != 0, res.stdout
    lines = [line for line in res.stderr.splitlines() if line.startswith(MARK)]
    assert len(lines) == 1, res.stderr
    return lines[0].removeprefix(MARK)


@pytest.mark.parametrize(("wsgi", "body"), [
    ("pkg:application", "plain function"),
    ("pkg:handler", "object with __call__"),
    ("pkg:partial_app", "partial"),
    ("pkg:create_app()", "from the factory"),
])
def test_a_wsgi_callable_loads(tmp_path: Path, make_app, wsgi: str, body: str) -> None:
    res = load(tmp_path, make_app, wsgi)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == body
    assert "wsgiship:" not in res.stderr


def test_a_factory_named_without_parentheses(tmp_path: Path, make_app) -> None:
    res = load(tmp_path, make_app, "pkg:create_app")
    assert reason(res) == ("pkg:create_app takes no arguments (a WSGI app takes environ and "
                           "start_response): did you mean pkg:create_app()?")
    # the reason is said once: no traceback of wsgi.py's own frames
    assert "Traceback" not in res.stderr
    assert "RuntimeError: the app did not load" in res.stderr


@pytest.mark.parametrize(("wsgi", "said"), [
    ("pkg:make_config", "pkg:make_config takes (name) (a WSGI app takes environ and "
                        "start_response)"),
    ("pkg:VERSION", "pkg:VERSION is a str, not callable (a WSGI app takes environ and "
                    "start_response)"),
    ("pkg:returns_none()", "pkg:returns_none() returned None, not a WSGI app (a WSGI app takes "
                           "environ and start_response): make returns_none return the app"),
    ("pkg:returns_thunk()", "pkg:returns_thunk() returned the function <lambda>, which takes no "
                            "arguments, not a WSGI app (a WSGI app takes environ and "
                            "start_response): make returns_thunk return the app"),
    ("pkg:application()", "pkg:application(): application is a WSGI app already (it takes "
                          "environ and start_response), not a factory: did you mean "
                          "pkg:application (without the ())?"),
    ("pkg:needs_config()", "pkg:needs_config(): needs_config takes (config_name), but a factory "
                           "is called without arguments: create the app in a module of yours "
                           "(application = needs_config(...)) and name that"),
    ("pkg:VERSION()", "pkg:VERSION(): pkg.VERSION is a str, not a factory to call"),
])
def test_what_is_not_a_wsgi_app_is_named(tmp_path: Path, make_app, wsgi: str, said: str) -> None:
    assert reason(load(tmp_path, make_app, wsgi)) == said


def test_a_missing_attribute_lists_the_app_like_names(tmp_path: Path, make_app) -> None:
    res = load(tmp_path, make_app, "pkg:app")
    assert reason(res) == ("module pkg has no attribute app; app-like names in it: create_app(),"
                           " application, handler, partial_app")


def test_a_missing_attribute_in_a_module_with_no_app(tmp_path: Path, make_app) -> None:
    res = load(tmp_path, make_app, "pkg.empty:app", {"pkg/empty.py": "X = 1\n"})
    assert reason(res) == ("module pkg.empty has no attribute app; nothing in it looks like an "
                           "app (a WSGI callable, or a create_app() factory)")


def test_a_submodule_named_as_the_app(tmp_path: Path, make_app) -> None:
    # Django's layout: pkg/wsgi.py holds `application`; app.wsgi says pkg:wsgi
    django = "def application(environ, start_response):\n    return []\n"
    res = load(tmp_path, make_app, "pkg:wsgi", {"pkg/wsgi.py": django})
    assert reason(res) == "pkg:wsgi: pkg.wsgi is a module, not a WSGI app: did you mean " \
                          "pkg.wsgi:application?"


def test_an_import_failure_keeps_its_traceback(tmp_path: Path, make_app) -> None:
    res = load(tmp_path, make_app, "pkg.broken:app",
               {"pkg/broken.py": "import os\nraise RuntimeError('boom at import')\n"})
    assert reason(res) == ("importing pkg.broken failed: RuntimeError: boom at import (its "
                           "traceback is in the app log)")
    head = res.stderr.split(MARK)[0]
    assert "Traceback (most recent call last)" in head and "broken.py" in head
    assert "wsgi.py" not in head and "importlib" not in head  # the app's frames only


def test_a_missing_dependency_and_a_missing_module(tmp_path: Path, make_app) -> None:
    res = load(tmp_path, make_app, "pkg.deps:app", {"pkg/deps.py": "import no_such_dep_xyz\n"})
    assert reason(res) == ("importing pkg.deps failed: ModuleNotFoundError: No module named "
                           "'no_such_dep_xyz' (is it in your requirements?) (its traceback is "
                           "in the app log)")
    res = load(tmp_path / "again", make_app, "nosuchmod:app")
    root = tmp_path / "again" / "releases" / RELEASE
    assert reason(res) == (f"nosuchmod:app: no module nosuchmod in the release ({root}): check "
                           f"app.wsgi and app.source in hosts.yaml")


def test_a_factory_that_raises(tmp_path: Path, make_app) -> None:
    res = load(tmp_path, make_app, "pkg:explodes()")
    assert reason(res) == ("pkg:explodes() raised ValueError: no database configured (its "
                           "traceback is in the app log)")
    assert "Traceback (most recent call last)" in res.stderr.split(MARK)[0]
