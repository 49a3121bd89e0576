"""fab deploy."""

from __future__ import annotations

from typing import Any

from fabric import task

from wsgiship.flow import Deploy, site_url
from wsgiship.output import Reporter

from .common import clean_exit, resolve


@task
@clean_exit
def deploy(c: Any) -> None:
    """Ship the app: new release, venv, configs, switch, reload uWSGI + nginx, health check."""
    remote, host = resolve(c)
    out = Reporter(host.alias)
    release = Deploy(remote, host.app, out).run()
    out.line(f"deployed {release} -> {site_url(remote, host.app)} in {out.elapsed:.1f}s")
