"""wsgiship.commands.services: retire, which stops every uWSGI of the app but the live slot's
(and an older wsgiship's single one), run with the stateful fake service managers of
test_services_slots.py."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
import test_services_slots as slots
from fakes import MANAGERS, as_app_calls, calls, rel, sudoed
from test_services_slots import Host, wait_for

from wsgiship.commands import services

host = slots.host  # the fixture: a deploy tree at a short path, with the stateful fakes


@pytest.mark.parametrize("live", ["a", "b"])
@pytest.mark.parametrize("manager", MANAGERS)
def test_retire_stops_every_slot_but_the_live_one(host, manager: str, live: str) -> None:
    h = host(manager)
    other = "b" if live == "a" else "a"
    h.serve(live, h.release(1), live=True)
    h.serve(other, h.release(2))
    res = h.run(services.retire(h.paths))
    assert (res.returncode, res.stdout) == (0, f"retired={other}\n"), res.stderr
    # its link goes at once (it must not start at boot); it stops in the background
    assert (h.link(live), h.link(other)) == (f"../releases/{rel(1)}", None)
    assert wait_for(lambda: h.stopped() == [h.instance(other)])
    assert h.running() == {h.instance(live)}
    assert os.readlink(h.run_dir / "uwsgi.sock") == f"uwsgi-{live}.sock"
    assert f"readlink {h.run_dir}/uwsgi.sock" in as_app_calls(h.fakebin)


def test_retire_fails_when_sudo_may_not_stop_a_slot(host) -> None:
    # supervisor's stop runs in the background, where a refusal would go unseen: sudo is
    # asked first, and a refusal fails the step (it must not say retired=b while b runs on)
    h = host("supervisor")
    h.serve("a", h.release(1), live=True)
    h.serve("b", h.release(2))
    res = h.run(services.retire(h.paths), SUDO_LIST_RC="1")
    assert (res.returncode, res.stdout) == (1, "")
    assert res.stderr == ("sudo does not allow: supervisorctl stop wsgiship-app-b"
                          " (run fab setup)\n")
    assert "sudo -n -l /usr/bin/supervisorctl stop wsgiship-app-b" in calls(h.fakebin)
    time.sleep(0.2)  # (a stop in the background would have come by now)
    assert h.running() == {h.instance("a"), h.instance("b")} and h.stopped() == []
    assert h.link("b") == f"../releases/{rel(2)}"


@pytest.mark.parametrize("manager", MANAGERS)
def test_retire_with_nothing_else_running(host, manager: str) -> None:
    h = host(manager)
    h.serve("a", h.release(1), live=True)
    (h.root / "slots" / "b").symlink_to(f"../releases/{h.release(2)}")  # stopped, linked
    res = h.run(services.retire(h.paths))
    assert (res.returncode, res.stdout) == (0, "retired=none\n"), res.stderr
    assert (h.link("a"), h.link("b")) == (f"../releases/{rel(1)}", None)
    assert h.running() == {h.instance("a")} and h.stopped() == []


@pytest.mark.parametrize("manager", MANAGERS)
def test_retire_keep_live_false_stops_them_all(host, manager: str) -> None:
    # a first deploy that failed: nothing to keep serving
    h = host(manager)
    h.serve("a", h.release(1), live=True)
    h.serve("b", h.release(2))
    res = h.run(services.retire(h.paths, keep_live=False))
    assert (res.returncode, res.stdout) == (0, "retired=a,b\n"), res.stderr
    assert wait_for(lambda: sorted(h.stopped()) == [h.instance("a"), h.instance("b")])
    assert h.running() == set() and (h.link("a"), h.link("b")) == (None, None)


def test_retire_stops_a_slot_only_once_its_backlog_drained(host) -> None:
    # connections nginx made to the old slot just before the switch are served, not dropped
    h = host("systemd")
    h.serve("a", h.release(1), live=True)
    h.serve("b", h.release(2))
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(h.run_dir / "uwsgi-b.sock"))
    server.listen(8)
    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    client.connect(str(h.run_dir / "uwsgi-b.sock"))  # in its listen queue
    accepted: list[float] = []

    def serve_late() -> None:
        time.sleep(0.5)
        accepted.append(time.time())
        server.accept()[0].close()

    worker = threading.Thread(target=serve_late)
    worker.start()
    res = h.run(services.retire(h.paths))
    worker.join()
    assert (res.returncode, res.stdout) == (0, "retired=b\n"), res.stderr
    assert wait_for(lambda: h.stopped() == [h.instance("b")])
    stopped_at = float((h.svc / "stopped").read_text().split()[1])
    assert stopped_at >= accepted[0]
    client.close()
    server.close()


# the single uWSGI service of an older wsgiship, as each manager names it
LEGACY = {"systemd": "wsgiship-app.service", "supervisor": "wsgiship-app"}
LEGACY_STOP = {"systemd": ["systemctl stop wsgiship-app.service",
                           "systemctl disable -q wsgiship-app.service"],
               "supervisor": ["supervisorctl update wsgiship-app"]}


@pytest.fixture
def legacy_fifo() -> Iterator[Callable[[Host], subprocess.Popen[str]]]:
    """The older uWSGI's master fifo, read by a stand-in master: on `q` (a graceful shutdown)
    its service stops. It prints what it read."""
    procs: list[subprocess.Popen[str]] = []

    def start(h: Host) -> subprocess.Popen[str]:
        os.mkfifo(h.paths.fifo)
        reader = ("import sys; data = open(sys.argv[1]).read(); import os; "
                  "os.remove(sys.argv[2]); print(data)")
        procs.append(subprocess.Popen([sys.executable, "-c", reader, h.paths.fifo,
                                       str(h.svc / LEGACY[h.manager])],
                                      stdout=subprocess.PIPE, text=True))
        return procs[-1]

    yield start
    for proc in procs:
        proc.kill()
        proc.wait()


@pytest.mark.parametrize("manager", MANAGERS)
def test_retire_stops_the_older_single_service_once_a_slot_is_live(host, legacy_fifo,
                                                                  manager: str) -> None:
    h = host(manager)
    h.serve("a", h.release(1), live=True)
    (h.svc / LEGACY[manager]).write_text("0")
    master = legacy_fifo(h) if manager == "systemd" else None
    res = h.run(services.retire(h.paths))
    assert (res.returncode, res.stdout) == (0, "retired=single\n"), res.stderr
    assert h.running() == {h.instance("a")}
    assert [c for c in sudoed(h.fakebin)
            if c.endswith(f" {LEGACY[manager]}") and " status " not in c] == LEGACY_STOP[manager]
    if master:  # systemd: a graceful shutdown through its fifo first, written as the app
        assert master.communicate(timeout=5)[0] == "q\n"
        assert [c for c in as_app_calls(h.fakebin) if h.paths.fifo in c] == [
            f"test -p {h.paths.fifo}", f"timeout 5 tee {h.paths.fifo}"]


@pytest.mark.parametrize("manager", MANAGERS)
def test_retire_keeps_the_older_single_service_while_no_slot_is_live(host, manager: str) -> None:
    # the first deploy with slots failed before the switch: the older uWSGI still serves
    h = host(manager)
    h.serve("a", h.release(1))
    (h.run_dir / "uwsgi.sock").write_text("")  # where the older uWSGI bound its socket
    (h.svc / LEGACY[manager]).write_text("0")
    res = h.run(services.retire(h.paths))
    assert (res.returncode, res.stdout) == (0, "retired=a\n"), res.stderr
    assert wait_for(lambda: h.stopped() == [h.instance("a")])
    assert h.running() == {LEGACY[manager]}
    assert not any(c.endswith(LEGACY[manager]) for c in calls(h.fakebin) if "status" not in c)



@pytest.mark.parametrize("manager", MANAGERS)
def test_retire_says_every_uwsgi_it_stopped(host, legacy_fifo, manager: str) -> None:
    h = host(manager)
    h.serve("a", h.release(1), live=True)
    h.serve("b", h.release(2))
    (h.svc / LEGACY[manager]).write_text("0")
    master = legacy_fifo(h) if manager == "systemd" else None
    res = h.run(services.retire(h.paths))
    assert (res.returncode, res.stdout) == (0, "retired=b,single\n"), res.stderr
    assert wait_for(lambda: h.running() == {h.instance("a")})
    if master:
        assert master.communicate(timeout=5)[0] == "q\n"


# --- kill: the uWSGI that stops is a release that failed (its workers may hang) ---

# a uWSGI master as a stand-in: its workers (`sleep`) print their pids; it exits once they are
# all gone (as uWSGI's master does on a stop, once its workers ended); with `stubborn` it stays
MASTER = ("import subprocess, sys, time\n"
          "ws = [subprocess.Popen(['sleep', '60']) for _ in range(2)]\n"
          "print(' '.join(str(w.pid) for w in ws), flush=True)\n"
          "[w.wait() for w in ws]\n"
          "if sys.argv[1] == 'stubborn': time.sleep(60)\n")


@dataclass
class Master:
    proc: subprocess.Popen[str]
    workers: list[int]
    reaper: threading.Thread

    def gone(self) -> bool:
        self.reaper.join(timeout=0)
        return self.proc.poll() is not None


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a worker that ended is reaped by its master at once; a zombie counts as gone
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[0] != "Z"


@pytest.fixture
def master() -> Iterator[Callable[..., Master]]:
    made: list[Master] = []

    def start(how: str = "plain") -> Master:
        proc = subprocess.Popen([sys.executable, "-c", MASTER, how], stdout=subprocess.PIPE,
                                text=True)
        workers = [int(x) for x in proc.stdout.readline().split()]  # type: ignore[union-attr]
        reaper = threading.Thread(target=proc.wait, daemon=True)  # no zombie: kill -0 sees it
        reaper.start()
        made.append(Master(proc, workers, reaper))
        return made[-1]

    yield start
    for m in made:
        for pid in [*m.workers, m.proc.pid]:
            try:
                os.kill(pid, 9)
            except ProcessLookupError:
                pass
        m.reaper.join(timeout=5)


@pytest.mark.parametrize("kill", [True, False])
@pytest.mark.parametrize("manager", MANAGERS)
def test_retire_kills_the_workers_of_a_failed_release(host, master, manager: str,
                                                     kill: bool) -> None:
    h = host(manager)
    h.serve("a", h.release(1), live=True)
    h.serve("b", h.release(2))
    old = master()
    (h.svc / h.instance("b")).write_text(str(old.proc.pid))  # the manager's main pid of b
    res = h.run(services.retire(h.paths, kill=kill))
    assert (res.returncode, res.stdout) == (0, "retired=b\n"), res.stderr
    assert wait_for(lambda: h.stopped() == [h.instance("b")])
    kills = [c for c in as_app_calls(h.fakebin) if "kill" in c]
    if kill:
        # killed as the app (its processes), and the master gone before the step ends
        assert kills[0] == f"pkill -KILL -P {old.proc.pid}"
        assert old.gone() and not any(map(alive, old.workers))
    else:
        # a graceful stop: its requests are finished, nothing is killed
        assert kills == [] and not old.gone() and all(map(alive, old.workers))
    assert h.running() == {h.instance("a")}


def test_retire_gives_up_killing_a_master_that_stays(host, master) -> None:
    h = host("systemd")
    h.serve("a", h.release(1), live=True)
    h.serve("b", h.release(2))
    old = master("stubborn")
    (h.svc / h.instance("b")).write_text(str(old.proc.pid))
    began = time.monotonic()
    res = h.run(services.retire(h.paths, kill=True))
    assert (res.returncode, res.stdout) == (0, "retired=b\n"), res.stderr
    assert 1.5 < time.monotonic() - began < 10  # about 2 s of tries, then on (its stop goes on)
    assert not any(map(alive, old.workers)) and not old.gone()


# --- slot_pid: the master pid of the slot the job started (the watch counts its workers) ---


@pytest.mark.parametrize("login", ["root", "deploy"])
@pytest.mark.parametrize("manager", MANAGERS)
def test_slot_pid_prints_the_master_pid_of_the_jobs_slot(host, manager: str, login: str) -> None:
    h = host(manager, login)
    h.serve("a", h.release(1), live=True)
    h.serve("b", h.release(2))
    (h.svc / h.instance("b")).write_text("4321")
    body = f"echo main=$({services.slot_pid(h.paths)})"
    for slot, main in [("b", "4321"), ("a", "0"), ("", "0"), ("c", "0"), ("a|b", "0")]:
        res = h.run(body, WSGISHIP_SLOT=slot)
        assert (res.returncode, res.stdout) == (0, f"main={main}\n"), (slot, res.stderr)
    res = h.run(body)  # no WSGISHIP_SLOT at all (set -u)
    assert (res.returncode, res.stdout) == (0, "main=0\n"), res.stderr
    # sudo refusing supervisor's pid query: nothing known, and no failure (the watch reads
    # nothing as 0); systemd's is no root command
    res = h.run(body, WSGISHIP_SLOT="b", SUDO_REFUSE="supervisorctl")
    refused = manager == "supervisor" and login == "deploy"
    assert (res.returncode, res.stdout) == (0, "main=\n" if refused else "main=4321\n")
