"""The fab tasks env, put and exec --env as a user types them: mistakes refused before any
connection (one line, no traceback, never a value), the help saying what is passed; and the
rendered wsgi.py, the app's own loader, reading back hosts.yaml's env values exactly."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from wsgiship import render

ROOT = Path(__file__).resolve().parents[2]
FAB = str(Path(sys.executable).parent / "fab")
SECRET = "tok-c0ffee"


@pytest.fixture
def fab(tmp_path: Path):
    hosts = tmp_path / "hosts.yaml"
    # port 9 of a test address: a task that tried to connect would fail another way
    hosts.write_text(yaml.safe_dump({"app": {"name": "shop", "wsgi": "hello:app",
                                             "shared_files": [".env"]},
                                     "hosts": {"web1": {"host": "192.0.2.1", "port": 9,
                                                        "connect_timeout": 1}}}))

    def run(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
        full = {k: v for k, v in os.environ.items() if k != "LOCAL_ONLY"}
        return subprocess.run([FAB, *args], cwd=ROOT, capture_output=True, text=True, timeout=60,
                              env={**full, "WSGISHIP_HOSTS": str(hosts), **env}, stdin=subprocess.DEVNULL)
    return run


@pytest.mark.parametrize("args, words", [
    (["env", "-H", "web1", "--set", f"BAD-NAME={SECRET}"], "--set 'BAD-NAME': not a variable name"),
    (["env", "-H", "web1", "--set", f"K={SECRET}\r"], "--set K: the value has a line break"),
    (["env", "-H", "web1", "--set", f"{SECRET}!"], "--set takes KEY=VALUE"),
    (["env", "-H", "web1", "--set", "LOCAL_ONLY"], "--set LOCAL_ONLY: no value given"),
    (["env", "-H", "web1", "--set", "A=1", "--set", f"A={SECRET}"], "--set A: given twice"),
    (["env", "-H", "web1", "--set", f"A={SECRET}", "--unset", "A"], "both name A"),
    (["env", "-H", "web1", "--unset", "1X"], "--unset '1X': not a variable name"),
    (["put", "-H", "web1", "--local", "/etc/hostname", "--remote", "shared/../x"],
     "--remote 'shared/../x': NAME must be a path inside shared/"),
    (["put", "-H", "web1", "--local", "/etc/hostname", "--remote", "/etc/x"], "give shared/NAME"),
    (["put", "-H", "web1", "--local", "/nonexistent", "--remote", "shared/x"], "no such file"),
    (["put", "-H", "web1", "--local", "/etc/hostname"], "fab put -H HOST --local FILE --remote"),
    (["exec", "-H", "web1", "--env", "LOCAL_ONLY", "--", "true"],
     "--env LOCAL_ONLY: LOCAL_ONLY is not set in your environment"),
    (["exec", "-H", "web1", "--env", f"K={SECRET}\n", "--", "true"], "line break"),
])
def test_a_mistake_is_one_line_before_any_connection(fab, args: list[str], words: str) -> None:
    res = fab(*args)
    assert res.returncode == 1, res.stdout + res.stderr
    assert res.stderr.startswith("error: ") and words in res.stderr, res.stderr
    assert len(res.stderr.strip().splitlines()) == 1 and res.stdout == ""
    assert SECRET not in res.stderr


def test_the_help_says_what_is_passed(fab) -> None:
    exec_help = fab("--help", "exec").stdout
    assert "--env" in exec_help and "local environment is not passed" in exec_help
    env_help = fab("--help", "env").stdout
    for flag in ("--set", "--unset", "--apply"):
        assert flag in env_help
    put_help = fab("--help", "put").stdout
    assert "--local" in put_help and "--remote" in put_help and "shared/NAME" in put_help


def test_wsgi_py_reads_hosts_yaml_env_values_exactly(tmp_path: Path, make_app) -> None:
    values = {"A": "  padded  ", "B": "'quoted'", "C": '"dq"', "D": f"{SECRET} $HOME #x", "E": ""}
    app = make_app(wsgi="app:app", env=values)
    r = tmp_path / "release"
    for target, text in render.render(app, "r1", "deploy", "rev").items():
        (r / target).parent.mkdir(parents=True, exist_ok=True)
        (r / target).write_text(text)
    (r / "app.py").write_text("def app(environ, start_response):\n    return []\n")
    probe = ("import json, os, runpy, sys; runpy.run_path(sys.argv[1]);"
             f" print(json.dumps({{k: os.environ.get(k) for k in {sorted(values)!r}}}))")
    env = {k: v for k, v in os.environ.items() if k not in values}
    res = subprocess.run([sys.executable, "-c", probe, str(r / ".wsgiship" / "wsgi.py")],
                         capture_output=True, text=True, env=env, timeout=30)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout) == values
