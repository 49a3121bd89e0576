"""Host groups from hosts.yaml's `groups:`: a name for several hosts (or other groups), with
optional defaults for a fleet deploy (batch, max_fail, on_failure).

Each group is expanded once, at load time, into its host aliases: in the order given, groups
of groups depth first, each host once. Errors name the file and the key.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .errors import ConfigError
from .schema import count_of, show

__all__ = ["Group", "count_of", "expand_groups"]


@dataclass(frozen=True)
class Group:
    name: str
    members: tuple[str, ...]         # host aliases, fully expanded, in order, each once
    batch: str | None = None         # "2" or "25%"
    max_fail: str | None = None      # "0" or "10%"
    on_failure: str | None = None    # rollback | stop


@dataclass(frozen=True)
class Definition:
    """One group as written: its direct members (aliases or group names) and its settings."""

    name: str
    where: str                        # the key of its member list: groups.NAME or groups.NAME.hosts
    members: tuple[Any, ...]
    settings: Mapping[str, str]


def expand_groups(shown: str, defs: Sequence[Definition], aliases: Sequence[str]) -> dict[str, Group]:
    """Check every member and expand every group; a ConfigError naming the key on a member
    that is neither a host alias nor a group, an empty group or a cycle."""
    by_name = {d.name: d for d in defs}
    for d in defs:
        if not d.members:
            raise ConfigError(f"{shown}: {d.where}: empty; list at least one host alias or group")
        for i, member in enumerate(d.members):
            _check_member(shown, f"{d.where}[{i}]", member, aliases, list(by_name))
    groups: dict[str, Group] = {}
    for d in defs:
        members = _expand(shown, d.name, by_name, [])
        groups[d.name] = Group(d.name, tuple(dict.fromkeys(members)), **d.settings)
    return groups


def _check_member(shown: str, key: str, member: Any, aliases: Sequence[str],
                  groups: Sequence[str]) -> None:
    if not isinstance(member, str):
        raise ConfigError(f"{shown}: {key}: expected a host alias or group name, got {show(member)}")
    if member in aliases or member in groups:
        return
    close = difflib.get_close_matches(member, [*aliases, *groups], n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    known = f"hosts: {', '.join(aliases) or 'none'}"
    if groups:
        known += f"; groups: {', '.join(groups)}"
    raise ConfigError(f"{shown}: {key}: unknown host alias {member!r}{hint} ({known})")


def _expand(shown: str, name: str, defs: Mapping[str, Definition], path: list[str]) -> list[str]:
    """The host aliases of group `name`, depth first; `path`: the groups being expanded."""
    if name in path:
        cycle = " -> ".join([*path[path.index(name):], name])
        raise ConfigError(f"{shown}: groups.{name}: a cycle: {cycle}; a group cannot "
                          f"contain itself")
    hosts: list[str] = []
    for member in defs[name].members:
        if member in defs:
            hosts += _expand(shown, member, defs, [*path, name])
        else:
            hosts.append(member)
    return hosts
