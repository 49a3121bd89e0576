"""The health probe over HTTPS (an HTTPS site's check through nginx), against a local TLS server
with certificates made here: SNI and the certificate's check for the site's name, the uploaded
chain trusted besides the system's, a certificate that does not verify said so, soon; the slot
check tells the app HTTPS as nginx would."""

from __future__ import annotations

import http.server
import shlex
import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import certgen
import pytest
from fakes import NAME, as_app, as_deploy, fake_env
from test_health import _Handler, uwsgi_dir, uwsgi_server  # noqa: F401 - fixtures used below

from wsgiship import shell
from wsgiship.commands import health

SITE = "shop.example.com"


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[tuple[int, type[_Handler], Path, list[str]]]:
    """An HTTPS server on 127.0.0.1 with a self-signed certificate for SITE: its port, handler,
    the certificate file and the SNI names it was asked for."""
    pem, key = certgen.write(tmp_path / "tls", certgen.make((SITE,)))
    sni: list[str] = []
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(pem, key)
    ctx.sni_callback = lambda sock, name, _: sni.append(name)
    handler = type("Handler", (_Handler,), {"seen": []})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.socket = ctx.wrap_socket(httpd.socket, server_side=True)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield httpd.server_address[1], handler, pem, sni
    finally:
        httpd.shutdown()
        httpd.server_close()


def facts(out: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def test_the_arguments() -> None:
    text = health.health_check(8443, SITE, "/", 200, NAME, 9, https=True,
                               ca_file="/etc/wsgiship/tls/shop/fullchain.pem")
    assert shlex.split(text.removeprefix(shell.HEADER))[3:] == [
        "https:8443", SITE, "/", "200", NAME, "9", "/etc/wsgiship/tls/shop/fullchain.pem"]
    plain = health.health_check(8443, SITE, "/", 200, NAME, 9, ca_file="/ignored")
    assert shlex.split(plain.removeprefix(shell.HEADER))[3:] == ["8443", SITE, "/", "200", NAME, "9"]


def test_https_with_sni_verified_against_the_uploaded_chain(tls_server, fakebin: Path,
                                                            sh) -> None:
    port, handler, pem, sni = tls_server
    res = sh(health.health_check(port, SITE, "/healthz", 200, NAME, 5, https=True,
                                 ca_file=str(pem)), env=fake_env(fakebin))
    assert (res.returncode, res.stdout) == (0, "status=200\n"), res.stdout + res.stderr
    assert sni == [SITE]
    assert handler.seen == [("/healthz", SITE, "wsgiship-health")]


def test_a_certificate_that_does_not_verify_fails_soon_and_says_so(tls_server, fakebin: Path,
                                                                   sh) -> None:
    port, handler, pem, _ = tls_server
    started = time.monotonic()
    res = sh(health.health_check(port, SITE, "/", 200, NAME, 60, https=True),
             env=fake_env(fakebin))   # the system's trust store alone: self-signed is refused
    assert res.returncode == 1 and time.monotonic() - started < 20
    got = facts(res.stdout)
    assert got["status"] == "none" and handler.seen == []
    assert got["reason"].startswith(f"health check failed: GET https://{SITE}:{port}/ no answer,"
                                    f" expected 200 from release {NAME} (waited ")
    assert got["reason"].endswith(
        f": the certificate nginx serves for {SITE} does not verify against this server's trust"
        f" store (a test ACME server's root must be added to it: update-ca-certificates)")
    assert "SSLCertVerificationError" in res.stdout  # the first lines of the "answer"


def test_a_name_the_certificate_lacks_does_not_verify(tls_server, fakebin: Path, sh) -> None:
    port, _, pem, sni = tls_server
    res = sh(health.health_check(port, "www.example.org", "/", 200, NAME, 60, https=True,
                                 ca_file=str(pem)), env=fake_env(fakebin))
    assert res.returncode == 1
    assert set(sni) == {"www.example.org"}  # asked again every 0.2 s until it gave up
    assert "Hostname mismatch" in res.stdout or "doesn't match" in res.stdout
    assert facts(res.stdout)["reason"].endswith("does not verify against this server's trust"
                                                " store and the uploaded chain (a test ACME"
                                                " server's root must be added to it:"
                                                " update-ca-certificates)")


def test_the_slot_check_says_https_as_nginx_would(uwsgi_dir: Path, uwsgi_server,  # noqa: F811
                                                  fakebin: Path, sh) -> None:
    handler = uwsgi_server(uwsgi_dir / "uwsgi-a.sock")
    text = health.slot_check(str(uwsgi_dir / "uwsgi-a.sock"), 8443, SITE, "/", 200, NAME, 5,
                             https=True)
    res = sh(as_app(text, "sudo -n -u web --"), env=as_deploy(fakebin))
    assert (res.returncode, res.stdout) == (0, "status=200\n"), res.stdout + res.stderr
    (_, _, env), = handler.seen
    assert {k: env[k] for k in ("SERVER_PORT", "HTTPS", "REQUEST_SCHEME", "wsgi.url_scheme")} == {
        "SERVER_PORT": "8443", "HTTPS": "on", "REQUEST_SCHEME": "https", "wsgi.url_scheme": "https"}
    handler.status = 500
    res = sh(as_app(health.slot_check(str(uwsgi_dir / "uwsgi-a.sock"), 8443, SITE, "/", 200,
                                      NAME, 1, https=True), ""), env=fake_env(fakebin))
    assert facts(res.stdout)["reason"].startswith(
        f"health check failed: GET https://{SITE}:8443/ on the new uWSGI's own socket (before"
        f" the switch) answered 500")
