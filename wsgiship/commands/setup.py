"""Pure builders for `fab setup`: make a fresh Debian/Ubuntu server ready, idempotently.

Every step script runs as root and ends by printing `changed=<what>` when it changed something;
printing nothing means the step was already done.
"""

from __future__ import annotations

from .. import managers
from ..layout import Paths
from ..shell import cmd, q, script
from .nginx import granted as nginx_granted
from .services import app_user_argv, not_a_link

UNSUPPORTED_OS = 50
NGINX_FLAVOURS = ("nginx", "nginx-light", "nginx-core", "nginx-full", "nginx-extras")


def check_os() -> str:
    """Refuse an OS this setup does not know (it speaks apt, systemd and Debian's nginx layout)."""
    return script([
        ". /etc/os-release",
        'case " ${ID:-} ${ID_LIKE:-} " in *" debian "*|*" ubuntu "*) ;;',
        f'  *) echo "unsupported OS: ${{PRETTY_NAME:-unknown}} (setup knows Debian and Ubuntu)"'
        f" >&2; exit {UNSUPPORTED_OS} ;; esac",
        "command -v systemctl >/dev/null || { echo 'systemd is required' >&2;"
        f" exit {UNSUPPORTED_OS}; }}",
        'echo "os=${PRETTY_NAME:-$ID}"',
    ])


def packages(extra: tuple[str, ...] = (), compiler: bool = False) -> str:
    """apt install what deploys need, only what is missing; a C compiler and Python's headers
    only for an app that builds from sdists (`compiler`): uWSGI itself comes as a wheel."""
    wanted = ["python3", "python3-venv", "sudo", *extra,
              *(("python3-dev", "build-essential") if compiler else ())]
    installed = "dpkg-query -W -f='${db:Status-Status}' \"$1\" 2>/dev/null | grep -qx installed"
    return script([
        f"is_installed() {{ {installed}; }}",
        "missing=()",
        f"for p in {' '.join(q(w) for w in wanted)}; do is_installed \"$p\" || missing+=(\"$p\"); done",
        "have_nginx=0",
        f"for p in {' '.join(NGINX_FLAVOURS)}; do is_installed \"$p\" && have_nginx=1; done",
        '[ $have_nginx = 1 ] || missing+=(nginx)',
        'if [ ${#missing[@]} -gt 0 ]; then',
        "  export DEBIAN_FRONTEND=noninteractive",
        "  apt-get update -qq >/dev/null",
        '  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null',
        '  echo "changed=installed ${missing[*]}"',
        "fi",
    ])


# The deploy user's own files are written as that user (runuser): root never follows a link
# the user planted in its home.
USER_KEYS = r'''
set -euo pipefail
umask 077
S="$(getent passwd "$(id -un)" | cut -d: -f6)/.ssh"
mkdir -p "$S"; chmod 700 "$S"; touch "$S/authorized_keys"; chmod 600 "$S/authorized_keys"
for key in "$@"; do
  if ! grep -qxF -- "$key" "$S/authorized_keys"; then
    printf '%s\n' "$key" >> "$S/authorized_keys"; echo added; fi
done
'''


def deploy_user(user: str, keys: tuple[str, ...]) -> str:
    """The deploy user, in groups adm and www-data (to read logs, nginx's and the app's), with
    the given authorized keys."""
    lines = [
        "did=()",
        f"if ! id -u {q(user)} >/dev/null 2>&1; then useradd -m -s /bin/bash {q(user)};"
        " did+=(created); fi",
    ]
    for group in ("adm", "www-data"):
        lines.append(f"if ! id -nG {q(user)} | tr ' ' '\\n' | grep -qx {group}; then"
                     f" usermod -aG {group} {q(user)}; did+=('added to {group}'); fi")
    lines += [
        f"added=$({cmd('runuser', '-u', user, '--', 'bash', '-c', USER_KEYS, 'keys', *keys)})",
        '[ -z "$added" ] || did+=("key added")',
        '[ ${#did[@]} -eq 0 ] || echo "changed=${did[*]}"',
    ]
    return script(lines)


