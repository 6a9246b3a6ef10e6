"""The push coordinator in Home Assistant against a real broker over real TLS."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from homeassistant.config_entries import SOURCE_REAUTH, ConfigEntryState
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers import issue_registry as ir
import pytest

from custom_components.bambu_lan import coordinator as coordinator_module
from custom_components.bambu_lan.const import DOMAIN
from custom_components.bambu_lan.coordinator import BambuCoordinator
from custom_components.bambu_lan.printer import session as client
from custom_components.bambu_lan.printer.tls import PrinterTLSError, TLSErrorKind
from tests.helpers import async_setup_printer, printer_entry, sent_commands, wait_until
from tests.virtual_printer.broker import free_port

pytestmark = pytest.mark.usefixtures("trust_test_cas")


async def setup_entry(hass: HomeAssistant, printer: Any) -> BambuCoordinator:
    """Set up a loaded entry for the printer and return its coordinator."""
    entry = await async_setup_printer(hass, printer)
    assert entry.state is ConfigEntryState.LOADED
    coordinator: BambuCoordinator = entry.runtime_data
    return coordinator


def domain_issues(hass: HomeAssistant) -> list[ir.IssueEntry]:
    """This integration's open repair issues."""
    return [
        issue
        for (domain, _), issue in ir.async_get(hass).issues.items()
        if domain == DOMAIN and issue.active
    ]


# --- the coordinator in Home Assistant ---------------------------------------------------------


async def test_coordinator_merges_deltas(hass: HomeAssistant, virtual_printer: Any) -> None:
    """P1-style deltas merge into the state the first full report built."""
    printer = virtual_printer("P1S")
    coordinator = await setup_entry(hass, printer)
    assert coordinator.state.full_state_received
    assert coordinator.state.model == "P1S"
    assert coordinator.certificate is not None
    assert coordinator.certificate.sha256 == printer.fingerprint
    printer.set_state({"mc_percent": 42, "nozzle_target_temper": 215})
    await wait_until(lambda: coordinator.state.progress == 42)
    assert coordinator.state.nozzle_target == 215
    assert coordinator.state.bed_temp is not None  # kept from the full report
    await hass.config_entries.async_unload(coordinator.config_entry.entry_id)
    assert coordinator.session is None


async def test_coordinator_command_errors_are_translated(
    hass: HomeAssistant, virtual_printer: Any
) -> None:
    """A refused command raises a translated HomeAssistantError."""
    printer = virtual_printer("X1C")
    coordinator = await setup_entry(hass, printer)
    with pytest.raises(HomeAssistantError) as err:
        await coordinator.async_send("print", "pause")  # idle printer refuses
    assert err.value.translation_key == "command_failed"
    assert err.value.translation_domain == DOMAIN


