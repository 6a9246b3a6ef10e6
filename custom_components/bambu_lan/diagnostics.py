"""Downloadable diagnostics: the whole certificate report and the connection, secrets removed.

The access code never appears. The serial and the host identify the user's printer and network,
so every occurrence of either string is scrubbed, wherever it hides (certificate subjects, topics,
error messages, `sn` fields); where it matters that the certificate names this printer, the
output says "matches" instead of printing the serial.
"""

from __future__ import annotations

from collections.abc import Iterable
import re
import time
from typing import Any, Final

from cryptography import x509
from cryptography.x509.oid import NameOID
from homeassistant.components.diagnostics import REDACTED, async_redact_data
from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import HomeAssistant
from homeassistant.helpers import issue_registry as ir
from homeassistant.helpers.device_registry import DeviceEntry
from homeassistant.util import dt as dt_util

from .const import (
    CONF_ACCESS_CODE,
    CONF_CERT_FINGERPRINT,
    CONF_HOST,
    CONF_PINNED_CERT,
    CONF_SERIAL,
    DOMAIN,
)
from .coordinator import BambuConfigEntry, BambuCoordinator
from .printer.health import days_left
from .printer.tls import CertificateInfo, PrinterTLSError

# Keys whose values are redacted wherever they occur (the printer's own reports included).
TO_REDACT: Final = {
    CONF_ACCESS_CODE,
    CONF_HOST,
    CONF_SERIAL,
    "sn",
    "ip",
    "mask",
    "gateway",
    "ssid",
    "wifi_ssid",
    "rtsp_url",
}

MATCHES: Final = "matches the configured serial"
DIFFERS: Final = "differs from the configured serial"


async def async_get_config_entry_diagnostics(
    hass: HomeAssistant, entry: BambuConfigEntry
) -> dict[str, Any]:
    """Diagnostics for one printer's entry."""
    return _diagnostics(hass, entry)


async def async_get_device_diagnostics(
    hass: HomeAssistant, entry: BambuConfigEntry, device: DeviceEntry
) -> dict[str, Any]:
    """Diagnostics for the printer's device (one device per entry: the same report)."""
    return _diagnostics(hass, entry)


def _diagnostics(hass: HomeAssistant, entry: BambuConfigEntry) -> dict[str, Any]:
    serial: str = entry.data[CONF_SERIAL]
    coordinator = entry.runtime_data if entry.state is ConfigEntryState.LOADED else None
    data: dict[str, Any] = {
        "entry": {
            "title": entry.title,
            "state": entry.state.value,
            "data": async_redact_data(dict(entry.data), TO_REDACT),
            "pinned_certificates": _pins(entry.options.get(CONF_PINNED_CERT), serial),
        },
        "open_issues": sorted(
            issue.translation_key or issue_id
            for (domain, issue_id), issue in ir.async_get(hass).issues.items()
            if domain == DOMAIN and issue_id.endswith(entry.entry_id)
        ),
    }
    if coordinator is not None:
        data |= _runtime(coordinator, entry.data.get(CONF_CERT_FINGERPRINT))
    secrets = (entry.data[CONF_ACCESS_CODE], serial, entry.data[CONF_HOST])
    scrubbed: dict[str, Any] = _scrub(async_redact_data(data, TO_REDACT), _pattern(secrets))
    return scrubbed


