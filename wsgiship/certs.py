"""Your own certificate (tls.certificate + tls.key), checked on this machine before `fab setup`
uploads anything: the chain parses (leaf first, each certificate issued by the next), the key is
the leaf's, the leaf covers every server_name (its subjectAltName, wildcards as TLS matches
them) and is valid now.

The key's content never appears in a message: errors name the file and what is wrong with it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization

from .errors import ConfigError
from .tls import Tls

_SPKI = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


@dataclass(frozen=True)
class OwnCertificate:
    """What `fab setup` uploads: the chain (re-encoded PEM, leaf first) and the key (its file's
    bytes; repr never shows them), with the leaf's names and end of validity."""

    chain_pem: bytes
    key_pem: bytes = b""
    names: tuple[str, ...] = ()
    not_after: datetime = datetime.min.replace(tzinfo=UTC)

    def __repr__(self) -> str:
        return f"OwnCertificate(names={self.names}, not_after={self.not_after:%Y-%m-%d})"


def covers(pattern: str, name: str) -> bool:
    """Whether a certificate name (subjectAltName DNS entry) covers a host name, as TLS clients
    match: case-insensitive; `*.example.com` covers one whole leftmost label (shop.example.com,
    not example.com nor a.b.example.com). A server_name that is itself a wildcard is covered
    only by that same wildcard."""
    pattern, name = pattern.lower().rstrip("."), name.lower().rstrip(".")
    if pattern == name:
        return True
    if not pattern.startswith("*.") or name.startswith("*"):
        return False
    first, _, rest = name.partition(".")
    return bool(first) and rest == pattern[2:] and "." in rest


def _read(path: Path, key: str, origin: str) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{origin}tls.{key}: {path} not found") from None
    except OSError as exc:
        raise ConfigError(f"{origin}tls.{key}: cannot read {path}: {exc.strerror}") from None


def _chain(path: Path, origin: str) -> list[x509.Certificate]:
    data = _read(path, "certificate", origin)
    try:
        chain = x509.load_pem_x509_certificates(data)
    except ValueError:
        chain = []
    if not chain:
        raise ConfigError(f"{origin}tls.certificate: {path} holds no PEM certificate (expected the "
                          f"chain as -----BEGIN CERTIFICATE----- blocks, leaf first)")
    for i, (cert, issuer) in enumerate(zip(chain, chain[1:], strict=False), start=1):
        if cert.issuer != issuer.subject:
            raise ConfigError(
                f"{origin}tls.certificate: {path}: certificate {i + 1} ({issuer.subject.rfc4514_string()})"
                f" did not issue certificate {i} (issued by {cert.issuer.rfc4514_string()}): put the"
                f" leaf first, then each issuer")
    return chain


def _key(path: Path, origin: str) -> tuple[bytes, bytes]:
    """The key file's bytes and its public key (SubjectPublicKeyInfo, DER)."""
    data = _read(path, "key", origin)
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except TypeError:
        raise ConfigError(f"{origin}tls.key: {path} is encrypted: nginx needs it without a "
                          f"passphrase (openssl pkey -in KEY -out PLAIN_KEY)") from None
    except (ValueError, UnsupportedAlgorithm):
        raise ConfigError(f"{origin}tls.key: {path} is not a PEM private key") from None
    return data, key.public_key().public_bytes(*_SPKI)


def _names(cert: x509.Certificate) -> tuple[str, ...]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return ()
    return tuple(san.get_values_for_type(x509.DNSName))


def load_own(tls: Tls, server_names: tuple[str, ...], now: datetime | None = None) -> OwnCertificate:
    """Read and check your own certificate and key; raise ConfigError saying what is wrong."""
    assert tls.certificate is not None and tls.key is not None
    origin, now = tls.origin, now or datetime.now(UTC)
    chain = _chain(tls.certificate, origin)
    key_pem, public = _key(tls.key, origin)
    leaf = chain[0]
    if leaf.public_key().public_bytes(*_SPKI) != public:
        raise ConfigError(f"{origin}tls: tls.key does not match tls.certificate (their public keys "
                          f"differ): {tls.key} is not the key of {tls.certificate}'s first certificate")
    names = _names(leaf)
    missing = [n for n in server_names if not any(covers(p, n) for p in names)]
    if missing:
        held = ", ".join(names) if names else "no name (it has no subjectAltName)"
        raise ConfigError(f"{origin}tls: tls.certificate covers {held}, not {', '.join(missing)}")
    not_after, not_before = leaf.not_valid_after_utc, leaf.not_valid_before_utc
    if now > not_after:
        raise ConfigError(f"{origin}tls: tls.certificate expired on {not_after:%Y-%m-%d %H:%M} UTC "
                          f"({tls.certificate}): renew it")
    if now < not_before:
        raise ConfigError(f"{origin}tls: tls.certificate is not valid before "
                          f"{not_before:%Y-%m-%d %H:%M} UTC ({tls.certificate})")
    pem = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in chain)
    return OwnCertificate(pem, key_pem, names, not_after)
