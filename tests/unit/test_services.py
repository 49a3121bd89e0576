"""wsgiship.commands.services: install, reload_uwsgi and error_log_tail.

reload_uwsgi runs for real against stand-in uWSGI masters (processes whose children run in a
release dir), with the fake service managers of fakes.py on PATH."""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fakes import (
    HOSTILE,
    MANAGERS,
    NAME,
    add_release,
    as_deploy,
    body_lines,
    calls,
    current_release,
    fake_env,
    line_with,
    paths,
    priv,
    rel,
    sudoed,
    svc_paths,
)

from wsgiship.commands import services
from wsgiship.layout import Paths


def test_error_log_tail_forces_an_integer() -> None:
    text = services.error_log_tail(Paths("/srv/app", "app"), 7)
    assert shlex.split(body_lines(text)[0])[:4] == ["tail", "-n", "7", "/srv/app/shared/log/uwsgi.log"]
    with pytest.raises(ValueError):
        services.error_log_tail(Paths("/srv/app", "app"), "5; rm -rf /")  # type: ignore[arg-type]


def test_error_log_tail(deploy: Path, sh) -> None:
    log = deploy / "shared" / "log" / "uwsgi.log"
    log.write_text("".join(f"line {i}\n" for i in range(50)))
    res = sh(services.error_log_tail(paths(deploy), 3))
    assert res.stdout == "line 47\nline 48\nline 49\n"
    log.unlink()
    res = sh(services.error_log_tail(paths(deploy)))
    assert res.returncode == 0 and res.stdout == ""


# --- install ---


def test_install_chowns_shared_only_for_a_separate_app_user() -> None:
    p = Paths("/srv/app", "app")
    same = services.install(p, "deploy", "deploy", ("media", ".env"))
    assert "chown" not in same
    other = services.install(p, "deploy", "www-data", ("media", ".env"))
    chowns = [shlex.split(line.partition("|| ")[2]) for line in other.splitlines() if "chown" in line]
    assert chowns == [["$SUDO", "chown", "www-data:www-data", f"/srv/app/shared/{d}"]
                      for d in ("log", "run", "media", ".env")]
    for text in (same, other):
        assert "/etc/systemd/system/wsgiship-app.service" in text
        assert "/srv/app/current/.wsgiship/service" in text
        assert "/srv/app/current/.wsgiship/nginx.conf" in text
        assert "/etc/nginx/sites-enabled/wsgiship-app" in text


def test_install_targets_the_managers_config_file() -> None:
    text = services.install(Paths("/srv/app", "app", "supervisor"), "deploy", "deploy")
    argv = shlex.split(line_with(text, "cmp -s").partition("then")[2].partition(";")[0])
    assert argv == ["$SUDO", "install", "-m", "644", "/srv/app/current/.wsgiship/service",
                    "/etc/supervisor/conf.d/wsgiship-app.conf"]
    assert "supervisorctl update wsgiship-app" in text
    assert "systemctl" not in text and "/etc/systemd" not in text


def test_install_quotes_the_users_and_shared_names() -> None:
    text = services.install(Paths("/srv/app", "app"), "deploy", "web" + HOSTILE, (HOSTILE,))
    chowns = [shlex.split(line.partition("|| ")[2]) for line in text.splitlines() if "chown" in line]
    assert chowns == [["$SUDO", "chown", f"web{HOSTILE}:www-data", f"/srv/app/shared/{d}"]
                      for d in ("log", "run", HOSTILE)]


