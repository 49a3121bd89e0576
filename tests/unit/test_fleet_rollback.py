"""wsgiship.fleetfacts: the one release a fleet rollback takes every host to, and the drift
line of `fab releases` on several hosts."""

from __future__ import annotations

import pytest

from wsgiship.errors import WsgishipError
from wsgiship.facts import ReleaseInfo, State
from wsgiship.fleetfacts import drift_line, fleet_rollback_target, good_everywhere

R1, R2, R3, R4 = (f"2026112{i}T101500Z-abc000{i}" for i in range(1, 5))


def state(current: str, *names: str, failed: tuple[str, ...] = (),
          pending: tuple[str, ...] = ()) -> State:
    return State(current, tuple(ReleaseInfo(n, "rev", failed="502" if n in failed else "",
                                            pending=n in pending) for n in sorted(names)))


# --- the target ---


def test_the_newest_good_release_before_what_they_serve() -> None:
    states = {"web1": state(R3, R1, R2, R3), "web2": state(R3, R1, R2, R3)}
    assert fleet_rollback_target(states) == R2


def test_a_release_failed_on_one_host_is_skipped() -> None:
    states = {"web1": state(R3, R1, R2, R3), "web2": state(R3, R1, R2, R3, failed=(R2,))}
    assert fleet_rollback_target(states) == R1


def test_a_release_missing_on_one_host_is_skipped() -> None:
    states = {"web1": state(R3, R1, R2, R3), "web2": state(R3, R1, R3)}
    assert fleet_rollback_target(states) == R1


def test_with_drift_it_goes_before_the_newest_served() -> None:
    # web3 never got R3: the fleet goes back to R2, which web3 already serves
    states = {"web1": state(R3, R1, R2, R3), "web2": state(R3, R1, R2, R3),
              "web3": state(R2, R1, R2)}
    assert fleet_rollback_target(states) == R2


def test_pending_releases_are_not_targets() -> None:
    states = {"web1": state(R4, R2, R3, R4, pending=(R3,)), "web2": state(R4, R2, R3, R4)}
    assert fleet_rollback_target(states) == R2


def test_none_good_everywhere_says_so_and_suggests_to() -> None:
    states = {"web1": state(R2, R1, R2), "web2": state(R2, R2)}
    with pytest.raises(WsgishipError) as err:
        fleet_rollback_target(states)
    assert str(err.value) == (f"no release before {R2} is good on every host (web1, web2); "
                              f"good on every host: {R2}; pick one with --to RELEASE")


def test_nothing_deployed_anywhere() -> None:
    with pytest.raises(WsgishipError, match="nothing deployed yet on web1, web2, nothing to"):
        fleet_rollback_target({"web1": state(""), "web2": state("")})


def test_to_is_taken_when_good_everywhere() -> None:
    states = {"web1": state(R3, R1, R2, R3), "web2": state(R2, R1, R2, R3)}
    assert fleet_rollback_target(states, R1) == R1
    assert fleet_rollback_target(states, R2) == R2  # web2 is already on it
    assert fleet_rollback_target(states, R3) == R3  # forward is a rollback to it too


def test_to_names_the_hosts_without_it_or_where_it_failed() -> None:
    states = {"web1": state(R3, R1, R2, R3), "web2": state(R3, R2, R3),
              "web3": state(R3, R1, R2, R3, failed=(R1,)), "web4": state(R3, R2, R3)}
    with pytest.raises(WsgishipError) as err:
        fleet_rollback_target(states, R1)
    assert str(err.value) == (f"release {R1} cannot be every host's: not on web2, web4; not a "
                              f"good one on web3 (failed: 502); good on every host: {R2}, {R3}")


def test_to_unknown_everywhere() -> None:
    states = {"web1": state(R2, R1, R2), "web2": state(R2, R1, R2)}
    with pytest.raises(WsgishipError, match="release nope cannot be every host's: not on web1, "
                                            "web2;"):
        fleet_rollback_target(states, "nope")


def test_good_everywhere_is_oldest_first() -> None:
    states = {"web1": state(R3, R3, R1, R2), "web2": state(R3, R1, R2, R3, R4)}
    assert good_everywhere(states) == [R1, R2, R3]
    assert good_everywhere({}) == []


# --- the drift line ---


def test_all_on_one_release() -> None:
    states = {h: state(R2, R1, R2) for h in ("web1", "web2", "web3")}
    assert drift_line(states) == f"all 3 hosts serve {R2}"


def test_drift_newest_first_then_hosts_without_a_release() -> None:
    states = {"web1": state(R2, R1, R2), "web3": state(R1, R1), "web2": state(R2, R2),
              "web4": state("")}
    assert drift_line(states) == (f"drift: web1, web2 serve {R2}; web3 serves {R1}; "
                                  f"web4 has no release")


def test_hosts_not_read_are_named() -> None:
    assert drift_line({"web1": state(R2, R2), "web2": state(R2, R2), "web3": None}) == (
        f"web1, web2 serve {R2}; web3 could not be read")
    assert drift_line({"web1": state(R2, R2), "web2": state(R1, R1), "web3": None}) == (
        f"drift: web1 serves {R2}; web2 serves {R1}; web3 could not be read")


def test_none_with_a_release() -> None:
    assert drift_line({"web1": state(""), "web2": state("")}) == (
        "none of the 2 hosts has a release")
    assert drift_line({"web1": state(""), "web2": state("")} | {"web3": None}) == (
        "web1, web2 have no release; web3 could not be read")
