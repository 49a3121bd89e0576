"""fab logs."""

from __future__ import annotations

from typing import Any

from fabric import task

from wsgiship.commands.logs import make_query
from wsgiship.errors import WsgishipError
from wsgiship.logs import Follow, HostLogs, show
from wsgiship.output import Printer, quiet_broken_stdout, utf8_stdio

from .common import clean_exit, serve_once


@task(auto_shortflags=False, help={
    "lines": "how many of the last lines to show (default 50)",
    "follow": "go on showing new lines until Ctrl-C (several hosts at once)",
    "source": "app, nginx (error log), access, or all; several: app,access (default app,nginx)",
    "grep": "only lines matching this extended regular expression (on the server)",
    "since": "only lines logged since then, e.g. '10 min ago', '2026-11-25 12:00'",
})
@clean_exit
def logs(c: Any, lines: int = 50, follow: bool = False, source: str = "", grep: str = "",
         since: str = "") -> None:
    """Show the app's uWSGI log and nginx logs, each line labelled with its host and source."""
    query = make_query(source, lines, grep, since, follow)
    targets = serve_once(c, "logs")
    if targets is None:
        return
    utf8_stdio()
    hosts = [HostLogs(t, query) for t in targets]
    printer = Printer()
    failed = Follow(hosts, printer).run() if follow else show(hosts, printer)
    if printer.broken.is_set():
        quiet_broken_stdout()
        return
    if failed:
        raise WsgishipError(f"{failed} of {len(hosts)} hosts failed")
