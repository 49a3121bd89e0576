"""wsgiship.commands.services: install, app_dirs, reload_uwsgi and error_log_tail.

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
from dataclasses import dataclass
from pathlib import Path

import pytest
from fakes import (
    HOSTILE,
    MANAGERS,
    NAME,
    SITE,
    add_release,
    as_app,
    as_app_calls,
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

from wsgiship import shell
from wsgiship.commands import nginx, services
from wsgiship.layout import Paths


def test_error_log_tail_forces_an_integer() -> None:
    text = services.error_log_tail(Paths("/srv/app", "app"), 7)
    assert shlex.split(body_lines(text)[0]) == [
        "$AS_APP", "tail", "-n", "7", "/srv/app/shared/log/uwsgi.log", "2>/dev/null", "||", "true"]
    with pytest.raises(ValueError):
        services.error_log_tail(Paths("/srv/app", "app"), "5; rm -rf /")  # type: ignore[arg-type]


def test_error_log_tail(deploy: Path, sh) -> None:
    log = deploy / "shared" / "log" / "uwsgi.log"
    log.write_text("".join(f"line {i}\n" for i in range(50)))
    res = sh(as_app(services.error_log_tail(paths(deploy), 3)))
    assert res.stdout == "line 47\nline 48\nline 49\n"
    log.unlink()
    res = sh(as_app(services.error_log_tail(paths(deploy))))
    assert res.returncode == 0 and res.stdout == ""


def test_error_log_tail_reads_the_log_as_the_app(deploy: Path, fakebin: Path, sh) -> None:
    log = deploy / "shared" / "log" / "uwsgi.log"
    log.write_text("one\ntwo\n")
    res = sh(as_app(services.error_log_tail(paths(deploy), 1), "sudo -n -u web --"),
             env=as_deploy(fakebin))
    assert (res.returncode, res.stdout) == (0, "two\n")
    assert as_app_calls(fakebin) == [f"tail -n 1 {log}"]
    # sudo refusing to act as the app: no log, and no failure
    (fakebin / "calls").unlink()
    res = sh(as_app(services.error_log_tail(paths(deploy), 1), "sudo -n -u web --"),
             env=as_deploy(fakebin, SUDO_REFUSE="tail"))
    assert (res.returncode, res.stdout) == (0, "")


# --- install: the service config and the nginx site from `current` ---


def test_install_installs_the_service_config_then_the_site() -> None:
    text = services.install(Paths("/srv/app", "app"))
    lines = body_lines(text)
    assert len(lines) == 3
    assert "/srv/app/current/.wsgiship/service /etc/systemd/system/wsgiship-app.service" in lines[0]
    assert lines[1:] == nginx.install_site(Paths("/srv/app", "app"))
    # the app's user and its dirs are app_dirs' business
    assert "chown" not in text and "useradd" not in text


def test_install_targets_the_managers_config_file() -> None:
    text = services.install(Paths("/srv/app", "app", "supervisor"))
    argv = shlex.split(line_with(text, "unit=installed").partition("then")[2].partition(";")[0])
    assert argv == ["$SUDO", "install", "-m", "644", "/srv/app/current/.wsgiship/service",
                    "/etc/supervisor/conf.d/wsgiship-app.conf"]
    assert "supervisorctl update wsgiship-app" in text
    assert "systemctl" not in text and "/etc/systemd" not in text


@pytest.mark.parametrize("manager", MANAGERS)
def test_install_runs_each_root_command_through_sudo_once_and_only_when_needed(
        deploy: Path, fakebin: Path, sh, manager: str) -> None:
    current_release(deploy, manager)
    p = svc_paths(deploy, manager)
    body = priv(services.install(p), "sudo -n")
    res = sh(body, env=as_deploy(fakebin))
    assert res.returncode == 0, res.stderr
    assert res.stdout == "unit=installed\nsite=installed\nsite=installed\n"
    assert Path(p.service_file).read_text() == f"{manager} config\n"
    available = Path(p.nginx_available)  # a root-owned copy, not a link into the release
    assert not available.is_symlink() and available.read_text() == SITE
    enabled = Path(p.root) / "etc/nginx/sites-enabled/wsgiship-app"
    assert os.readlink(enabled) == "../sites-available/wsgiship-app"
    apply = (["systemctl daemon-reload", "systemctl enable -q wsgiship-app"]
             if manager == "systemd" else
             ["supervisorctl reread", "supervisorctl update wsgiship-app"])
    assert sudoed(fakebin) == [
        f"install -m 644 {deploy}/current/.wsgiship/service {p.service_file}",
        *apply,
        f"install -m 644 -o root -g root {deploy}/current/.wsgiship/nginx.conf {available}",
        "ln -sfn ../sites-available/wsgiship-app /etc/nginx/sites-enabled/wsgiship-app",
    ]
    # everything in place: nothing needs root
    (fakebin / "calls").unlink()
    res = sh(body, env=as_deploy(fakebin))
    assert (res.returncode, res.stdout, sudoed(fakebin)) == (0, "", [])
    assert any(c.startswith("readlink /etc/nginx/") for c in calls(fakebin))


# --- app_dirs: the app's user and its dirs ---


def test_app_dirs_is_nothing_when_the_app_runs_as_the_login_user() -> None:
    text = services.app_dirs(Paths("/srv/app", "app"), "deploy", "deploy", ("media",))
    assert text.strip() == shell.HEADER.strip()


def test_app_dirs_creates_the_user_and_hands_it_its_dirs() -> None:
    text = services.app_dirs(Paths("/srv/app", "app"), "deploy", "web", ("media", ".env"))
    first, *rest = body_lines(text)
    assert shlex.split(first) == [
        "id", "-u", "web", ">/dev/null", "2>&1", "||", "$SUDO", "useradd", "--system", "--gid",
        "www-data", "--no-create-home", "--home-dir", "/nonexistent", "--shell",
        "/usr/sbin/nologin", "web"]
    owned = [f"/srv/app/shared/{d}" for d in ("log", "run", "media", ".env")]
    assert rest == [services.hand_to_app(d, "web") for d in owned]
    for d, line in zip(owned, rest, strict=True):
        refuse, _, give = line.partition("fi; ")
        assert shlex.split(refuse) == ["if", "[", "-L", d, "];", "then", "echo",
                                       f"refusing: {d} is a symbolic link", ">&2;", "exit", "1;"]
        assert shlex.split(give) == ["[", "$(stat -c %U " + d + ")", "=", "web", "]", "||",
                                     "$SUDO", "chown", "-R", "-h", "web:www-data", d]


def test_app_dirs_quotes_the_users_and_shared_names() -> None:
    user = "web" + HOSTILE
    text = services.app_dirs(Paths("/srv/app", "app"), "deploy", user, (HOSTILE,))
    # (HOSTILE has a / in it: the part before it is a parent, checked first for a link)
    lines = [line for line in body_lines(text)[1:] if "|| " in line]
    chowns = [shlex.split(line.partition("|| ")[2]) for line in lines]
    assert chowns == [["$SUDO", "chown", "-R", "-h", f"{user}:www-data", f"/srv/app/shared/{d}"]
                      for d in ("log", "run", HOSTILE)]
    assert shlex.split(body_lines(text)[0])[-1] == user
    parent = "/srv/app/shared/" + HOSTILE.split("/")[0]
    assert body_lines(text)[1] == (f"if [ -L {shlex.quote(parent)} ]; then echo "
                                   f"{shlex.quote(f'refusing: {parent} is a symbolic link')} >&2;"
                                   " exit 1; fi")


def test_app_dirs_refuses_a_linked_parent_of_a_nested_shared_item(deploy: Path, fakebin: Path,
                                                                  sh, tmp_path: Path) -> None:
    (tmp_path / "users").mkdir()
    (tmp_path / "elsewhere").mkdir()
    (deploy / "shared" / "public").symlink_to(tmp_path / "elsewhere")
    text = services.app_dirs(Paths(str(deploy), "app"), "deploy", "web", ("public/uploads",))
    res = sh(priv(text, "sudo -n"), env=as_deploy(fakebin, USERS=str(tmp_path / "users")))
    assert res.returncode == 1
    assert f"refusing: {deploy}/shared/public is a symbolic link" in res.stderr
    assert not any(c.startswith("chown") for c in sudoed(fakebin))  # nothing handed over


def test_app_dirs_runs_as_a_deploy_user_with_sudo_only_what_is_missing(
        deploy: Path, fakebin: Path, sh, tmp_path: Path) -> None:
    (tmp_path / "users").mkdir()
    (deploy / "shared" / "media").mkdir()
    (deploy / "shared" / ".env").write_text("SECRET=1\n")
    owners = tmp_path / "owners"  # who the fake stat says owns what (the fake chown notes it)
    owners.write_text(f"deploy {deploy}/shared/log\nweb {deploy}/shared/run\n")
    env = as_deploy(fakebin, USERS=str(tmp_path / "users"), OWNERS=str(owners))
    body = priv(services.app_dirs(paths(deploy), "deploy", "web", ("media", ".env")), "sudo -n")
    res = sh(body, env=env)
    assert (res.returncode, res.stdout) == (0, ""), res.stderr
    assert sudoed(fakebin) == [
        "useradd --system --gid www-data --no-create-home --home-dir /nonexistent"
        " --shell /usr/sbin/nologin web",
        *(f"chown -R -h web:www-data {deploy}/shared/{d}" for d in ("log", "media", ".env"))]
    (fakebin / "calls").unlink()
    res = sh(body, env=env)
    assert (res.returncode, res.stdout, sudoed(fakebin)) == (0, "", [])
    # without $SUDO a deploy user may not create the user
    (tmp_path / "users" / "web").unlink()
    res = sh(priv(services.app_dirs(paths(deploy), "deploy", "web"), ""), env=env)
    assert res.returncode == 77


@pytest.mark.parametrize("planted", ["log", "media", ".env"])
def test_app_dirs_refuses_a_symbolic_link(deploy: Path, fakebin: Path, sh, tmp_path: Path,
                                          planted: str) -> None:
    # a link in the app's place (to a file root owns, say) is never chowned through
    (tmp_path / "users").mkdir()
    (tmp_path / "users" / "web").touch()
    (deploy / "shared" / "media").mkdir()
    (deploy / "shared" / ".env").write_text("")
    victim = tmp_path / "victim"
    victim.write_text("root's\n")
    link = deploy / "shared" / planted
    if link.is_dir():
        link.rmdir()
    else:
        link.unlink()
    link.symlink_to(victim)
    res = sh(priv(services.app_dirs(paths(deploy), "deploy", "web", ("media", ".env")), ""),
             env=fake_env(fakebin, USERS=str(tmp_path / "users")))
    assert res.returncode == 1
    assert res.stderr == f"refusing: {link} is a symbolic link\n"
    assert not any(str(link) in c for c in calls(fakebin) if c.startswith("chown"))


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
# How each login runs a command as the app's user `web` (Remote.as_app_prefix)
AS_WEB = {"root": "runuser -u web --", "deploy": "sudo -n -u web --"}


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
                  processes: int = 2, as_web: bool = False, wait: int = 5,
                  kill_previous: bool = False) -> str:
    """reload_uwsgi as the flow sends it: $SUDO and $AS_APP for `login`; the app runs as the
    login user, or (as_web) as `web`. (A job's install step that installed the service config
    hands WSGISHIP_UNIT=installed to it: see reload_env.)"""
    body = services.reload_uwsgi(svc_paths(deploy, manager), release, previous, processes,
                                 wait=wait, kill_previous=kill_previous)
    return priv(as_app(body, AS_WEB[login] if as_web else ""), LOGINS[login][0])


@pytest.mark.parametrize("login", LOGINS)
@pytest.mark.parametrize("manager", MANAGERS)
def test_reload_uwsgi_starts_a_stopped_service_and_waits_for_its_workers(
        deploy: Path, fakebin: Path, master, sh, manager: str, login: str) -> None:
    r = add_release(deploy, rel(1))
    pid = master(r, 2)
    res = sh(reload_script(deploy, manager, login, rel(1), "", as_web=True),
             env=reload_env(fakebin, login, MAINPID=str(pid), WORKERS_USER="web"))
    assert res.returncode == 0, res.stderr
    assert res.stdout == "uwsgi=started\nworkers=2\n"
    m = MANAGER_CALLS[manager]
    done = [c for c in calls(fakebin) if not c.startswith(("sudo ", "runuser ", "readlink"))]
    assert done[0].startswith(m["is_active"])
    assert m["start"] in done
    assert m["main_pid"] in done
    assert m["graceful"] not in done
    if login == "deploy":
        assert m["start"] in sudoed(fakebin)
    # the workers' dirs are read as the app's user, who may (never as root)
    looked = as_app_calls(fakebin)
    assert looked and all(c.startswith("readlink /proc/") for c in looked)
    assert not any("/proc/" in c for c in sudoed(fakebin))


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
    res = sh(reload_script(deploy, manager, "deploy", rel(2), rel(1)),
             env=reload_env(fakebin, "deploy", ACTIVE="1", MAINPID=str(pid),
                            WSGISHIP_UNIT="installed"))
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
    res = sh(reload_script(deploy, manager, "root", rel(1), ""),
             env=reload_env(fakebin, "root", MAINPID=str(pid), WSGISHIP_UNIT="installed"))
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


def chain_releases(deploy: Path) -> Path:
    """Releases 1 and 2 with the same venv and uwsgi.ini (comments aside): a chain reload."""
    r1 = add_release(deploy, rel(1))
    r2 = add_release(deploy, rel(2))
    (r1 / ".wsgiship" / "uwsgi.ini").write_text(f"; release {rel(1)}\n[uwsgi]\n")
    (r2 / ".wsgiship" / "uwsgi.ini").write_text(f"; release {rel(2)}\n[uwsgi]\n")
    return r2


@pytest.mark.parametrize("login", LOGINS)
@pytest.mark.parametrize("manager", MANAGERS)
def test_reload_uwsgi_chain_reloads_through_the_fifo_as_the_app_user(
        deploy: Path, fakebin: Path, master, sh, fifo_reader, manager: str, login: str) -> None:
    pid = master(chain_releases(deploy), 2)
    res = sh(reload_script(deploy, manager, login, rel(2), rel(1), as_web=True),
             env=reload_env(fakebin, login, ACTIVE="1", MAINPID=str(pid), WORKERS_USER="web"))
    assert res.returncode == 0, res.stderr
    assert res.stdout == "uwsgi=chain\nworkers=2\n"
    assert fifo_reader.communicate(timeout=5)[0] == b"c"
    fifo = deploy / "shared" / "run" / "uwsgi.fifo"
    # uWSGI runs as the app's user: its fifo and its workers' cwd are used as that user
    looked = as_app_calls(fakebin)
    assert looked[:2] == [f"test -p {fifo}", f"timeout 5 tee {fifo}"]
    assert f"readlink /proc/{pid_of_a_worker(pid)}/cwd" in looked
    # ... and never as root, nor through a second shell
    assert not any("uwsgi.fifo" in c or "/proc/" in c for c in sudoed(fakebin))
    assert not any(" sh -c" in c for c in calls(fakebin))
    assert MANAGER_CALLS[manager]["graceful"] not in calls(fakebin)


def test_reload_uwsgi_is_graceful_when_the_app_user_may_not_reach_its_fifo(
        deploy: Path, fakebin: Path, master, sh, fifo_reader) -> None:
    pid = master(chain_releases(deploy), 2)
    res = sh(reload_script(deploy, "systemd", "deploy", rel(2), rel(1), as_web=True),
             env=reload_env(fakebin, "deploy", ACTIVE="1", MAINPID=str(pid), SUDO_REFUSE="test"))
    assert res.returncode == 0, res.stderr
    assert res.stdout == "uwsgi=graceful\nworkers=2\n"
    assert "systemctl reload wsgiship-app" in sudoed(fakebin)
    fifo_reader.kill()
    assert fifo_reader.communicate()[0] == b""  # nothing written to the fifo


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
    log = deploy / "shared" / "log" / "uwsgi.log"
    log.write_text("worker 1 buried after 1 seconds\n")
    pid = master(r1, 2)
    res = sh(reload_script(deploy, "systemd", "root", rel(2), rel(1), as_web=True, wait=0),
             env=reload_env(fakebin, "root", ACTIVE="1", MAINPID=str(pid)))
    assert res.returncode == 1
    assert "only 0 of 2 workers serve the new release after 0s" in res.stderr
    assert "worker 1 buried" in res.stderr
    assert f"tail -n 20 {log}" in as_app_calls(fakebin)  # the app's log, read as the app


@pytest.mark.parametrize("manager", MANAGERS)
def test_reload_uwsgi_reports_unknown_workers_it_may_not_look_into(
        deploy: Path, fakebin: Path, master, sh, manager: str) -> None:
    # uWSGI runs as another user and sudo does not allow acting as it: the reload cannot
    # tell which release the workers serve (the health check will)
    r1 = add_release(deploy, rel(1), venv_key="a")
    add_release(deploy, rel(2), venv_key="b")
    pid = master(r1, 2)
    env = reload_env(fakebin, "deploy", ACTIVE="1", MAINPID=str(pid), WORKERS_USER="web",
                     SUDO_REFUSE="readlink")
    res = sh(reload_script(deploy, manager, "deploy", rel(2), rel(1), as_web=True, wait=2),
             env=env)
    assert res.returncode == 0, res.stderr
    assert res.stdout == "uwsgi=graceful\nworkers=unknown\n"
    # with sudo allowed to act as the app, the old workers are seen for what they are
    (fakebin / "calls").unlink()
    env.pop("SUDO_REFUSE")
    res = sh(reload_script(deploy, manager, "deploy", rel(2), rel(1), as_web=True, wait=0),
             env=env)
    assert res.returncode == 1
    assert "only 0 of 2 workers serve the new release after 0s" in res.stderr
    assert any(c.startswith("readlink /proc/") for c in as_app_calls(fakebin))


def test_reload_uwsgi_waits_for_all_workers_even_unknown_ones(deploy: Path, fakebin: Path,
                                                              master, sh) -> None:
    r1 = add_release(deploy, rel(1), venv_key="a")
    add_release(deploy, rel(2), venv_key="b")
    pid = master(r1, 1)  # one worker of the 2 configured: not all there yet
    res = sh(reload_script(deploy, "systemd", "deploy", rel(2), rel(1), as_web=True, wait=1),
             env=reload_env(fakebin, "deploy", ACTIVE="1", MAINPID=str(pid),
                            WORKERS_USER="web", SUDO_REFUSE="readlink"))
    assert res.returncode == 1
    # of the 2 configured (processes), not of the 1 found
    assert "only 0 of 2 workers serve the new release after 1s" in res.stderr


@pytest.mark.parametrize("in_new, processes", [(2, 3), (1, 2), (1, 4)])
def test_reload_uwsgi_counts_the_workers_missing_against_processes(
        deploy: Path, fakebin: Path, master, sh, in_new: int, processes: int) -> None:
    # `in_new` workers serve the new release, fewer than the `processes` configured: the
    # message says how many of those are there, whatever number of workers was found
    add_release(deploy, rel(1), venv_key="a")
    r2 = add_release(deploy, rel(2), venv_key="b")
    pid = master(r2, in_new)
    res = sh(reload_script(deploy, "systemd", "root", rel(2), rel(1), processes=processes,
                           wait=0),
             env=reload_env(fakebin, "root", ACTIVE="1", MAINPID=str(pid)))
    assert res.returncode == 1
    assert (f"only {in_new} of {processes} workers serve the new release after 0s"
            in res.stderr.splitlines())


# A stand-in uWSGI master whose workers start in `old` (the release being left); a worker that
# ends is replaced by one in `new`, as uWSGI forks a new worker into `current`. It prints its
# first workers' pids and notes each worker's end (`PID RETURNCODE`) in the file `ended`.
RESPAWNING_MASTER = r'''
import subprocess, sys, time
old, new, n, ended = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
workers = [subprocess.Popen(["sleep", "60"], cwd=old) for _ in range(n)]
print(" ".join(str(w.pid) for w in workers), flush=True)
while True:
    for i, w in enumerate(workers):
        if w.poll() is not None:
            with open(ended, "a") as f:
                f.write(f"{w.pid} {w.returncode}\n")
            workers[i] = subprocess.Popen(["sleep", "60"], cwd=new)
    time.sleep(0.05)
'''


@dataclass
class Respawning:
    """A running RESPAWNING_MASTER: its pid, its first workers' pids, its `ended` file."""

    pid: int
    first: list[int]
    ended: Path

    def endings(self) -> set[str]:
        return set(self.ended.read_text().splitlines()) if self.ended.exists() else set()