def _runtime(coordinator: BambuCoordinator, recorded: str | None) -> dict[str, Any]:
    serial = coordinator.serial
    report = coordinator.certificate
    health = coordinator.certificate_health()
    certificate: dict[str, Any] = {
        "health": health.value if health is not None else None,
        "recorded_fingerprint": recorded,
        "current_fingerprint": report.sha256 if report is not None else None,
        "report": None,
    }
    if report is not None:
        certificate["fingerprint_matches_recorded"] = report.sha256 == recorded
        certificate["report"] = report.as_dict() | {
            "subject_cn": _binding(report.subject_cn, serial),
            # The report's own count is from the handshake; the download should be current.
            "days_left": days_left(report.not_after, dt_util.utcnow()),
        }
    state = coordinator.state
    return {
        "certificate": certificate,
        "last_failure": _failure(coordinator.tls_error, coordinator.tls_error_at, serial),
        "connection": _connection(coordinator),
        "camera": coordinator.camera.diagnostics(),
        "printer": {
            "model": str(state.model) if state.model is not None else None,
            "product_name": state.product_name,
            "firmware": state.firmware,
            "hardware": state.hardware,
            "reported_serial": (
                _binding(state.reported_serial, serial) if state.reported_serial else None
            ),
            "signed_commands_required": state.signed_commands_required,
        },
        "state": state.snapshot(),
    }


def _binding(name: str, serial: str) -> str:
    return MATCHES if name.casefold() == serial.casefold() else DIFFERS


def _pins(pem: str | None, serial: str) -> list[dict[str, Any]]:
    """The pinned certificate by fingerprint and facts (the PEM body is not needed to judge it)."""
    if not pem:
        return []
    try:
        cert = x509.load_pem_x509_certificate(pem.encode())
    except ValueError:
        return [{"error": "unreadable pinned certificate"}]
    info = CertificateInfo.from_cert(cert)
    cn = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return [
        {
            "fingerprint": info.sha256,
            "issuer": info.issuer,
            "not_before": info.not_before.isoformat(),
            "not_after": info.not_after.isoformat(),
            "subject_cn": _binding(str(cn[0].value) if cn else "", serial),
        }
    ]


def _failure(error: PrinterTLSError | None, at: str | None, serial: str) -> dict[str, Any] | None:
    if error is None:
        return None
    return {
        "kind": error.kind.value,
        "message": str(error),
        "at": at,
        "issuer": error.issuer,
        "fingerprint": error.fingerprint,
        "pinned_fingerprint": error.pinned_fingerprint,
        "presented_cn": _binding(error.presented_cn, serial) if error.presented_cn else None,
        "presented_serial_verified": error.presented_serial is not None,
        "not_before": error.not_before.isoformat() if error.not_before else None,
        "not_after": error.not_after.isoformat() if error.not_after else None,
        "openssl_code": error.openssl_code,
        "openssl_message": error.openssl_message,
        "detail": error.detail,
        "pinnable": error.leaf_pem is not None,
    }


def _connection(coordinator: BambuCoordinator) -> dict[str, Any]:
    session = coordinator.session
    if session is None:
        return {"connected": False}
    stats = session.stats
    now = time.monotonic()
    return {
        "connected": session.connected,
        "port": session.port,
        "connects": stats.connects,
        "disconnects": stats.disconnects,
        "messages": stats.messages,
        "dropped_messages": stats.dropped_messages,
        "last_error": stats.last_error,
        "last_message_age_s": _age(stats.last_message_monotonic, now),
        "connected_for_s": _age(stats.connected_since, now) if session.connected else None,
    }


def _age(since: float | None, now: float) -> float | None:
    return round(now - since, 1) if since is not None else None


def _pattern(secrets: Iterable[str]) -> re.Pattern[str]:
    # Longest first, so a secret that contains another is replaced whole.
    words = sorted({secret for secret in secrets if secret}, key=len, reverse=True)
    if not words:
        return re.compile(r"(?!)")  # matches nothing
    return re.compile("|".join(re.escape(word) for word in words), re.IGNORECASE)


def _scrub(value: Any, pattern: re.Pattern[str]) -> Any:
    """Replace every occurrence of a secret in every string (dict keys included)."""
    if isinstance(value, str):
        return pattern.sub(REDACTED, value)
    if isinstance(value, dict):
        return {_scrub(key, pattern): _scrub(item, pattern) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_scrub(item, pattern) for item in value]
    return value
