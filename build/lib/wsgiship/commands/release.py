"""Pure builders for the release layout: lock, layout, unpack, shared links, switch, prune, log.

Each returns a bash script (text); nothing here touches SSH.
"""

from __future__ import annotations

import json

from ..layout import CONFIG_DIR, Paths
from ..privilege import root
from ..shell import q, script

# Exit codes the scripts use to say something the flow acts on.
NEEDS_LAYOUT = 40
LOCKED = 41
NO_PYTHON = 42
DISK_FULL = 43

# A shell function for a script's first lines: `alive "PID START"` is true while that process
# runs (the start time tells a reused pid apart; a zombie is not alive)
ALIVE = ("alive() { local s; s=$(cut -d' ' -f3,22 \"/proc/${1% *}/stat\" 2>/dev/null) || return 1;"
         " [ -n \"$1\" ] && [ \"${s#* }\" = \"${1#* }\" ] && [ \"${s% *}\" != Z ]; }")


# the server's Python, and the platform a wheelhouse is built for
PY_FACTS = ("import platform, sys; print('python=' + sys.version.split()[0]);"
            " print('machine=' + platform.machine()); print('libc=' + ' '.join(platform.libc_ver()))")


def end_watch(p: Paths, action: str) -> str:
    """Ask a publish job that watches its release (health.watch) to end the window now: a
    deploy lets the release stay, a rollback sends it back."""
    return script([
        f"L={q(p.lock)}",
        '[ -f "$L/watching" ] || exit 0',
        f'printf %s {q(action)} > "$L/.watch-end.$$" && mv "$L/.watch-end.$$" "$L/watch-end"',
    ])


def prepare(p: Paths, python: str, holder: dict[str, str]) -> str:
    """Check the layout, take the lock, and report facts (python version, current release)."""
    lock_json = json.dumps(holder, sort_keys=True)
    return script([
        ALIVE,
        f"D={q(p.deploy_to)}",
        f'if [ ! -d "$D/releases" ] || [ ! -w "$D/releases" ]; then exit {NEEDS_LAYOUT}; fi',
        f"command -v {q(python)} >/dev/null || exit {NO_PYTHON}",
        # the holder is written before the lock is taken, then moved in (a rename needs no
        # space): a full disk refuses the lock, never leaves one without a holder
        'H="$D/.lock-holder.$$"',
        f"if ! printf '%s\\n' {q(lock_json)} 2>/dev/null > \"$H\"; then rm -f \"$H\";"
        f" df -Pm \"$D\" | awk 'NR==2 {{print $4}}'; exit {DISK_FULL}; fi",
        f"L={q(p.lock)}",
        'if ! mkdir "$L" 2>/dev/null; then',
        # a holder whose keeper (a process living as long as its client's SSH channel) is gone
        # left the lock behind when it died: take it over, saying whose it was
        '  k=$(head -n1 "$L/holder" 2>/dev/null | grep -o "\\"keeper\\": \\"[0-9]\\+ [0-9]\\+\\""'
        ' | grep -o "[0-9]\\+ [0-9]\\+" || true)',
        # ... unless its publish job still runs on the server: that one ends on its own
        '  if [ -n "$k" ] && ! alive "$k" && ! alive "$(cat "$L/job" 2>/dev/null)";'
        ' then echo "took_over=$(head -n1 "$L/holder" | base64 -w0)"; rm -rf "$L"; fi',
        f'  if ! mkdir "$L" 2>/dev/null; then rm -f "$H"; cat "$L/holder" 2>/dev/null || true;'
        ' if alive "$(cat "$L/job" 2>/dev/null)"; then echo job=running;'
        ' [ ! -f "$L/watching" ] || echo "watching=$(cat "$L/watching")"; fi;'
        f' exit {LOCKED}; fi',
        "fi",
        'mv "$H" "$L/holder"',
        f"{q(python)} -c {q(PY_FACTS)}",
        f"echo \"current=$(readlink {q(p.current)} || true)\"",
        "echo \"user=$(id -un)\"",
        # the fast installer, when fab setup put it there
        f"if [ -f {q(p.uv)} ] && [ -x {q(p.uv)} ]; then echo uv=1; fi",
        # releases a dead client left pending: the caller resolves them under this lock
        f'echo "pending=$(cd {q(p.releases)} && for r in *; do [ ! -e "$r/PENDING" ]'
        ' || [ -e "$r/FAILED" ] || printf "%s " "$r"; done)"',
    ])