@pytest.fixture
def respawning(tmp_path: Path) -> Iterator[Callable[[Path, Path, int], Respawning]]:
    """Start a RESPAWNING_MASTER with `n` workers in `old` replaced in `new`; killed at the end
    with all its workers."""
    procs: list[subprocess.Popen[str]] = []

    def start(old: Path, new: Path, n: int) -> Respawning:
        ended = tmp_path / f"ended-{len(procs)}"
        proc = subprocess.Popen([sys.executable, "-c", RESPAWNING_MASTER, str(old), str(new),
                                 str(n), str(ended)], stdout=subprocess.PIPE, text=True,
                                start_new_session=True)
        procs.append(proc)
        assert proc.stdout is not None
        first = [int(w) for w in proc.stdout.readline().split()]
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not all(worker_dir(w) == str(old) for w in first):
            time.sleep(0.02)
        return Respawning(proc.pid, first, ended)

    yield start
    for proc in procs:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def worker_dir(pid: int) -> str:
    """Where a process runs ("" once it is gone)."""
    try:
        return os.readlink(f"/proc/{pid}/cwd")
    except OSError:
        return ""


@pytest.mark.parametrize("login", LOGINS)
def test_reload_uwsgi_kills_the_workers_left_in_a_failed_release(
        deploy: Path, fakebin: Path, respawning, sh, login: str) -> None:
    # leaving a failed release (it may hang): its workers are killed at once, as the app, and
    # the master's new workers serve the release gone back to
    r1 = add_release(deploy, rel(1), venv_key="a", failed=True)
    r2 = add_release(deploy, rel(2), venv_key="b")
    m = respawning(r1, r2, 2)
    res = sh(reload_script(deploy, "systemd", login, rel(2), rel(1), as_web=True, wait=10,
                           kill_previous=True),
             env=reload_env(fakebin, login, ACTIVE="1", MAINPID=str(m.pid), WORKERS_USER="web"))
    assert res.returncode == 0, res.stderr
    assert res.stdout == "uwsgi=graceful\nworkers=2\n"
    assert m.endings() == {f"{w} {-signal.SIGKILL}" for w in m.first}
    killed = [c for c in as_app_calls(fakebin) if c.startswith("kill ")]
    assert set(killed) == {f"kill -KILL {w}" for w in m.first}
    assert not any(c.startswith("kill ") for c in sudoed(fakebin))  # never as root


