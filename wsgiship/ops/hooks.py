"""The app's hooks: commands run at a point of the deploy, on the server (in the new release,
with its venv and env, as the app's user) or on this machine (in the app's source)."""

from __future__ import annotations

import os
import subprocess

from ..commands.appenv import run_in
from ..errors import RemoteError
from ..privilege import as_app
from ..shell import q
from .session import Session

# where each hook point sits in the deploy's stages (points at the same place run in this order)
POINTS = {"first_deploy": ("before", "publishing"), "before_switch": ("before", "publishing"),
          "after_switch": ("after", "publishing")}
# points that run only on a host with no current release (its first deploy, until one succeeds)
FIRST_ONLY = ("first_deploy",)


def run_hooks(s: Session, point: str, release: str, revision: str) -> None:
    """Run the app's hooks for `point`, each timed; a failing hook raises with its output."""
    variables = {"WSGISHIP_RELEASE": release, "WSGISHIP_REVISION": revision,
                 "WSGISHIP_HOST": s.remote.label, "WSGISHIP_STAGE": point}
    hooks = s.app.hooks.get(point, ())
    for i, hook in enumerate(hooks, 1):
        # named by point and number, never by its text (a command may carry a token)
        name = f"hook {point} #{i}"
        with s.out.step(f"hook {point}") as st:
            st.detail = f"{'local' if hook.local else 'remote'} #{i} of {len(hooks)}"
            if hook.local:
                res = subprocess.run(hook.command, shell=True, capture_output=True, text=True,
                                     cwd=s.app.source, env={**os.environ, **variables})
                if res.returncode != 0:
                    raise RemoteError(f"local {name} failed (exit {res.returncode})",
                                      (res.stdout + res.stderr).strip(), host=s.remote.label)
                continue
            exports = " ".join(f"{k}={q(v)}" for k, v in variables.items())
            body = f"export {exports}\n" + run_in(s.paths.release(release),
                                                   ["bash", "-c", hook.command])
            s.remote.run(as_app("bash", "-c", body), app_user=s.app_user, what=name)
