"""Pure builders for the app's uWSGI service: install its config, start or reload it, read its log.

The service manager (systemd, supervisor) is the one `Paths.manager` names (see managers/).
"""

from __future__ import annotations

from .. import managers
from ..layout import CONFIG_DIR, Paths
from ..managers import ServiceManager
from ..privilege import as_app, root
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


def app_user_argv(user: str) -> tuple[str, ...]:
    """useradd for the app's own user: no login, no home, primary group www-data (it reads the
    code through the group; nginx reads its static files and socket the same way)."""
    return ("useradd", "--system", "--gid", "www-data", "--no-create-home", "--home-dir",
            "/nonexistent", "--shell", "/usr/sbin/nologin", user)


def create_app_user(user: str) -> str:
    """The app's own user, if missing (privileged)."""
    return f"id -u {q(user)} >/dev/null 2>&1 || {root(*app_user_argv(user), granted=False)}"


def not_a_link(path: str, hint: str = "") -> str:
    """Stop with an error when `path` is a symbolic link (root must never follow one)."""
    why = f"refusing: {path} is a symbolic link" + (f"; {hint}" if hint else "")
    return f"if [ -L {q(path)} ]; then echo {q(why)} >&2; exit 1; fi"


def hand_to_app(path: str, app_user: str) -> str:
    """Give a shared path to the app user unless it has it; a planted symlink is refused."""
    # -R: what an earlier app user left inside (its log file) is the app's now; -h: a link
    # inside is changed itself, never followed
    chown = root("chown", "-R", "-h", f"{app_user}:www-data", path, granted=False)
    return f'{not_a_link(path)}; [ "$(stat -c %U {q(path)})" = {q(app_user)} ] || {chown}'


def install(p: Paths) -> str:
    """Install the service config and the nginx site from `current` when they differ
    (privileged: root commands carry $SUDO)."""
    return script([install_config(p), *nginx.install_site(p)])


def app_dirs(p: Paths, login_user: str, app_user: str, shared: tuple[str, ...] = ()) -> str:
    """The app's user exists and has its dirs (log, run, shared items), before anything runs as
    it (privileged; after `fab setup` there is nothing left to do)."""
    if app_user == login_user:
        return script([])
    owned = [p.log_dir, p.run_dir, *(f"{p.shared}/{s}" for s in shared)]
    # a nested shared item's parents must not be links either (chown would go through them)
    parents = sorted({f"{p.shared}/{'/'.join(s.split('/')[:k])}" for s in shared
                      for k in range(1, s.count("/") + 1)})
    return script([create_app_user(app_user), *(not_a_link(d) for d in parents),
                   *(hand_to_app(o, app_user) for o in owned)])


def reload_uwsgi(p: Paths, release: str, previous: str, processes: int,
                 wait: int = 120, kill_previous: bool = False) -> str:
    """Make every uWSGI worker serve `release` (privileged).

    Not running: start. Same venv and same uwsgi.ini (comments aside) as the running release and
    an unchanged service config: chain reload (fifo `c`, one worker at a time, no stall).
    Otherwise: graceful reload (re-exec the master, re-read the ini). Either way, wait until
    every worker runs in the new release's directory (workers chdir there after fork) — a
    reload request returns before that. uWSGI's fifo and /proc entries are the app user's:
    they are used through $AS_APP (run it with Remote.run(app_user=...)).
    `kill_previous`: leaving a release that failed (it may hang): its workers are killed at once
    rather than given their reload mercy; the master forks new ones in `release`.
    """
    m, cfg = manager(p), CONFIG_DIR
    new, old = q(p.release(release)), q(p.release(previous) if previous else "")
    # the master always reads its fifo; the timeout is for a master gone meanwhile
    chain = f"printf c | {as_app('timeout', '5', 'tee', p.fifo)} >/dev/null"
    worker_dir = as_app("readlink", Raw('"/proc/$w/cwd"'))
    return script([
        f"NEW={new}; OLD={old}",
        # a service config just installed (the job's install step said unit=installed)
        'UNIT_CHANGED=$([ "${WSGISHIP_UNIT:-}" = installed ] && echo 1 || echo 0)',
        f"chain() {{ {chain}; }}",
        f"if ! {m.is_active}; then",
        f"  if {m.start}; then echo uwsgi=started; else",
        f"    {m.why_not_started}",
        f"    {as_app('tail', '-n', '20', p.app_log)} >&2 || true; exit 1; fi",
        'elif [ "${UNIT_CHANGED:-0}" = 1 ]; then',
        # a changed unit (e.g. another user) needs a fresh start, not a signal to the old one
        f"  {m.restart}; echo uwsgi=restarted",
        "else",
        "  mode=graceful",
        '  if [ -n "$OLD" ] && [ "${UNIT_CHANGED:-0}" = 0 ] && [ -d "$OLD" ]'
        ' && [ "$(readlink "$NEW/.venv")" = "$(readlink "$OLD/.venv")" ]'
        f' && cmp -s <(grep -v "^;" "$NEW/{cfg}/uwsgi.ini") <(grep -v "^;" "$OLD/{cfg}/uwsgi.ini")'
        f" && {as_app('test', '-p', p.fifo)}; then mode=chain; fi",
        '  if [ $mode = chain ]; then',
        "    chain || mode=graceful",
        "  fi",
        f"  if [ $mode = graceful ]; then {m.graceful}; fi",
        "  echo uwsgi=$mode",
        "fi",
        # wait until every worker has chdir'd into the new release
        'target=$(readlink -f "$NEW"); failed=$([ -z "$OLD" ] || readlink -f "$OLD")',
        f"KILL_OLD={int(kill_previous)}",
        f"deadline=$((SECONDS + {int(wait)}))",
        "while :; do",
        f"  main=$({m.main_pid} 2>/dev/null || true)",
        "  ready=0; total=0; unknown=0",
        # (no master yet: no workers; `pgrep -P 0` would list the kernel's own processes)
        '  for w in $([ "${main:-0}" -gt 0 ] && pgrep -P "$main" 2>/dev/null); do total=$((total+1));',
        f'    cwd=$({worker_dir} 2>/dev/null || true)',
        # a worker that just exited (or a zombie not yet reaped) is not a worker any more
        '    if [ -z "$cwd" ]; then st=$(ps -o stat= -p "$w" 2>/dev/null || true);',
        '      case "$st" in ""|Z*) total=$((total-1)) ;; *) unknown=$((unknown+1)) ;; esac',
        '    elif [ "$cwd" = "$target" ]; then ready=$((ready+1));',
        '    elif [ "$KILL_OLD" = 1 ] && [ -n "$failed" ] && [ "$cwd" = "$failed" ]; then'
        f' {as_app("kill", "-KILL", Raw(chr(34) + "$w" + chr(34)))} 2>/dev/null || true; fi; done',
        # workers we may not look into: the health check has to tell
        f'  if [ "$total" -ge {int(processes)} ] && [ "$unknown" = "$total" ]; then'
        " ready=unknown; break; fi",
        f'  if [ "$total" -ge {int(processes)} ] && [ "$ready" = "$total" ]; then break; fi',
        '  if [ $SECONDS -ge $deadline ]; then',
        f'    echo "only $ready of {int(processes)} workers serve the new release after {int(wait)}s"'
        " >&2",
        f"    {as_app('tail', '-n', '20', p.app_log)} >&2 || true; exit 1; fi",
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
    """The last lines of the app's uWSGI log (read as the app: run with app_user)."""
    return script([f"{as_app('tail', '-n', int(lines), p.app_log)} 2>/dev/null || true"])
