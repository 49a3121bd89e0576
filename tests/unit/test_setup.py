"""wsgiship.commands.setup: the root scripts of `fab setup`.

Each script runs for real as root would run it, with fakes on PATH for every command that would
change this machine (apt-get, useradd, install, systemctl, visudo, ...). A path under /etc that a
script names itself (os-release, the sudoers file, nginx's default site) is swapped for one in
tmp_path after checking that the script names it.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from fakes import HOSTILE_TOUCH, PWNED, add_fakes, calls, fake_env, svc_paths

from wsgiship.commands import setup
from wsgiship.layout import Paths


def calls_t(fakebin: Path) -> list[str]:
    """calls() with the scripts' mktemp files named $T."""
    return [re.sub(r"/tmp/tmp\.\w+", "$T", c) for c in calls(fakebin)]


def swap(text: str, path: str, to: Path, count: int) -> str:
    """The script with `path` replaced by `to`, after checking it names it `count` times."""
    assert text.count(path) == count, text
    return text.replace(path, str(to))


# --- check_os ---


@pytest.mark.parametrize("os_release, code, out, err", [
    ('ID=debian\nPRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\n', 0,
     "os=Debian GNU/Linux 12 (bookworm)\n", ""),
    ('ID=ubuntu\nID_LIKE=debian\nPRETTY_NAME="Ubuntu 24.04.1 LTS"\n', 0, "os=Ubuntu 24.04.1 LTS\n", ""),
    # derivatives say so in ID_LIKE
    ('ID=linuxmint\nID_LIKE="ubuntu debian"\nPRETTY_NAME="Linux Mint 22"\n', 0, "os=Linux Mint 22\n", ""),
    ("ID=raspbian\nID_LIKE=debian\n", 0, "os=raspbian\n", ""),
    # a word, not a part of one
    ('ID=debianish\nPRETTY_NAME="Debianish 1"\n', setup.UNSUPPORTED_OS, "",
     "unsupported OS: Debianish 1 (setup knows Debian and Ubuntu)\n"),
    ('ID=fedora\nPRETTY_NAME="Fedora Linux 40"\n', setup.UNSUPPORTED_OS, "",
     "unsupported OS: Fedora Linux 40 (setup knows Debian and Ubuntu)\n"),
    ("ID=alpine\n", setup.UNSUPPORTED_OS, "", "unsupported OS: unknown (setup knows Debian and Ubuntu)\n"),
])
def test_check_os(tmp_path: Path, fakebin: Path, sh, os_release: str, code: int, out: str,
                  err: str) -> None:
    (tmp_path / "os-release").write_text(os_release)
    body = swap(setup.check_os(), "/etc/os-release", tmp_path / "os-release", 1)
    res = sh(body, env=fake_env(fakebin))  # fakebin has a systemctl
    assert (res.returncode, res.stdout, res.stderr) == (code, out, err)


def test_check_os_requires_systemd(tmp_path: Path, sh) -> None:
    (tmp_path / "os-release").write_text("ID=debian\n")
    only_bash = tmp_path / "bin"
    only_bash.mkdir()
    bash_path = shutil.which("bash")
    assert bash_path
    (only_bash / "bash").symlink_to(bash_path)
    body = swap(setup.check_os(), "/etc/os-release", tmp_path / "os-release", 1)
    res = sh(body, env={"PATH": str(only_bash)})  # no systemctl here nor in any sbin
    assert (res.returncode, res.stdout, res.stderr) == (setup.UNSUPPORTED_OS, "", "systemd is required\n")


# --- packages ---


BASE = ["python3", "python3-venv", "python3-dev", "build-essential", "sudo"]

APT = {
    # dpkg-query -W -f=... PKG: "installed" for the packages in $INSTALLED
    "dpkg-query": 'for p in ${INSTALLED:-}; do [ "$p" = "${@: -1}" ] && { printf installed; exit 0; }; done\n'
                  'echo "dpkg-query: no packages found matching ${@: -1}" >&2; exit 1\n',
    "apt-get": 'echo "apt-get $*" >> "$CALLS"\n'
               'if [ "$1" = install ]; then printf "%s\\n" "$@" > "$CALLS.argv";'
               ' echo "$DEBIAN_FRONTEND" > "$CALLS.frontend"; fi\n',
}


