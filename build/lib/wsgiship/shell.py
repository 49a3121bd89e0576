"""Shell quoting in one place: every remote argument goes through here."""

from __future__ import annotations

import shlex
from collections.abc import Iterable

# Stop at the first failure; and a non-login SSH session of a normal user has no sbin on PATH
# (nginx, useradd, visudo live there).
HEADER = 'set -euo pipefail\nexport PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"\n'


class Raw(str):
    """Shell text put in a command line as it is (e.g. `"/proc/$pid/cwd"`): the caller quotes."""


def q(value: object) -> str:
    """Quote one argument for a POSIX shell (a Raw one is already shell text)."""
    if isinstance(value, Raw):
        return str(value)
    return shlex.quote(str(value))


def cmd(*argv: object) -> str:
    """Join argv into one shell command line, quoting every argument."""
    return " ".join(q(a) for a in argv)


def script(lines: Iterable[str]) -> str:
    """Join command lines into one bash script that stops at the first failure."""
    body = "\n".join(line for line in lines if line)
    return HEADER + body + "\n"


def bash(body: str) -> str:
    """A command line that runs `body` with bash (so the login shell does not matter)."""
    return cmd("bash", "-c", body)


def sudo_bash(body: str, with_password: bool) -> str:
    """`sudo bash -c body`: reading the password from stdin, or failing if one is asked for."""
    flags = ("-S", "-p", "") if with_password else ("-n",)
    return cmd("sudo", *flags, "--", "bash", "-c", body)