@pytest.mark.parametrize("kill_previous, previous", [
    (False, rel(1)),   # the workers are in the release left, but it did not fail
    (True, rel(3)),    # the failed release left is another one than the workers'
    (True, ""),        # nothing left
])
def test_reload_uwsgi_kills_no_worker_otherwise(deploy: Path, fakebin: Path, respawning, sh,
                                                kill_previous: bool, previous: str) -> None:
    r1 = add_release(deploy, rel(1), venv_key="a")
    r2 = add_release(deploy, rel(2), venv_key="b")
    add_release(deploy, rel(3), venv_key="c", failed=True)
    m = respawning(r1, r2, 2)
    res = sh(reload_script(deploy, "systemd", "deploy", rel(2), previous, as_web=True, wait=1,
                           kill_previous=kill_previous),
             env=reload_env(fakebin, "deploy", ACTIVE="1", MAINPID=str(m.pid),
                            WORKERS_USER="web"))
    assert res.returncode == 1
    assert "only 0 of 2 workers serve the new release after 1s" in res.stderr
    assert m.endings() == set()
    assert [worker_dir(w) for w in m.first] == [str(r1)] * 2  # still there, still in r1
    looked = as_app_calls(fakebin)
    assert any(c.startswith("readlink /proc/") for c in looked)  # it did look
    assert not any(c.startswith("kill ") for c in looked + calls(fakebin))


