"""Pure builders for `fab exec`: find the current release, run a command in it as the app runs."""

from __future__ import annotations

from collections.abc import Sequence

from ..layout import Paths
from ..shell import cmd, q, script
from .appenv import run_in

NOT_DEPLOYED = 47  # the probe's exit code when nothing is deployed yet


def exec_probe(p: Paths) -> str:
    """Fail with NOT_DEPLOYED unless `current` is a release with a venv; print release=NAME."""
    return script([
        f"C={q(p.current)}",
        f'if [ ! -d "$C" ] || [ ! -x "$C/.venv/bin/python" ]; then exit {NOT_DEPLOYED}; fi',
        'echo "release=$(basename "$(readlink -f "$C")")"',
    ])


def exec_command(p: Paths, argv: Sequence[str], env_file: str = "") -> str:
    """Run argv in the current release's directory as the app runs (see appenv.run_in)."""
    return run_in(p.current, argv, env_file)


def as_user(body: str, user: str, login_user: str) -> str:
    """A root login runs `body` as the app's user with runuser (sudo may be missing there)."""
    if login_user != "root" or user == "root":
        raise ValueError("as_user is for a root login switching to another user")
    return cmd("runuser", "-u", user, "--", "bash", "-c", body)

