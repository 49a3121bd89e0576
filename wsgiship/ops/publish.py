"""Stages shared by deploy and rollback: publishing (switch `current`, make uWSGI then nginx
serve it) and verifying (the health check through nginx)."""

from __future__ import annotations

import os

from ..commands import health, nginx, services
from ..commands import release as rel
from ..config import App
from ..errors import RemoteError, WsgishipError
from ..remote import Remote
from .session import Session
from .state import read_state


def health_host(app: App) -> str:
    """The Host header of the health check: the first server_name, unless it is a wildcard."""
    first = app.server_name.split()[0]
    return "localhost" if first in ("_", "") or "*" in first else first


def site_url(remote: Remote, app: App) -> str:
    host = health_host(app)
    if host == "localhost":
        host = remote.conn.host
    port = "" if app.http_port == 80 else f":{app.http_port}"
    return f"http://{host}{port}/"


def publishing(s: Session, release: str, previous: str, leaving_failed: bool = False) -> None:
    """Switch `current` to a release and make the services serve it, in that order.
    `leaving_failed`: `previous` failed (it may hang): its workers are killed, not waited for."""
    p, remote, app = s.paths, s.remote, s.app
    with s.out.step("switch") as st:
        remote.run(rel.switch(p, release), what="switch current")
        st.detail = f"current -> releases/{release}"
    with s.out.step("uwsgi") as st:
        res = remote.run(services.install(p), priv=True, what="install service and site")
        changed = "1" if "unit=installed" in res.stdout else "0"
        site_new = "site=installed" in res.stdout
        res = remote.run(f"UNIT_CHANGED={changed}\n"
                         + services.reload_uwsgi(p, release, previous, app.processes,
                                                 kill_previous=leaving_failed),
                         priv=True, app_user=s.app_user, what="reload uWSGI")
        facts = res.facts()
        st.detail = f"{facts.get('uwsgi', '')}, {facts.get('workers', '?')} workers on the release"
    with s.out.step("nginx") as st:
        res = remote.run(nginx.reload_nginx(p, force=site_new), priv=True, what="reload nginx")
        st.detail = res.facts().get("nginx", "")


def verifying(s: Session, release: str, mark_ok: bool = False) -> None:
    """The health check: the release answers the expected status through nginx, or an error
    with what it answered and the app log's last lines. `mark_ok`: a release that passes is
    no longer pending (in the same round trip)."""
    app, h, remote = s.app, s.app.health, s.remote
    with s.out.step("health") as st:
        res = remote.run(
            health.health_check(app.http_port, health_host(app), h.path, h.status, release,
                                h.timeout) + (rel.mark_ok(s.paths, release) if mark_ok else ""),
            check=False, what="health check", timeout=h.timeout + 30)
        if not res.ok:
            facts = res.facts()
            body = "\n".join(line for line in res.stdout.splitlines()
                             if line.split("=")[0] not in ("status", "release", "waited"))
            logs = remote.run(services.error_log_tail(s.paths, 12), check=False,
                              app_user=s.app_user).stdout
            answered = facts.get("status", "none")
            answer = "no answer" if answered == "none" else f"answered {answered}"
            if facts.get("release") not in (release, "none", None):
                answer += f" from release {facts.get('release')} (still the old workers)"
            raise remote.error(
                f"health check failed: GET http://{health_host(app)}:{app.http_port}{h.path} "
                f"{answer}, expected {h.status} from release {release} "
                f"(waited {facts.get('waited', '?')}s)",
                ("--- response (first lines) ---\n" + body + "\n" if body.strip() else "")
                + ("--- app log (last lines) ---\n" + logs if logs.strip() else ""),
                kind=RemoteError)
        st.detail = f"{h.path} -> {res.facts().get('status')}"


def recovering(s: Session) -> str:
    """What a client that died left, resolved under the lock: a pending release that is not
    current is marked failed; a pending release that is current is published and verified now,
    and left for the newest good release if that fails. Returns the current release after it."""
    current = os.path.basename(s.facts.get("current", ""))
    pending = s.facts.get("pending", "").split()
    for name in pending:
        if name != current:
            s.remote.run(rel.mark_failed(s.paths, name, "abandoned: its deploy never finished"),
                         what="mark an abandoned release failed", check=False)
    if current not in pending:
        return current
    s.out.line(f"release {current} is current but was never verified (its deploy died): "
               f"verifying it now")
    good = read_state(s.remote, s.app).previous_good()
    try:
        publishing(s, current, good.name if good else "")
        verifying(s, current, mark_ok=True)
    except WsgishipError as exc:
        s.remote.run(rel.mark_failed(s.paths, current, f"unverified, then {exc.reason}"),
                     what="mark failed", check=False)
        if good is None:
            raise
        s.out.line(f"release {current} failed its check ({exc.reason}); back to {good.name}")
        publishing(s, good.name, current, leaving_failed=True)
        verifying(s, good.name)
        s.record(current, "failed", reason=exc.reason, rolled_back_to=good.name)
        return good.name
    s.record(current, "ok", recovered=True)
    return current

