"""Certificates shaped like a Bambu Lab printer's, for tests and the virtual printer.

Real printers present a leaf whose subject CN is the serial number and which has no
subjectAltName. Older families (X1, P1, A1) send that leaf plus the legacy root `BBL CA`, which
has no keyUsage extension; newer families (P2S, H2, X2) send only their leaf, issued by a
"BBL Device CA <model>-V2" intermediate under `BBL CA2 RSA`. The CAs generated here copy those
shapes (names prefixed with "Test" so they can never be mistaken for the real ones).

RSA keys are 2048 bits: 4096 is what printers use, but it is slow to generate in tests.
"""

from __future__ import annotations

from dataclasses import dataclass
import datetime as dt
from functools import cache
import hashlib
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

PROFILES = (
    "legacy",
    "v2",
    "v2-ec",
    "self_signed",
    "unknown_ca",
    "other_serial",
    "expired",
    "not_yet_valid",
    "tls1_0_only",
)

type PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey

_DAY = dt.timedelta(days=1)
_ORG = "BBL Technologies Co. Ltd (test)"


@dataclass(frozen=True)
class Issued:
    """A certificate with its private key."""

    cert: x509.Certificate
    key: PrivateKey

    @property
    def pem(self) -> bytes:
        """The certificate, PEM encoded."""
        return self.cert.public_bytes(serialization.Encoding.PEM)

    @property
    def key_pem(self) -> bytes:
        """The private key, unencrypted PKCS#8 PEM."""
        return self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    @property
    def sha256(self) -> str:
        """SHA-256 of the DER certificate, lowercase hex (what the integration pins)."""
        return hashlib.sha256(self.cert.public_bytes(serialization.Encoding.DER)).hexdigest()


@dataclass
class TestCAs:
    """The "Bambu" CAs a client trusts in tests."""

    __test__ = False  # not a pytest test class

    legacy_root: Issued
    ca2_rsa: Issued
    device_ca: Issued
    ca2_ecc: Issued
    device_ca_ec: Issued

    def write_anchors(self, directory: Path) -> list[Path]:
        """Write every CA as its own PEM file into `directory`; return the paths."""
        directory.mkdir(parents=True, exist_ok=True)
        paths = []
        for name in ("legacy_root", "ca2_rsa", "device_ca", "ca2_ecc", "device_ca_ec"):
            path = directory / f"test-{name.replace('_', '-')}.pem"
            path.write_bytes(getattr(self, name).pem)
            paths.append(path)
        return paths


@dataclass
class ServerIdentity:
    """What one printer's TLS server presents."""

    profile: str
    serial: str
    chain: list[Issued]  # leaf first, exactly what the server sends
    tls_max: str = "TLSv1.2"  # "TLSv1" for tls1_0_only

    @property
    def leaf(self) -> Issued:
        """The server's own certificate (CN = serial, or not, depending on the profile)."""
        return self.chain[0]

    def write_server_files(self, directory: Path) -> tuple[Path, Path]:
        """Write (chain PEM leaf first, key PEM) into `directory`."""
        directory.mkdir(parents=True, exist_ok=True)
        stem = f"{self.serial}-{self.profile}-{self.leaf.sha256[:12]}"
        chain_path = directory / f"{stem}-chain.pem"
        key_path = directory / f"{stem}-key.pem"
        chain_path.write_bytes(b"".join(issued.pem for issued in self.chain))
        key_path.write_bytes(self.leaf.key_pem)
        key_path.chmod(0o600)
        return chain_path, key_path


def _rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _name(common_name: str, org: str = _ORG) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, org),
            x509.NameAttribute(NameOID.COUNTRY_NAME, "CN"),
        ]
    )


def _ca_key_usage() -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=False,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=True,
        crl_sign=True,
        encipher_only=False,
        decipher_only=False,
    )


def _leaf_key_usage(key: PrivateKey) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=isinstance(key, rsa.RSAPrivateKey),
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=False,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )


