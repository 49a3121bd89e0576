"""fab setup."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from fabric import task

from wsgiship.hosts import Target
from wsgiship.ops import Setup
from wsgiship.output import Printer, Reporter
from wsgiship.remote import Remote

from .common import clean_exit, on_each_host


@task
@clean_exit
def setup(c: Any) -> None:
    """Make a fresh Debian/Ubuntu server ready for deploys (idempotent; logs in as setup_user)."""

    def one(t: Target, printer: Printer) -> None:
        host = t.host
        admin = Remote(replace(host, user=host.setup_user), config=t.remote.config,
                       connect_kwargs=t.remote.connect_kwargs)
        out = Reporter(host.alias, printer)
        changed = Setup(admin, host, out).run()
        summary = f"{changed} step(s) changed" if changed else "nothing to change: already set up"
        out.line(f"setup done: {summary} in {out.elapsed:.1f}s; deploy with: "
                 f"fab deploy -H {host.alias}")

    on_each_host(c, "setup", one, "not set up")
