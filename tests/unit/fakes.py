"""Helpers shared by the unit tests of the command builders (the fixtures built on them are in
conftest.py).

The builders are pure functions returning bash scripts. Besides checking their text, the tests
run the scripts for real on a deploy tree in tmp_path (Paths accepts any deploy_to), with fake
sudo/systemctl/supervisorctl/nginx/... commands on PATH where the real ones would touch the
machine. Privileged scripts get $SUDO first, as Remote.run(priv=True) sends them.
"""

from __future__ import annotations

import os
import shlex
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wsgiship import shell
from wsgiship.layout import Paths
from wsgiship.remote import Result

# --- values that must stay single shell words ---

HOSTILE = "x'; rm -rf / #"
HOSTILE_TOUCH = "x'; touch /tmp/wsgiship-pwned #"
PWNED = Path("/tmp/wsgiship-pwned")  # what HOSTILE_TOUCH leaves if it ever runs
NAME = "20250101T000000Z-abc1234"


# --- running scripts ---


def run_script(body: str, cwd: Path | None = None,
               env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run a generated script the way Remote.run does: `bash -c <quoted body>` via a shell."""
    return subprocess.run(
        shell.bash(body), shell=True, cwd=cwd, capture_output=True, text=True, timeout=60,
        env={**os.environ, **(env or {})},
    )


class LocalRemote:
    """A stand-in for Remote where the ops only open, close and run: `run` runs the script
    here (or answers `result`, or raises `fail`), and notes each call in `events` (`open`,
    `close`, `run <what>`) and its script in `scripts`."""

    def __init__(self, result: Result | None = None, fail: Exception | None = None) -> None:
        self.result, self.fail = result, fail
        self.events: list[str] = []
        self.scripts: list[str] = []

    def open(self) -> None:
        self.events.append("open")

    def close(self) -> None:
        self.events.append("close")

    def run(self, body: str, **kwargs: object) -> Result:
        self.events.append(f"run {kwargs.get('what', '')}".strip())
        self.scripts.append(body)
        if self.fail is not None:
            raise self.fail
        if self.result is not None:
            return self.result
        res = run_script(body)
        return Result(res.returncode, res.stdout, res.stderr)


def run_utc(body: str) -> subprocess.CompletedProcess[str]:
    """run_script in UTC (the log tests' timestamps are UTC)."""
    return run_script(body, env={"TZ": "UTC"})


def line_with(script: str, needle: str) -> str:
    """The one line of the script holding `needle`."""
    lines = [line for line in script.splitlines() if needle in line]
    assert len(lines) == 1, f"expected one line with {needle!r} in:\n{script}"
    return lines[0]


def body_lines(text: str) -> list[str]:
    """The script's own lines, after the common header."""
    return text.removeprefix(shell.HEADER).splitlines()


# --- a deploy tree in tmp_path (the `deploy` fixture makes its dirs) ---


def paths(root: Path) -> Paths:
    """Paths for app `app` deployed to root."""
    return Paths(str(root), "app")


def add_release(root: Path, name: str, *, failed: bool = False, venv_key: str | None = "base",
                configs: bool = True) -> Path:
    """A release dir with its configs and (as after a deploy's venv step) a .venv link."""
    r = root / "releases" / name
    r.mkdir()
    if configs:
        (r / ".wsgiship").mkdir()
        (r / ".wsgiship" / "uwsgi.ini").write_text("[uwsgi]\n")
    if failed:
        (r / "FAILED").write_text("health check failed\n")
    if venv_key:
        (root / "venvs" / venv_key).mkdir(exist_ok=True)
        (r / ".venv").symlink_to(f"../../venvs/{venv_key}")
    return r


def rel(i: int) -> str:
    """The i-th release name: timestamped, so names sort by age."""
    return f"20250101T0000{i:02d}Z-{i:07x}"


def survivors(root: Path) -> list[int]:
    """The numbers (see rel) of the releases left, oldest first."""
    names = sorted(p.name for p in (root / "releases").iterdir())
    return [int(n.rsplit("-", 1)[1], 16) for n in names]


def venvs(root: Path) -> set[str]:
    """The keys of the venvs left."""
    return {p.name for p in (root / "venvs").iterdir()}


# --- fake commands ---
#
# The fakes stand in for the commands that would touch the machine. Each logs its call to
# $CALLS. With FAKE_LOGIN set to another user than root, the ones that need root refuse to run
# unless the fake `sudo` ran them (it logs `sudo <argv>` first), so a privileged script only
# passes when every root command carries $SUDO. `sudo -u USER --` and `runuser -u USER --` run
# a command as USER (FAKE_LOGIN=USER): root's fakes refuse it then too, so acting as the app
# ($AS_APP) is never acting as root. Files under /etc go to $FAKE_ROOT/etc instead; accounts
# (id -u, useradd) are files in $USERS, never the machine's.

NEED_ROOT = r'''need_root() {
  if [ "${FAKE_LOGIN:-root}" != root ] && [ "${FAKE_UID:-}" != 0 ]; then
    echo "$1: permission denied (run as ${FAKE_LOGIN}, not root)" >&2; exit 77; fi
}
'''


# `log NAME ARGS...`: one line in $CALLS (a newline inside an argument logged as a
# backslash and an n)
LOG = r'''log() { local a="$*"; printf '%s\n' "${a//$'\n'/\\n}" >> "$CALLS"; }
'''


def fake_scripts(real_ln: str, real_readlink: str, real_stat: str,
                 real_id: str) -> dict[str, str]:
    """The fakes the `fakebin` fixture installs: name -> bash body (after NEED_ROOT)."""
    return {**command_fakes(), **file_fakes(real_ln, real_readlink, real_stat, real_id)}


def command_fakes() -> dict[str, str]:
    """sudo, runuser, the service managers and nginx."""
    return {
        # sudo [-n] [-l] [-u USER --] CMD: as root, or as USER (then root's fakes refuse)
        "sudo": LOG + 'log sudo "$@"\n'
                '[ "$1" = -n ] && shift\n'
                'if [ "$1" = -l ]; then exit "${SUDO_LIST_RC:-1}"; fi\n'
                'as=root; if [ "$1" = -u ]; then as="$2"; shift 2; fi\n'
                '[ "$1" = -- ] && shift\n'
                'if [ -n "${SUDO_REFUSE:-}" ] && [ "$1" = "$SUDO_REFUSE" ]; then\n'
                '  echo "sudo: a password is required" >&2; exit 1; fi\n'
                'if [ "$as" = root ]; then FAKE_UID=0 exec "$@"; fi\n'
                'FAKE_LOGIN="$as" FAKE_UID="" exec "$@"\n',
        # runuser -u USER -- CMD (root only): CMD as USER
        "runuser": LOG + 'log runuser "$@"\n'
                   'need_root runuser\n'
                   '[ "$1" = -u ] && [ "$3" = -- ] || exit 9\n'
                   'FAKE_LOGIN="$2" FAKE_UID="" exec "${@:4}"\n',
        "systemctl": 'echo "systemctl $*" >> "$CALLS"\n'
                     'case "$1" in\n'
                     '  is-active) if [ "$3" = nginx ]; then [ "${NGINX_ACTIVE:-1}" = 1 ];'
                     ' else [ "${ACTIVE:-0}" = 1 ]; fi ;;\n'
                     '  show) echo "${MAINPID:-0}" ;;\n'
                     '  is-enabled) [ "${ENABLED:-1}" = 1 ] ;;\n'
                     '  *) need_root systemctl\n'
                     '     if [ "$1" = start ]; then [ "${START_OK:-1}" = 1 ]; fi ;;\n'
                     'esac\n',
        "journalctl": 'echo "journalctl $*" >> "$CALLS"\necho "journal: uwsgi exited"\n',
        "supervisorctl": 'echo "supervisorctl $*" >> "$CALLS"\n'
                         'need_root supervisorctl\n'
                         'case "$1" in\n'
                         '  status) if [ "${ACTIVE:-0}" = 1 ] || [ -e "$CALLS.started" ]; then\n'
                         '      echo "$2   RUNNING   pid ${MAINPID:-0}, uptime 0:00:05"\n'
                         '    else echo "$2   STOPPED   Not started"; exit 3; fi ;;\n'
                         '  start) if [ "${START_OK:-1}" = 1 ]; then touch "$CALLS.started";'
                         ' echo "$2: started"\n'
                         '    else echo "$2: ERROR (spawn error)"; exit 7; fi ;;\n'
                         '  pid) echo "${MAINPID:-0}" ;;\n'
                         '  tail) echo "supervisor: uwsgi exited" ;;\n'
                         'esac\n',
        # `nginx -t -c <file>` (the check before the switch) needs no root; the whole config does
        "nginx": 'echo "nginx $*" >> "$CALLS"\n'
                 'conf=""\n'
                 'for ((i = 1; i <= $#; i++)); do\n'
                 '  if [ "${!i}" = -c ]; then j=$((i + 1)); conf="${!j}"; fi; done\n'
                 'if [ -z "$conf" ]; then need_root nginx; else\n'
                 '  printf "%s\\n" "$@" > "$CALLS.argv"; dirname "$conf" > "$CALLS.dir"\n'
                 '  rm -rf "$CALLS.copy"; cp -r "$(dirname "$conf")" "$CALLS.copy"; fi\n'
                 'if [ -n "${NGINX_OUT:-}" ]; then\n'
                 '  printf "%s\\n" "$NGINX_OUT" | sed "s#SITE#$(dirname "${conf:-/x}")/site.conf#g"'
                 ' >&2; fi\n'
                 'exit "${NGINX_RC:-0}"\n',
    }


def file_fakes(real_ln: str, real_readlink: str, real_stat: str,
               real_id: str) -> dict[str, str]:
    """The root-only file commands, stat as root sees it, and the accounts (never the
    machine's)."""
    return {
        "install": 'echo "install $*" >> "$CALLS"\n'
                   'need_root install\n'
                   'case "${@: -1}" in /etc/*) echo "fake install: not into ${@: -1}" >&2;'
                   ' exit 9 ;; esac\n'
                   'o=""; m=""; prev=""\n'
                   'for a in "$@"; do case "$prev" in -o) o="$a" ;; -m) m="$a" ;; esac; prev="$a"; done\n'
                   'if [ -n "${OWNERS:-}" ] && [ -n "$o" ]; then echo "$o ${@: -1}" >> "$OWNERS"; fi\n'
                   'if [ "$1" = -d ]; then mkdir -p "${@: -1}"\n'
                   # as install does: the target replaced (a link there is not followed)
                   'else mkdir -p "$(dirname "${@: -1}")"; rm -f "${@: -1}"; cp "${@: -2:1}" "${@: -1}"; fi\n'
                   'if [ -n "$m" ]; then chmod "$m" "${@: -1}"; fi\n',
        "ln": 'echo "ln $*" >> "$CALLS"\n'
              'need_root ln\n'
              'case "${@: -1}" in "$FAKE_ROOT"/*) dst="${@: -1}" ;; /etc/*) dst="$FAKE_ROOT${@: -1}" ;;'
              ' *) echo "fake ln: unexpected $*" >&2; exit 9 ;; esac\n'
              'mkdir -p "$(dirname "$dst")"\n'
              f'exec {real_ln} "${{@:1:$#-1}}" "$dst"\n',
        # /proc/<pid>/cwd of a worker running as $WORKERS_USER: that user's or root's only
        "readlink": 'echo "readlink $*" >> "$CALLS"\n'
                    'args=()\n'
                    'for a in "$@"; do case "$a" in\n'
                    '  /etc/*) args+=("$FAKE_ROOT$a") ;;\n'
                    '  /proc/*/cwd) if [ -n "${WORKERS_USER:-}" ] && [ "${FAKE_UID:-}" != 0 ]'
                    ' && [ "${FAKE_LOGIN:-root}" != root ]'
                    ' && [ "${FAKE_LOGIN:-root}" != "$WORKERS_USER" ]; then\n'
                    '      echo "readlink: $a: Permission denied" >&2; exit 1; fi\n'
                    '    args+=("$a") ;;\n'
                    '  *) args+=("$a") ;;\n'
                    'esac; done\n'
                    f'exec {real_readlink} "${{args[@]}}"\n',
        # chown [-R] [-h] USER:GROUP PATH: the new owner noted in $OWNERS (see stat)
        "chown": 'echo "chown $*" >> "$CALLS"\nneed_root chown\n'
                 'if [ -n "${OWNERS:-}" ]; then echo "${@: -2:1} ${@: -1}" | sed "s/:[^ ]*//"'
                 ' >> "$OWNERS"; fi\n',
        # stat as root sees it: %U is the owner $OWNERS last noted for the path (lines
        # `USER PATH`), else root; the rest is the real stat's
        "stat": 'f="${@: -1}"; owner=root\n'
                'if [ -n "${OWNERS:-}" ] && [ -f "$OWNERS" ]; then\n'
                '  while read -r u p; do [ "$p" = "$f" ] && owner="$u"; done < "$OWNERS"; fi\n'
                'args=(); for a in "$@"; do args+=("${a//%U/$owner}"); done\n'
                f'exec {real_stat} "${{args[@]}}"\n',
        "groupadd": 'echo "groupadd $*" >> "$CALLS"\nneed_root groupadd\n',
        # accounts: never the machine's. `id -u USER` finds the users in $USERS (files);
        # useradd adds one there
        "id": 'if [ "$#" = 2 ] && [ "$1" = -u ]; then\n'
              '  if [ -n "${USERS:-}" ] && [ -e "$USERS/$2" ]; then echo 1000; exit 0; fi\n'
              '  echo "id: \'$2\': no such user" >&2; exit 1; fi\n'
              f'exec {real_id} "$@"\n',
        "useradd": 'echo "useradd $*" >> "$CALLS"\nneed_root useradd\n'
                   'if [ -n "${USERS:-}" ]; then touch "$USERS/${@: -1}"; fi\n',
        "usermod": 'echo "usermod $*" >> "$CALLS"\nneed_root usermod\n',
        "getent": 'echo "getent $*" >> "$CALLS"\nexit "${GETENT_RC:-0}"\n',
    }


def add_fakes(bin_dir: Path, scripts: dict[str, str]) -> None:
    """Write fake commands (bash script bodies, need_root() defined) into bin_dir."""
    for name, body in scripts.items():
        (bin_dir / name).write_text("#!/bin/bash\n" + NEED_ROOT + body)
        (bin_dir / name).chmod(0o755)


def fake_env(fakebin: Path, **extra: str) -> dict[str, str]:
    """The environment for a script run with the fakes first on PATH, as root."""
    return {"PATH": f"{fakebin}:{os.environ['PATH']}", "CALLS": str(fakebin / "calls"),
            "FAKE_ROOT": str(fakebin.parent / "root"), **extra}


def as_deploy(fakebin: Path, **extra: str) -> dict[str, str]:
    """fake_env for a login user that is not root (root commands need the fake sudo)."""
    return fake_env(fakebin, FAKE_LOGIN="deploy", **extra)


def calls(fakebin: Path) -> list[str]:
    """The calls the fakes logged, in order."""
    path = fakebin / "calls"
    return path.read_text().splitlines() if path.exists() else []


def sudoed(fakebin: Path) -> list[str]:
    """The commands the script ran as root through sudo, in order."""
    return [c.removeprefix("sudo -n ") for c in calls(fakebin)
            if c.startswith("sudo -n ") and not c.startswith(("sudo -n -u ", "sudo -n -l "))]


def as_app_calls(fakebin: Path, user: str = "web") -> list[str]:
    """The commands the script ran as `user` through `sudo -n -u` or `runuser -u`, in order."""
    prefixes = (f"sudo -n -u {user} -- ", f"runuser -u {user} -- ")
    return [c.removeprefix(next(p for p in prefixes if c.startswith(p))) for c in calls(fakebin)
            if c.startswith(prefixes)]


def priv(body: str, sudo: str = "") -> str:
    """A privileged script as Remote.run(priv=True) sends it: $SUDO set first."""
    return f"SUDO={shell.q(sudo)}\n" + body


def as_app(body: str, prefix: str = "") -> str:
    """A script as Remote.run(app_user=...) sends it: $AS_APP set first (`sudo -n -u APP --`
    for a deploy user, `runuser -u APP --` as root, empty when the login is the app's user)."""
    return f"AS_APP={shell.q(prefix)}\n" + body


@dataclass(frozen=True)
class FakeRootPaths(Paths):
    """Paths whose service config file and installed nginx site live under a fake root: a test
    must not write /etc. (sites-enabled stays /etc's: the fake ln and readlink map it there.)"""

    root: str = ""

    @property
    def service_file(self) -> str:
        return self.root + super().service_file

    @property
    def nginx_available(self) -> str:
        return self.root + super().nginx_available


def svc_paths(root: Path, manager: str = "systemd") -> FakeRootPaths:
    """Paths for the services scripts; the fake root is the one fake_env names."""
    return FakeRootPaths(str(root), "app", manager, root=str(root.parents[1] / "root"))


MANAGERS = ["systemd", "supervisor"]  # the service managers the tests run


# --- releases with an nginx site or a service config ---


def site(root: Path, name: str, text: str) -> None:
    """A release whose nginx site is `text`."""
    r = add_release(root, name)
    (r / ".wsgiship" / "nginx.conf").write_text(text)


SITE = "server {\n    listen 80;\n}\n"


def current_release(deploy: Path, manager: str) -> Path:
    """Release 1 as `current`, with a service config and a site."""
    r = add_release(deploy, rel(1))
    (r / ".wsgiship" / "service").write_text(f"{manager} config\n")
    (r / ".wsgiship" / "nginx.conf").write_text(SITE)
    (deploy / "current").symlink_to(f"releases/{rel(1)}")
    return r


def local_runs(r: Any, monkeypatch: Any, sh: Callable[..., Any]) -> list[str]:
    """Make `r` run its scripts here; the list says how each went (run, or sudo)."""
    seen: list[str] = []

    def runner(how: str) -> Callable[..., object]:
        def go(command: str, **_: object) -> object:
            seen.append(how)
            res = sh(shlex.split(command)[2])
            return type("R", (), {"exited": res.returncode, "stdout": res.stdout,
                                  "stderr": res.stderr})()
        return go

    monkeypatch.setattr(r.conn, "run", runner("run"))
    monkeypatch.setattr(r.conn, "sudo", runner("sudo"))
    return seen

