"""wsgiship.commands.nginx: install_site, site_check and reload_nginx, run with the fakes (nginx,
systemctl, install, ln, stat); the installed site lives under the fakes' root (svc_paths)."""

from __future__ import annotations

import os
import shlex
import subprocess
from pathlib import Path

import pytest
from fakes import (
    NAME,
    SITE,
    as_deploy,
    calls,
    current_release,
    fake_env,
    paths,
    priv,
    sudoed,
    svc_paths,
)

from wsgiship import privilege
from wsgiship.commands import nginx
from wsgiship.layout import Paths
from wsgiship.shell import script

AVAILABLE = "/etc/nginx/sites-available/wsgiship-app"
ENABLED = "/etc/nginx/sites-enabled/wsgiship-app"


def enabled_link(fakebin: Path) -> Path:
    """Where the fake ln puts /etc/nginx/sites-enabled/wsgiship-app."""
    return Path(fake_env(fakebin)["FAKE_ROOT"] + ENABLED)


# --- which root commands a restricted deploy user is granted ---


def test_only_testing_and_starting_nginx_are_granted() -> None:
    p = Paths("/srv/app", "app")
    assert nginx.granted(p) == [privilege.root("nginx", "-t", "-q"),
                                privilege.root("systemctl", "start", "nginx")]
    assert [c.rule() for c in nginx.granted(p)] == ["/usr/sbin/nginx -t -q",
                                                    "/usr/bin/systemctl start nginx"]
    # a reload and installing or linking the site would let the user change what root's nginx
    # loads: root commands, not granted
    with privilege.recording() as seen:
        script(nginx.install_site(p))
        nginx.reload_nginx(p)
    not_granted = {c.argv[:3] for c in seen if not c.granted}
    assert not_granted == {("install", "-m", "644"), ("ln", "-sfn", "../sites-available/wsgiship-app"),
                           ("systemctl", "reload", "nginx")}


# --- reload_nginx ---


@pytest.mark.parametrize("site", [{}, {"WSGISHIP_SITE": ""}, {"WSGISHIP_SITE": "unchanged"}])
def test_reload_nginx_leaves_a_running_nginx_alone_when_no_site_was_installed(
        deploy: Path, fakebin: Path, sh, site: dict[str, str]) -> None:
    res = sh(priv(nginx.reload_nginx(paths(deploy)), "sudo -n"), env=as_deploy(fakebin, **site))
    assert (res.returncode, res.stdout) == (0, "nginx=unchanged\n")
    assert calls(fakebin) == ["systemctl is-active -q nginx"]  # nothing needed root


def test_reload_nginx_tests_then_reloads_after_a_site_was_installed(deploy: Path, fakebin: Path,
                                                                   sh) -> None:
    res = sh(priv(nginx.reload_nginx(paths(deploy)), "sudo -n"),
             env=as_deploy(fakebin, WSGISHIP_SITE="installed"))
    assert res.returncode == 0, res.stderr
    assert res.stdout == "nginx=reloaded\n"
    assert calls(fakebin) == ["sudo -n nginx -t -q", "nginx -t -q", "systemctl is-active -q nginx",
                              "sudo -n systemctl reload nginx", "systemctl reload nginx"]


def test_reload_nginx_as_root_runs_the_same_without_sudo(deploy: Path, fakebin: Path,
                                                         sh) -> None:
    res = sh(priv(nginx.reload_nginx(paths(deploy))),
             env=fake_env(fakebin, WSGISHIP_SITE="installed"))
    assert (res.returncode, res.stdout) == (0, "nginx=reloaded\n")
    assert calls(fakebin) == ["nginx -t -q", "systemctl is-active -q nginx",
                              "systemctl reload nginx"]


@pytest.mark.parametrize("site", ["", "installed"])
def test_reload_nginx_starts_a_stopped_nginx(deploy: Path, fakebin: Path, sh,
                                             site: str) -> None:
    res = sh(priv(nginx.reload_nginx(paths(deploy)), "sudo -n"),
             env=as_deploy(fakebin, NGINX_ACTIVE="0", WSGISHIP_SITE=site))
    assert (res.returncode, res.stdout) == (0, "nginx=started\n")
    assert sudoed(fakebin) == ["nginx -t -q", "systemctl start nginx"]


