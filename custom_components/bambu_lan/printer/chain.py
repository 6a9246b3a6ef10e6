"""What a printer's certificate chain says: the certificate report and failure classification.

Reads the chain the printer presented (offline, with `cryptography`), rebuilds the path to the
bundled anchor for reports, and turns OpenSSL's verdicts into `PrinterTLSError` kinds. No Home
Assistant imports; part of the printer library (see `tls.py`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
import hashlib
import ssl
from typing import Any, Self

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.x509.oid import NameOID

from .tls_errors import PrinterTLSError, TLSErrorKind

# OpenSSL X509_V_ERR_* codes (x509_vfy.h) that are not "the chain is not ours".
_X509_NOT_YET_VALID = 9
_X509_EXPIRED = 10
_X509_NAME_MISMATCH = frozenset({62, 63, 64})  # hostname, email, IP address mismatch

_MAX_PATH = 8  # longest issuer path we reconstruct for reports


# --- Certificate inspection -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CertificateInfo:
    """One certificate of a chain."""

    subject: str
    issuer: str
    not_before: datetime
    not_after: datetime
    key_type: str
    key_size: int
    sha256: str

    @classmethod
    def from_cert(cls, cert: x509.Certificate) -> Self:
        """Describe a parsed certificate."""
        key_type, key_size = _key_info(cert)
        return cls(
            subject=cert.subject.rfc4514_string(),
            issuer=cert.issuer.rfc4514_string(),
            not_before=cert.not_valid_before_utc,
            not_after=cert.not_valid_after_utc,
            key_type=key_type,
            key_size=key_size,
            sha256=_sha256(cert),
        )

    def as_dict(self) -> dict[str, str | int]:
        """JSON-able form."""
        return {
            "subject": self.subject,
            "issuer": self.issuer,
            "not_before": self.not_before.isoformat(),
            "not_after": self.not_after.isoformat(),
            "key_type": self.key_type,
            "key_size": self.key_size,
            "sha256": self.sha256,
        }


@dataclass(frozen=True, slots=True)
class CertificateReport:
    """What a verified connection to a printer presented (the certificate-health data)."""

    subject_cn: str
    issuer_cn: str
    chain: tuple[CertificateInfo, ...]  # leaf first, up to the anchor that validated it
    not_before: datetime
    not_after: datetime
    days_left: int
    sha256: str
    key_type: str
    key_size: int
    tls_version: str
    cipher: str
    checked_at: datetime
    anchor: str  # CN of the trust anchor that validated the chain
    issuer_path: str  # e.g. "BBL CA2 RSA via BBL Device CA N7-V2"

    def as_dict(self) -> dict[str, Any]:
        """JSON-able form, for diagnostics (holds nothing secret)."""
        return {
            "subject_cn": self.subject_cn,
            "issuer_cn": self.issuer_cn,
            "chain": [info.as_dict() for info in self.chain],
            "not_before": self.not_before.isoformat(),
            "not_after": self.not_after.isoformat(),
            "days_left": self.days_left,
            "sha256": self.sha256,
            "key_type": self.key_type,
            "key_size": self.key_size,
            "tls_version": self.tls_version,
            "cipher": self.cipher,
            "checked_at": self.checked_at.isoformat(),
            "anchor": self.anchor,
            "issuer_path": self.issuer_path,
        }


def _der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


def _sha256(cert: x509.Certificate) -> str:
    return hashlib.sha256(_der(cert)).hexdigest()


def _cn(name: x509.Name) -> str:
    """The CN of a name, or the whole name when it has none."""
    values = name.get_attributes_for_oid(NameOID.COMMON_NAME)
    value = values[0].value if values else name.rfc4514_string()
    return value.decode(errors="replace") if isinstance(value, bytes) else value


def _key_info(cert: x509.Certificate) -> tuple[str, int]:
    key = cert.public_key()
    if isinstance(key, rsa.RSAPublicKey):
        return "RSA", key.key_size
    if isinstance(key, ec.EllipticCurvePublicKey):
        return "EC", key.curve.key_size
    if isinstance(key, ed25519.Ed25519PublicKey):
        return "Ed25519", 256
    if isinstance(key, ed448.Ed448PublicKey):
        return "Ed448", 456
    return type(key).__name__, 0


def _self_issued(cert: x509.Certificate) -> bool:
    return cert.subject == cert.issuer


def _signed_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(issuer)
    except InvalidSignature, ValueError, TypeError:
        return False
    return True


def _complete_path(
    chain: Sequence[x509.Certificate], anchors: Iterable[x509.Certificate]
) -> list[x509.Certificate]:
    """Extend a chain with bundled CAs up to a self-signed root (for display only).

    With partial-chain verification OpenSSL stops at the first trusted certificate, e.g. a device
    intermediate; users recognise the root above it, so reports name both.
    """
    path = list(chain)
    candidates = list(anchors)
    while path and len(path) < _MAX_PATH and not _self_issued(path[-1]):
        top = path[-1]
        issuers = [
            ca
            for ca in candidates
            if ca.subject == top.issuer and ca not in path and _signed_by(top, ca)
        ]
        if not issuers:
            break
        # A cross-signed copy and a self-signed root share a subject: prefer the root.
        issuers.sort(key=lambda ca: not _self_issued(ca))
        path.append(issuers[0])
    return path


def _describe_path(path: Sequence[x509.Certificate]) -> str:
    issuers = [_cn(cert.subject) for cert in path[1:]]
    if not issuers:
        return _cn(path[0].issuer)
    top, below = issuers[-1], issuers[:-1]
    return " via ".join([top, *reversed(below)])


def _parse_der_chain(chain: Sequence[bytes] | None) -> list[x509.Certificate]:
    return [x509.load_der_x509_certificate(der) for der in chain or ()]


def _context_anchors(context: ssl.SSLContext) -> tuple[x509.Certificate, ...]:
    # A context from tls.py carries its parsed anchors (and pin); read them without importing it.
    anchors = getattr(context, "anchors", None)
    if isinstance(anchors, tuple):
        return anchors
    return tuple(_parse_der_chain(context.get_ca_certs(binary_form=True)))


def report_from_ssl(
    obj: ssl.SSLSocket | ssl.SSLObject, *, now: datetime | None = None
) -> CertificateReport:
    """Describe the verified peer of a live, handshaken TLS connection (no network I/O)."""
    certs = _parse_der_chain(obj.get_verified_chain())
    if not certs:
        raise ValueError("the TLS connection has no verified peer certificate")
    context = obj.context
    pinned = getattr(context, "pin_sha256", None) is not None
    if pinned:
        # The pinned certificate itself is the anchor, whatever else the printer sent.
        certs = certs[:1]
        issuer_path = f"pinned certificate (issued by {_cn(certs[0].issuer)})"
    else:
        issuer_path = _describe_path(_complete_path(certs, _context_anchors(context)))
    leaf = certs[0]
    key_type, key_size = _key_info(leaf)
    now = now or datetime.now(UTC)
    cipher = obj.cipher()
    return CertificateReport(
        subject_cn=_cn(leaf.subject),
        issuer_cn=_cn(leaf.issuer),
        chain=tuple(CertificateInfo.from_cert(cert) for cert in certs),
        not_before=leaf.not_valid_before_utc,
        not_after=leaf.not_valid_after_utc,
        days_left=(leaf.not_valid_after_utc - now) // timedelta(days=1),
        sha256=_sha256(leaf),
        key_type=key_type,
        key_size=key_size,
        tls_version=obj.version() or "",
        cipher=cipher[0] if cipher else "",
        checked_at=now,
        anchor=_cn(certs[-1].subject),
        issuer_path=issuer_path,
    )


# --- Classification ---------------------------------------------------------------------------


def _kind_for_code(code: int | None) -> TLSErrorKind:
    if code in _X509_NAME_MISMATCH:
        return TLSErrorKind.SERIAL_MISMATCH
    if code == _X509_EXPIRED:
        return TLSErrorKind.EXPIRED
    if code == _X509_NOT_YET_VALID:
        return TLSErrorKind.NOT_YET_VALID
    # Unknown issuer, self-signed, bad signature, unusable CA...: not a chain we can vouch for.
    return TLSErrorKind.UNTRUSTED_ISSUER


def _leaf_details(leaf: x509.Certificate | None, serial: str | None) -> dict[str, Any]:
    if leaf is None:
        return {}
    presented_cn = _cn(leaf.subject)
    pinnable = serial is not None and presented_cn.casefold() == serial.casefold()
    return {
        "presented_cn": presented_cn,
        "issuer": _cn(leaf.issuer),
        "fingerprint": _sha256(leaf),
        "leaf_pem": leaf.public_bytes(serialization.Encoding.PEM).decode() if pinnable else None,
    }


def _out_of_window(
    path: Sequence[x509.Certificate], kind: TLSErrorKind, now: datetime
) -> x509.Certificate | None:
    for cert in path:
        if kind is TLSErrorKind.EXPIRED and cert.not_valid_after_utc < now:
            return cert
        if kind is TLSErrorKind.NOT_YET_VALID and cert.not_valid_before_utc > now:
            return cert
    return path[0] if path else None


def _verification_failure(
    kind: TLSErrorKind,
    chain: Sequence[x509.Certificate],
    *,
    context: ssl.SSLContext,
    serial: str | None,
    openssl_code: int | None,
    openssl_message: str | None,
) -> dict[str, Any]:
    """Details of a failed verification, from what the peer sent (no network I/O)."""
    leaf = chain[0] if chain else None
    details = _leaf_details(leaf, serial)
    if kind is not TLSErrorKind.UNTRUSTED_ISSUER:
        details["leaf_pem"] = None
    if kind in (TLSErrorKind.EXPIRED, TLSErrorKind.NOT_YET_VALID):
        path = _complete_path(chain, _context_anchors(context))
        dated = _out_of_window(path, kind, datetime.now(UTC))
        if dated is not None:
            details |= {
                "certificate_cn": _cn(dated.subject),
                "not_before": dated.not_valid_before_utc,
                "not_after": dated.not_valid_after_utc,
            }
    return details | {
        "serial": serial,
        "openssl_code": openssl_code,
        "openssl_message": openssl_message,
    }


def _os_detail(exc: OSError) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    return exc.strerror or type(exc).__name__


def _ssl_detail(exc: ssl.SSLError) -> str:
    reason = getattr(exc, "reason", None)
    if isinstance(reason, str) and reason:
        return reason.replace("_", " ").lower()
    return type(exc).__name__


def classify_ssl_error(
    exc: BaseException, *, host: str | None, port: int | None, serial: str | None
) -> PrinterTLSError:
    """Turn any connection failure into a `PrinterTLSError` (which is returned, not raised).

    A `PrinterTLSError` is returned as is, with the address and serial filled in where missing.
    """
    if isinstance(exc, PrinterTLSError):
        exc.host = exc.host or host
        exc.port = exc.port or port
        exc.serial = exc.serial or serial
        return exc
    if isinstance(exc, ssl.SSLCertVerificationError):
        return PrinterTLSError(
            _kind_for_code(exc.verify_code),
            host=host,
            port=port,
            serial=serial,
            openssl_code=exc.verify_code,
            openssl_message=exc.verify_message,
        )
    if isinstance(exc, ssl.SSLError):
        kind, detail = TLSErrorKind.PROTOCOL, _ssl_detail(exc)
    elif isinstance(exc, OSError):
        kind, detail = TLSErrorKind.UNREACHABLE, _os_detail(exc)
    else:
        kind, detail = TLSErrorKind.PROTOCOL, type(exc).__name__
    return PrinterTLSError(kind, host=host, port=port, serial=serial, detail=detail)