@pytest.mark.parametrize("manager", MANAGERS)
def test_install_runs_each_root_command_through_sudo_once_and_only_when_needed(
        deploy: Path, fakebin: Path, sh, manager: str) -> None:
    current_release(deploy, manager)
    p = svc_paths(deploy, manager)
    body = priv(services.install(p, "deploy", "web", (".env",)), "sudo -n")
    res = sh(body, env=as_deploy(fakebin))
    assert res.returncode == 0, res.stderr
    assert res.stdout == "unit=installed\nsite=installed\nsite=installed\n"
    fake_root = Path(p.root)
    assert Path(p.service_file).read_text() == f"{manager} config\n"
    available = fake_root / "etc/nginx/sites-available/wsgiship-app"
    enabled = fake_root / "etc/nginx/sites-enabled/wsgiship-app"
    assert os.readlink(available) == f"{deploy}/current/.wsgiship/nginx.conf"
    assert os.readlink(enabled) == "../sites-available/wsgiship-app"
    apply = (["systemctl daemon-reload", "systemctl enable -q wsgiship-app"]
             if manager == "systemd" else
             ["supervisorctl reread", "supervisorctl update wsgiship-app"])
    assert sudoed(fakebin) == [
        f"install -m 644 {deploy}/current/.wsgiship/service {p.service_file}",
        *apply,
        f"ln -sfn {deploy}/current/.wsgiship/nginx.conf /etc/nginx/sites-available/wsgiship-app",
        "ln -sfn ../sites-available/wsgiship-app /etc/nginx/sites-enabled/wsgiship-app",
        *(f"chown web:www-data {deploy}/shared/{d}" for d in ("log", "run", ".env")),
    ]
    # everything in place: only the chown of dirs not yet the app user's needs root (the fake
    # chown changes nothing), and none when the app user is the login
    (fakebin / "calls").unlink()
    res = sh(body, env=as_deploy(fakebin))
    assert res.returncode == 0 and res.stdout == ""
    assert [c.split()[0] for c in sudoed(fakebin)] == ["chown"] * 3
    (fakebin / "calls").unlink()
    res = sh(priv(services.install(p, "deploy", "deploy"), "sudo -n"), env=as_deploy(fakebin))
    assert res.returncode == 0 and res.stdout == ""
    assert sudoed(fakebin) == []
    assert any(c.startswith("readlink /etc/nginx/") for c in calls(fakebin))


# --- reload_uwsgi, run with fakes ---


def test_the_fake_root_is_where_the_fakes_write(deploy: Path, fakebin: Path) -> None:
    assert svc_paths(deploy).root == fake_env(fakebin)["FAKE_ROOT"]
    assert svc_paths(deploy).service_file.endswith("/root/etc/systemd/system/wsgiship-app.service")


# what each manager's snippets run (as logged by the fakes)
MANAGER_CALLS = {
    "systemd": {"is_active": "systemctl is-active -q wsgiship-app",
                "start": "systemctl start wsgiship-app",
                "graceful": "systemctl reload wsgiship-app",
                "restart": "systemctl restart wsgiship-app",
                "main_pid": "systemctl show -p MainPID --value wsgiship-app",
                "why": "journalctl -u wsgiship-app -n 20 --no-pager",
                "why_output": "journal: uwsgi exited"},
    "supervisor": {"is_active": "supervisorctl status wsgiship-app",
                   "start": "supervisorctl start wsgiship-app",
                   "graceful": "supervisorctl signal HUP wsgiship-app",
                   "restart": None,  # `supervisorctl update` restarted a changed program
                   "main_pid": "supervisorctl pid wsgiship-app",
                   "why": "supervisorctl tail wsgiship-app stderr",
                   "why_output": "supervisor: uwsgi exited"},
}


# Who runs the scripts: root itself ($SUDO empty), or a deploy user with sudo -n.
LOGINS = {"root": ("", {}), "deploy": ("sudo -n", {"FAKE_LOGIN": "deploy"})}