def _owned(path: str, who: str, mode: str, kind: str, recurse: bool = False) -> str:
    """`path` as a dir (or file) of `who`, group www-data, `mode`: made when missing, fixed when
    not so; never through a symbolic link."""
    make = (cmd("install", "-d", "-o", who, "-g", "www-data", "-m", mode, path) if kind == "dir"
            else cmd("install", "-m", mode, "-o", who, "-g", "www-data", "/dev/null", path))
    # recurse: an earlier app user's files inside (its log) go along; -h: links never followed
    fix = (f"chown {'-R ' if recurse else ''}-h {q(who + ':www-data')} {q(path)};"
           f" chmod {mode} {q(path)}")
    again = "remove it, then run fab setup again"
    return (f"{not_a_link(path, again)}; if [ ! -e {q(path)} ]; then {make}; did+=({q(path)});"
            f' elif [ "$(stat -c %U:%G:%a {q(path)})" != {q(f"{who}:www-data:{mode}")} ];'
            f" then {fix}; did+=({q(path)}); fi")


def layout(p: Paths, owner: str, app_user: str, shared_dirs: tuple[str, ...] = (),
           shared_files: tuple[str, ...] = ()) -> str:
    """<deploy_to> and its dirs: owner, group www-data, setgid; the app's user with its run and
    log dirs and the shared dirs and files (which it writes). A symbolic link anywhere on the
    way is refused: root never follows a link the deploy user could have planted."""
    lines = ["getent group www-data >/dev/null || groupadd --system www-data", "did=()"]
    if app_user not in (owner, "root"):
        add = cmd(*app_user_argv(app_user))
        lines.append(f"if ! id -u {q(app_user)} >/dev/null 2>&1; then {add};"
                     f" did+=({q('user ' + app_user)}); fi")
    for d in p.dirs:
        apps = d in (p.run_dir, p.log_dir)
        lines.append(_owned(d, app_user if apps else owner, "2750", "dir", recurse=apps))
    items = [*((d, "dir", "2750") for d in shared_dirs), *((f, "file", "600") for f in shared_files)]
    for rel_path, kind, mode in items:
        parts = rel_path.split("/")
        for k in range(1, len(parts)):  # parents of a nested one: the deploy user's
            lines.append(_owned(f"{p.shared}/{'/'.join(parts[:k])}", owner, "2750", "dir"))
        lines.append(_owned(f"{p.shared}/{rel_path}", app_user, mode, kind, recurse=True))
    lines.append('[ ${#did[@]} -eq 0 ] || echo "changed=${did[*]}"')
    return script(lines)


def service(p: Paths, content: str) -> str:
    """Install the service manager's config for the app (started by the first deploy)."""
    m, target = managers.get(p.manager, p.service), p.service_file
    return script([
        m.setup_enable,
        'T=$(mktemp); trap \'rm -f "$T"\' EXIT',
        f'printf %s {q(content)} > "$T"',
        f'if ! cmp -s "$T" {q(target)}; then install -m 644 "$T" {q(target)}; {m.setup_apply};'
        f" echo changed={q('installed ' + target)}; fi",
    ])


