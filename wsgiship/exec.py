"""`fab exec`: run a command in the current release as the app's user, with its venv and env."""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence

from . import envvars
from .commands import exec as cmds
from .commands import shared
from .hosts import Target
from .layout import paths_for
from .output import PrefixedOut
from .remote import Remote, run_attached
from .shell import bash


def stage_env(remote: Remote, python: str, user: str, env: Mapping[str, str]) -> str:
    """The explicit variables in a file of the app's user (mode 600), sent on stdin: their
    values are never on a command line. Its path."""
    res = remote.feed(shared.stage_env(python), envvars.env_text(env).encode(),
                      app_user=user, what="pass the --env variables")
    path = res.facts().get("file", "")
    if not res.ok or not path:
        raise remote.failure(res, "pass the --env variables")
    return path


def run_exec(target: Target, argv: Sequence[str], interactive: bool,
             out: PrefixedOut | None = None, env: Mapping[str, str] | None = None) -> int:
    """Run argv in the current release as the app's user; stream its output; its exit code.
    `env`: variables passed explicitly (over the app's own)."""
    remote, app = target.remote, target.host.app
    p = paths_for(app)
    remote.open()
    try:
        res = remote.run(cmds.exec_probe(p), check=False, what="find the current release")
        if res.code == cmds.NOT_DEPLOYED:
            raise remote.error(f"nothing deployed in {p.deploy_to} yet (no current release "
                               f"with a venv): fab deploy -H {remote.label}")
        if not res.ok:
            raise remote.error(f"find the current release failed (exit {res.code})", res.output)
        login, user = remote.user, app.runs_as(remote.user)
        staged = stage_env(remote, app.python, user, env) if env else ""
        body = cmds.exec_command(p, argv, staged)
        try:
            if user == login:
                return run_attached(remote, bash(body), interactive=interactive,
                                    stdin=sys.stdin, out=out)
            if login == "root":
                return run_attached(remote, cmds.as_user(body, user, login),
                                    interactive=interactive, stdin=sys.stdin, out=out)
            return run_attached(remote, bash(body), sudo_user=user, interactive=interactive,
                                stdin=sys.stdin, out=out)
        finally:
            if out is not None:
                out.close()
    finally:
        remote.close()
