"""fab init."""

from __future__ import annotations

from typing import Any

from fabric import task

from wsgiship.errors import WsgishipError
from wsgiship.init import init_app

from .common import clean_exit


@task(auto_shortflags=False, help={
    "path": "the app's directory (default: the current one)",
    "host": "[USER@]HOST[:PORT] of the server (default: a placeholder, web1.example.com)",
    "name": "the app's name (default: pyproject.toml's project name, else the directory's)",
    "server-name": "the domain names nginx answers to (default: localhost, a placeholder)",
})
@clean_exit
def init(c: Any, path: str = ".", host: str = "", name: str = "", server_name: str = "") -> None:
    """Write fabfile.py and hosts.yaml for the app in --path, from its files (as wsgiship init)."""
    report = init_app(path, host=host, name=name, server_name=server_name)
    print("\n".join(report.lines()), flush=True)
    if report.problem:
        raise WsgishipError(report.problem)
