"""hooks.first_deploy: the app's one-time setup (here: a table its page needs, in a shared dir)
runs before the new release's uWSGI first starts, only while the host has no current release:
once on a first deploy, again after a first deploy that failed, never after one succeeded."""

from __future__ import annotations

import re

APP = """\
import sqlite3

from flask import Flask

app = Flask(__name__)


@app.route("/")
def index():
    # read-only: without the table the first_deploy hook makes, the page fails (500)
    with sqlite3.connect("file:data/app.db?mode=ro", uri=True) as db:
        return db.execute("select text from greeting").fetchone()[0]
"""

INIT_DB = (
    "python -c \"import sqlite3; db = sqlite3.connect('data/app.db'); "
    "db.execute('create table if not exists greeting (text)'); "
    "db.execute('delete from greeting'); "
    "db.execute('insert into greeting values (?)', ('Hello from the db',)); db.commit()\""
    " && echo \"$WSGISHIP_STAGE\" >> data/first_deploy_runs"
)


def app_with_init(project, **settings):
    p = project(shared_dirs=["data"], hooks={"first_deploy": [INIT_DB],
                                             "before_switch": ["test -s data/app.db"]},
                **settings)
    (p.app_dir / "hello.py").write_text(APP)
    return p


def runs(p) -> list[str]:
    return p.remote(f"cat {p.deploy_to}/shared/data/first_deploy_runs", check=False).split()


def steps(out: str) -> list[str]:
    return [m.group(1) for m in re.finditer(r"^\[t\] (hook \w+|start)\s", out, re.M)]


def test_first_deploy_hook_runs_once_before_the_app_starts(project):
    p = app_with_init(project)
    out = p.must(p.deploy())
    # before the before_switch hooks, before the new uWSGI starts and is checked
    assert steps(out) == ["hook first_deploy", "hook before_switch", "start"], out
    assert p.get("/")[:2] == (200, "Hello from the db")
    assert runs(p) == ["first_deploy"]

    (p.app_dir / "hello.py").write_text(APP.replace("[0]", "[0] + '!'"))
    out = p.must(p.deploy())
    assert "hook first_deploy" not in out
    assert steps(out) == ["hook before_switch", "start"], out
    assert p.get("/")[:2] == (200, "Hello from the db!")
    assert runs(p) == ["first_deploy"]


def test_a_failed_first_deploy_runs_it_again(project):
    # the first attempt fails its check (no page at the health path): still no current release
    p = app_with_init(project, health={"path": "/healthz", "status": 200, "timeout": 30})
    res = p.deploy()
    assert res.returncode != 0
    assert "the app has no page at /healthz; set app.health.path in hosts.yaml" in res.stderr
    assert p.remote(f"test -e {p.deploy_to}/current && echo yes || echo no").strip() == "no"
    assert runs(p) == ["first_deploy"]

    p.settings["health"]["path"] = "/"
    p.write()
    out = p.must(p.deploy())
    assert "hook first_deploy" in out
    assert runs(p) == ["first_deploy", "first_deploy"]
    assert p.get("/")[:2] == (200, "Hello from the db")
