"""The one place that runs an operation on several hosts.

`serial` runs it on one host after the other and stops at the first failure (the hosts after it
are left as they were); `concurrent` runs it on every host at once, a thread each. Either way
the outcome of every host comes back in the order the hosts were given, and each host's output
goes through one Printer, a whole line at a time.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from .config import Host
from .errors import WsgishipError
from .output import Printer
from .remote import Remote

T = TypeVar("T")


class Labelled(Protocol):
    @property
    def label(self) -> str: ...


I = TypeVar("I", bound=Labelled)  # noqa: E741 - what the operation runs on: a Target or alike


@dataclass
class Target:
    """One host to work on: its connection and its settings."""

    remote: Remote
    host: Host

    @property
    def label(self) -> str:
        return self.host.alias


@dataclass
class Outcome(Generic[I, T]):
    target: I
    value: T | None = None
    error: WsgishipError | None = None
    ran: bool = True

    @property
    def ok(self) -> bool:
        return self.ran and self.error is None


def _one(target: I, work: Callable[[I], T]) -> Outcome[I, T]:
    try:
        return Outcome(target, value=work(target))
    except WsgishipError as exc:
        return Outcome(target, error=exc)


def serial(targets: Sequence[I], work: Callable[[I], T],
           stop: Callable[[Outcome[I, T]], bool] = lambda o: not o.ok) -> list[Outcome[I, T]]:
    """Run `work` on each target in turn, until `stop` says so (by default: a failure)."""
    outcomes: list[Outcome[I, T]] = []
    for i, target in enumerate(targets):
        outcome = _one(target, work)
        outcomes.append(outcome)
        if stop(outcome):
            outcomes += [Outcome(t, ran=False) for t in targets[i + 1:]]
            break
    return outcomes


def concurrent(targets: Sequence[I], work: Callable[[I], T]) -> list[Outcome[I, T]]:
    """Run `work` on every target at once; Ctrl-C still reaches the caller meanwhile."""
    outcomes: dict[int, Outcome[I, T]] = {}
    crashed: list[BaseException] = []

    def run(i: int, target: I) -> None:
        try:
            outcomes[i] = _one(target, work)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            crashed.append(exc)

    threads = start(targets, run)
    for t in threads:
        while t.is_alive():
            t.join(0.2)
    if crashed:
        raise crashed[0]
    return [outcomes[i] for i in range(len(targets))]


def start(targets: Sequence[I], run: Callable[[int, I], None]) -> list[threading.Thread]:
    """A started daemon thread per target running run(index, target)."""
    threads = [threading.Thread(target=run, args=(i, t), daemon=True)
               for i, t in enumerate(targets)]
    for t in threads:
        t.start()
    return threads


def finish(outcomes: Sequence[Outcome[I, T]], printer: Printer, left_as_is: str) -> None:
    """After a serial run: say which hosts were not reached, and raise the failure (with one
    host, its own error; with several, it names them)."""
    failed = [o for o in outcomes if o.ran and o.error is not None]
    if not failed:
        return
    skipped = [o.target.label for o in outcomes if not o.ran]
    if skipped:
        printer.note(failed[0].target.label, f"stopped here; {left_as_is}: {', '.join(skipped)}")
    raise failed[0].error  # type: ignore[misc]
