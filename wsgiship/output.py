"""One line per step with its elapsed time."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO


class Step:
    def __init__(self) -> None:
        self.detail = ""


class Reporter:
    def __init__(self, label: str, stream: TextIO | None = None) -> None:
        self.label = label
        self.stream = stream or sys.stdout
        self.started = time.monotonic()

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def line(self, text: str) -> None:
        self.stream.write(f"[{self.label}] {text}\n")
        self.stream.flush()

    @contextmanager
    def step(self, name: str) -> Iterator[Step]:
        """Time a step; its line shows when it ends, FAILED if it raised."""
        step, t0 = Step(), time.monotonic()
        self.stream.write(f"[{self.label}] {name:<19}")
        self.stream.flush()
        try:
            yield step
        except BaseException:
            self.stream.write(f"{time.monotonic() - t0:6.2f}s  FAILED\n")
            self.stream.flush()
            raise
        detail = f"  {step.detail}" if step.detail else ""
        self.stream.write(f"{time.monotonic() - t0:6.2f}s{detail}\n")
        self.stream.flush()
