"""Pure builders for the app's uWSGI service: install its config, start or reload it, read its log.

The service manager (systemd, supervisor) is the one `Paths.manager` names (see managers/).
"""

from __future__ import annotations

from .. import managers
from ..errors import DETAIL_LINES
from ..layout import SLOTS, Paths
from ..managers import ServiceManager
from ..privilege import as_app, root
from ..shell import Raw, q, script
from . import nginx


def manager(p: Paths) -> ServiceManager:
    return managers.get(p.manager, p.service)


def install_config(p: Paths, release: str = "current") -> str:
    """Install the service config from a release when it differs (then tell the manager)."""
    new, target = p.config(release, "service"), p.service_file
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
    """Install the nginx site from `current` when it differs (privileged: root commands carry
    $SUDO); the service config was installed by the start step."""
    return script(nginx.install_site(p))


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


def live_slot(p: Paths) -> str:
    """Shell: prints the slot nginx sends traffic to (a, b), or nothing (an older wsgiship's
    single uWSGI, or none). The run dir is the app user's: run with app_user."""
    link = as_app("readlink", p.socket)
    names = "".join(SLOTS)
    return (f"$({{ {link} 2>/dev/null || true; }}"
            f" | sed -n 's/^uwsgi-\\([{names}]\\)\\.sock$/\\1/p')")


OLD_RELEASE = ("release {release} was rendered for a single uWSGI (an older wsgiship): it cannot "
               "start beside the live one; deploy its code again instead")


NOT_STARTED = ("reason=the new release's uWSGI did not start (no user request reached it): the "
               "app failed to load? its log is below")
# what wsgi.py writes to the app log, before its reason, when it cannot load the app
LOAD_FAILED = "wsgiship: release {release}: "
LOG_HEAD = "uWSGI did not start with the new release (no user request reached it); the app log:"


def not_started(p: Paths, release: str) -> str:
    """Shell: why a slot did not come up, and exit 1. The app log's last lines on stderr (read
    as the app), and the reason: the line wsgi.py wrote when it could not load this release's
    app (app.wsgi names no WSGI app, its import failed...), else NOT_STARTED."""
    mark = q(LOAD_FAILED.format(release=release))
    # the heading and the log fill the lines an error shows
    tail = as_app("tail", "-n", DETAIL_LINES - 1, p.app_log)
    return (f"{{ echo {q(LOG_HEAD)} >&2; log=$({tail} || true);"
            ' [ -z "$log" ] || printf "%s\\n" "$log" >&2;'
            f' mark={mark}; why=$(printf "%s\\n" "$log" | grep -aF -- "$mark"'
            " | sed -n '$p' || true);"
            ' if [ -n "$why" ]; then echo "reason=${why#*"$mark"}";'
            f" else echo {q(NOT_STARTED)}; fi; exit 1; }}")


REUSE = ("any", "spare", "none")


def start_slot(p: Paths, release: str, reuse: str = "any") -> str:
    """Start `release` in its own uWSGI instance beside the live one (privileged; run with
    app_user): a slot that already runs it (the way back, a rollback while the previous one is
    kept warm) is used as it is; otherwise the slot nginx does not use is stopped if something
    is left in it, pointed at the release, and started. Prints slot= and uwsgi=.
    `reuse`: which slot running the release may be used as it is: `any`; `spare`, only the one
    nginx does not use (the way back of a restart, whose live slot runs the same release);
    `none`, a fresh start in the spare slot (a restart: the app reads its environment anew)."""
    if reuse not in REUSE:
        raise ValueError(f"reuse: one of {REUSE}")
    m = manager(p)
    link = f"../releases/{release}"
    running = " || ".join(
        ('' if reuse == "any" else f'{{ [ "$live" != {s} ] && ')
        + f'{{ [ "$(readlink {q(p.slot(s))} 2>/dev/null)" = {q(link)} ] && {m.is_active(s)}'
        f" && slot={s}; }}" + ('' if reuse == "any" else "; }") for s in m.slots)
    ini = p.config(release, "uwsgi.ini")
    no_start = not_started(p, release)
    socket_up = as_app("test", "-S", Raw(q(p.run_dir) + '"/uwsgi-$slot.sock"'))
    return script([
        f"if ! grep -q WSGISHIP_SLOT {q(ini)}; then echo {q(OLD_RELEASE.format(release=release))}"
        " >&2; exit 1; fi",
        f"live={live_slot(p)}",
        f"if {running}; then echo slot=$slot; echo uwsgi=running; exit 0; fi"
        if reuse != "none" else "",
        'slot=a; [ "$live" = a ] && slot=b',
        # what a failed deploy or an ended watch window left there
        *(f'if [ $slot = {s} ] && {m.is_active(s)}; then {m.stop(s)}; fi' for s in m.slots),
        # (the app's user reads its venv and ini through the link: 2750 like the layout's dirs)
        f"[ -d {q(p.slots)} ] || mkdir -m 2750 {q(p.slots)}",
        f'ln -sfn {q(link)} {q(p.slots)}/.$slot.tmp && mv -T {q(p.slots)}/.$slot.tmp'
        f' {q(p.slots)}/$slot',
        install_config(p, release),
        *(f"if [ $slot = {s} ]; then if ! {m.start(s)}; then {m.why_not_started(s)};"
          f" {no_start}; fi; fi" for s in m.slots),
        # supervisor's start returns at the spawn: wait for the socket (systemd's at READY=1)
        "for i in $(seq 1 600); do",
        f"  {socket_up} && break",
        *(f"  if [ $slot = {s} ] && ! {m.is_active(s)}; then"
          f" {no_start}; fi" for s in m.slots),
        "  sleep 0.1",
        "done",
        f"{socket_up} || {no_start}",
        "echo slot=$slot; echo uwsgi=started",
    ])