@pytest.fixture
def master() -> Iterator[Callable[[Path, int], int]]:
    """Start a stand-in uWSGI master: a process whose `n` children run in `cwd`; its pid."""
    procs: list[subprocess.Popen[bytes]] = []

    def start(cwd: Path, n: int) -> int:
        body = " ".join(f"(cd {shlex.quote(str(cwd))} && exec sleep 30) &" for _ in range(n))
        proc = subprocess.Popen(["bash", "-c", body + " wait"], cwd="/", start_new_session=True)
        procs.append(proc)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:  # until both children have changed directory
            children = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True,
                                      text=True).stdout.split()
            cwds = [os.path.realpath(f"/proc/{c}/cwd") for c in children]
            if len(children) == n and all(c == str(cwd) for c in cwds):
                break
            time.sleep(0.02)
        return proc.pid

    yield start
    for proc in procs:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def reload_env(fakebin: Path, login: str, **extra: str) -> dict[str, str]:
    return fake_env(fakebin, **LOGINS[login][1], **extra)


def reload_script(deploy: Path, manager: str, login: str, release: str, previous: str,
                  processes: int = 2, as_other: bool = False, wait: int = 5,
                  unit_changed: str = "") -> str:
    body = services.reload_uwsgi(svc_paths(deploy, manager), release, previous, processes,
                                 as_other, wait=wait)
    if unit_changed:
        body = f"UNIT_CHANGED={unit_changed}\n" + body  # as the flow sends it
    return priv(body, LOGINS[login][0])


@pytest.mark.parametrize("login", LOGINS)
@pytest.mark.parametrize("manager", MANAGERS)
def test_reload_uwsgi_starts_a_stopped_service_and_waits_for_its_workers(
        deploy: Path, fakebin: Path, master, sh, manager: str, login: str) -> None:
    r = add_release(deploy, rel(1))
    pid = master(r, 2)
    res = sh(reload_script(deploy, manager, login, rel(1), ""),
             env=reload_env(fakebin, login, MAINPID=str(pid)))
    assert res.returncode == 0, res.stderr
    assert res.stdout == "uwsgi=started\nworkers=2\n"
    m = MANAGER_CALLS[manager]
    done = [c for c in calls(fakebin) if not c.startswith(("sudo ", "readlink", "getent"))]
    assert done[0].startswith(m["is_active"])
    assert m["start"] in done
    assert m["main_pid"] in done
    assert m["graceful"] not in done
    if login == "deploy":
        assert m["start"] in sudoed(fakebin)


@pytest.mark.parametrize("manager", MANAGERS)
def test_reload_uwsgi_reloads_a_running_service_gracefully(deploy: Path, fakebin: Path, master,
                                                           sh, manager: str) -> None:
    add_release(deploy, rel(1), venv_key="a")
    r2 = add_release(deploy, rel(2), venv_key="b")  # a new venv: no chain reload
    pid = master(r2, 2)
    res = sh(reload_script(deploy, manager, "deploy", rel(2), rel(1)),
             env=reload_env(fakebin, "deploy", ACTIVE="1", MAINPID=str(pid)))
    assert res.returncode == 0, res.stderr
    assert res.stdout == "uwsgi=graceful\nworkers=2\n"
    m = MANAGER_CALLS[manager]
    assert m["graceful"] in sudoed(fakebin)
    assert m["start"] not in calls(fakebin)


@pytest.mark.parametrize("manager", MANAGERS)
def test_reload_uwsgi_restarts_a_running_service_whose_unit_changed(
        deploy: Path, fakebin: Path, master, sh, fifo_reader, manager: str) -> None:
    add_release(deploy, rel(1))
    r2 = add_release(deploy, rel(2))  # same venv, same ini, a fifo: a chain reload but for
    pid = master(r2, 2)               # the changed unit
    res = sh(reload_script(deploy, manager, "deploy", rel(2), rel(1), unit_changed="1"),
             env=reload_env(fakebin, "deploy", ACTIVE="1", MAINPID=str(pid)))
    assert res.returncode == 0, res.stderr
    assert res.stdout == "uwsgi=restarted\nworkers=2\n"
    m = MANAGER_CALLS[manager]
    done = calls(fakebin)
    assert m["graceful"] not in done and m["start"] not in done
    assert not any("uwsgi.fifo" in c for c in done)
    fifo_reader.kill()
    assert fifo_reader.communicate()[0] == b""  # nothing written to the fifo
    if m["restart"]:
        assert m["restart"] in sudoed(fakebin)