def test_reload_uwsgi_kill_previous_is_a_switch_in_the_script() -> None:
    p = Paths("/srv/app", "app")
    for flag, value in ((True, "1"), (False, "0")):
        text = services.reload_uwsgi(p, NAME, "old", 2, kill_previous=flag)
        assert line_with(text, "KILL_OLD=").strip() == f"KILL_OLD={value}"
    assert services.reload_uwsgi(p, NAME, "old", 2) == services.reload_uwsgi(
        p, NAME, "old", 2, kill_previous=False)
    kill = line_with(services.reload_uwsgi(p, NAME, "old", 2), "kill -KILL")
    assert '$AS_APP kill -KILL "$w"' in kill and "$SUDO" not in kill


def test_reload_uwsgi_reads_worker_dirs_without_sudo_for_its_own_workers(
        deploy: Path, fakebin: Path, master, sh) -> None:
    r = add_release(deploy, rel(1))
    pid = master(r, 2)
    res = sh(reload_script(deploy, "systemd", "deploy", rel(1), ""),
             env=reload_env(fakebin, "deploy", MAINPID=str(pid), WORKERS_USER="deploy"))
    assert res.returncode == 0, res.stderr
    assert res.stdout == "uwsgi=started\nworkers=2\n"
    assert any(c.startswith("readlink /proc/") for c in calls(fakebin))
    assert [c for c in calls(fakebin) if c.startswith("sudo")] == [
        "sudo -n systemctl start wsgiship-app"]


