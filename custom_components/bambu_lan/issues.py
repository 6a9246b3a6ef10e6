"""Repair issues (Settings → Repairs) for problems the user can act on.

Certificate problems are one issue per entry at a time, keyed by what is wrong (see
`health.CertificateIssue`): each kind has its own issue id, so ignoring "expiring soon" does not
ignore "untrusted", and a fix flow that resolves one kind may open the next. Issues disappear by
themselves when the condition clears; an unreachable printer leaves them as they are.
"""

from __future__ import annotations

from datetime import datetime
import re
from typing import TYPE_CHECKING, Final

from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers import issue_registry as ir
from homeassistant.util import dt as dt_util

from .const import CONF_HOST, CONF_SERIAL, DOMAIN, MQTT_PORT
from .printer.health import (
    FIXABLE_ISSUES,
    CertificateHealth,
    CertificateIssue,
    certificate_issue,
    days_left,
    is_conclusive,
)
from .printer.tls import CertificateReport, PrinterTLSError

if TYPE_CHECKING:
    from homeassistant.config_entries import ConfigEntry

SIGNED_COMMANDS: Final = "signed_commands"
CAMERA_AUTH: Final = "camera_invalid_auth"
LIVEVIEW_DISABLED: Final = "liveview_disabled"
_WARNINGS: Final = frozenset({CertificateIssue.EXPIRING_SOON, CertificateIssue.CHANGED})


def issue_id(key: str, entry: ConfigEntry) -> str:
    """The id of one kind of issue for one entry."""
    return f"{key}_{entry.entry_id}"


_MARKUP: Final = re.compile(r"[\[\]()<>*_`\\|#!~]")
# Links, written out or bare: `scheme://...` and `www....` up to the next white space.
_URL: Final = re.compile(r"(?:\b[a-z][a-z0-9+.-]*://|\bwww\.)\S*", re.IGNORECASE)
DISPLAY_LIMIT: Final = 64


