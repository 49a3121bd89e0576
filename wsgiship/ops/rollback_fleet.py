"""`fab rollback` on several hosts: every host back to the same release.

The hosts' releases are read first (all of them, at once); the one target is chosen from them
(wsgiship.fleetfacts.fleet_rollback_target) before any host moves, so a host that cannot be
read, or a release missing somewhere, leaves every host as it was. Then each host rolls back
with its own Rollback, all at once; a host already on the target is not touched.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from .. import hosts
from ..errors import WsgishipError
from ..facts import State
from ..fleetfacts import fleet_rollback_target
from ..hosts import Target
from ..output import Printer, Reporter
from ..summary import Row
from .publish import site_url
from .rollback import Rollback
from .state import releases


def error_lines(printer: Printer, label: str, error: WsgishipError) -> None:
    """A host's error on stderr, a line each, labelled with the host."""
    first, *rest = error.describe(with_host=False).splitlines() or [error.reason]
    printer.note(label, f"error: {first}")
    for line in rest:
        printer.note(label, line)


def read_states(targets: Sequence[Target], printer: Printer) -> dict[str, State | None]:
    """Every host's releases, read at once (None for a host that could not be read: its error
    is shown)."""
    outcomes = hosts.concurrent(targets, lambda t: releases(t.remote, t.host.app))
    states: dict[str, State | None] = {}
    for o in outcomes:
        if o.error is not None:
            error_lines(printer, o.target.label, o.error)
        states[o.target.label] = o.value if o.error is None else None
    return states


def rollback_fleet(targets: Sequence[Target], to: str, printer: Printer) -> tuple[str, list[Row]]:
    """Roll every host back to one release; return it and a summary Row a host (in the
    hosts' order). Raise before anything moves when the hosts cannot agree on a target."""
    read = read_states(targets, printer)
    unread = [label for label, state in read.items() if state is None]
    if unread:
        raise WsgishipError(f"could not read the releases of {', '.join(unread)}; no host "
                            f"rolled back")
    states = {label: state for label, state in read.items() if state is not None}
    target = fleet_rollback_target(states, to)
    printer.write(f"rolling back {len(targets)} hosts to {target}")
    started: dict[str, float] = {}

    def one(t: Target) -> Row:
        out = Reporter(t.label, printer, live=False)
        started[t.label] = out.started
        if states[t.label].current == target:
            out.line(f"already on {target}")
            return Row(t.label, target, "already", None)
        release = Rollback(t.remote, t.host.app, out, target).run()
        if release != target:
            return Row(t.label, release, "other", out.elapsed,
                       f"serves {release}, not {target}; roll it back again")
        out.line(f"rolled back to {release} -> {site_url(t.remote, t.host.app)} "
                 f"in {out.elapsed:.1f}s")
        return Row(t.label, release, "ok", out.elapsed)

    rows = []
    for o in hosts.concurrent(targets, one):
        label = o.target.label
        if o.value is not None:
            rows.append(o.value)
            continue
        assert o.error is not None
        error_lines(printer, label, o.error)
        took = time.monotonic() - started[label] if label in started else None
        rows.append(Row(label, states[label].current, "failed", took, o.error.reason))
    return target, rows


def failures(target: str, rows: Sequence[Row]) -> WsgishipError | None:
    """The error to exit with when a host is not on the target, naming those hosts."""
    bad = [r.host for r in rows if r.result not in ("ok", "already")]
    if not bad:
        return None
    return WsgishipError(f"rollback to {target} failed on {', '.join(bad)} (see above); "
                         f"{len(rows) - len(bad)} of {len(rows)} hosts serve {target}")