def site(p: Paths, content: str, guard: str = "") -> str:
    """Install the app's nginx site as a root-owned file (nginx's master reads it as root),
    enabled; `nginx -t` before it stays (else the old one is put back); nginx reloaded.
    `guard`: script lines that end the step first when the site cannot be installed yet (an
    HTTPS site before its certificate: the tls step installs it)."""
    a, e = p.nginx_available, p.nginx_enabled
    return script([
        guard,
        'T=$(mktemp); B=$(mktemp); trap \'rm -f "$T" "$B"\' EXIT',
        f'printf %s {q(content)} > "$T"',
        f"A={q(a)}; E={q(e)}; did=()",
        'if [ -L "$A" ] || [ ! -f "$A" ] || [ "$(stat -c %U:%a "$A")" != root:644 ]'
        ' || ! cmp -s <(grep -v "^ *#" "$T") <(grep -v "^ *#" "$A"); then',
        # what was there, to put back if nginx -t fails: a file, a link (older wsgiship), none
        '  if [ -L "$A" ]; then was=link; old=$(readlink "$A");'
        ' elif [ -f "$A" ]; then was=file; cp -p "$A" "$B"; else was=none; fi',
        '  install -m 644 -o root -g root "$T" "$A"; did+=("installed $A")',
        "fi",
        f'if [ "$(readlink "$E")" != {q("../sites-available/" + p.nginx_site)} ]; then'
        f' ln -sfn {q("../sites-available/" + p.nginx_site)} "$E"; enabled=1; did+=(enabled); fi',
        '[ ${#did[@]} -gt 0 ] || exit 0',
        'if ! out=$(nginx -t -q 2>&1); then',
        '  case "${was:-}" in file) install -m 644 -o root -g root "$B" "$A" ;;'
        ' link) ln -sfn "$old" "$A" ;; none) rm -f "$A" ;; esac',
        '  if [ "${enabled:-0}" = 1 ] && [ ! -e "$A" ]; then rm -f "$E"; fi',
        '  echo "nginx -t failed with the new site (the old one is kept): $out" >&2; exit 1',
        "fi",
        "if systemctl is-active -q nginx; then systemctl reload nginx; fi",
        'echo "changed=${did[*]}"',
    ])


def sudo_rules(p: Paths, user: str, app_user: str = "") -> str:
    """The sudoers rules: exactly the root commands a deploy of this app runs, nothing else."""
    granted = [*nginx_granted(p), *managers.get(p.manager, p.service).granted()]
    alias = "WSGISHIP_" + p.name.upper().replace("-", "_")
    body = ", \\\n    ".join(c.rule() for c in granted)
    as_app = (f"# ... and anything as the app's user, which runs the code this user ships\n"
              f"{user} ALL=({app_user}) NOPASSWD: ALL\n"
              if app_user and app_user not in (user, "root") else "")
    return (f"# wsgiship: the root commands `fab deploy` of {p.name} runs as {user};"
            f" nothing else.\n"
            f"Cmnd_Alias {alias} = \\\n    {body}\n"
            f"{user} ALL=(root) NOPASSWD: {alias}\n" + as_app)


def sudoers(p: Paths, user: str, app_user: str = "") -> str:
    """Install the sudo rules after `visudo -c` accepted them."""
    target = f"/etc/sudoers.d/wsgiship-{p.name}"
    return script([
        'T=$(mktemp); trap \'rm -f "$T"\' EXIT',
        f'printf %s {q(sudo_rules(p, user, app_user))} > "$T"',
        f'if ! cmp -s "$T" {q(target)}; then',
        '  visudo -c -q -f "$T" >&2',
        f'  install -m 440 -o root -g root "$T" {q(target)}; echo changed={q("installed " + target)}',
        "fi",
    ])


def nginx(remove_default: bool) -> str:
    """nginx enabled and running; its default site removed when asked."""
    lines = ["did=()"]
    if remove_default:
        default = "/etc/nginx/sites-enabled/default"
        lines.append(f"if [ -e {default} ] || [ -L {default} ]; then"  # a dangling link too
                     f" rm -f {default}; did+=('default site removed'); fi")
    lines += [
        "systemctl is-enabled -q nginx 2>/dev/null || { systemctl enable -q nginx; did+=(enabled); }",
        "if ! systemctl is-active -q nginx; then systemctl start nginx; did+=(started);",
        "elif [ ${#did[@]} -gt 0 ]; then nginx -t -q; systemctl reload nginx; fi",
        '[ ${#did[@]} -eq 0 ] || echo "changed=${did[*]}"',
    ]
    return script(lines)
