"""fab deploy."""

from __future__ import annotations

from typing import Any

from fabric import task

from wsgiship.errors import WsgishipError
from wsgiship.groups import Group
from wsgiship.hosts import Target
from wsgiship.ops import Deploy, site_url
from wsgiship.ops.fleet import Plan, fleet_deploy
from wsgiship.output import Printer, Reporter
from wsgiship.schema import GROUP_FIELDS, ON_FAILURE, Bad, count_of

from .common import clean_exit, fleet_targets

HELP = {
    "batch": "several hosts: switch N hosts (or P%) at a time, each batch checked before the "
             "next (default: all at once)",
    "serial": "several hosts: one whole deploy after the other (no shared prepare)",
    "max_fail": "several hosts: how many hosts (or P%) may fail while the rest go on "
                "(default 0: all or nothing)",
    "on_failure": "several hosts, when more fail than allowed: rollback (default: every "
                  "switched host goes back) or stop (they stay on the new release)",
}


def plan_of(hosts: int, group: Group | None, batch: str, serial: bool, max_fail: str,
            on_failure: str) -> Plan:
    """The fleet's Plan: the command line's options, else the group's defaults (hosts.yaml);
    a bad value names its option."""
    values: dict[str, int] = {}
    for option, given, default, minimum, rounding in (
            ("--batch", batch, group and group.batch, 1, "ceil"),
            ("--max-fail", max_fail, group and group.max_fail, 0, "floor")):
        value = given or default or ""
        if given:
            try:
                value = GROUP_FIELDS[option[2:].replace("-", "_")](given)
            except Bad as bad:
                raise WsgishipError(f"{option}: expected {bad.expected}, got {given!r}") from None
        values[option] = count_of(value, hosts, minimum=minimum, rounding=rounding) if value else 0
    policy = on_failure or (group and group.on_failure) or "rollback"
    if policy not in ON_FAILURE:
        raise WsgishipError(f"--on-failure: expected {' or '.join(ON_FAILURE)}, got {policy!r}")
    return Plan(batch=values["--batch"], max_fail=values["--max-fail"], on_failure=policy,
                serial=serial)


@task(help=HELP)
@clean_exit
def deploy(c: Any, batch: str = "", serial: bool = False, max_fail: str = "",
           on_failure: str = "") -> None:
    """Ship the app: new release, venv, configs, switch, reload uWSGI + nginx, health check.
    On several hosts (-H web1,web2 or a group): prepared everywhere, then switched."""
    served = fleet_targets(c, "deploy")
    if served is None:
        return
    targets, group = served
    printer = Printer()
    if len(targets) > 1:
        plan = plan_of(len(targets), group, batch, serial, max_fail, on_failure)
        fleet_deploy(targets, plan, printer)
        return
    one(targets[0], printer)


def one(t: Target, printer: Printer) -> None:
    out = Reporter(t.label, printer)
    release = Deploy(t.remote, t.host.app, out).run()
    out.line(f"deployed {release} -> {site_url(t.remote, t.host.app)} in {out.elapsed:.1f}s")
