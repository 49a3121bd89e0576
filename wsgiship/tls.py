"""HTTPS for the app's site: the `tls` settings of hosts.yaml, what they ask of the rest of the
app's settings, and where the certificate lives on the server.

Two kinds. `acme` (tls.email): certbot obtains one certificate for every server_name from an
ACME server (Let's Encrypt unless tls.acme_server says otherwise), proving the names by HTTP-01
through a webroot the site serves. `own` (tls.certificate + tls.key): files of yours, checked on
this machine (certs.py) and uploaded by `fab setup`. Either way the paths nginx reads follow
from the app's name and the kind, so a release renders the whole site from its settings alone.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ConfigError

LETS_ENCRYPT = "https://acme-v02.api.letsencrypt.org/directory"
ACME_LIVE = "/etc/letsencrypt/live"
ACME_RENEWAL = "/etc/letsencrypt/renewal"
OWN_DIR = "/etc/wsgiship/tls"            # /etc/wsgiship/tls/<app>/{fullchain,privkey}.pem
WEBROOT_DIR = "/var/lib/wsgiship/acme"   # /var/lib/wsgiship/acme/<app>: HTTP-01's files
RENEW_BEFORE_DAYS = 30                   # certbot's --keep-until-expiring keeps one longer valid
RELOAD_HOOK = "systemctl reload nginx"   # certbot's deploy hook: a renewed certificate is served
ACME_KEYS = ("email", "acme_server")
OWN_KEYS = ("certificate", "key")


@dataclass(frozen=True)
class Tls:
    """The app's HTTPS settings (hosts.yaml `tls`)."""

    email: str = ""                       # ACME: the account's address
    acme_server: str = LETS_ENCRYPT       # ACME: the directory URL
    certificate: Path | None = None       # own: the chain, leaf first (resolved path)
    key: Path | None = None               # own: its private key (resolved path)
    redirect: bool = True                 # HTTP answers 301 to HTTPS (not the ACME challenges)
    hsts: int = 0                         # Strict-Transport-Security max-age; 0: no header
    # where the settings came from, for errors: `hosts.yaml: app.` or `hosts.yaml: hosts.web1.`
    origin: str = field(default="", compare=False)

    @property
    def kind(self) -> str:
        return "acme" if self.email else "own"


def cert_name(app_name: str) -> str:
    """certbot's name of the app's certificate (its --cert-name, its dir in live/)."""
    return f"wsgiship-{app_name}"


def own_dir(app_name: str) -> str:
    return f"{OWN_DIR}/{app_name}"


def webroot(app_name: str) -> str:
    return f"{WEBROOT_DIR}/{app_name}"


def files(app_name: str, kind: str) -> tuple[str, str]:
    """(the chain, the key) nginx reads for the app's certificate of this kind."""
    base = f"{ACME_LIVE}/{cert_name(app_name)}" if kind == "acme" else own_dir(app_name)
    return f"{base}/fullchain.pem", f"{base}/privkey.pem"


def merge(base: Mapping[str, Any] | None, override: Mapping[str, Any]) -> dict[str, Any]:
    """A host's `tls` over the app's, one level deep; naming the other kind replaces the app's
    kind (a host with its own certificate where the app has an ACME email)."""
    out = dict(base or {})
    if any(k in override for k in OWN_KEYS):
        out = {k: v for k, v in out.items() if k not in ACME_KEYS}
    if any(k in override for k in ACME_KEYS):
        out = {k: v for k, v in out.items() if k not in OWN_KEYS}
    return {**out, **override}


def build(cleaned: Mapping[str, Any], base: Path, origin: str) -> Tls:
    """Tls from the checked keys of a `tls` mapping: exactly one kind; paths resolved against
    hosts.yaml's dir. `origin` starts each error (`hosts.yaml: app.`)."""
    acme = "email" in cleaned
    own = [k for k in OWN_KEYS if k in cleaned]
    if acme and own:
        raise ConfigError(f"{origin}tls: email (a certificate from Let's Encrypt) and "
                          f"certificate/key (your own) exclude each other: keep one")
    if not acme and not own:
        raise ConfigError(f"{origin}tls: needs email (a certificate from Let's Encrypt, e.g. "
                          f"email: ops@example.com) or certificate and key (your own files)")
    if own and len(own) == 1:
        missing = "key" if own == ["certificate"] else "certificate"
        what = ("the private key of tls.certificate" if missing == "key"
                else "the chain (leaf first) that goes with tls.key")
        raise ConfigError(f"{origin}tls.{missing}: missing: name {what}")
    if "acme_server" in cleaned and not acme:
        raise ConfigError(f"{origin}tls.acme_server: only with tls.email (an ACME account); "
                          f"your own certificate needs none")
    values = dict(cleaned)
    for key in OWN_KEYS:
        if key in values:
            values[key] = (base / Path(values[key]).expanduser()).resolve()
    return Tls(**values, origin=origin)


def check_app(tls: Tls, server_name: str, http_port: int, https_port: int,
              origin_ports: str) -> None:
    """What HTTPS asks of the app's other settings: names a certificate can hold (real ones
    that HTTP-01 can prove, for ACME), and a port of its own."""
    names = server_name.split()
    if "_" in names or not names:
        raise ConfigError(f'{tls.origin}tls: needs the site\'s names in server_name, not "_" '
                          f"(nginx's catch-all): e.g. server_name: shop.example.com")
    if https_port == http_port:
        raise ConfigError(f"{origin_ports}https_port: {https_port} is http_port too: HTTP and "
                          f"HTTPS need a port each (https_port defaults to 443)")
    if tls.kind != "acme":
        return
    for name in names:
        if "*" in name:
            raise ConfigError(
                f"{tls.origin}tls: an ACME server cannot verify {name} over HTTP-01 (a wildcard "
                f"needs DNS-01): list the names in server_name, or bring your own certificate "
                f"(tls.certificate, tls.key)")
        if name.lower() == "localhost" or name.lower().endswith(".localhost") or _is_ip(name):
            what = "an IP address" if _is_ip(name) else "a local name"
            raise ConfigError(
                f"{tls.origin}tls: an ACME server cannot issue a certificate for {name} ({what}):"
                f" use the site's public names in server_name, or your own certificate "
                f"(tls.certificate, tls.key)")


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def names(server_name: str) -> tuple[str, ...]:
    """The certificate's names: server_name's, lower case, each once, in their order."""
    return tuple(dict.fromkeys(n.lower() for n in server_name.split()))
