"""`fab rollback` as its stages: starting, choosing the target, publishing it (switch, reload,
health check, on the server as one job: ops/publish), finishing (log). When the target fails
its check, the job switches back to the release it came from."""

from __future__ import annotations

from dataclasses import dataclass

from ..commands import checks, nginx
from ..config import App
from ..errors import WsgishipError
from ..facts import rollback_target
from ..output import Reporter
from ..remote import Remote
from .publish import publish_job, recovering, run_job
from .session import locked, pause_point
from .state import read_state


@dataclass
class Rollback:
    remote: Remote
    app: App
    out: Reporter
    to: str = ""

    def run(self) -> str:
        """Roll back and return the release now current; raise WsgishipError on failure."""
        with locked(self.remote, self.app, self.out, "rollback") as s:
            recovering(s)
            state = read_state(self.remote, self.app)
            if s.ended_watch and state.current != s.ended_watch:
                # the deploy in its watch window went back itself: that was the rollback
                self.out.line(f"release {s.ended_watch} left its watch window by going back: "
                              f"{state.current} serves")
                return state.current
            try:
                target = rollback_target(state, self.to)
            except WsgishipError as exc:
                exc.host = self.remote.label
                raise
            from_release = state.current
            self.out.line(f"rolling back {from_release} -> {target}")
            label = self.remote.label
            # the target's service config and site must be installable before anything moves
            self.remote.run(checks.unit_check(s.paths, target, label)
                            + nginx.site_check(s.paths, target, label),
                            priv=True, what="service config and site check")
            pause_point(self.out, "before:publishing")
            job = publish_job(s, target, from_release, back=bool(from_release))
            done = run_job(s, job, target, f"rollback failed ({{reason}}); switching back to "
                                           f"{from_release}",
                           record=s.entries(target, from_release, **{"from": from_release}))
            if done.error is not None:
                s.record(target, "failed", reason=done.reason, **{"from": from_release})
                raise done.error
            pause_point(self.out, "before:finishing")
            s.record(target, "ok", **{"from": from_release})
            return target
