"""Certificate health: one verdict on how far the printer's connection can be trusted.

Pure evaluation, no Home Assistant imports: the coordinator feeds it the report of the live (or
last) verified connection, the fingerprint recorded when the entry was set up, the last
verification failure and the time, and gets back a state for the diagnostic sensor and the repair
issue that should be open.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum
from typing import Final

from .tls import CertificateReport, PrinterTLSError, TLSErrorKind

# A certificate with fewer days left than this is reported as expiring soon.
EXPIRY_WARNING_DAYS: Final = 30


class CertificateHealth(StrEnum):
    """The states of the certificate sensor (translated in entity.sensor.certificate)."""

    VALID = "valid"
    EXPIRING_SOON = "expiring_soon"
    EXPIRED = "expired"
    NOT_YET_VALID = "not_yet_valid"
    UNTRUSTED = "untrusted"
    SERIAL_MISMATCH = "serial_mismatch"
    CHANGED = "changed"
    UNREACHABLE = "unreachable"


_FAILURE_HEALTH: Final = {
    TLSErrorKind.UNTRUSTED_ISSUER: CertificateHealth.UNTRUSTED,
    TLSErrorKind.SERIAL_MISMATCH: CertificateHealth.SERIAL_MISMATCH,
    TLSErrorKind.EXPIRED: CertificateHealth.EXPIRED,
    TLSErrorKind.NOT_YET_VALID: CertificateHealth.NOT_YET_VALID,
    # A failed handshake or no answer at all: nothing was learnt about the certificate.
    TLSErrorKind.PROTOCOL: CertificateHealth.UNREACHABLE,
    TLSErrorKind.UNREACHABLE: CertificateHealth.UNREACHABLE,
}


class CertificateIssue(StrEnum):
    """Repair issues about the certificate (translation keys under "issues"); one at a time."""

    # No certificate problem is fixed in one click: each would hand the access code to whoever
    # answers. Pinning another certificate needs reconfigure and the access code typed again.
    UNTRUSTED = "untrusted"  # CN = serial, unknown issuer: another device may be answering
    UNTRUSTED_UNPINNABLE = "untrusted_unpinnable"  # not even made out to the serial
    PIN_MISMATCH = "pin_mismatch"  # a pinned printer presented another certificate
    SERIAL_MISMATCH = "serial_mismatch"
    EXPIRED = "expired"
    NOT_YET_VALID = "not_yet_valid"
    EXPIRING_SOON = "expiring_soon"
    CHANGED = "changed"  # fixable: accept the new fingerprint
    HANDSHAKE_FAILED = "handshake_failed"


def days_left(not_after: datetime, now: datetime) -> int:
    """Whole days until `not_after` (negative once it has passed)."""
    return (not_after - now) // timedelta(days=1)


def evaluate_health(
    report: CertificateReport | None,
    recorded_fingerprint: str | None,
    error: PrinterTLSError | None,
    now: datetime,
    *,
    connected: bool = True,
) -> CertificateHealth | None:
    """The certificate health, or None before anything is known.

    `error` is the last verification failure since the last verified connection (the coordinator
    clears it on success), so it describes the current situation whenever it is set.
    """
    if error is not None:
        return _FAILURE_HEALTH[error.kind]
    if report is None:
        return None
    if not connected:
        return CertificateHealth.UNREACHABLE
    # A connection outlives its certificate: the daily re-evaluation catches that.
    if report.not_after <= now:
        return CertificateHealth.EXPIRED
    # Reported, not accepted silently: a legitimate firmware update looks the same as a swap.
    if recorded_fingerprint is not None and report.sha256 != recorded_fingerprint.lower():
        return CertificateHealth.CHANGED
    if days_left(report.not_after, now) < EXPIRY_WARNING_DAYS:
        return CertificateHealth.EXPIRING_SOON
    return CertificateHealth.VALID


_HEALTH_ISSUE: Final = {
    CertificateHealth.SERIAL_MISMATCH: CertificateIssue.SERIAL_MISMATCH,
    CertificateHealth.EXPIRED: CertificateIssue.EXPIRED,
    CertificateHealth.NOT_YET_VALID: CertificateIssue.NOT_YET_VALID,
    CertificateHealth.EXPIRING_SOON: CertificateIssue.EXPIRING_SOON,
    CertificateHealth.CHANGED: CertificateIssue.CHANGED,
}


def is_conclusive(health: CertificateHealth | None, error: PrinterTLSError | None) -> bool:
    """Whether the evaluation says anything about the certificate (so issues may change).

    An unreachable printer tells nothing: open issues stay as they are until it answers.
    """
    if error is not None and error.kind is TLSErrorKind.PROTOCOL:
        return True
    return health is not None and health is not CertificateHealth.UNREACHABLE


def certificate_issue(
    health: CertificateHealth | None, error: PrinterTLSError | None
) -> CertificateIssue | None:
    """The repair issue that should be open for a conclusive evaluation (None: no issue)."""
    if error is not None and error.kind is TLSErrorKind.PROTOCOL:
        return CertificateIssue.HANDSHAKE_FAILED
    if health is CertificateHealth.UNTRUSTED:
        if error is None or error.leaf_pem is None:
            return CertificateIssue.UNTRUSTED_UNPINNABLE
        if error.pinned_fingerprint is not None:
            return CertificateIssue.PIN_MISMATCH
        return CertificateIssue.UNTRUSTED
    return _HEALTH_ISSUE.get(health) if health is not None else None


# Accepting a changed certificate that still verifies sends the code nowhere new.
FIXABLE_ISSUES: Final = frozenset({CertificateIssue.CHANGED})
