"""`fab env --apply`: the live release restarted beside itself. start_slot's `reuse` (none: a
fresh start in the spare slot though the live one runs the release; spare: the way back takes
the slot that ran it, never the new one), run with the fakes of test_services_slots; and the
restart's publish job (ops.publish.publish_job(restart=True))."""

from __future__ import annotations

import pytest
from fakes import MANAGERS
from test_ops_publish_steps import FORWARD, R1, names
from test_ops_publish_steps import session as session  # the fixture
from test_services_slots import host as host  # the fixture

from wsgiship.commands import services
from wsgiship.layout import Paths
from wsgiship.ops import publish


@pytest.mark.parametrize("live", ["a", "b"])
@pytest.mark.parametrize("manager", MANAGERS)
def test_a_restart_starts_the_live_release_anew_in_the_spare_slot(host, manager: str,
                                                                  live: str) -> None:
    h = host(manager)
    release = h.release(1)
    h.serve(live, release, live=True)
    spare = "b" if live == "a" else "a"
    res = h.run(services.start_slot(h.paths, release, reuse="none"))
    assert res.returncode == 0, res.stderr
    assert res.stdout.endswith(f"slot={spare}\nuwsgi=started\n")
    assert (h.svc / "started").read_text() == f"{h.instance(spare)} ../releases/{release}\n"
    assert h.running() == {h.instance("a"), h.instance("b")}  # the live one untouched
    assert h.stopped() == []
    # the default takes a slot that runs it as it is: no fresh start, so no new environment
    res = h.run(services.start_slot(h.paths, release))
    assert res.stdout.endswith("uwsgi=running\n"), res.stderr
    assert len((h.svc / "started").read_text().splitlines()) == 1


@pytest.mark.parametrize("manager", MANAGERS)
def test_a_restart_stops_what_was_left_in_the_spare_slot_first(host, manager: str) -> None:
    h = host(manager)
    release = h.release(1)
    h.serve("a", release, live=True)
    h.serve("b", release)  # a restart that died there
    res = h.run(services.start_slot(h.paths, release, reuse="none"))
    assert res.stdout.endswith("slot=b\nuwsgi=started\n"), res.stderr
    assert h.stopped() == [h.instance("b")]


@pytest.mark.parametrize("manager", MANAGERS)
def test_the_way_back_of_a_restart_takes_the_slot_that_ran(host, manager: str) -> None:
    h = host(manager)
    release = h.release(1)
    h.serve("a", release)             # ran it before the switch
    h.serve("b", release, live=True)  # the new one, which failed its check through nginx
    res = h.run(services.start_slot(h.paths, release, reuse="spare"))
    assert res.returncode == 0, res.stderr
    assert res.stdout.endswith("slot=a\nuwsgi=running\n")
    assert h.stopped() == [] and not (h.svc / "started").exists()
    # `any` would take the first one running it: the failing one, if it is a's
    (h.root / "shared" / "run" / "uwsgi.sock").unlink()
    (h.root / "shared" / "run" / "uwsgi.sock").symlink_to("uwsgi-a.sock")
    assert h.run(services.start_slot(h.paths, release, reuse="spare")).stdout.endswith(
        "slot=b\nuwsgi=running\n")
    assert h.run(services.start_slot(h.paths, release)).stdout.endswith("slot=a\nuwsgi=running\n")


@pytest.mark.parametrize("manager", MANAGERS)
def test_the_way_back_starts_the_release_when_its_slot_is_gone(host, manager: str) -> None:
    h = host(manager)
    release = h.release(1)
    h.serve("b", release, live=True)
    res = h.run(services.start_slot(h.paths, release, reuse="spare"))
    assert res.stdout.endswith("slot=a\nuwsgi=started\n"), res.stderr


def test_reuse_is_one_of_three() -> None:
    with pytest.raises(ValueError):
        services.start_slot(Paths("/srv/app", "app"), R1, reuse="live")


def test_the_restart_job_starts_anew_and_goes_back_to_the_slot_that_ran(session) -> None:
    s = session()
    p = s.paths
    job = publish.publish_job(s, R1, R1, restart=True)
    assert names(job.forward) == FORWARD == names(job.back)
    assert job.back_to == R1 and job.ok == [] and names(job.unswitched) == ["retire"]
    assert job.forward[0].body.endswith(services.start_slot(p, R1, reuse="none"))
    assert job.back[0].body.endswith(services.start_slot(p, R1, reuse="spare"))
    # the release that ran served well: it stops gracefully; the new one, failed, is killed
    assert job.forward[-1].body.endswith(services.retire(p))
    assert job.back[-1].body.endswith(services.retire(p, kill=True))
    assert job.unswitched[0].body.endswith(services.retire(p, kill=True))
    # no mark: the release stays what it was
    assert not any(x.name == "mark" for x in job.failed)
    # a deploy's job is as it was
    deploy = publish.publish_job(s, "20250101T000002Z-0000002", R1, mark=True)
    assert deploy.forward[0].body.endswith(services.start_slot(p, "20250101T000002Z-0000002"))
    assert deploy.back[0].body.endswith(services.start_slot(p, R1))
