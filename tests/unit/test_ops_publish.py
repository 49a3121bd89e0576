"""wsgiship.ops.publish.recovering: what a client that died left (pending releases), resolved by
the next deploy or rollback under the lock.

The session is a stand-in holding the facts prepare reported; its remote (fakes.LocalRemote)
runs the scripts here on a deploy tree in tmp_path, so a mark_failed or mark_ok really marks
the release; read_state reads that tree. publishing and verifying (SSH, services, nginx) are
replaced by recorders that fail where a test says."""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from fakes import LocalRemote, add_release

from wsgiship.commands import release as rel
from wsgiship.config import App
from wsgiship.errors import RemoteError, WsgishipError
from wsgiship.layout import Paths, paths_for
from wsgiship.ops import publish

R1, R2, R3, R4 = (f"20250101T00000{i}Z-{i:07x}" for i in range(1, 5))
ABANDONED = "abandoned: its deploy never finished"


class Lines:
    """The Reporter's `line`, kept."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def line(self, text: str) -> None:
        self.lines.append(text)


@dataclass
class FakeSession:
    """What recovering uses of a Session: app, paths, remote, facts, out and record."""

    app: App
    facts: dict[str, str]
    remote: LocalRemote = field(default_factory=LocalRemote)
    out: Lines = field(default_factory=Lines)
    records: list[tuple[str, str, dict[str, object]]] = field(default_factory=list)

    @property
    def paths(self) -> Paths:
        return paths_for(self.app)

    def record(self, release: str, result: str, **fields: object) -> None:
        self.records.append((release, result, fields))


@dataclass
class Flow:
    """The stages recovering called, in order, and where they fail: (stage, release) -> error."""

    calls: list[tuple[object, ...]] = field(default_factory=list)
    fail: dict[tuple[str, str], WsgishipError] = field(default_factory=dict)

    def publishing(self, s: FakeSession, release: str, previous: str,
                   leaving_failed: bool = False) -> None:
        self.calls.append(("publishing", release, previous, leaving_failed))
        if ("publishing", release) in self.fail:
            raise self.fail["publishing", release]

    def verifying(self, s: FakeSession, release: str, mark_ok: bool = False) -> None:
        self.calls.append(("verifying", release))
        if ("verifying", release) in self.fail:
            raise self.fail["verifying", release]
        if mark_ok:  # as the real one: in the health check's own script
            s.remote.run(rel.mark_ok(s.paths, release), what="mark verified")


@pytest.fixture
def flow(monkeypatch: pytest.MonkeyPatch) -> Flow:
    f = Flow()
    monkeypatch.setattr(publish, "publishing", f.publishing)
    monkeypatch.setattr(publish, "verifying", f.verifying)
    real = publish.read_state

    def read_state(remote: LocalRemote, app: App) -> object:
        f.calls.append(("read_state",))
        return real(remote, app)  # type: ignore[arg-type]  # the stand-in runs it here

    monkeypatch.setattr(publish, "read_state", read_state)
    return f


def good(deploy: Path, name: str) -> Path:
    """A release that passed its check: no PENDING, a venv with a python."""
    r = add_release(deploy, name, venv_key=name)
    (r / ".venv" / "bin").mkdir()
    (r / ".venv" / "bin" / "python").symlink_to(sys.executable)
    return r


def pending(deploy: Path, name: str) -> Path:
    """A release whose deploy never got through its health check."""
    r = good(deploy, name)
    (r / "PENDING").touch()
    return r


def failed_mark(deploy: Path, name: str) -> str | None:
    path = deploy / "releases" / name / "FAILED"
    return path.read_text() if path.exists() else None


def is_pending(deploy: Path, name: str) -> bool:
    return (deploy / "releases" / name / "PENDING").exists()


@pytest.fixture
def session(deploy: Path, make_app: Callable[..., App]) -> Callable[..., FakeSession]:
    """A session on `deploy` whose prepare said `current` (a release name) and `pending`."""

    def make(current: str, pending_text: str | None) -> FakeSession:
        facts = {"current": f"releases/{current}" if current else ""}
        if current:
            (deploy / "current").symlink_to(f"releases/{current}")
        if pending_text is not None:
            facts["pending"] = pending_text
        return FakeSession(make_app(deploy_to=str(deploy)), facts)

    return make


# --- nothing to resolve ---


@pytest.mark.parametrize("current, pending_text", [
    (R2, ""),
    (R2, None),       # no pending fact at all
    (R2, "  "),
    ("", ""),         # nothing deployed
])
def test_nothing_pending_runs_nothing(deploy: Path, session, flow: Flow, current: str,
                                      pending_text: str | None) -> None:
    good(deploy, R1)
    good(deploy, R2)
    s = session(current, pending_text)
    assert publish.recovering(s) == current
    assert s.remote.events == [] and flow.calls == []
    assert s.out.lines == [] and s.records == []


# --- pending releases that are not current: abandoned ---


@pytest.mark.parametrize("current, pending_names", [
    (R2, [R3]),            # unpacked, never switched to
    (R2, [R1, R3, R4]),    # several, older and newer than current
    ("", [R1]),            # a first deploy that died before its switch
])
def test_pending_releases_not_current_are_marked_abandoned(
        deploy: Path, session, flow: Flow, current: str, pending_names: list[str]) -> None:
    for name in (R1, R2, R3, R4):
        (pending if name in pending_names else good)(deploy, name)
    s = session(current, "".join(f"{n} " for n in pending_names))
    assert publish.recovering(s) == current
    for name in (R1, R2, R3, R4):
        assert failed_mark(deploy, name) == (ABANDONED + "\n" if name in pending_names
                                             else None), name
    assert s.remote.events == ["run mark an abandoned release failed"] * len(pending_names)
    assert flow.calls == [] and s.records == [] and s.out.lines == []


# --- current is pending: published and verified now ---


def test_a_pending_current_that_passes_is_marked_ok(deploy: Path, session, flow: Flow) -> None:
    good(deploy, R1)
    pending(deploy, R2)    # another abandoned one, newer than the good one
    pending(deploy, R3)
    s = session(R3, f"{R2} {R3} ")
    assert publish.recovering(s) == R3
    assert s.out.lines == [f"release {R3} is current but was never verified (its deploy died): "
                           f"verifying it now"]
    # published with the newest good release as the one left (R2 is no candidate)
    assert flow.calls == [("read_state",), ("publishing", R3, R1, False), ("verifying", R3)]
    assert failed_mark(deploy, R2) == ABANDONED + "\n"
    assert not is_pending(deploy, R3) and failed_mark(deploy, R3) is None   # mark_ok ran
    assert s.records == [(R3, "ok", {"recovered": True})]
    assert s.remote.events == ["run mark an abandoned release failed", "run read releases",
                               "run mark verified"]


def test_a_pending_first_release_that_passes(deploy: Path, session, flow: Flow) -> None:
    # the very first deploy died after its switch: nothing to leave, nothing to go back to
    pending(deploy, R1)
    s = session(R1, f"{R1} ")
    assert publish.recovering(s) == R1
    assert flow.calls == [("read_state",), ("publishing", R1, "", False), ("verifying", R1)]
    assert not is_pending(deploy, R1)
    assert s.records == [(R1, "ok", {"recovered": True})]


HEALTH = RemoteError("health check failed: GET http://localhost:80/ answered 500, expected 200",
                     "--- response ---\nboom", host="web1")
RELOAD = RemoteError("reload uWSGI failed (exit 1)", "only 0 of 2 workers", host="web1")


@pytest.mark.parametrize("stage, error", [("verifying", HEALTH), ("publishing", RELOAD)])
def test_a_pending_current_that_fails_goes_back_to_the_newest_good_release(
        deploy: Path, session, flow: Flow, stage: str, error: RemoteError) -> None:
    good(deploy, R1)
    good(deploy, R2)
    pending(deploy, R3)
    s = session(R3, f"{R3} ")
    flow.fail[stage, R3] = error
    assert publish.recovering(s) == R2
    tried = [("publishing", R3, R2, False)] + ([("verifying", R3)] if stage == "verifying"
                                               else [])
    # back to R2, whose workers replace R3's at once (leaving a failed release)
    assert flow.calls == [("read_state",), *tried, ("publishing", R2, R3, True),
                          ("verifying", R2)]
    assert failed_mark(deploy, R3) == f"unverified, then {error.reason}\n"
    assert s.records == [(R3, "failed", {"reason": error.reason, "rolled_back_to": R2})]
    assert s.out.lines[1:] == [f"release {R3} failed its check ({error.reason}); back to {R2}"]
    assert failed_mark(deploy, R2) is None and failed_mark(deploy, R1) is None


def test_a_pending_current_that_fails_with_no_good_release_raises(deploy: Path, session,
                                                                 flow: Flow) -> None:
    add_release(deploy, R1, failed=True)
    pending(deploy, R2)    # abandoned: no candidate either
    pending(deploy, R3)
    s = session(R3, f"{R2} {R3} ")
    flow.fail["verifying", R3] = HEALTH
    with pytest.raises(RemoteError) as info:
        publish.recovering(s)
    assert info.value is HEALTH  # the check's own error, as it was
    assert flow.calls == [("read_state",), ("publishing", R3, "", False), ("verifying", R3)]
    assert failed_mark(deploy, R2) == ABANDONED + "\n"
    assert failed_mark(deploy, R3) == f"unverified, then {HEALTH.reason}\n"
    assert s.records == []


def test_going_back_failing_too_raises_that_error(deploy: Path, session, flow: Flow) -> None:
    good(deploy, R1)
    pending(deploy, R2)
    s = session(R2, f"{R2} ")
    flow.fail["verifying", R2] = HEALTH
    flow.fail["verifying", R1] = RELOAD
    with pytest.raises(WsgishipError) as info:
        publish.recovering(s)
    assert info.value is RELOAD
    assert flow.calls[-2:] == [("publishing", R1, R2, True), ("verifying", R1)]
    assert failed_mark(deploy, R2) == f"unverified, then {HEALTH.reason}\n"
    assert s.records == []  # the caller records the failed operation
