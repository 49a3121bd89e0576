"""The table that ends an operation on several hosts: one row per host."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .output import visible

REASON_WIDTH = 100


@dataclass
class Row:
    host: str
    release: str
    result: str
    seconds: float | None
    reason: str = ""


def table(rows: Sequence[Row]) -> list[str]:
    """Aligned columns: host, release, result, time, reason (one line each)."""
    cells = [("host", "release", "result", "time", "reason")]
    for r in rows:
        reason = visible(r.reason.splitlines()[0] if r.reason else "")
        if len(reason) > REASON_WIDTH:
            reason = reason[:REASON_WIDTH - 3] + "..."
        cells.append((visible(r.host), visible(r.release or "-"), r.result,
                      "-" if r.seconds is None else f"{r.seconds:.1f}s", reason))
    widths = [max(len(c[i]) for c in cells) for i in range(4)]
    return [("  ".join(c[i].ljust(widths[i]) for i in range(4)) + "  " + c[4]).rstrip()
            for c in cells]
