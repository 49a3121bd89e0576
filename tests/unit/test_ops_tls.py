"""wsgiship.ops.tls and its place in `fab setup` (steps, the tls step's line and errors, your own
key on stdin only) and in deploys (the health checks' port and scheme, the URL printed)."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from pathlib import Path

import certbot_outputs
import certgen
import pytest

from wsgiship import config
from wsgiship.commands import setup as setup_cmds
from wsgiship.commands import tls as cmds
from wsgiship.config import Host
from wsgiship.errors import ConfigError, RemoteError, WsgishipError
from wsgiship.ops import tls as ops
from wsgiship.ops.publish import probes, site_url
from wsgiship.ops.setup import steps
from wsgiship.remote import Result

HOSTS = """\
app:
  name: shop
  wsgi: "shop:app"
  server_name: shop.example.com www.shop.example.com
  https_port: 8443
hosts:
  acme: {host: 10.0.0.1, tls: {email: ops@shop.example.com}}
  own: {host: 10.0.0.2, tls: {certificate: certs/site.pem, key: certs/site.key}}
  plain: {host: 10.0.0.3}
  dep: {host: 10.0.0.4, user: deploy, authorized_keys: [], tls: {email: ops@shop.example.com}}
"""
NAMES = ("shop.example.com", "www.shop.example.com")
LE = "https://acme-v02.api.letsencrypt.org/directory"


@pytest.fixture
def host(write_hosts: Callable[..., Path], tmp_path: Path) -> Callable[[str], Host]:
    certgen.write(tmp_path / "certs", certgen.make(NAMES))
    return config.load(write_hosts(HOSTS)).host


class Stub:
    """The Remote the tls step talks to: answers `result`, keeps what it was sent."""

    label = "web1"

    def __init__(self, result: Result) -> None:
        self.result, self.sent = result, []

    def run(self, body: str, **kw: object) -> Result:
        self.sent.append(("run", body, None, kw))
        return self.result

    def feed(self, body: str, data: bytes, **kw: object) -> Result:
        self.sent.append(("feed", body, data, kw))
        return self.result

    def error(self, message: str, detail: str = "") -> WsgishipError:
        return (RemoteError(message, detail, host=self.label) if detail
                else WsgishipError(message, host=self.label))


def test_steps_with_tls(host) -> None:
    names = [name for name, _ in steps(host("acme"))]
    assert names == ["os", "packages", "layout", "uv", "service", "site", "nginx", "tls"]
    assert [n for n, _ in steps(host("dep"))][-3:] == ["sudo rules", "nginx", "tls"]
    assert "tls" not in dict(steps(host("plain")))
    got = dict(steps(host("acme")))
    assert got["packages"] == setup_cmds.packages(("certbot",), compiler=False)
    assert "certbot" not in dict(steps(host("own")))["packages"]
    assert cmds.site_guard("shop", "acme", "shop.example.com www.shop.example.com") in got["site"]
    assert "--cert-name wsgiship-shop -d shop.example.com -d www.shop.example.com" in got["tls"]
    assert "/etc/wsgiship/tls/shop" in dict(steps(host("own")))["tls"]


def test_a_wrong_own_certificate_stops_setup_before_it_connects(host, tmp_path: Path) -> None:
    certgen.write(tmp_path / "certs", certgen.make(("other.example",)))
    with pytest.raises(ConfigError, match=r"hosts\.own\.tls: tls\.certificate covers other\."
                                          r"example, not shop\.example\.com"):
        steps(host("own"))


def test_acme_lines(host) -> None:
    h = host("acme")
    fresh = Result(0, "names=shop.example.com www.shop.example.com\nuntil=2027-02-27\n"
                      "action=obtained\nsite=1\n", "")
    remote = Stub(fresh)
    assert ops.run_step(remote, h, "BODY") == (True, (
        f"changed: certificate for shop.example.com, www.shop.example.com from {LE}, valid until"
        f" 2027-02-27; HTTPS site installed"))
    assert remote.sent[0][:2] == ("run", "BODY") and remote.sent[0][3]["root"] is True
    kept = Result(0, "names=www.shop.example.com shop.example.com\nuntil=2027-02-27\n"
                     "action=kept\nsite=0\n", "")
    assert ops.run_step(Stub(kept), h, "BODY") == (False, (
        f"certificate for shop.example.com, www.shop.example.com from {LE}, valid until"
        f" 2027-02-27 (kept: more than 30 days left)"))


def test_acme_failures_are_one_line(host) -> None:
    h = host("acme")
    failed = Result(cmds.CERTBOT_FAILED, certbot_outputs.NOT_FOUND, "")
    with pytest.raises(WsgishipError) as err:
        ops.run_step(Stub(failed), h, "BODY")
    assert not isinstance(err.value, RemoteError)   # no detail lines under it
    assert str(err.value).startswith(f"web1: tls: the ACME server {LE} could not verify"
                                     f" shop.example.com (unauthorized: ")
    assert "\n" not in str(err.value)
    unreachable = Result(cmds.CERTBOT_FAILED, certbot_outputs.UNKNOWN_HOST, "")
    with pytest.raises(WsgishipError, match=f"^web1: tls: cannot reach the ACME server {LE}: Name"
                                            " or service not known$"):
        ops.run_step(Stub(unreachable), h, "BODY")
    refused = Result(cmds.NGINX_REFUSED, "", "nginx -t failed ...: [emerg] x")
    with pytest.raises(RemoteError) as err:
        ops.run_step(Stub(refused), h, "BODY")
    assert err.value.message == "tls: nginx -t refused the site with HTTPS; the site is as it was"
    assert err.value.detail == "nginx -t failed ...: [emerg] x"  # nginx's words below it


def test_own_certificate_goes_on_stdin_never_on_a_command_line(host, tmp_path: Path) -> None:
    h = host("own")
    body = dict(steps(h))["tls"]
    key = (tmp_path / "certs/site.key").read_bytes()
    remote = Stub(Result(0, "cert=changed\nsite=1\n", ""))
    changed, line = ops.run_step(remote, h, body)
    kind, sent, data, kw = remote.sent[0]
    assert kind == "feed" and kw["priv"] is True
    assert sent == f"$SUDO bash -c {__import__('shlex').quote(body)}\n"
    for secret in (key, base64.b64encode(key)):
        assert secret.decode() not in sent and secret.decode() not in line
    assert base64.b64decode(json.loads(data)["privkey.pem"]) == key
    assert changed and line.startswith(f"changed: certificate for shop.example.com,"
                                       f" www.shop.example.com (your own: {tmp_path}/certs/"
                                       f"site.pem), valid until ")
    assert line.endswith("; HTTPS site installed")
    same = Stub(Result(0, "cert=same\nsite=0\n", ""))
    assert ops.run_step(same, h, body)[0] is False


def test_health_checks_and_the_url(host) -> None:
    class R:
        class conn:  # noqa: N801 - the attribute Remote has
            host = "10.0.0.9"

    assert probes(host("plain").app) == (80, False, "")
    assert probes(host("acme").app) == (8443, True, "")
    assert probes(host("own").app) == (8443, True, "/etc/wsgiship/tls/shop/fullchain.pem")
    assert site_url(R, host("plain").app) == "http://shop.example.com/"
    assert site_url(R, host("acme").app) == "https://shop.example.com:8443/"
