"""Helpers of the tests of `fab setup`'s root scripts (test_setup_commands.py,
test_setup_site.py)."""

from __future__ import annotations

import re
from pathlib import Path

from fakes import calls


def calls_t(fakebin: Path) -> list[str]:
    """calls() with the scripts' mktemp files named $T."""
    return [re.sub(r"/tmp/tmp\.\w+", "$T", c) for c in calls(fakebin)]


def swap(text: str, path: str, to: Path, count: int) -> str:
    """The script with `path` replaced by `to`, after checking it names it `count` times."""
    assert text.count(path) == count, text
    return text.replace(path, str(to))
