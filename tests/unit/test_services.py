"""wsgiship.commands.services: install, install_config, app_dirs, error_log_tail, and nginx's
socket link (live_slot, switch_traffic, backlog_drained). start_slot and retire are in
test_services_slots.py.

The scripts run for real on a deploy tree in tmp_path, with the fakes of fakes.py on PATH; the
socket tests bind real unix sockets."""

from __future__ import annotations

import os
import shlex
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import which
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
    paths,
    priv,
    run_script,
    sudoed,
    svc_paths,
)
from test_services_slots import APPLY, AS_WEB, LOGINS  # (the logins, what a config change takes)

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


# --- install: the nginx site from `current`; install_config: a release's service config ---


def test_install_installs_only_the_site() -> None:
    p = Paths("/srv/app", "app")
    assert services.install(p) == shell.script(nginx.install_site(p))
    # the service config is the start step's (install_config), the app's user app_dirs'
    text = services.install(p)
    assert ".wsgiship/service" not in text and "chown" not in text and "useradd" not in text


@pytest.mark.parametrize("manager", MANAGERS)
def test_install_runs_each_root_command_through_sudo_once_and_only_when_needed(
        deploy: Path, fakebin: Path, sh, manager: str) -> None:
    current_release(deploy, manager)
    p = svc_paths(deploy, manager)
    body = priv(services.install(p), "sudo -n")
    res = sh(body, env=as_deploy(fakebin))
    assert res.returncode == 0, res.stderr
    assert res.stdout == "site=installed\nsite=installed\n"
    assert not Path(p.service_file).exists()  # the start step installs it
    available = Path(p.nginx_available)  # a root-owned copy, not a link into the release
    assert not available.is_symlink() and available.read_text() == SITE
    enabled = Path(p.root) / "etc/nginx/sites-enabled/wsgiship-app"
    assert os.readlink(enabled) == "../sites-available/wsgiship-app"
    assert sudoed(fakebin) == [
        f"install -m 644 -o root -g root {deploy}/current/.wsgiship/nginx.conf {available}",
        "ln -sfn ../sites-available/wsgiship-app /etc/nginx/sites-enabled/wsgiship-app",
    ]
    # everything in place: nothing needs root
    (fakebin / "calls").unlink()
    res = sh(body, env=as_deploy(fakebin))
    assert (res.returncode, res.stdout, sudoed(fakebin)) == (0, "", [])
    assert any(c.startswith("readlink /etc/nginx/") for c in calls(fakebin))


@pytest.mark.parametrize("manager", MANAGERS)
def test_install_config_installs_a_changed_release_config_once(deploy: Path, fakebin: Path, sh,
                                                               manager: str) -> None:
    current_release(deploy, manager)
    r = add_release(deploy, NAME)
    (r / ".wsgiship" / "service").write_text(f"{manager} config v2\n")
    p = svc_paths(deploy, manager)
    body = priv(shell.script([services.install_config(p, NAME)]), "sudo -n")
    res = sh(body, env=as_deploy(fakebin))
    assert (res.returncode, res.stdout) == (0, "unit=installed\n"), res.stderr
    # from the release itself (it is not `current` yet), to the manager's one config file
    assert Path(p.service_file).read_text() == f"{manager} config v2\n"
    assert sudoed(fakebin) == [f"install -m 644 {r}/.wsgiship/service {p.service_file}",
                               *APPLY[manager]]
    # the same config again: nothing to install, nothing to tell
    (fakebin / "calls").unlink()
    res = sh(body, env=as_deploy(fakebin))
    assert (res.returncode, res.stdout, calls(fakebin)) == (0, "", [])
    # by default from `current`, whose config differs now
    res = sh(priv(shell.script([services.install_config(p)]), "sudo -n"), env=as_deploy(fakebin))
    assert (res.returncode, res.stdout) == (0, "unit=installed\n"), res.stderr
    assert Path(p.service_file).read_text() == f"{manager} config\n"


def test_install_config_targets_the_managers_config_file() -> None:
    for manager, target in (("systemd", "/etc/systemd/system/wsgiship-app@.service"),
                            ("supervisor", "/etc/supervisor/conf.d/wsgiship-app.conf")):
        text = services.install_config(Paths("/srv/my app", "app", manager), HOSTILE)
        words = shlex.split(text)
        at = words.index("install")
        assert words[at - 1:at + 5] == ["$SUDO", "install", "-m", "644",
                                        f"/srv/my app/releases/{HOSTILE}/.wsgiship/service",
                                        target + ";"]


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


def test_the_fake_root_is_where_the_fakes_write(deploy: Path, fakebin: Path) -> None:
    assert svc_paths(deploy).root == fake_env(fakebin)["FAKE_ROOT"]
    assert svc_paths(deploy).service_file.endswith(
        "/root/etc/systemd/system/wsgiship-app@.service")


# --- live_slot and switch_traffic: nginx's socket link, as the app's user ---

def as_web(body: str, login: str) -> str:
    """A script as the flow sends it: $SUDO and $AS_APP for `login`, the app running as web."""
    return priv(as_app(body, AS_WEB[login]), LOGINS[login][0])


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    """A directory with a short path: a unix socket's path must fit in 108 bytes."""
    d = Path(tempfile.mkdtemp(prefix="ws-", dir="/tmp"))
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def run_dir(short_tmp: Path) -> Path:
    """The run dir of a deploy tree at a short path (real sockets are bound in it)."""
    run = short_tmp / "app" / "shared" / "run"
    run.mkdir(parents=True)
    return run


def listening(path: Path) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(path))
    sock.listen(8)
    return sock


