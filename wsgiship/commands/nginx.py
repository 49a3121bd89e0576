"""Pure builders for the app's nginx site: link it from `current`, test and reload nginx."""

from __future__ import annotations

from ..layout import Paths
from ..privilege import RootCommand, root
from ..shell import q, script


def _link_available(p: Paths) -> RootCommand:
    return root("ln", "-sfn", p.config("current", "nginx.conf"), p.nginx_available)


def _link_enabled(p: Paths) -> RootCommand:
    return root("ln", "-sfn", _enabled_target(p), p.nginx_enabled)


def _enabled_target(p: Paths) -> str:
    return f"../sites-available/{p.nginx_site}"


TEST = root("nginx", "-t", "-q")
RELOAD = root("systemctl", "reload", "nginx")
START = root("systemctl", "start", "nginx")


def granted(p: Paths) -> list[RootCommand]:
    """The root commands of these builders a restricted deploy user is allowed (sudoers)."""
    return [TEST, RELOAD, START, _link_available(p), _link_enabled(p)]


def link_site(p: Paths) -> list[str]:
    """Script lines linking the site (sites-available -> current's nginx.conf, enabled ->
    available) when not linked yet; each prints site=installed when it changed a link."""
    site, available, enabled = p.config("current", "nginx.conf"), p.nginx_available, p.nginx_enabled
    return [
        f'if [ "$(readlink {q(available)})" != {q(site)} ]; then {_link_available(p)};'
        " echo site=installed; fi",
        f'if [ "$(readlink {q(enabled)})" != {q(_enabled_target(p))} ]; then {_link_enabled(p)};'
        " echo site=installed; fi",
    ]


def reload_nginx(p: Paths, release: str, previous: str, force: bool = False) -> str:
    """Test the whole nginx config and reload nginx — only when the site changed (privileged).

    nginx reads the site through `current`; when the new release's site is the same as the
    running one (comments aside), nginx has nothing new to read, and skipping the reload spares
    the keep-alive connections a reload would close.
    """
    new = p.config(release, "nginx.conf")
    old = p.config(previous, "nginx.conf") if previous else ""
    return script([
        f"NEW={q(new)}; OLD={q(old)}; FORCE={int(force)}",
        'if [ "$FORCE" = 0 ] && [ -n "$OLD" ] && systemctl is-active -q nginx'
        ' && cmp -s <(grep -v "^ *#" "$NEW") <(grep -v "^ *#" "$OLD" 2>/dev/null); then',
        "  echo nginx=unchanged; exit 0; fi",
        f"{TEST} 2>&1",
        f"if systemctl is-active -q nginx; then {RELOAD}; echo nginx=reloaded;",
        f"else {START}; echo nginx=started; fi",
    ])
