"""The narrow trust decision: pinning one certificate that names the printer's serial."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Self

from cryptography import x509
from cryptography.x509.oid import NameOID

from .const import (
    CONF_ACCESS_CODE,
    CONF_CA_VERIFIED,
    CONF_CERT_FINGERPRINT,
    CONF_HOST,
    CONF_PINNED_CERT,
)
from .issues import display_text
from .printer.tls import CertificateInfo, PrinterTLSError


@dataclass(frozen=True, slots=True)
class PinnableCertificate:
    """An untrusted leaf whose CN is the serial: exactly what the user may pin."""

    pem: str
    cert: x509.Certificate
    info: CertificateInfo

    @classmethod
    def from_error(cls, err: PrinterTLSError) -> Self | None:
        """The leaf the error describes, if tls.py offers it (and it is the one described)."""
        if err.leaf_pem is None:
            return None
        try:
            cert = x509.load_pem_x509_certificate(err.leaf_pem.encode())
        except ValueError:
            return None
        info = CertificateInfo.from_cert(cert)
        return cls(err.leaf_pem, cert, info) if info.sha256 == err.fingerprint else None


@dataclass(frozen=True, slots=True)
class PinOffer:
    """What confirming the pin step validates: this certificate, for this printer."""

    host: str
    serial: str
    access_code: str
    certificate: PinnableCertificate
    origin: str  # the step that offered it, and that shows a failure

    def placeholders(self) -> dict[str, str]:
        """The facts the user decides on; names from the certificate are untrusted text."""
        info = self.certificate.info
        return {
            "host": self.host,
            "serial": self.serial,
            "subject": display_text(name_text(self.certificate.cert.subject)),
            "issuer": display_text(name_text(self.certificate.cert.issuer)),
            "not_before": when(info.not_before),
            "not_after": when(info.not_after),
            "key": f"{info.key_type} {info.key_size}",
            "fingerprint": info.sha256,
        }

    def pinned_data(self, fingerprint: str) -> dict[str, Any]:
        """Entry data once this certificate is pinned: no bundled CA has verified the printer."""
        return {
            CONF_HOST: self.host,
            CONF_ACCESS_CODE: self.access_code,
            CONF_CERT_FINGERPRINT: fingerprint,
            CONF_CA_VERIFIED: False,
        }


def name_text(name: x509.Name) -> str:
    """A distinguished name with its CN first, so that the display cap keeps the CN."""
    attributes = sorted(name, key=lambda attribute: attribute.oid != NameOID.COMMON_NAME)
    return ", ".join(attribute.rfc4514_string() for attribute in attributes)


def when(moment: datetime | None) -> str:
    return "unknown" if moment is None else moment.strftime("%Y-%m-%d %H:%M UTC")


def unpinned_data(fingerprint: str) -> dict[str, Any]:
    """Entry data once the user removed the pin.

    The leaf that just verified against the bundled CAs becomes the expected one, and the
    printer is proven for good.
    """
    return {CONF_CERT_FINGERPRINT: fingerprint, CONF_CA_VERIFIED: True}


def without_pin(options: Mapping[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in options.items() if key != CONF_PINNED_CERT}
