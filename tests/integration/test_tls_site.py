"""HTTPS with your own certificate on the real test host: `fab setup` checks it here, uploads it
root's (the key readable by root only), installs the site with HTTPS once the certificate is
there; a deploy's health check goes over HTTPS (SNI, verified against the uploaded chain); HTTP
redirects; a new certificate is picked up by the next `fab setup`."""

from __future__ import annotations

import http.client
import re
import socket
import ssl
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import testhost as th
from conftest import make_project
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def self_signed(directory: Path, name: str, days: int = 90) -> tuple[Path, Path]:
    """A self-signed certificate for `name` and its key, as PEM files in `directory`."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.now(UTC)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5)).not_valid_after(now + timedelta(days=days))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
            .sign(key, hashes.SHA256()))
    directory.mkdir(parents=True, exist_ok=True)
    chain, key_file = directory / "site.pem", directory / "site.key"
    chain.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return chain, key_file


def https_get(port: int, chain: Path, path: str = "/") -> tuple[int, str, dict[str, str], bytes]:
    """GET over HTTPS as a browser for `localhost` would, trusting `chain`: status, body, headers,
    the certificate the server sent (DER)."""
    ctx = ssl.create_default_context(cafile=str(chain))
    conn = http.client.HTTPSConnection("localhost", port, timeout=10, context=ctx)
    conn.request("GET", path)
    resp = conn.getresponse()
    body = resp.read().decode()
    der = conn.sock.getpeercert(binary_form=True)
    conn.close()
    return resp.status, body, {k.lower(): v for k, v in resp.getheaders()}, der


def steps(out: str) -> dict[str, str]:
    return dict(re.findall(r"^\[t\] (\S[\w ]*?)\s+[\d.]+s\s+(.*)$", out, re.M))


def test_own_certificate_setup_deploy_https_redirect_and_a_new_certificate(host: th.TestHost,
                                                                          tmp_path: Path) -> None:
    chain, key = self_signed(tmp_path / "certs", "localhost")
    https_port = th.find_free_port()
    p = make_project(host, tmp_path, https_port=https_port,
                     tls={"certificate": str(chain), "key": str(key), "hsts": 600})
    out = p.must(p.fab("setup", "-H", "t"))
    got = steps(out)
    assert got["site"] == "waits for the certificate (the tls step installs the site)", out
    assert re.fullmatch(r"changed: certificate for localhost \(your own: .*site\.pem\), valid until "
                        r"\d{4}-\d\d-\d\d; HTTPS site installed; .*/etc/wsgiship/tls/" + p.name,
                        got["tls"]), out
    assert "PRIVATE KEY" not in out and key.read_text().splitlines()[1] not in out
    # the key is root's alone; nobody else can read it
    d = f"/etc/wsgiship/tls/{p.name}"
    assert p.remote(f"stat -c '%U:%G %a' {d} {d}/fullchain.pem {d}/privkey.pem").split("\n")[:3] == [
        "root:root 755", "root:root 644", "root:root 600"]
    for user in ("deploy", f"wsgiship-{p.name}"):
        res = host.run(f"runuser -u {user} -- cat {d}/privkey.pem", check=False)
        assert res.returncode != 0 and "Permission denied" in res.stderr, (user, res)
    # again: nothing to change
    again = p.must(p.fab("setup", "-H", "t"))
    assert "nothing to change" in again, again
    assert steps(again)["tls"].startswith("certificate for localhost (your own"), again
    # a deploy as the restricted deploy user: its health check goes over HTTPS
    deployed = p.must(p.deploy())
    assert f"-> https://{host.host}:{https_port}/" in deployed, deployed
    status, body, headers, der = https_get(https_port, chain)
    assert (status, body) == (200, "Hello World!")
    assert headers["strict-transport-security"] == "max-age=600"
    assert headers["x-wsgiship-release"] == p.current()
    # HTTP redirects to HTTPS, on its port
    conn = http.client.HTTPConnection("127.0.0.1", p.http_port, timeout=10)
    conn.request("GET", "/some/path?x=1", headers={"Host": "localhost"})
    resp = conn.getresponse()
    assert resp.status == 301
    assert resp.getheader("Location") == f"https://localhost:{https_port}/some/path?x=1"
    # TLS 1.3, and 1.2 for older clients (Mozilla's intermediate)
    for top, version in ((ssl.TLSVersion.TLSv1_3, "TLSv1.3"), (ssl.TLSVersion.TLSv1_2, "TLSv1.2")):
        ctx = ssl.create_default_context(cafile=str(chain))
        ctx.maximum_version = top
        with socket.create_connection(("127.0.0.1", https_port), timeout=5) as raw:
            with ctx.wrap_socket(raw, server_hostname="localhost") as tls:
                assert tls.version() == version
    # a new certificate: setup uploads it and nginx serves it; deploys go on
    chain2, key2 = self_signed(tmp_path / "certs2", "localhost", days=200)
    chain.write_bytes(chain2.read_bytes())
    key.write_bytes(key2.read_bytes())
    renewed = p.must(p.fab("setup", "-H", "t"))
    assert steps(renewed)["tls"].startswith("changed: certificate for localhost"), renewed
    new = x509.load_pem_x509_certificate(chain.read_bytes()).public_bytes(serialization.Encoding.DER)
    deadline = time.monotonic() + 10  # nginx's reload: new workers take over within moments
    while True:
        try:
            if https_get(https_port, chain)[3] == new:
                break
        except ssl.SSLCertVerificationError:
            pass  # an old worker, with the old certificate
        assert time.monotonic() < deadline, "nginx still serves the old certificate"
        time.sleep(0.2)
    p.set_text("over https")
    p.must(p.deploy())
    assert https_get(https_port, chain)[:2] == (200, "over https")


def test_a_wrong_key_stops_setup_before_it_connects(host: th.TestHost, tmp_path: Path) -> None:
    chain, _ = self_signed(tmp_path / "one", "localhost")
    _, other_key = self_signed(tmp_path / "two", "localhost")
    p = make_project(host, tmp_path, https_port=th.find_free_port(),
                     tls={"certificate": str(chain), "key": str(other_key)})
    res = p.fab("setup", "-H", "t")
    assert res.returncode != 0
    assert "tls.key does not match tls.certificate (their public keys differ)" in res.stderr
    assert "Traceback" not in res.stderr and "connect" not in res.stdout, res.stdout
    assert p.remote(f"test -e /etc/wsgiship/tls/{p.name} && echo yes || echo no").strip() == "no"


def test_an_unreachable_acme_server_stops_setup_and_the_site_serves_as_before(
        host: th.TestHost, tmp_path: Path) -> None:
    p = make_project(host, tmp_path, server_name="shop.wsgiship.test")
    p.must(p.fab("setup", "-H", "t"))
    p.must(p.deploy())
    site = f"/etc/nginx/sites-available/wsgiship-{p.name}"
    before = p.remote(f"cat {site}")
    p.settings["tls"] = {"email": "ops@wsgiship.test", "acme_server": "https://127.0.0.1:1/directory"}
    p.settings["https_port"] = th.find_free_port()
    p.write()
    res = p.fab("setup", "-H", "t")
    assert res.returncode == 1, res.stdout + res.stderr
    assert res.stderr.strip().splitlines() == [
        "error: t: tls: cannot reach the ACME server https://127.0.0.1:1/directory: Connection refused"]
    assert "waits for the certificate" in steps(res.stdout)["site"], res.stdout
    # certbot came with the packages; the site is exactly as it was, and serves
    assert p.remote("command -v certbot").strip() == "/usr/bin/certbot"
    assert p.remote(f"cat {site}") == before
    assert p.get("/")[:2] == (200, "Hello World!")
    assert p.remote(f"stat -c '%U %a' /var/lib/wsgiship/acme/{p.name}").strip() == "root 755"
    assert p.remote("systemctl is-enabled certbot.timer").strip() == "enabled"
