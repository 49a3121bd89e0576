"""Pure builders for validation, uWSGI (under systemd or supervisor) and nginx."""

from __future__ import annotations

from dataclasses import dataclass

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
        '    printf "%s\\n" "${out//"$T/site.conf"/"$SITE"}"; exit 1; fi',
        "fi",
    ])


@dataclass(frozen=True)
class Manager:
    """Shell snippets for the service manager that runs uWSGI: systemd or supervisor."""

    kind: str
    service: str

    @property
    def is_active(self) -> str:
        if self.kind == "supervisor":
            return f"$SUDO supervisorctl status {q(self.service)} 2>/dev/null | grep -q RUNNING"
        return f"systemctl is-active -q {q(self.service)}"

    @property
    def start(self) -> str:
        if self.kind == "supervisor":
            svc, running = q(self.service), self.is_active
            return (f"{{ $SUDO supervisorctl reread >/dev/null; $SUDO supervisorctl update {svc}"
                    f" >/dev/null; $SUDO supervisorctl start {svc} >/dev/null 2>&1 || true;"
                    f" for i in $(seq 1 100); do {running} && break; sleep 0.2; done; {running}; }}")
        return f"$SUDO systemctl start {q(self.service)}"

    @property
    def restart(self) -> str:
        if self.kind == "supervisor":  # `supervisorctl update` already restarted a changed one
            return f"{self.is_active} || {self.start}"
        return f"$SUDO systemctl restart {q(self.service)}"

    @property
    def graceful(self) -> str:
        if self.kind == "supervisor":
            return f"$SUDO supervisorctl signal HUP {q(self.service)} >/dev/null"
        return f"$SUDO systemctl reload {q(self.service)}"

    @property
    def main_pid(self) -> str:
        if self.kind == "supervisor":
            return f"$SUDO supervisorctl pid {q(self.service)}"
        return f"systemctl show -p MainPID --value {q(self.service)}"

    @property
    def why_not_started(self) -> str:
        if self.kind == "supervisor":
            return f"$SUDO supervisorctl tail {q(self.service)} stderr >&2 || true"
        return f"journalctl -u {q(self.service)} -n 20 --no-pager >&2 || true"

    def install(self, new: str, target: str) -> str:
        """Install the service config when it differs (then tell the manager)."""
        svc = q(self.service)
        if self.kind == "supervisor":
            apply = f"$SUDO supervisorctl reread >/dev/null; $SUDO supervisorctl update {svc} >/dev/null"
        else:
            apply = f"$SUDO systemctl daemon-reload; $SUDO systemctl enable -q {svc}"
        # `;` not `&&`: under set -e only a failing simple command stops the script
        return (f'if ! cmp -s {q(new)} {q(target)}; then $SUDO install -m 644 {q(new)} {q(target)};'
                f" {apply}; echo unit=installed; fi")


def manager(p: Paths) -> Manager:
    return Manager(p.manager, p.service)


def unit_check(p: Paths, release: str, host_label: str) -> str:
    """Before the switch: if the release's service config differs from the installed one, this
    user must be allowed to install it (a restricted user gets it from `fab setup`)."""
    new = f"{p.release(release)}/{CONFIG_DIR}/service"
    src = f"{p.current}/{CONFIG_DIR}/service"
    return script([
        f"U={q(p.service_file)}; NEW={q(new)}",
        'if [ -n "$SUDO" ] && ! cmp -s "$NEW" "$U"'
        f' && ! sudo -n -l install -m 644 {q(src)} "$U" >/dev/null 2>&1; then',
        f'  echo "the service config differs from $U and {host_label} may not install it: run'
        f' fab setup -H {host_label} (as root) to install it" >&2',
        '  diff -uN "$U" "$NEW" >&2 || true; exit 1',
        "fi",
    ])


def install(p: Paths, login_user: str, app_user: str,
            shared: tuple[str, ...] = ()) -> str:
    """Install the service config from `current` when it differs, link the nginx site
    (privileged: root commands carry $SUDO)."""
    site = f"{p.current}/{CONFIG_DIR}/nginx.conf"
    av, en = f"/etc/nginx/sites-available/{p.nginx_site}", f"/etc/nginx/sites-enabled/{p.nginx_site}"
    rel = f"../sites-available/{p.nginx_site}"
    lines = [
        manager(p).install(f"{p.current}/{CONFIG_DIR}/service", p.service_file),
        f'if [ "$(readlink {q(av)})" != {q(site)} ]; then $SUDO ln -sfn {q(site)} {q(av)};'
        " echo site=installed; fi",
        f'if [ "$(readlink {q(en)})" != {q(rel)} ]; then $SUDO ln -sfn {q(rel)} {q(en)};'
        " echo site=installed; fi",
    ]
    if app_user != login_user:
        owned = [f"{p.shared}/log", p.run_dir, *(f"{p.shared}/{s}" for s in shared)]
        # `fab setup` already gave these to the app user; chown only what is not yet theirs
        lines += [f'[ "$(stat -c %U {q(o)})" = {q(app_user)} ] || $SUDO '
                  + cmd("chown", f"{app_user}:www-data", o) for o in owned]
    return script(lines)


