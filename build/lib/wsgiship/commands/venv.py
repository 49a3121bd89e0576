"""Pure builders for the virtualenv: one per hash of (requirements, python, installer), shared by
releases; and uv, the fast installer `fab setup` puts on the server."""

from __future__ import annotations

import hashlib

from ..layout import CONFIG_DIR, Paths
from ..shell import q, script

RECIPE = "3"  # bump when the way venvs are built changes, so old ones are not reused
UV_VERSION = "0.13.9"
INSTALLERS = ("uv", "pip")


def venv_key(requirements: str, python: str, python_version: str, installer: str = "pip",
             wheelhouse: bool = False) -> str:
    """The venv's name: a hash of what goes into it, so a code-only change reuses it and a change
    of installer or of the wheels' source rebuilds it."""
    text = "\0".join([RECIPE, python, python_version, installer, str(wheelhouse), requirements])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def installer_for(wanted: str, uv_on_server: bool) -> str:
    """The installer a deploy uses: `auto` takes uv when the server has it (fab setup), else pip."""
    if wanted == "auto":
        return "uv" if uv_on_server else "pip"
    return wanted


def _build(p: Paths, python: str, installer: str, find_links: str) -> str:
    """The shell text that makes the venv $V and installs $R's requirements into it."""
    index = f" --no-index --find-links {q(find_links)}" if find_links else ""
    req = f'-r "$R/{CONFIG_DIR}/requirements.txt"'
    if installer == "uv":
        uv = q(p.uv)
        return (f'{uv} venv --quiet --python "$(command -v {q(python)})" "$V" && '
                f'{uv} pip install --python "$V/bin/python"{index} {req}')
    return (f'{q(python)} -m venv "$V" && "$V/bin/pip" install --disable-pip-version-check'
            f" --no-input --use-pep517{index} {req}")


def ensure(p: Paths, release: str, key: str, python: str, installer: str = "pip",
           find_links: str = "") -> str:
    """Reuse venvs/<key> when complete, else build it with `installer` (uv or pip, from
    `find_links` alone when given: a wheelhouse); link it into the release. Prints venv=created
    or venv=reused and packages=N (the distributions in it).

    The build runs in its own session whose id is kept in venvs/<key>.builder, its processes
    marked WSGISHIP_VENV_BUILD=<venv> in their environment: when a deploy's connection is cut,
    sshd does not stop it, so the next deploy (holding the lock, so the builder can only be an
    abandoned one) kills that session's marked processes before rebuilding.
    """
    v, r = f"{p.venvs}/{key}", p.release(release)
    log = f"{r}/{CONFIG_DIR}/pip.log"
    build = 'echo $$ > "$B"; ' + _build(p, python, installer, find_links)
    return script([
        f'V={q(v)}; R={q(r)}; LOG={q(log)}; B="$V.builder"',
        # uv: its cache beside the venvs (hard links), never a Python of its own, the server's
        # own trust store (as pip and curl there); bytecode compiled as pip does (the app cannot
        # write its .pyc files into the venv: without them every worker would compile its imports)
        f"export V R B UV_CACHE_DIR={q(p.uv_cache)} UV_PYTHON_DOWNLOADS=never UV_NO_PROGRESS=1"
        " UV_SYSTEM_CERTS=1 UV_COMPILE_BYTECODE=1",
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
        '    [ -s "$LOG" ] || echo "the installer left no log: No space left on device?'
        ' $(df -Pm "$R" | awk \'NR==2 {print $4}\') MB free" >&2',
        '    rm -rf "$V" "$B"; exit 1',
        "  fi",
        '  touch "$V/.complete"; rm -f "$B"; echo venv=created',
        "fi",
        # the app's packages: pip's own (in a venv pip made) do not count
        'echo "packages=$(ls -d "$V"/lib/python*/site-packages/*.dist-info 2>/dev/null'
        ' | grep -cvE "/(pip|setuptools|wheel)-[^/]*\\.dist-info$" || true)"',
        f'ln -sfn {q("../../venvs/" + key)} "$R/.venv"',
    ])


def install_uv(p: Paths) -> str:
    """`fab setup`: uv in its own venv under /opt/wsgiship, root's (run as root); prints
    changed=... when it installed it, note=... when it could not (no index reachable)."""
    tools, venv = p.tools, f"{p.tools}/uv"
    return script([
        # root writes and runs here: a link or a directory of someone else's is replaced
        f"T={q(tools)}",
        'if [ -L "$T" ] || { [ -e "$T" ] && [ "$(stat -c %U "$T")" != root ]; }; then rm -rf "$T"; fi',
        # `uv 0.13.9` or `uv 0.13.9 (<commit> <date>)`
        f'if [ "$({q(p.uv)} --version 2>/dev/null | cut -d" " -f1,2)" != {q("uv " + UV_VERSION)} ]; then',
        '  install -d -o root -g root -m 755 "$T"',
        f"  rm -rf {q(venv)}",
        f"  python3 -m venv {q(venv)}",
        # no index reachable (a server behind a wheelhouse): deploys use pip, setup goes on
        f"  if ! out=$({q(venv)}/bin/pip install -q --disable-pip-version-check"
        f" --retries 1 --only-binary=:all: {q('uv==' + UV_VERSION)} 2>&1); then rm -rf {q(venv)};"
        '    echo "note=uv not installed, deploys use pip: $(printf "%s\\n" "$out"'
        ' | grep -v "^WARNING" | tail -n1)"; exit 0; fi',
        f'  echo "changed=uv {UV_VERSION}"',
        "fi",
    ])


def wheelhouse_present(p: Paths, key: str) -> str:
    """Prints wheelhouse=present when venv `key` needs no wheels uploaded (it is built, or its
    wheels are on the server already)."""
    return script([
        f"if [ -f {q(p.venvs + '/' + key)}/.complete ] || [ -f {q(p.wheelhouse + '/' + key)}/.complete ];"
        " then echo wheelhouse=present; fi",
    ])


def unpack_wheelhouse(p: Paths, key: str, upload: str) -> str:
    """Unpack uploaded wheels into wheelhouse/<key> (complete only once all are there)."""
    w = f"{p.wheelhouse}/{key}"
    return script([
        "umask 027",
        f"W={q(w)}",
        'rm -rf "$W"; mkdir -p "$W"',
        f'tar -xzf {q(upload)} -C "$W" --no-same-owner --no-same-permissions',
        f"rm -f {q(upload)}",
        'touch "$W/.complete"',
    ])
