"""Verified TLS to one Bambu Lab printer: the only place that builds printer TLS contexts.

What a context from this module guarantees, for MQTT (paho), FTPS (ftplib) and asyncio streams:

* Trust anchors are exactly the bundled Bambu Lab CA certificates in `CERTS_DIR` (plus, only if
  the user explicitly pinned it, one printer certificate). The system store, certifi and the
  SSL_CERT_FILE / SSL_CERT_DIR environment variables play no part.
* The context is bound to one serial number: whatever server name a consumer passes (paho passes
  the IP address), SNI and the hostname check use the serial, and the printer's certificate must
  have CN = serial.
* A rejected certificate raises `PrinterTLSError` from inside the handshake, so no application
  byte (the access code travels in the first MQTT packet) can ever reach a wrong peer.

There is deliberately no way to switch verification off.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
import contextlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from functools import partial
import hashlib
import ipaddress
from pathlib import Path
import re
import socket
import ssl
from typing import TYPE_CHECKING, Any, Self, cast, override

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.x509.oid import NameOID

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer, StrOrBytesPath

__all__ = [
    "CERTS_DIR",
    "CertificateInfo",
    "CertificateReport",
    "PrinterTLSError",
    "TLSErrorKind",
    "async_create_printer_context",
    "async_probe_printer",
    "classify_ssl_error",
    "create_printer_context",
    "probe_printer",
    "report_from_ssl",
]

# The bundled Bambu Lab CA certificates; every *.pem file here is a trust anchor.
CERTS_DIR: Path = Path(__file__).parent / "certs"

_SERIAL_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")

# OpenSSL X509_V_ERR_* codes (x509_vfy.h) that are not "the chain is not ours".
_X509_NOT_YET_VALID = 9
_X509_EXPIRED = 10
_X509_NAME_MISMATCH = frozenset({62, 63, 64})  # hostname, email, IP address mismatch

_MAX_PATH = 8  # longest issuer path we reconstruct for reports


class TLSErrorKind(StrEnum):
    """Why a verified connection to a printer could not be made."""

    UNTRUSTED_ISSUER = "untrusted_issuer"
    SERIAL_MISMATCH = "serial_mismatch"
    EXPIRED = "expired"
    NOT_YET_VALID = "not_yet_valid"
    PROTOCOL = "protocol"
    UNREACHABLE = "unreachable"


class PrinterTLSError(Exception):
    """A classified failure to reach a printer over verified TLS.

    Every detail is an attribute, for translated messages; `str()` is an English summary. Nothing
    here ever holds the access code.
    """

    def __init__(
        self,
        kind: TLSErrorKind,
        *,
        host: str | None = None,
        port: int | None = None,
        serial: str | None = None,
        presented_cn: str | None = None,
        presented_serial: str | None = None,
        issuer: str | None = None,
        fingerprint: str | None = None,
        pinned_fingerprint: str | None = None,
        leaf_pem: str | None = None,
        certificate_cn: str | None = None,
        not_before: datetime | None = None,
        not_after: datetime | None = None,
        openssl_code: int | None = None,
        openssl_message: str | None = None,
        detail: str | None = None,
    ) -> None:
        """Store the details; all of them are optional except the kind."""
        super().__init__(str(kind))
        self.kind = kind
        self.host = host
        self.port = port
        # The serial we expected (the one the user configured).
        self.serial = serial
        # CN of the certificate the device presented, as claimed (not necessarily verified).
        self.presented_cn = presented_cn
        # Set only once a handshake bound to `presented_cn` verified: a genuine Bambu device.
        self.presented_serial = presented_serial
        # CN of the issuer of the presented certificate.
        self.issuer = issuer
        # SHA-256 (lowercase hex) of the presented leaf certificate.
        self.fingerprint = fingerprint
        # Set when a pinned context saw a certificate other than the pinned one.
        self.pinned_fingerprint = pinned_fingerprint
        # PEM of the presented leaf, set for untrusted_issuer when its CN is the expected serial,
        # i.e. when the user can be offered to pin it.
        self.leaf_pem = leaf_pem
        # CN of the certificate whose validity dates failed, with those dates.
        self.certificate_cn = certificate_cn
        self.not_before = not_before
        self.not_after = not_after
        self.openssl_code = openssl_code
        self.openssl_message = openssl_message
        # Short technical reason for protocol / unreachable (OpenSSL reason or OS error).
        self.detail = detail

    @property
    def address(self) -> str:
        """`host:port` as far as known, for messages."""
        if self.host is None:
            return "the printer"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port is None else f"{host}:{self.port}"

    @override
    def __str__(self) -> str:
        return _MESSAGES[self.kind](self)

    @override
    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(kind={self.kind.value!r}, host={self.host!r}, "
            f"port={self.port!r}, serial={self.serial!r})"
        )


class _HandshakeRejected(PrinterTLSError, ssl.SSLCertVerificationError):
    """A `PrinterTLSError` raised from inside a TLS handshake.

    It is also an `ssl.SSLCertVerificationError`, because asyncio's SSL protocol only routes
    `ssl.SSLError` from `do_handshake()` to the waiting `open_connection()` (anything else escapes
    as an unrelated transport error), and generic TLS code expects that type there.
    """

    library = "SSL"
    reason = "CERTIFICATE_VERIFY_FAILED"

    def __init__(self, kind: TLSErrorKind, **details: Any) -> None:
        """Classify, and fill the standard verification attributes too."""
        super().__init__(kind, **details)
        self.verify_code = self.openssl_code or 0
        self.verify_message = self.openssl_message or str(self)


def _untrusted_message(err: PrinterTLSError) -> str:
    if err.pinned_fingerprint is not None:
        return (
            f"The device at {err.address} presented a certificate with SHA-256 "
            f"{err.fingerprint}, not the pinned certificate ({err.pinned_fingerprint})."
        )
    why = f" ({err.openssl_message})" if err.openssl_message else ""
    return (
        f"The device at {err.address} presented a certificate for {_quote(err.presented_cn)} "
        f"issued by {_quote(err.issuer)} (SHA-256 {err.fingerprint}), which does not chain to a "
        f"Bambu Lab CA this integration trusts{why}."
    )


def _mismatch_message(err: PrinterTLSError) -> str:
    if err.presented_serial is not None:
        return (
            f"The Bambu Lab device at {err.address} has serial {_quote(err.presented_serial)}, "
            f"not {_quote(err.serial)}."
        )
    return (
        f"The device at {err.address} presented a certificate for {_quote(err.presented_cn)}, "
        f"not for serial {_quote(err.serial)}."
    )


def _expired_message(err: PrinterTLSError) -> str:
    return (
        f"The certificate {_quote(err.certificate_cn)} presented by {err.address} expired on "
        f"{_day(err.not_after)} (valid from {_day(err.not_before)}); if the printer is fine, "
        "check this computer's clock."
    )


def _not_yet_valid_message(err: PrinterTLSError) -> str:
    return (
        f"The certificate {_quote(err.certificate_cn)} presented by {err.address} is not valid "
        f"before {_day(err.not_before)}; check this computer's clock."
    )


def _protocol_message(err: PrinterTLSError) -> str:
    return f"The TLS handshake with {err.address} failed: {err.detail or 'protocol error'}."


def _unreachable_message(err: PrinterTLSError) -> str:
    return f"Cannot connect to {err.address}: {err.detail or 'no connection'}."


_MESSAGES = {
    TLSErrorKind.UNTRUSTED_ISSUER: _untrusted_message,
    TLSErrorKind.SERIAL_MISMATCH: _mismatch_message,
    TLSErrorKind.EXPIRED: _expired_message,
    TLSErrorKind.NOT_YET_VALID: _not_yet_valid_message,
    TLSErrorKind.PROTOCOL: _protocol_message,
    TLSErrorKind.UNREACHABLE: _unreachable_message,
}


def _quote(text: str | None) -> str:
    """Quote a certificate-supplied name for a message, without control characters."""
    if text is None:
        return "(unknown)"
    clean = "".join(char if char.isprintable() else "?" for char in text[:64])
    return f"'{clean}'"


def _day(moment: datetime | None) -> str:
    return "(unknown)" if moment is None else moment.strftime("%Y-%m-%d %H:%M UTC")


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
    if isinstance(context, _PrinterContext):
        return context.anchors
    return tuple(_parse_der_chain(context.get_ca_certs(binary_form=True)))


def report_from_ssl(
    obj: ssl.SSLSocket | ssl.SSLObject, *, now: datetime | None = None
) -> CertificateReport:
    """Describe the verified peer of a live, handshaken TLS connection (no network I/O)."""
    certs = _parse_der_chain(obj.get_verified_chain())
    if not certs:
        raise ValueError("the TLS connection has no verified peer certificate")
    context = obj.context
    pinned = isinstance(context, _PrinterContext) and context.pin_sha256 is not None
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


# --- The printer context ----------------------------------------------------------------------


def _reject_unverified(
    obj: ssl.SSLSocket | ssl.SSLObject, err: ssl.SSLCertVerificationError
) -> _HandshakeRejected:
    # OpenSSL keeps the peer's chain after a failed verification: classify from it, offline.
    context = obj.context
    printer = context if isinstance(context, _PrinterContext) else None
    details = _verification_failure(
        kind := _kind_for_code(err.verify_code),
        _parse_der_chain(obj.get_unverified_chain()),
        context=context,
        serial=printer.serial if printer else None,
        openssl_code=err.verify_code,
        openssl_message=err.verify_message,
    )
    if kind is TLSErrorKind.UNTRUSTED_ISSUER and printer and printer.pin_sha256:
        details["pinned_fingerprint"] = printer.pin_sha256
    return _HandshakeRejected(kind, **details)


def _reject_unpinned(obj: ssl.SSLSocket | ssl.SSLObject) -> _HandshakeRejected | None:
    """The error to raise if a pinned context sees any certificate but the pinned one."""
    context = obj.context
    if not isinstance(context, _PrinterContext) or context.pin_sha256 is None:
        return None
    der = obj.getpeercert(binary_form=True)
    leaf = x509.load_der_x509_certificate(der) if der else None
    if leaf is not None and _sha256(leaf) == context.pin_sha256:
        return None
    details = _leaf_details(leaf, context.serial)
    return _HandshakeRejected(
        TLSErrorKind.UNTRUSTED_ISSUER,
        serial=context.serial,
        pinned_fingerprint=context.pin_sha256,
        **details,
    )


class _PrinterSSLSocket(ssl.SSLSocket):
    """Raises classified errors from the handshake and enforces the pin before any data."""

    @override
    def do_handshake(self, block: bool = False) -> None:
        try:
            super().do_handshake(block)
        except ssl.SSLWantReadError, ssl.SSLWantWriteError:
            raise  # non-blocking socket: not a failure
        except ssl.SSLCertVerificationError as err:
            rejected = _reject_unverified(self, err)
            self._close_rejected(rejected)
            raise rejected from err
        except OSError:
            # A failed handshake cannot be resumed; paho would leave the socket open.
            self.close()
            raise
        if (unpinned := _reject_unpinned(self)) is not None:
            self._close_rejected(unpinned)
            raise unpinned

    def _close_rejected(self, rejected: PrinterTLSError) -> None:
        """Name the peer in the error, then make sure nothing more can be sent to it."""
        with contextlib.suppress(OSError):
            rejected.host, rejected.port, *_ = self.getpeername()
        self.close()


class _PrinterSSLObject(ssl.SSLObject):
    """The same for memory-BIO connections (asyncio); asyncio closes the transport itself."""

    @override
    def do_handshake(self) -> None:
        try:
            super().do_handshake()
        except ssl.SSLCertVerificationError as err:
            raise _reject_unverified(self, err) from err
        if (unpinned := _reject_unpinned(self)) is not None:
            raise unpinned


# What a built context may no longer change: it is cached and shared, and e.g. paho's
# tls_insecure_set() would otherwise switch the name check off for every connection.
_SEALED_ATTRIBUTES = frozenset(
    {
        "_sealed",
        "anchors",
        "check_hostname",
        "hostname_checks_common_name",
        "keylog_filename",
        "maximum_version",
        "minimum_version",
        "options",
        "pin_sha256",
        "serial",
        "sslobject_class",
        "sslsocket_class",
        "verify_flags",
        "verify_mode",
    }
)


class _PrinterContext(ssl.SSLContext):
    """A client context bound to one printer serial: SNI and the name check use the serial.

    Once built it is sealed: its verification settings and trust anchors cannot be changed.
    """

    serial: str
    pin_sha256: str | None
    anchors: tuple[x509.Certificate, ...]
    _sealed = False

    sslsocket_class = _PrinterSSLSocket
    sslobject_class = _PrinterSSLObject

    def seal(self) -> None:
        """Freeze the verification settings and the trust anchors."""
        self._sealed = True

    @override
    def __setattr__(self, name: str, value: Any) -> None:
        if self._sealed and name in _SEALED_ATTRIBUTES:
            raise AttributeError(f"a printer TLS context cannot change {name}")
        super().__setattr__(name, value)

    @override
    def load_verify_locations(
        self,
        cafile: StrOrBytesPath | None = None,
        capath: StrOrBytesPath | None = None,
        cadata: str | ReadableBuffer | None = None,
    ) -> None:
        if self._sealed:
            raise AttributeError("a printer TLS context cannot trust more certificates")
        super().load_verify_locations(cafile, capath, cadata)

    @override
    def load_default_certs(self, purpose: ssl.Purpose = ssl.Purpose.SERVER_AUTH) -> None:
        raise AttributeError("a printer TLS context never trusts the system store")

    @override
    def set_default_verify_paths(self) -> None:
        raise AttributeError("a printer TLS context never trusts the system store")

    @override
    def set_ciphers(self, cipherlist: str, /) -> None:
        if self._sealed:
            raise AttributeError("a printer TLS context cannot change its ciphers")
        super().set_ciphers(cipherlist)

    @override
    def wrap_socket(
        self,
        sock: socket.socket,
        server_side: bool = False,
        do_handshake_on_connect: bool = True,
        suppress_ragged_eofs: bool = True,
        server_hostname: str | bytes | None = None,
        session: ssl.SSLSession | None = None,
    ) -> ssl.SSLSocket:
        # paho and ftplib pass the IP address: the printer's identity is its serial instead.
        return super().wrap_socket(
            sock,
            server_side=server_side,
            do_handshake_on_connect=do_handshake_on_connect,
            suppress_ragged_eofs=suppress_ragged_eofs,
            server_hostname=self.serial,
            session=session,
        )

    @override
    def wrap_bio(
        self,
        incoming: ssl.MemoryBIO,
        outgoing: ssl.MemoryBIO,
        server_side: bool = False,
        server_hostname: str | bytes | None = None,
        session: ssl.SSLSession | None = None,
    ) -> ssl.SSLObject:
        return super().wrap_bio(
            incoming,
            outgoing,
            server_side=server_side,
            server_hostname=self.serial,
            session=session,
        )


def _check_serial(serial: str) -> str:
    if not _SERIAL_RE.fullmatch(serial):
        raise ValueError("a printer serial is 1-64 letters and digits")
    try:
        ipaddress.ip_address(serial)
    except ValueError:
        return serial
    raise ValueError("a printer serial is not an IP address")


def _parse_pin(pinned_cert: str, serial: str) -> x509.Certificate:
    """The one certificate a user chose to trust for this printer."""
    try:
        certs = x509.load_pem_x509_certificates(pinned_cert.encode())
    except ValueError as err:
        raise ValueError("the pinned certificate is not a PEM certificate") from err
    if len(certs) != 1:
        raise ValueError("exactly one certificate can be pinned")
    if _cn(certs[0].subject).casefold() != serial.casefold():
        raise ValueError("the pinned certificate is not for this serial")
    return certs[0]


def _read_anchors(directory: Path) -> tuple[x509.Certificate, ...]:
    """Every certificate in every *.pem file of `directory`, once each (blocking)."""
    anchors: dict[bytes, x509.Certificate] = {}
    for path in sorted(directory.glob("*.pem")):
        # Raises ValueError for a file without a certificate: a broken bundle must be noticed.
        for cert in x509.load_pem_x509_certificates(path.read_bytes()):
            anchors.setdefault(_der(cert), cert)
    if not anchors:
        raise FileNotFoundError(f"no trust anchors (*.pem) in {directory}")
    return tuple(anchors.values())


def _build_context(directory: Path, serial: str, pinned_cert: str | None) -> _PrinterContext:
    """Build the context (blocking: reads the anchor files)."""
    serial = _check_serial(serial)
    pin = _parse_pin(pinned_cert, serial) if pinned_cert is not None else None
    anchors = _read_anchors(directory)

    # PROTOCOL_TLS_CLIENT loads no default CAs: nothing from the system store, certifi or
    # SSL_CERT_FILE / SSL_CERT_DIR. It starts with CERT_REQUIRED and check_hostname on.
    context = _PrinterContext(ssl.PROTOCOL_TLS_CLIENT)
    context.verify_mode = ssl.CERT_REQUIRED
    context.check_hostname = True
    # Printer leaves carry the serial as CN and have no subjectAltName.
    context.hostname_checks_common_name = True
    # TLS 1.2 only. Floor: nothing older is acceptable. Ceiling: P2S firmware ignores a TLS 1.3
    # ClientHello on 8883 (the handshake hangs until timeout) and H2D FTPS offers only 1.2, so
    # offering 1.3 can only break connections to real printers.
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    # The one relaxation: the legacy root `BBL CA` (X1/P1/A1 chains) has no keyUsage
    # extension, which VERIFY_X509_STRICT (set by default on Python >= 3.13) rejects.
    context.verify_flags &= ~ssl.VERIFY_X509_STRICT
    # Newer printers send only their leaf: a bundled device intermediate must be able to act
    # as the anchor.
    context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
    context.load_verify_locations(cadata=b"".join(_der(cert) for cert in anchors))
    context.anchors = anchors

    context.serial = serial
    context.pin_sha256 = None
    if pin is not None:
        # Partial-chain verification lets the pinned leaf anchor itself; the hostname check
        # still requires CN = serial, and the handshake then requires this exact certificate.
        context.load_verify_locations(cadata=_der(pin))
        context.pin_sha256 = _sha256(pin)
    context.seal()
    return context


def create_printer_context(serial: str, *, pinned_cert: str | None = None) -> ssl.SSLContext:
    """A TLS client context that only connects to the printer with this serial (blocking).

    `pinned_cert` is the PEM of one printer certificate the user explicitly chose to trust
    (for a printer whose issuer is not bundled); the context then accepts only that certificate.
    """
    return _build_context(CERTS_DIR, serial, pinned_cert)


type _CacheKey = tuple[Path, str, str | None]

_CONTEXTS: dict[_CacheKey, ssl.SSLContext] = {}
_BUILDS: dict[_CacheKey, asyncio.Future[_PrinterContext]] = {}


def _store_build(key: _CacheKey, build: asyncio.Future[_PrinterContext]) -> None:
    if _BUILDS.get(key) is build:
        del _BUILDS[key]
    if not build.cancelled() and build.exception() is None:
        _CONTEXTS[key] = build.result()


async def async_create_printer_context(
    serial: str, *, pinned_cert: str | None = None
) -> ssl.SSLContext:
    """`create_printer_context` off the event loop, built once and then reused.

    The anchors do not change while Home Assistant runs, so the cache key is the anchor
    directory (as a path: no filesystem access in the event loop), the serial and the pin.
    Concurrent callers share one build.
    """
    directory = CERTS_DIR  # absolute already; resolving it here would touch the filesystem
    key: _CacheKey = (directory, serial, pinned_cert)
    if (context := _CONTEXTS.get(key)) is not None:
        return context
    loop = asyncio.get_running_loop()
    build = _BUILDS.get(key)
    if build is None or build.get_loop() is not loop:
        build = loop.run_in_executor(None, _build_context, directory, serial, pinned_cert)
        _BUILDS[key] = build
        # Also when every caller was cancelled: the finished build still lands in the cache.
        build.add_done_callback(partial(_store_build, key))
    try:
        return await asyncio.shield(build)
    finally:
        # Callback order is not guaranteed: settle the cache before the next caller looks.
        if build.done():
            _store_build(key, build)


# --- Probing ----------------------------------------------------------------------------------


def _handshake(context: ssl.SSLContext, host: str, port: int, timeout: float) -> CertificateReport:
    """Connect, complete a verified handshake, report, close: no application data is sent."""
    try:
        sock = socket.create_connection((host, port), timeout=timeout)
    except OSError as err:
        raise PrinterTLSError(
            TLSErrorKind.UNREACHABLE, host=host, port=port, detail=_os_detail(err)
        ) from err
    with sock:
        try:
            tls = context.wrap_socket(sock)
        except PrinterTLSError as err:
            err.host, err.port = host, port
            raise
        except ssl.SSLError as err:
            raise PrinterTLSError(
                TLSErrorKind.PROTOCOL, host=host, port=port, detail=_ssl_detail(err)
            ) from err
        except OSError as err:
            # TCP is up but the TLS server stalled or hung up: not a TLS peer we can talk to.
            raise PrinterTLSError(
                TLSErrorKind.PROTOCOL, host=host, port=port, detail=_os_detail(err)
            ) from err
        with tls:
            return report_from_ssl(tls)


def _confirm_presented_serial(
    err: PrinterTLSError, host: str, port: int, timeout: float
) -> PrinterTLSError:
    """Check a hostname mismatch with a handshake bound to the presented CN.

    OpenSSL checks the name before the signatures, so a mismatch alone does not prove that the
    device's chain is genuine; only then may the message name the serial it presents.
    """
    presented = err.presented_cn
    if presented is None:
        return err
    try:
        _handshake(create_printer_context(presented), host, port, timeout)
    except PrinterTLSError as second:
        if second.kind is TLSErrorKind.UNTRUSTED_ISSUER:
            second.serial = err.serial
            second.leaf_pem = None  # its CN is not the configured serial: nothing to pin
            return second
        return err
    except ValueError:  # the presented CN is not even shaped like a serial
        return err
    err.presented_serial = presented
    return err


def probe_printer(
    host: str,
    port: int,
    serial: str,
    timeout: float = 10.0,
    *,
    pinned_cert: str | None = None,
) -> CertificateReport:
    """Verify the printer's certificate with one handshake and report it (blocking).

    Raises `PrinterTLSError` for every failure.
    """
    return _probe(create_printer_context(serial, pinned_cert=pinned_cert), host, port, timeout)


def _probe(context: ssl.SSLContext, host: str, port: int, timeout: float) -> CertificateReport:
    serial = cast(_PrinterContext, context).serial
    try:
        return _handshake(context, host, port, timeout)
    except PrinterTLSError as err:
        classify_ssl_error(err, host=host, port=port, serial=serial)
        if err.kind is TLSErrorKind.SERIAL_MISMATCH:
            confirmed = _confirm_presented_serial(err, host, port, timeout)
            if confirmed is not err:
                raise confirmed from err
        raise


async def async_probe_printer(
    host: str,
    port: int,
    serial: str,
    timeout: float = 10.0,  # noqa: ASYNC109 - bounds the blocking socket in the executor
    *,
    pinned_cert: str | None = None,
) -> CertificateReport:
    """`probe_printer` in the executor, with the cached context."""
    context = await async_create_printer_context(serial, pinned_cert=pinned_cert)
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(None, _probe, context, host, port, timeout)