@pytest.mark.usefixtures("fast_reconnect")
async def test_broker_restart_unavailable_then_recovered(
    hass: HomeAssistant, virtual_printer: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """A dropped connection makes entities unavailable and recovers by itself, logged once."""
    printer = virtual_printer("P1S")
    coordinator = await setup_entry(hass, printer)
    caplog.set_level(logging.INFO, logger="custom_components.bambu_lan")
    printer.stop_broker()
    await wait_until(lambda: not coordinator.last_update_success)
    await asyncio.sleep(0.6)  # several failed reconnect attempts
    printer.start_broker()
    await wait_until(lambda: coordinator.last_update_success)
    assert coordinator.session is not None
    assert coordinator.session.stats.connects == 2
    lost = [r for r in caplog.records if "Lost the connection" in r.getMessage()]
    back = [r for r in caplog.records if "Reconnected" in r.getMessage()]
    assert len(lost) == 1
    assert len(back) == 1


@pytest.mark.usefixtures("fast_reconnect")
async def test_flapping_link_is_logged_once_per_outage(
    hass: HomeAssistant,
    virtual_printer: Any,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Drops in quick succession are one outage ("lost" and "reconnected" once); an outage ends
    once the link has stayed up for STABLE_LINK, and the next drop is logged again."""
    monkeypatch.setattr(coordinator_module, "STABLE_LINK", 1.5)
    printer = virtual_printer("P1S")
    coordinator = await setup_entry(hass, printer)
    caplog.set_level(logging.INFO, logger="custom_components.bambu_lan")

    def logged(text: str) -> int:
        return sum(text in record.getMessage() for record in caplog.records)

    assert coordinator.session is not None
    for drop in (1, 2, 3):
        printer.restart_broker()
        await wait_until(
            lambda drop=drop: (
                coordinator.session is not None
                and coordinator.session.stats.connects == drop + 1
                and coordinator.last_update_success
            )
        )
    assert (logged("Lost the connection"), logged("Reconnected")) == (1, 1)

    await asyncio.sleep(1.8)  # the link stays up: the outage is over
    printer.restart_broker()
    await wait_until(lambda: coordinator.session.stats.connects == 5)  # type: ignore[union-attr]
    await wait_until(lambda: coordinator.last_update_success)
    assert (logged("Lost the connection"), logged("Reconnected")) == (2, 2)


@pytest.mark.usefixtures("fast_reconnect")
async def test_silence_watchdog(
    hass: HomeAssistant, virtual_printer: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A printer that stays connected but stops publishing is nudged, then dropped."""
    monkeypatch.setattr(client, "SILENCE_NUDGE", 0.3)
    monkeypatch.setattr(client, "SILENCE_DROP", 0.8)
    printer = virtual_printer("P1S")
    coordinator = await setup_entry(hass, printer)
    printer.clear_commands()
    printer.fault("silent")
    await wait_until(lambda: not coordinator.last_update_success)
    # The firmware is another process: under load it may record the nudge a little later.
    await wait_until(lambda: "start" in sent_commands(printer))
    printer.fault("resume")
    await wait_until(lambda: coordinator.last_update_success)


async def test_wrong_access_code_at_setup_starts_reauth(
    hass: HomeAssistant, virtual_printer: Any
) -> None:
    """CONNACK 5 at setup: the entry fails and Home Assistant asks for a new code."""
    printer = virtual_printer("P1S")
    entry = printer_entry(hass, printer, access_code="Wr0ngC0d")
    await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.SETUP_ERROR
    flows = hass.config_entries.flow.async_progress_by_handler(DOMAIN)
    assert [flow["context"]["source"] for flow in flows] == [SOURCE_REAUTH]


@pytest.mark.usefixtures("fast_reconnect")
async def test_access_code_changed_while_running(hass: HomeAssistant, virtual_printer: Any) -> None:
    """The code changes under a running entry: stop retrying, start reauthentication."""
    printer = virtual_printer("P1S")
    coordinator = await setup_entry(hass, printer)
    printer.set_access_code("N3wC0de1")
    await wait_until(lambda: bool(hass.config_entries.flow.async_progress_by_handler(DOMAIN)))
    await asyncio.sleep(0.3)
    assert coordinator.session is not None
    assert not coordinator.session.connected
    assert coordinator.session._reconnect_task is None  # gave up: no point hammering


async def test_certificate_failure_at_setup(hass: HomeAssistant, virtual_printer: Any) -> None:
    """A certificate for another serial keeps the entry retrying and raises a repair issue."""
    printer = virtual_printer("P1S", "other_serial")
    entry = printer_entry(hass, printer)
    await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.SETUP_RETRY
    assert [issue.translation_key for issue in domain_issues(hass)] == ["serial_mismatch"]


@pytest.mark.usefixtures("fast_reconnect")
async def test_reissued_certificate_reconnects(hass: HomeAssistant, virtual_printer: Any) -> None:
    """A re-issued leaf that still verifies is accepted, and the new one is what we report."""
    printer = virtual_printer("P1S")
    coordinator = await setup_entry(hass, printer)
    old = coordinator.certificate
    assert old is not None
    new_fingerprint = printer.reissue_cert()
    await wait_until(
        lambda: (
            coordinator.certificate is not None
            and coordinator.certificate.sha256 == new_fingerprint
        )
    )
    assert new_fingerprint != old.sha256


@pytest.mark.usefixtures("fast_reconnect")
async def test_untrusted_certificate_after_reconnect(
    hass: HomeAssistant, virtual_printer: Any
) -> None:
    """After a reconnect the device presents an unknown issuer: retry, and a repair issue."""
    printer = virtual_printer("P1S")
    coordinator = await setup_entry(hass, printer)
    printer.profile = "unknown_ca"
    printer.reissue_cert()
    await wait_until(lambda: coordinator.tls_error is not None)
    assert coordinator.tls_error.kind is TLSErrorKind.UNTRUSTED_ISSUER
    assert not coordinator.last_update_success
    assert [issue.translation_key for issue in domain_issues(hass)] == ["untrusted"]


async def test_unload_closes_everything(hass: HomeAssistant, virtual_printer: Any) -> None:
    """Unloading disconnects; the harness then checks no thread, timer or task is left."""
    printer = virtual_printer("H2D")
    coordinator = await setup_entry(hass, printer)
    session = coordinator.session
    assert session is not None
    assert await hass.config_entries.async_unload(coordinator.config_entry.entry_id)
    assert not session.connected
    assert session._client is None


async def test_setup_without_first_report_closes_connection(
    hass: HomeAssistant, virtual_printer: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A printer that connects but never reports: retry later, and hang up meanwhile."""
    from custom_components.bambu_lan import coordinator as coordinator_module

    monkeypatch.setattr(coordinator_module, "FIRST_REPORT_TIMEOUT", 0.5)
    printer = virtual_printer("P1S")
    printer.fault("silent")
    entry = printer_entry(hass, printer)
    await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.SETUP_RETRY


async def test_nothing_listening_at_setup_is_not_ready(
    hass: HomeAssistant, virtual_printer: Any
) -> None:
    """A refused connection at setup retries later (not ready), with the address in the reason."""
    printer = virtual_printer("P1S")
    entry = await async_setup_printer(hass, printer, port=free_port())
    assert entry.state is ConfigEntryState.SETUP_RETRY
    assert entry.reason is not None
    assert "127.0.0.1" in entry.reason
    assert printer.access_code not in entry.reason


async def test_one_cut_short_handshake_raises_no_issue(
    hass: HomeAssistant, virtual_printer: Any
) -> None:
    """A rebooting printer cuts a handshake short now and then: no repair for a single one."""
    printer = virtual_printer("P1S")
    coordinator = await setup_entry(hass, printer)
    error = PrinterTLSError(TLSErrorKind.PROTOCOL, host=printer.host, serial=printer.serial)
    assert coordinator.on_reconnect_failed(error) is True
    assert domain_issues(hass) == []
    for _ in range(5):
        coordinator.on_reconnect_failed(error)
    assert [issue.issue_id for issue in domain_issues(hass)] != []


async def test_commands_after_unload_are_refused(hass: HomeAssistant, virtual_printer: Any) -> None:
    """Once the session is closed, commands fail with a translated error, not a crash."""
    printer = virtual_printer("P1S")
    coordinator = await setup_entry(hass, printer)
    await hass.config_entries.async_unload(coordinator.config_entry.entry_id)
    with pytest.raises(HomeAssistantError) as err:
        await coordinator.async_send("print", "pause")
    assert err.value.translation_key == "not_connected"
