"""wsgiship.summary: the per-host table after an operation on several hosts."""

from __future__ import annotations

from wsgiship.summary import REASON_WIDTH, Row, shorten, table


def test_columns_are_aligned_under_a_header() -> None:
    lines = table([
        Row("web1", "20261129T101500Z-abc1234", "ok", 12.34),
        Row("web-long", "20261128T090000Z-def5678", "failed", 3.0, "health check: 502"),
        Row("web3", "", "skipped", None),
    ])
    assert lines == [
        "HOST      RELEASE                   RESULT   TIME   REASON",
        "web1      20261129T101500Z-abc1234  ok       12.3s",
        "web-long  20261128T090000Z-def5678  failed   3.0s   health check: 502",
        "web3      -                         skipped  -",
    ]


def test_no_rows_is_the_header_alone() -> None:
    assert table([]) == ["HOST  RELEASE  RESULT  TIME  REASON"]


def test_remote_text_cannot_drive_the_terminal() -> None:
    lines = table([Row("web1", "r\x1b[2J", "failed", 1.0, "boom\x1b]0;owned\x07 here")])
    assert "\x1b" not in "".join(lines) and "\x07" not in "".join(lines)
    assert lines[1].endswith("boom\\x1b]0;owned\\x07 here")
    assert "r\\x1b[2J" in lines[1]


def test_a_reason_is_one_line_and_cut() -> None:
    lines = table([Row("web1", "r1", "failed", 1.0, "\n  first line\nsecond line\n")])
    assert lines[1].endswith("first line") and len(lines) == 2
    long = shorten("x" * 500)
    assert len(long) == REASON_WIDTH and long.endswith("…")
    assert shorten("short") == "short"
    assert shorten("") == ""
