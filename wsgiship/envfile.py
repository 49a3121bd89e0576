"""The one way an env file's line is read (shared/.env, the release's .wsgiship/env, a fab exec
--env file): `KEY=VALUE`, an optional `export `, one pair of matching quotes around the value
taken off, blank and `#` lines skipped; no shell expansion, so any value is safe.

PARSE_LINE is Python source, embedded as it is in every program that reads such a file on the
server: the rendered wsgi.py, fab exec's loader (commands/appenv) and the shared-files program
(commands/shared). `parse_env_line` here is the same function, for code and tests on this side.
"""

from __future__ import annotations

from collections.abc import Callable

PARSE_LINE = r'''
def parse_env_line(line):
    """(key, value) of a KEY=VALUE line; (None, None) for a blank, comment or other line."""
    line = line.strip()
    if not line or line.startswith("#") or "=" not in line:
        return None, None
    key, value = line.removeprefix("export ").split("=", 1)
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        value = value[1:-1]
    return key.strip(), value
'''


def _compiled() -> Callable[[str], tuple[str | None, str | None]]:
    namespace: dict[str, object] = {}
    exec(compile(PARSE_LINE, "wsgiship/envfile.py:PARSE_LINE", "exec"), namespace)  # noqa: S102
    return namespace["parse_env_line"]  # type: ignore[return-value]


parse_env_line = _compiled()
