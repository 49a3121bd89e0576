"""HTTPS against a real ACME server: pebble on the test host validates HTTP-01 challenges through
the app's own nginx site; certbot obtains, keeps and renews; own certificates; and each bad
input stops `fab setup` with one line while the site keeps serving as before."""

from __future__ import annotations

import datetime
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import testhost as th
from conftest import Project, make_project
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from pebble import Pebble

from bench.loadgen import Load


@pytest.fixture(scope="module")
def acme(host: th.TestHost, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pebble]:
    """pebble on the test host; every app of this module listens on its challenge port (nginx
    tells them apart by server_name)."""
    pebble = Pebble.start(host, th.find_free_port(), tmp_path_factory.mktemp("pebble"))
    try:
        yield pebble
    finally:
        pebble.stop()


def tls_project(host: th.TestHost, acme: Pebble, tmp_path: Path, name: str,
                **settings: object) -> Project:
    """An app answering to NAME.test and www.NAME.test on pebble's challenge port."""
    names = (f"{name}.test", f"www.{name}.test")
    acme.resolve(*names)
    p = make_project(host, tmp_path, server_name=" ".join(names),
                     https_port=th.find_free_port(), **settings)
    p.http_port = acme.http_port
    p.write()
    return p


def acme_tls(acme: Pebble, **extra: object) -> dict:
    return {"email": "ops@example.org", "acme_server": acme.directory, **extra}


def curl(p: Project, url: str, *args: str, cacert: Path | None = None) -> tuple[int, str, str]:
    """(status, headers, body) of a request made here, names resolved to the test host."""
    name = p.settings["server_name"].split()[0]
    res = subprocess.run(
        ["curl", "-sS", "-D", "-", "--max-time", "10",
         "--resolve", f"{name}:{p.settings['https_port']}:127.0.0.1",
         "--resolve", f"{name}:{p.http_port}:127.0.0.1",
         *(["--cacert", str(cacert)] if cacert else []), *args, url],
        capture_output=True, text=True, timeout=30)
    assert res.returncode == 0, res.stderr
    head, _, body = res.stdout.partition("\n\n")  # text mode: \r\n read as \n
    return int(head.split()[1]), head.lower(), body


def https(p: Project, path: str = "/") -> str:
    return f"https://{p.settings['server_name'].split()[0]}:{p.settings['https_port']}{path}"


def http(p: Project, path: str = "/") -> str:
    return f"http://{p.settings['server_name'].split()[0]}:{p.http_port}{path}"


def step(out: str, name: str) -> str:
    line = next((line for line in out.splitlines() if line.startswith(f"[t] {name} ")), "")
    assert line, out
    return line


def test_acme_issuance_under_load_then_redirect_hsts_renewal(host, acme, tmp_path):
    p = tls_project(host, acme, tmp_path, "shop1")
    p.must(p.fab("setup", "-H", "t"))
    p.must(p.deploy())
    assert curl(p, http(p))[::2] == (200, "Hello World!")
    # TLS switched on for a live site, under load on its HTTP port: nothing fails (answers turn
    # from 200 into the 301 to HTTPS)
    p.settings["tls"] = acme_tls(acme, hsts=600)
    p.write()
    since = int(time.time())
    with Load(p.http_port, host="shop1.test", connections=8, max_seconds=120) as load:
        time.sleep(1)
        out = p.must(p.fab("setup", "-H", "t"))
        time.sleep(1)
    assert not load.result.failed, [s.body for s in load.result.failed[:5]]
    assert {s.status for s in load.result.samples} <= {200, 301}
    # nginx's reloads close idle keep-alive connections: at most one GET per connection and
    # reload raced that close unanswered and was sent again, as a browser does (bench/loadgen);
    # each `systemctl reload nginx` runs `nginx -s reload`, which logs "signal process started"
    reloads = int(p.remote(f"journalctl -u nginx -o cat --no-pager --since @{since - 1}"
                           " | grep -c 'signal process started' || true").strip() or 0)
    assert load.result.retried <= 8 * reloads, (load.result.retried, reloads)
    assert "certificate for shop1.test, www.shop1.test" in step(out, "tls")
    assert "valid until" in step(out, "tls")
    status, head, body = curl(p, https(p), cacert=acme.root)
    assert (status, body) == (200, "Hello World!")
    assert "strict-transport-security: max-age=600" in head
    # redirect: everything but the challenge path
    status, head, _ = curl(p, http(p, "/some/page?x=1"))
    assert status == 301 and f"location: {https(p, '/some/page?x=1')}" in head
    assert curl(p, http(p, "/.well-known/acme-challenge/nothing"))[0] == 404
    # a deploy checks health over HTTPS and prints the https URL
    p.set_text("over tls")
    out = p.must(p.deploy())
    assert f"-> https://shop1.test:{p.settings['https_port']}/" in out
    assert curl(p, https(p), cacert=acme.root)[::2] == (200, "over tls")
    # idempotent: a valid certificate is kept
    serial = acme.serial("shop1.test", p.settings["https_port"])
    again = p.must(p.fab("setup", "-H", "t"))
    assert "(kept: more than 30 days left)" in step(again, "tls") and "changed" not in again
    assert acme.serial("shop1.test", p.settings["https_port"]) == serial
    # renewal without a person: certbot's timer, and its deploy hook reloads nginx
    assert host.run("systemctl is-enabled certbot.timer").stdout.strip() == "enabled"
    host.run(f"certbot renew --force-renewal --no-random-sleep-on-renew "
             f"--cert-name wsgiship-{p.name} -q", timeout=120)
    renewed = acme.serial("shop1.test", p.settings["https_port"])
    assert renewed and renewed != serial
    assert curl(p, https(p), cacert=acme.root)[0] == 200
    # nobody but root reads the key
    key = f"/etc/letsencrypt/live/wsgiship-{p.name}/privkey.pem"
    for user in ("deploy", f"wsgiship-{p.name}"):
        assert host.run(f"sudo -u {user} cat {key}", check=False).returncode != 0


