"""Pure builders for `fab setup`'s HTTPS: the `tls` step (as root) and the condition the `site`
step waits on.

ACME (tls.email): Debian's certbot, `certonly --webroot` into /var/lib/wsgiship/acme/<app>
(root's, 755), as certificate `wsgiship-<app>` (/etc/letsencrypt/live/wsgiship-<app>/); its
renewal config keeps the webroot and a deploy hook that reloads nginx, and certbot.timer renews
it. Until the certificate exists (or while its names differ from server_name) the full site
cannot pass `nginx -t`, so the step first serves the site over HTTP only (the app as before, plus
the challenges, no redirect), runs certbot, then installs the full site; when certbot fails the
site is put back as it was and the step exits CERTBOT_FAILED with certbot's output.

Own certificate: the chain and key arrive on stdin (JSON), never on a command line, and are
written by root into /etc/wsgiship/tls/<app>/ (dir 755, fullchain.pem 644, privkey.pem 600,
all root's): neither the deploy user nor the app's user can read the key.
"""

from __future__ import annotations

from .. import tls as tlsconf
from ..layout import Paths
from ..shell import Raw, cmd, q, script
from .services import not_a_link

CERTBOT_FAILED = 70
NGINX_REFUSED = 71
WAITING = "waits for the certificate (the tls step installs the site)"

# the DNS names of a certificate file, lower case, sorted, space-separated ("" if unreadable)
NAMES_OF = ("names_of() { openssl x509 -in \"$1\" -noout -ext subjectAltName 2>/dev/null"
            " | tail -n +2 | tr ',' '\\n' | sed -n 's/^ *DNS://p' | tr 'A-Z' 'a-z'"
            " | LC_ALL=C sort -u | paste -sd ' ' -; }")


def wanted(server_name: str) -> str:
    """server_name's names as NAMES_OF prints a certificate's: sorted, space-separated."""
    return " ".join(sorted(tlsconf.names(server_name)))


def certificate_ready(app_name: str, kind: str, server_name: str) -> str:
    """A shell condition: the app's certificate is on the server (an ACME one for exactly the
    names in server_name), so the full site passes `nginx -t`. Needs NAMES_OF defined."""
    chain, key = tlsconf.files(app_name, kind)
    present = f"[ -f {q(chain)} ] && [ -f {q(key)} ]"
    if kind != "acme":
        return present
    leaf = chain.replace("fullchain.pem", "cert.pem")
    return f'{present} && [ "$(names_of {q(leaf)})" = {q(wanted(server_name))} ]'


def site_guard(app_name: str, kind: str, server_name: str) -> str:
    """For the `site` step: end it (a note, no change) while the certificate is not there; the
    tls step installs the site once it is."""
    ready = certificate_ready(app_name, kind, server_name)
    return f"{NAMES_OF}\nif ! {{ {ready}; }}; then echo {q('note=' + WAITING)}; exit 0; fi"


def root_dir(path: str) -> str:
    """`path` as a dir of root's, mode 755 (made, or its owner and mode fixed); a link there is
    refused."""
    fix = f"chown -h root:root {q(path)}; chmod 755 {q(path)}"
    return (f"{not_a_link(path, 'remove it, then run fab setup again')}; if [ ! -d {q(path)} ];"
            f" then install -d -o root -g root -m 755 {q(path)}; did+=({q(path)});"
            f' elif [ "$(stat -c %U:%G:%a {q(path)})" != root:root:755 ]; then {fix};'
            f" did+=({q(path)}); fi")


