"""fab deploy."""

from __future__ import annotations

from typing import Any

from fabric import task

from wsgiship.hosts import Target
from wsgiship.ops import Deploy, site_url
from wsgiship.output import Printer, Reporter

from .common import clean_exit, on_each_host


@task
@clean_exit
def deploy(c: Any) -> None:
    """Ship the app: new release, venv, configs, switch, reload uWSGI + nginx, health check."""

    def one(t: Target, printer: Printer) -> None:
        out = Reporter(t.label, printer)
        release = Deploy(t.remote, t.host.app, out).run()
        out.line(f"deployed {release} -> {site_url(t.remote, t.host.app)} in {out.elapsed:.1f}s")

    on_each_host(c, "deploy", one, "not deployed, left as they were")
