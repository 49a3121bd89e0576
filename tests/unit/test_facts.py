"""wsgiship.facts: the state read back from a host (parse_state), the rollback target, the lock's
description and `fab releases`' table. All pure: text or a State in, a value out."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from wsgiship.errors import WsgishipError
from wsgiship.facts import ReleaseInfo, State, describe_lock, parse_state, releases_table, rollback_target

R1, R2, R3, R4 = (f"20250101T00000{i}Z-{i:07x}" for i in range(1, 5))


def log(**entry: str) -> str:
    """A deploys.log line as state_command prints it."""
    return "log\t" + json.dumps(entry, sort_keys=True)


def state(current: str, *releases: str | tuple[str, str], lock: str = "") -> State:
    """A State from release names, (name, failed reason) for a failed one."""
    infos = tuple(ReleaseInfo(r, "sha256:" + r) if isinstance(r, str) else ReleaseInfo(r[0], "", r[1])
                  for r in releases)
    return State(current, infos, lock)


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


# --- State.previous_good ---


@pytest.mark.parametrize("st, expected", [
    (state(R3, R1, R2, R3), R2),
    (state(R3, R1, (R2, "boom"), R3), R1),          # a failed one is skipped
    (state(R2, R1, R2, R3, R4), R1),                # newer ones are not "previous"
    (state(R1, R1, R2), None),                      # nothing older
    (state(R3, (R1, "x"), (R2, "y"), R3), None),    # nothing older that is good
    (state("", R1, R2), None),                      # nothing deployed
    (state(R4, R1, R2), R2),                        # current itself pruned or missing
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
])
def test_rollback_target(st: State, to: str, expected: str) -> None:
    assert rollback_target(st, to) == expected


@pytest.mark.parametrize("st, to, message", [
    (state(R2, R1, R2), "nope", f"no release 'nope' (good releases: {R1}, {R2})"),
    (state(R2, (R1, "x"), (R2, "y")), "nope", "no release 'nope' (good releases: none)"),
    (state(R3, R1, (R2, "health check failed"), R3), R2,
     f"release {R2} is marked failed (health check failed); pick a good one: {R1}, {R3}"),
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
    # a revision without the prefix is shown as it is; the lock comes last
    (State("r2", (ReleaseInfo("r1", "abc"), ReleaseInfo("r2", "")), lock='{"by": "bob"}'),
     ["   RELEASE  REVISION  DEPLOYED AT  BY  STATUS",
      "*  r2                 -            -   ok",
      "   r1       abc       -            -   ok",
      'locked: {"by": "bob"}']),
])
def test_releases_table(st: State, expected: list[str]) -> None:
    assert releases_table(st) == expected
