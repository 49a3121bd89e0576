"""Facts about several hosts at once: which release each serves (drift), and the one release a
fleet rollback takes them all to.

Release names are shared across a fleet (a fleet deploy gives every host the same name, a UTC
timestamp then the revision), so they sort by time on every host alike.
"""

from __future__ import annotations

from collections.abc import Mapping

from .errors import WsgishipError
from .facts import State


def _verb(hosts: list[str], one: str, many: str) -> str:
    return f"{', '.join(hosts)} {one if len(hosts) == 1 else many}"


def drift_line(states: Mapping[str, State | None]) -> str:
    """One line on what the hosts serve: `all 3 hosts serve R`, or `drift: web1, web2 serve R2;
    web3 serves R1; web4 has no release`, newest first (None: the host could not be read)."""
    serving: dict[str, list[str]] = {}
    for host, state in states.items():
        if state is not None:
            serving.setdefault(state.current, []).append(host)
    unread = [host for host, state in states.items() if state is None]
    if len(serving) == 1 and not unread:
        release, hosts = next(iter(serving.items()))
        if release:
            return f"all {len(hosts)} hosts serve {release}"
        return f"none of the {len(hosts)} hosts has a release"
    parts = [_verb(serving[r], "serves", "serve") + f" {r}"
             for r in sorted((r for r in serving if r), reverse=True)]
    if "" in serving:
        parts.append(_verb(serving[""], "has no release", "have no release"))
    if unread:
        parts.append(_verb(unread, "could not be read", "could not be read"))
    return ("drift: " if len(serving) > 1 else "") + "; ".join(parts)


def good_everywhere(states: Mapping[str, State]) -> list[str]:
    """The releases that are on every host and good (ok) on each, oldest first."""
    names: set[str] | None = None
    for state in states.values():
        good = {r.name for r in state.releases if r.ok}
        names = good if names is None else names & good
    return sorted(names or ())


def fleet_rollback_target(states: Mapping[str, State], to: str = "") -> str:
    """The one release every host goes back to: `to` (it must be good on every host), else
    the newest release older than the newest one any host serves that is good on every host.
    An error (naming the hosts) when there is none."""
    common = good_everywhere(states)
    choices = f"good on every host: {', '.join(common) if common else 'none'}"
    if to:
        missing: list[str] = []
        bad: list[str] = []
        for host, state in states.items():
            info = state.get(to)
            if info is None:
                missing.append(host)
            elif not info.ok:
                bad.append(f"{host} ({info.status})")
        problems = ([f"not on {', '.join(missing)}"] if missing else []) + (
            [f"not a good one on {', '.join(bad)}"] if bad else [])
        if problems:
            raise WsgishipError(f"release {to} cannot be every host's: {'; '.join(problems)}; "
                                f"{choices}")
        return to
    serving = [s.current for s in states.values() if s.current]
    if not serving:
        raise WsgishipError(f"nothing deployed yet on {', '.join(states)}, nothing to roll back")
    newest = max(serving)
    older = [name for name in common if name < newest]
    if not older:
        raise WsgishipError(f"no release before {newest} is good on every host "
                            f"({', '.join(states)}); {choices}; pick one with --to RELEASE")
    return older[-1]