@pytest.mark.parametrize("active", ["0", "1"])
def test_reload_nginx_stops_on_a_broken_config(deploy: Path, fakebin: Path, sh,
                                               active: str) -> None:
    res = sh(priv(nginx.reload_nginx(paths(deploy)), "sudo -n"),
             env=as_deploy(fakebin, NGINX_RC="1", NGINX_ACTIVE=active, WSGISHIP_SITE="installed",
                           NGINX_OUT='nginx: [emerg] unknown directive "lisen"'))
    assert res.returncode == 1
    assert 'unknown directive "lisen"' in res.stdout  # nginx -t's complaint is shown
    assert calls(fakebin)[-1] == "nginx -t -q"  # neither reloaded nor started


# --- install_site: the site as a root-owned file, enabled ---


def install_site(p: Paths) -> str:
    """install_site's lines as services.install runs them: privileged, as a deploy user."""
    return priv(script(nginx.install_site(p)), "sudo -n")


def test_install_site_text() -> None:
    lines = nginx.install_site(Paths("/srv/app", "app"))
    assert len(lines) == 2
    install = lines[0].partition("; then ")[2].partition(";")[0]
    assert shlex.split(install) == ["$SUDO", "install", "-m", "644", "-o", "root", "-g", "root",
                                    "/srv/app/current/.wsgiship/nginx.conf", AVAILABLE]
    link = lines[1].partition("; then ")[2].partition(";")[0]
    assert shlex.split(link) == ["$SUDO", "ln", "-sfn", "../sites-available/wsgiship-app", ENABLED]
    assert all(line.endswith("echo site=installed; fi") for line in lines)


def test_install_site_installs_a_root_owned_file_and_enables_it_once(
        deploy: Path, fakebin: Path, sh) -> None:
    current_release(deploy, "systemd")
    p = svc_paths(deploy)
    res = sh(install_site(p), env=as_deploy(fakebin))
    assert res.returncode == 0, res.stderr
    assert res.stdout == "site=installed\nsite=installed\n"
    available = Path(p.nginx_available)
    assert not available.is_symlink() and available.read_text() == SITE
    assert os.readlink(enabled_link(fakebin)) == "../sites-available/wsgiship-app"
    assert sudoed(fakebin) == [
        f"install -m 644 -o root -g root {deploy}/current/.wsgiship/nginx.conf {available}",
        f"ln -sfn ../sites-available/wsgiship-app {ENABLED}",
    ]
    (fakebin / "calls").unlink()
    res = sh(install_site(p), env=as_deploy(fakebin))
    assert (res.returncode, res.stdout, sudoed(fakebin)) == (0, "", [])


@pytest.mark.parametrize("before, owner, reinstalled", [
    (SITE, "root", False),
    ("# rendered for release 1\n" + SITE.replace("{\n", "{\n    # a comment\n"), "root", False),
    (SITE.replace("80", "8080"), "root", True),  # another site
    (SITE, "deploy", True),                      # the same text, but a file root does not own
    ("link", "root", True),                      # a link into current (as before this version)
    (None, "root", True),                        # none yet
])
def test_install_site_reinstalls_only_what_is_not_the_root_owned_site(
        deploy: Path, fakebin: Path, sh, tmp_path: Path, before: str | None, owner: str,
        reinstalled: bool) -> None:
    current_release(deploy, "systemd")
    p = svc_paths(deploy)
    available = Path(p.nginx_available)
    available.parent.mkdir(parents=True)
    if before == "link":
        available.symlink_to(deploy / "current" / ".wsgiship" / "nginx.conf")
    elif before is not None:
        available.write_text(before)
    owners = tmp_path / "owners"
    owners.write_text(f"{owner} {available}\n")
    enabled_link(fakebin).parent.mkdir(parents=True)
    enabled_link(fakebin).symlink_to("../sites-available/wsgiship-app")
    res = sh(install_site(p), env=as_deploy(fakebin, OWNERS=str(owners)))
    assert res.returncode == 0, res.stderr
    assert res.stdout == ("site=installed\n" if reinstalled else "")
    assert [c.split()[0] for c in sudoed(fakebin)] == (["install"] if reinstalled else [])
    assert not available.is_symlink()
    if reinstalled:
        assert available.read_text() == SITE
    # a link that was there was replaced, never written through
    assert (deploy / "current" / ".wsgiship" / "nginx.conf").read_text() == SITE


def test_install_site_fixes_a_wrong_enabled_link(deploy: Path, fakebin: Path, sh) -> None:
    current_release(deploy, "systemd")
    p = svc_paths(deploy)
    Path(p.nginx_available).parent.mkdir(parents=True)
    Path(p.nginx_available).write_text(SITE)
    enabled_link(fakebin).parent.mkdir(parents=True)
    enabled_link(fakebin).symlink_to(f"{deploy}/current/.wsgiship/nginx.conf")
    res = sh(install_site(p), env=as_deploy(fakebin))
    assert (res.returncode, res.stdout) == (0, "site=installed\n")
    assert sudoed(fakebin) == [f"ln -sfn ../sites-available/wsgiship-app {ENABLED}"]
    assert os.readlink(enabled_link(fakebin)) == "../sites-available/wsgiship-app"


