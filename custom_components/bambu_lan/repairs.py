"""The one fix flow: accept a changed certificate that still verifies against the bundled CAs.

No certificate problem that involves a certificate the bundled CAs do not vouch for has a fix
flow: one click there would hand the access code to whoever answers at the printer's address.
Replacing a pinned certificate goes through reconfigure, with the access code typed again.

Confirming re-reads the issue and the live certificate and compares fingerprints, so a
certificate that changed while the form was open is never accepted.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from homeassistant.components.repairs import RepairsFlow, RepairsFlowResult
from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import HomeAssistant
from homeassistant.helpers import issue_registry as ir
import probatio

from .const import CONF_CERT_FINGERPRINT, DOMAIN
from .coordinator import BambuCoordinator
from .issues import display_text

type IssueData = dict[str, str | int | float | None] | None


def _when(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC")


class AcceptCertificateFlow(RepairsFlow):
    """Record a changed (but still verified) certificate as the printer's expected one."""

    def __init__(self, entry_id: str, fingerprint: str) -> None:
        """Remember which entry and which certificate the issue is about."""
        self._entry_id = entry_id
        self._fingerprint = fingerprint

    def _issue_placeholders(self) -> dict[str, str]:
        """What the issue itself shows (address, serial, …): the fix flow's step repeats it."""
        issue = ir.async_get(self.hass).async_get_issue(DOMAIN, self.issue_id)
        return dict(issue.translation_placeholders or {}) if issue is not None else {}

    def _issue_unchanged(self) -> bool:
        issue = ir.async_get(self.hass).async_get_issue(DOMAIN, self.issue_id)
        return (
            issue is not None
            and issue.data is not None
            and issue.data.get("fingerprint") == self._fingerprint
        )

    async def async_step_init(self, user_input: dict[str, Any] | None = None) -> RepairsFlowResult:
        """Go straight to the confirmation."""
        return await self.async_step_confirm()

    async def async_step_confirm(
        self, user_input: dict[str, Any] | None = None
    ) -> RepairsFlowResult:
        """Show old and new certificate; on confirmation record the new fingerprint."""
        entry = self.hass.config_entries.async_get_entry(self._entry_id)
        if entry is None:
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
    """The fix flow of the fixable certificate issue (see issues._fix_data).

    Issues created by an older version may still carry a pin request: they get no flow.
    """
    if data is None or "leaf_pem" in data or "entry_id" not in data:
        raise ValueError(f"issue {issue_id} has no fix flow")
    return AcceptCertificateFlow(str(data["entry_id"]), str(data["fingerprint"]))
