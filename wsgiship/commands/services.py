"""Pure builders for the app's uWSGI service: install its config, start or reload it, read its log.

The service manager (systemd, supervisor) is the one `Paths.manager` names (see managers/).
"""

from __future__ import annotations

from .. import managers
from ..layout import CONFIG_DIR, Paths
from ..managers import ServiceManager
from ..privilege import as_root_if, root
from ..shell import Raw, q, script
from . import nginx


def manager(p: Paths) -> ServiceManager:
    return managers.get(p.manager, p.service)


def install_config(p: Paths) -> str:
    """Install the service config from `current` when it differs (then tell the manager)."""
    new, target = p.config("current", "service"), p.service_file
    # `;` not `&&`: under set -e only a failing simple command stops the script
    return (f"if ! cmp -s {q(new)} {q(target)}; then"
            f" {root('install', '-m', '644', new, target, granted=False)};"
            f" {manager(p).apply_config}; echo unit=installed; fi")


def install(p: Paths, login_user: str, app_user: str,
            shared: tuple[str, ...] = ()) -> str:
    """Install the service config from `current` when it differs, link the nginx site
    (privileged: root commands carry $SUDO)."""
    lines = [install_config(p), *nginx.link_site(p)]
    if app_user != login_user:
        owned = [p.log_dir, p.run_dir, *(f"{p.shared}/{s}" for s in shared)]
        # `fab setup` already gave these to the app user; chown only what is not yet theirs
        lines += [f'[ "$(stat -c %U {q(o)})" = {q(app_user)} ] || '
                  f'{root("chown", f"{app_user}:www-data", o, granted=False)}' for o in owned]
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
    chain = as_root_if(as_other, "timeout", "5", "sh", "-c", f"printf c > {p.fifo}")
    worker_dir = as_root_if(as_other, "readlink", Raw('"/proc/$w/cwd"'))
    return script([
        f"NEW={new}; OLD={old}",
        f"chain() {{ {chain}; }}",
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
        f'    cwd=$({worker_dir} 2>/dev/null || true)',
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


def error_log_tail(p: Paths, lines: int = 20) -> str:
    """The last lines of the app's uWSGI log."""
    return script([f"tail -n {int(lines)} {q(p.app_log)} 2>/dev/null || true"])