# --- site_check: before the switch, may this user install the release's site? ---


def site_checked(deploy: Path, fakebin: Path, sh, new: str, installed: str | None | Path,
                 sudo: str = "sudo -n", enabled: bool = True,
                 **env: str) -> subprocess.CompletedProcess[str]:
    """Run site_check for release NAME whose site is `new`, with `installed` in place (text, a
    link to that path, or nothing), enabled (linked from sites-enabled) or not."""
    if enabled:
        enabled_link(fakebin).parent.mkdir(parents=True, exist_ok=True)
        enabled_link(fakebin).symlink_to("../sites-available/wsgiship-app")
    r = deploy / "releases" / NAME / ".wsgiship"
    r.mkdir(parents=True)
    (r / "nginx.conf").write_text(new)
    p = svc_paths(deploy)
    available = Path(p.nginx_available)
    available.parent.mkdir(parents=True)
    if isinstance(installed, Path):
        available.symlink_to(installed)
    elif installed is not None:
        available.write_text(installed)
    login = as_deploy(fakebin, **env) if sudo else fake_env(fakebin, **env)
    return sh(priv(nginx.site_check(p, NAME, "web1"), sudo), env=login)


@pytest.mark.parametrize("installed", [SITE, "# a comment\n" + SITE])
def test_site_check_passes_the_installed_site(deploy: Path, fakebin: Path, sh,
                                              installed: str) -> None:
    res = site_checked(deploy, fakebin, sh, SITE, installed)
    assert (res.returncode, res.stderr) == (0, "")
    assert calls(fakebin) == [f"readlink {ENABLED}"]  # no need to ask sudo


def test_site_check_refuses_an_installed_site_that_is_not_enabled(deploy: Path, fakebin: Path,
                                                                  sh) -> None:
    # enabling it takes `ln` as root after the switch, which a restricted user may not run
    res = site_checked(deploy, fakebin, sh, SITE, SITE, enabled=False, SUDO_LIST_RC="1")
    assert res.returncode == 1
    assert "run fab setup -H web1 (as root)" in res.stderr


def test_site_check_passes_a_changed_site_sudo_allows_to_install(deploy: Path, fakebin: Path,
                                                                 sh) -> None:
    res = site_checked(deploy, fakebin, sh, SITE, SITE.replace("80", "8080"), SUDO_LIST_RC="0")
    assert res.returncode == 0, res.stderr
    listed = shlex.split(calls(fakebin)[0])
    assert listed[:3] == ["sudo", "-n", "-l"]
    # sudo -l is asked for the very command install_site will run after the switch
    install = nginx.install_site(svc_paths(deploy))[0].partition("; then $SUDO ")[2].partition(";")[0]
    assert listed[3:] == shlex.split(install) == [
        "install", "-m", "644", "-o", "root", "-g", "root",
        f"{deploy}/current/.wsgiship/nginx.conf", svc_paths(deploy).nginx_available]


@pytest.mark.parametrize("installed", ["changed", None, "link"])
def test_site_check_refuses_a_site_sudo_does_not_allow_to_install(
        deploy: Path, fakebin: Path, sh, installed: str | None) -> None:
    old = SITE.replace("80", "8080")
    # a link into the release (as before this version): the text is the same, but nginx must
    # read a root-owned file
    before = {"changed": old, None: None, "link": deploy / "releases" / NAME / ".wsgiship" /
              "nginx.conf"}[installed]
    res = site_checked(deploy, fakebin, sh, SITE, before, SUDO_LIST_RC="1")
    assert res.returncode == 1
    available = svc_paths(deploy).nginx_available
    assert (f"the nginx site differs from {available} and web1 may not install it: run fab setup"
            " -H web1 (as root) to install it") in res.stderr
    if installed == "changed":  # what would change
        assert "-    listen 8080;" in res.stderr and "+    listen 80;" in res.stderr
    if installed is None:
        assert "+    listen 80;" in res.stderr


def test_site_check_is_skipped_when_the_script_runs_as_root(deploy: Path, fakebin: Path,
                                                            sh) -> None:
    # root login, or the whole script under one sudo: it installs the site itself
    res = site_checked(deploy, fakebin, sh, SITE, SITE.replace("80", "8080"), sudo="")
    assert (res.returncode, res.stderr) == (0, "")
    assert calls(fakebin) == []
