"""fab deploy."""

from __future__ import annotations

from typing import Any

from fabric import task

from wsgiship import hosts
from wsgiship.hosts import Target
from wsgiship.ops import Deploy, site_url
from wsgiship.output import Printer, Reporter

from .common import clean_exit, serve_once


@task
@clean_exit
def deploy(c: Any) -> None:
    """Ship the app: new release, venv, configs, switch, reload uWSGI + nginx, health check."""
    targets = serve_once(c, "deploy")
    if targets is None:
        return
    printer = Printer()

    def one(t: Target) -> str:
        out = Reporter(t.label, printer)
        release = Deploy(t.remote, t.host.app, out).run()
        out.line(f"deployed {release} -> {site_url(t.remote, t.host.app)} in {out.elapsed:.1f}s")
        return release

    hosts.finish(hosts.serial(targets, one), printer, "not deployed, left as they were")
