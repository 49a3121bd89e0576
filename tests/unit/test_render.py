"""wsgiship.render: the release's configs from the templates, and the user's overrides (the
service manager's config is in test_render_services.py)."""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from fakes import NAME

from wsgiship import config, render
from wsgiship.errors import ConfigError
from wsgiship.layout import SLOTS, paths_for

ROOT = Path(__file__).resolve().parents[2]
FILES = {".wsgiship/wsgi.py", ".wsgiship/uwsgi.ini", ".wsgiship/nginx.conf", ".wsgiship/service",
         ".wsgiship/env"}


def ini_pairs(text: str) -> list[tuple[str, str]]:
    """uwsgi.ini as (key, value) pairs, in order, repeats kept (uWSGI allows them)."""
    pairs = []
    for line in text.splitlines():
        if line.startswith(";") or line.startswith("[") or not line.strip():
            continue
        key, sep, value = line.partition(" = ")
        assert sep, f"not a key = value line: {line!r}"
        pairs.append((key, value))
    return pairs


# --- the example app ---


@pytest.fixture
def example() -> config.App:
    inv = config.load(ROOT / "hosts.yaml")
    return inv.host(next(iter(inv.hosts), "web9.example.com")).app


def test_example_app_renders_the_five_files(example: config.App) -> None:
    out = render.render(example, NAME, "deploy", "sha256:abc")
    assert set(out) == FILES
    for name in (".wsgiship/wsgi.py", ".wsgiship/uwsgi.ini", ".wsgiship/nginx.conf"):
        assert NAME in out[name], f"{name} names its release"
    assert out[".wsgiship/env"] == "".join(f"{k}={v}\n" for k, v in example.env.items())
    compile(out[".wsgiship/wsgi.py"], "wsgi.py", "exec")


def test_render_is_deterministic(example: config.App) -> None:
    assert render.render(example, NAME, "deploy", "r") == render.render(example, NAME, "deploy", "r")


# --- uwsgi.ini ---


def test_uwsgi_ini(make_app) -> None:
    app = make_app(processes=4, threads=8, deploy_to="/srv/shop", name="shop")
    pairs = ini_pairs(render.render(app, NAME, "deploy", "r")[".wsgiship/uwsgi.ini"])
    d = dict(pairs)
    # each slot's own socket and fifo (WSGISHIP_SLOT is the service's), in shared/run (setgid
    # www-data: nginx's group) rather than /run, for either manager
    assert d["socket"] == "/srv/shop/shared/run/uwsgi-$(WSGISHIP_SLOT).sock"
    assert d["master-fifo"] == "/srv/shop/shared/run/uwsgi-$(WSGISHIP_SLOT).fifo"
    p = paths_for(app)
    for slot in SLOTS:  # as uWSGI expands them
        assert d["socket"].replace("$(WSGISHIP_SLOT)", slot) == p.slot_socket(slot)
        assert d["master-fifo"].replace("$(WSGISHIP_SLOT)", slot) == p.slot_fifo(slot)
    assert d["chmod-socket"] == "660" and d["vacuum"] == "true"
    assert d["processes"] == "4"
    assert d["threads"] == "8" and d["enable-threads"] == "true"
    # the release itself, not `current`: an instance runs one release for its whole life
    assert d["home"] == f"/srv/shop/releases/{NAME}/.venv"
    assert d["chdir"] == f"/srv/shop/releases/{NAME}"
    assert d["wsgi-file"] == f"/srv/shop/releases/{NAME}/.wsgiship/wsgi.py"
    # a stop by the manager (SIGTERM) lets every worker finish its request
    assert d["hook-master-start"] == "unix_signal:15 gracefully_kill_them_all"
    assert d["worker-reload-mercy"] == "30"
    # nothing of a reload in place
    assert not {"die-on-term", "lazy-apps", "binary-path", "hook-post-fork"} & set(d)
    assert d["logto"] == "/srv/shop/shared/log/uwsgi.log"
    assert d["master"] == "true" and d["need-app"] == "true"
    assert len(pairs) == len(d), "no option is repeated unless the user asks"


