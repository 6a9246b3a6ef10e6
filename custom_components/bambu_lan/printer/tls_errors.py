"""Why a printer's TLS handshake failed: the error kinds and their user-facing messages.

No Home Assistant imports; part of the printer library (see `tls.py`).
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
import ssl
from typing import Any, override


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