def site_functions(p: Paths, full: str, restore_extra: str = "") -> list[str]:
    """Script lines: the site as it was (put back by `restore`), `put_site FILE` (installs and
    enables it unless so already; sets site=1), `serve` (nginx -t, then reload or start; a
    refusal restores and exits NGINX_REFUSED). $B is a scratch dir; $B/full the full site."""
    a, e, target = p.nginx_available, p.nginx_enabled, f"../sites-available/{p.nginx_site}"
    return [
        f"A={q(a)}; E={q(e)}; site=0; booted=0",
        'B=$(mktemp -d); trap \'rm -rf "$B"\' EXIT',
        f'printf %s {q(full)} > "$B/full"',
        'if [ -L "$A" ]; then was=link; old=$(readlink "$A"); elif [ -f "$A" ]; then was=file;'
        ' cp -p "$A" "$B/site"; else was=none; fi',
        'enabled_was=$(readlink "$E" || true)',
        "put_site() {",
        '  if [ -L "$A" ] || [ ! -f "$A" ] || [ "$(stat -c %U:%a "$A")" != root:644 ]'
        ' || ! cmp -s <(grep -v "^ *#" "$1") <(grep -v "^ *#" "$A"); then',
        '    install -m 644 -o root -g root "$1" "$A"; site=1; fi',
        f'  if [ "$(readlink "$E")" != {q(target)} ]; then ln -sfn {q(target)} "$E"; site=1; fi',
        "}",
        "restore() {",
        '  case "$was" in file) install -m 644 -o root -g root "$B/site" "$A" ;;'
        ' link) ln -sfn "$old" "$A" ;; none) rm -f "$A" ;; esac',
        '  if [ -z "$enabled_was" ]; then rm -f "$E"; else ln -sfn "$enabled_was" "$E"; fi',
        f"  {restore_extra or ':'}",
        "}",
        "reload() { if systemctl is-active -q nginx; then systemctl reload nginx;"
        " else systemctl start nginx; fi; }",
        "serve() {",
        '  if ! out=$(nginx -t -q 2>&1); then restore; if [ $booted = 1 ]; then reload; fi',
        '    echo "nginx -t failed with the HTTPS site (the site is as it was): $out" >&2;'
        f" exit {NGINX_REFUSED}; fi",
        "  reload",
        "}",
    ]


def certbot_argv(app_name: str, email: str, server: str, names: tuple[str, ...],
                 renew: str) -> list[str]:
    """certbot's certonly for the app: HTTP-01 through its webroot, never interactive; `renew`:
    --keep-until-expiring (a certificate valid for 30 more days stays) or --force-renewal."""
    domains = [arg for name in names for arg in ("-d", name)]
    return ["certbot", "certonly", "--non-interactive", "--agree-tos", "--email", email,
            "--no-eff-email", "--server", server, "--webroot", "-w", tlsconf.webroot(app_name),
            "--cert-name", tlsconf.cert_name(app_name), *domains, renew,
            "--deploy-hook", tlsconf.RELOAD_HOOK]


def _timer() -> list[str]:
    """certbot.timer (Debian's certbot package) enabled and running: renewals need no one."""
    return [
        "if ! systemctl is-enabled -q certbot.timer 2>/dev/null; then"
        " systemctl enable -q certbot.timer; did+=('renewal timer enabled'); fi",
        "if ! systemctl is-active -q certbot.timer; then systemctl start certbot.timer;"
        " did+=('renewal timer started'); fi",
    ]


def acme(p: Paths, server_name: str, email: str, server: str, full: str, http_only: str) -> str:
    """The tls step for an ACME certificate (see the module doc). `full`: the site with HTTPS;
    `http_only`: the site before the certificate exists. Prints names=, until=, action=
    (obtained, renewed or kept), site=1 when it installed the site, did= (dirs, timer)."""
    name, names = p.name, tlsconf.names(server_name)
    live = f"{tlsconf.ACME_LIVE}/{tlsconf.cert_name(name)}"
    conf = f"{tlsconf.ACME_RENEWAL}/{tlsconf.cert_name(name)}.conf"
    certbot = cmd(*certbot_argv(name, email, server, names, Raw('"$renew"')))
    days = tlsconf.RENEW_BEFORE_DAYS * 24 * 3600
    return script([
        *_modules(), "did=()", NAMES_OF,
        root_dir("/var/lib/wsgiship"), root_dir(tlsconf.WEBROOT_DIR), root_dir(tlsconf.webroot(name)),
        *_timer(), *site_functions(p, full),
        f"L={q(live)}; action=kept",
        f"match=0; if {certificate_ready(name, 'acme', server_name)}; then match=1; fi",
        f"same=0; if grep -qxF {q('server = ' + server)} {q(conf)} 2>/dev/null; then same=1; fi",
        f'if [ $match = 0 ] || [ $same = 0 ] || ! openssl x509 -checkend {days} -noout'
        ' -in "$L/cert.pem" >/dev/null 2>&1; then',
        # a certificate missing or for other names: the site over HTTP only first
        f'  if [ $match = 0 ]; then printf %s {q(http_only)} > "$B/http";'
        ' put_site "$B/http"; serve; booted=1; sleep 1; fi',
        '  renew=--keep-until-expiring; [ $match = 1 ] && [ $same = 0 ] && renew=--force-renewal',
        '  [ -f "$L/cert.pem" ] && action=renewed || action=obtained',
        f'  if ! {certbot} > "$B/certbot.log" 2>&1; then',
        '    if [ $booted = 1 ]; then restore; reload; fi',
        f'    cat "$B/certbot.log"; exit {CERTBOT_FAILED}',
        "  fi",
        "fi",
        'put_site "$B/full"; if [ $site = 1 ]; then serve; fi',
        'echo "names=$(names_of "$L/cert.pem")"',
        'echo "until=$(date -u -d "$(openssl x509 -enddate -noout -in "$L/cert.pem'
        '" | cut -d= -f2)" +%F)"',
        'echo "action=$action"; echo "site=$site"',
        '[ ${#did[@]} -eq 0 ] || echo "did=${did[*]}"',
    ])


