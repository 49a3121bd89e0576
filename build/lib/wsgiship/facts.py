"""Facts read back from a host: a command plus a parser of its output."""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

from .errors import WsgishipError
from .layout import Paths
from .shell import q, script


@dataclass(frozen=True)
class ReleaseInfo:
    name: str
    revision: str
    failed: str = ""            # reason, when the release is marked failed
    deployed_by: str = ""
    deployed_at: str = ""
    result: str = ""            # last deploy-log result for this release
    pending: bool = False       # unpacked, not yet through its health check
    complete: bool = True       # its venv is there

    @property
    def ok(self) -> bool:
        """Passed its health check and can run: only such a release is a rollback target."""
        return not self.failed and not self.pending and self.complete

    @property
    def status(self) -> str:
        if self.failed:
            return f"failed: {self.failed}"
        if self.pending:
            return "pending"
        return "ok" if self.complete else "incomplete: no venv"


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
        '  pending=0; [ ! -e "$r/PENDING" ] || pending=1',
        '  venv=0; [ ! -x "$r/.venv/bin/python" ] || venv=1',
        '  printf "release\\t%s\\t%s\\t%s\\t%s\\t%s\\n" "$r" "$rev" "$failed" "$pending" "$venv"',
        "done",
        f"if [ -f {q(p.lock)}/holder ]; then printf 'lock\\t'; head -n1 {q(p.lock)}/holder; fi",
        f"tail -n {int(log_lines)} {q(p.log)} 2>/dev/null | sed 's/^/log\\t/' || true",
    ])


def _json_object(text: str) -> dict | None:
    """A JSON object from one line; None for anything else (cut short, hand-edited)."""
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def parse_state(text: str) -> State:
    current, lock, rows, log = "", "", [], []
    for line in text.splitlines():
        kind, _, rest = line.partition("\t")
        if kind == "current":
            current = rest.strip()
        elif kind == "release":
            fields = rest.split("\t")
            name, rev, failed, pending, venv = fields + ["", "", "", "0", "1"][len(fields):]
            rows.append((name, rev, failed, pending == "1", venv != "0"))
        elif kind == "lock":
            lock = rest
        elif kind == "log":
            entry = _json_object(rest)
            if entry is not None:
                log.append(entry)
    last: dict[str, dict] = {}
    for entry in log:
        if entry.get("action") == "deploy" and entry.get("release"):
            last[entry["release"]] = entry
    releases = tuple(
        ReleaseInfo(name, rev, failed, last.get(name, {}).get("by", ""),
                    last.get(name, {}).get("started", ""), last.get(name, {}).get("result", ""),
                    pending, complete)
        for name, rev, failed, pending, complete in rows
    )
    return State(os.path.basename(current), releases, lock, tuple(log))


def rollback_target(state: State, to: str = "") -> str:
    """The release a rollback goes to: `to`, else the newest good one before current. An error
    (without the host) when there is none or `to` cannot be one."""
    if to:
        target = state.get(to)
        known = ", ".join(r.name for r in state.releases if r.ok) or "none"
        if target is None:
            raise WsgishipError(f"no release {to!r} (good releases: {known})")
        if not target.ok:
            raise WsgishipError(f"release {to} is not a good one ({target.status}); pick one "
                                f"of: {known}")
        if target.name == state.current:
            raise WsgishipError(f"{to} is already current")
        return target.name
    if not state.current:
        raise WsgishipError("nothing deployed yet, nothing to roll back")
    previous = state.previous_good()
    if previous is None:
        raise WsgishipError(f"no good release before {state.current} to roll back to")
    return previous.name


def describe_lock(text: str, stale_after: int, now: float | None = None) -> str:
    """'user@machine (action) since T' from the lock's holder file; STALE when old."""
    info = _json_object(text.strip().splitlines()[0] if text.strip() else "")
    if info is None:
        return "an unknown holder (unreadable lock)"
    since = info.get("since", "?")
    msg = f"{info.get('by', '?')} ({info.get('action', 'deploy')}) since {since}"
    try:
        at = datetime.strptime(since, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()
    except (TypeError, ValueError):
        return msg
    age = (time.time() if now is None else now) - at
    if age > stale_after:
        msg += f" — STALE ({int(age // 60)} min old); if no deploy is running: fab unlock -H HOST"
    return msg


def releases_table(state: State) -> list[str]:
    """`fab releases`: newest first, `*` on current, then the lock if any (lines without host)."""
    rows = [("", "RELEASE", "REVISION", "DEPLOYED AT", "BY", "STATUS")]
    for r in reversed(state.releases):
        status = r.status
        rev = r.revision.removeprefix("sha256:")[:12]
        rows.append(("*" if r.name == state.current else "", r.name, rev,
                     r.deployed_at or "-", r.deployed_by or "-", status))
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    lines = ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=False)) + "  " + row[5]
             for row in rows]
    if state.lock:
        lines.append(f"locked: {state.lock}")
    return lines