@pytest.mark.parametrize("installed, extra, missing", [
    ([*BASE, "nginx"], (), []),
    ([], (), [*BASE, "nginx"]),
    ([*BASE, "nginx-light"], (), []),                  # any Debian nginx flavour will do
    (["python3", "sudo", "nginx-extras"], (), ["python3-venv", "python3-dev", "build-essential"]),
    ([*BASE, "nginx"], ("supervisor",), ["supervisor"]),
    ([*BASE, "nginx", "supervisor"], ("supervisor",), []),
    ([*BASE, "nginx"], (HOSTILE_TOUCH,), [HOSTILE_TOUCH]),  # one argument, never run
])
def test_packages_installs_only_what_is_missing(fakebin: Path, sh, installed: list[str],
                                                extra: tuple[str, ...], missing: list[str]) -> None:
    add_fakes(fakebin, APT)
    res = sh(setup.packages(extra), env=fake_env(fakebin, INSTALLED=" ".join(installed)))
    assert res.returncode == 0, res.stderr
    assert not PWNED.exists()
    if not missing:
        assert res.stdout == "" and calls(fakebin) == []
        return
    assert res.stdout == f"changed=installed {' '.join(missing)}\n"
    assert calls(fakebin)[0] == "apt-get update -qq"
    argv = (fakebin / "calls.argv").read_text().splitlines()
    assert argv == ["install", "-y", "-qq", "--no-install-recommends", *missing]
    assert (fakebin / "calls.frontend").read_text() == "noninteractive\n"


# --- deploy_user ---


ACCOUNTS = {
    # users are dirs in $HOMES; $HOMES/<user>.groups lists their groups
    "id": 'case "$1" in\n'
          '  -u) [ -d "$HOMES/$2" ] && echo 1000 ;;\n'
          '  -nG) cat "$HOMES/$2.groups" ;;\n'
          '  -gn) echo "$2" ;;\n'
          '  *) exit 9 ;;\n'
          'esac\n',
    "useradd": 'echo "useradd $*" >> "$CALLS"\nu="${@: -1}"\n'
               'mkdir -p "$HOMES/$u"; echo "$u" > "$HOMES/$u.groups"\n',
    "usermod": 'echo "usermod $*" >> "$CALLS"\n[ "$1" = -aG ] || exit 9\n'
               'f="$HOMES/${@: -1}.groups"; echo "$(cat "$f") $2" > "$f"\n',
    "getent": '[ "$1" = passwd ] || exit 9\necho "$2:x:1000:1000::$HOMES/$2:/bin/bash"\n',
}
K1 = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIK1 alice@laptop"
K2 = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQK2 bob@desk"
EVIL = f"ssh-ed25519 AAAA {HOSTILE_TOUCH} $(id) `id`"


@pytest.mark.parametrize("groups, before, keys, changed, after", [
    # a new user: created, in adm, with its keys
    (None, None, (K1, K2), "created added to adm key added key added", [K1, K2]),
    ("deploy", None, (), "added to adm", []),
    ("deploy admins", None, (K1,), "added to adm key added", [K1]),  # adm, not admins
    ("deploy adm", [K1], (K1, K2), "key added", [K1, K2]),
    ("deploy adm", [K1, K2], (K2, K1), "", [K1, K2]),
    # a key counts as there only as a whole line
    ("deploy adm", [K1 + " old"], (K1,), "key added", [K1 + " old", K1]),
    (None, None, (EVIL,), "created added to adm key added", [EVIL]),
])
def test_deploy_user(tmp_path: Path, fakebin: Path, sh, groups: str | None, before: list[str] | None,
                     keys: tuple[str, ...], changed: str, after: list[str]) -> None:
    add_fakes(fakebin, ACCOUNTS)
    homes = tmp_path / "homes"
    home = homes / "deploy"
    homes.mkdir()
    if groups is not None:
        home.mkdir()
        (homes / "deploy.groups").write_text(groups + "\n")
    if before is not None:
        (home / ".ssh").mkdir()
        (home / ".ssh" / "authorized_keys").write_text("".join(k + "\n" for k in before))
    env = fake_env(fakebin, HOMES=str(homes))
    res = sh(setup.deploy_user("deploy", keys), env=env)
    assert res.returncode == 0, res.stderr
    assert res.stdout == (f"changed={changed}\n" if changed else "")
    authorized = home / ".ssh" / "authorized_keys"
    assert authorized.read_text() == "".join(k + "\n" for k in after)
    assert authorized.stat().st_mode & 0o777 == 0o600
    assert ("useradd -m -s /bin/bash deploy" in calls(fakebin)) == (groups is None)
    assert ("usermod -aG adm deploy" in calls(fakebin)) == ("added to adm" in changed)
    assert f"install -d -m 700 -o deploy -g deploy {home}/.ssh" in calls(fakebin)
    assert f"chown deploy {authorized}" in calls(fakebin)
    assert not PWNED.exists()
    # and again: nothing left to do
    res = sh(setup.deploy_user("deploy", keys), env=env)
    assert (res.returncode, res.stdout) == (0, "")
    assert authorized.read_text() == "".join(k + "\n" for k in after)


