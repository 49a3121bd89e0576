"""`wsgiship init`: set an app up for wsgiship from its own directory.

It reads the app (never running any of it), guesses its entry point, static files, shared
dirs, hooks and requirements, and writes a fabfile.py and a commented hosts.yaml beside it,
never over an existing file. The CLI (wsgiship.cli) and the fab task only call `init_app`.
"""

from __future__ import annotations

from pathlib import Path

from .detect import plan_for
from .write import Report, write

__all__ = ["Report", "init_app"]


def init_app(path: str | Path = ".", *, host: str = "", name: str = "",
             server_name: str = "") -> Report:
    """Detect the app at `path` and write its fabfile.py and hosts.yaml; raise InitError on a
    bad directory or option."""
    return write(plan_for(path, host=host, name=name, server_name=server_name))
