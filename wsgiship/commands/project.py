"""Pure builder for `install: project`: the app's own wheel (shipped in the release, built on
the operator's machine: appwheel.py) installed into the release itself, never into the venv
that releases with the same requirements share."""

from __future__ import annotations

from ..layout import CONFIG_DIR, SITE_DIR, Paths
from ..shell import q, script

WHEEL_DIR = f"{CONFIG_DIR}/dist"  # inside a release: the app's wheel, as uploaded


def _install(p: Paths, installer: str) -> str:
    """The shell text installing wheel $W into $T for the release's venv python, without its
    dependencies (the venv has them) and without an index (nothing to fetch)."""
    if installer == "uv":
        # no cache: a wheel per deploy would only grow it
        return (f'{q(p.uv)} pip install --python "$R/.venv/bin/python" --no-deps --no-index'
                ' --no-cache --target "$T" "$W"')
    return ('"$R/.venv/bin/python" -m pip install --disable-pip-version-check --no-input'
            ' --no-deps --no-index --target "$T" "$W"')


def install(p: Paths, release: str, wheel: str, installer: str) -> str:
    """Install the release's wheel `wheel` (a file name in .wsgiship/dist) into
    <release>/.wsgiship/site with `installer` (uv or pip, as the venv was built); print
    installed=<name>-<version> and scripts=N (its console scripts, in site/bin). Its output
    goes to .wsgiship/install.log, its last lines to stderr when it fails."""
    r = p.release(release)
    return script([
        "umask 027",
        f"R={q(r)}; T=\"$R\"/{q(SITE_DIR)}; W=\"$R\"/{q(WHEEL_DIR + '/' + wheel)}",
        f'LOG="$R"/{q(CONFIG_DIR + "/install.log")}',
        # as the venv's build: the server's trust store, no Python download, bytecode compiled
        # (the app cannot write its .pyc files into its release)
        "export UV_PYTHON_DOWNLOADS=never UV_NO_PROGRESS=1 UV_COMPILE_BYTECODE=1",
        'rm -rf "$T"',
        f'if ! {_install(p, installer)} > "$LOG" 2>&1; then',
        '  tail -n 30 "$LOG" >&2; rm -rf "$T"; exit 1',
        "fi",
        'rm -f "$T/.lock"',  # uv's, of no use once done
        'for d in "$T"/*.dist-info; do',
        '  if [ -d "$d" ]; then echo "installed=$(basename "$d" .dist-info)"; fi',
        "done",
        'echo "scripts=$(find "$T/bin" -maxdepth 1 -type f 2>/dev/null | wc -l)"',
    ])
