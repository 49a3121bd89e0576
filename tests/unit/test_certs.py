"""wsgiship.certs: your own certificate checked on this machine before any upload, with
certificates made here (certgen): parse, chain order, key match, names, validity; the key's
content never in a message."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import certgen
import pytest

from wsgiship.certs import covers, load_own
from wsgiship.errors import ConfigError
from wsgiship.tls import Tls

NAMES = ("shop.example.com", "www.shop.example.com")
ORIGIN = "hosts.yaml: app."


def own(pem: Path, key: Path) -> Tls:
    return Tls(certificate=pem, key=key, origin=ORIGIN)


def failure(tls: Tls, names: tuple[str, ...] = NAMES) -> str:
    with pytest.raises(ConfigError) as err:
        load_own(tls, names)
    text = str(err.value)
    key = tls.key.read_bytes() if tls.key and tls.key.exists() else b""
    body = [line for line in key.decode(errors="replace").splitlines() if "-----" not in line]
    assert not any(line and line in text for line in body), "the key's content in a message"
    return text


def test_a_good_chain_and_key(tmp_path: Path) -> None:
    ca = certgen.make((), cn="Shop CA", ca=True, days=3650)
    leaf = certgen.make(NAMES, issuer=ca, days=90)
    pem, key = certgen.write(tmp_path, leaf, ca)
    got = load_own(own(pem, key), NAMES)
    assert got.names == NAMES
    assert got.not_after == leaf.cert.not_valid_after_utc
    assert got.chain_pem == leaf.cert_pem + ca.cert_pem
    assert got.key_pem == key.read_bytes()
    assert "PRIVATE" not in repr(got) and "shop.example.com" in repr(got)


def test_text_around_the_pem_blocks_is_dropped_and_rsa_keys_do(tmp_path: Path) -> None:
    leaf = certgen.make(NAMES, rsa_key=True)
    pem, key = certgen.write(tmp_path, leaf)
    pem.write_bytes(b"subject=CN = shop\n" + leaf.cert_pem + b"\n# end\n")
    assert load_own(own(pem, key), NAMES).chain_pem == leaf.cert_pem


def test_a_wildcard_covers_one_label(tmp_path: Path) -> None:
    pem, key = certgen.write(tmp_path, certgen.make(("*.example.com", "example.com")))
    assert load_own(own(pem, key), ("shop.example.com", "example.com")).names == (
        "*.example.com", "example.com")
    assert failure(own(pem, key), ("a.b.example.com", "shop.example.com")) == (
        "hosts.yaml: app.tls: tls.certificate covers *.example.com, example.com, not"
        " a.b.example.com")


@pytest.mark.parametrize("pattern, name, ok", [
    ("shop.example.com", "SHOP.example.com", True),
    ("*.example.com", "shop.example.com", True),
    ("*.example.com", "example.com", False),
    ("*.example.com", "a.shop.example.com", False),
    ("*.com", "example.com", False),
    ("*.example.com", "*.example.com", True),   # a wildcard server_name: the same wildcard
    ("shop.example.com", "*.example.com", False),
    ("*.example.com", "*.shop.example.com", False),
])
def test_covers(pattern: str, name: str, ok: bool) -> None:
    assert covers(pattern, name) is ok


def test_names_not_covered(tmp_path: Path) -> None:
    pem, key = certgen.write(tmp_path, certgen.make(("a.example", "b.example")))
    assert failure(own(pem, key)) == ("hosts.yaml: app.tls: tls.certificate covers a.example,"
                                      " b.example, not shop.example.com, www.shop.example.com")
    pem, key = certgen.write(tmp_path, certgen.make((), cn="shop.example.com"), name="nosan")
    assert failure(own(pem, key), ("shop.example.com",)) == (
        "hosts.yaml: app.tls: tls.certificate covers no name (it has no subjectAltName), not"
        " shop.example.com")


def test_a_key_that_is_not_the_leafs(tmp_path: Path) -> None:
    pem, _ = certgen.write(tmp_path / "a", certgen.make(NAMES))
    _, other = certgen.write(tmp_path / "b", certgen.make(NAMES))
    assert failure(own(pem, other)) == (
        f"hosts.yaml: app.tls: tls.key does not match tls.certificate (their public keys differ):"
        f" {other} is not the key of {pem}'s first certificate")


def test_the_leaf_must_come_first(tmp_path: Path) -> None:
    ca = certgen.make((), cn="Shop CA", ca=True)
    leaf = certgen.make(NAMES, issuer=ca)
    pem, key = certgen.write(tmp_path, ca, leaf)  # CA first
    assert failure(own(pem, key)) == (
        f"hosts.yaml: app.tls.certificate: {pem}: certificate 2 (CN=shop.example.com) did not"
        f" issue certificate 1 (issued by CN=Shop CA): put the leaf first, then each issuer")


@pytest.mark.parametrize("start, days, message", [
    (-100, 10, "expired on"),
    (10, 90, "is not valid before"),
])
def test_validity(tmp_path: Path, start: int, days: int, message: str) -> None:
    leaf = certgen.make(NAMES, start_days=start, days=days)
    pem, key = certgen.write(tmp_path, leaf)
    text = failure(own(pem, key))
    when = leaf.cert.not_valid_after_utc if start < 0 else leaf.cert.not_valid_before_utc
    assert text == (f"hosts.yaml: app.tls: tls.certificate {message} {when:%Y-%m-%d %H:%M} UTC"
                    + (f" ({pem}): renew it" if start < 0 else f" ({pem})"))
    # checked against the time given
    later = datetime.now(UTC) + timedelta(days=start + 1)
    if start > 0:
        assert load_own(own(pem, key), NAMES, now=later).names == NAMES


def test_files_that_are_not_what_they_should_be(tmp_path: Path) -> None:
    leaf = certgen.make(NAMES)
    pem, key = certgen.write(tmp_path, leaf)
    assert failure(own(tmp_path / "nope.pem", key)) == (
        f"hosts.yaml: app.tls.certificate: {tmp_path / 'nope.pem'} not found")
    assert failure(own(pem, tmp_path / "nope.key")) == (
        f"hosts.yaml: app.tls.key: {tmp_path / 'nope.key'} not found")
    assert failure(own(key, key)) == (
        f"hosts.yaml: app.tls.certificate: {key} holds no PEM certificate (expected the chain as"
        f" -----BEGIN CERTIFICATE----- blocks, leaf first)")
    assert failure(own(pem, pem)) == f"hosts.yaml: app.tls.key: {pem} is not a PEM private key"
    key.write_bytes(leaf.key_pem(password=b"secret"))
    assert failure(own(pem, key)) == (
        f"hosts.yaml: app.tls.key: {key} is encrypted: nginx needs it without a passphrase"
        f" (openssl pkey -in KEY -out PLAIN_KEY)")
    broken = tmp_path / "broken.key"
    broken.write_bytes(b"-----BEGIN PRIVATE KEY-----\nTUlJQ2VRSUJBREFOQmdrcWhraUc5dzBC\n"
                       b"-----END PRIVATE KEY-----\n")
    assert failure(own(pem, broken)) == f"hosts.yaml: app.tls.key: {broken} is not a PEM private key"
