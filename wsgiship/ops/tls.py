"""`fab setup`'s HTTPS: the `tls` step (after nginx runs: an ACME server's HTTP-01 check needs
the site served) and what the other steps need for it (certbot among the packages; the `site`
step waits for the certificate).

    tls  changed: certificate for shop.example.com, www.shop.example.com from
         https://acme-v02.api.letsencrypt.org/directory, valid until 2027-02-27
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime

from .. import acme, certs
from .. import tls as tlsconf
from ..commands import tls as cmds
from ..config import App, Host
from ..layout import CONFIG_DIR, paths_for
from ..remote import Remote, Result
from ..render import render
from ..shell import q


def packages(app: App) -> tuple[str, ...]:
    """Debian's certbot, for an ACME certificate only."""
    return ("certbot",) if app.tls is not None and app.tls.kind == "acme" else ()


def site_guard(app: App) -> str:
    """The `site` step's wait for the certificate ("" without tls)."""
    if app.tls is None:
        return ""
    return cmds.site_guard(app.name, app.tls.kind, app.server_name)


def own_certificate(app: App) -> certs.OwnCertificate:
    """Your certificate and key, read and checked here (ConfigError when wrong)."""
    assert app.tls is not None
    return certs.load_own(app.tls, tlsconf.names(app.server_name))


def step_script(host: Host, app_user: str) -> str:
    """The tls step's root script. Your own certificate is checked here first, so a wrong one
    stops `fab setup` before it connects."""
    app = host.app
    assert app.tls is not None
    p = paths_for(app)
    full = render(app, "setup", app_user, "")[f"{CONFIG_DIR}/nginx.conf"]
    if app.tls.kind == "own":
        own_certificate(app)
        return cmds.own(p, full)
    http_only = render(app, "setup", app_user, "", https=False)[f"{CONFIG_DIR}/nginx.conf"]
    return cmds.acme(p, app.server_name, app.tls.email, app.tls.acme_server, full, http_only)


def _extras(facts: dict[str, str]) -> list[str]:
    out = ["HTTPS site installed"] if facts.get("site") == "1" else []
    return out + ([facts["did"]] if facts.get("did") else [])


def _shown(held: str, server_name: str) -> str:
    """The certificate's names, in server_name's order when they are server_name's."""
    names = tlsconf.names(server_name)
    return ", ".join(names if sorted(names) == sorted(held.split()) else held.split())


def _days_left(until: datetime) -> str:
    days = (until - datetime.now(UTC)).days
    return f" (in {days} days: renew it soon)" if days < tlsconf.RENEW_BEFORE_DAYS else ""


def run_step(remote: Remote, host: Host, body: str) -> tuple[bool, str]:
    """Run the tls step; (whether it changed something, its line). A failure raises one line:
    what the ACME server said and what to check, or that it could not be reached."""
    app = host.app
    assert app.tls is not None
    tls = app.tls
    if tls.kind == "own":
        own = own_certificate(app)
        data = json.dumps({name: base64.b64encode(pem).decode() for name, pem in
                           (("fullchain.pem", own.chain_pem), ("privkey.pem", own.key_pem))})
        res = remote.feed(f"$SUDO bash -c {q(body)}\n", data.encode(), priv=True,
                          what="setup: tls", timeout=300)
        _check(remote, res, app)
        facts = res.facts()
        line = (f"certificate for {', '.join(own.names)} (your own: {tls.certificate}), valid"
                f" until {own.not_after:%Y-%m-%d}{_days_left(own.not_after)}")
        changed = facts.get("cert") == "changed"
    else:
        res = remote.run(body, root=True, check=False, what="setup: tls", timeout=900)
        _check(remote, res, app)
        facts = res.facts()
        names = _shown(facts.get("names", ""), app.server_name)
        line = f"certificate for {names} from {tls.acme_server}, valid until {facts.get('until')}"
        changed = facts.get("action") in ("obtained", "renewed")
        if not changed:
            line += f" (kept: more than {tlsconf.RENEW_BEFORE_DAYS} days left)"
    extras = _extras(facts)
    if changed or extras:
        return True, "changed: " + "; ".join([line, *extras])
    return False, line


def _check(remote: Remote, res: Result, app: App) -> None:
    if res.ok:
        return
    assert app.tls is not None
    if res.code == cmds.CERTBOT_FAILED:
        raise remote.error(acme.failure(res.output, tlsconf.names(app.server_name),
                                        app.tls.acme_server))
    if res.code == cmds.NGINX_REFUSED:
        raise remote.error("tls: nginx -t refused the site with HTTPS; the site is as it was",
                           res.output)
    raise remote.error(f"setup step tls failed (exit {res.code})", res.output)
