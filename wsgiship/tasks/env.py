"""fab env, fab put."""

from __future__ import annotations

import getpass
import sys
from pathlib import Path
from typing import Any

from fabric import task

from wsgiship import envvars
from wsgiship.errors import WsgishipError
from wsgiship.hosts import Target
from wsgiship.ops.shared import EnvChange, put_file, show_env
from wsgiship.output import Printer, Reporter, utf8_stdio

from .common import clean_exit, on_each_host


def ask(key: str) -> str:
    """A value typed on the terminal, not echoed (for `--set KEY` without a value)."""
    if not sys.stdin.isatty():
        raise WsgishipError(f"--set {key}: no value given and {key} is not set in your "
                            f"environment; give --set {key}=VALUE or export {key}")
    return getpass.getpass(f"value of {key} (not echoed): ")


@task(auto_shortflags=False, iterable=["set_", "unset"], help={
    "set_": "KEY=VALUE into the shared .env (repeatable); KEY alone takes the value from your "
            "environment, or asks for it",
    "unset": "KEY: remove it from the shared .env (repeatable)",
    "apply": "restart the live release at once (blue/green: started beside itself, checked, "
             "switched to) instead of at the next deploy",
})
@clean_exit
def env(c: Any, set_: list[str] | None = None, unset: list[str] | None = None,
        apply: bool = False) -> None:
    """List the app's variables (masked: KEY=**** with a length), or change the shared .env."""
    sets = envvars.assignments(set_ or [], "--set", ask=ask)
    unsets = [envvars.check_name(k, "--unset") for k in unset or []]
    both = sorted(set(sets) & set(unsets))
    if both:
        raise WsgishipError(f"--set and --unset both name {', '.join(both)}")
    utf8_stdio()
    if not sets and not unsets and not apply:

        def listed(t: Target, printer: Printer) -> None:
            lines, notes = show_env(t.remote, t.host.app)
            for line in lines:
                printer.plain(t.label, line)
            for note in notes:
                printer.note(t.label, note)

        on_each_host(c, "env", listed, "not read")
        return

    def one(t: Target, printer: Printer) -> None:
        out = Reporter(t.label, printer)
        out.line(EnvChange(t.remote, t.host.app, out, sets, unsets, apply).run())

    on_each_host(c, "env", one, "not changed")


@task(auto_shortflags=False, help={
    "local": "the file here to upload",
    "remote": "shared/NAME: where it goes, in the app's shared directory",
})
@clean_exit
def put(c: Any, local: str = "", remote: str = "") -> None:
    """Upload a file into the app's shared directory, mode 600, the app's (content never shown).

    fab put -H HOST --local FILE --remote shared/NAME
    """
    if not local or not remote:
        raise WsgishipError("fab put -H HOST --local FILE --remote shared/NAME")
    path = Path(local).expanduser()
    if not path.is_file():
        raise WsgishipError(f"--local {local}: no such file")
    name = envvars.shared_name(remote)

    def one(t: Target, printer: Printer) -> None:
        out = Reporter(t.label, printer)
        out.line(put_file(t.remote, t.host.app, out, path, name))

    on_each_host(c, "put", one, "not put")
