"""Repair issues and their fix flows, driven through the repairs HTTP API like the frontend."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiohttp.test_utils import TestClient
from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import HomeAssistant
from homeassistant.helpers import issue_registry as ir
from homeassistant.setup import async_setup_component
import pytest
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator

from custom_components.bambu_lan import repairs
from custom_components.bambu_lan.const import CONF_CERT_FINGERPRINT, CONF_PINNED_CERT, DOMAIN
from custom_components.bambu_lan.issues import CAMERA_AUTH, LIVEVIEW_DISABLED, SIGNED_COMMANDS
from custom_components.bambu_lan.printer.health import FIXABLE_ISSUES, CertificateIssue
from tests.test_certificate_health import (
    RECORDED,
    assert_issue_text,
    async_setup_printer,
    certificate_state,
    issue_strings,
    open_issues,
    placeholder_fields,
    sensor_id,
    wait_until,
)
from tests.virtual_printer.pki import TestCAs, issue_server
from tests.virtual_printer.printer import VirtualPrinter


@pytest.fixture
async def repairs_client(hass: HomeAssistant, hass_client: ClientSessionGenerator) -> TestClient:
    """An HTTP client of the repairs API (what the frontend uses to run fix flows)."""
    assert await async_setup_component(hass, "repairs", {})
    return await hass_client()


async def _start_fix(client: TestClient, issue_id: str) -> tuple[int, dict[str, Any]]:
    response = await client.post(
        "/api/repairs/issues/fix", json={"handler": DOMAIN, "issue_id": issue_id}
    )
    return response.status, await response.json()


async def _submit(client: TestClient, flow_id: str) -> dict[str, Any]:
    response = await client.post(f"/api/repairs/issues/fix/{flow_id}", json={})
    assert response.status == 200
    result: dict[str, Any] = await response.json()
    return result


def _assert_rendered(key: str, flow: dict[str, Any]) -> None:
    """The step's text exists and every placeholder it uses is provided."""
    step = issue_strings()[key]["fix_flow"]["step"][flow["step_id"]]
    assert placeholder_fields(step["title"], step["description"]) <= set(
        flow["description_placeholders"]
    )


async def test_pin_untrusted_certificate(
    hass: HomeAssistant,
    repairs_client: TestClient,
    virtual_printer: Callable[..., VirtualPrinter],
    trust_test_cas: object,
    fast_reconnect: None,
) -> None:
    """An unknown issuer: the user reviews the certificate, pins it, and the printer connects.

    Afterwards only that certificate is accepted: a re-issued one fails again, as a pin mismatch.
    """
    printer = virtual_printer("X1C", "unknown_ca", time_scale=0)
    pinned = printer.fingerprint
    entry = await async_setup_printer(hass, printer)
    assert entry.state is ConfigEntryState.SETUP_RETRY
    issue = open_issues(hass, entry)["untrusted"]
    assert issue.is_fixable
    assert issue.data is not None
    assert issue.data["fingerprint"] == pinned
    assert_issue_text(issue)

    status, flow = await _start_fix(repairs_client, issue.issue_id)
    assert status == 200
    assert flow["step_id"] == "confirm"
    shown = flow["description_placeholders"]
    assert shown["fingerprint"] == pinned
    assert shown["serial"] == printer.serial
    assert "CN=Untrusted Test CA" in shown["issuer"]
    assert f"CN={printer.serial}" in shown["subject"]
    assert shown["key"] == "RSA 2048"
    _assert_rendered("untrusted", flow)

    result = await _submit(repairs_client, flow["flow_id"])
    assert result["type"] == "create_entry"
    await hass.async_block_till_done()

    assert entry.state is ConfigEntryState.LOADED
    assert entry.options[CONF_PINNED_CERT] == printer.identity.leaf.pem.decode()
    assert entry.data[CONF_CERT_FINGERPRINT] == pinned
    assert open_issues(hass, entry) == {}
    assert certificate_state(hass, printer.serial) == "valid"
    issuer = hass.states.get(sensor_id(hass, printer.serial, "certificate_issuer"))
    assert issuer is not None
    assert issuer.state == "pinned certificate (issued by Untrusted Test CA)"

    printer.reissue_cert()  # the same unknown CA profile, but another certificate
    await wait_until(lambda: certificate_state(hass, printer.serial) == "untrusted")
    mismatch = open_issues(hass, entry)["pin_mismatch"]
    assert mismatch.is_fixable
    assert mismatch.translation_placeholders is not None
    assert mismatch.translation_placeholders["pinned_fingerprint"] == pinned
    assert mismatch.translation_placeholders["fingerprint"] == printer.fingerprint
    assert_issue_text(mismatch)


