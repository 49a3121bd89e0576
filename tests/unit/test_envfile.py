"""wsgiship.envfile: one reading of an env file's line, the same in every program that reads
one on the server (the rendered wsgi.py, fab exec's loader, the shared-files program)."""

from __future__ import annotations

from pathlib import Path

import pytest

from wsgiship import config, render
from wsgiship.commands import appenv, shared
from wsgiship.envfile import PARSE_LINE, parse_env_line

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(("line", "pair"), [
    ("KEY=value", ("KEY", "value")),
    ("  export KEY = 'a b'  ", ("KEY", "a b")),
    ('KEY="x=y"', ("KEY", "x=y")),
    ("KEY='unbalanced\"", ("KEY", "'unbalanced\"")),
    ("KEY=", ("KEY", "")),
    ("# KEY=value", (None, None)),
    ("", (None, None)),
    ("no equals sign", (None, None)),
])
def test_a_line_reads_as_its_key_and_value(line: str, pair: tuple) -> None:
    assert parse_env_line(line) == pair


def test_every_program_on_the_server_embeds_the_same_reading() -> None:
    inv = config.load(ROOT / "hosts.yaml")
    app = inv.host(next(iter(inv.hosts))).app
    wsgi = render.render(app, "20260101T000000Z-abc", "deploy", "r")[".wsgiship/wsgi.py"]
    for program in (wsgi, appenv.ENV_EXEC, shared.PROGRAM):
        assert PARSE_LINE.strip() in program
        compile(program, "program", "exec")