# --- layout ---


# stat -c %U:%G:%a DIR: what the last `install -d -o U -g G -m M DIR` gave DIR (in $STATE, from
# before the run, or in $CALLS, from this one); nothing (exit 1) for a dir never installed
STAT = {"stat": 'd="${@: -1}"\n'
                'got=$(cat "$STATE" "$CALLS" 2>/dev/null | awk -v d="$d" \'$1 == "install" && $2 == "-d"'
                ' && $NF == d { s = $4 ":" $6 ":" $8 } END { print s }\')\n'
                '[ -n "$got" ] || exit 1\necho "$got"\n'}
DIRS = ["", "/releases", "/shared", "/venvs", "/shared/log", "/shared/run"]


@pytest.mark.parametrize("before, group, reinstalled", [
    ({}, False, DIRS),                                                       # a fresh server
    ({d: "deploy" for d in DIRS[:4]} | {d: "web" for d in DIRS[4:]}, True, []),  # all in place
    ({d: "deploy" for d in DIRS}, True, ["/shared/log", "/shared/run"]),    # app user changed
    ({d: "deploy" for d in DIRS[:4]} | {d: "web" for d in DIRS[4:]} | {"/releases": "root"}, True,
     ["/releases"]),
])
def test_layout(tmp_path: Path, fakebin: Path, sh, before: dict[str, str], group: bool,
                reinstalled: list[str]) -> None:
    add_fakes(fakebin, STAT)
    root = tmp_path / "srv" / "shop"
    p = Paths(str(root), "shop")
    assert [d.removeprefix(str(root)) for d in p.dirs] == DIRS
    state = tmp_path / "state"
    state.write_text("".join(f"install -d -o {who} -g www-data -m 2750 {root}{d}\n"
                             for d, who in before.items()))
    res = sh(setup.layout(p, "deploy", "web"),
             env=fake_env(fakebin, STATE=str(state), GETENT_RC="0" if group else "2"))
    assert res.returncode == 0, res.stderr
    done = [c for c in calls(fakebin) if c.startswith("install")]
    owner = {d: "web" if d in DIRS[4:] else "deploy" for d in DIRS}
    assert done == [f"install -d -o {owner[d]} -g www-data -m 2750 {root}{d}" for d in reinstalled]
    assert res.stdout == (f"changed={' '.join(str(root) + d for d in reinstalled)}\n"
                          if reinstalled else "")
    assert ("groupadd --system www-data" in calls(fakebin)) == (not group)
    assert all((root / d.lstrip("/")).is_dir() for d in reinstalled)


# --- service ---


CONTENT = "[Service]\nExecStart=/srv/shop/x 'a b' $HOME `id`\nUser=deploy"  # no final newline


@pytest.mark.parametrize("manager, enable, apply", [
    ("systemd", [], ["systemctl daemon-reload", "systemctl enable -q wsgiship-app"]),
    ("supervisor", ["systemctl is-enabled -q supervisor", "systemctl is-active -q supervisor",
                    "systemctl start supervisor", "supervisorctl pid"], ["supervisorctl reread"]),
])
def test_service_installs_the_config_only_when_it_changed(deploy: Path, fakebin: Path, sh, manager: str,
                                                          enable: list[str], apply: list[str]) -> None:
    p = svc_paths(deploy, manager)  # the service file under the fakes' root
    target = Path(p.service_file)
    env = fake_env(fakebin)

    def run(content: str) -> tuple[str, list[str]]:
        (fakebin / "calls").unlink(missing_ok=True)
        res = sh(setup.service(p, content), env=env)
        assert res.returncode == 0, res.stderr
        return res.stdout, calls_t(fakebin)

    out, done = run(CONTENT)
    assert out == f"changed=installed {target}\n"
    assert target.read_text() == CONTENT
    assert done == [*enable, f"install -m 644 $T {target}", *apply]
    assert run(CONTENT) == ("", enable)
    out, done = run(CONTENT + "\n")
    assert out == f"changed=installed {target}\n" and target.read_text() == CONTENT + "\n"
    assert done[-len(apply):] == apply