@pytest.fixture
def ln_anywhere(fakebin: Path) -> None:
    """An `ln` that logs its call and links anywhere (fakes.py's writes only under /etc)."""
    (fakebin / "ln").write_text(f'#!/bin/sh\necho "ln $*" >> "$CALLS"\nexec {which("ln")} "$@"\n')


@pytest.mark.parametrize("link, live", [("uwsgi-a.sock", "a"), ("uwsgi-b.sock", "b"),
                                        ("uwsgi-c.sock", ""),  # no slot of wsgiship's
                                        (None, ""), ("uwsgi.sock.old", ""), ("socket", "")])
def test_live_slot_is_the_slot_nginx_socket_links_to(deploy: Path, fakebin: Path, sh,
                                                     link: str | None, live: str) -> None:
    sock = deploy / "shared" / "run" / "uwsgi.sock"
    if link == "socket":
        sock.write_text("")  # where an older wsgiship's single uWSGI bound its socket
    elif link:
        sock.symlink_to(link)
    body = as_web(shell.script([f"echo live={services.live_slot(paths(deploy))}"]), "deploy")
    res = sh(body, env=as_deploy(fakebin))
    assert (res.returncode, res.stdout) == (0, f"live={live}\n"), res.stderr
    assert as_app_calls(fakebin) == [f"readlink {sock}"]  # the run dir is the app's
    # sudo refusing to act as the app: no live slot, and no failure
    res = sh(body, env=as_deploy(fakebin, SUDO_REFUSE="readlink"))
    assert (res.returncode, res.stdout) == (0, "live=\n")


@pytest.mark.parametrize("login", LOGINS)
@pytest.mark.parametrize("before", [None, "uwsgi-a.sock", "socket"])
def test_switch_traffic_renames_a_new_link_over_nginx_socket(
        run_dir: Path, fakebin: Path, ln_anywhere, sh, login: str, before: str | None) -> None:
    new = listening(run_dir / "uwsgi-b.sock")  # the slot the start step named
    old = listening(run_dir / "uwsgi.sock") if before == "socket" else None
    if before and not old:
        (run_dir / "uwsgi.sock").symlink_to(before)
    p = paths(run_dir.parents[1])
    res = sh(as_web(services.switch_traffic(p), login),
             env=fake_env(fakebin, **LOGINS[login][1], WSGISHIP_SLOT="b"))
    assert (res.returncode, res.stdout) == (0, "slot=b\n"), res.stderr
    link = run_dir / "uwsgi.sock"
    assert os.readlink(link) == "uwsgi-b.sock"  # relative: the run dir may move
    assert sorted(os.listdir(run_dir)) == ["uwsgi-b.sock", "uwsgi.sock"]  # no temporary left
    # the next connection to nginx's path reaches the new slot's uWSGI
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
        client.connect(str(link))
        new.settimeout(1)
        new.accept()[0].close()
    tmp = f"{run_dir}/.uwsgi.sock.tmp"
    assert as_app_calls(fakebin) == [f"ln -sfn uwsgi-b.sock {tmp}", f"mv -T {tmp} {link}"]
    assert sudoed(fakebin) == []  # never as root
    for sock in (new, old):
        if sock:
            sock.close()


@pytest.mark.parametrize("slot", [None, "", "c", "a b", "../a"])
def test_switch_traffic_needs_a_slot(deploy: Path, fakebin: Path, ln_anywhere, sh,
                                     slot: str | None) -> None:
    link = deploy / "shared" / "run" / "uwsgi.sock"
    link.symlink_to("uwsgi-a.sock")
    env = fake_env(fakebin, **({} if slot is None else {"WSGISHIP_SLOT": slot}))
    env.setdefault("WSGISHIP_SLOT", "")
    res = sh(as_web(services.switch_traffic(paths(deploy)), "root"), env=env)
    assert (res.returncode, res.stderr) == (1, "no slot to switch to\n")
    assert os.readlink(link) == "uwsgi-a.sock" and calls(fakebin) == []


# --- backlog_drained: the connections nginx made before the switch are served first ---


def test_backlog_drained_waits_for_the_connections_in_the_listen_queue(short_tmp: Path) -> None:
    path = short_tmp / "s.sock"
    server = listening(path)
    body = shell.script([services.backlog_drained(str(path)), "echo drained"])
    began = time.monotonic()
    assert run_script(body).stdout == "drained\n"  # nothing waits: at once
    assert time.monotonic() - began < 1
    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    client.connect(str(path))  # made, not accepted yet
    proc = subprocess.Popen(shell.bash(body), shell=True, stdout=subprocess.PIPE, text=True)
    time.sleep(0.5)
    assert proc.poll() is None  # still waiting
    server.accept()[0].close()
    assert proc.communicate(timeout=5)[0] == "drained\n"
    # one that is never accepted: it gives up after `wait` seconds and goes on
    late = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    late.connect(str(path))
    began = time.monotonic()
    res = run_script(shell.script([services.backlog_drained(str(path), wait=0.3), "echo on"]))
    assert (res.returncode, res.stdout) == (0, "on\n")
    assert 0.3 <= time.monotonic() - began < 3
    for sock in (client, late, server):
        sock.close()


def test_backlog_drained_goes_on_without_ss(short_tmp: Path) -> None:
    # (under set -o pipefail a failing ss, missing or cut off when awk exits, fails n=$(...))
    (short_tmp / "ss").write_text("#!/bin/sh\necho 'ss: command not found' >&2\nexit 127\n")
    (short_tmp / "ss").chmod(0o755)
    began = time.monotonic()
    res = run_script(shell.script([services.backlog_drained("/nowhere.sock"), "echo on"]),
                     env={"PATH": f"{short_tmp}:{os.environ['PATH']}"})
    assert (res.returncode, res.stdout) == (0, "on\n")
    assert time.monotonic() - began < 2  # nothing known to wait for: no waiting the 5 s out