@pytest.mark.parametrize("manager", MANAGERS)
def test_reload_uwsgi_starts_a_stopped_service_even_when_its_unit_changed(
        deploy: Path, fakebin: Path, master, sh, manager: str) -> None:
    r = add_release(deploy, rel(1))
    pid = master(r, 2)
    res = sh(reload_script(deploy, manager, "root", rel(1), "", unit_changed="1"),
             env=reload_env(fakebin, "root", MAINPID=str(pid)))
    assert res.returncode == 0, res.stderr
    assert res.stdout == "uwsgi=started\nworkers=2\n"
    assert "systemctl restart wsgiship-app" not in calls(fakebin)


@pytest.fixture
def fifo_reader(deploy: Path) -> Iterator[subprocess.Popen[bytes]]:
    """uWSGI's master fifo at its place in shared/run, read by a stand-in master."""
    fifo = deploy / "shared" / "run" / "uwsgi.fifo"
    os.mkfifo(fifo)
    reader = subprocess.Popen(["cat", str(fifo)], stdout=subprocess.PIPE)
    yield reader
    if reader.poll() is None:
        reader.kill()
    reader.wait()


@pytest.mark.parametrize("manager", MANAGERS)
def test_reload_uwsgi_chain_reloads_through_the_fifo_as_the_app_user(
        deploy: Path, fakebin: Path, master, sh, fifo_reader, manager: str) -> None:
    r1 = add_release(deploy, rel(1))
    r2 = add_release(deploy, rel(2))  # the same venv
    (r1 / ".wsgiship" / "uwsgi.ini").write_text(f"; release {rel(1)}\n[uwsgi]\n")
    (r2 / ".wsgiship" / "uwsgi.ini").write_text(f"; release {rel(2)}\n[uwsgi]\n")
    pid = master(r2, 2)
    res = sh(reload_script(deploy, manager, "deploy", rel(2), rel(1), as_other=True,
                           unit_changed="0"),
             env=reload_env(fakebin, "deploy", ACTIVE="1", MAINPID=str(pid)))
    assert res.returncode == 0, res.stderr
    assert res.stdout == "uwsgi=chain\nworkers=2\n"
    assert fifo_reader.communicate(timeout=5)[0] == b"c"
    fifo = deploy / "shared" / "run" / "uwsgi.fifo"
    # uWSGI runs as another user: its fifo and its workers' cwd need root
    assert f"timeout 5 sh -c printf c > {fifo}" in sudoed(fakebin)
    assert f"readlink /proc/{pid_of_a_worker(pid)}/cwd" in sudoed(fakebin)
    assert MANAGER_CALLS[manager]["graceful"] not in calls(fakebin)


def pid_of_a_worker(master_pid: int) -> str:
    return subprocess.run(["pgrep", "-P", str(master_pid)], capture_output=True,
                          text=True).stdout.split()[0]


def test_reload_uwsgi_chain_is_graceful_when_the_ini_changed(deploy: Path, fakebin: Path,
                                                             master, sh, fifo_reader) -> None:
    add_release(deploy, rel(1))
    r2 = add_release(deploy, rel(2))
    (r2 / ".wsgiship" / "uwsgi.ini").write_text("[uwsgi]\nprocesses = 4\n")
    pid = master(r2, 2)
    res = sh(reload_script(deploy, "systemd", "root", rel(2), rel(1)),
             env=reload_env(fakebin, "root", ACTIVE="1", MAINPID=str(pid)))
    assert res.returncode == 0, res.stderr
    assert res.stdout == "uwsgi=graceful\nworkers=2\n"
    assert "systemctl reload wsgiship-app" in calls(fakebin)
    fifo_reader.kill()
    assert fifo_reader.communicate()[0] == b""  # nothing written to the fifo