# Run by root's python: the chain and key from stdin (JSON) into DIR, each written only when it
# differs, created with its mode (the key is never readable by another user, not for a moment)
# and renamed over the old one. Prints cert=changed or cert=same; never a byte of either.
_WRITE = r'''
import base64, json, os, stat, sys
d = sys.argv[1]
data, changed = json.load(sys.stdin), []
for name, mode in (("fullchain.pem", 0o644), ("privkey.pem", 0o600)):
    new, path = base64.b64decode(data[name]), os.path.join(d, name)
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        st = None
    if st is not None and stat.S_ISREG(st.st_mode) and (st.st_uid, st.st_gid) == (0, 0) \
            and stat.S_IMODE(st.st_mode) == mode:
        with open(path, "rb") as f:
            if f.read() == new:
                continue
    tmp = path + ".new"
    if os.path.lexists(tmp):
        os.unlink(tmp)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), mode)
    os.fchown(fd, 0, 0)
    os.fchmod(fd, mode)
    view = memoryview(new)
    while view:
        view = view[os.write(fd, view):]
    os.fsync(fd)
    os.close(fd)
    os.replace(tmp, path)
    changed.append(name)
print("cert=" + ("changed" if changed else "same"))
'''


def own(p: Paths, full: str) -> str:
    """The tls step for your own certificate: stdin holds {"fullchain.pem": ..., "privkey.pem":
    ...} (base64); writes them (see _WRITE), installs the full site, and reloads nginx when either
    changed (a refusal of nginx -t puts the old files and site back). Prints cert=, site=,
    did=."""
    d = tlsconf.own_dir(p.name)
    keep = (f'for f in fullchain.pem privkey.pem; do rm -f {q(d)}/"$f";'
            f' if [ -e "$B/old-$f" ]; then cp -p "$B/old-$f" {q(d)}/"$f"; fi; done')
    return script([
        *_modules(), "did=()",
        root_dir("/etc/wsgiship"), root_dir(tlsconf.OWN_DIR), root_dir(d),
        *site_functions(p, full, restore_extra=keep),
        f'for f in fullchain.pem privkey.pem; do if [ -f {q(d)}/"$f" ]; then'
        f' cp -p {q(d)}/"$f" "$B/old-$f"; fi; done',
        f"cert=$(python3 -I -c {q(_WRITE)} {q(d)})",
        'put_site "$B/full"',
        'if [ $site = 1 ] || [ "$cert" = cert=changed ]; then serve; fi',
        'echo "$cert"; echo "site=$site"',
        '[ ${#did[@]} -eq 0 ] || echo "did=${did[*]}"',
    ])


def _modules() -> list[str]:
    """Refuse an nginx without the ssl and http2 modules the HTTPS site needs (Debian's and
    Ubuntu's nginx packages, nginx-light included, have both)."""
    return [
        'v=$(nginx -V 2>&1)',
        'for m in http_ssl_module http_v2_module; do',
        '  case "$v" in *"--with-$m"*) ;; *) echo "this nginx lacks $m, which the HTTPS site'
        " needs: install Debian's nginx package (or override nginx.conf.j2 with app.templates)\""
        " >&2; exit 1 ;; esac",
        "done",
    ]
