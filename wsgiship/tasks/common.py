"""Shared by the tasks: resolve -H into verified connections, turn errors into clean exits."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from fabric import Connection
from fabric.connection import derive_shorthand
from invoke import Exit

from wsgiship import config, hosts
from wsgiship.config import Group
from wsgiship.errors import WsgishipError
from wsgiship.hosts import Target
from wsgiship.output import Printer, visible_lines
from wsgiship.remote import Remote

# (task, host) pairs this program already served: Fabric calls a task once per -H host, but the
# tasks serve every host in the first call (wsgiship.hosts runs them).
_served: set[tuple[str, str]] = set()


def resolve(c: Any, inv: config.Inventory | None = None) -> Target:
    """The Target for `fab TASK -H NAME`: a hosts.yaml alias, or a plain SSH host."""
    if not isinstance(c, Connection):
        inv = config.load()
        aliases = ", ".join(sorted(inv.hosts)) or "none in hosts.yaml"
        groups = f"; groups: {', '.join(inv.groups)}" if inv.groups else ""
        raise WsgishipError(f"no host given: use -H ALIAS, e.g. fab deploy -H demo "
                            f"(aliases: {aliases}{groups})")
    inv = inv or config.load()
    name = c.original_host
    host = inv.host(name)
    if name not in inv.hosts:
        # A plain host: Fabric already applied ssh_config and user@host:port.
        host = replace(host, host=c.host, user=c.user, port=c.port)
    return Target(Remote(host, config=c.config, connect_kwargs=c.connect_kwargs), host)


def _given(c: Any) -> list[str]:
    """The -H value as given, split (empty when not run by `fab`)."""
    try:
        from fabric.main import program

        value = program.core[0].args.hosts.value or ""
    except (AttributeError, IndexError, KeyError, TypeError):
        value = ""
    return list(dict.fromkeys(n for n in value.split(",") if n))


def current_entry(c: Any, names: list[str]) -> str | None:
    """The -H entry this call's Connection was made from: `web1`, or `deploy@host:2222` (whose
    Connection's original_host is just `host`)."""
    current = getattr(c, "original_host", None)
    if current in names:
        return current
    for name in names:
        parsed = derive_shorthand(name)
        if (parsed["host"] == current and parsed["user"] in (None, getattr(c, "user", None))
                and parsed["port"] in (None, getattr(c, "port", None))):
            return name
    return None


def cli_hosts(c: Any) -> list[str]:
    """Every host given to -H, as given (just this call's host when unknown); group names stay
    as they are (Inventory.expand turns them into their hosts)."""
    names = _given(c)
    if current_entry(c, names) is None:
        current = getattr(c, "original_host", None)
        return [current] if current else []
    return names


def _serve(c: Any, task: str) -> tuple[list[Target], list[str], config.Inventory] | None:
    """The Targets of every -H host and group (first call only), the names as given, the
    inventory."""
    if not isinstance(c, Connection):
        return [resolve(c)], [], config.load()  # no host: resolve explains
    names = cli_hosts(c)
    entry = current_entry(c, names) or c.original_host
    if (task, entry) in _served:
        return None
    _served.update((task, name) for name in names)
    inv = config.load()
    targets = [resolve(c if name == entry else Connection(name, config=c.config), inv)
               for name in inv.expand(names)]
    return targets, names, inv


def serve_once(c: Any, task: str) -> list[Target] | None:
    """A Target for every -H host (each group as its hosts, each host once) on the task's
    first call; None on the calls after it."""
    served = _serve(c, task)
    return None if served is None else served[0]


def fleet_targets(c: Any, task: str) -> tuple[list[Target], Group | None] | None:
    """As serve_once, with the Group when -H named exactly one group (its fleet defaults)."""
    served = _serve(c, task)
    if served is None:
        return None
    targets, names, inv = served
    return targets, inv.group_for(names)


def on_each_host(c: Any, task: str, work: Callable[[Target, Printer], object],
                 left_as_is: str) -> None:
    """Run `work` on every -H host, one after the other, through one Printer; the first failure
    stops the run, naming the hosts `left_as_is`."""
    targets = serve_once(c, task)
    if targets is None:
        return
    printer = Printer()
    hosts.finish(hosts.serial(targets, lambda t: work(t, printer)), printer, left_as_is)


def clean_exit(fn: Callable[..., Any]) -> Callable[..., Any]:
    """User-facing errors become a message and a non-zero exit, never a traceback."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except WsgishipError as exc:
            # remote text (a lock holder, a response body, a log line) must not drive the terminal
            raise Exit(f"error: {visible_lines(str(exc))}", code=exc.exit_code) from None
        except KeyboardInterrupt:
            raise Exit("interrupted", code=130) from None

    return wrapper