async def test_pin_only_the_certificate_shown(
    hass: HomeAssistant,
    repairs_client: TestClient,
    virtual_printer: Callable[..., VirtualPrinter],
    trust_test_cas: object,
) -> None:
    """If the printer presents another certificate while the form is open, nothing is pinned."""
    printer = virtual_printer("X1C", "unknown_ca", time_scale=0)
    entry = await async_setup_printer(hass, printer)
    issue_id = open_issues(hass, entry)["untrusted"].issue_id
    _, flow = await _start_fix(repairs_client, issue_id)
    assert flow["description_placeholders"]["fingerprint"] == printer.fingerprint

    printer.reissue_cert()
    await hass.config_entries.async_reload(entry.entry_id)  # the next retry sees the new one
    await hass.async_block_till_done()
    issue = open_issues(hass, entry)["untrusted"]
    assert issue.data is not None
    assert issue.data["fingerprint"] == printer.fingerprint

    result = await _submit(repairs_client, flow["flow_id"])
    assert result == result | {"type": "abort", "reason": "certificate_changed"}
    assert CONF_PINNED_CERT not in entry.options
    assert entry.state is ConfigEntryState.SETUP_RETRY
    assert "untrusted" in open_issues(hass, entry)  # still there, with the new certificate


async def test_pin_refuses_bad_issue_data(
    hass: HomeAssistant,
    repairs_client: TestClient,
    virtual_printer: Callable[..., VirtualPrinter],
    trust_test_cas: object,
    test_cas: TestCAs,
) -> None:
    """Defence in depth: a certificate for another name, a removed entry, an unpinnable issue."""
    printer = virtual_printer("X1C", "unknown_ca", time_scale=0)
    entry = await async_setup_printer(hass, printer)
    stranger = issue_server("unknown_ca", printer.serial[:-1] + "7", test_cas).leaf
    cases = {
        "not_this_printer": (entry.entry_id, stranger.sha256, stranger.pem.decode()),
        "certificate_changed": (entry.entry_id, "00" * 32, printer.identity.leaf.pem.decode()),
        "entry_removed": ("no_such_entry", stranger.sha256, stranger.pem.decode()),
    }
    for reason, (entry_id, fingerprint, pem) in cases.items():
        ir.async_create_issue(
            hass,
            DOMAIN,
            f"untrusted_{reason}",
            is_fixable=True,
            severity=ir.IssueSeverity.ERROR,
            translation_key="untrusted",
            data={"flow": "pin", "entry_id": entry_id, "fingerprint": fingerprint, "leaf_pem": pem},
        )
        status, result = await _start_fix(repairs_client, f"untrusted_{reason}")
        assert status == 200
        assert result == result | {"type": "abort", "reason": reason}
        assert reason in issue_strings()["untrusted"]["fix_flow"]["abort"]
    assert CONF_PINNED_CERT not in entry.options

    printer.serve(issue_server("unknown_ca", printer.serial[:-1] + "7", test_cas))
    await hass.config_entries.async_reload(entry.entry_id)
    await hass.async_block_till_done()
    unpinnable = open_issues(hass, entry)["untrusted_unpinnable"]
    assert not unpinnable.is_fixable
    assert_issue_text(unpinnable)
    status, _ = await _start_fix(repairs_client, unpinnable.issue_id)
    assert status == 400


async def test_accept_changed_certificate(
    hass: HomeAssistant,
    repairs_client: TestClient,
    virtual_printer: Callable[..., VirtualPrinter],
    trust_test_cas: object,
) -> None:
    """Changed but verified: the flow shows both fingerprints and records the new one."""
    printer = virtual_printer("P1S", "v2", time_scale=0)
    entry = await async_setup_printer(hass, printer, fingerprint=RECORDED)
    issue = open_issues(hass, entry)["changed"]

    _, flow = await _start_fix(repairs_client, issue.issue_id)
    shown = flow["description_placeholders"]
    assert shown["old_fingerprint"] == RECORDED
    assert shown["fingerprint"] == printer.fingerprint
    assert shown["issuer"] == "Test BBL CA2 RSA via Test BBL Device CA N7-V2"
    assert shown["not_after"].startswith(
        printer.identity.leaf.cert.not_valid_after_utc.strftime("%Y-%m-%d")
    )
    _assert_rendered("changed", flow)

    result = await _submit(repairs_client, flow["flow_id"])
    assert result["type"] == "create_entry"
    await hass.async_block_till_done()
    assert entry.data[CONF_CERT_FINGERPRINT] == printer.fingerprint
    assert open_issues(hass, entry) == {}
    assert certificate_state(hass, printer.serial) == "valid"