def test_reload_uwsgi_fails_while_workers_serve_the_old_release(deploy: Path, fakebin: Path,
                                                               master, sh) -> None:
    r1 = add_release(deploy, rel(1))
    add_release(deploy, rel(2))
    (deploy / "shared" / "log" / "uwsgi.log").write_text("worker 1 buried after 1 seconds\n")
    pid = master(r1, 2)
    res = sh(reload_script(deploy, "systemd", "root", rel(2), rel(1), wait=0),
             env=reload_env(fakebin, "root", ACTIVE="1", MAINPID=str(pid)))
    assert res.returncode == 1
    assert "only 0 of 2 workers serve the new release after 0s" in res.stderr
    assert "worker 1 buried" in res.stderr


@pytest.mark.parametrize("manager", MANAGERS)
def test_reload_uwsgi_reports_unknown_workers_it_may_not_look_into(
        deploy: Path, fakebin: Path, master, sh, manager: str) -> None:
    # uWSGI runs as another user and sudo does not allow reading its /proc entries: the
    # reload cannot tell which release the workers serve (the health check will)
    r1 = add_release(deploy, rel(1), venv_key="a")
    add_release(deploy, rel(2), venv_key="b")
    pid = master(r1, 2)
    env = reload_env(fakebin, "deploy", ACTIVE="1", MAINPID=str(pid), WORKERS_HIDDEN="1",
                     SUDO_REFUSE="readlink")
    res = sh(reload_script(deploy, manager, "deploy", rel(2), rel(1), as_other=True, wait=2),
             env=env)
    assert res.returncode == 0, res.stderr
    assert res.stdout == "uwsgi=graceful\nworkers=unknown\n"
    # with sudo allowed to look, the old workers are seen for what they are
    (fakebin / "calls").unlink()
    env.pop("SUDO_REFUSE")
    res = sh(reload_script(deploy, manager, "deploy", rel(2), rel(1), as_other=True, wait=0),
             env=env)
    assert res.returncode == 1
    assert "only 0 of 2 workers serve the new release after 0s" in res.stderr
    assert any(c.startswith("readlink /proc/") for c in sudoed(fakebin))


def test_reload_uwsgi_waits_for_all_workers_even_unknown_ones(deploy: Path, fakebin: Path,
                                                              master, sh) -> None:
    r1 = add_release(deploy, rel(1), venv_key="a")
    add_release(deploy, rel(2), venv_key="b")
    pid = master(r1, 1)  # one worker of the 2 configured: not all there yet
    res = sh(reload_script(deploy, "systemd", "deploy", rel(2), rel(1), as_other=True, wait=1),
             env=reload_env(fakebin, "deploy", ACTIVE="1", MAINPID=str(pid),
                            WORKERS_HIDDEN="1", SUDO_REFUSE="readlink"))
    assert res.returncode == 1
    assert "only 0 of 1 workers serve the new release after 1s" in res.stderr


def test_reload_uwsgi_reads_worker_dirs_without_sudo_for_its_own_workers(
        deploy: Path, fakebin: Path, master, sh) -> None:
    r = add_release(deploy, rel(1))
    pid = master(r, 2)
    res = sh(reload_script(deploy, "systemd", "deploy", rel(1), "", as_other=False),
             env=reload_env(fakebin, "deploy", MAINPID=str(pid)))
    assert res.returncode == 0, res.stderr
    assert res.stdout == "uwsgi=started\nworkers=2\n"
    assert any(c.startswith("readlink /proc/") for c in calls(fakebin))
    assert sudoed(fakebin) == ["systemctl start wsgiship-app"]


@pytest.fixture
def instant_sleep(fakebin: Path) -> None:
    """A `sleep` that returns at once, so polling for a service that never starts is quick."""
    (fakebin / "sleep").write_text("#!/bin/sh\nexit 0\n")
    (fakebin / "sleep").chmod(0o755)


