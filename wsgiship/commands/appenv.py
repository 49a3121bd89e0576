"""Run a command as the app runs: in a release directory, its venv first on PATH
(VIRTUAL_ENV set), the app installed into the release (install: project) first on PYTHONPATH,
the app's environment loaded the way wsgi.py loads it (shared .env, then .wsgiship/env; no
shell expansion, so any value is safe; variables already set win)."""

from __future__ import annotations

from collections.abc import Sequence

from ..layout import SITE_DIR
from ..shell import cmd, q, script

# Runs argv with the app's environment loaded as the app's wsgi.py loads it (the same KEY=VALUE
# parsing: no shell expansion, so any value is safe); the caller's environment wins.
ENV_EXEC = r'''
import os, sys

def load_env(path):
    try:
        with open(path, encoding="utf-8") as handle:
            lines = handle.read().splitlines()
    except (FileNotFoundError, PermissionError):
        return
    for line in lines:
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, value = line.removeprefix("export ").split("=", 1)
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        os.environ.setdefault(key.strip(), value)

load_env(".env")
load_env(os.path.join(".wsgiship", "env"))
argv = sys.argv[1:]
try:
    os.execvp(argv[0], argv)
except FileNotFoundError:
    sys.stderr.write(argv[0] + ": command not found\n")
    sys.exit(127)
except PermissionError:
    sys.stderr.write(argv[0] + ": permission denied\n")
    sys.exit(126)
'''



def run_in(directory: str, argv: Sequence[str]) -> str:
    """A script running argv in `directory` (a release, or `current`) like the app runs."""
    return script([
        # -P: into the release itself, so a deploy switching `current` meanwhile changes nothing
        f"cd -P {q(directory)}",
        'export VIRTUAL_ENV="$(cd -P .venv && pwd)"',
        # install: project: the app installed into the release, first on the import path; its
        # console scripts on PATH after the venv's
        f'if [ -d {q(SITE_DIR)} ]; then S="$PWD"/{q(SITE_DIR)};'
        ' export PYTHONPATH="$S${PYTHONPATH:+:$PYTHONPATH}" PATH="$S/bin:$PATH"; fi',
        'export PATH="$VIRTUAL_ENV/bin:$PATH"',
        "unset PYTHONHOME",
        f'exec "$VIRTUAL_ENV/bin/python" -c {q(ENV_EXEC)} {cmd(*argv)}',
    ])

