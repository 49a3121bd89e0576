"""Run a command as the app runs: in a release directory, its venv first on PATH, the app's
environment loaded (shared .env, then .wsgiship/env; variables already set win, as in wsgi.py)."""

from __future__ import annotations

from ..render import CONFIG_DIR
from ..shell import q, script

# KEY=VALUE lines read without shell evaluation (a value is data, never code).
LOAD_ENV = r'''load_env() {
  [ -f "$1" ] || return 0
  while IFS= read -r line || [ -n "$line" ]; do
    line="${line#"${line%%[![:space:]]*}"}"; line="${line%"${line##*[![:space:]]}"}"
    case "$line" in ''|'#'*) continue ;; esac
    line="${line#export }"
    case "$line" in *=*) ;; *) continue ;; esac
    key="${line%%=*}"; key="${key%"${key##*[![:space:]]}"}"; val="${line#*=}"
    val="${val#"${val%%[![:space:]]*}"}"
    [[ "$key" =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] || continue
    if [ ${#val} -ge 2 ] && { [[ "$val" == \"*\" ]] || [[ "$val" == \'*\' ]]; }; then
      val="${val:1:${#val}-2}"; fi
    [ -n "${!key+x}" ] || export "$key=$val"
  done < "$1"
}'''


def in_release(release_dir: str, command: str) -> str:
    """A script running `command` (a shell command line) in `release_dir` like the app runs."""
    return script([
        LOAD_ENV,
        f"cd {q(release_dir)}",
        'export VIRTUAL_ENV="$PWD/.venv" PATH="$PWD/.venv/bin:$PATH"',
        "load_env .env",
        f"load_env {q(CONFIG_DIR + '/env')}",
        command,
    ])
