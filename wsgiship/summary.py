"""The table after an operation on several hosts: one row a host, what it serves now, how it
went, how long it took and why it failed."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .output import visible

HEADER = ("HOST", "RELEASE", "RESULT", "TIME", "REASON")
REASON_WIDTH = 100  # characters of a reason shown: one line each, the rest is in the host's output


@dataclass
class Row:
    host: str
    release: str          # the release the host serves now (or was to); "" when unknown
    result: str           # e.g. ok, failed, already, skipped
    seconds: float | None  # None: not run
    reason: str = ""      # why it failed (its first line is shown)


def shorten(text: str, width: int = REASON_WIDTH) -> str:
    """The first non-empty line of `text`, made visible, cut to `width` with an ellipsis."""
    line = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
    line = visible(line)
    return line if len(line) <= width else line[:width - 1].rstrip() + "…"


def table(rows: Sequence[Row]) -> list[str]:
    """Aligned lines: a header, then a row each (remote text made safe, one line each)."""
    cells = [HEADER] + [
        (visible(r.host), visible(r.release) or "-", visible(r.result) or "-",
         "-" if r.seconds is None else f"{r.seconds:.1f}s", shorten(r.reason))
        for r in rows
    ]
    widths = [max(len(c[i]) for c in cells) for i in range(len(HEADER) - 1)]
    return ["  ".join([*(v.ljust(w) for v, w in zip(c, widths, strict=False)), c[-1]]).rstrip()
            for c in cells]