# --- sudo_rules, sudoers ---


NGINX_RULES = """\
    /usr/sbin/nginx -t -q, \\
    /usr/bin/systemctl reload nginx, \\
    /usr/bin/systemctl start nginx, \\
    /usr/bin/ln -sfn /srv/shop/current/.wsgiship/nginx.conf /etc/nginx/sites-available/wsgiship-shop, \\
    /usr/bin/ln -sfn ../sites-available/wsgiship-shop /etc/nginx/sites-enabled/wsgiship-shop, \\
"""
SUDO_RULES = {
    "systemd": "# wsgiship: the root commands `fab deploy` of shop runs as deploy; nothing else.\n"
               "Cmnd_Alias WSGISHIP_SHOP = \\\n" + NGINX_RULES +
               "    /usr/bin/systemctl start wsgiship-shop, \\\n"
               "    /usr/bin/systemctl reload wsgiship-shop, \\\n"
               "    /usr/bin/systemctl restart wsgiship-shop\n"
               "deploy ALL=(root) NOPASSWD: WSGISHIP_SHOP\n",
    "supervisor": "# wsgiship: the root commands `fab deploy` of shop runs as deploy; nothing else.\n"
                  "Cmnd_Alias WSGISHIP_SHOP = \\\n" + NGINX_RULES +
                  "    /usr/bin/supervisorctl start wsgiship-shop, \\\n"
                  "    /usr/bin/supervisorctl status wsgiship-shop, \\\n"
                  "    /usr/bin/supervisorctl pid wsgiship-shop, \\\n"
                  "    /usr/bin/supervisorctl signal HUP wsgiship-shop, \\\n"
                  "    /usr/bin/supervisorctl update wsgiship-shop, \\\n"
                  "    /usr/bin/supervisorctl reread, \\\n"
                  "    /usr/bin/supervisorctl tail wsgiship-shop stderr\n"
                  "deploy ALL=(root) NOPASSWD: WSGISHIP_SHOP\n",
    # sudoers' special characters in an argument are escaped; the alias is a valid name
    "odd": "# wsgiship: the root commands `fab deploy` of my-shop runs as web; nothing else.\n"
           "Cmnd_Alias WSGISHIP_MY_SHOP = \\\n"
           "    /usr/sbin/nginx -t -q, \\\n"
           "    /usr/bin/systemctl reload nginx, \\\n"
           "    /usr/bin/systemctl start nginx, \\\n"
           "    /usr/bin/ln -sfn /srv/a\\=1\\,b\\:2\\\\c/current/.wsgiship/nginx.conf"
           " /etc/nginx/sites-available/wsgiship-my-shop, \\\n"
           "    /usr/bin/ln -sfn ../sites-available/wsgiship-my-shop"
           " /etc/nginx/sites-enabled/wsgiship-my-shop, \\\n"
           "    /usr/bin/systemctl start wsgiship-my-shop, \\\n"
           "    /usr/bin/systemctl reload wsgiship-my-shop, \\\n"
           "    /usr/bin/systemctl restart wsgiship-my-shop\n"
           "web ALL=(root) NOPASSWD: WSGISHIP_MY_SHOP\n",
}
RULES_FOR = {"systemd": (Paths("/srv/shop", "shop"), "deploy"),
             "supervisor": (Paths("/srv/shop", "shop", "supervisor"), "deploy"),
             "odd": (Paths("/srv/a=1,b:2\\c", "my-shop"), "web")}


@pytest.mark.parametrize("case", SUDO_RULES)
def test_sudo_rules(case: str) -> None:
    assert setup.sudo_rules(*RULES_FOR[case]) == SUDO_RULES[case]


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
def test_sudoers_installs_the_rules_visudo_accepted(tmp_path: Path, fakebin: Path, sh,
                                                   manager: str) -> None:
    add_fakes(fakebin, VISUDO)
    p = Paths("/srv/shop", "shop", manager)
    target = tmp_path / "sudoers.d" / "wsgiship-shop"
    body = swap(setup.sudoers(p, "deploy"), "/etc/sudoers.d/wsgiship-shop", target, 3)
    rules = setup.sudo_rules(p, "deploy")
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

