"""app.wsgi naming something that is not a WSGI app: the new release's uWSGI does not start,
the deploy says why in one line (the first line of its error), exits non-zero, and the release
deployed before keeps serving."""

from __future__ import annotations

FACTORY_APP = """\
from flask import Flask


def create_app():
    app = Flask(__name__)
    app.add_url_rule("/", "index", lambda: "Hello World!")
    return app
"""


def error_line(stderr: str) -> str:
    """The error's first line (after `error: t: `): what the user reads first."""
    line = next(x for x in stderr.splitlines() if x.startswith("error: "))
    return line.removeprefix("error: t: ")


def test_a_factory_without_parentheses_and_a_missing_name(project):
    p = project()
    p.must(p.deploy())
    good = p.current()
    (p.app_dir / "hello.py").write_text(FACTORY_APP)

    p.settings["wsgi"] = "hello:create_app"
    p.write()
    res = p.deploy()
    assert res.returncode != 0
    assert error_line(res.stderr) == (
        "app.wsgi: hello:create_app takes no arguments (a WSGI app takes environ and "
        "start_response): did you mean hello:create_app()?"), res.stderr
    assert "never served a request" in res.stdout
    # then the app log's last lines, under a heading
    assert res.stderr.splitlines()[1] == ("  | uWSGI did not start with the new release (no "
                                          "user request reached it); the app log:"), res.stderr
    p.assert_still_serving(good)

    p.settings["wsgi"] = "hello:application"
    p.write()
    res = p.deploy()
    assert res.returncode != 0
    assert error_line(res.stderr) == (
        "app.wsgi: module hello has no attribute application; app-like names in it: "
        "create_app()"), res.stderr
    p.assert_still_serving(good)
    # each failed release says why in its FAILED mark, as `fab releases` shows it
    marks = p.remote(f"cat {p.deploy_to}/releases/*/FAILED")
    assert "did you mean hello:create_app()?" in marks and "no attribute application" in marks

    # the name the hint gave works
    p.settings["wsgi"] = "hello:create_app()"
    p.write()
    p.must(p.deploy())
    assert p.get("/")[:2] == (200, "Hello World!") and p.current() != good


def test_an_import_failure_keeps_the_apps_traceback(project):
    p = project()
    p.must(p.deploy())
    good = p.current()
    (p.app_dir / "hello.py").write_text("import flask\nimport no_such_dependency_xyz\n")
    res = p.deploy()
    assert res.returncode != 0
    assert error_line(res.stderr) == (
        "app.wsgi: importing hello failed: ModuleNotFoundError: No module named "
        "'no_such_dependency_xyz' (is it in your requirements?) (its traceback is in the app "
        "log)"), res.stderr
    # the app log lines shown carry the app's own traceback
    detail = res.stderr.split("\n", 1)[1]
    assert "Traceback (most recent call last)" in detail and 'hello.py", line 2' in detail
    p.assert_still_serving(good)
