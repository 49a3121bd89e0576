"""wsgiship.commands.setup: the root scripts of `fab setup` that make the server ready (the OS,
packages, the deploy user, the layout, the service config); its sudo rules, the app's nginx site
and nginx itself are test_setup_site.py's.

Each script runs for real as root would run it, with fakes on PATH for every command that would
change this machine (apt-get, useradd, install, systemctl, ...). A path under /etc that a script
names itself (os-release) is swapped for one in tmp_path after checking that the script names it.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
from fakes import HOSTILE_TOUCH, PWNED, add_fakes, calls, fake_env, svc_paths
from setup_scripts import calls_t, swap

from wsgiship.commands import setup
from wsgiship.layout import Paths

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
DIRS = ["", "/releases", "/shared", "/venvs", "/shared/log", "/shared/run", "/slots"]
APP_DIRS = ["/shared/log", "/shared/run"]  # the app's; the slots' links are the deploy user's
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


@pytest.mark.parametrize("link", ["", "/releases", "/shared/log", "/slots", "/shared/media",
                                  "/shared/data", "/shared/data/cache", "/shared/.env",
                                  "/shared/conf/app.ini"])
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
    # the template unit's two instances (slots) are enabled; none is started (a deploy does)
    ("systemd", [], ["systemctl daemon-reload",
                     "systemctl enable -q wsgiship-app@a.service wsgiship-app@b.service"]),
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
