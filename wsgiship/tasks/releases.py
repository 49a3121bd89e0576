"""fab rollback, fab releases, fab unlock."""

from __future__ import annotations

from typing import Any

from fabric import task

from wsgiship import hosts
from wsgiship.errors import WsgishipError
from wsgiship.facts import State, releases_table
from wsgiship.fleetfacts import drift_line
from wsgiship.hosts import Target
from wsgiship.ops import Rollback, force_unlock, site_url
from wsgiship.ops import releases as read_releases
from wsgiship.ops.rollback_fleet import error_lines, failures, rollback_fleet
from wsgiship.output import Printer, Reporter
from wsgiship.summary import table

from .common import clean_exit, on_each_host, serve_once


@task(help={"to": "a release name from `fab releases` (default: the previous good one; on "
                  "several hosts: the newest one before what they serve that is good on all)"})
@clean_exit
def rollback(c: Any, to: str = "") -> None:
    """Go back to the previous good release (or --to RELEASE): switch, reload, health check.
    On several hosts (-H web1,web2 or a group) every host goes back to the same release."""
    targets = serve_once(c, "rollback")
    if targets is None:
        return
    printer = Printer()
    if len(targets) > 1:
        target, rows = rollback_fleet(targets, to, printer)
        for line in table(rows):
            printer.write(line)
        error = failures(target, rows)
        if error is not None:
            raise error
        return

    def one(t: Target, printer: Printer) -> None:
        out = Reporter(t.label, printer)
        release = Rollback(t.remote, t.host.app, out, to).run()
        out.line(f"rolled back to {release} -> {site_url(t.remote, t.host.app)} "
                 f"in {out.elapsed:.1f}s")

    hosts.finish(hosts.serial(targets, lambda t: one(t, printer)), printer, "not rolled back")


def show_releases(t: Target, state: State, printer: Printer) -> None:
    """One host's releases table (or that it has none)."""
    if not state.releases:
        printer.plain(t.label, f"no releases in {t.host.app.deploy_to}")
        return
    for line in releases_table(state):
        printer.plain(t.label, line)


@task
@clean_exit
def releases(c: Any) -> None:
    """List releases: revision, deployed at, by whom, status, and which is current. On several
    hosts, then one line on which release each serves (drift)."""
    targets = serve_once(c, "releases")
    if targets is None:
        return
    printer = Printer()
    if len(targets) == 1:
        show_releases(targets[0], read_releases(targets[0].remote, targets[0].host.app), printer)
        return
    outcomes = hosts.concurrent(targets, lambda t: read_releases(t.remote, t.host.app))
    states = {o.target.label: o.value for o in outcomes}  # None: not read
    for o in outcomes:
        if o.error is not None:
            error_lines(printer, o.target.label, o.error)
        else:
            show_releases(o.target, o.value, printer)
    printer.write(drift_line(states))
    unread = [label for label, state in states.items() if state is None]
    if unread:
        raise WsgishipError(f"could not read the releases of {', '.join(unread)}")


@task
@clean_exit
def unlock(c: Any) -> None:
    """Remove a deploy lock left behind, saying whose it was."""

    def one(t: Target, printer: Printer) -> None:
        printer.plain(t.label, force_unlock(t.remote, t.host.app))

    on_each_host(c, "unlock", one, "not unlocked")