def slot_pid(p: Paths) -> str:
    """Shell: prints the master pid of the slot in $WSGISHIP_SLOT (privileged)."""
    m = manager(p)
    return ("case \"${WSGISHIP_SLOT:-}\" in "
            + " ".join(f"{s}) {m.main_pid(s)} 2>/dev/null || true;;" for s in m.slots)
            + " *) echo 0;; esac")


def switch_traffic(p: Paths) -> str:
    """Point nginx's socket link at the slot the start step named ($WSGISHIP_SLOT): a new link
    renamed over the old one, which the next connection follows (no nginx reload). The run dir
    is the app user's: run with app_user."""
    tmp = f"{p.run_dir}/.uwsgi.sock.tmp"
    return script([
        'case "${WSGISHIP_SLOT:-}" in a|b) ;; *) echo "no slot to switch to" >&2; exit 1;; esac',
        f'{as_app("ln", "-sfn", Raw(chr(34) + "uwsgi-$WSGISHIP_SLOT.sock" + chr(34)), tmp)}',
        f"{as_app('mv', '-T', tmp, p.socket)}",
        "echo slot=$WSGISHIP_SLOT",
    ])


def backlog_drained(socket: str, wait: float = 5.0) -> str:
    """Wait (up to `wait` s) until no connection waits in the listen queue of the socket bound
    at `socket`: nginx made them before the switch; stopping now would drop them."""
    awk = f"awk -v s={q(socket)} '$5 == s {{ print $3; exit }}'"
    return (f"for i in $(seq 1 {int(wait * 50)}); do n=$(ss -xlH 2>/dev/null | {awk} || true);"
            ' [ "${n:-0}" = 0 ] && break; sleep 0.02; done')


def retire(p: Paths, keep_live: bool = True, kill: bool = False) -> str:
    """Stop every uWSGI but the live slot's (privileged; run with app_user): once nginx sends
    it nothing, each finishes its requests and exits (graceful stop, in the background), and its
    slot link goes so it does not start at boot. An older wsgiship's single uWSGI goes too.
    `keep_live=False` (a first deploy that failed): every slot stops. `kill`: what stops is a
    release that failed (it may hang): its workers are killed rather than waited for."""
    m = manager(p)
    lines = [f"live={live_slot(p)}" if keep_live else "live=''", "stopped=''"]
    for s in m.slots:
        lines.append(
            f'if [ "$live" != {s} ]; then'
            f" if {m.is_active(s)}; then {backlog_drained(p.slot_socket(s))};"
            f" main=$({m.main_pid(s)} 2>/dev/null || true);"
            f" {m.stop_later(s)}; stopped=\"$stopped {s}\";"
            + (' if [ "${main:-0}" -gt 0 ]; then for i in $(seq 1 20); do sleep 0.1;'
               f' {as_app("pkill", "-KILL", "-P", Raw(chr(34) + "$main" + chr(34)))} || true;'
               f' {as_app("kill", "-0", Raw(chr(34) + "$main" + chr(34)))} 2>/dev/null || break;'
               " done; fi;" if kill else "") + " fi;"
            f" rm -f {q(p.slot(s))}; fi")
    # an older wsgiship's one uWSGI, bound at the socket path the live link now holds
    fifo = as_app("timeout", "5", "tee", p.fifo)
    graceful = (f"{as_app('test', '-p', p.fifo)} && {{ printf q | {fifo} >/dev/null || true; }}"
                f" && for i in $(seq 1 300); do {m.legacy_active} || break; sleep 0.1; done;"
                if m.name == "systemd" else "")
    lines += [
        f'if [ -n "$live" ] && {m.legacy_active}; then {backlog_drained(p.socket)}; {graceful}'
        f' {m.legacy_stop}; stopped="$stopped single"; fi',
        'stopped=$(echo $stopped | tr " " ,); echo "retired=${stopped:-none}"',
    ]
    return script(lines)


def error_log_tail(p: Paths, lines: int = 20) -> str:
    """The last lines of the app's uWSGI log (read as the app: run with app_user)."""
    return script([f"{as_app('tail', '-n', int(lines), p.app_log)} 2>/dev/null || true"])
