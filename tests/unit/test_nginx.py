"""wsgiship.commands.nginx: reload_nginx, run with a fake nginx and systemctl."""

from __future__ import annotations

from pathlib import Path

import pytest
from fakes import SITE, as_deploy, calls, fake_env, paths, priv, rel, site, sudoed

from wsgiship.commands import nginx


def test_reload_nginx_skips_an_unchanged_site(deploy: Path, fakebin: Path, sh) -> None:
    site(deploy, rel(1), "# release 1\n" + SITE)
    site(deploy, rel(2), "# release 2\n" + SITE.replace("{\n", "{\n    # a comment\n"))
    res = sh(priv(nginx.reload_nginx(paths(deploy), rel(2), rel(1)), "sudo -n"),
             env=as_deploy(fakebin))
    assert res.returncode == 0 and res.stdout == "nginx=unchanged\n"
    assert calls(fakebin) == ["systemctl is-active -q nginx"]  # nothing needed root


@pytest.mark.parametrize("previous,force,old_site", [
    (rel(1), False, SITE.replace("80", "8080")),  # the site changed
    (rel(1), True, SITE),                          # the site link was (re)installed
    ("", False, SITE),                             # first deploy
    (rel(9), False, SITE),                         # previous release pruned meanwhile
])
def test_reload_nginx_tests_then_reloads(deploy: Path, fakebin: Path, sh, previous: str,
                                         force: bool, old_site: str) -> None:
    site(deploy, rel(1), old_site)
    site(deploy, rel(2), SITE)
    res = sh(priv(nginx.reload_nginx(paths(deploy), rel(2), previous, force=force), "sudo -n"),
             env=as_deploy(fakebin))
    assert res.returncode == 0, res.stderr
    assert res.stdout == "nginx=reloaded\n"
    assert calls(fakebin)[-5:] == ["sudo -n nginx -t -q", "nginx -t -q",
                                   "systemctl is-active -q nginx",
                                   "sudo -n systemctl reload nginx", "systemctl reload nginx"]


def test_reload_nginx_as_root_runs_the_same_without_sudo(deploy: Path, fakebin: Path,
                                                         sh) -> None:
    site(deploy, rel(2), SITE)
    res = sh(priv(nginx.reload_nginx(paths(deploy), rel(2), "")), env=fake_env(fakebin))
    assert res.returncode == 0 and res.stdout == "nginx=reloaded\n"
    assert calls(fakebin) == ["nginx -t -q", "systemctl is-active -q nginx",
                              "systemctl reload nginx"]


def test_reload_nginx_starts_a_stopped_nginx(deploy: Path, fakebin: Path, sh) -> None:
    site(deploy, rel(1), SITE)
    site(deploy, rel(2), SITE)  # unchanged, but a stopped nginx still has to start
    res = sh(priv(nginx.reload_nginx(paths(deploy), rel(2), rel(1)), "sudo -n"),
             env=as_deploy(fakebin, NGINX_ACTIVE="0"))
    assert res.returncode == 0 and res.stdout == "nginx=started\n"
    assert sudoed(fakebin) == ["nginx -t -q", "systemctl start nginx"]


def test_reload_nginx_stops_on_a_broken_config(deploy: Path, fakebin: Path, sh) -> None:
    site(deploy, rel(2), SITE)
    res = sh(priv(nginx.reload_nginx(paths(deploy), rel(2), ""), "sudo -n"),
             env=as_deploy(fakebin, NGINX_RC="1",
                           NGINX_OUT='nginx: [emerg] unknown directive "lisen"'))
    assert res.returncode == 1
    assert 'unknown directive "lisen"' in res.stdout  # nginx -t's complaint is shown
    assert calls(fakebin)[-1] == "nginx -t -q"
