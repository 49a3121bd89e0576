"""Pure builders for the checks before the switch: nginx and the service config accept the
new release (the app itself is checked by starting it beside the live one: services.start_slot).
None needs root: a restricted deploy user runs them as itself."""

from __future__ import annotations

from ..layout import CONFIG_DIR, Paths
from ..shell import q, script


def nginx_check(p: Paths, release: str) -> str:
    """`nginx -t` of the new release's site inside a throwaway main config, before the switch.

    Runs as the login user: no root needed, so a restricted deploy user can run it too. Log
    paths are pointed at /dev/null for the test (opening /var/log/nginx needs root); a check
    that fails only on permission to read a file (e.g. a TLS key) is left to the root
    `nginx -t` after the switch.
    """
    site = f"{p.release(release)}/{CONFIG_DIR}/nginx.conf"
    main = (
        "include /etc/nginx/modules-enabled/*.conf;\n"
        "events {}\n"
        "http { include /etc/nginx/mime.types; include SITE; }\n"
    )
    return script([
        'T=$(mktemp -d); trap \'rm -rf "$T"\' EXIT',
        f"sed -E 's#^([[:space:]]*(access_log|error_log))[[:space:]]+[^;[:space:]]+#\\1 /dev/null#'"
        f' {q(site)} > "$T/site.conf"',
        f'printf %s {q(main)} | sed "s#SITE#$T/site.conf#" > "$T/nginx.conf"',
        f"SITE={q(site)}",
        'if ! out=$(nginx -t -q -e /dev/stderr -g "pid $T/nginx.pid;" -c "$T/nginx.conf" 2>&1); then',
        # only "Permission denied" complaints: the root nginx -t after the switch will judge
        '  emerg=$(printf "%s\\n" "$out" | grep "\\[emerg\\]" || true)',
        '  if [ -z "$emerg" ] || printf "%s\\n" "$emerg" | grep -qv "Permission denied"; then',
        '    printf "%s\\n" "${out//"$T/site.conf"/"$SITE"}"',
        # an HTTPS site before fab setup put its certificate on the server
        '    case "$emerg" in *"cannot load certificate"*"No such file"*) echo "the site\'s'
        " certificate is not on this server yet: run fab setup (it obtains or uploads it)\"; esac",
        "    exit 1; fi",
        "fi",
    ])


def unit_check(p: Paths, release: str, host_label: str) -> str:
    """Before the switch: if the release's service config differs from the installed one, this
    user must be allowed to install it (a restricted user gets it from `fab setup`)."""
    new = p.config(release, "service")
    return script([
        f"U={q(p.service_file)}; NEW={q(new)}",
        # the start step installs it from the release itself (services.install_config)
        'if [ -n "$SUDO" ] && ! cmp -s "$NEW" "$U"'
        ' && ! sudo -n -l install -m 644 "$NEW" "$U" >/dev/null 2>&1; then',
        f'  echo "the service config differs from $U and {host_label} may not install it: run'
        f' fab setup -H {host_label} (as root) to install it" >&2',
        '  diff -uN "$U" "$NEW" >&2 || true; exit 1',
        "fi",
    ])
