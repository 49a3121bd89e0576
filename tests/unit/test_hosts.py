"""wsgiship.hosts: an operation on several hosts, one after the other (serial) or all at once
(concurrent), and what the caller is told after a serial run (finish)."""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from wsgiship.errors import RemoteError, WsgishipError
from wsgiship.hosts import Outcome, concurrent, finish, serial
from wsgiship.output import Printer


@dataclass(frozen=True)
class Box:
    """A target: anything with a label."""

    label: str


def boxes(*labels: str) -> list[Box]:
    return [Box(label) for label in labels]


def work(failing: set[str], ran: list[str] | None = None) -> Callable[[Box], str]:
    """An operation that fails (a WsgishipError naming the host) on the `failing` labels."""

    def run(box: Box) -> str:
        if ran is not None:
            ran.append(box.label)
        if box.label in failing:
            raise WsgishipError(f"{box.label} broke", host=box.label)
        return box.label.upper()

    return run


def summary(outcomes: list[Outcome[Box, str]]) -> list[tuple[str, bool, bool, str | None, str | None]]:
    """(label, ran, ok, value, error) of each outcome."""
    return [(o.target.label, o.ran, o.ok, o.value, str(o.error) if o.error else None) for o in outcomes]


# --- serial ---


@pytest.mark.parametrize("labels, failing, expected", [
    ([], set(), []),
    (["a", "b", "c"], set(), [("a", True, True, "A", None), ("b", True, True, "B", None),
                              ("c", True, True, "C", None)]),
    # stops at the first failure: the hosts after it do not run
    (["a", "b", "c", "d"], {"b", "d"}, [("a", True, True, "A", None), ("b", True, False, None, "b: b broke"),
                                        ("c", False, False, None, None), ("d", False, False, None, None)]),
    (["a", "b"], {"a"}, [("a", True, False, None, "a: a broke"), ("b", False, False, None, None)]),
    (["a", "b"], {"b"}, [("a", True, True, "A", None), ("b", True, False, None, "b: b broke")]),
])
def test_serial(labels: list[str], failing: set[str],
                expected: list[tuple[str, bool, bool, str | None, str | None]]) -> None:
    ran: list[str] = []
    outcomes = serial(boxes(*labels), work(failing, ran))
    assert summary(outcomes) == expected
    assert ran == [label for label, did, *_ in expected if did]


@pytest.mark.parametrize("stop, ran", [
    (lambda o: o.value == "B", ["a", "b"]),   # stops after a success
    (lambda o: False, ["a", "b", "c"]),       # never stops, not even on a failure
])
def test_serial_with_a_custom_stop(stop: Callable[[Outcome[Box, str]], bool], ran: list[str]) -> None:
    seen: list[str] = []
    outcomes = serial(boxes("a", "b", "c"), work({"a"}, seen), stop=stop)
    assert seen == ran
    assert [o.ran for o in outcomes] == [label in ran for label in "abc"]
    assert isinstance(outcomes[0].error, WsgishipError)


def test_serial_lets_other_exceptions_through() -> None:
    def boom(box: Box) -> str:
        raise KeyError(box.label)

    with pytest.raises(KeyError):
        serial(boxes("a"), boom)


# --- concurrent ---


@pytest.mark.parametrize("labels, failing", [
    ([], set()),
    (["a", "b", "c"], set()),
    (["a", "b", "c", "d"], {"a", "c"}),
    (["a", "b"], {"a", "b"}),
])
def test_concurrent_runs_every_host_and_keeps_their_order(labels: list[str], failing: set[str]) -> None:
    # all at once: each waits at a barrier for all the others (one at a time would never pass it)
    barrier = threading.Barrier(len(labels) or 1, timeout=5)
    delays = {label: 0.01 * (len(labels) - i) for i, label in enumerate(labels)}  # first ends last

    def run(box: Box) -> str:
        barrier.wait()
        time.sleep(delays[box.label])
        return work(failing)(box)

    outcomes = concurrent(boxes(*labels), run)
    assert summary(outcomes) == [
        (label, True, False, None, f"{label}: {label} broke") if label in failing
        else (label, True, True, label.upper(), None) for label in labels]


@pytest.mark.parametrize("exc", [KeyError("x"), RuntimeError("bug"), KeyboardInterrupt()])
def test_concurrent_reraises_what_is_not_a_wsgiship_error(exc: BaseException) -> None:
    done: list[str] = []

    def run(box: Box) -> str:
        if box.label == "b":
            raise exc
        done.append(box.label)
        return "ok"

    with pytest.raises(type(exc)) as info:
        concurrent(boxes("a", "b", "c"), run)
    assert info.value is exc
    assert sorted(done) == ["a", "c"]  # the others still ran to their end


def test_concurrent_captures_every_subclass_of_wsgiship_error() -> None:
    def run(box: Box) -> str:
        raise RemoteError("step failed", "detail", host=box.label)

    outcomes = concurrent(boxes("a", "b"), run)
    assert [type(o.error) for o in outcomes] == [RemoteError, RemoteError]
    assert [o.error.host for o in outcomes if o.error] == ["a", "b"]


# --- finish ---


def printer() -> tuple[Printer, io.BytesIO, io.BytesIO]:
    out, err = io.BytesIO(), io.BytesIO()
    return Printer(out, err), out, err


def outcome(label: str, ran: bool = True, error: bool = False) -> Outcome[Box, str]:
    return Outcome(Box(label), value=None if error or not ran else "v", ran=ran,
                   error=WsgishipError(f"{label} failed", host=label) if error else None)


@pytest.mark.parametrize("outcomes, raised, note", [
    ([], None, b""),
    ([outcome("a"), outcome("b")], None, b""),
    ([outcome("a", error=True)], "a: a failed", b""),
    ([outcome("a"), outcome("b", error=True), outcome("c", ran=False), outcome("d", ran=False)],
     "b: b failed", b"[b] stopped here; left as they were: c, d\n"),
    # the first failure is raised (several failed: a run that does not stop)
    ([outcome("a", error=True), outcome("b", error=True)], "a: a failed", b""),
    # hosts that did not run but no failure: nothing to say
    ([outcome("a"), outcome("b", ran=False)], None, b""),
])
def test_finish(outcomes: list[Outcome[Box, str]], raised: str | None, note: bytes) -> None:
    p, out, err = printer()
    if raised is None:
        assert finish(outcomes, p, "left as they were") is None
    else:
        with pytest.raises(WsgishipError) as info:
            finish(outcomes, p, "left as they were")
        assert str(info.value) == raised
        assert info.value is next(o.error for o in outcomes if o.error)
    assert err.getvalue() == note
    assert out.getvalue() == b""


def test_finish_after_serial() -> None:
    p, _, err = printer()
    outcomes = serial(boxes("web1", "web2", "web3"), work({"web1"}))
    with pytest.raises(WsgishipError, match="^web1: web1 broke$"):
        finish(outcomes, p, "not deployed")
    assert err.getvalue() == b"[web1] stopped here; not deployed: web2, web3\n"
