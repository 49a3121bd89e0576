"""Shared by the tasks: resolve -H into verified connections, turn errors into clean exits."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from fabric import Connection
from invoke import Exit

from wsgiship import config, hosts
from wsgiship.errors import WsgishipError
from wsgiship.hosts import Target
from wsgiship.output import Printer, visible_lines
from wsgiship.remote import Remote

# (task, host) pairs this program already served: Fabric calls a task once per -H host, but the
# tasks serve every host in the first call (wsgiship.hosts runs them).
_served: set[tuple[str, str]] = set()


def resolve(c: Any) -> Target:
    """The Target for `fab TASK -H NAME`: a hosts.yaml alias, or a plain SSH host."""
    if not isinstance(c, Connection):
        inv = config.load()
        aliases = ", ".join(sorted(inv.hosts)) or "none in hosts.yaml"
        raise WsgishipError(f"no host given: use -H ALIAS, e.g. fab deploy -H demo "
                            f"(aliases: {aliases})")
    inv = config.load()
    name = c.original_host
    host = inv.host(name)
    if name not in inv.hosts:
        # A plain host: Fabric already applied ssh_config and user@host:port.
        host = replace(host, host=c.host, user=c.user, port=c.port)
    return Target(Remote(host, config=c.config, connect_kwargs=c.connect_kwargs), host)


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


def serve_once(c: Any, task: str) -> list[Target] | None:
    """A Target for every -H host on the task's first call; None on the calls after it."""
    if not isinstance(c, Connection):
        return [resolve(c)]  # no host: resolve explains
    if (task, c.original_host) in _served:
        return None
    names = cli_hosts(c)
    _served.update((task, name) for name in names)
    return [resolve(c if name == c.original_host else Connection(name, config=c.config))
            for name in names]


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