def make_cert(where: Path, names: list[str], days: int = 30) -> tuple[Path, Path, Path]:
    """A CA and a leaf for `names` signed by it, in a new directory `where`: (chain file: leaf
    + CA, key file, CA file)."""
    where.mkdir(parents=True)
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "wsgiship test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(days=1))
          .not_valid_after(now + datetime.timedelta(days=365))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
            .issuer_name(ca_name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=days))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    chain, key_file, ca_file = where / "chain.pem", where / "key.pem", where / "ca.pem"
    chain.write_bytes(leaf.public_bytes(pem) + ca.public_bytes(pem))
    key_file.write_bytes(key.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    ca_file.write_bytes(ca.public_bytes(pem))
    return chain, key_file, ca_file


def test_own_certificate(host, acme, tmp_path):
    p = tls_project(host, acme, tmp_path, "shop2")
    chain, key, ca = make_cert(tmp_path / "own", ["shop2.test", "www.shop2.test"])
    p.settings["tls"] = {"certificate": str(chain), "key": str(key)}
    p.write()
    out = p.must(p.fab("setup", "-H", "t"))
    secret = key.read_text().splitlines()[1]
    assert secret not in out
    p.must(p.deploy())
    assert curl(p, https(p), cacert=ca)[::2] == (200, "Hello World!")
    for user in ("deploy", f"wsgiship-{p.name}"):
        assert host.run(f"sudo -u {user} cat /etc/wsgiship/tls/{p.name}/privkey.pem",
                        check=False).returncode != 0


def setup_fails(p: Project) -> str:
    res = p.fab("setup", "-H", "t")
    assert res.returncode != 0, res.stdout
    assert "Traceback" not in res.stderr
    return res.stdout + res.stderr


def test_bad_inputs_stop_setup_and_leave_the_site_as_it_was(host, acme, tmp_path):
    p = tls_project(host, acme, tmp_path, "shop3")
    p.must(p.fab("setup", "-H", "t"))
    p.must(p.deploy())
    release = p.current()
    site = p.remote(f"cat /etc/nginx/sites-available/wsgiship-{p.name}")

    def unchanged() -> None:
        assert curl(p, http(p))[::2] == (200, "Hello World!")
        assert p.current() == release
        assert p.remote(f"cat /etc/nginx/sites-available/wsgiship-{p.name}") == site

    # a name the ACME server cannot reach (it does not resolve on the host)
    p.settings["server_name"] = "shop3.test nowhere-shop3.test"
    p.settings["tls"] = acme_tls(acme)
    p.write()
    out = setup_fails(p)
    assert "nowhere-shop3.test" in out and "resolves to this server" in out, out
    unchanged()
    # an ACME server nobody answers at
    p.settings["server_name"] = "shop3.test www.shop3.test"
    p.settings["tls"] = {"email": "ops@example.org",
                         "acme_server": f"https://127.0.0.1:{th.find_free_port()}/dir"}
    p.write()
    assert "cannot reach the ACME server" in setup_fails(p)
    unchanged()
    # an own certificate for other names; a key of another certificate
    chain, key, _ = make_cert(tmp_path / "other", ["other.test"])
    p.settings["tls"] = {"certificate": str(chain), "key": str(key)}
    p.write()
    out = setup_fails(p)
    assert "covers other.test, not shop3.test" in out, out
    unchanged()
    good_chain, _, _ = make_cert(tmp_path / "good", ["shop3.test", "www.shop3.test"])
    p.settings["tls"] = {"certificate": str(good_chain), "key": str(key)}
    p.write()
    out = setup_fails(p)
    assert "tls.key does not match tls.certificate" in out, out
    assert key.read_text().splitlines()[1] not in out
    unchanged()
