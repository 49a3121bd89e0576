"""fab deploy."""

from __future__ import annotations

from typing import Any

from fabric import task

from wsgiship.errors import WsgishipError
from wsgiship.hosts import Target
from wsgiship.ops import Deploy, site_url
from wsgiship.ops.fleet import Plan, count_of, fleet_deploy
from wsgiship.output import Printer, Reporter

from .common import clean_exit, serve_once

HELP = {
    "batch": "several hosts: switch N hosts (or P%) at a time, each batch checked before the "
             "next (default: all at once)",
    "serial": "several hosts: one whole deploy after the other (no shared prepare)",
    "max_fail": "several hosts: how many hosts (or P%) may fail while the rest go on "
                "(default 0: all or nothing)",
    "on_failure": "several hosts, after a switch: rollback (default: every switched host goes "
                  "back) or stop (they stay on the new release)",
}


def plan_of(hosts: int, batch: str, serial: bool, max_fail: str, on_failure: str) -> Plan:
    """The fleet's Plan from the command line; a bad value names its option."""
    values = {}
    for option, value, up, minimum in (("--batch", batch, True, 1),
                                       ("--max-fail", max_fail, False, 0)):
        try:
            values[option] = count_of(value, hosts, up=up, minimum=minimum) if value else 0
        except WsgishipError as exc:
            raise WsgishipError(f"{option}: {exc.message}") from None
    if on_failure not in ("rollback", "stop"):
        raise WsgishipError(f"--on-failure: expected rollback or stop, got {on_failure!r}")
    return Plan(batch=values["--batch"], max_fail=values["--max-fail"],
                on_failure=on_failure, serial=serial)


@task(help=HELP)
@clean_exit
def deploy(c: Any, batch: str = "", serial: bool = False, max_fail: str = "",
           on_failure: str = "rollback") -> None:
    """Ship the app: new release, venv, configs, switch, reload uWSGI + nginx, health check.
    On several hosts (-H web1,web2 or a group): prepared everywhere, then switched."""
    targets = serve_once(c, "deploy")
    if targets is None:
        return
    printer = Printer()
    if len(targets) > 1:
        fleet_deploy(targets, plan_of(len(targets), batch, serial, max_fail, on_failure),
                     printer)
        return
    one(targets[0], printer)


def one(t: Target, printer: Printer) -> None:
    out = Reporter(t.label, printer)
    release = Deploy(t.remote, t.host.app, out).run()
    out.line(f"deployed {release} -> {site_url(t.remote, t.host.app)} in {out.elapsed:.1f}s")
