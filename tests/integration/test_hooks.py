"""Hooks: before_switch (e.g. a migration) and after_switch, remote and local."""

from __future__ import annotations

MIGRATE = (
    "python -c \"import os, sqlite3; db = sqlite3.connect('data/app.db'); "
    "db.execute('create table if not exists deploys (release text)'); "
    "db.execute('insert into deploys values (?)', (os.environ['WSGISHIP_RELEASE'],)); "
    "db.commit()\""
)


def test_before_switch_hook_runs_once_per_deploy_and_failure_keeps_previous(project, tmp_path):
    marker = tmp_path / "local-hook.txt"
    p = project(shared_dirs=["data"], env={"GREETING": "hi"}, hooks={
        "before_switch": [MIGRATE, "test \"$GREETING\" = hi && python -c 'import flask'"],
        "after_switch": [{"local": f"echo \"$WSGISHIP_RELEASE $WSGISHIP_HOST\" >> {marker}"}],
    })
    out = p.must(p.deploy())
    assert "hook before_switch" in out and "hook after_switch" in out
    first = p.current()
    p.set_text("second")
    p.must(p.deploy())
    second = p.current()
    rows = p.remote(f"python3 -c \"import sqlite3; print([r[0] for r in sqlite3.connect("
                    f"'{p.deploy_to}/shared/data/app.db').execute('select * from deploys')])\"")
    assert rows.strip() == str([first, second])
    assert marker.read_text().split("\n")[:2] == [f"{first} t", f"{second} t"]

    # a failing before_switch hook: nothing switched, previous keeps serving, output shown
    p.settings["hooks"]["before_switch"] = ["echo migration exploded >&2; exit 3"]
    p.write()
    p.set_text("never served")
    res = p.deploy()
    assert res.returncode != 0
    assert "hook before_switch" in res.stderr and "migration exploded" in res.stderr
    p.assert_still_serving(second, "second")


def test_failing_after_switch_hook_rolls_back(project):
    p = project()
    p.must(p.deploy())
    good = p.current()
    p.settings["hooks"] = {"after_switch": ["curl -fsS http://127.0.0.1:1/ || exit 7"]}
    p.write()
    p.set_text("smoke test fails")
    res = p.deploy()
    assert res.returncode != 0
    assert "hook after_switch" in res.stderr
    assert f"rolling back to {good}" in res.stdout
    assert p.current() == good
    assert p.get("/")[:2] == (200, "Hello World!")