def layout(p: Paths, owner: str) -> str:
    """Create <deploy_to> owned by the login user, group www-data, setgid (run privileged)."""
    return script([
        f"getent group www-data >/dev/null || {root('groupadd', '--system', 'www-data', granted=False)}",
        *(str(root("install", "-d", "-o", owner, "-g", "www-data", "-m", "2750", d, granted=False))
          for d in p.dirs),
    ])


def keeper(p: Paths, token: str) -> str:
    """A process that lives exactly as long as its client: it prints `keeper=PID START` and
    waits for a heartbeat line on its channel's stdin. When the client dies (its channel
    closes) or sleeps (no line for 60 s), it ends, and removes the lock `token` holds, unless
    a publish job (commands/job) still runs under it: then the job removes it when done."""
    return script([
        'echo "keeper=$$ $(cut -d" " -f22 /proc/$$/stat)"',
        "while read -r -t 60 _; do :; done",
        f"L={q(p.lock)}",
        # the client's own unlock removed it (or someone else's lock is there now): nothing to do
        f'grep -qF {q(token)} "$L/holder" 2>/dev/null || exit 0',
        'exec 9>> "$L/.end" 2>/dev/null || exit 0',
        "flock 9",
        f'grep -qF {q(token)} "$L/holder" 2>/dev/null || exit 0',
        ALIVE,
        'if alive "$(cat "$L/job" 2>/dev/null)"; then : > "$L/client-gone"; else rm -rf "$L"; fi',
    ])


def unlock(p: Paths, token: str) -> str:
    """Remove the lock if it is still ours (a lock taken over by `fab unlock` stays), unless a
    publish job still runs under it: the job removes it when done (the keeper tells it the
    client is gone)."""
    return script([
        ALIVE,
        f"L={q(p.lock)}",
        f'if grep -qF {q(token)} "$L/holder" 2>/dev/null'
        ' && ! alive "$(cat "$L/job" 2>/dev/null)"; then rm -rf "$L"; fi',
    ])


def force_unlock(p: Paths) -> str:
    """Remove the lock whoever holds it, printing the holder it had; refused while a publish job
    runs under it (exit LOCKED, printing the job's pid)."""
    return script([
        f"L={q(p.lock)}",
        ALIVE,
        f'j=$(cat "$L/job" 2>/dev/null || true); if alive "$j"; then echo "${{j% *}}"; exit {LOCKED}; fi',
        'if [ -d "$L" ]; then echo removed; cat "$L/holder" 2>/dev/null || true; rm -rf "$L"; fi',
    ])


def unpack(p: Paths, release: str, upload: str, shared_files: tuple[str, ...],
           shared_dirs: tuple[str, ...]) -> str:
    """Extract the uploaded tarball into a new release and link the shared files and dirs."""
    r = p.release(release)
    lines = [
        "umask 027",
        f"R={q(r)}",
        f"mkdir -p {q(p.log_dir)} {q(p.run_dir)}",
        'mkdir "$R"',
        # pending until its health check passes (mark_ok): never a rollback target before
        ': > "$R/PENDING"',
        # modes from the umask whoever logs in (as root, tar would keep the archive's)
        f'tar -xzf {q(upload)} -C "$R" --no-same-owner --no-same-permissions',
        f"rm -f {q(upload)}",
    ]
    for d in shared_dirs:
        target = f"{p.shared}/{d}"
        lines += [
            # The first deploy seeds the shared dir from the release's copy, if it has one.
            f'if [ ! -e {q(target)} ]; then mkdir -p "$(dirname {q(target)})";'
            f' if [ -d "$R"/{q(d)} ]; then cp -a "$R"/{q(d)} {q(target)};'
            f" else mkdir -p {q(target)}; fi; fi",
            f'rm -rf "$R"/{q(d)}; mkdir -p "$(dirname "$R"/{q(d)})"; ln -s {q(target)} "$R"/{q(d)}',
        ]
    for f in shared_files:
        target = f"{p.shared}/{f}"
        lines += [
            f'if [ ! -e {q(target)} ]; then mkdir -p "$(dirname {q(target)})";'
            f' if [ -f "$R"/{q(f)} ]; then cp -a "$R"/{q(f)} {q(target)};'
            f" else (umask 077; : > {q(target)}); fi; fi",
            f'rm -rf "$R"/{q(f)}; mkdir -p "$(dirname "$R"/{q(f)})"; ln -s {q(target)} "$R"/{q(f)}',
        ]
    return script(lines)


