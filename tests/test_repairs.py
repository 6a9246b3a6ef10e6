"""Repair issues and their fix flows, driven through the repairs HTTP API like the frontend."""

from __future__ import annotations

import asyncio
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
from custom_components.bambu_lan.const import (
    CONF_CA_VERIFIED,
    CONF_CERT_FINGERPRINT,
    CONF_PINNED_CERT,
    DOMAIN,
)
from custom_components.bambu_lan.issues import CAMERA_AUTH, LIVEVIEW_DISABLED, SIGNED_COMMANDS
from custom_components.bambu_lan.printer.health import FIXABLE_ISSUES, CertificateIssue
from tests.helpers import printer_entry
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


async def test_impostor_of_a_verified_printer_gets_nothing(
    hass: HomeAssistant,
    repairs_client: TestClient,
    virtual_printer: Callable[..., VirtualPrinter],
    trust_test_cas: object,
    test_cas: TestCAs,
    fast_reconnect: None,
) -> None:
    """A verified printer's live session reconnects to a self-signed impostor with the serial as
    CN: the repair explains and offers no fix, and the impostor receives no login, neither from
    the reconnects nor from a reload."""
    printer = virtual_printer("X1C", time_scale=0)
    entry = await async_setup_printer(hass, printer)
    assert entry.data[CONF_CA_VERIFIED] is True  # migrated from 1.1: no pin, so verified
    assert entry.minor_version == 2
    assert printer.logins() >= 1  # the counter sees the genuine printer's logins

    impostor = issue_server("self_signed", printer.serial, test_cas)
    printer.serve(impostor)  # same address, same access code accepted: only the chain differs
    logins = printer.logins()
    await wait_until(lambda: "untrusted" in open_issues(hass, entry))
    issue = open_issues(hass, entry)["untrusted"]
    assert not issue.is_fixable
    assert issue.data is None
    assert_issue_text(issue)
    text = issue_strings()["untrusted"]
    assert "fix_flow" not in text
    assert "another device may be answering" in text["title"]
    assert "IP address" in text["description"]
    status, _ = await _start_fix(repairs_client, issue.issue_id)
    assert status == 400  # no fix flow: nothing to click

    session = entry.runtime_data.session
    assert session is not None
    await wait_until(lambda: session.stats.last_error is not None)
    await hass.config_entries.async_reload(entry.entry_id)
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.SETUP_RETRY
    assert CONF_PINNED_CERT not in entry.options
    assert printer.logins() == logins


@pytest.mark.parametrize(
    ("profile", "issue_key"),
    [
        ("unknown_ca", "untrusted"),  # a chain to a CA that is not bundled, CN = serial
        ("other_serial", "serial_mismatch"),  # a genuine chain, but another printer's
        ("expired", "expired"),  # the printer's own chain, out of date
    ],
)
async def test_another_chain_on_a_live_session_gets_no_login(
    hass: HomeAssistant,
    virtual_printer: Callable[..., VirtualPrinter],
    trust_test_cas: object,
    test_cas: TestCAs,
    fast_reconnect: None,
    profile: str,
    issue_key: str,
) -> None:
    """The link drops and the reconnect meets another chain: the access code is not sent to
    it (its broker counts no login) and a repair says why."""
    printer = virtual_printer("X1C", time_scale=0)
    entry = await async_setup_printer(hass, printer)
    session = entry.runtime_data.session
    assert session is not None
    assert session.connected
    connects = session.stats.connects

    printer.serve(issue_server(profile, printer.serial, test_cas))
    logins = printer.logins()
    await wait_until(lambda: issue_key in open_issues(hass, entry))
    await wait_until(lambda: entry.runtime_data.tls_error is not None)
    assert_issue_text(open_issues(hass, entry)[issue_key])
    await asyncio.sleep(0.5)  # a few more reconnect attempts (fast back-off)
    assert not session.connected
    assert session.stats.connects == connects
    assert printer.logins() == logins
    assert CONF_PINNED_CERT not in entry.options


