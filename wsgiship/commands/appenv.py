"""Run a command as the app runs: in a release directory, its venv first on PATH
(VIRTUAL_ENV set), the app installed into the release (install: project) first on PYTHONPATH,
the app's environment loaded the way wsgi.py loads it (shared .env, then .wsgiship/env; no
shell expansion, so any value is safe; variables already set win), and the variables given
with `fab exec --env` over all of them (from a file of the app's user, which the command
removes as it starts: the values are never on a command line)."""

from __future__ import annotations

from collections.abc import Sequence

from ..envfile import PARSE_LINE
from ..layout import SITE_DIR
from ..shell import cmd, q, script

# Runs argv with the app's environment loaded as the app's wsgi.py loads it (the same KEY=VALUE
# parsing: no shell expansion, so any value is safe); the caller's environment wins, and the
# variables given explicitly ($WSGISHIP_EXEC_ENV names their file) win over everything.
ENV_EXEC = "import os, sys\n" + PARSE_LINE + r'''
def load_env(path, over=False):
    try:
        with open(path, encoding="utf-8") as handle:
            lines = handle.read().splitlines()
    except (FileNotFoundError, PermissionError):
        return
    for line in lines:
        key, value = parse_env_line(line)
        if key is None:
            continue
        if over:
            os.environ[key] = value
        else:
            os.environ.setdefault(key, value)

given = os.environ.pop("WSGISHIP_EXEC_ENV", "")
if given:
    try:
        load_env(given, over=True)
    finally:
        os.unlink(given)
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



def run_in(directory: str, argv: Sequence[str], env_file: str = "") -> str:
    """A script running argv in `directory` (a release, or `current`) like the app runs;
    `env_file`: the explicit variables' file (commands/shared.stage_env), removed as it starts."""
    return script([
        f"export WSGISHIP_EXEC_ENV={q(env_file)}" if env_file else "unset WSGISHIP_EXEC_ENV",
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

