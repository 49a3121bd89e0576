"""`fab rollback` as its stages: starting, choosing the target, publishing it, verifying it,
finishing (log); `failed` switches back to the release it came from."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

from ..commands import checks, nginx
from ..config import App
from ..errors import WsgishipError, reason_of
from ..facts import rollback_target
from ..output import Reporter
from ..remote import Remote
from .publish import publishing, recovering, verifying
from .session import Session, locked
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
            try:
                publishing(s, target, from_release)
                verifying(s, target)
            except BaseException as exc:
                if from_release:
                    s.cleanup(partial(self.failed, s, exc, target, from_release))
                raise
            s.record(target, "ok", **{"from": from_release})
            return target

    def failed(self, s: Session, exc: BaseException, target: str, from_release: str) -> None:
        self.out.line(f"rollback failed ({reason_of(exc)}); switching back to {from_release}")
        publishing(s, from_release, target, leaving_failed=True)
        verifying(s, from_release)
        s.record(target, "failed", reason=reason_of(exc), **{"from": from_release})
