"""wsgiship.commands.checks: the checks before the switch (nginx_check,
unit_check), none of which needs root."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest
from fakes import (
    MANAGERS,
    NAME,
    SITE,
    FakeRootPaths,
    add_release,
    as_deploy,
    calls,
    fake_env,
    line_with,
    paths,
    priv,
    sudoed,
    svc_paths,
)

from wsgiship.commands import checks, nginx, services
from wsgiship.render import render


def nginx_release(deploy: Path, text: str) -> Path:
    r = add_release(deploy, NAME)
    (r / ".wsgiship" / "nginx.conf").write_text(text)
    return r / ".wsgiship" / "nginx.conf"


def test_nginx_check_wraps_the_site_in_a_throwaway_config(deploy: Path, fakebin: Path, sh,
                                                          make_app) -> None:
    rendered = render(make_app(name="shop", static={"/static": "static"}), NAME, "deploy",
                      "r")[".wsgiship/nginx.conf"]
    site_path = nginx_release(deploy, rendered)
    res = sh(priv(checks.nginx_check(paths(deploy), NAME), "sudo -n"), env=as_deploy(fakebin))
    assert res.returncode == 0, res.stderr
    assert res.stdout == ""
    assert sudoed(fakebin) == [] and not any(c.startswith("sudo") for c in calls(fakebin))
    tmpdir = (fakebin / "calls.dir").read_text().strip()
    argv = (fakebin / "calls.argv").read_text().splitlines()
    assert argv == ["-t", "-q", "-e", "/dev/stderr", "-g", f"pid {tmpdir}/nginx.pid;",
                    "-c", f"{tmpdir}/nginx.conf"]
    copy = fakebin / "calls.copy"
    assert (copy / "nginx.conf").read_text() == (
        "include /etc/nginx/modules-enabled/*.conf;\n"
        "events {}\n"
        f"http {{ include /etc/nginx/mime.types; include {tmpdir}/site.conf; }}\n")
    # the site as the release has it, but for its log files (opening them needs root)
    expected = (rendered.replace("/var/log/nginx/shop.access.log", "/dev/null")
                .replace("/var/log/nginx/shop.error.log", "/dev/null"))
    assert expected != rendered
    assert (copy / "site.conf").read_text() == expected
    assert site_path.read_text() == rendered  # the release's own copy is untouched
    assert not Path(tmpdir).exists()  # removed on exit


def test_nginx_check_points_every_log_at_dev_null(deploy: Path, fakebin: Path, sh) -> None:
    nginx_release(deploy, "server {\n"
                          "    access_log /var/log/nginx/a.log combined;\n"
                          "\terror_log  /var/log/nginx/e.log warn;\n"
                          "    location /x {\n"
                          "        access_log /var/log/nginx/x.log;\n"
                          "    }\n"
                          "    # access_log /not/a/directive.log;\n"
                          "}\n")
    assert sh(checks.nginx_check(paths(deploy), NAME), env=fake_env(fakebin)).returncode == 0
    assert (fakebin / "calls.copy" / "site.conf").read_text() == (
        "server {\n"
        "    access_log /dev/null combined;\n"
        "\terror_log /dev/null warn;\n"
        "    location /x {\n"
        "        access_log /dev/null;\n"
        "    }\n"
        "    # access_log /not/a/directive.log;\n"
        "}\n")


def test_nginx_check_fails_on_a_broken_site_naming_the_release_file(deploy: Path,
                                                                    fakebin: Path, sh) -> None:
    site_path = nginx_release(deploy, "server {\n    lisen 80;\n}\n")
    out = ('nginx: [emerg] unknown directive "lisen" in SITE:2\n'
           "nginx: configuration file /tmp/x/nginx.conf test failed")
    res = sh(priv(checks.nginx_check(paths(deploy), NAME), "sudo -n"),
             env=as_deploy(fakebin, NGINX_RC="1", NGINX_OUT=out))
    assert res.returncode == 1
    assert f'nginx: [emerg] unknown directive "lisen" in {site_path}:2' in res.stdout
    tmpdir = (fakebin / "calls.dir").read_text().strip()
    assert tmpdir not in res.stdout  # the throwaway copy is never named
    assert not Path(tmpdir).exists()


@pytest.mark.parametrize("out,ok", [
    # only a file the login user may not read (e.g. a TLS key): left to the root nginx -t
    ('nginx: [emerg] cannot load certificate key "/etc/ssl/private/shop.key": BIO_new_file()'
     " failed (SSL: error:8000000D:system library::Permission denied)", True),
    ('nginx: [emerg] open() "/etc/nginx/htpasswd" failed (13: Permission denied) in SITE:9',
     True),
    # a permission problem and a real error: the real error fails the check
    ('nginx: [emerg] open() "/etc/ssl/private/shop.key" failed (13: Permission denied)\n'
     'nginx: [emerg] invalid port in "80x" of the "listen" directive in SITE:2', False),
])
def test_nginx_check_leaves_permission_problems_to_the_root_check(
        deploy: Path, fakebin: Path, sh, out: str, ok: bool) -> None:
    nginx_release(deploy, SITE)
    res = sh(checks.nginx_check(paths(deploy), NAME),
             env=fake_env(fakebin, NGINX_RC="1", NGINX_OUT=out))
    assert res.returncode == (0 if ok else 1), res.stdout + res.stderr
    if not ok:
        assert 'invalid port in "80x"' in res.stdout


# --- unit_check ---


def service_config(deploy: Path, release: str, text: str, installed: str | None,
                   manager: str = "systemd") -> FakeRootPaths:
    """A release with a service config, and (unless None) the one installed."""
    r = add_release(deploy, release)
    (r / ".wsgiship" / "service").write_text(text)
    p = svc_paths(deploy, manager)
    if installed is not None:
        Path(p.service_file).parent.mkdir(parents=True)
        Path(p.service_file).write_text(installed)
    return p


UNIT = "[Service]\nUser=deploy\n"


@pytest.mark.parametrize("manager", MANAGERS)
def test_unit_check_passes_an_unchanged_service_config(deploy: Path, fakebin: Path, sh,
                                                       manager: str) -> None:
    p = service_config(deploy, NAME, UNIT, UNIT, manager)
    res = sh(priv(checks.unit_check(p, NAME, "web1"), "sudo -n"), env=as_deploy(fakebin))
    assert res.returncode == 0, res.stderr
    assert calls(fakebin) == []  # no need to ask sudo


@pytest.mark.parametrize("installed", [UNIT.replace("deploy", "web"), None])
def test_unit_check_refuses_a_change_sudo_does_not_allow(deploy: Path, fakebin: Path, sh,
                                                         installed: str | None) -> None:
    p = service_config(deploy, NAME, UNIT, installed)
    res = sh(priv(checks.unit_check(p, NAME, "web1"), "sudo -n"),
             env=as_deploy(fakebin, SUDO_LIST_RC="1"))
    assert res.returncode == 1
    assert f"the service config differs from {p.service_file}" in res.stderr
    assert "web1 may not install it" in res.stderr
    assert "run fab setup -H web1 (as root)" in res.stderr
    if installed:  # what would change
        assert "-User=web" in res.stderr and "+User=deploy" in res.stderr


def unit_check_listed(deploy: Path, fakebin: Path, sh) -> tuple[FakeRootPaths, list[str]]:
    """A changed service config, checked by a deploy user sudo allows: the command it listed."""
    p = service_config(deploy, NAME, UNIT, UNIT.replace("deploy", "web"))
    res = sh(priv(checks.unit_check(p, NAME, "web1"), "sudo -n"),
             env=as_deploy(fakebin, SUDO_LIST_RC="0"))
    assert res.returncode == 0, res.stderr
    listed = shlex.split(calls(fakebin)[0])
    assert listed[:3] == ["sudo", "-n", "-l"]
    return p, listed[3:]


def test_unit_check_asks_sudo_for_the_exact_install_command(deploy: Path, fakebin: Path,
                                                            sh) -> None:
    p, listed = unit_check_listed(deploy, fakebin, sh)
    # the very command start_slot will run (sudo -l matches it argument for argument): from
    # the release itself, to the template unit of the slots' instances
    start = services.start_slot(p, NAME)
    installed = shlex.split(line_with(start, "unit=installed").partition("$SUDO ")[2]
                            .partition(";")[0])
    assert listed == installed == [
        "install", "-m", "644", f"{deploy}/releases/{NAME}/.wsgiship/service", p.service_file]
    assert p.service_file.endswith("/etc/systemd/system/wsgiship-app@.service")


def test_unit_check_is_skipped_when_the_script_runs_as_root(deploy: Path, fakebin: Path,
                                                            sh) -> None:
    # root login, or the whole script under one sudo (a sudo password given): $SUDO is empty
    p = service_config(deploy, NAME, UNIT, None)
    res = sh(priv(checks.unit_check(p, NAME, "web1")), env=fake_env(fakebin))
    assert res.returncode == 0, res.stderr
    assert calls(fakebin) == []


def test_the_checks_before_the_switch_run_as_one_script(deploy: Path, fakebin: Path,
                                                        sh) -> None:
    # the flow sends nginx_check + unit_check + site_check as one privileged script
    p = service_config(deploy, NAME, UNIT, UNIT.replace("deploy", "web"))
    (deploy / "releases" / NAME / ".wsgiship" / "nginx.conf").write_text(SITE)
    body = priv(checks.nginx_check(p, NAME) + checks.unit_check(p, NAME, "web1")
                + nginx.site_check(p, NAME, "web1"), "sudo -n")
    res = sh(body, env=as_deploy(fakebin, SUDO_LIST_RC="0"))
    assert res.returncode == 0, res.stderr
    # sudo -l for the changed service config, then for the site not installed yet
    assert [shlex.split(c)[:4] for c in calls(fakebin)[1:]] == [["sudo", "-n", "-l", "install"]] * 2
    assert calls(fakebin)[0].startswith("nginx ")
    res = sh(body, env=as_deploy(fakebin, SUDO_LIST_RC="1"))
    assert res.returncode == 1 and "fab setup -H web1" in res.stderr
    res = sh(body, env=as_deploy(fakebin, NGINX_RC="1", NGINX_OUT="nginx: [emerg] bad"))
    assert res.returncode == 1 and "[emerg] bad" in res.stdout