def mark_failed(p: Paths, release: str, reason: str) -> str:
    """Mark a release failed (never a rollback target, pruned first); drop a partial upload."""
    r = p.release(release)
    return script([
        f"rm -f {q(p.upload(release))}",
        f"if [ -d {q(r)} ]; then printf '%s\\n' {q(reason)} > {q(r)}/FAILED;"
        f" rm -f {q(r)}/PENDING; fi",
    ])


def mark_ok(p: Paths, release: str) -> str:
    """The release passed its health check: no longer pending."""
    return script([f"rm -f {q(p.release(release))}/PENDING"])


def switch(p: Paths, release: str) -> str:
    """Point `current` at the release atomically (a new link renamed over the old one)."""
    tmp = f"{p.deploy_to}/.current.tmp"
    return script([
        f"test -f {q(p.release(release))}/{CONFIG_DIR}/uwsgi.ini",
        f"ln -sfn {q('releases/' + release)} {q(tmp)}",
        f"mv -T {q(tmp)} {q(p.current)}",
    ])


def prune(p: Paths, keep: int, current: str) -> str:
    """Keep the newest `keep` good releases (always current and the one before); drop failed
    ones but the newest; then drop venvs that no release links to."""
    return script([
        f"cd {q(p.releases)}",
        f"keep={keep}; current={q(current)}; good=0; failed=0; after_current=0",
        "for r in $(ls -1 | sort -r); do",
        '  [ -d "$r" ] || continue',
        '  if [ "$r" = "$current" ]; then after_current=1; good=$((good+1)); continue; fi',
        '  if [ -f "$r/FAILED" ]; then failed=$((failed+1));',
        '    if [ $failed -gt 1 ]; then rm -rf "$r"; echo "pruned $r (failed)"; fi; continue; fi',
        "  good=$((good+1))",
        # the newest good release older than current is the rollback target: always kept
        '  if [ $after_current = 1 ]; then after_current=2; continue; fi',
        '  if [ $good -gt $keep ]; then rm -rf "$r"; echo "pruned $r"; fi',
        "done",
        # wheels of venvs that are gone
        f'if [ -d {q(p.wheelhouse)} ]; then for w in {q(p.wheelhouse)}/*; do [ -d "$w" ] || continue;'
        f' [ -d {q(p.venvs)}/"$(basename "$w")" ] || {{ rm -rf "$w"; echo "pruned wheels $w"; }}; done; fi',
        f"cd {q(p.venvs)}",
        "used=$(for l in ../releases/*/.venv; do readlink \"$l\" 2>/dev/null; done"
        " | xargs -r -n1 basename)",
        "for v in *; do",
        '  [ -d "$v" ] || continue',
        '  if ! printf "%s\\n" $used | grep -qxF "$v"; then rm -rf "$v"; echo "pruned venv $v"; fi',
        "done",
    ])


def append_log(p: Paths, entry: dict[str, object]) -> str:
    """Append one JSON line to <deploy_to>/deploys.log."""
    return script([f"printf '%s\\n' {q(json.dumps(entry, sort_keys=True))} >> {q(p.log)}"])
