"""Pure builders for validation, uWSGI (systemd) and nginx."""

from __future__ import annotations

from ..render import CONFIG_DIR, Paths
from ..shell import cmd, q, script

IMPORT_CHECK = (
    f"import runpy; ns = runpy.run_path('{CONFIG_DIR}/wsgi.py'); "
    "assert callable(ns.get('application')), 'wsgi.py defines no callable application'"
)


def import_check(p: Paths, release: str) -> str:
    """Import the app in the new release with its venv, as uWSGI will (before switching)."""
    return script([
        f"cd {q(p.release(release))}",
        f"timeout 300 ./.venv/bin/python -c {q(IMPORT_CHECK)}",
    ])


def nginx_check(p: Paths, release: str) -> str:
    """`nginx -t` on the new release's site inside a throwaway main config (run privileged)."""
    site = f"{p.release(release)}/{CONFIG_DIR}/nginx.conf"
    main = (
        "include /etc/nginx/modules-enabled/*.conf;\n"
        "events {}\n"
        f"http {{ include /etc/nginx/mime.types; include {site}; }}\n"
    )
    return script([
        'T=$(mktemp -d); trap \'rm -rf "$T"\' EXIT',
        f'printf %s {q(main)} > "$T/nginx.conf"',
        'nginx -t -q -c "$T/nginx.conf" 2>&1',
    ])


def install(p: Paths, login_user: str, app_user: str,
            shared: tuple[str, ...] = ()) -> str:
    """Install the unit from `current` when it differs, link the nginx site (run privileged)."""
    lines = [
        f"U={q(p.unit_file)}; NEW={q(p.current + '/' + CONFIG_DIR + '/service')}",
        'if ! cmp -s "$NEW" "$U"; then install -m 644 "$NEW" "$U"; systemctl daemon-reload;'
        f" systemctl enable -q {q(p.service)}; echo unit=installed; fi",
        f"SITE={q(p.current + '/' + CONFIG_DIR + '/nginx.conf')}",
        f"AV={q('/etc/nginx/sites-available/' + p.nginx_site)}",
        f"EN={q('/etc/nginx/sites-enabled/' + p.nginx_site)}",
        'if [ "$(readlink "$AV")" != "$SITE" ] || [ "$(readlink "$EN")" != "../sites-available/'
        + p.nginx_site + '" ]; then',
        '  ln -sfn "$SITE" "$AV"; ln -sfn ' + q("../sites-available/" + p.nginx_site)
        + ' "$EN"; echo site=installed; fi',
    ]
    if app_user != login_user:
        owned = [f"{p.shared}/log", *(f"{p.shared}/{s}" for s in shared)]
        lines.append(cmd("chown", f"{app_user}:www-data", *owned))
    return script(lines)


def reload_uwsgi(p: Paths, release: str, previous: str, processes: int,
                 wait: int = 120) -> str:
    """Make every uWSGI worker serve `release` (run privileged).

    Not running: start. Same venv and same uwsgi.ini (comments aside) as the running release and
    an unchanged unit: chain reload (fifo `c`, one worker at a time, no stall). Otherwise:
    graceful reload (re-exec the master, re-read the ini). Either way, wait until every worker
    runs in the new release's directory (workers chdir there after fork) — `systemctl reload`
    returns before that.
    """
    svc, new, old = q(p.service), q(p.release(release)), q(p.release(previous) if previous else "")
    cfg = CONFIG_DIR
    return script([
        f"NEW={new}; OLD={old}",
        f"if ! systemctl is-active -q {svc}; then",
        f"  if systemctl start {svc}; then echo uwsgi=started; else",
        f"    journalctl -u {svc} -n 20 --no-pager >&2 || true",
        f"    tail -n 20 {q(p.app_log)} >&2 || true; exit 1; fi",
        "  mode=started",
        "else",
        "  mode=graceful",
        '  if [ -n "$OLD" ] && [ "${UNIT_CHANGED:-0}" = 0 ] && [ -d "$OLD" ]'
        ' && [ "$(readlink "$NEW/.venv")" = "$(readlink "$OLD/.venv")" ]'
        f' && cmp -s <(grep -v "^;" "$NEW/{cfg}/uwsgi.ini") <(grep -v "^;" "$OLD/{cfg}/uwsgi.ini")'
        f" && [ -p {q(p.fifo)} ]; then mode=chain; fi",
        '  if [ $mode = chain ]; then',
        f"    timeout 5 sh -c {q('printf c > ' + p.fifo)} || mode=graceful",
        "  fi",
        f'  if [ $mode = graceful ]; then systemctl reload {svc}; fi',
        "  echo uwsgi=$mode",
        "fi",
        # wait until every worker has chdir'd into the new release
        'target=$(readlink -f "$NEW")',
        f"deadline=$((SECONDS + {int(wait)}))",
        "while :; do",
        f"  main=$(systemctl show -p MainPID --value {svc})",
        '  ready=0; total=0',
        '  for w in $(pgrep -P "$main" 2>/dev/null); do total=$((total+1));',
        '    [ "$(readlink "/proc/$w/cwd" 2>/dev/null)" = "$target" ] && ready=$((ready+1)); done',
        f'  if [ "$total" -ge {int(processes)} ] && [ "$ready" = "$total" ]; then break; fi',
        '  if [ $SECONDS -ge $deadline ]; then',
        '    echo "only $ready of $total workers serve the new release after ' + str(int(wait))
        + 's" >&2',
        f"    tail -n 20 {q(p.app_log)} >&2 || true; exit 1; fi",
        "  sleep 0.1",
        "done",
        "echo workers=$ready",
    ])


