"""Fix flows for the certificate repair issues.

Both flows confirm exactly the certificate their issue showed: the issue's data holds its
fingerprint (and, for a pin, its PEM), and confirming re-reads the issue and compares
fingerprints, so a certificate that changed while the form was open is never accepted.
"""

from __future__ import annotations

from datetime import datetime
import hashlib
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID
from homeassistant.components.repairs import RepairsFlow, RepairsFlowResult
from homeassistant.config_entries import ConfigEntry, ConfigEntryState
from homeassistant.core import HomeAssistant
from homeassistant.helpers import issue_registry as ir
import probatio

from .const import CONF_CERT_FINGERPRINT, CONF_PINNED_CERT, CONF_SERIAL, DOMAIN
from .coordinator import BambuCoordinator
from .issues import FLOW_PIN, display_text
from .printer.tls import CertificateInfo

type IssueData = dict[str, str | int | float | None] | None


def _when(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC")


class _CertificateFlow(RepairsFlow):
    """Shared checks: the entry still exists and the issue still shows this certificate."""

    def __init__(self, entry_id: str, fingerprint: str) -> None:
        """Remember which entry and which certificate the issue is about."""
        self._entry_id = entry_id
        self._fingerprint = fingerprint

    def _entry(self) -> ConfigEntry | None:
        return self.hass.config_entries.async_get_entry(self._entry_id)

    def _issue_placeholders(self) -> dict[str, str]:
        """What the issue itself shows (address, serial, …): the step repeats it."""
        issue = ir.async_get(self.hass).async_get_issue(DOMAIN, self.issue_id)
        return dict(issue.translation_placeholders or {}) if issue is not None else {}

    def _issue_unchanged(self) -> bool:
        issue = ir.async_get(self.hass).async_get_issue(DOMAIN, self.issue_id)
        return (
            issue is not None
            and issue.data is not None
            and issue.data.get("fingerprint") == self._fingerprint
        )


class PinCertificateFlow(_CertificateFlow):
    """Trust one certificate, for one printer, after the user has seen what it is."""

    def __init__(self, entry_id: str, fingerprint: str, pem: str) -> None:
        """Bind the flow to the PEM stored with the issue."""
        super().__init__(entry_id, fingerprint)
        self._pem = pem

    async def async_step_init(self, user_input: dict[str, Any] | None = None) -> RepairsFlowResult:
        """Go straight to the confirmation."""
        return await self.async_step_confirm()

    async def async_step_confirm(
        self, user_input: dict[str, Any] | None = None
    ) -> RepairsFlowResult:
        """Show the certificate; on confirmation pin it and reload the entry."""
        if (entry := self._entry()) is None:
            return self.async_abort(reason="entry_removed")
        try:
            cert = x509.load_pem_x509_certificate(self._pem.encode())
        except ValueError:
            return self.async_abort(reason="certificate_changed")
        der = cert.public_bytes(serialization.Encoding.DER)
        if hashlib.sha256(der).hexdigest() != self._fingerprint:
            return self.async_abort(reason="certificate_changed")
        serial: str = entry.data[CONF_SERIAL]
        names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        if not names or str(names[0].value).casefold() != serial.casefold():
            # tls.py binds a pin to the serial: a certificate for another name could never work.
            return self.async_abort(reason="not_this_printer")
        if user_input is None:
            return self.async_show_form(
                step_id="confirm",
                data_schema=probatio.Schema({}),
                description_placeholders=self._issue_placeholders()
                | _pin_placeholders(entry, cert),
            )
        if not self._issue_unchanged():
            return self.async_abort(reason="certificate_changed")
        self.hass.config_entries.async_update_entry(
            entry,
            data={**entry.data, CONF_CERT_FINGERPRINT: self._fingerprint},
            options={**entry.options, CONF_PINNED_CERT: self._pem},
        )
        self.hass.config_entries.async_schedule_reload(entry.entry_id)
        return self.async_create_entry(data={})


def _pin_placeholders(entry: ConfigEntry, cert: x509.Certificate) -> dict[str, str]:
    info = CertificateInfo.from_cert(cert)
    return {
        "title": entry.title,
        "serial": entry.data[CONF_SERIAL],
        "subject": display_text(info.subject, 128),
        "issuer": display_text(info.issuer, 128),
        "not_before": _when(info.not_before),
        "not_after": _when(info.not_after),
        "key": f"{info.key_type} {info.key_size}",
        "fingerprint": info.sha256,
    }


class AcceptCertificateFlow(_CertificateFlow):
    """Record a changed (but still verified) certificate as the printer's expected one."""

    async def async_step_init(self, user_input: dict[str, Any] | None = None) -> RepairsFlowResult:
        """Go straight to the confirmation."""
        return await self.async_step_confirm()

    async def async_step_confirm(
        self, user_input: dict[str, Any] | None = None
    ) -> RepairsFlowResult:
        """Show old and new certificate; on confirmation record the new fingerprint."""
        if (entry := self._entry()) is None:
            return self.async_abort(reason="entry_removed")
        if entry.state is not ConfigEntryState.LOADED:
            return self.async_abort(reason="not_connected")
        coordinator: BambuCoordinator = entry.runtime_data
        report = coordinator.certificate
        if report is None or report.sha256 != self._fingerprint:
            return self.async_abort(reason="certificate_changed")
        if user_input is None:
            return self.async_show_form(
                step_id="confirm",
                data_schema=probatio.Schema({}),
                description_placeholders=self._issue_placeholders()
                | {
                    "title": entry.title,
                    "old_fingerprint": entry.data.get(CONF_CERT_FINGERPRINT) or "-",
                    "fingerprint": report.sha256,
                    "issuer": display_text(report.issuer_path, 128),
                    "not_before": _when(report.not_before),
                    "not_after": _when(report.not_after),
                },
            )
        if not self._issue_unchanged():
            return self.async_abort(reason="certificate_changed")
        self.hass.config_entries.async_update_entry(
            entry, data={**entry.data, CONF_CERT_FINGERPRINT: self._fingerprint}
        )
        # Closes this issue, and opens the next one if the certificate has another problem.
        coordinator.async_check_certificate()
        return self.async_create_entry(data={})


async def async_create_fix_flow(hass: HomeAssistant, issue_id: str, data: IssueData) -> RepairsFlow:
    """The fix flow of a fixable certificate issue (see issues._fix_data)."""
    if data is None:
        raise ValueError(f"issue {issue_id} has no fix data")
    entry_id, fingerprint = str(data["entry_id"]), str(data["fingerprint"])
    if data.get("flow") == FLOW_PIN:
        return PinCertificateFlow(entry_id, fingerprint, str(data["leaf_pem"]))
    return AcceptCertificateFlow(entry_id, fingerprint)
