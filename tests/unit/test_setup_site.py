"""wsgiship.commands.setup: the sudo rules for a restricted deploy user, the app's nginx site
and nginx itself (the other steps of `fab setup`: test_setup_commands.py).

Each script runs for real as root would run it, with fakes on PATH for every command that would
change this machine (install, systemctl, nginx, visudo, ...). A path under /etc that a script
names itself (the sudoers file, nginx's default site) is swapped for one in tmp_path after
checking that the script names it.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
from pathlib import Path

import pytest
from fakes import HOSTILE_TOUCH, PWNED, add_fakes, calls, fake_env, svc_paths
from setup_scripts import calls_t, swap

from wsgiship.commands import setup
from wsgiship.layout import Paths

# --- sudo_rules, sudoers ---


NGINX_RULES = """\
    /usr/sbin/nginx -t -q, \\
    /usr/bin/systemctl start nginx, \\
"""


def systemd_rules(service: str) -> str:
    """Start and stop of both slots' instances (and the retire's stop that does not wait);
    stop and disable the single unit of before."""
    return (f"    /usr/bin/systemctl start {service}@a.service, \\\n"
            f"    /usr/bin/systemctl stop {service}@a.service, \\\n"
            f"    /usr/bin/systemctl start {service}@b.service, \\\n"
            f"    /usr/bin/systemctl stop {service}@b.service, \\\n"
            f"    /usr/bin/systemctl stop --no-block {service}@a.service, \\\n"
            f"    /usr/bin/systemctl stop --no-block {service}@b.service, \\\n"
            f"    /usr/bin/systemctl stop {service}.service, \\\n"
            f"    /usr/bin/systemctl disable -q {service}.service\n")


SUDO_RULES = {
    "systemd": "# wsgiship: the root commands `fab deploy` of shop runs as deploy; nothing else.\n"
               "Cmnd_Alias WSGISHIP_SHOP = \\\n" + NGINX_RULES + systemd_rules("wsgiship-shop") +
               "deploy ALL=(root) NOPASSWD: WSGISHIP_SHOP\n",
    "supervisor": "# wsgiship: the root commands `fab deploy` of shop runs as deploy; nothing else.\n"
                  "Cmnd_Alias WSGISHIP_SHOP = \\\n" + NGINX_RULES +
                  "    /usr/bin/supervisorctl start wsgiship-shop-a, \\\n"
                  "    /usr/bin/supervisorctl stop wsgiship-shop-a, \\\n"
                  "    /usr/bin/supervisorctl status wsgiship-shop-a, \\\n"
                  # (pid: the retire's kill of a failed release's workers, the watch)
                  "    /usr/bin/supervisorctl pid wsgiship-shop-a, \\\n"
                  "    /usr/bin/supervisorctl start wsgiship-shop-b, \\\n"
                  "    /usr/bin/supervisorctl stop wsgiship-shop-b, \\\n"
                  "    /usr/bin/supervisorctl status wsgiship-shop-b, \\\n"
                  "    /usr/bin/supervisorctl pid wsgiship-shop-b, \\\n"
                  "    /usr/bin/supervisorctl tail wsgiship-shop-a stderr, \\\n"
                  "    /usr/bin/supervisorctl tail wsgiship-shop-b stderr, \\\n"
                  "    /usr/bin/supervisorctl update wsgiship-shop-a, \\\n"
                  "    /usr/bin/supervisorctl update wsgiship-shop-b, \\\n"
                  "    /usr/bin/supervisorctl reread, \\\n"
                  # the single program of an older wsgiship, retired after the switch
                  "    /usr/bin/supervisorctl status wsgiship-shop, \\\n"
                  "    /usr/bin/supervisorctl update wsgiship-shop\n"
                  "deploy ALL=(root) NOPASSWD: WSGISHIP_SHOP\n",
    # the alias is a valid name
    "odd": "# wsgiship: the root commands `fab deploy` of my-shop runs as web; nothing else.\n"
           "Cmnd_Alias WSGISHIP_MY_SHOP = \\\n" + NGINX_RULES + systemd_rules("wsgiship-my-shop") +
           "web ALL=(root) NOPASSWD: WSGISHIP_MY_SHOP\n",
}
# the app's own user: the deploy user may run anything as it (it runs the code it ships anyway)
AS_APP_RULE = ("# ... and anything as the app's user, which runs the code this user ships\n"
               "deploy ALL=(wsgiship-shop) NOPASSWD: ALL\n")
SUDO_RULES["app user"] = SUDO_RULES["systemd"] + AS_APP_RULE
SUDO_RULES["app user, supervisor"] = SUDO_RULES["supervisor"] + AS_APP_RULE
RULES_FOR: dict[str, tuple[Paths, str] | tuple[Paths, str, str]] = {
    "systemd": (Paths("/srv/shop", "shop"), "deploy"),
    "supervisor": (Paths("/srv/shop", "shop", "supervisor"), "deploy"),
    "odd": (Paths("/srv/my-shop", "my-shop"), "web"),
    "app user": (Paths("/srv/shop", "shop"), "deploy", "wsgiship-shop"),
    "app user, supervisor": (Paths("/srv/shop", "shop", "supervisor"), "deploy", "wsgiship-shop"),
}


@pytest.mark.parametrize("case", SUDO_RULES)
def test_sudo_rules(case: str) -> None:
    assert setup.sudo_rules(*RULES_FOR[case]) == SUDO_RULES[case]


@pytest.mark.parametrize("app_user", ["", "deploy", "root"])
def test_sudo_rules_add_no_app_line_for_the_user_itself_or_root(app_user: str) -> None:
    p = Paths("/srv/shop", "shop")
    assert setup.sudo_rules(p, "deploy", app_user) == SUDO_RULES["systemd"]


@pytest.mark.parametrize("case", SUDO_RULES)
def test_sudo_rules_pass_visudo(tmp_path: Path, case: str) -> None:
    rules = tmp_path / "rules"
    rules.write_text(setup.sudo_rules(*RULES_FOR[case]))
    res = subprocess.run(["visudo", "-c", "-q", "-f", str(rules)], capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr


# visudo -c -q -f FILE: keeps a copy of what it checked; fails with $VISUDO_RC
VISUDO = {"visudo": 'echo "visudo $*" >> "$CALLS"\ncp "${@: -1}" "$CALLS.checked"\n'
                    'exit "${VISUDO_RC:-0}"\n'}


@pytest.mark.parametrize("manager", ["systemd", "supervisor"])
@pytest.mark.parametrize("app_user", ["", "wsgiship-shop"])
def test_sudoers_installs_the_rules_visudo_accepted(tmp_path: Path, fakebin: Path, sh,
                                                   manager: str, app_user: str) -> None:
    add_fakes(fakebin, VISUDO)
    p = Paths("/srv/shop", "shop", manager)
    target = tmp_path / "sudoers.d" / "wsgiship-shop"
    body = swap(setup.sudoers(p, "deploy", app_user), "/etc/sudoers.d/wsgiship-shop", target, 3)
    rules = setup.sudo_rules(p, "deploy", app_user)
    assert ("deploy ALL=(wsgiship-shop) NOPASSWD: ALL\n" in rules) == bool(app_user)
    # refused by visudo: nothing installed
    res = sh(body, env=fake_env(fakebin, VISUDO_RC="1"))
    assert res.returncode == 1 and not target.exists()
    (fakebin / "calls").unlink()
    res = sh(body, env=fake_env(fakebin))
    assert res.returncode == 0, res.stderr
    assert res.stdout == f"changed=installed {target}\n"
    assert target.read_text() == rules == (fakebin / "calls.checked").read_text()
    assert calls_t(fakebin) == ["visudo -c -q -f $T", f"install -m 440 -o root -g root $T {target}"]
    (fakebin / "calls").unlink()
    res = sh(body, env=fake_env(fakebin))
    assert (res.returncode, res.stdout, calls(fakebin)) == (0, "", [])


# --- site: the app's nginx site, a root-owned file ---


SITE_TEXT = "server {\n    listen 80;\n    # rendered by wsgiship\n}"  # no final newline


def run_site(deploy: Path, fakebin: Path, sh, content: str = SITE_TEXT,
             **env: str) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    """setup.site as root, the site under the fakes' root (sites-enabled: the fake ln's); the
    result and the calls it made (but reading the link)."""
    (fakebin / "calls").unlink(missing_ok=True)
    res = sh(setup.site(svc_paths(deploy), content), env=fake_env(fakebin, **env))
    return res, [c for c in calls_t(fakebin) if not c.startswith("readlink ")]


def site_files(deploy: Path, fakebin: Path) -> tuple[Path, Path]:
    """The installed site and the enabled link."""
    enabled = Path(fake_env(fakebin)["FAKE_ROOT"]) / "etc/nginx/sites-enabled/wsgiship-app"
    return Path(svc_paths(deploy).nginx_available), enabled


def test_site_installs_and_enables_the_site_once(deploy: Path, fakebin: Path, sh) -> None:
    available, enabled = site_files(deploy, fakebin)
    res, done = run_site(deploy, fakebin, sh)
    assert res.returncode == 0, res.stderr
    assert res.stdout == f"changed=installed {available} enabled\n"
    assert available.read_text() == SITE_TEXT and not available.is_symlink()
    assert available.stat().st_mode & 0o777 == 0o644
    assert os.readlink(enabled) == "../sites-available/wsgiship-app"
    assert done == [f"install -m 644 -o root -g root $T {available}",
                    "ln -sfn ../sites-available/wsgiship-app /etc/nginx/sites-enabled/wsgiship-app",
                    "nginx -t -q", "systemctl is-active -q nginx", "systemctl reload nginx"]
    # again, and with only its comments changed: nothing to do
    for content in (SITE_TEXT, "# another comment\n" + SITE_TEXT.replace("    # rendered", "  #")):
        res, done = run_site(deploy, fakebin, sh, content)
        assert (res.returncode, res.stdout, done) == (0, "", [])


@pytest.mark.parametrize("before", ["link", "deploy's", "mode 664", "another site"])
def test_site_replaces_what_is_not_the_root_owned_site(deploy: Path, fakebin: Path, sh,
                                                       tmp_path: Path, before: str) -> None:
    available, enabled = site_files(deploy, fakebin)
    available.parent.mkdir(parents=True)
    enabled.parent.mkdir(parents=True)
    enabled.symlink_to("../sites-available/wsgiship-app")
    owners = tmp_path / "owners"
    owners.write_text("")
    old = tmp_path / "old.conf"  # where a link from before this version pointed (current's)
    old.write_text(SITE_TEXT)
    if before == "link":
        available.symlink_to(old)
    else:
        available.write_text(SITE_TEXT if before != "another site" else "server {}\n")
        available.chmod(0o664 if before == "mode 664" else 0o644)
        if before == "deploy's":
            owners.write_text(f"deploy {available}\n")
    res, done = run_site(deploy, fakebin, sh, OWNERS=str(owners))
    assert res.returncode == 0, res.stderr
    assert res.stdout == f"changed=installed {available}\n"
    assert done[0] == f"install -m 644 -o root -g root $T {available}"
    assert not available.is_symlink() and available.read_text() == SITE_TEXT
    assert old.read_text() == SITE_TEXT  # a link is replaced, never written through
    res, done = run_site(deploy, fakebin, sh, OWNERS=str(owners))
    assert (res.returncode, res.stdout, done) == (0, "", [])


def test_site_only_enables_an_installed_site(deploy: Path, fakebin: Path, sh) -> None:
    available, enabled = site_files(deploy, fakebin)
    available.parent.mkdir(parents=True)
    available.write_text(SITE_TEXT)
    available.chmod(0o644)
    res, done = run_site(deploy, fakebin, sh, NGINX_ACTIVE="0")
    assert (res.returncode, res.stdout) == (0, "changed=enabled\n"), res.stderr
    # a stopped nginx is not reloaded (setup's nginx step starts it)
    assert done == ["ln -sfn ../sites-available/wsgiship-app /etc/nginx/sites-enabled/wsgiship-app",
                    "nginx -t -q", "systemctl is-active -q nginx"]


def test_site_puts_the_old_site_back_when_nginx_refuses_the_new_one(deploy: Path, fakebin: Path,
                                                                    sh) -> None:
    available, enabled = site_files(deploy, fakebin)
    available.parent.mkdir(parents=True)
    available.write_text("server { listen 8080; }\n")
    available.chmod(0o644)
    enabled.parent.mkdir(parents=True)
    enabled.symlink_to("../sites-available/wsgiship-app")
    res, done = run_site(deploy, fakebin, sh, NGINX_RC="1",
                         NGINX_OUT='nginx: [emerg] unknown directive "lisen"')
    assert res.returncode == 1
    assert res.stderr == ("nginx -t failed with the new site (the old one is kept): nginx:"
                          ' [emerg] unknown directive "lisen"\n')
    assert available.read_text() == "server { listen 8080; }\n"
    assert available.stat().st_mode & 0o777 == 0o644
    assert done == [f"install -m 644 -o root -g root $T {available}", "nginx -t -q",
                    f"install -m 644 -o root -g root $T {available}"]  # no reload


@pytest.mark.parametrize("before", ["link", "none"])
def test_site_refused_by_nginx_leaves_what_was_there(deploy: Path, fakebin: Path, sh,
                                                      tmp_path: Path, before: str) -> None:
    # an older wsgiship's link into a release is put back; a site that was not there is
    # removed again, and so is the link that enabled it: nginx's config stays as it was
    available, enabled = site_files(deploy, fakebin)
    available.parent.mkdir(parents=True)
    old = tmp_path / "old.conf"
    old.write_text("server { listen 8080; }\n")
    if before == "link":
        available.symlink_to(old)
        enabled.parent.mkdir(parents=True)
        enabled.symlink_to("../sites-available/wsgiship-app")
    class Paths(type(svc_paths(deploy))):  # sites-enabled under the fakes' root too
        @property
        def nginx_enabled(self) -> str:
            return self.root + super().nginx_enabled

    p = Paths(**dataclasses.asdict(svc_paths(deploy)))
    res = sh(setup.site(p, SITE_TEXT),
             env=fake_env(fakebin, NGINX_RC="1", NGINX_OUT="nginx: [emerg] no"))
    assert res.returncode == 1
    assert "nginx -t failed with the new site (the old one is kept)" in res.stderr
    if before == "link":
        assert os.readlink(available) == str(old)
        assert os.readlink(enabled) == "../sites-available/wsgiship-app"
    else:
        assert not available.exists() and not available.is_symlink()
        assert not enabled.is_symlink()
    assert old.read_text() == "server { listen 8080; }\n"


def test_site_writes_the_content_as_it_is(deploy: Path, fakebin: Path, sh) -> None:
    content = f"server {{ return 200 '$host `id` $(id)'; }}\n{HOSTILE_TOUCH}\n"
    available, _ = site_files(deploy, fakebin)
    res, _ = run_site(deploy, fakebin, sh, content)
    assert res.returncode == 0, res.stderr
    assert available.read_text() == content
    assert not PWNED.exists()


def test_site_names_the_apps_sites() -> None:
    text = setup.site(Paths("/srv/shop", "shop"), SITE_TEXT)
    assert ("A=/etc/nginx/sites-available/wsgiship-shop; E=/etc/nginx/sites-enabled/wsgiship-shop;"
            " did=()") in text.splitlines()
    assert "ln -sfn ../sites-available/wsgiship-shop \"$E\"" in text


# --- nginx ---


@pytest.mark.parametrize("remove_default, default_there, env, changed, after", [
    (False, True, {}, "", []),
    (False, True, {"ENABLED": "0"}, "enabled", ["nginx -t -q", "systemctl reload nginx"]),
    (False, False, {"NGINX_ACTIVE": "0"}, "started", ["systemctl start nginx"]),
    (True, True, {}, "default site removed", ["nginx -t -q", "systemctl reload nginx"]),
    (True, False, {}, "", []),
    (True, True, {"ENABLED": "0", "NGINX_ACTIVE": "0"}, "default site removed enabled started",
     ["systemctl start nginx"]),
])
def test_nginx(tmp_path: Path, fakebin: Path, sh, remove_default: bool, default_there: bool,
               env: dict[str, str], changed: str, after: list[str]) -> None:
    default = tmp_path / "sites-enabled" / "default"
    default.parent.mkdir()
    (tmp_path / "sites-available").mkdir()
    (tmp_path / "sites-available" / "default").write_text("server {}\n")
    if default_there:
        default.symlink_to("../sites-available/default")
    body = swap(setup.nginx(remove_default), "/etc/nginx/sites-enabled/default", default,
                3 if remove_default else 0)
    res = sh(body, env=fake_env(fakebin, **env))
    assert res.returncode == 0, res.stderr
    assert res.stdout == (f"changed={changed}\n" if changed else "")
    assert default.is_symlink() == (default_there and not remove_default)
    done = calls(fakebin)
    assert done[0] == "systemctl is-enabled -q nginx"
    assert ("systemctl enable -q nginx" in done) == (env.get("ENABLED") == "0")
    assert done[done.index("systemctl is-active -q nginx") + 1:] == after


def test_nginx_removes_a_dangling_default_site_link(tmp_path: Path, fakebin: Path, sh) -> None:
    default = tmp_path / "default"
    default.symlink_to(tmp_path / "gone")
    body = swap(setup.nginx(True), "/etc/nginx/sites-enabled/default", default, 3)
    res = sh(body, env=fake_env(fakebin))
    assert res.returncode == 0, res.stderr
    assert res.stdout == "changed=default site removed\n"
    assert not default.is_symlink()

