"""wsgiship.commands.setup: the root scripts of `fab setup`.

Each script runs for real as root would run it, with fakes on PATH for every command that would
change this machine (apt-get, useradd, install, systemctl, visudo, ...). A path under /etc that a
script names itself (os-release, the sudoers file, nginx's default site) is swapped for one in
tmp_path after checking that the script names it.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shlex
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


BASE = ["python3", "python3-venv", "sudo"]
COMPILER = ["python3-dev", "build-essential"]  # only for an app that builds (compiler=True)

APT = {
    # dpkg-query -W -f=... PKG: "installed" for the packages in $INSTALLED
    "dpkg-query": 'for p in ${INSTALLED:-}; do [ "$p" = "${@: -1}" ] && { printf installed; exit 0; }; done\n'
                  'echo "dpkg-query: no packages found matching ${@: -1}" >&2; exit 1\n',
    "apt-get": 'echo "apt-get $*" >> "$CALLS"\n'
               'if [ "$1" = install ]; then printf "%s\\n" "$@" > "$CALLS.argv";'
               ' echo "$DEBIAN_FRONTEND" > "$CALLS.frontend"; fi\n',
}


@pytest.mark.parametrize("installed, extra, compiler, missing", [
    ([*BASE, "nginx"], (), False, []),
    ([], (), False, [*BASE, "nginx"]),
    ([], (), True, [*BASE, *COMPILER, "nginx"]),
    ([*BASE, "nginx-light"], (), False, []),                  # any Debian nginx flavour will do
    (["python3", "sudo", "nginx-extras"], (), False, ["python3-venv"]),
    (["python3", "sudo", "nginx-extras"], (), True, ["python3-venv", *COMPILER]),
    ([*BASE, "nginx"], (), True, COMPILER),
    ([*BASE, *COMPILER, "nginx"], (), True, []),
    ([*BASE, "nginx"], ("supervisor",), False, ["supervisor"]),
    ([*BASE, "nginx"], ("supervisor",), True, ["supervisor", *COMPILER]),
    ([*BASE, "nginx", "supervisor"], ("supervisor",), False, []),
    ([*BASE, "nginx"], (HOSTILE_TOUCH,), False, [HOSTILE_TOUCH]),  # one argument, never run
])
def test_packages_installs_only_what_is_missing(fakebin: Path, sh, installed: list[str],
                                                extra: tuple[str, ...], compiler: bool,
                                                missing: list[str]) -> None:
    add_fakes(fakebin, APT)
    res = sh(setup.packages(extra, compiler),
             env=fake_env(fakebin, INSTALLED=" ".join(installed)))
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
          '  -un) echo "${FAKE_LOGIN:-root}" ;;\n'
          '  -nG) cat "$HOMES/$2.groups" ;;\n'
          '  -gn) echo "$2" ;;\n'
          '  *) exit 9 ;;\n'
          'esac\n',
    "useradd": 'echo "useradd $*" >> "$CALLS"\nu="${@: -1}"\n'
               'mkdir -p "$HOMES/$u"; echo "$u" > "$HOMES/$u.groups"\n',
    "usermod": 'echo "usermod $*" >> "$CALLS"\n[ "$1" = -aG ] || exit 9\n'
               'f="$HOMES/${@: -1}.groups"; echo "$(cat "$f") $2" > "$f"\n',
    "getent": 'if [ "$1" = group ]; then exit "${GETENT_RC:-0}"; fi\n'
              '[ "$1" = passwd ] || exit 9\necho "$2:x:1000:1000::$HOMES/$2:/bin/bash"\n',
}
K1 = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIK1 alice@laptop"
K2 = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQK2 bob@desk"
EVIL = f"ssh-ed25519 AAAA {HOSTILE_TOUCH} $(id) `id`"
GROUPS = "added to adm added to www-data"


@pytest.mark.parametrize("groups, before, keys, changed, after", [
    # a new user: created, in adm and www-data, with its keys
    (None, None, (K1, K2), f"created {GROUPS} key added", [K1, K2]),
    ("deploy", None, (), GROUPS, []),
    ("deploy admins www", None, (K1,), f"{GROUPS} key added", [K1]),  # adm, not admins
    ("deploy www-data", None, (), "added to adm", []),
    ("deploy adm", None, (), "added to www-data", []),
    ("deploy adm www-data", [K1], (K1, K2), "key added", [K1, K2]),
    ("deploy adm www-data", [K1, K2], (K2, K1), "", [K1, K2]),
    # a key counts as there only as a whole line
    ("deploy adm www-data", [K1 + " old"], (K1,), "key added", [K1 + " old", K1]),
    ("deploy adm www-data", [], ("-e not an option",), "key added", ["-e not an option"]),
    (None, None, (EVIL,), f"created {GROUPS} key added", [EVIL]),
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
    assert (home / ".ssh").stat().st_mode & 0o777 == 0o700
    assert ("useradd -m -s /bin/bash deploy" in calls(fakebin)) == (groups is None)
    for group in ("adm", "www-data"):
        assert (f"usermod -aG {group} deploy" in calls(fakebin)) == (f"added to {group}" in changed)
    # the keys are written by the user itself
    assert [c.split(" -- ")[0] for c in calls(fakebin) if c.startswith("runuser")] == [
        "runuser -u deploy"]
    assert not PWNED.exists()
    # and again: nothing left to do
    res = sh(setup.deploy_user("deploy", keys), env=env)
    assert (res.returncode, res.stdout) == (0, "")
    assert authorized.read_text() == "".join(k + "\n" for k in after)


def test_deploy_user_touches_the_users_home_only_as_the_user() -> None:
    # root never writes (nor chowns, nor follows a link) in a home the user controls: every
    # file operation there is in USER_KEYS, which runs as the user
    text = setup.deploy_user("deploy", (K1, EVIL))
    found = re.search(r"^added=\$\((.*)\)\n\[ -z", text, re.M | re.S)
    assert found, text
    argv = shlex.split(found[1])
    assert argv == ["runuser", "-u", "deploy", "--", "bash", "-c", setup.USER_KEYS, "keys", K1,
                    EVIL]
    rest = text.replace(found[1], "")
    for word in ("authorized_keys", ".ssh", "chown", "chmod", "install", "mkdir", "touch"):
        assert word not in rest, word


# --- layout ---


# stat -c %U:%G:%a PATH: what the last install (-o U -g G -m M), chown (U:G) or chmod (M) in
# $STATE (from before the run) or $CALLS (this run) gave PATH; nothing (exit 1) if none did
LAYOUT_FAKES = {
    "stat": 'd="${@: -1}"\n'
            'got=$(cat "$STATE" "$CALLS" 2>/dev/null | awk -v d="$d" \'$NF != d { next }\n'
            '  $1 == "install" { for (i = 2; i < NF; i++) { if ($i == "-o") u = $(i + 1);'
            ' if ($i == "-g") g = $(i + 1); if ($i == "-m") m = $(i + 1) } }\n'
            '  $1 == "chown" { split($(NF - 1), ug, ":"); u = ug[1]; g = ug[2] }\n'
            '  $1 == "chmod" { m = $2 }\n'
            '  END { if (u != "") print u ":" g ":" m }\')\n'
            '[ -n "$got" ] || exit 1\necho "$got"\n',
    "chmod": 'echo "chmod $*" >> "$CALLS"\n',
}
DIRS = ["", "/releases", "/shared", "/venvs", "/shared/log", "/shared/run"]
APP_DIRS = DIRS[4:]
# shared items: (path under shared/, kind, owner, mode); parents of nested ones are the owner's
SHARED = [("/shared/media", "dir", "web", "2750"), ("/shared/data", "dir", "deploy", "2750"),
          ("/shared/data/cache", "dir", "web", "2750"), ("/shared/.env", "file", "web", "600"),
          ("/shared/conf", "dir", "deploy", "2750"), ("/shared/conf/app.ini", "file", "web", "600")]
USERADD_WEB = ("useradd --system --gid www-data --no-create-home --home-dir /nonexistent"
               " --shell /usr/sbin/nologin web")


def expected_state() -> dict[str, tuple[str, str, str]]:
    """Every path layout makes: (kind, owner, mode)."""
    dirs = {d: ("dir", "web" if d in APP_DIRS else "deploy", "2750") for d in DIRS}
    return dirs | {path: (kind, who, mode) for path, kind, who, mode in SHARED}


def run_layout(tmp_path: Path, fakebin: Path, sh, before: dict[str, tuple[str, str, str]],
               group: bool = True, web_exists: bool = True,
               links: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    """layout for owner deploy, app user web and the SHARED items, with `before` there (path:
    kind, owner, mode) and `links` planted (symbolic links to tmp_path/victim)."""
    add_fakes(fakebin, ACCOUNTS | LAYOUT_FAKES)
    root = tmp_path / "srv" / "shop"
    homes = tmp_path / "homes"
    (homes / "web").mkdir(parents=True) if web_exists else homes.mkdir()
    state = tmp_path / "state"
    lines = []
    for path, (kind, who, mode) in before.items():
        target = Path(f"{root}{path}")
        target.mkdir(parents=True) if kind == "dir" else target.touch()
        lines.append(f"install -o {who} -g www-data -m {mode} {target}\n")
    state.write_text("".join(lines))
    victim = tmp_path / "victim"
    victim.mkdir(exist_ok=True)
    for link in links:
        Path(f"{root}{link}").parent.mkdir(parents=True, exist_ok=True)
        Path(f"{root}{link}").symlink_to(victim)
    p = Paths(str(root), "shop")
    assert [d.removeprefix(str(root)) for d in p.dirs] == DIRS
    body = setup.layout(p, "deploy", "web", ("media", "data/cache"), (".env", "conf/app.ini"))
    return sh(body, env=fake_env(fakebin, STATE=str(state), HOMES=str(homes),
                                 GETENT_RC="0" if group else "2"))


@pytest.mark.parametrize("group", [True, False])
@pytest.mark.parametrize("web_exists", [True, False])
def test_layout_on_a_fresh_server(tmp_path: Path, fakebin: Path, sh, group: bool,
                                  web_exists: bool) -> None:
    res = run_layout(tmp_path, fakebin, sh, {}, group=group, web_exists=web_exists)
    assert res.returncode == 0, res.stderr
    root = tmp_path / "srv" / "shop"
    made = [f"install -d -o {who} -g www-data -m {mode} {root}{path}" if kind == "dir" else
            f"install -m {mode} -o {who} -g www-data /dev/null {root}{path}"
            for path, (kind, who, mode) in expected_state().items()]
    assert [c for c in calls(fakebin) if c.startswith(("install", "useradd", "chown"))] == (
        [] if web_exists else [USERADD_WEB]) + made
    changed = ([] if web_exists else ["user web"]) + [f"{root}{d}" for d in expected_state()]
    assert res.stdout == f"changed={' '.join(changed)}\n"
    assert ("groupadd --system www-data" in calls(fakebin)) == (not group)
    assert (root / "shared" / "conf" / "app.ini").is_file()
    assert (root / "shared" / "data" / "cache").is_dir()
    # and again: all in place
    (fakebin / "calls").rename(tmp_path / "state")
    res = sh(setup.layout(Paths(str(root), "shop"), "deploy", "web", ("media", "data/cache"),
                          (".env", "conf/app.ini")),
             env=fake_env(fakebin, STATE=str(tmp_path / "state"), HOMES=str(tmp_path / "homes")))
    assert (res.returncode, res.stdout, calls(fakebin)) == (0, "", []), res.stderr


@pytest.mark.parametrize("wrong, fixed", [
    # the app user changed: its dirs, and what an earlier app user left inside, go to the new one
    ({"/shared/log": ("dir", "deploy", "2750"), "/shared/run": ("dir", "deploy", "2750")},
     ["chown -R -h web:www-data {root}/shared/log", "chmod 2750 {root}/shared/log",
      "chown -R -h web:www-data {root}/shared/run", "chmod 2750 {root}/shared/run"]),
    # a dir of the deploy user's with the wrong mode or owner: fixed, not recursively
    ({"/releases": ("dir", "deploy", "755")},
     ["chown -h deploy:www-data {root}/releases", "chmod 2750 {root}/releases"]),
    ({"": ("dir", "root", "2750")}, ["chown -h deploy:www-data {root}", "chmod 2750 {root}"]),
    # shared items the deploy user made before (as unpack does on a first deploy)
    ({"/shared/data": ("dir", "web", "2750"), "/shared/.env": ("file", "deploy", "600")},
     ["chown -h deploy:www-data {root}/shared/data", "chmod 2750 {root}/shared/data",
      "chown -R -h web:www-data {root}/shared/.env", "chmod 600 {root}/shared/.env"]),
])
def test_layout_fixes_what_is_not_so(tmp_path: Path, fakebin: Path, sh,
                                     wrong: dict[str, tuple[str, str, str]],
                                     fixed: list[str]) -> None:
    res = run_layout(tmp_path, fakebin, sh, expected_state() | wrong)
    assert res.returncode == 0, res.stderr
    root = tmp_path / "srv" / "shop"
    assert calls(fakebin) == [c.format(root=root) for c in fixed]
    assert res.stdout == f"changed={' '.join(f'{root}{d}' for d in wrong)}\n"


@pytest.mark.parametrize("link", ["", "/releases", "/shared/log", "/shared/media", "/shared/data",
                                  "/shared/data/cache", "/shared/.env", "/shared/conf/app.ini"])
def test_layout_refuses_a_symbolic_link(tmp_path: Path, fakebin: Path, sh, link: str) -> None:
    # a link the deploy user (or the app) planted is never followed by root: not chowned, not
    # chmodded, nothing installed through it
    before = {d: v for d, v in expected_state().items()
              if d != link and not d.startswith(link + "/")}
    res = run_layout(tmp_path, fakebin, sh, before, links=(link,))
    root = tmp_path / "srv" / "shop"
    assert res.returncode == 1
    assert res.stderr == (f"refusing: {root}{link} is a symbolic link; remove it, then run fab"
                          " setup again\n")
    assert not any(c.endswith(f"{root}{link}") or f"{root}{link}/" in c for c in calls(fakebin))
    assert list((tmp_path / "victim").iterdir()) == []


def test_layout_for_an_app_running_as_the_deploy_user(tmp_path: Path, fakebin: Path,
                                                      sh) -> None:
    text = setup.layout(Paths("/srv/shop", "shop"), "deploy", "deploy", ("media",), (".env",))
    assert "useradd" not in text
    assert "install -d -o deploy -g www-data -m 2750 /srv/shop/shared/log" in text
    assert "install -m 600 -o deploy -g www-data /dev/null /srv/shop/shared/.env" in text
    # root's own app: no user to create either
    assert "useradd" not in setup.layout(Paths("/srv/shop", "shop"), "root", "root")


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
    /usr/bin/systemctl start nginx, \\
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
    # the alias is a valid name
    "odd": "# wsgiship: the root commands `fab deploy` of my-shop runs as web; nothing else.\n"
           "Cmnd_Alias WSGISHIP_MY_SHOP = \\\n" + NGINX_RULES +
           "    /usr/bin/systemctl start wsgiship-my-shop, \\\n"
           "    /usr/bin/systemctl reload wsgiship-my-shop, \\\n"
           "    /usr/bin/systemctl restart wsgiship-my-shop\n"
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

