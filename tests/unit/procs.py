"""Processes as the lock names them: "PID START" (the start time tells a reused pid apart)."""

from __future__ import annotations

import subprocess
from pathlib import Path


def start_time(pid: int) -> str:
    """Field 22 of /proc/PID/stat (counted after the command name, which may hold spaces)."""
    text = Path(f"/proc/{pid}/stat").read_text()
    return text[text.rfind(")") + 2:].split()[19]


def ident(pid: int) -> str:
    """A process as the lock names it: "PID START"."""
    return f"{pid} {start_time(pid)}"


def dead_ident() -> str:
    """The "PID START" of a process that has exited."""
    proc = subprocess.Popen(["sleep", "60"])
    who = ident(proc.pid)
    proc.kill()
    proc.wait()
    return who
