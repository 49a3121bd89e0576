"""Pure builders for the virtualenv: one per hash of (requirements, python), shared by releases."""

from __future__ import annotations

import hashlib

from ..layout import CONFIG_DIR, Paths
from ..shell import q, script

RECIPE = "2"  # bump when the way venvs are built changes, so old ones are not reused


def venv_key(requirements: str, python: str, python_version: str) -> str:
    """The venv's name: a hash of what goes into it, so a code-only change reuses it."""
    text = "\0".join([RECIPE, python, python_version, requirements])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def ensure(p: Paths, release: str, key: str, python: str) -> str:
    """Reuse venvs/<key> when complete, else build it and pip install; link it into the release.

    The build runs in its own session whose id is kept in venvs/<key>.builder, its processes
    marked WSGISHIP_VENV_BUILD=<venv> in their environment: when a deploy's connection is cut,
    sshd does not stop it, so the next deploy (holding the lock, so the builder can only be an
    abandoned one) kills that session's marked processes before rebuilding.
    """
    v, r = f"{p.venvs}/{key}", p.release(release)
    log = f"{r}/{CONFIG_DIR}/pip.log"
    build = (
        'echo $$ > "$B"; '
        f'{q(python)} -m venv "$V" && "$V/bin/pip" install --disable-pip-version-check'
        f' --no-input --use-pep517 -r "$R/{CONFIG_DIR}/requirements.txt"'
    )
    return script([
        f'V={q(v)}; R={q(r)}; LOG={q(log)}; B="$V.builder"',
        "export V R B",
        # kill only the processes of that session that are this venv's builder: the session id
        # may have been reused by another session since
        'if [ -f "$B" ]; then for pid in $(pgrep -s "$(cat "$B")" 2>/dev/null || true); do',
        '  if grep -qzxF "WSGISHIP_VENV_BUILD=$V" "/proc/$pid/environ" 2>/dev/null; then'
        ' kill -KILL "$pid" 2>/dev/null || true; fi; done; rm -f "$B"; fi',
        'if [ -f "$V/.complete" ]; then echo venv=reused; else',
        '  rm -rf "$V"',
        f'  if ! WSGISHIP_VENV_BUILD="$V" setsid -w bash -c {q(build)} > "$LOG" 2>&1; then',
        '    tail -n 30 "$LOG" >&2',
        # pip's log is on the same disk: an empty one usually means a full disk
        '    [ -s "$LOG" ] || echo "pip left no log: No space left on device?'
        ' $(df -Pm "$R" | awk \'NR==2 {print $4}\') MB free" >&2',
        '    rm -rf "$V" "$B"; exit 1',
        "  fi",
        '  touch "$V/.complete"; rm -f "$B"; echo venv=created',
        "fi",
        f'ln -sfn {q("../../venvs/" + key)} "$R/.venv"',
    ])
