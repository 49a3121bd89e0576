"""`fab rollback` as its stages: starting, choosing the target, publishing it (switch, reload,
health check, on the server as one job: ops/publish), finishing (log). When the target fails
its check, the job switches back to the release it came from. Before the switch, the
migration files of both releases are compared (wsgiship/migrations.py): migrations the target
lacks are named with the command to migrate down, as a warning that never stops the rollback."""

from __future__ import annotations

from dataclasses import dataclass

from .. import migrations
from ..commands import checks, nginx
from ..commands import migrations as cmds
from ..config import App
from ..errors import WsgishipError
from ..facts import rollback_target
from ..output import Reporter
from ..remote import Remote
from .publish import publish_job, recovering, run_job
from .session import Session, locked, pause_point
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
            self.check_migrations(s, from_release, target)
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

    def check_migrations(self, s: Session, from_release: str, target: str) -> None:
        """Warn when `target` lacks migrations `from_release` has, naming the command to
        migrate down with; never stops the rollback (a failed check says so and goes on)."""
        if not from_release:
            return
        res = self.remote.run(cmds.listing(s.paths, [from_release, target]), check=False,
                              what="list the releases' migrations")
        if not res.ok:
            self.out.line(f"note: could not compare the releases' migrations (exit {res.code}); "
                          f"rolling back")
            return
        listed = migrations.parse(res.stdout)
        gaps = migrations.compare(listed.get(from_release, migrations.Listing()),
                                  listed.get(target, migrations.Listing()))
        for line in migrations.warning(gaps, self.remote.label, from_release, target):
            self.out.line(line)