def test_uwsgi_log_is_bounded_to_one_backup(make_app) -> None:
    # at 20 MB the log is renamed to one fixed name, replacing the previous backup (without
    # log-backupname uWSGI would keep a new timestamped file at each rotation)
    pairs = ini_pairs(render.render(make_app(deploy_to="/srv/shop"), NAME, "deploy", "r")
                      [".wsgiship/uwsgi.ini"])
    keys = [k for k, _ in pairs]
    d = dict(pairs)
    assert d["log-maxsize"] == str(20 * 1024 * 1024)
    assert d["log-backupname"] == d["logto"] + ".1" == "/srv/shop/shared/log/uwsgi.log.1"
    assert keys.index("log-backupname") == keys.index("log-maxsize") + 1


def test_uwsgi_ini_single_thread_has_no_threads_option(make_app) -> None:
    d = dict(ini_pairs(render.render(make_app(threads=1), NAME, "u", "r")[".wsgiship/uwsgi.ini"]))
    assert "threads" not in d and "enable-threads" not in d


def test_uwsgi_extra_options(make_app) -> None:
    app = make_app(uwsgi={"harakiri": 30, "env": ["A=1", "B=2"], "thunder-lock": True,
                          "memory-report": False, "buffer-size": 32768})
    pairs = ini_pairs(render.render(app, NAME, "deploy", "r")[".wsgiship/uwsgi.ini"])
    extra = pairs[-6:]
    assert extra == [("harakiri", "30"), ("env", "A=1"), ("env", "B=2"), ("thunder-lock", "true"),
                     ("memory-report", "false"), ("buffer-size", "32768")]


def test_uwsgi_list_of_booleans_and_numbers(make_app) -> None:
    app = make_app(uwsgi={"touch-reload": ["/tmp/a", 1, True]})
    pairs = ini_pairs(render.render(app, NAME, "deploy", "r")[".wsgiship/uwsgi.ini"])
    assert pairs[-3:] == [("touch-reload", "/tmp/a"), ("touch-reload", "1"),
                          ("touch-reload", "true")]


# --- nginx.conf ---


def test_nginx_conf(make_app) -> None:
    app = make_app(name="shop", http_port=8080, server_name="shop.example.com www.example.com",
                   static={"/static": "static", "/media/": "var/media"}, deploy_to="/srv/shop")
    text = render.render(app, NAME, "deploy", "r")[".wsgiship/nginx.conf"]
    assert re.search(r"^\s*listen 8080;$", text, re.M)
    assert re.search(r"^\s*server_name shop\.example\.com www\.example\.com;$", text, re.M)
    blocks = dict(re.findall(r"location (\S+) \{\s*alias (\S+);\s*\}", text))
    assert blocks == {"/static/": "/srv/shop/current/static/",
                      "/media/": "/srv/shop/current/var/media/"}
    assert "uwsgi_pass unix:/srv/shop/shared/run/uwsgi.sock;" in text
    assert "include /etc/nginx/uwsgi_params;" in text
    assert text.count("{") == text.count("}")


def test_nginx_conf_without_static(make_app) -> None:
    text = render.render(make_app(), NAME, "deploy", "r")[".wsgiship/nginx.conf"]
    assert "alias" not in text
    assert re.search(r"^\s*listen 80;$", text, re.M)
    assert re.search(r"^\s*server_name _;$", text, re.M)


# --- the env file ---


def test_env_file(make_app) -> None:
    app = make_app(env={"DATABASE_URL": "postgres://db/shop", "DEBUG": False, "WORKERS": 3})
    assert render.render(app, NAME, "deploy", "r")[".wsgiship/env"] == (
        "DATABASE_URL=postgres://db/shop\nDEBUG=false\nWORKERS=3\n")


# --- wsgi.py ---


def test_wsgi_py_is_valid_python_for_any_release_name(make_app) -> None:
    hostile = "x\"'; import os; os.system('id') #"
    text = render.render(make_app(), hostile, "deploy", "r")[".wsgiship/wsgi.py"]
    tree = ast.parse(text)
    release = next(node.value for node in tree.body if isinstance(node, ast.Assign)
                   and [t.id for t in node.targets if isinstance(t, ast.Name)] == ["RELEASE"])
    assert ast.literal_eval(release) == hostile


DRIVER = textwrap.dedent("""\
    import json, os, runpy, sys
    ns = runpy.run_path(sys.argv[1])
    seen = {}
    def start_response(status, headers, exc_info=None):
        seen["status"], seen["headers"], seen["exc_info"] = status, headers, exc_info is not None
    body = b"".join(ns["application"]({"REQUEST_METHOD": "GET", "PATH_INFO": "/"}, start_response))
    keys = ("PRESET", "FROM_DOTENV", "QUOTED", "SINGLE", "EXPORTED", "BOTH", "FROM_HOSTS")
    print(json.dumps({**seen, "body": body.decode(), "cwd": os.getcwd(),
                      "env": {k: os.environ.get(k) for k in keys}}))
""")

