"""fab exec."""

from __future__ import annotations

import sys
from typing import Any

from fabric import task
from invoke import Exit

from wsgiship import envvars, hosts
from wsgiship.errors import WsgishipError
from wsgiship.exec import run_exec
from wsgiship.hosts import Target
from wsgiship.output import PrefixedOut, Printer, utf8_stdio

from .common import clean_exit, serve_once


def _take_command() -> list[str]:
    """The words after `--` of `fab exec -H HOST -- COMMAND ...`, each kept whole.

    Fabric 3.2.3 cannot give a task the words after `--`: it joins them with spaces (losing the
    quoting), raises NothingToDo from its pre-task expansion whenever they are there, and would
    also run them itself on every host. So while the fabfile loads (after Fabric parsed the core
    arguments, before it plans the calls), exec takes them out of the parse result, from the
    program's argv.
    """
    try:
        from fabric.main import program

        core, argv = program.core, list(program.argv)
    except AttributeError:  # not run by `fab`
        return []
    if not core.remainder or "exec" not in core.unparsed or "--" not in argv:
        return []
    core.remainder = ""
    return argv[argv.index("--") + 1:]


COMMAND = _take_command()


@task(name="exec", auto_shortflags=False, iterable=["env"], help={
    "env": "KEY=VALUE: a variable for the command, over the app's own (repeatable); KEY alone "
           "takes your local value. Nothing else of your local environment is passed",
})
@clean_exit
def exec_(c: Any, env: list[str] | None = None) -> None:
    """Run a command in the current release, as the app's user, with its venv and env: -- CMD.
    Your local environment is not passed: give a variable with --env KEY=VALUE (or --env KEY)."""
    given = envvars.assignments(env or [], "--env")
    if not COMMAND:
        raise WsgishipError("nothing to run: fab exec -H HOST -- COMMAND [ARGS...]")
    targets = serve_once(c, "exec")
    if targets is None:
        return
    utf8_stdio()
    interactive = len(targets) == 1 and sys.stdin is not None and sys.stdin.isatty()
    printer = Printer()

    def one(t: Target) -> int:
        out = PrefixedOut(t.label, printer) if len(targets) > 1 else None
        return run_exec(t, COMMAND, interactive, out, given)

    outcomes = hosts.serial(targets, one, stop=lambda o: not o.ok or o.value != 0)
    hosts.finish(outcomes, printer, "not run on")
    last = [o for o in outcomes if o.ran][-1]
    if last.value:
        rest = [o.target.label for o in outcomes if not o.ran]
        if rest:
            printer.note(last.target.label, f"exit {last.value}; not run on: {', '.join(rest)}")
        raise Exit(code=last.value)