def _issue(
    subject: x509.Name,
    key: PrivateKey,
    issuer: Issued | None,
    *,
    ca: bool,
    path_length: int | None = None,
    key_usage: bool = True,
    not_before: dt.datetime,
    not_after: dt.datetime,
) -> Issued:
    """Sign `subject`'s `key` with `issuer` (self-signed when issuer is None)."""
    signer_key = key if issuer is None else issuer.key
    issuer_name = subject if issuer is None else issuer.cert.subject
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(
            x509.BasicConstraints(ca=ca, path_length=path_length if ca else None), critical=True
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(signer_key.public_key()),
            critical=False,
        )
    )
    if key_usage:
        usage = _ca_key_usage() if ca else _leaf_key_usage(key)
        builder = builder.add_extension(usage, critical=True)
    cert = builder.sign(signer_key, hashes.SHA256())
    return Issued(cert=cert, key=key)


def _new_ca(
    common_name: str,
    key: PrivateKey,
    issuer: Issued | None = None,
    *,
    path_length: int | None = None,
    key_usage: bool = True,
) -> Issued:
    now = dt.datetime.now(dt.UTC)
    return _issue(
        _name(common_name),
        key,
        issuer,
        ca=True,
        path_length=path_length,
        key_usage=key_usage,
        not_before=now - _DAY,
        not_after=now + 3650 * _DAY,
    )


@cache
def generate_cas() -> TestCAs:
    """The test CAs, generated once per process and then reused."""
    ca2_rsa = _new_ca("Test BBL CA2 RSA", _rsa_key())
    ca2_ecc = _new_ca("Test BBL CA2 ECC", _ec_key())
    return TestCAs(
        # Like the real `BBL CA`: basicConstraints only, no keyUsage extension at all.
        legacy_root=_new_ca("Test BBL CA", _rsa_key(), key_usage=False),
        ca2_rsa=ca2_rsa,
        device_ca=_new_ca("Test BBL Device CA N7-V2", _rsa_key(), ca2_rsa, path_length=0),
        ca2_ecc=ca2_ecc,
        device_ca_ec=_new_ca("Test BBL Device CA N7-V2 EC", _ec_key(), ca2_ecc, path_length=0),
    )


def _other_serial(serial: str) -> str:
    """A different, deterministic serial of the same length."""
    last = "1" if serial[-1:] != "1" else "2"
    return serial[:-1] + last


def _leaf(
    common_name: str,
    issuer: Issued | None,
    key: PrivateKey,
    now: dt.datetime,
    *,
    valid: tuple[dt.timedelta, dt.timedelta] = (-_DAY, 3650 * _DAY),
) -> Issued:
    # Real printer leaves identify the printer by CN only: no subjectAltName.
    return _issue(
        _name(common_name),
        key,
        issuer,
        ca=False,
        not_before=now + valid[0],
        not_after=now + valid[1],
    )


def issue_server(
    profile: str, serial: str, cas: TestCAs, *, now: dt.datetime | None = None
) -> ServerIdentity:
    """Issue a fresh server identity (new key, new fingerprint) for `serial`."""
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; expected one of {PROFILES}")
    now = now or dt.datetime.now(dt.UTC)
    root = cas.legacy_root
    match profile:
        case "legacy" | "tls1_0_only":
            chain = [_leaf(serial, root, _rsa_key(), now), root]
        case "v2":
            chain = [_leaf(serial, cas.device_ca, _rsa_key(), now)]
        case "v2-ec":
            chain = [_leaf(serial, cas.device_ca_ec, _ec_key(), now)]
        case "self_signed":
            chain = [_leaf(serial, None, _rsa_key(), now)]
        case "unknown_ca":
            unknown = _new_ca("Untrusted Test CA", _rsa_key())
            chain = [_leaf(serial, unknown, _rsa_key(), now), unknown]
        case "other_serial":
            chain = [_leaf(_other_serial(serial), root, _rsa_key(), now), root]
        case "expired":
            window = (-730 * _DAY, -_DAY)
            chain = [_leaf(serial, root, _rsa_key(), now, valid=window), root]
        case _:  # not_yet_valid
            window = (_DAY, 730 * _DAY)
            chain = [_leaf(serial, root, _rsa_key(), now, valid=window), root]
    tls_max = "TLSv1" if profile == "tls1_0_only" else "TLSv1.2"
    return ServerIdentity(profile=profile, serial=serial, chain=chain, tls_max=tls_max)
