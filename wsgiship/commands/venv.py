"""Pure builders for the virtualenv: one per hash of (requirements, python), shared by releases."""

from __future__ import annotations

import hashlib

from ..render import CONFIG_DIR, Paths
from ..shell import q, script

RECIPE = "1"  # bump when the way venvs are built changes, so old ones are not reused


def venv_key(requirements: str, python: str, python_version: str) -> str:
    """The venv's name: a hash of what goes into it, so a code-only change reuses it."""
    text = "\0".join([RECIPE, python, python_version, requirements])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def ensure(p: Paths, release: str, key: str, python: str) -> str:
    """Reuse venvs/<key> when complete, else build it and pip install; link it into the release."""
    v, r = f"{p.venvs}/{key}", p.release(release)
    log = f"{r}/{CONFIG_DIR}/pip.log"
    return script([
        f"V={q(v)}; R={q(r)}; LOG={q(log)}",
        'if [ -f "$V/.complete" ]; then echo venv=reused; else',
        '  rm -rf "$V"',
        f'  if ! {{ {q(python)} -m venv "$V" && "$V/bin/pip" install --disable-pip-version-check'
        f' --no-input -r "$R/{CONFIG_DIR}/requirements.txt"; }} > "$LOG" 2>&1; then',
        '    tail -n 30 "$LOG" >&2; rm -rf "$V"; exit 1',
        "  fi",
        '  touch "$V/.complete"; echo venv=created',
        "fi",
        f'ln -sfn {q("../../venvs/" + key)} "$R/.venv"',
    ])
