"""wsgiship.facts: the state read back from a host (parse_state), the rollback target, the lock's
description and `fab releases`' table. All pure: text or a State in, a value out; but
state_command, which runs here on a deploy tree in tmp_path and is read back by parse_state."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fakes import add_release, paths

from wsgiship.errors import WsgishipError
from wsgiship.facts import (
    ReleaseInfo,
    State,
    describe_lock,
    parse_state,
    releases_table,
    rollback_target,
    state_command,
)

R1, R2, R3, R4, R5, R6 = (f"20250101T00000{i}Z-{i:07x}" for i in range(1, 7))


def log(**entry: str) -> str:
    """A deploys.log line as state_command prints it."""
    return "log\t" + json.dumps(entry, sort_keys=True)


def state(current: str, *releases: str | tuple[str, str] | ReleaseInfo, lock: str = "") -> State:
    """A State from release names, (name, failed reason) for a failed one, or ReleaseInfos."""
    infos = tuple(r if isinstance(r, ReleaseInfo)
                  else ReleaseInfo(r, "sha256:" + r) if isinstance(r, str)
                  else ReleaseInfo(r[0], "", r[1])
                  for r in releases)
    return State(current, infos, lock)


def pending(name: str) -> ReleaseInfo:
    """A release unpacked whose health check never passed (its PENDING file is there)."""
    return ReleaseInfo(name, "sha256:" + name, pending=True)


def no_venv(name: str) -> ReleaseInfo:
    """A release without its venv (pip failed, or the venv was removed)."""
    return ReleaseInfo(name, "sha256:" + name, complete=False)


# --- ReleaseInfo: ok and status ---


@pytest.mark.parametrize("failed, is_pending, complete, ok, status", [
    ("", False, True, True, "ok"),
    ("", True, True, False, "pending"),
    ("", False, False, False, "incomplete: no venv"),
    ("", True, False, False, "pending"),                          # pending says more
    ("health check failed", False, True, False, "failed: health check failed"),
    # a failed mark wins over the rest
    ("abandoned: its deploy never finished", True, True, False,
     "failed: abandoned: its deploy never finished"),
    ("pip failed", False, False, False, "failed: pip failed"),
    ("x", True, False, False, "failed: x"),
])
def test_release_info_ok_and_status(failed: str, is_pending: bool, complete: bool, ok: bool,
                                    status: str) -> None:
    info = ReleaseInfo(R1, "sha256:aa", failed, pending=is_pending, complete=complete)
    assert (info.ok, info.status) == (ok, status)


def test_release_info_defaults_to_a_good_release() -> None:
    # what parse_state builds from an older host's 3-field rows: not pending, venv there
    info = ReleaseInfo(R1, "sha256:aa")
    assert (info.pending, info.complete, info.ok, info.status) == (False, True, True, "ok")


# --- parse_state ---


DEPLOY_R1 = {"action": "deploy", "release": R1, "by": "alice@laptop", "started": "T1", "result": "ok"}


@pytest.mark.parametrize("text, expected", [
    ("", State("", ())),
    # nothing deployed: `cd releases` failed, the command printed nothing
    ("current\t\n", State("", ())),
    (f"current\t{R2}\nrelease\t{R1}\tsha256:aa\t\nrelease\t{R2}\tsha256:bb\t\n",
     State(R2, (ReleaseInfo(R1, "sha256:aa"), ReleaseInfo(R2, "sha256:bb")))),
    # a FAILED mark, and a release without REVISION (an old or half-unpacked one)
    (f"current\t{R1}\nrelease\t{R1}\t\t\nrelease\t{R2}\tsha256:bb\thealth check failed: 500\n",
     State(R1, (ReleaseInfo(R1, ""), ReleaseInfo(R2, "sha256:bb", "health check failed: 500")))),
    # a row cut short still parses, its missing fields empty
    (f"release\t{R1}\n", State("", (ReleaseInfo(R1, ""),))),
    # current as a path: only its last part names the release
    (f"current\t releases/{R3} \n", State(R3, ())),
    ('lock\t{"by": "alice@laptop", "token": "t"}\n',
     State("", (), '{"by": "alice@laptop", "token": "t"}')),
    # unknown kinds and lines without a tab are ignored
    (f"weird\tline\nno tab here\nrelease\t{R1}\tsha256:aa\t\n", State("", (ReleaseInfo(R1, "sha256:aa"),))),
    # the 5-field rows: PENDING (0|1) and VENV (0|1)
    (f"release\t{R1}\tsha256:aa\t\t0\t1\n", State("", (ReleaseInfo(R1, "sha256:aa"),))),
    (f"release\t{R1}\tsha256:aa\t\t1\t1\n",
     State("", (ReleaseInfo(R1, "sha256:aa", pending=True),))),
    (f"release\t{R1}\tsha256:aa\t\t0\t0\n",
     State("", (ReleaseInfo(R1, "sha256:aa", complete=False),))),
    (f"release\t{R1}\tsha256:aa\tboom\t1\t0\n",
     State("", (ReleaseInfo(R1, "sha256:aa", "boom", pending=True, complete=False),))),
    # mixed with an older host's 3-field row (a host written by an older wsgiship)
    (f"current\t{R2}\nrelease\t{R1}\tsha256:aa\t\nrelease\t{R2}\tsha256:bb\t\t1\t0\n",
     State(R2, (ReleaseInfo(R1, "sha256:aa"),
                ReleaseInfo(R2, "sha256:bb", pending=True, complete=False)))),
    # 4 fields (cut short before VENV): the venv is not taken for missing
    (f"release\t{R1}\tsha256:aa\t\t1\n", State("", (ReleaseInfo(R1, "sha256:aa", pending=True),))),
])
def test_parse_state(text: str, expected: State) -> None:
    assert parse_state(text) == expected


@pytest.mark.parametrize("lines, expected_log", [
    ([log(action="deploy", release=R1)], ({"action": "deploy", "release": R1},)),
    # a line that is not JSON (cut short, hand-edited) is skipped, the others kept in order
    ([log(n="1"), 'log\t{"action": "deploy", "rel', "log\tnot json at all", log(n="2")],
     ({"n": "1"}, {"n": "2"})),
    # JSON that is not an object is no entry either
    ([log(n="1"), "log\t42", "log\tnull", 'log\t["a"]', log(n="2")], ({"n": "1"}, {"n": "2"})),
    ([], ()),
])
def test_parse_state_reads_the_deploy_log(lines: list[str], expected_log: tuple[dict, ...]) -> None:
    assert parse_state("\n".join(lines)).log == expected_log


@pytest.mark.parametrize("entries, expected", [
    # a deploy of a release: by, started and result
    ([DEPLOY_R1], ReleaseInfo(R1, "sha256:aa", "", "alice@laptop", "T1", "ok")),
    # the last deploy of a release wins
    ([DEPLOY_R1, {**DEPLOY_R1, "by": "bob@desk", "started": "T2", "result": "failed"}],
     ReleaseInfo(R1, "sha256:aa", "", "bob@desk", "T2", "failed")),
    # a rollback to it is not its deploy
    ([DEPLOY_R1, {**DEPLOY_R1, "action": "rollback", "by": "carol", "started": "T3"}],
     ReleaseInfo(R1, "sha256:aa", "", "alice@laptop", "T1", "ok")),
    # another release's deploy, or an entry without a release, says nothing about this one
    ([{**DEPLOY_R1, "release": R2}, {"action": "deploy", "by": "x", "started": "T9"}],
     ReleaseInfo(R1, "sha256:aa")),
    # missing fields stay empty
    ([{"action": "deploy", "release": R1}], ReleaseInfo(R1, "sha256:aa")),
])
def test_parse_state_attributes_deploys_to_their_release(entries: list[dict],
                                                        expected: ReleaseInfo) -> None:
    text = "\n".join([f"current\t{R1}", f"release\t{R1}\tsha256:aa\t",
                      *("log\t" + json.dumps(e) for e in entries)])
    assert parse_state(text).releases == (expected,)


def test_parse_state_reads_what_state_command_prints() -> None:
    # the printf formats of state_command, filled in
    text = (f"current\t{R2}\n"
            f"release\t{R1}\tsha256:aa\t\n"
            f"release\t{R2}\tsha256:bb\t\n"
            'lock\t{"by": "me"}\n'
            + log(action="deploy", release=R2, by="me", started="T", result="ok") + "\n")
    got = parse_state(text)
    assert got.current == R2 and got.lock == '{"by": "me"}'
    assert [r.name for r in got.releases] == [R1, R2]
    assert got.get(R2) == ReleaseInfo(R2, "sha256:bb", "", "me", "T", "ok")
    assert got.get("missing") is None


# --- state_command, run on a deploy tree, read back by parse_state ---


def with_python(release: Path, executable: bool = True) -> None:
    """Give the release's venv (its .venv link's target) a bin/python."""
    bin_ = release / ".venv" / "bin"
    bin_.mkdir(parents=True, exist_ok=True)
    (bin_ / "python").write_text("#!/bin/sh\n")
    (bin_ / "python").chmod(0o755 if executable else 0o644)


def test_state_command_reports_pending_failed_and_venvless_releases(deploy: Path, sh) -> None:
    r1 = add_release(deploy, R1, venv_key="a")              # good
    with_python(r1)
    add_release(deploy, R2, venv_key="a", failed=True)       # failed (its venv is r1's)
    r3 = add_release(deploy, R3, venv_key="b")              # pending, venv there
    with_python(r3)
    (r3 / "PENDING").touch()
    r4 = add_release(deploy, R4, venv_key="c")              # a venv without a python
    (r4 / "REVISION").write_text("sha256:dd\nsecond line ignored\n")
    r5 = add_release(deploy, R5, venv_key=None)             # pip failed: no .venv at all
    (r5 / "PENDING").touch()
    (r5 / "FAILED").write_text("pip install failed\n")
    r6 = add_release(deploy, R6, venv_key="d")              # bin/python not executable
    with_python(r6, executable=False)
    (deploy / "current").symlink_to(f"releases/{R3}")
    (deploy / "releases" / "stray.txt").write_text("not a release\n")
    res = sh(state_command(paths(deploy)))
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines() == [
        f"current\t{R3}",
        f"release\t{R1}\t\t\t0\t1",
        f"release\t{R2}\t\thealth check failed\t0\t1",
        f"release\t{R3}\t\t\t1\t1",
        f"release\t{R4}\tsha256:dd\t\t0\t0",
        f"release\t{R5}\t\tpip install failed\t1\t0",
        f"release\t{R6}\t\t\t0\t0",
    ]
    got = parse_state(res.stdout)
    assert got == State(R3, (
        ReleaseInfo(R1, ""),
        ReleaseInfo(R2, "", "health check failed"),
        ReleaseInfo(R3, "", pending=True),
        ReleaseInfo(R4, "sha256:dd", complete=False),
        ReleaseInfo(R5, "", "pip install failed", pending=True, complete=False),
        ReleaseInfo(R6, "", complete=False),
    ))
    assert [r.status for r in got.releases] == [
        "ok", "failed: health check failed", "pending", "incomplete: no venv",
        "failed: pip install failed", "incomplete: no venv"]
    # only R1 is a rollback target, from the pending current R3 or by name
    prev = got.previous_good()
    assert prev is not None and prev.name == R1
    assert rollback_target(got) == R1
    with pytest.raises(WsgishipError, match=f"release {R4} is not a good one"):
        rollback_target(got, R4)
    # the venv's python turns up (a rebuilt venv): R4 is complete again
    with_python(r4)
    assert parse_state(sh(state_command(paths(deploy))).stdout).get(R4) == ReleaseInfo(
        R4, "sha256:dd")


def test_state_command_with_the_venv_python_a_link_to_a_real_python(deploy: Path, sh) -> None:
    # a venv's bin/python is a symlink to the system's python: it is followed
    r1 = add_release(deploy, R1, venv_key="a")
    (r1 / ".venv" / "bin").mkdir()
    (r1 / ".venv" / "bin" / "python").symlink_to(sys.executable)
    r2 = add_release(deploy, R2, venv_key="b")
    (r2 / ".venv" / "bin").mkdir()
    (r2 / ".venv" / "bin" / "python").symlink_to(deploy / "no-such-python")  # dangling
    got = parse_state(sh(state_command(paths(deploy))).stdout)
    assert [(r.name, r.complete) for r in got.releases] == [(R1, True), (R2, False)]


def test_state_command_on_a_host_without_releases(tmp_path: Path, sh) -> None:
    res = sh(state_command(paths(tmp_path / "nothing")))
    assert (res.returncode, res.stdout) == (0, "")
    assert parse_state(res.stdout) == State("", ())


# --- State.previous_good ---


@pytest.mark.parametrize("st, expected", [
    (state(R3, R1, R2, R3), R2),
    (state(R3, R1, (R2, "boom"), R3), R1),          # a failed one is skipped
    (state(R2, R1, R2, R3, R4), R1),                # newer ones are not "previous"
    (state(R1, R1, R2), None),                      # nothing older
    (state(R3, (R1, "x"), (R2, "y"), R3), None),    # nothing older that is good
    (state("", R1, R2), None),                      # nothing deployed
    (state(R4, R1, R2), R2),                        # current itself pruned or missing
    (state(R3, R1, pending(R2), R3), R1),           # a pending one is skipped
    (state(R3, R1, no_venv(R2), R3), R1),           # so is one without its venv
    (state(R4, no_venv(R1), pending(R2), (R3, "x"), R4), None),
    (state(R3, R1, R2, pending(R3)), R2),           # current pending: what is before it counts
])
def test_previous_good(st: State, expected: str | None) -> None:
    got = st.previous_good()
    assert (got.name if got else None) == expected


# --- rollback_target ---


@pytest.mark.parametrize("st, to, expected", [
    (state(R3, R1, R2, R3), "", R2),
    (state(R3, R1, (R2, "boom"), R3), "", R1),
    (state(R3, R1, R2, R3), R1, R1),                # an older good one, by name
    (state(R2, R1, R2, R3), R3, R3),                # a newer good one, by name
    (state(R4, R1, pending(R2), no_venv(R3), R4), "", R1),  # neither is a rollback target
    (state(R3, R1, R2, pending(R3)), "", R2),      # from a pending current
])
def test_rollback_target(st: State, to: str, expected: str) -> None:
    assert rollback_target(st, to) == expected


@pytest.mark.parametrize("st, to, message", [
    (state(R2, R1, R2), "nope", f"no release 'nope' (good releases: {R1}, {R2})"),
    (state(R2, (R1, "x"), (R2, "y")), "nope", "no release 'nope' (good releases: none)"),
    (state(R3, R1, (R2, "health check failed"), R3), R2,
     f"release {R2} is not a good one (failed: health check failed); pick one of: {R1}, {R3}"),
    (state(R3, R1, pending(R2), R3), R2,
     f"release {R2} is not a good one (pending); pick one of: {R1}, {R3}"),
    (state(R3, R1, no_venv(R2), R3), R2,
     f"release {R2} is not a good one (incomplete: no venv); pick one of: {R1}, {R3}"),
    # only good releases are offered, and "none" when there is none
    (state(R3, no_venv(R1), pending(R2), (R3, "x")), R1,
     f"release {R1} is not a good one (incomplete: no venv); pick one of: none"),
    (state(R3, R1, pending(R2), no_venv(R3), R4), "nope",
     f"no release 'nope' (good releases: {R1}, {R4})"),
    (state(R3, pending(R1), no_venv(R2), R3), "", f"no good release before {R3} to roll back to"),
    (state(R2, R1, R2), R2, f"{R2} is already current"),
    (state("", R1), "", "nothing deployed yet, nothing to roll back"),
    (state(""), "", "nothing deployed yet, nothing to roll back"),
    (state(R1, R1, R2), "", f"no good release before {R1} to roll back to"),
    (state(R3, (R1, "a"), (R2, "b"), R3), "", f"no good release before {R3} to roll back to"),
])
def test_rollback_target_refuses(st: State, to: str, message: str) -> None:
    with pytest.raises(WsgishipError) as info:
        rollback_target(st, to)
    assert info.value.message == message
    assert info.value.host is None  # the caller adds the host
    assert str(info.value) == message


# --- describe_lock ---


SINCE = "2025-01-01T00:00:00Z"
AT = datetime(2025, 1, 1, tzinfo=UTC).timestamp()
HOLDER = json.dumps({"by": "alice@laptop", "action": "rollback", "since": SINCE, "token": "t"})


@pytest.mark.parametrize("text, now, expected", [
    ("", AT, "an unknown holder (unreadable lock)"),
    ("not json", AT, "an unknown holder (unreadable lock)"),
    ('{"by": "alice', AT, "an unknown holder (unreadable lock)"),
    ("[]", AT, "an unknown holder (unreadable lock)"),       # JSON, but not an object
    ('"x"', AT, "an unknown holder (unreadable lock)"),
    ("42", AT, "an unknown holder (unreadable lock)"),
    ("null", AT, "an unknown holder (unreadable lock)"),
    # no (usable) since: no age to tell
    ('{"by": "alice@laptop"}', AT, "alice@laptop (deploy) since ?"),
    ('{"by": "alice@laptop", "since": "yesterday"}', AT, "alice@laptop (deploy) since yesterday"),
    ('{"since": 5}', AT, "? (deploy) since 5"),
    # fresh, and exactly as old as allowed
    (HOLDER, AT + 60, f"alice@laptop (rollback) since {SINCE}"),
    (HOLDER, AT + 3600, f"alice@laptop (rollback) since {SINCE}"),
    # stale
    (HOLDER, AT + 3601, f"alice@laptop (rollback) since {SINCE} — STALE (60 min old);"
                        " if no deploy is running: fab unlock -H HOST"),
    (HOLDER + "\nsecond line ignored\n", AT + 7322,
     f"alice@laptop (rollback) since {SINCE} — STALE (122 min old);"
     " if no deploy is running: fab unlock -H HOST"),
])
def test_describe_lock(text: str, now: float, expected: str) -> None:
    assert describe_lock(text, 3600, now=now) == expected


def test_describe_lock_uses_the_clock_without_now() -> None:
    # a lock from 2025 is stale today, and 1 s old is not
    assert "STALE" in describe_lock(HOLDER, 3600)
    just_now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert describe_lock(json.dumps({"by": "me", "since": just_now}), 3600) == (
        f"me (deploy) since {just_now}")


# --- releases_table ---


HEADER = "   RELEASE  REVISION      DEPLOYED AT           BY            STATUS"


@pytest.mark.parametrize("st, expected", [
    # no release: the header alone (the * column has no width)
    (State("", ()), ["  RELEASE  REVISION  DEPLOYED AT  BY  STATUS"]),
    # newest first, * on current, the revision without sha256: and cut to 12
    (State("r1", (ReleaseInfo("r1", "sha256:0123456789abcdef0123", "", "alice@laptop",
                              "2025-01-01T00:00:00Z", "ok"),
                  ReleaseInfo("r2", "sha256:fedcba9876543210ffff", "health check failed"))),
     [HEADER,
      "   r2       fedcba987654  -                     -             failed: health check failed",
      "*  r1       0123456789ab  2025-01-01T00:00:00Z  alice@laptop  ok"]),
    # a pending release and one without its venv say so
    (State("r3", (ReleaseInfo("r1", "abc", complete=False), ReleaseInfo("r2", "def", pending=True),
                  ReleaseInfo("r3", "012", "boom", pending=True, complete=False))),
     ["   RELEASE  REVISION  DEPLOYED AT  BY  STATUS",
      "*  r3       012       -            -   failed: boom",
      "   r2       def       -            -   pending",
      "   r1       abc       -            -   incomplete: no venv"]),
    # a revision without the prefix is shown as it is; the lock comes last
    (State("r2", (ReleaseInfo("r1", "abc"), ReleaseInfo("r2", "")), lock='{"by": "bob"}'),
     ["   RELEASE  REVISION  DEPLOYED AT  BY  STATUS",
      "*  r2                 -            -   ok",
      "   r1       abc       -            -   ok",
      'locked: {"by": "bob"}']),
])
def test_releases_table(st: State, expected: list[str]) -> None:
    assert releases_table(st) == expected
