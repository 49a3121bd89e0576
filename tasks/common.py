"""Shared by the tasks: resolve -H into a verified connection, turn errors into clean exits."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from fabric import Connection
from invoke import Exit

from wsgiship import config
from wsgiship.config import Host
from wsgiship.errors import WsgishipError
from wsgiship.remote import Remote


def resolve(c: Any) -> tuple[Remote, Host]:
    """The Remote for `fab TASK -H NAME`: a hosts.yaml alias, or a plain SSH host."""
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
    return Remote(host, config=c.config, connect_kwargs=c.connect_kwargs), host


def clean_exit(fn: Callable[..., Any]) -> Callable[..., Any]:
    """User-facing errors become a message and a non-zero exit, never a traceback."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except WsgishipError as exc:
            raise Exit(f"error: {exc}", code=exc.exit_code) from None
        except KeyboardInterrupt:
            raise Exit("interrupted", code=130) from None

    return wrapper