def display_text(text: str | None, limit: int = DISPLAY_LIMIT) -> str:
    """Text chosen by whoever made a certificate (or an announcement), made inert for display.

    Repair, form and flow texts are rendered as markdown (and the frontend turns bare URLs into
    links), so a forged issuer or printer name could otherwise carry a link or formatting into
    the very dialog that asks the user to trust it.
    """
    printable = "".join(char if char.isprintable() else " " for char in text or "")
    # URLs before and after the markup: removing markup must not assemble one ("http:/*/...").
    flat = " ".join(_URL.sub(" ", _MARKUP.sub("", _URL.sub(" ", printable))).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC") if moment is not None else "-"


def tls_placeholders(error: PrinterTLSError) -> dict[str, str]:
    """The facts the translated TLS messages show; never secrets."""
    return {
        "host": error.host or "-",
        "port": str(error.port or "-"),
        "serial": error.serial or "-",
        "issuer": display_text(error.issuer) or "-",
        "fingerprint": error.fingerprint or "-",
        # Verified only when tls.py could prove the device genuine; the CN is merely claimed.
        "presented_serial": display_text(error.presented_serial) or "-",
        "presented_cn": display_text(error.presented_cn) or "-",
        "pinned_fingerprint": error.pinned_fingerprint or "-",
        "not_before": _when(error.not_before),
        "not_after": _when(error.not_after),
        "error": display_text(str(error), 300) or "-",
    }


def _report_placeholders(report: CertificateReport, now: datetime) -> dict[str, str]:
    return {
        "issuer": display_text(report.issuer_path, 128) or "-",
        "fingerprint": report.sha256,
        "not_before": _when(report.not_before),
        "not_after": _when(report.not_after),
        "days_left": str(days_left(report.not_after, now)),
    }


def _placeholders(
    entry: ConfigEntry,
    report: CertificateReport | None,
    error: PrinterTLSError | None,
    recorded_fingerprint: str | None,
) -> dict[str, str]:
    """Every placeholder any certificate issue text uses, so no text can miss one."""
    placeholders = {
        "title": entry.title,
        "host": entry.data[CONF_HOST],
        "port": str(entry.data.get("port", MQTT_PORT)),
        "serial": entry.data[CONF_SERIAL],
        "issuer": "-",
        "fingerprint": "-",
        "presented_serial": "-",
        "presented_cn": "-",
        "pinned_fingerprint": "-",
        "not_before": "-",
        "not_after": "-",
        "days_left": "-",
        "error": "-",
        "old_fingerprint": recorded_fingerprint or "-",
    }
    if error is not None:
        placeholders |= tls_placeholders(error)
    elif report is not None:
        placeholders |= _report_placeholders(report, dt_util.utcnow())
    return placeholders


def _fix_data(
    key: CertificateIssue, entry: ConfigEntry, report: CertificateReport | None
) -> dict[str, str | int | float | None] | None:
    """What a fix flow needs: exactly the certificate the issue shows (see FIXABLE_ISSUES)."""
    if key in FIXABLE_ISSUES and report is not None:
        return {"entry_id": entry.entry_id, "fingerprint": report.sha256}
    return None


@callback
def async_sync_certificate_issue(
    hass: HomeAssistant,
    entry: ConfigEntry,
    health: CertificateHealth | None,
    *,
    report: CertificateReport | None,
    error: PrinterTLSError | None,
    recorded_fingerprint: str | None,
) -> None:
    """Open the certificate issue that matches the evaluation and close the others."""
    if not is_conclusive(health, error):
        return
    key = certificate_issue(health, error)
    for other in CertificateIssue:
        if other is not key:
            ir.async_delete_issue(hass, DOMAIN, issue_id(other, entry))
    if key is None:
        return
    data = _fix_data(key, entry, report)
    ir.async_create_issue(
        hass,
        DOMAIN,
        issue_id(key, entry),
        is_fixable=data is not None,
        severity=ir.IssueSeverity.WARNING if key in _WARNINGS else ir.IssueSeverity.ERROR,
        translation_key=key,
        translation_placeholders=_placeholders(entry, report, error, recorded_fingerprint),
        data=data,
    )


def async_clear_tls_issue(hass: HomeAssistant, entry: ConfigEntry) -> None:
    """Close every certificate issue of the entry."""
    for key in CertificateIssue:
        ir.async_delete_issue(hass, DOMAIN, issue_id(key, entry))


def async_remove_entry_issues(hass: HomeAssistant, entry: ConfigEntry) -> None:
    """The entry is gone: so are its issues (call from async_remove_entry)."""
    async_clear_tls_issue(hass, entry)
    for key in (SIGNED_COMMANDS, CAMERA_AUTH, LIVEVIEW_DISABLED):
        ir.async_delete_issue(hass, DOMAIN, issue_id(key, entry))


@callback
def async_set_camera_issue(hass: HomeAssistant, entry: ConfigEntry, key: str, active: bool) -> None:
    """Open (or close) a camera issue: `key` names it and its translation."""
    if not active:
        ir.async_delete_issue(hass, DOMAIN, issue_id(key, entry))
        return
    ir.async_create_issue(
        hass,
        DOMAIN,
        issue_id(key, entry),
        is_fixable=False,
        severity=ir.IssueSeverity.WARNING,
        translation_key=key,
        translation_placeholders={"title": entry.title, "host": entry.data[CONF_HOST]},
    )


@callback
def async_set_signed_commands_issue(
    hass: HomeAssistant, entry: ConfigEntry, required: bool
) -> None:
    """Open (or close) the issue for firmware that rejects unsigned commands."""
    if not required:
        ir.async_delete_issue(hass, DOMAIN, issue_id(SIGNED_COMMANDS, entry))
        return
    ir.async_create_issue(
        hass,
        DOMAIN,
        issue_id(SIGNED_COMMANDS, entry),
        is_fixable=False,
        severity=ir.IssueSeverity.WARNING,
        translation_key=SIGNED_COMMANDS,
        translation_placeholders={"title": entry.title, "host": entry.data[CONF_HOST]},
    )
