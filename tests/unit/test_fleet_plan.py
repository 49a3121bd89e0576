"""The fleet deploy's plan: the command line's options over a group's defaults, each bad value
named by its option; and how a plan describes itself."""

from __future__ import annotations

import pytest

from wsgiship.errors import WsgishipError
from wsgiship.groups import Group
from wsgiship.ops.fleet import Plan
from wsgiship.tasks.deploy import plan_of

CANARY = Group("canary", ("a", "b", "c", "d"), batch="50%", max_fail="1", on_failure="stop")


def test_without_options_every_host_switches_at_once_and_no_failure_is_tolerated() -> None:
    assert plan_of(4, None, "", False, "", "") == Plan(batch=0, max_fail=0,
                                                         on_failure="rollback")


def test_a_groups_defaults_apply_and_the_command_line_wins() -> None:
    assert plan_of(4, CANARY, "", False, "", "") == Plan(batch=2, max_fail=1, on_failure="stop")
    assert plan_of(4, CANARY, "1", False, "0", "rollback") == Plan(batch=1, max_fail=0,
                                                                    on_failure="rollback")


def test_percentages_round_batches_up_and_tolerated_failures_down() -> None:
    assert plan_of(10, None, "25%", False, "15%", "").batch == 3
    assert plan_of(10, None, "25%", False, "15%", "").max_fail == 1


@pytest.mark.parametrize(("args", "said"), [
    (("0", ""), "--batch: expected an integer >= 1"),
    (("two", ""), "--batch: expected an integer >= 1"),
    (("", "-1"), "--max-fail: expected an integer >= 0"),
    (("", "150%"), "--max-fail: expected"),
])
def test_a_bad_count_names_its_option(args: tuple[str, str], said: str) -> None:
    with pytest.raises(WsgishipError) as exc:
        plan_of(3, None, args[0], False, args[1], "")
    assert said in exc.value.message


def test_a_bad_failure_policy_names_its_option() -> None:
    with pytest.raises(WsgishipError) as exc:
        plan_of(3, None, "", False, "", "retry")
    assert exc.value.message == "--on-failure: expected rollback or stop, got 'retry'"


def test_a_plan_says_how_it_switches() -> None:
    assert Plan().describe(3) == "all at once; on failure: rollback"
    assert Plan(batch=3).describe(3) == "all at once; on failure: rollback"
    assert Plan(batch=1, max_fail=1, on_failure="stop").describe(3) == (
        "in batches of 1, up to 1 may fail; on failure: stop")
    assert Plan(serial=True).describe(3).startswith("one host after the other")