async def test_accept_refuses_a_newer_change(
    hass: HomeAssistant,
    repairs_client: TestClient,
    virtual_printer: Callable[..., VirtualPrinter],
    trust_test_cas: object,
    fast_reconnect: None,
) -> None:
    """The certificate changes again while the form is open: nothing is recorded."""
    printer = virtual_printer("X1C", time_scale=0)
    entry = await async_setup_printer(hass, printer, fingerprint=RECORDED)
    _, flow = await _start_fix(repairs_client, open_issues(hass, entry)["changed"].issue_id)

    newer = printer.reissue_cert()
    coordinator = entry.runtime_data
    await wait_until(
        lambda: coordinator.certificate is not None and coordinator.certificate.sha256 == newer
    )
    result = await _submit(repairs_client, flow["flow_id"])
    assert result == result | {"type": "abort", "reason": "certificate_changed"}
    assert entry.data[CONF_CERT_FINGERPRINT] == RECORDED
    issue = open_issues(hass, entry)["changed"]
    assert issue.data is not None
    assert issue.data["fingerprint"] == newer

    await hass.config_entries.async_unload(entry.entry_id)
    _, result = await _start_fix(repairs_client, issue.issue_id)
    assert result == result | {"type": "abort", "reason": "not_connected"}


async def test_signed_commands_issue(
    hass: HomeAssistant,
    virtual_printer: Callable[..., VirtualPrinter],
    trust_test_cas: object,
) -> None:
    """Firmware that wants signed commands gets an explanation, gone once it no longer does."""
    printer = virtual_printer("P1S", time_scale=0)
    entry = await async_setup_printer(hass, printer)
    assert SIGNED_COMMANDS not in open_issues(hass, entry)

    printer.fault("signed_commands", required=True)
    await wait_until(lambda: SIGNED_COMMANDS in open_issues(hass, entry))
    issue = open_issues(hass, entry)[SIGNED_COMMANDS]
    assert not issue.is_fixable
    assert issue.severity is ir.IssueSeverity.WARNING
    text = issue_strings()[SIGNED_COMMANDS]
    assert "LAN Only" in text["description"]
    assert "Developer Mode" in text["description"]
    assert_issue_text(issue)

    printer.fault("signed_commands", required=False)
    await wait_until(lambda: SIGNED_COMMANDS not in open_issues(hass, entry))
    assert entry.state is ConfigEntryState.LOADED


def test_every_issue_has_text() -> None:
    """Each issue key has a title and a description, which a fixable one has in its fix flow."""
    strings = issue_strings()
    assert set(strings) == {*CertificateIssue, SIGNED_COMMANDS, CAMERA_AUTH, LIVEVIEW_DISABLED}
    for key, text in strings.items():
        assert text["title"], key
        fixable = key in FIXABLE_ISSUES
        assert ("fix_flow" in text) is fixable, key
        description = text["fix_flow"]["step"]["confirm"] if fixable else text
        assert description["description"], key


async def test_accept_needs_a_live_connection(
    hass: HomeAssistant,
    repairs_client: TestClient,
    virtual_printer: Callable[..., VirtualPrinter],
    trust_test_cas: object,
) -> None:
    """A changed certificate is accepted only from a live, verified connection."""
    printer = virtual_printer("P1S", "v2", time_scale=0)
    entry = await async_setup_printer(hass, printer, fingerprint=RECORDED)
    issue = open_issues(hass, entry)["changed"]
    await hass.config_entries.async_unload(entry.entry_id)
    _, flow = await _start_fix(repairs_client, issue.issue_id)
    assert flow["type"] == "abort"
    assert flow["reason"] == "not_connected"
    assert entry.data[CONF_CERT_FINGERPRINT] == RECORDED
    with pytest.raises(ValueError, match="no fix data"):
        await repairs.async_create_fix_flow(hass, issue.issue_id, None)


async def test_accept_after_the_entry_was_removed(
    hass: HomeAssistant,
    repairs_client: TestClient,
    virtual_printer: Callable[..., VirtualPrinter],
    trust_test_cas: object,
) -> None:
    """A fix flow left open while its printer is deleted ends without touching anything."""
    printer = virtual_printer("P1S", "v2", time_scale=0)
    entry = await async_setup_printer(hass, printer, fingerprint=RECORDED)
    issue = open_issues(hass, entry)["changed"]
    _, flow = await _start_fix(repairs_client, issue.issue_id)
    assert flow["type"] == "form"
    await hass.config_entries.async_remove(entry.entry_id)
    await hass.async_block_till_done()
    result = await _submit(repairs_client, flow["flow_id"])
    assert result["type"] == "abort"
    assert result["reason"] == "entry_removed"
