"""Facts read back from a host: a command plus a parser of its output."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

from .render import Paths
from .shell import q, script


@dataclass(frozen=True)
class ReleaseInfo:
    name: str
    revision: str
    failed: str = ""            # reason, when the release is marked failed
    deployed_by: str = ""
    deployed_at: str = ""
    result: str = ""            # last deploy-log result for this release

    @property
    def ok(self) -> bool:
        return not self.failed


@dataclass(frozen=True)
class State:
    current: str
    releases: tuple[ReleaseInfo, ...]   # oldest first
    lock: str = ""                      # holder JSON, if locked
    log: tuple[dict, ...] = field(default=())

    def get(self, name: str) -> ReleaseInfo | None:
        return next((r for r in self.releases if r.name == name), None)

    def previous_good(self) -> ReleaseInfo | None:
        """The newest good release older than current: the default rollback target."""
        older = [r for r in self.releases if r.name < self.current and r.ok]
        return older[-1] if older else None


def state_command(p: Paths, log_lines: int = 1000) -> str:
    """Releases with their REVISION and FAILED marks, `current`, the lock and the deploy log."""
    return script([
        f"cd {q(p.releases)} 2>/dev/null || exit 0",
        f"printf 'current\\t%s\\n' \"$(basename \"$(readlink {q(p.current)})\" 2>/dev/null)\"",
        "for r in $(ls -1 | sort); do",
        '  [ -d "$r" ] || continue',
        '  rev=$(head -n1 "$r/REVISION" 2>/dev/null || true)',
        '  failed=$(head -n1 "$r/FAILED" 2>/dev/null || true)',
        '  printf "release\\t%s\\t%s\\t%s\\n" "$r" "$rev" "$failed"',
        "done",
        f"if [ -f {q(p.lock)}/holder ]; then printf 'lock\\t'; head -n1 {q(p.lock)}/holder; fi",
        f"tail -n {int(log_lines)} {q(p.log)} 2>/dev/null | sed 's/^/log\\t/' || true",
    ])


def parse_state(text: str) -> State:
    current, lock, rows, log = "", "", [], []
    for line in text.splitlines():
        kind, _, rest = line.partition("\t")
        if kind == "current":
            current = rest.strip()
        elif kind == "release":
            name, rev, failed = (rest.split("\t") + ["", ""])[:3]
            rows.append((name, rev, failed))
        elif kind == "lock":
            lock = rest
        elif kind == "log":
            try:
                log.append(json.loads(rest))
            except ValueError:
                continue
    last: dict[str, dict] = {}
    for entry in log:
        if entry.get("action") == "deploy" and entry.get("release"):
            last[entry["release"]] = entry
    releases = tuple(
        ReleaseInfo(name, rev, failed, last.get(name, {}).get("by", ""),
                    last.get(name, {}).get("started", ""), last.get(name, {}).get("result", ""))
        for name, rev, failed in rows
    )
    return State(os.path.basename(current), releases, lock, tuple(log))
