"""hosts.yaml's `tls` and `https_port`: the keys, exactly one kind, names an ACME server can
verify, a port of its own, paths resolved against hosts.yaml, a host's override (the schema's
checks and config's errors; the certificate's own checks: test_certs.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from wsgiship import config
from wsgiship.errors import ConfigError
from wsgiship.tls import LETS_ENCRYPT, Tls, files, merge, names, webroot

APP = ("app:\n  name: shop\n  wsgi: 'shop:app'\n"
       "  server_name: shop.example.com www.shop.example.com\n")


def load(write_hosts, app_extra: str = "", hosts: str = "hosts: {web1: {}}\n") -> config.Inventory:
    return config.load(write_hosts(APP + app_extra + hosts))


def error(write_hosts, app_extra: str, hosts: str = "hosts: {web1: {}}\n") -> str:
    with pytest.raises(ConfigError) as err:
        load(write_hosts, app_extra, hosts).host("web1")
    text = str(err.value)
    assert "\n" not in text
    return text


def test_no_tls_by_default(write_hosts) -> None:
    app = load(write_hosts).host("web1").app
    assert app.tls is None and app.https_port == 443


def test_acme(write_hosts) -> None:
    app = load(write_hosts, "  tls: {email: ops@shop.example.com}\n").host("web1").app
    assert app.tls == Tls(email="ops@shop.example.com", acme_server=LETS_ENCRYPT)
    assert app.tls.kind == "acme" and app.tls.redirect is True and app.tls.hsts == 0
    assert files("shop", "acme") == ("/etc/letsencrypt/live/wsgiship-shop/fullchain.pem",
                                     "/etc/letsencrypt/live/wsgiship-shop/privkey.pem")
    assert webroot("shop") == "/var/lib/wsgiship/acme/shop"


def test_own_certificate_paths_are_relative_to_hosts_yaml(write_hosts, tmp_path: Path) -> None:
    app = load(write_hosts, "  https_port: 8443\n  tls: {certificate: certs/shop.pem, key: "
                            "certs/shop.key, redirect: false, hsts: 31536000}\n").host("web1").app
    assert app.tls == Tls(certificate=tmp_path / "certs/shop.pem", key=tmp_path / "certs/shop.key",
                          redirect=False, hsts=31536000)
    assert app.tls.kind == "own" and app.https_port == 8443
    # the files are read by fab setup only (a deploy from CI needs no key): not at load
    assert files("shop", "own") == ("/etc/wsgiship/tls/shop/fullchain.pem",
                                    "/etc/wsgiship/tls/shop/privkey.pem")


@pytest.mark.parametrize("extra, message", [
    ("  tls: yes\n", 'app.tls: expected a mapping with email (a certificate from Let\'s Encrypt),'
                     ' or certificate and key (your own), got true'),
    ("  tls: {emial: a@b.example}\n", "app.tls.emial: unknown key; did you mean 'email'?"),
    ("  tls: {email: ops}\n", 'app.tls.email: expected an email address such as ops@example.com'
                              ' (the ACME account\'s), got "ops"'),
    ("  tls: {email: a@b.example, acme_server: 'http://acme.test/dir'}\n",
     'app.tls.acme_server: expected an ACME directory URL starting with https://, got '
     '"http://acme.test/dir"'),
    ("  tls: {email: a@b.example, hsts: -1}\n", "app.tls.hsts: expected an integer from 0 to"
                                                " 157680000, got -1"),
    ("  tls: {email: a@b.example, redirect: 1}\n", "app.tls.redirect: expected true or false, got 1"),
    ("  tls: {}\n", "app.tls: needs email (a certificate from Let's Encrypt, e.g. email:"
                    " ops@example.com) or certificate and key (your own files)"),
    ("  tls: {email: a@b.example, certificate: c.pem, key: k.pem}\n",
     "app.tls: email (a certificate from Let's Encrypt) and certificate/key (your own) exclude"
     " each other: keep one"),
    ("  tls: {certificate: c.pem}\n", "app.tls.key: missing: name the private key of"
                                      " tls.certificate"),
    ("  tls: {key: k.pem}\n", "app.tls.certificate: missing: name the chain (leaf first) that"
                              " goes with tls.key"),
    ("  tls: {certificate: c.pem, key: k.pem, acme_server: 'https://acme.test/dir'}\n",
     "app.tls.acme_server: only with tls.email (an ACME account); your own certificate needs none"),
    ("  https_port: 80\n  tls: {email: a@b.example}\n",
     "app.https_port: 80 is http_port too: HTTP and HTTPS need a port each (https_port defaults"
     " to 443)"),
    ("  https_port: 0\n", "app.https_port: expected an integer from 1 to 65535, got 0"),
])
def test_errors_name_the_key(write_hosts, tmp_path: Path, extra: str, message: str) -> None:
    assert error(write_hosts, extra) == f"{tmp_path / 'hosts.yaml'}: {message}"


@pytest.mark.parametrize("server_name, message", [
    ("_", 'app.tls: needs the site\'s names in server_name, not "_" (nginx\'s catch-all): e.g.'
          " server_name: shop.example.com"),
    ("shop.example.com *.shop.example.com",
     "app.tls: an ACME server cannot verify *.shop.example.com over HTTP-01 (a wildcard needs"
     " DNS-01): list the names in server_name, or bring your own certificate (tls.certificate,"
     " tls.key)"),
    ("localhost", "app.tls: an ACME server cannot issue a certificate for localhost (a local"
                  " name): use the site's public names in server_name, or your own certificate"
                  " (tls.certificate, tls.key)"),
    ("shop.localhost", "app.tls: an ACME server cannot issue a certificate for shop.localhost (a"
                       " local name)"),
    ("10.0.0.5", "app.tls: an ACME server cannot issue a certificate for 10.0.0.5 (an IP"
                 " address)"),
])
def test_acme_needs_names_http01_can_prove(write_hosts, tmp_path: Path, server_name: str,
                                           message: str) -> None:
    text = (f"app:\n  name: shop\n  wsgi: 'shop:app'\n  server_name: '{server_name}'\n"
            f"  tls: {{email: ops@example.com}}\nhosts: {{web1: {{}}}}\n")
    with pytest.raises(ConfigError) as err:
        config.load(write_hosts(text))
    assert str(err.value).startswith(f"{tmp_path / 'hosts.yaml'}: {message}")


@pytest.mark.parametrize("server_name", ["localhost", "*.example.com", "10.0.0.5"])
def test_your_own_certificate_may_name_anything_but_the_catch_all(write_hosts,
                                                                  server_name: str) -> None:
    text = (f"app:\n  name: shop\n  wsgi: 'shop:app'\n  server_name: '{server_name}'\n"
            f"  tls: {{certificate: c.pem, key: k.pem}}\nhosts: {{web1: {{}}}}\n")
    assert config.load(write_hosts(text)).host("web1").app.tls.kind == "own"


def test_a_host_overrides_tls_and_its_errors_name_the_host(write_hosts, tmp_path: Path) -> None:
    inv = load(write_hosts, "  tls: {email: ops@example.com, hsts: 60}\n",
               "hosts:\n  web1: {}\n  web2: {tls: {certificate: c.pem, key: k.pem}}\n"
               "  web3: {tls: {redirect: false}}\n  web4: {https_port: 8443}\n")
    assert inv.host("web1").app.tls.kind == "acme"
    # naming the other kind replaces the app's; the rest merges one level
    assert inv.host("web2").app.tls == Tls(certificate=tmp_path / "c.pem", key=tmp_path / "k.pem",
                                           hsts=60)
    assert inv.host("web3").app.tls == Tls(email="ops@example.com", redirect=False, hsts=60)
    assert inv.host("web4").app.https_port == 8443
    with pytest.raises(ConfigError) as err:
        load(write_hosts, "  tls: {email: ops@example.com}\n",
             "hosts:\n  web1: {http_port: 8080, https_port: 8080}\n")
    assert str(err.value) == (f"{tmp_path / 'hosts.yaml'}: hosts.web1.https_port: 8080 is"
                              f" http_port too: HTTP and HTTPS need a port each (https_port"
                              f" defaults to 443)")
    with pytest.raises(ConfigError) as err:
        load(write_hosts, "", "hosts:\n  web1: {tls: {email: ops@example.com}, server_name: _}\n")
    assert "hosts.web1.tls: needs the site's names in server_name" in str(err.value)


def test_merge_and_names() -> None:
    assert merge({"email": "a@b.c", "hsts": 5}, {"certificate": "c", "key": "k"}) == {
        "hsts": 5, "certificate": "c", "key": "k"}
    assert merge({"certificate": "c", "key": "k"}, {"email": "a@b.c"}) == {"email": "a@b.c"}
    assert merge(None, {"redirect": False}) == {"redirect": False}
    assert names("Shop.Example.com www.shop.example.com shop.example.com") == (
        "shop.example.com", "www.shop.example.com")