@pytest.fixture
def instant_sleep(fakebin: Path) -> None:
    """A `sleep` that returns at once, so polling for a service that never starts is quick."""
    (fakebin / "sleep").write_text("#!/bin/sh\nexit 0\n")
    (fakebin / "sleep").chmod(0o755)


@pytest.mark.parametrize("manager", MANAGERS)
def test_reload_uwsgi_failure_to_start_shows_why_and_the_app_log(
        deploy: Path, fakebin: Path, sh, instant_sleep, manager: str) -> None:
    add_release(deploy, rel(1))
    log = deploy / "shared" / "log" / "uwsgi.log"
    log.write_text("ImportError: no module named hello\n")
    res = sh(reload_script(deploy, manager, "deploy", rel(1), "", as_web=True, wait=1),
             env=reload_env(fakebin, "deploy", START_OK="0"))
    assert res.returncode == 1
    m = MANAGER_CALLS[manager]
    assert m["why_output"] in res.stderr
    assert "ImportError: no module named hello" in res.stderr
    assert m["why"] in calls(fakebin)
    assert "uwsgi=" not in res.stdout
    assert as_app_calls(fakebin) == [f"tail -n 20 {log}"]


def test_reload_uwsgi_quotes_release_names() -> None:
    text = services.reload_uwsgi(Paths("/srv/app", "app"), HOSTILE, "old" + HOSTILE, 2)
    assert shlex.split(line_with(text, "NEW=")) == [
        f"NEW=/srv/app/releases/{HOSTILE};", f"OLD=/srv/app/releases/old{HOSTILE}"]


