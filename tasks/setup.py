"""fab setup."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from fabric import task

from wsgiship.flow import Setup
from wsgiship.output import Reporter
from wsgiship.remote import Remote

from .common import clean_exit, resolve


@task
@clean_exit
def setup(c: Any) -> None:
    """Make a fresh Debian/Ubuntu server ready for deploys (idempotent; logs in as setup_user)."""
    remote, host = resolve(c)
    admin = Remote(replace(host, user=host.setup_user), config=remote.config,
                   connect_kwargs=remote.connect_kwargs)
    out = Reporter(host.alias)
    changed = Setup(admin, host, out).run()
    summary = f"{changed} step(s) changed" if changed else "nothing to change: already set up"
    out.line(f"setup done: {summary} in {out.elapsed:.1f}s; deploy with: fab deploy -H {host.alias}")