APP_MODULE = textwrap.dedent("""\
    import os
    CALLS = []

    def app(environ, start_response):
        start_response("201 Created", [("Content-Type", "text/plain"), ("X-App", "1")])
        return [b"hello from " + os.path.basename(os.getcwd()).encode()]

    def create_app():
        CALLS.append(1)
        def factory_app(environ, start_response):
            start_response("200 OK", [("X-Factory-Calls", str(len(CALLS)))])
            return [b"factory"]
        return factory_app

    def failing(environ, start_response):
        try:
            raise ValueError("boom")
        except ValueError:
            import sys
            start_response("500 Internal Server Error", [], sys.exc_info())
        return [b"error"]
""")


def deploy_release(tmp_path: Path, app: config.App, name: str = NAME) -> Path:
    """A release like the server's: releases/<name> with the rendered configs, and current."""
    r = tmp_path / "srv" / "releases" / name
    (r / "pkg").mkdir(parents=True)
    (r / "pkg" / "__init__.py").write_text("")
    (r / "pkg" / "web.py").write_text(APP_MODULE)
    for target, text in render.render(app, name, "deploy", "r").items():
        (r / target).parent.mkdir(parents=True, exist_ok=True)
        (r / target).write_text(text)
    (r / ".env").write_text(textwrap.dedent("""\
        # shared secrets
        FROM_DOTENV=dotenv
          QUOTED = "a value with spaces"
        SINGLE='single'
        export EXPORTED=yes
        PRESET=from-dotenv
        BOTH=from-dotenv
        not a variable line
    """))
    (tmp_path / "srv" / "current").symlink_to(f"releases/{name}")
    return r


def call_app(tmp_path: Path) -> dict:
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER)
    env = {k: v for k, v in os.environ.items() if k not in ("FROM_DOTENV", "BOTH", "FROM_HOSTS")}
    env["PRESET"] = "from-process"
    res = subprocess.run(
        [sys.executable, str(driver), str(tmp_path / "srv" / "current" / ".wsgiship" / "wsgi.py")],
        capture_output=True, text=True, cwd=tmp_path, env=env, timeout=30)
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)


def test_wsgi_py_serves_the_app_with_the_release_header(tmp_path: Path, make_app) -> None:
    app = make_app(wsgi="pkg.web:app", env={"FROM_HOSTS": "hosts", "BOTH": "from-hosts",
                                            "PRESET": "from-hosts"})
    release = deploy_release(tmp_path, app)
    out = call_app(tmp_path)
    assert out["status"] == "201 Created"
    assert out["headers"] == [["Content-Type", "text/plain"], ["X-App", "1"],
                              ["X-Wsgiship-Release", NAME]]
    # the worker runs in the release directory itself, not through `current`
    assert out["cwd"] == str(release)
    assert out["body"] == f"hello from {NAME}"


def test_wsgi_py_loads_env_files_without_overriding_the_process(tmp_path: Path, make_app) -> None:
    app = make_app(wsgi="pkg.web:app", env={"FROM_HOSTS": "hosts", "BOTH": "from-hosts",
                                            "PRESET": "from-hosts"})
    deploy_release(tmp_path, app)
    env = call_app(tmp_path)["env"]
    assert env["PRESET"] == "from-process"      # the process environment wins
    assert env["FROM_DOTENV"] == "dotenv"
    assert env["QUOTED"] == "a value with spaces"
    assert env["SINGLE"] == "single"
    assert env["EXPORTED"] == "yes"
    assert env["FROM_HOSTS"] == "hosts"         # .wsgiship/env, from hosts.yaml
    assert env["BOTH"] == "from-dotenv"         # the shared .env is read first


def test_wsgi_py_factory_form(tmp_path: Path, make_app) -> None:
    deploy_release(tmp_path, make_app(wsgi="pkg.web:create_app()"))
    out = call_app(tmp_path)
    assert out["body"] == "factory"
    # called once at import, not per request
    assert out["headers"] == [["X-Factory-Calls", "1"], ["X-Wsgiship-Release", NAME]]