def reload_uwsgi(p: Paths, release: str, previous: str, processes: int, as_other: bool,
                 wait: int = 120) -> str:
    """Make every uWSGI worker serve `release` (privileged).

    Not running: start. Same venv and same uwsgi.ini (comments aside) as the running release and
    an unchanged service config: chain reload (fifo `c`, one worker at a time, no stall).
    Otherwise: graceful reload (re-exec the master, re-read the ini). Either way, wait until
    every worker runs in the new release's directory (workers chdir there after fork) — a
    reload request returns before that. `as_other`: uWSGI runs as another user than the login
    (its fifo and /proc entries then need $SUDO).
    """
    m, cfg = manager(p), CONFIG_DIR
    new, old = q(p.release(release)), q(p.release(previous) if previous else "")
    other = "$SUDO " if as_other else ""
    return script([
        f"NEW={new}; OLD={old}",
        f"chain() {{ {other}timeout 5 sh -c {q('printf c > ' + p.fifo)}; }}",
        f"if ! {m.is_active}; then",
        f"  if {m.start}; then echo uwsgi=started; else",
        f"    {m.why_not_started}",
        f"    tail -n 20 {q(p.app_log)} >&2 || true; exit 1; fi",
        'elif [ "${UNIT_CHANGED:-0}" = 1 ]; then',
        # a changed unit (e.g. another user) needs a fresh start, not a signal to the old one
        f"  {m.restart}; echo uwsgi=restarted",
        "else",
        "  mode=graceful",
        '  if [ -n "$OLD" ] && [ "${UNIT_CHANGED:-0}" = 0 ] && [ -d "$OLD" ]'
        ' && [ "$(readlink "$NEW/.venv")" = "$(readlink "$OLD/.venv")" ]'
        f' && cmp -s <(grep -v "^;" "$NEW/{cfg}/uwsgi.ini") <(grep -v "^;" "$OLD/{cfg}/uwsgi.ini")'
        f" && [ -p {q(p.fifo)} ]; then mode=chain; fi",
        '  if [ $mode = chain ]; then',
        "    chain || mode=graceful",
        "  fi",
        f"  if [ $mode = graceful ]; then {m.graceful}; fi",
        "  echo uwsgi=$mode",
        "fi",
        # wait until every worker has chdir'd into the new release
        'target=$(readlink -f "$NEW")',
        f"deadline=$((SECONDS + {int(wait)}))",
        "while :; do",
        f"  main=$({m.main_pid} 2>/dev/null || true)",
        "  ready=0; total=0; unknown=0",
        '  for w in $(pgrep -P "${main:-0}" 2>/dev/null); do total=$((total+1));',
        f'    cwd=$({other}readlink "/proc/$w/cwd" 2>/dev/null || true)',
        # a worker that just exited (or a zombie not yet reaped) is not a worker any more
        '    if [ -z "$cwd" ]; then st=$(ps -o stat= -p "$w" 2>/dev/null || true);',
        '      case "$st" in ""|Z*) total=$((total-1)) ;; *) unknown=$((unknown+1)) ;; esac',
        '    elif [ "$cwd" = "$target" ]; then ready=$((ready+1)); fi; done',
        # workers we may not look into: the health check has to tell
        f'  if [ "$total" -ge {int(processes)} ] && [ "$unknown" = "$total" ]; then'
        " ready=unknown; break; fi",
        f'  if [ "$total" -ge {int(processes)} ] && [ "$ready" = "$total" ]; then break; fi',
        '  if [ $SECONDS -ge $deadline ]; then',
        '    echo "only $ready of $total workers serve the new release after ' + str(int(wait))
        + 's" >&2',
        f"    tail -n 20 {q(p.app_log)} >&2 || true; exit 1; fi",
        # a `c` sent while the master is still finishing the previous chain reload is dropped
        # ("chain reload already running"): with no worker moving for 3 s, send it again
        '  if [ "${mode:-}" = chain ]; then',
        '    if [ "$ready" != "${last:-x}" ]; then last=$ready; sent=$SECONDS;',
        '    elif [ $((SECONDS - sent)) -ge 3 ]; then sent=$SECONDS; chain || true; fi',
        "  fi",
        "  sleep 0.1",
        "done",
        "echo workers=$ready",
    ])


def reload_nginx(p: Paths, release: str, previous: str, force: bool = False) -> str:
    """Test the whole nginx config and reload nginx — only when the site changed (privileged).

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
        "$SUDO nginx -t -q 2>&1",
        "if systemctl is-active -q nginx; then $SUDO systemctl reload nginx; echo nginx=reloaded;",
        "else $SUDO systemctl start nginx; echo nginx=started; fi",
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