def reload_nginx(p: Paths, release: str, previous: str, force: bool = False) -> str:
    """Test the whole nginx config and reload nginx — only when the site changed.

    nginx reads the site through `current`; when the new release's site is the same as the
    running one (comments aside), nginx has nothing new to read, and skipping the reload spares
    the keep-alive connections a reload would close.
    """
    new = f"{p.release(release)}/{CONFIG_DIR}/nginx.conf"
    old = f"{p.release(previous)}/{CONFIG_DIR}/nginx.conf" if previous else ""
    return script([
        f"NEW={q(new)}; OLD={q(old)}; FORCE={int(force)}",
        'if [ "$FORCE" = 0 ] && [ -n "$OLD" ] && systemctl is-active -q nginx'
        ' && cmp -s <(grep -v "^ *#" "$NEW") <(grep -v "^ *#" "$OLD" 2>/dev/null); then',
        "  echo nginx=unchanged; exit 0; fi",
        "nginx -t -q 2>&1",
        "if systemctl is-active -q nginx; then systemctl reload nginx; echo nginx=reloaded;",
        "else systemctl start nginx; echo nginx=started; fi",
    ])


HEALTH_PROBE = r'''
import http.client, sys, time
port, host, path, want, release, timeout = sys.argv[1:7]
start = time.monotonic()
deadline, wrong_since = start + float(timeout), None
while True:
    status, seen, body = None, None, ""
    try:
        conn = http.client.HTTPConnection("127.0.0.1", int(port), timeout=5)
        conn.request("GET", path, headers={"Host": host, "User-Agent": "wsgiship-health"})
        resp = conn.getresponse()
        status, seen = resp.status, resp.getheader("X-Wsgiship-Release")
        body = resp.read(4096).decode("utf-8", "replace")
        conn.close()
    except Exception as exc:
        body = f"{type(exc).__name__}: {exc}"
    # A request answered by the old workers does not count: wait for the new release's header
    # (apps whose wsgi template drops the header are judged on the status alone).
    new = seen in (release, None)
    if status == int(want) and new:
        print(f"status={status}")
        sys.exit(0)
    # the new release answering a wrong status for 5 s is an answer; no need to wait longer
    wrong_since = (wrong_since or time.monotonic()) if (new and status) else None
    now = time.monotonic()
    if now > deadline or (wrong_since and now - wrong_since > 5):
        print(f"status={status or 'none'}")
        print(f"release={seen or 'none'}")
        print(f"waited={now - start:.1f}")
        print("\n".join(body.strip().splitlines()[:8]))
        sys.exit(1)
    time.sleep(0.2)
'''


def health_check(port: int, host: str, path: str, status: int, release: str, timeout: int) -> str:
    """Poll the site through nginx on the server until the new release answers `status`."""
    return script([
        " ".join(["python3", "-c", q(HEALTH_PROBE), q(port), q(host), q(path), q(status),
                  q(release), q(timeout)])
    ])


def error_log_tail(p: Paths, lines: int = 20) -> str:
    """The last lines of the app's uWSGI log."""
    return script([f"tail -n {int(lines)} {q(p.app_log)} 2>/dev/null || true"])
