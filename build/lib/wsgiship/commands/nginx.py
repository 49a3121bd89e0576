"""Pure builders for the app's nginx site.

nginx's master runs as root and reads the site, so the site nginx loads is a root-owned file in
/etc/nginx/sites-available (not a link into a release, which the deploy user writes). `fab setup`
installs it; a deploy by root (or a user with full sudo) installs it when the release's rendered
site differs; a restricted deploy user is refused before the switch, as for the service config.
"""

from __future__ import annotations

from ..layout import Paths
from ..privilege import RootCommand, root
from ..shell import q, script

TEST = root("nginx", "-t", "-q")
START = root("systemctl", "start", "nginx")
RELOAD = root("systemctl", "reload", "nginx", granted=False)  # only after installing a site


def granted(p: Paths) -> list[RootCommand]:
    """The root commands of these builders a restricted deploy user is allowed (sudoers)."""
    return [TEST, START]


def enabled_target(p: Paths) -> str:
    return f"../sites-available/{p.nginx_site}"


def site_installed(p: Paths, site: str) -> str:
    """A condition: the installed site is a root-owned file with `site`'s text (comments aside)."""
    available = q(p.nginx_available)
    return (f'{{ [ -f {available} ] && [ ! -L {available} ]'
            f' && [ "$(stat -c %U {available})" = root ]'
            f' && cmp -s <(grep -v "^ *#" {q(site)}) <(grep -v "^ *#" {available}); }}')


def install_site(p: Paths) -> list[str]:
    """Script lines installing `current`'s site as a root-owned file and enabling it, when not
    so yet (privileged); each prints site=installed when it changed something."""
    site, enabled = p.config("current", "nginx.conf"), p.nginx_enabled
    install = root("install", "-m", "644", "-o", "root", "-g", "root", site, p.nginx_available,
                   granted=False)
    link = root("ln", "-sfn", enabled_target(p), enabled, granted=False)
    return [
        f"if ! {site_installed(p, site)}; then {install}; echo site=installed; fi",
        f'if [ "$(readlink {q(enabled)})" != {q(enabled_target(p))} ]; then {link};'
        " echo site=installed; fi",
    ]


def site_check(p: Paths, release: str, host_label: str) -> str:
    """Before the switch: if the release's site differs from the installed one, this user must
    be allowed to install it (a restricted user gets it from `fab setup`)."""
    new, src = p.config(release, "nginx.conf"), p.config("current", "nginx.conf")
    enabled = (f'[ "$(readlink {q(p.nginx_enabled)})" = {q(enabled_target(p))} ]')
    return script([
        f"A={q(p.nginx_available)}; NEW={q(new)}",
        f'if [ -n "$SUDO" ] && ! {{ {site_installed(p, new)} && {enabled}; }}'
        f' && ! sudo -n -l install -m 644 -o root -g root {q(src)} "$A" >/dev/null 2>&1; then',
        f'  echo "the nginx site differs from $A and {host_label} may not install it: run'
        f' fab setup -H {host_label} (as root) to install it" >&2',
        '  diff -uN "$A" "$NEW" >&2 || true; exit 1',
        "fi",
    ])


def reload_nginx(p: Paths) -> str:
    """Test the whole nginx config and reload nginx (privileged) — only when the site was just
    installed (the job's install step said site=installed), or start nginx when it is not
    running. nginx reads the installed file, so an unchanged site needs no reload, which spares
    the keep-alive connections."""
    return script([
        'FORCE=$([ "${WSGISHIP_SITE:-}" = installed ] && echo 1 || echo 0)',
        'if [ "$FORCE" = 0 ] && systemctl is-active -q nginx; then echo nginx=unchanged; exit 0; fi',
        f"{TEST} 2>&1",
        f"if systemctl is-active -q nginx; then {RELOAD}; echo nginx=reloaded;",
        f"else {START}; echo nginx=started; fi",
    ])
