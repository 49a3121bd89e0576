"""fab rollback, fab releases, fab unlock."""

from __future__ import annotations

from typing import Any

from fabric import task

from wsgiship.facts import releases_table
from wsgiship.hosts import Target
from wsgiship.ops import Rollback, force_unlock, site_url
from wsgiship.ops import releases as read_releases
from wsgiship.output import Printer, Reporter

from .common import clean_exit, on_each_host


@task(help={"to": "a release name from `fab releases` (default: the previous good one)"})
@clean_exit
def rollback(c: Any, to: str = "") -> None:
    """Go back to the previous good release (or --to RELEASE): switch, reload, health check."""

    def one(t: Target, printer: Printer) -> None:
        out = Reporter(t.label, printer)
        release = Rollback(t.remote, t.host.app, out, to).run()
        out.line(f"rolled back to {release} -> {site_url(t.remote, t.host.app)} "
                 f"in {out.elapsed:.1f}s")

    on_each_host(c, "rollback", one, "not rolled back")


@task
@clean_exit
def releases(c: Any) -> None:
    """List releases: revision, deployed at, by whom, status, and which is current."""

    def one(t: Target, printer: Printer) -> None:
        state = read_releases(t.remote, t.host.app)
        if not state.releases:
            printer.plain(t.label, f"no releases in {t.host.app.deploy_to}")
            return
        for line in releases_table(state):
            printer.plain(t.label, line)

    on_each_host(c, "releases", one, "not read")


@task
@clean_exit
def unlock(c: Any) -> None:
    """Remove a deploy lock left behind, saying whose it was."""

    def one(t: Target, printer: Printer) -> None:
        printer.plain(t.label, force_unlock(t.remote, t.host.app))

    on_each_host(c, "unlock", one, "not unlocked")
