"""The printer session and the push coordinator against a real broker over real TLS."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from homeassistant.config_entries import SOURCE_REAUTH, ConfigEntryState
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers import issue_registry as ir
import pytest

from custom_components.bambu_lan import client
from custom_components.bambu_lan.client import (
    CommandError,
    InvalidAuth,
    PrinterSession,
)
from custom_components.bambu_lan.const import DOMAIN
from custom_components.bambu_lan.coordinator import BambuCoordinator
from custom_components.bambu_lan.model import MAX_PAYLOAD_BYTES
from custom_components.bambu_lan.tls import PrinterTLSError, TLSErrorKind
from tests.helpers import async_setup_printer, printer_entry, wait_until

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


def sent_commands(printer: Any) -> list[str]:
    """The `command` of every request the printer received."""
    return [
        body.get("command")
        for request in printer.received_commands()
        for body in request.values()
        if isinstance(body, dict)
    ]


class Recorder:
    """A session listener that records what it is told."""

    def __init__(self) -> None:
        self.reports: list[dict[str, Any]] = []
        self.connected = 0
        self.disconnected: list[Exception | None] = []
        self.failures: list[Exception] = []
        self.keep_trying = True

    def on_report(self, message: dict[str, Any]) -> None:
        self.reports.append(message)

    def on_connected(self, certificate: Any) -> None:
        self.connected += 1

    def on_disconnected(self, error: Exception | None) -> None:
        self.disconnected.append(error)

    def on_reconnect_failed(self, error: Exception) -> bool:
        self.failures.append(error)
        return self.keep_trying


@pytest.fixture
async def open_session() -> Any:
    """Open sessions that are closed after the test, whatever happened in it."""
    sessions: list[PrinterSession] = []

    def open_(printer: Any, recorder: Any = None, **kwargs: Any) -> PrinterSession:
        kwargs.setdefault("port", printer.port)
        code = kwargs.pop("access_code", printer.access_code)
        session = PrinterSession(
            "127.0.0.1", printer.serial, code, recorder or Recorder(), **kwargs
        )
        sessions.append(session)
        return session

    yield open_
    for session in sessions:
        await session.async_close()


# --- the session on its own ------------------------------------------------------------------


@pytest.mark.parametrize("profile", ["legacy", "v2", "v2-ec"])
async def test_session_connects_and_receives(
    open_session: Any, hass: HomeAssistant, virtual_printer: Any, profile: str
) -> None:
    """Each real-printer certificate profile connects; get_version and pushall arrive."""
    printer = virtual_printer("P1S", profile)
    recorder = Recorder()
    session = open_session(printer, recorder)
    report = await session.async_connect()
    assert report.subject_cn == printer.serial
    assert report.sha256 == printer.fingerprint
    assert report.tls_version == "TLSv1.2"
    await wait_until(lambda: {"info", "print"} <= {key for msg in recorder.reports for key in msg})
    assert "Zq7Kx2Lm" not in repr(session)
    await session.async_close()
    assert not session.connected
    assert recorder.disconnected == []  # a deliberate close is not a lost connection


async def test_session_without_state_request(
    open_session: Any, hass: HomeAssistant, virtual_printer: Any
) -> None:
    """The config flow's validation session asks for nothing until told to."""
    printer = virtual_printer("A1MINI")
    recorder = Recorder()
    session = open_session(printer, recorder, request_state=False)
    await session.async_connect()
    reply = await session.async_command("info", "get_version")
    assert any(module.get("name") == "ota" for module in reply["module"])
    assert "pushall" not in sent_commands(printer)
    # Without start_reconnecting() a dropped validation session stays down.
    printer.restart_broker()
    await wait_until(lambda: not session.connected)
    await asyncio.sleep(0.2)
    assert session._reconnect_task is None
    assert recorder.failures == []
    await session.async_close()


