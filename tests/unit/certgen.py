"""Certificates made for a test with `cryptography`: a CA, leaves it issues, self-signed ones,
as objects and PEM files (helpers of test_certs.py, test_setup_tls.py, test_health_tls.py)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID


@dataclass
class Made:
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey

    @property
    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def key_pem(self, password: bytes | None = None) -> bytes:
        crypt = (serialization.BestAvailableEncryption(password) if password
                 else serialization.NoEncryption())
        return self.key.private_bytes(serialization.Encoding.PEM,
                                      serialization.PrivateFormat.PKCS8, crypt)


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def make(names: tuple[str, ...] = ("shop.example.com",), *, issuer: Made | None = None,
         cn: str = "", ca: bool = False, days: int = 90, start_days: int = -1,
         rsa_key: bool = False) -> Made:
    """A certificate for `names` (subjectAltName DNS entries; none: no extension), self-signed
    or issued by `issuer`, valid from now + start_days for `days`."""
    key = (rsa.generate_private_key(public_exponent=65537, key_size=2048) if rsa_key
           else ec.generate_private_key(ec.SECP256R1()))
    subject = _name(cn or (names[0] if names else "no name"))
    now = datetime.now(UTC)
    builder = (x509.CertificateBuilder().subject_name(subject)
               .issuer_name(issuer.cert.subject if issuer else subject)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now + timedelta(days=start_days))
               .not_valid_after(now + timedelta(days=start_days + days)))
    if names:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False)
    if ca:
        builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=None),
                                        critical=True)
    cert = builder.sign(issuer.key if issuer else key, hashes.SHA256())
    return Made(cert, key)


def write(directory: Path, made: Made, *chain: Made, name: str = "site") -> tuple[Path, Path]:
    """The leaf and `chain` as <name>.pem, its key as <name>.key, in `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    pem, key = directory / f"{name}.pem", directory / f"{name}.key"
    pem.write_bytes(made.cert_pem + b"".join(c.cert_pem for c in chain))
    key.write_bytes(made.key_pem())
    return pem, key
