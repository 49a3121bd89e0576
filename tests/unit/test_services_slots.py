"""wsgiship.commands.services: start_slot, which starts a release in one of the app's two uWSGI
instances (slots); retire is in test_services_retire.py, with these fakes.

The scripts run for real on a deploy tree at a short path (real sockets go in its run dir), with
the fakes of fakes.py on PATH and, in place of its service managers, ones that keep state: an
instance runs while a file of its name is in $SVC, and once started it binds its slot's socket
in $RUN (a real unix socket), unless the test says otherwise."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import which
from fakes import (
    LOG,
    MANAGERS,
    FakeRootPaths,
    add_fakes,
    add_release,
    as_app,
    as_app_calls,
    calls,
    fake_env,
    priv,
    rel,
    run_script,
    sudoed,
)

from wsgiship import managers
from wsgiship.commands import services

# start_instance NAME: the instance `NAME` of slot $slot starts; START_FAILS, NO_SOCKET and
# HANGS name the slots that do not come up: the manager fails to start it, it exits before it
# binds its socket, it never binds one. $SVC/started notes what the slot link pointed at.
INSTANCES = r'''slot_of() { local s="${1%.service}"; echo "${s: -1}"; }
start_instance() {
  local slot; slot=$(slot_of "$1")
  case " ${START_FAILS:-} " in *" $slot "*) return 1 ;; esac
  [ -e "$SVC/$1" ] && return 0
  echo 0 > "$SVC/$1"  # (its main pid: none to signal)
  echo "$1 $(find "$SLOTS/$slot" -maxdepth 0 -printf %l 2>/dev/null)" >> "$SVC/started"
  case " ${NO_SOCKET:-} ${HANGS:-} " in
    *" $slot "*) case " ${NO_SOCKET:-} " in *" $slot "*)
                   ( sleep 0.3; rm -f "$SVC/$1" ) >/dev/null 2>&1 & ;; esac ;;
    *) rm -f "$RUN/uwsgi-$slot.sock"
       python3 -c 'import socket, sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])' \
         "$RUN/uwsgi-$slot.sock" ;;
  esac
}
stop_instance() { rm -f "$SVC/$1"; echo "$1 $(date +%s.%N)" >> "$SVC/stopped"; }
'''

MANAGER_FAKES = {
    "systemctl": LOG + INSTANCES + r'''log systemctl "$@"
unit="${@: -1}"
case "$1" in
  is-active) [ -e "$SVC/$unit" ] ;;
  show) cat "$SVC/$unit" 2>/dev/null || echo 0 ;;
  status) echo "× $unit - failed (Result: exit-code)" ;;
  start) need_root systemctl; start_instance "$unit" ;;
  stop) need_root systemctl; stop_instance "$unit" ;;
  *) need_root systemctl ;;
esac
''',
    # a program in $SVC/NAME.stopping (a count) is STOPPING for that many status calls
    "supervisorctl": LOG + INSTANCES + r'''log supervisorctl "$@"
need_root supervisorctl
case "$1" in
  status) if [ -s "$SVC/$2.stopping" ]; then n=$(cat "$SVC/$2.stopping")
            if [ "$n" -gt 0 ]; then echo $((n - 1)) > "$SVC/$2.stopping"; echo "$2 STOPPING"
              exit 0; fi; fi
          if [ -e "$SVC/$2" ]; then echo "$2   RUNNING   pid 1, uptime 0:00:05"
          else echo "$2   STOPPED   Not started"; exit 3; fi ;;
  start) if [ -e "$SVC/$2" ]; then echo "$2: ERROR (already started)"; exit 7; fi
         start_instance "$2" || { echo "$2: ERROR (spawn error)"; exit 7; } ;;
  stop) stop_instance "$2" ;;
  pid) cat "$SVC/$2" 2>/dev/null || echo 0 ;;
  update) shift; for prog in "$@"; do case "$prog" in *-a|*-b) ;;
            *) [ -e "$SVC/$prog" ] && stop_instance "$prog" ;; esac; done ;;
  tail) echo "supervisor: uwsgi exited" ;;
esac
''',
    "ln": f'echo "ln $*" >> "$CALLS"\nexec {which("ln")} "$@"\n',
}

# Who runs the scripts: root itself ($SUDO empty), or a deploy user with sudo -n; and how each
# runs a command as the app's user `web` (Remote.as_app_prefix)
LOGINS = {"root": ("", {}), "deploy": ("sudo -n", {"FAKE_LOGIN": "deploy"})}
AS_WEB = {"root": "runuser -u web --", "deploy": "sudo -n -u web --"}


@dataclass
class Host:
    """A deploy tree at a short path with the fakes: how the flow runs a script there (as
    `login`, the app running as `web`), and what runs."""

    root: Path
    fakebin: Path
    manager: str
    login: str = "deploy"

    @property
    def paths(self) -> FakeRootPaths:
        return FakeRootPaths(str(self.root), "app", self.manager,
                             root=fake_env(self.fakebin)["FAKE_ROOT"])

    @property
    def svc(self) -> Path:
        return self.fakebin.parent / "svc"

    @property
    def run_dir(self) -> Path:
        return self.root / "shared" / "run"

    def instance(self, slot: str) -> str:
        return managers.get(self.manager, "wsgiship-app").instance(slot)

    def run(self, body: str, app: str | None = None, **extra: str
            ) -> subprocess.CompletedProcess[str]:
        """Run a script (`app`: another $AS_APP, "" when the login is the app's user)."""
        # (sudo -l: the deploy user may run what fab setup granted)
        env = fake_env(self.fakebin, **LOGINS[self.login][1], SVC=str(self.svc),
                       RUN=str(self.run_dir), SLOTS=str(self.root / "slots"),
                       **{"SUDO_LIST_RC": "0", **extra})
        prefix = AS_WEB[self.login] if app is None else app
        return run_script(priv(as_app(body, prefix), LOGINS[self.login][0]), env=env)

    def release(self, i: int, service: str = "v1") -> str:
        """Release i, rendered for slots, with its service config."""
        r = add_release(self.root, rel(i))
        (r / ".wsgiship" / "uwsgi.ini").write_text(
            f"[uwsgi]\nsocket = {self.run_dir}/uwsgi-$(WSGISHIP_SLOT).sock\n")
        (r / ".wsgiship" / "service").write_text(f"{self.manager} {service}\n")
        return rel(i)

    def serve(self, slot: str, release: str, live: bool = False) -> None:
        """The slot runs `release` (nginx's socket links to it if `live`)."""
        (self.root / "slots").mkdir(exist_ok=True)
        (self.root / "slots" / slot).symlink_to(f"../releases/{release}")
        (self.svc / self.instance(slot)).write_text("0")
        if live:
            (self.run_dir / "uwsgi.sock").symlink_to(f"uwsgi-{slot}.sock")

    def link(self, slot: str) -> str | None:
        path = self.root / "slots" / slot
        return os.readlink(path) if path.is_symlink() else None

    def running(self) -> set[str]:
        return {p.name for p in self.svc.iterdir()
                if p.name not in ("started", "stopped") and p.suffix != ".stopping"}

    def stopped(self) -> list[str]:
        path = self.svc / "stopped"
        return [line.split()[0] for line in path.read_text().splitlines()] if path.exists() else []


@pytest.fixture
def host(fakebin: Path) -> Iterator[Callable[..., Host]]:
    """Host(manager, login) on a fresh deploy tree under /tmp (a short path)."""
    top = Path(tempfile.mkdtemp(prefix="ws-", dir="/tmp"))
    add_fakes(fakebin, MANAGER_FAKES)
    (fakebin.parent / "svc").mkdir()

    def make(manager: str, login: str = "deploy") -> Host:
        root = top / "app"
        for d in ("releases", "shared/log", "shared/run", "venvs"):
            (root / d).mkdir(parents=True)
        return Host(root, fakebin, manager, login)

    yield make
    shutil.rmtree(top, ignore_errors=True)


def wait_for(condition: Callable[[], bool], timeout: float = 5) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


# --- start_slot ---

# what a changed service config takes: the manager reads it (supervisor's `update` of a
# program is its start's: an update now would restart the live slot's too)
APPLY = {"systemd": ["systemctl daemon-reload",
                     "systemctl enable -q wsgiship-app@a.service wsgiship-app@b.service"],
         "supervisor": ["supervisorctl reread"]}
# what starting slot a takes (supervisor: its program's config read, then the start)
START = {"systemd": ["systemctl start wsgiship-app@a.service"],
         "supervisor": ["supervisorctl reread", "supervisorctl update wsgiship-app-a",
                        "supervisorctl start wsgiship-app-a"]}


def managed(h: Host) -> list[str]:
    """What the script asked of the manager (but whether an instance runs) and of install."""
    return [c for c in calls(h.fakebin) if c.startswith(("install ", "systemctl ", "supervisorctl "))
            and " status " not in c and "is-active" not in c]


@pytest.mark.parametrize("live", ["", "a", "b"])
@pytest.mark.parametrize("manager", MANAGERS)
def test_start_slot_starts_the_release_in_the_slot_nginx_does_not_use(host, manager: str,
                                                                      live: str) -> None:
    h = host(manager)
    old, new = h.release(1), h.release(2)
    if live:
        h.serve(live, old, live=True)
    res = h.run(services.start_slot(h.paths, new))
    slot = "b" if live == "a" else "a"
    assert res.returncode == 0, res.stderr
    assert res.stdout == f"unit=installed\nslot={slot}\nuwsgi=started\n"
    assert h.link(slot) == f"../releases/{new}"
    # pointed at the release before its uWSGI started, with the release's service config
    assert (h.svc / "started").read_text() == f"{h.instance(slot)} ../releases/{new}\n"
    assert Path(h.paths.service_file).read_text() == f"{manager} v1\n"
    assert (h.run_dir / f"uwsgi-{slot}.sock").is_socket()
    # the live one goes on as it was
    assert h.running() == {h.instance(slot), *([h.instance(live)] if live else [])}
    assert h.stopped() == []
    if live:
        assert h.link(live) == f"../releases/{old}"
        assert os.readlink(h.run_dir / "uwsgi.sock") == f"uwsgi-{live}.sock"
    assert sorted(os.listdir(h.root / "slots")) == sorted({slot, live} - {""})  # no temporary


@pytest.mark.parametrize("login", LOGINS)
@pytest.mark.parametrize("manager", MANAGERS)
def test_start_slot_runs_the_managers_commands_as_root_and_looks_as_the_app(
        host, manager: str, login: str) -> None:
    h = host(manager, login)
    new = h.release(1)
    res = h.run(services.start_slot(h.paths, new))
    assert res.returncode == 0, res.stderr
    install = f"install -m 644 {h.root}/releases/{new}/.wsgiship/service {h.paths.service_file}"
    done = managed(h)
    # the config installed and read before the start
    assert done == [install, *APPLY[manager], *START[manager]]
    if login == "deploy":  # (the fakes refuse a root command run without sudo)
        assert [c for c in sudoed(h.fakebin) if " status " not in c] == done
    run = h.run_dir
    # which slot is live; its socket, bound at once, and asked again after the wait
    assert as_app_calls(h.fakebin) == [f"readlink {run}/uwsgi.sock",
                                       *[f"test -S {run}/uwsgi-a.sock"] * 2]
    # the slot link is the login user's (slots/ is in its layout)
    assert f"ln -sfn ../releases/{new} {h.root}/slots/.a.tmp" in calls(h.fakebin)
    assert not any(" ln " in c or " mkdir " in c for c in sudoed(h.fakebin))


@pytest.mark.parametrize("manager", MANAGERS)
def test_start_slot_installs_an_unchanged_service_config_no_more(host, manager: str) -> None:
    h = host(manager)
    new = h.release(1)
    Path(h.paths.service_file).parent.mkdir(parents=True)
    Path(h.paths.service_file).write_text(f"{manager} v1\n")
    res = h.run(services.start_slot(h.paths, new))
    assert (res.returncode, res.stdout) == (0, "slot=a\nuwsgi=started\n"), res.stderr
    assert managed(h) == START[manager]  # nothing installed, nothing more to read


@pytest.mark.parametrize("manager", MANAGERS)
def test_start_slot_stops_what_was_left_in_the_free_slot_first(host, manager: str) -> None:
    # a failed release's uWSGI, left by an ended watch window, in the slot nginx does not use
    h = host(manager)
    live, failed, new = h.release(1), h.release(2), h.release(3)
    h.serve("a", live, live=True)
    h.serve("b", failed)
    res = h.run(services.start_slot(h.paths, new))
    assert res.returncode == 0, res.stderr
    assert res.stdout.endswith("slot=b\nuwsgi=started\n")
    assert h.stopped() == [h.instance("b")]
    assert (h.svc / "started").read_text() == f"{h.instance('b')} ../releases/{new}\n"
    assert h.running() == {h.instance("a"), h.instance("b")}
    assert (h.link("a"), h.link("b")) == (f"../releases/{live}", f"../releases/{new}")
    done = calls(h.fakebin)
    stop = next(i for i, c in enumerate(done) if c.endswith(f"stop {h.instance('b')}"))
    relink = done.index(f"ln -sfn ../releases/{new} {h.root}/slots/.b.tmp")
    assert stop < relink  # stopped before its link moves


@pytest.mark.parametrize("manager", MANAGERS)
@pytest.mark.parametrize("running, slot, how", [
    ("b", "b", "running"),   # the way back: the release left is still warm in its slot
    ("a", "a", "running"),   # the live release itself
    ("", "b", "started"),    # its link is there but its uWSGI is not: started anew
])
def test_start_slot_uses_a_slot_already_running_the_release(host, manager: str, running: str,
                                                            slot: str, how: str) -> None:
    h = host(manager)
    older, live = h.release(1), h.release(2)
    h.serve("a", live, live=True)
    h.serve("b", older)
    if running != "b":
        (h.svc / h.instance("b")).unlink()
    res = h.run(services.start_slot(h.paths, live if running == "a" else older))
    assert res.returncode == 0, res.stderr
    assert res.stdout.endswith(f"slot={slot}\nuwsgi={how}\n")
    assert (h.link("a"), h.link("b")) == (f"../releases/{live}", f"../releases/{older}")
    assert h.stopped() == []
    started = [c for c in calls(h.fakebin) if c.startswith(("install", "systemctl start",
                                                            "supervisorctl start"))]
    assert bool(started) == (how == "started")


def test_start_slot_refuses_a_release_rendered_for_a_single_uwsgi(host) -> None:
    h = host("systemd")
    old = h.release(1)
    (h.root / "releases" / old / ".wsgiship" / "uwsgi.ini").write_text(
        f"[uwsgi]\nsocket = {h.run_dir}/uwsgi.sock\n")
    res = h.run(services.start_slot(h.paths, old))
    assert res.returncode == 1
    assert res.stderr == services.OLD_RELEASE.format(release=old) + "\n"
    assert calls(h.fakebin) == [] and not (h.root / "slots").exists()


@pytest.mark.parametrize("stopping", [0, 3])
def test_start_slot_under_supervisor_waits_while_the_slot_is_stopping(host, stopping: int) -> None:
    # the previous deploy's retire may still be stopping that slot's uWSGI gracefully
    h = host("supervisor")
    h.serve("a", h.release(1), live=True)
    (h.svc / "wsgiship-app-b.stopping").write_text(str(stopping))
    res = h.run(services.start_slot(h.paths, h.release(2)))
    assert res.returncode == 0, res.stderr
    assert res.stdout.endswith("slot=b\nuwsgi=started\n")
    done = [c for c in calls(h.fakebin) if c.startswith("supervisorctl")]
    start = done.index("supervisorctl start wsgiship-app-b")
    # asked until it was no longer STOPPING, then started (the first answer also told that
    # nothing was left running there)
    assert done[:start].count("supervisorctl status wsgiship-app-b") == max(stopping, 1) + 1
    assert (h.svc / "wsgiship-app-b.stopping").read_text().strip() == "0"
    assert h.stopped() == [] and h.running() == {h.instance("a"), h.instance("b")}


# what each manager says about a slot that did not start
WHY = {"systemd": ["× wsgiship-app@a.service - failed (Result: exit-code)",
                   "journal: uwsgi exited"],
       "supervisor": ["supervisor: uwsgi exited"]}


@pytest.mark.parametrize("manager", MANAGERS)
@pytest.mark.parametrize("fault", ["START_FAILS", "NO_SOCKET"])
def test_start_slot_fails_with_the_managers_words_and_the_app_log(host, manager: str,
                                                                  fault: str) -> None:
    h = host(manager)
    log = h.root / "shared" / "log" / "uwsgi.log"
    log.write_text("ImportError: no module named hello\n")
    res = h.run(services.start_slot(h.paths, h.release(1)), **{fault: "a"})
    # the job's reason for the failure; no slot to check or switch to
    assert (res.returncode, res.stdout.splitlines()) == (1, ["unit=installed", services.NOT_STARTED])
    # the manager failed to start it (its words), or it started and exited before it bound
    # its socket; then the app's log, read as the app
    lines = res.stderr.splitlines()
    assert lines[:-2] == (WHY[manager] if fault == "START_FAILS" else [])
    assert lines[-2:] == [services.LOG_HEAD, "ImportError: no module named hello"]
    tails = [c.split() for c in as_app_calls(h.fakebin) if c.startswith("tail ")]
    assert [(argv[:2], argv[-1]) for argv in tails] == [(["tail", "-n"], str(log))]
    assert h.running() == set()


@pytest.mark.parametrize("manager", MANAGERS)
def test_start_slot_says_first_why_wsgi_py_could_not_load_the_app(host, manager: str) -> None:
    # wsgi.py's line for this release is the reason (an earlier release's line is not)
    h = host(manager)
    old, new = h.release(1), h.release(2)
    said = "app.wsgi: pkg:create_app takes no arguments: did you mean pkg:create_app()?"
    (h.root / "shared" / "log" / "uwsgi.log").write_text(
        f"wsgiship: release {old}: app.wsgi: an older failure\n"
        f"Wed Nov 25 12:00:39 2026 - wsgiship: release {new}: {said}\n"
        "RuntimeError: the app did not load (the wsgiship: line above says why)\n")
    res = h.run(services.start_slot(h.paths, new), NO_SOCKET="a")
    assert (res.returncode, res.stdout.splitlines()) == (1, ["unit=installed", f"reason={said}"])
    assert res.stderr.splitlines()[-1].startswith("RuntimeError: the app did not load")
    res = h.run(services.start_slot(h.paths, h.release(3)), NO_SOCKET="a")
    assert res.stdout.splitlines()[-1] == services.NOT_STARTED  # no line of its own: general


@pytest.mark.parametrize("manager", MANAGERS)
def test_start_slot_fails_when_the_socket_never_appears(host, manager: str) -> None:
    # its uWSGI runs on but never binds its socket (an app hanging in its import): after the
    # wait, no slot to check or switch to
    h = host(manager, "root")
    (h.fakebin / "sleep").write_text("#!/bin/sh\nexit 0\n")  # the 60 s of polling at once
    (h.fakebin / "sleep").chmod(0o755)
    (h.root / "shared" / "log" / "uwsgi.log").write_text("*** Operational MODE: preforking ***\n")
    res = h.run(services.start_slot(h.paths, h.release(1)), app="", HANGS="a")
    assert res.returncode == 1, res.stdout
    assert res.stdout.splitlines() == ["unit=installed", services.NOT_STARTED]
    assert res.stderr == f"{services.LOG_HEAD}\n*** Operational MODE: preforking ***\n"
    assert h.running() == {h.instance("a")}  # (stopped by the job's way back, or the next start)
    assert not (h.run_dir / "uwsgi-a.sock").exists()
