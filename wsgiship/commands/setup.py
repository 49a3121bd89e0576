"""Pure builders for `fab setup`: make a fresh Debian/Ubuntu server ready, idempotently.

Every step script runs as root and ends by printing `changed=<what>` when it changed something;
printing nothing means the step was already done.
"""

from __future__ import annotations

from .. import managers
from ..layout import Paths
from ..shell import cmd, q, script
from . import nginx as site

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


def packages(extra: tuple[str, ...] = ()) -> str:
    """apt install what deploys need, only what is missing."""
    wanted = ["python3", "python3-venv", "python3-dev", "build-essential", "sudo", *extra]
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


def deploy_user(user: str, keys: tuple[str, ...]) -> str:
    """The deploy user, in group adm (to read logs), with the given authorized keys."""
    home_ssh = f"$(getent passwd {q(user)} | cut -d: -f6)/.ssh"
    lines = [
        "did=()",
        f"if ! id -u {q(user)} >/dev/null 2>&1; then useradd -m -s /bin/bash {q(user)};"
        " did+=(created); fi",
        f"if ! id -nG {q(user)} | tr ' ' '\\n' | grep -qx adm; then usermod -aG adm {q(user)};"
        " did+=('added to adm'); fi",
        f'S="{home_ssh}"',
        f'install -d -m 700 -o {q(user)} -g "$(id -gn {q(user)})" "$S"',
        'touch "$S/authorized_keys"',
    ]
    for key in keys:
        lines.append(f'if ! grep -qxF {q(key)} "$S/authorized_keys"; then'
                     f' printf "%s\\n" {q(key)} >> "$S/authorized_keys"; did+=("key added"); fi')
    lines += [
        f'chown {q(user)} "$S/authorized_keys"; chmod 600 "$S/authorized_keys"',
        '[ ${#did[@]} -eq 0 ] || echo "changed=${did[*]}"',
    ]
    return script(lines)


def layout(p: Paths, owner: str, app_user: str) -> str:
    """<deploy_to> and its dirs: owner, group www-data, setgid; run and log dirs for the app."""
    lines = ["getent group www-data >/dev/null || groupadd --system www-data", "did=()"]
    for d in p.dirs:
        who = app_user if d in (p.run_dir, p.log_dir) else owner
        lines.append(
            f'if [ "$(stat -c %U:%G:%a {q(d)} 2>/dev/null)" != {q(who + ":www-data:2750")} ];'
            f" then {cmd('install', '-d', '-o', who, '-g', 'www-data', '-m', '2750', d)};"
            f" did+=({q(d)}); fi")
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


def sudo_rules(p: Paths, user: str) -> str:
    """The sudoers rules: exactly the root commands a deploy of this app runs, nothing else."""
    granted = [*site.granted(p), *managers.get(p.manager, p.service).granted()]
    alias = "WSGISHIP_" + p.name.upper().replace("-", "_")
    body = ", \\\n    ".join(c.rule() for c in granted)
    return (f"# wsgiship: the root commands `fab deploy` of {p.name} runs as {user};"
            f" nothing else.\n"
            f"Cmnd_Alias {alias} = \\\n    {body}\n"
            f"{user} ALL=(root) NOPASSWD: {alias}\n")


def sudoers(p: Paths, user: str) -> str:
    """Install the sudo rules after `visudo -c` accepted them."""
    target = f"/etc/sudoers.d/wsgiship-{p.name}"
    return script([
        'T=$(mktemp); trap \'rm -f "$T"\' EXIT',
        f'printf %s {q(sudo_rules(p, user))} > "$T"',
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
