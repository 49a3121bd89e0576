"""What the user sees: whole lines labelled with their host, safe to write from many threads.

Remote text is shown with its control characters escaped (`\\x1b`), so nothing a server sends
can drive the terminal.
"""

from __future__ import annotations

import os
import re
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import BinaryIO, TextIO

from .errors import Interrupted

# C0 controls but tab, DEL and C1 controls: a line must not drive the terminal.
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f]")


def visible(text: str) -> str:
    """The text with control characters shown as \\xNN (a trailing \\r dropped)."""
    text = text.removesuffix("\r")
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def visible_lines(text: str) -> str:
    """Several lines, each made visible (the newlines kept)."""
    return "\n".join(visible(line) for line in text.split("\n"))


class Printer:
    """Writes whole lines to stdout (results) and stderr (notes), UTF-8, from many threads."""

    def __init__(self, out: BinaryIO | None = None, err: BinaryIO | None = None) -> None:
        # text written to sys.stdout/sys.stderr before (print) must come out first
        self._text: list[TextIO] = [s for s, given in ((sys.stdout, out), (sys.stderr, err))
                                    if given is None]
        self.out = out or sys.stdout.buffer
        self.err = err or sys.stderr.buffer
        self.lock = threading.Lock()
        self.broken = threading.Event()  # stdout's reader went away (e.g. `| head`)

    def write(self, text: str, *, end: str = "\n", stream: BinaryIO | None = None) -> None:
        data = (text + end).encode("utf-8", "replace")
        with self.lock:
            if self.broken.is_set():
                return
            try:
                for t in self._text:
                    t.flush()
                target = stream or self.out
                target.write(data)
                target.flush()
            except BrokenPipeError:
                self.broken.set()

    def line(self, host: str, source: str, text: str) -> None:
        """A log line: `[host] source | text`."""
        self.write(f"[{host}] {source} | {visible(text)}")

    def plain(self, host: str, text: str) -> None:
        self.write(f"[{host}] {visible(text)}")

    def note(self, host: str, text: str) -> None:
        self.write(f"[{host}] {visible(text)}", stream=self.err)


class Step:
    def __init__(self) -> None:
        self.detail = ""


class Reporter:
    """One line per step of an operation on one host, with its elapsed time.

    A step's line is written whole when the step ends. `live` (one host at a time, on a
    terminal) shows the step's name as it starts, so a long step shows what it waits for.
    """

    def __init__(self, label: str, printer: Printer | None = None, live: bool | None = None,
                 cancel: threading.Event | None = None) -> None:
        self.label = label
        self.printer = printer or Printer()
        self.live = _is_terminal() if live is None else live
        self.started = time.monotonic()
        # set by a Ctrl-C in a fleet run: the next step of this host raises Interrupted
        self.cancel = cancel

    def check_cancel(self) -> None:
        if self.cancel is not None and self.cancel.is_set():
            raise Interrupted("interrupted", host=self.label)

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def line(self, text: str) -> None:
        self.printer.plain(self.label, text)

    @contextmanager
    def step(self, name: str) -> Iterator[Step]:
        """Time a step; its line says FAILED if it raised. In a fleet run interrupted by
        Ctrl-C, the step does not start (Interrupted)."""
        self.check_cancel()
        step, end = Step(), self.begin(name)
        try:
            yield step
        except BaseException:
            end("", failed=True)
            raise
        end(step.detail)

    def begin(self, name: str) -> Callable[..., None]:
        """Start a step's line; call what it returns with the step's detail (or failed=True)
        when the step ends."""
        t0 = time.monotonic()
        head = f"[{self.label}] {name:<19}"
        if self.live:
            self.printer.write(head, end="")

        def end(detail: str, failed: bool = False, took: float | None = None) -> None:
            """`took`: the step's own time, when it was measured where it ran."""
            spent = f"{time.monotonic() - t0 if took is None else took:6.2f}s"
            if failed:
                self._end(head, f"{spent}  FAILED")
            else:
                self._end(head, spent + (f"  {visible(detail)}" if detail else ""))
        return end

    def _end(self, head: str, tail: str) -> None:
        self.printer.write(tail if self.live else head + tail)


def _is_terminal() -> bool:
    try:
        return sys.stdout.isatty()
    except (AttributeError, ValueError):
        return False


class PrefixedOut:
    """A text stream writing whole lines as `[host] line` (a command's output on several hosts)."""

    def __init__(self, host: str, printer: Printer) -> None:
        self.host, self.printer, self.buf = host, printer, ""

    def write(self, text: str) -> int:
        self.buf += text
        *lines, self.buf = self.buf.split("\n")
        for line in lines:
            self.printer.plain(self.host, line)
        return len(text)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        if self.buf:
            self.printer.plain(self.host, self.buf)
            self.buf = ""


def quiet_broken_stdout() -> None:
    """After stdout's reader went away, point stdout at /dev/null so the exit stays quiet."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except OSError:
        pass


def utf8_stdio() -> None:
    """Write UTF-8 to the terminal whatever the local locale says."""
    for stream in (sys.stdout, sys.stderr, sys.stdin):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            try:
                reconfigure(encoding="utf-8", errors="replace")
            except (ValueError, OSError):
                pass