async def test_session_wrong_access_code(
    open_session: Any, hass: HomeAssistant, virtual_printer: Any
) -> None:
    """CONNACK 5 becomes InvalidAuth; the message names no secret."""
    printer = virtual_printer("P1S")
    session = open_session(printer, access_code="Wr0ngC0d")
    with pytest.raises(InvalidAuth) as err:
        await session.async_connect()
    assert "Wr0ngC0d" not in str(err.value)
    assert not session.connected


async def test_session_unreachable(
    open_session: Any, hass: HomeAssistant, virtual_printer: Any
) -> None:
    """A refused port is classified as unreachable with address and port."""
    printer = virtual_printer("P1S")
    printer.stop_broker()
    session = open_session(printer, Recorder())
    with pytest.raises(PrinterTLSError) as err:
        await session.async_connect()
    assert err.value.kind is TLSErrorKind.UNREACHABLE
    assert f"127.0.0.1:{printer.port}" in str(err.value)


@pytest.mark.parametrize(
    ("profile", "kind"),
    [
        ("other_serial", TLSErrorKind.SERIAL_MISMATCH),
        ("self_signed", TLSErrorKind.UNTRUSTED_ISSUER),
        ("unknown_ca", TLSErrorKind.UNTRUSTED_ISSUER),
        ("expired", TLSErrorKind.EXPIRED),
    ],
)
async def test_session_refuses_bad_certificates(
    open_session: Any, hass: HomeAssistant, virtual_printer: Any, profile: str, kind: TLSErrorKind
) -> None:
    """Verification failures surface as classified TLS errors; no login is attempted."""
    printer = virtual_printer("P1S", profile)
    session = open_session(printer, Recorder())
    with pytest.raises(PrinterTLSError) as err:
        await session.async_connect()
    assert err.value.kind is kind
    assert not session.connected
    assert session.stats.connects == 0  # no MQTT login (test_tls proves no byte was sent)


async def test_commands_ack_refusal_and_timeout(
    open_session: Any, hass: HomeAssistant, virtual_printer: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Acknowledgements are matched by sequence id; refusals and silence are errors."""
    printer = virtual_printer("X1C")
    recorder = Recorder()
    session = open_session(printer, recorder)
    await session.async_connect()
    ack = await session.async_command(
        "system",
        "ledctrl",
        {
            "led_node": "chamber_light",
            "led_mode": "on",
            "led_on_time": 500,
            "led_off_time": 500,
            "loop_times": 0,
            "interval_time": 0,
        },
    )
    assert ack["result"].lower() == "success"
    sent = printer.wait_for_command("ledctrl")["system"]
    assert sent["sequence_id"] == ack["sequence_id"]

    printer.fault("refuse_next", reason="busy")
    with pytest.raises(CommandError) as err:
        await session.async_command("print", "print_speed", {"param": "3"})
    assert err.value.kind == "failed"
    assert err.value.reason == "busy"

    printer.fault("ignore_next")
    with pytest.raises(CommandError) as err:
        await session.async_command("print", "print_speed", {"param": "3"}, ack_timeout=0.5)
    assert err.value.kind == "timeout"

    await session.async_close()
    with pytest.raises(CommandError) as err:
        await session.async_command("print", "pause")
    assert err.value.kind == "not_connected"


async def test_bad_input_is_dropped(
    open_session: Any, hass: HomeAssistant, virtual_printer: Any
) -> None:
    """Malformed payloads never reach the listener, and the connection stays up."""
    printer = virtual_printer("P1S")
    recorder = Recorder()
    session = open_session(printer, recorder)
    await session.async_connect()
    await wait_until(lambda: session.stats.messages >= 2)
    for kind in ("invalid_json", "array", "scalar", "not_utf8", "empty", "huge"):
        printer.fault("malformed", kind=kind)
    printer.publish_raw(b"{" + b" " * (MAX_PAYLOAD_BYTES + 1) + b"}")
    await wait_until(lambda: session.stats.dropped_messages >= 7)
    assert session.connected
    # Still alive: the next real command is acknowledged.
    await session.async_command("print", "print_speed", {"param": "2"})
    await session.async_close()


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
    assert "start" in sent_commands(printer)
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