@pytest.mark.parametrize("deploy_to", ["/srv/app", "/srv/my app" + HOSTILE])
def test_reload_uwsgi_uses_the_fifo_log_and_proc_as_the_app(deploy_to: str) -> None:
    text = services.reload_uwsgi(Paths(deploy_to, "app"), NAME, "old", 2)
    fifo, log = f"{deploy_to}/shared/run/uwsgi.fifo", f"{deploy_to}/shared/log/uwsgi.log"
    line = line_with(text, "timeout 5")
    assert line.startswith("chain() { ") and line.endswith("; }")
    # the fifo written by tee as the app: no second shell for the path to go through
    assert shlex.split(line[len("chain() { "):-len("; }")]) == [
        "printf", "c", "|", "$AS_APP", "timeout", "5", "tee", fifo, ">/dev/null"]
    test = line_with(text, "test -p").rpartition("&& ")[2].partition("; then")[0]
    assert shlex.split(test) == ["$AS_APP", "test", "-p", fifo]
    assert line_with(text, "readlink \"/proc/").strip() == (
        'cwd=$($AS_APP readlink "/proc/$w/cwd" 2>/dev/null || true)')
    tails = [shlex.split(line.strip().partition(" >&2")[0]) for line in text.splitlines()
             if "tail -n 20" in line]
    assert tails == [["$AS_APP", "tail", "-n", "20", log]] * 2
    assert "sh -c" not in text and "$SUDO timeout" not in text and "$SUDO readlink" not in text


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