def test_wsgi_py_passes_exc_info_through(tmp_path: Path, make_app) -> None:
    deploy_release(tmp_path, make_app(wsgi="pkg.web:failing"))
    out = call_app(tmp_path)
    assert out["status"] == "500 Internal Server Error"
    assert out["exc_info"] is True
    assert out["headers"] == [["X-Wsgiship-Release", NAME]]


# --- override templates ---


@pytest.fixture
def overrides(tmp_path: Path) -> Path:
    d = tmp_path / "my-templates"
    d.mkdir()
    return d


def test_an_override_wins_per_file(make_app, overrides: Path) -> None:
    (overrides / "nginx.conf.j2").write_text("# custom site for {{ app.name }} ({{ release }})\n")
    app = make_app(templates=str(overrides))
    assert app.templates == overrides
    out = render.render(app, NAME, "deploy", "r")
    default = render.render(make_app(), NAME, "deploy", "r")
    assert out[".wsgiship/nginx.conf"] == f"# custom site for hello ({NAME})\n"
    for name in FILES - {".wsgiship/nginx.conf"}:
        assert out[name] == default[name], name


def test_a_service_override_follows_the_service_manager(make_app, overrides: Path) -> None:
    (overrides / "supervisor.conf.j2").write_text("[program:{{ service }}]\nuser={{ app_user }}\n")
    (overrides / "systemd.service.j2").write_text("# my unit\n")
    supervised = render.render(make_app(templates=str(overrides), service_manager="supervisor"),
                               NAME, "web", "r")
    assert supervised[".wsgiship/service"] == "[program:wsgiship-hello]\nuser=web\n"
    systemd = render.render(make_app(templates=str(overrides)), NAME, "web", "r")
    assert systemd[".wsgiship/service"] == "# my unit\n"


def test_undefined_variable_names_template_file_and_line(make_app, overrides: Path) -> None:
    path = overrides / "nginx.conf.j2"
    path.write_text("server {\n    listen {{ app.http_port }};\n    root {{ docroot }};\n}\n")
    with pytest.raises(ConfigError) as err:
        render.render(make_app(templates=str(overrides)), NAME, "deploy", "r")
    assert str(err.value).startswith(f"{path}:3: template error: ")
    assert "'docroot' is undefined" in str(err.value)


def test_undefined_attribute_names_template_file_and_line(make_app, overrides: Path) -> None:
    path = overrides / "systemd.service.j2"
    path.write_text("[Unit]\n\n[Service]\nUser={{ app.owner }}\n")
    with pytest.raises(ConfigError) as err:
        render.render(make_app(templates=str(overrides)), NAME, "deploy", "r")
    assert str(err.value).startswith(f"{path}:4: template error: ")
    assert "owner" in str(err.value)


def test_error_in_an_included_template_names_that_file(make_app, overrides: Path) -> None:
    (overrides / "wsgi.py.j2").write_text("# wsgi\n{% include 'part.j2' %}\n")
    part = overrides / "part.j2"
    part.write_text("ok = 1\nbad = {{ missing_value }}\n")
    with pytest.raises(ConfigError) as err:
        render.render(make_app(templates=str(overrides)), NAME, "deploy", "r")
    assert str(err.value).startswith(f"{part}:2: template error: ")


def test_syntax_error_names_template_file_and_line(make_app, overrides: Path) -> None:
    path = overrides / "uwsgi.ini.j2"
    path.write_text("[uwsgi]\nmaster = true\n{% if app.threads > 1 %}\nthreads = 2\n")
    with pytest.raises(ConfigError) as err:
        render.render(make_app(templates=str(overrides)), NAME, "deploy", "r")
    message = str(err.value)
    assert re.match(rf"^{re.escape(str(path))}:\d+: template error: ", message), message
    assert "endif" in message or "end of template" in message


def test_syntax_error_on_a_given_line(make_app, overrides: Path) -> None:
    path = overrides / "nginx.conf.j2"
    path.write_text("server {\n  listen {{ app.http_port }};\n  {{ app.name | }}\n}\n")
    with pytest.raises(ConfigError) as err:
        render.render(make_app(templates=str(overrides)), NAME, "deploy", "r")
    assert str(err.value).startswith(f"{path}:3: template error: ")


def test_missing_include_is_a_config_error(make_app, overrides: Path) -> None:
    (overrides / "nginx.conf.j2").write_text("{% include 'nowhere.j2' %}\n")
    with pytest.raises(ConfigError, match=r"nginx\.conf\.j2: template error: .*nowhere\.j2"):
        render.render(make_app(templates=str(overrides)), NAME, "deploy", "r")
