"""Several test hosts booted at once (boot_many): each its own machine, and a failed boot among
them leaves none running."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import testhost  # noqa: E402

pytestmark = pytest.mark.integration


def test_three_at_once_are_three_machines(tmp_path: Path) -> None:
    names = ["many1", "many2", "many3"]
    hosts = testhost.boot_many(names, tmp_path)
    try:
        assert [h.name for h in hosts] == names
        assert len({h.ssh_port for h in hosts}) == 3
        assert len({h.cgroup for h in hosts}) == 3
        assert [h.state_dir for h in hosts] == [tmp_path / n for n in names]
        for h in hosts:
            assert h.alive()
            assert h.run("hostname", user="deploy").stdout.strip() == f"wsgiship-{h.name}"
            assert h.run("systemctl is-active nginx ssh").stdout.split() == ["active", "active"]
        machine_ids = {h.run("cat /etc/machine-id").stdout.strip() for h in hosts}
        assert len(machine_ids) == 3

        # a file written on one is not on the others (each its own overlay upper dir)
        hosts[0].run("echo mine > /srv/only-here")
        assert hosts[0].run("cat /srv/only-here").stdout == "mine\n"
        for other in hosts[1:]:
            assert other.run("test -e /srv/only-here", check=False).returncode == 1

        # stopping one leaves the others up and reachable
        hosts[1].stop()
        assert not hosts[1].alive()
        for h in (hosts[0], hosts[2]):
            assert h.alive()
            assert h.run("hostname").stdout.strip() == f"wsgiship-{h.name}"
    finally:
        for h in hosts:
            h.stop()
    for h in hosts:
        assert not h.alive()
        assert testhost.load(h.state_dir) is None
        assert not (h.state_dir / "upper").exists()


def test_one_failed_boot_stops_the_others_and_names_it(tmp_path: Path) -> None:
    (tmp_path / "bad").write_text("a file where the state dir should be\n")
    with pytest.raises(RuntimeError, match="bad") as caught:
        testhost.boot_many(["good1", "bad", "good2"], tmp_path)
    assert "boot_many" in str(caught.value)
    for name in ("good1", "good2"):
        assert testhost.load(tmp_path / name) is None
        assert not (tmp_path / name / "upper").exists()


def test_free_ports_are_distinct_and_never_handed_out_twice() -> None:
    first = testhost.free_ports(20)
    second = testhost.free_ports(20)
    assert len(set(first)) == 20 and len(set(second)) == 20
    assert not set(first) & set(second)
