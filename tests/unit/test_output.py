"""wsgiship.output: the Printer (whole lines, escaped, from many threads), PrefixedOut and the
Reporter's step lines."""

from __future__ import annotations

import io
import re
import threading

import pytest

from wsgiship import output
from wsgiship.errors import ConfigError, RemoteError, WsgishipError


def test_printer_labels_lines_escapes_controls_and_writes_utf8() -> None:
    out, err = io.BytesIO(), io.BytesIO()
    p = output.Printer(out, err)
    p.line("web1", "app", "RuntimeError: kaboom ü\r")
    p.line("web1", "nginx", "evil \x1b[31mred\x07 \x9b tab\tkept")
    p.note("web2", "connection lost: EOF")
    assert out.getvalue().decode("utf-8").splitlines() == [
        "[web1] app | RuntimeError: kaboom ü",
        "[web1] nginx | evil \\x1b[31mred\\x07 \\x9b tab\tkept",
    ]
    assert err.getvalue() == b"[web2] connection lost: EOF\n"


def test_printer_never_interleaves_lines_from_threads() -> None:
    out = io.BytesIO()
    p = output.Printer(out, io.BytesIO())

    def write(host: str) -> None:
        for i in range(300):
            p.line(host, "app", f"{host} line {i} " + "x" * 200)

    threads = [threading.Thread(target=write, args=(f"h{n}",)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    lines = out.getvalue().decode().splitlines()
    assert len(lines) == 1200
    for line in lines:
        host = line[1:3]
        assert line.startswith(f"[{host}] app | {host} line ") and line.endswith("x" * 200)


def test_printer_stops_quietly_when_stdout_goes_away() -> None:
    class Closed(io.BytesIO):
        def write(self, data: bytes) -> int:  # type: ignore[override]
            raise BrokenPipeError

    p = output.Printer(Closed(), io.BytesIO())
    p.line("h", "app", "x")
    assert p.broken.is_set()


def test_prefixed_out_writes_whole_lines_per_host() -> None:
    out = io.BytesIO()
    stream = output.PrefixedOut("web2", output.Printer(out, io.BytesIO()))
    stream.write("one\ntw")
    stream.write("o\nthree")
    stream.close()
    assert out.getvalue().decode().splitlines() == ["[web2] one", "[web2] two", "[web2] three"]


# --- Reporter ---


def step_line(label: str, name: str, tail: str = "") -> re.Pattern[str]:
    """A step's whole line: `[label] name` padded to 19, the seconds, then `tail`."""
    return re.compile(re.escape(f"[{label}] {name:<19}") + r" *\d+\.\d\ds" + re.escape(tail))


@pytest.mark.parametrize("name, detail, tail", [
    ("upload", "", ""),
    ("venv", "reused", "  reused"),
    ("a step with a long name", "x", "  x"),                     # no padding left
    ("switch", "evil \x1b[2J\x07 tab\tkept\r", "  evil \\x1b[2J\\x07 tab\tkept"),
    ("check", "two\nlines", "  two\\x0alines"),                  # still one line
])
def test_reporter_writes_each_step_as_one_line(name: str, detail: str, tail: str) -> None:
    out, err = io.BytesIO(), io.BytesIO()
    r = output.Reporter("web1", output.Printer(out, err), live=False)
    with r.step(name) as st:
        st.detail = detail
        assert out.getvalue() == b""  # nothing before the step ends
    lines = out.getvalue().decode().split("\n")
    assert lines[1:] == [""] and step_line("web1", name, tail).fullmatch(lines[0]), lines
    assert err.getvalue() == b""


@pytest.mark.parametrize("exc", [RuntimeError("boom"), WsgishipError("no"), KeyboardInterrupt()])
@pytest.mark.parametrize("live", [False, True])
def test_reporter_says_failed_and_reraises(exc: BaseException, live: bool) -> None:
    out = io.BytesIO()
    r = output.Reporter("web1", output.Printer(out, io.BytesIO()), live=live)
    with pytest.raises(type(exc)) as info, r.step("health") as st:
        st.detail = "not shown on a failure"
        raise exc
    assert info.value is exc
    line = out.getvalue().decode()
    assert line.endswith("\n") and line.count("\n") == 1
    assert step_line("web1", "health", "  FAILED").fullmatch(line[:-1])


def test_reporter_live_shows_the_name_first() -> None:
    out = io.BytesIO()
    r = output.Reporter("web1", output.Printer(out, io.BytesIO()), live=True)
    with r.step("venv") as st:
        assert out.getvalue() == b"[web1] venv               "  # waiting: the name, no newline
        st.detail = "created"
    assert step_line("web1", "venv", "  created").fullmatch(out.getvalue().decode()[:-1])
    assert out.getvalue().endswith(b"s  created\n")


def test_reporter_lines_from_threads_are_never_mixed() -> None:
    out = io.BytesIO()
    printer = output.Printer(out, io.BytesIO())

    def deploy(label: str) -> None:
        r = output.Reporter(label, printer, live=False)
        for i in range(200):
            with r.step(f"step {i}") as st:
                st.detail = f"{label} detail {i} " + "x" * 100
            r.line(f"{label} plain {i}")

    threads = [threading.Thread(target=deploy, args=(f"web{n}",)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    lines = out.getvalue().decode().splitlines()
    assert len(lines) == 4 * 200 * 2
    for n in range(4):
        label = f"web{n}"
        mine = [line for line in lines if line.startswith(f"[{label}] ")]
        assert len(mine) == 400
        for i in range(200):
            step, plain = mine[2 * i], mine[2 * i + 1]
            assert step_line(label, f"step {i}", f"  {label} detail {i} " + "x" * 100).fullmatch(step)
            assert plain == f"[{label}] {label} plain {i}"


def test_reporter_line_is_labelled_and_escaped() -> None:
    out = io.BytesIO()
    output.Reporter("web2", output.Printer(out, io.BytesIO()), live=False).line("a\x1b[1mb")
    assert out.getvalue() == b"[web2] a\\x1b[1mb\n"


# --- visible_lines, and the CLI's errors printed through it ---


@pytest.mark.parametrize("text, shown", [
    ("plain", "plain"),
    ("two\nlines", "two\nlines"),                                      # newlines kept
    # a CRLF line end is a line end; a \r inside a line is shown
    ("evil \x1b[2J\x07 tab\tkept\r\nnext \x9b line", "evil \\x1b[2J\\x07 tab\tkept\nnext \\x9b line"),
    ("over\rwritten", "over\\x0dwritten"),
    ("\n\x00\n", "\n\\x00\n"),
    ("", ""),
])
def test_visible_lines_escapes_control_characters_per_line(text: str, shown: str) -> None:
    assert output.visible_lines(text) == shown
    assert output.visible_lines(text).split("\n") == [output.visible(line)
                                                      for line in text.split("\n")]


@pytest.mark.parametrize("exc, message, code", [
    (WsgishipError("locked by \x1b]0;owned\x07eve", host="web1"),
     "error: web1: locked by \\x1b]0;owned\\x07eve", 1),
    (RemoteError("health check failed", "HTTP 500\n\x1b[2Jbody\r", host="web1"),
     "error: web1: health check failed\n  | HTTP 500\n  | \\x1b[2Jbody", 1),
    (ConfigError("hosts.yaml: app.name: missing (required)"),
     "error: hosts.yaml: app.name: missing (required)", 2),
])
def test_clean_exit_prints_errors_with_their_control_characters_escaped(
        exc: WsgishipError, message: str, code: int) -> None:
    from invoke import Exit

    from wsgiship.tasks.common import clean_exit

    @clean_exit
    def task() -> None:
        raise exc

    with pytest.raises(Exit) as info:
        task()
    assert (info.value.message, info.value.code) == (message, code)


def test_clean_exit_passes_results_and_other_errors_through() -> None:
    from wsgiship.tasks.common import clean_exit

    assert clean_exit(lambda x: x + 1)(1) == 2
    with pytest.raises(ZeroDivisionError):
        clean_exit(lambda: 1 / 0)()
