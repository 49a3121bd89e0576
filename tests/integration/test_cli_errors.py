"""User mistakes give one clear line and a non-zero exit, never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent.parent
FAB = str(Path(sys.executable).parent / "fab")

GOOD = """app:
  name: hello
  source: {src}
  wsgi: hello:app
hosts:
  demo:
    host: 127.0.0.1
    port: 2222
"""


def fab(tmp_path: Path, text: str, *args: str) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "hosts.yaml"
    path.write_text(text.format(src=ROOT / "examples" / "hello"))
    env = {**os.environ, "WSGISHIP_HOSTS": str(path)}
    return subprocess.run([FAB, *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=60)


@pytest.mark.parametrize("text, args, expected", [
    (GOOD.replace("port: 2222", "port: ssh"), ("deploy", "-H", "demo"),
     'hosts.yaml: hosts.demo.port: expected an integer, got "ssh"'),
    (GOOD.replace("wsgi: hello:app", "wsgi: hello:app\n  procesess: 4"), ("deploy", "-H", "demo"),
     "hosts.yaml: app.procesess: unknown key; did you mean 'processes'?"),
    (GOOD, ("deploy", "-H", "dmeo"),
     "hosts.yaml: unknown host alias 'dmeo'; did you mean 'demo'?"),
    (GOOD.replace("name: hello", "name: hello world"), ("deploy", "-H", "demo"),
     'hosts.yaml: app.name: expected a name of letters, digits, - and _, got "hello world"'),
    (GOOD + "  bad: [\n", ("deploy", "-H", "demo"), "hosts.yaml: invalid YAML at line"),
    (GOOD, ("deploy",), "no host given: use -H ALIAS"),
])
def test_config_errors_are_one_clear_line(tmp_path, text, args, expected):
    res = fab(tmp_path, text, *args)
    assert res.returncode != 0
    assert expected in res.stderr
    assert "Traceback" not in res.stderr + res.stdout
    assert len(res.stderr.strip().splitlines()) == 1, res.stderr


def test_unreachable_host_is_a_clear_error(tmp_path):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again at once: nothing listens there
    res = fab(tmp_path, GOOD.replace("2222", str(port)), "deploy", "-H", "demo")
    assert res.returncode != 0
    assert f"cannot connect to 127.0.0.1:{port}" in res.stderr
    assert "Traceback" not in res.stderr