@pytest.mark.parametrize("manager", MANAGERS)
def test_reload_uwsgi_failure_to_start_shows_why_and_the_app_log(
        deploy: Path, fakebin: Path, sh, instant_sleep, manager: str) -> None:
    add_release(deploy, rel(1))
    (deploy / "shared" / "log" / "uwsgi.log").write_text("ImportError: no module named hello\n")
    res = sh(reload_script(deploy, manager, "deploy", rel(1), "", wait=1),
             env=reload_env(fakebin, "deploy", START_OK="0"))
    assert res.returncode == 1
    m = MANAGER_CALLS[manager]
    assert m["why_output"] in res.stderr
    assert "ImportError: no module named hello" in res.stderr
    assert m["why"] in calls(fakebin)
    assert "uwsgi=" not in res.stdout


def test_reload_uwsgi_quotes_release_names() -> None:
    text = services.reload_uwsgi(Paths("/srv/app", "app"), HOSTILE, "old" + HOSTILE, 2, False)
    assert shlex.split(line_with(text, "NEW=")) == [
        f"NEW=/srv/app/releases/{HOSTILE};", f"OLD=/srv/app/releases/old{HOSTILE}"]


def test_reload_uwsgi_writes_the_fifo_in_shared_run() -> None:
    text = services.reload_uwsgi(Paths("/srv/app", "app"), NAME, "old", 2, as_other=True)
    line = line_with(text, "timeout 5")
    assert line.startswith("chain() { ") and line.endswith("; }")
    argv = shlex.split(line[len("chain() { "):-len("; }")])
    assert argv[:5] == ["$SUDO", "timeout", "5", "sh", "-c"]
    assert shlex.split(argv[5]) == ["printf", "c", ">", "/srv/app/shared/run/uwsgi.fifo"]
    assert "[ -p /srv/app/shared/run/uwsgi.fifo ]" in text


# A stand-in uWSGI master with a fifo: it drops the first `c` ("chain reload already running",
# as uWSGI does while it is still finishing the previous chain reload) and, on the next one,
# replaces its workers with ones running in `new`.
BUSY_MASTER = r'''
import os, subprocess, sys
fifo, old, new, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
workers = [subprocess.Popen(["sleep", "30"], cwd=old) for _ in range(n)]
seen = 0
while True:
    with open(fifo) as f:
        for ch in f.read():
            if ch != "c":
                continue
            seen += 1
            if seen == 1:
                print("chain reload already running...", flush=True)
                continue
            for w in workers:
                w.kill(); w.wait()
            workers = [subprocess.Popen(["sleep", "30"], cwd=new) for _ in range(n)]
            print("chain reloading complete", flush=True)
'''


def test_reload_uwsgi_sends_the_chain_reload_again_when_the_master_dropped_it(
        deploy: Path, fakebin: Path, sh) -> None:
    r1 = add_release(deploy, rel(1))
    r2 = add_release(deploy, rel(2))  # same venv, same ini: a chain reload
    fifo = deploy / "shared" / "run" / "uwsgi.fifo"
    os.mkfifo(fifo)
    master = subprocess.Popen([sys.executable, "-c", BUSY_MASTER, str(fifo), str(r1), str(r2),
                               "2"], stdout=subprocess.PIPE, text=True, start_new_session=True)
    try:
        res = sh(reload_script(deploy, "systemd", "root", rel(2), rel(1), wait=15),
                 env=reload_env(fakebin, "root", ACTIVE="1", MAINPID=str(master.pid)))
        assert res.returncode == 0, res.stderr
        assert res.stdout == "uwsgi=chain\nworkers=2\n"
        assert "systemctl reload wsgiship-app" not in calls(fakebin)
    finally:
        os.killpg(master.pid, signal.SIGKILL)
        out = master.communicate()[0]
    assert out == "chain reload already running...\nchain reloading complete\n"
