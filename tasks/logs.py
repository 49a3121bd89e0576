"""fab logs."""

from __future__ import annotations

from typing import Any

from fabric import Connection, task

from wsgiship.commands.logs import make_query
from wsgiship.config import Host
from wsgiship.errors import WsgishipError
from wsgiship.logs import Follow, HostLogs, Printer, quiet_broken_stdout, show, utf8_stdio
from wsgiship.remote import Remote

from .common import clean_exit, resolve

# Hosts a call of this program already served: Fabric calls a task once per -H host, but logs
# and exec serve every host in the first call (--follow streams them all at once).
_served: set[str] = set()


def cli_hosts(c: Any) -> list[str]:
    """Every host given to -H, as Fabric parsed them (just this call's host when unknown)."""
    try:
        from fabric.main import program

        value = program.core[0].args.hosts.value or ""
    except (AttributeError, IndexError, KeyError, TypeError):
        value = ""
    names = [n for n in value.split(",") if n]
    current = getattr(c, "original_host", None)
    if current is None or current not in names:
        return [current] if current else []
    return list(dict.fromkeys(names))


def serve_once(c: Any) -> list[tuple[Remote, Host]] | None:
    """The Remote and Host of every -H host on the first call; None on the calls after it."""
    if not isinstance(c, Connection):
        return [resolve(c)]  # no host: resolve explains
    if c.original_host in _served:
        return None
    names = cli_hosts(c)
    _served.update(names)
    return [resolve(c if name == c.original_host else Connection(name, config=c.config))
            for name in names]


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
    targets = serve_once(c)
    if targets is None:
        return
    utf8_stdio()
    hosts = [HostLogs(remote, host.app, query) for remote, host in targets]
    printer = Printer()
    failed = Follow(hosts, printer).run() if follow else show(hosts, printer)
    if printer.broken.is_set():
        quiet_broken_stdout()
        return
    if failed:
        raise WsgishipError(f"{failed} of {len(hosts)} hosts failed")