async def test_pin_mismatch_is_never_fixed_in_one_click(
    hass: HomeAssistant,
    repairs_client: TestClient,
    virtual_printer: Callable[..., VirtualPrinter],
    trust_test_cas: object,
    fast_reconnect: None,
) -> None:
    """A pinned printer presents another certificate with its serial: the repair points to
    reconfigure (with the access code typed again) and the new certificate gets no login."""
    printer = virtual_printer("X1C", "unknown_ca", time_scale=0)
    pinned = printer.fingerprint
    entry = await async_setup_printer(
        hass, printer, options={CONF_PINNED_CERT: printer.identity.leaf.pem.decode()}
    )
    assert entry.state is ConfigEntryState.LOADED
    assert entry.data[CONF_CA_VERIFIED] is False  # migrated from 1.1: pinned, never verified
    assert certificate_state(hass, printer.serial) == "valid"
    issuer = hass.states.get(sensor_id(hass, printer.serial, "certificate_issuer"))
    assert issuer is not None
    assert issuer.state == "pinned certificate (issued by Untrusted Test CA)"

    printer.reissue_cert()  # the same unknown CA profile, but another certificate
    logins = printer.logins()
    await wait_until(lambda: "pin_mismatch" in open_issues(hass, entry))
    mismatch = open_issues(hass, entry)["pin_mismatch"]
    assert not mismatch.is_fixable
    assert mismatch.translation_placeholders is not None
    assert mismatch.translation_placeholders["pinned_fingerprint"] == pinned
    assert mismatch.translation_placeholders["fingerprint"] == printer.fingerprint
    assert_issue_text(mismatch)
    text = issue_strings()["pin_mismatch"]
    assert "fix_flow" not in text
    assert "reconfigure" in text["description"]
    assert "access code again" in text["description"]
    status, _ = await _start_fix(repairs_client, mismatch.issue_id)
    assert status == 400
    assert entry.data[CONF_CERT_FINGERPRINT] == pinned
    assert printer.logins() == logins


async def test_no_flow_for_stale_or_foreign_issue_data(
    hass: HomeAssistant,
    repairs_client: TestClient,
    virtual_printer: Callable[..., VirtualPrinter],
    trust_test_cas: object,
    test_cas: TestCAs,
) -> None:
    """A pin request stored by an older version gets no flow; the accept flow checks its entry."""
    printer = virtual_printer("X1C", "unknown_ca", time_scale=0)
    entry = await async_setup_printer(hass, printer)
    stale = {
        "flow": "pin",
        "entry_id": entry.entry_id,
        "fingerprint": printer.fingerprint,
        "leaf_pem": printer.identity.leaf.pem.decode(),
    }
    for data in (stale, None, {"fingerprint": printer.fingerprint}):
        with pytest.raises(ValueError, match="has no fix flow"):
            await repairs.async_create_fix_flow(hass, "untrusted_x", data)

    ir.async_create_issue(
        hass,
        DOMAIN,
        "changed_removed",
        is_fixable=True,
        severity=ir.IssueSeverity.WARNING,
        translation_key="changed",
        data={"entry_id": "no_such_entry", "fingerprint": printer.fingerprint},
    )
    status, result = await _start_fix(repairs_client, "changed_removed")
    assert status == 200
    assert result == result | {"type": "abort", "reason": "entry_removed"}
    assert "entry_removed" in issue_strings()["changed"]["fix_flow"]["abort"]

    printer.serve(issue_server("unknown_ca", printer.serial[:-1] + "7", test_cas))
    await hass.config_entries.async_reload(entry.entry_id)
    await hass.async_block_till_done()
    unpinnable = open_issues(hass, entry)["untrusted_unpinnable"]
    assert not unpinnable.is_fixable
    assert_issue_text(unpinnable)
    status, _ = await _start_fix(repairs_client, unpinnable.issue_id)
    assert status == 400


async def test_migration_refuses_a_newer_version(
    hass: HomeAssistant, virtual_printer: Callable[..., VirtualPrinter], trust_test_cas: object
) -> None:
    """An entry written by a newer major version is left alone (and not set up)."""
    printer = virtual_printer("X1C", time_scale=0)
    entry = printer_entry(hass, printer)
    hass.config_entries.async_update_entry(entry, version=2)
    await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.MIGRATION_ERROR
    assert CONF_CA_VERIFIED not in entry.data
    assert printer.logins() == 0


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
    with pytest.raises(ValueError, match="has no fix flow"):
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
