"""Config flow against the virtual printer: real TLS, real mosquitto, real firmware process."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
import hashlib
import json
import logging
from pathlib import Path
import socket
import ssl
from typing import Any
from unittest.mock import patch

from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID
from homeassistant.config_entries import (
    SOURCE_INTEGRATION_DISCOVERY,
    SOURCE_USER,
    ConfigEntryState,
    ConfigFlowResult,
)
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType, InvalidData
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry
import pytest_socket

from custom_components.bambu_lan import config_flow, discovery, flow_validation, issues
from custom_components.bambu_lan.const import (
    CONF_ACCESS_CODE,
    CONF_CA_VERIFIED,
    CONF_CERT_FINGERPRINT,
    CONF_HOST,
    CONF_PINNED_CERT,
    CONF_SERIAL,
    DOMAIN,
)
from custom_components.bambu_lan.flow_pin import PinnableCertificate
from custom_components.bambu_lan.issues import display_text
from custom_components.bambu_lan.printer import session as client
from custom_components.bambu_lan.printer.tls import PrinterTLSError, TLSErrorKind
from tests.helpers import wait_until
from tests.virtual_printer.pki import TestCAs, issue_server
from tests.virtual_printer.printer import PrinterFactory, VirtualPrinter

TRUST = config_flow.CONF_TRUST_CERTIFICATE
TRANSLATIONS = json.loads(
    (Path(__file__).parents[1] / "custom_components/bambu_lan/translations/en.json").read_text()
)
NEW_CODE = "N3wC0de9"
UNUSED_ADDRESS = "192.0.2.10"  # TEST-NET-1: stored in entries, never connected to
# For steps that must not connect at all.
OFFLINE_SERIAL = "00M09A000000001"
OFFLINE_INPUT = {
    CONF_HOST: UNUSED_ADDRESS,
    CONF_SERIAL: OFFLINE_SERIAL,
    CONF_ACCESS_CODE: "12345678",
}


@pytest.fixture(autouse=True)
def discovery_on_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    """Never listen on 0.0.0.0:2021 in tests."""
    monkeypatch.setattr(discovery, "DISCOVERY_ADDRESS", "127.0.0.1")
    monkeypatch.setattr(discovery, "DISCOVERY_PORT", 0)


@pytest.fixture
def printer(
    virtual_printer: PrinterFactory, trust_test_cas: Path, monkeypatch: pytest.MonkeyPatch
) -> VirtualPrinter:
    """A healthy X1C; the flow connects to its port."""
    started = virtual_printer()
    monkeypatch.setattr(config_flow, "MQTT_PORT", started.port)
    return started


@pytest.fixture
def no_entry_setup() -> Iterator[None]:
    """Pure flow tests: the created entry does not connect."""
    with (
        patch("custom_components.bambu_lan.async_setup_entry", return_value=True),
        patch("custom_components.bambu_lan.async_unload_entry", return_value=True),
    ):
        yield


@pytest.fixture
def fast_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    """A silent printer fails the flow quickly."""
    monkeypatch.setattr(flow_validation, "VALIDATION_TIMEOUT", 0.5)


def leaf_cn(printer: VirtualPrinter) -> str:
    """The CN of the certificate the printer presents."""
    subject = printer.identity.leaf.cert.subject
    return str(subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value)


def user_input(printer: VirtualPrinter, **changes: str) -> dict[str, str]:
    """What a user types for this printer."""
    return {
        CONF_HOST: printer.host,
        CONF_SERIAL: printer.serial,
        CONF_ACCESS_CODE: printer.access_code,
        **changes,
    }


def suggested(result: ConfigFlowResult) -> dict[str, Any]:
    """The values the form shows again."""
    return {
        key.schema: key.description["suggested_value"]
        for key in result["data_schema"].schema
        if key.description and "suggested_value" in key.description
    }


def form_fields(result: ConfigFlowResult) -> list[str]:
    """The names of the form's fields."""
    return [key.schema for key in result["data_schema"].schema]


def error_message(result: ConfigFlowResult) -> str:
    """The user's text for the form's base error, placeholders filled (KeyError if one lacks)."""
    template = TRANSLATIONS["config"]["error"][result["errors"]["base"]]
    return template.format(**result["description_placeholders"])


async def start_user_flow(hass: HomeAssistant) -> ConfigFlowResult:
    """Open the user step."""
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "user"
    assert result["errors"] == {}
    return result


async def submit_user(hass: HomeAssistant, data: dict[str, str]) -> ConfigFlowResult:
    """Open the user step and submit it once."""
    result = await start_user_flow(hass)
    return await hass.config_entries.flow.async_configure(result["flow_id"], data)


def offline_entry(**data: Any) -> MockConfigEntry:
    """An existing entry that these tests never connect to."""
    return MockConfigEntry(
        domain=DOMAIN,
        unique_id=OFFLINE_SERIAL,
        title="X1 Carbon Workshop",
        data={**OFFLINE_INPUT, **data},
    )


def printer_entry(
    printer: VirtualPrinter, *, options: dict[str, Any] | None = None, **data: Any
) -> MockConfigEntry:
    """An existing entry for this printer."""
    return MockConfigEntry(
        domain=DOMAIN,
        unique_id=printer.serial,
        title="X1 Carbon Workshop",
        options=options or {},
        data={
            CONF_HOST: printer.host,
            CONF_SERIAL: printer.serial,
            CONF_ACCESS_CODE: printer.access_code,
            "port": printer.port,
            CONF_CERT_FINGERPRINT: printer.fingerprint,
            **data,
        },
    )


@pytest.fixture
def session_log(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, object]]:
    """Record ("connect" | "close", session) in order (a spy: behaviour unchanged).

    The sessions themselves are kept (not their id()): a collected session's id can be reused.
    """
    events: list[tuple[str, object]] = []
    connect = client.PrinterSession.async_connect
    close = client.PrinterSession.async_close

    async def spy_connect(self: client.PrinterSession) -> Any:
        events.append(("connect", self))
        return await connect(self)

    async def spy_close(self: client.PrinterSession) -> None:
        events.append(("close", self))
        await close(self)

    monkeypatch.setattr(client.PrinterSession, "async_connect", spy_connect)
    monkeypatch.setattr(client.PrinterSession, "async_close", spy_close)
    return events


# --- user step -----------------------------------------------------------------------------------


async def test_user_creates_entry_and_setup_runs(
    hass: HomeAssistant,
    printer: VirtualPrinter,
    session_log: list[tuple[str, object]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Typed values are normalised, proven, stored; the entry's own setup then connects."""
    caplog.set_level(logging.DEBUG)
    result = await submit_user(hass, user_input(printer, serial=printer.serial[:-1]))
    assert result["errors"] == {CONF_SERIAL: "invalid_serial"}

    result = await hass.config_entries.flow.async_configure(
        result["flow_id"],
        user_input(
            printer,
            host=f"  {printer.host} ",
            serial=f" {printer.serial.lower()} ",
            access_code=f" {printer.access_code}\t",
        ),
    )

    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["title"] == "Bambu Lab X1 Carbon"
    assert result["data"] == {
        CONF_HOST: printer.host,
        CONF_SERIAL: printer.serial,
        CONF_ACCESS_CODE: printer.access_code,
        CONF_CERT_FINGERPRINT: printer.fingerprint,
        CONF_CA_VERIFIED: True,  # the bundled CAs verified it: it can never be pinned
        "port": printer.port,
    }
    entry = result["result"]
    assert (entry.version, entry.minor_version) == (1, 2)
    assert entry.unique_id == printer.serial
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.LOADED
    # The validation session was closed before the entry's own session opened.
    (first_action, validation), (second_action, closed), (third_action, setup) = session_log[:3]
    assert (first_action, second_action, third_action) == ("connect", "close", "connect")
    assert closed is validation
    assert setup is not validation
    assert printer.access_code not in caplog.text


async def test_standard_port_is_not_stored(
    hass: HomeAssistant,
    printer: VirtualPrinter,
    no_entry_setup: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An entry for a printer on 8883 has no port key (the standard port is implied)."""
    # The virtual printer cannot listen on 8883 here: pretend its port is the standard one.
    monkeypatch.setattr(config_flow.const, "MQTT_PORT", printer.port)

    result = await submit_user(hass, user_input(printer))

    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert "port" not in result["data"]


@pytest.mark.parametrize(
    ("changes", "errors"),
    [
        ({CONF_SERIAL: "01P00A12345678"}, {CONF_SERIAL: "invalid_serial"}),
        ({CONF_SERIAL: "01P00A12345678-"}, {CONF_SERIAL: "invalid_serial"}),
        ({CONF_ACCESS_CODE: "1234567"}, {CONF_ACCESS_CODE: "invalid_access_code_format"}),
        ({CONF_ACCESS_CODE: "1234-678"}, {CONF_ACCESS_CODE: "invalid_access_code_format"}),
        ({CONF_HOST: "127.0.0.1\x00evil"}, {CONF_HOST: "invalid_host"}),
        ({CONF_HOST: ""}, {CONF_HOST: "invalid_host"}),
        ({CONF_HOST: "   "}, {CONF_HOST: "invalid_host"}),
        ({CONF_HOST: "a" * 300}, {CONF_HOST: "invalid_host"}),
        ({CONF_HOST: f"{'b' * 64}.local"}, {CONF_HOST: "invalid_host"}),
        ({CONF_HOST: "printer_1.lan"}, {CONF_HOST: "invalid_host"}),
        ({CONF_HOST: "http://192.0.2.10"}, {CONF_HOST: "invalid_host"}),
        ({CONF_HOST: "999.1.1.1"}, {CONF_HOST: "invalid_host"}),
        ({CONF_HOST: "fe80::1%eth0 x"}, {CONF_HOST: "invalid_host"}),
        (
            {CONF_HOST: "-bad.lan", CONF_SERIAL: "x"},
            {CONF_HOST: "invalid_host", CONF_SERIAL: "invalid_serial"},
        ),
        (
            {CONF_SERIAL: "x", CONF_ACCESS_CODE: ""},
            {CONF_SERIAL: "invalid_serial", CONF_ACCESS_CODE: "invalid_access_code_format"},
        ),
    ],
)
async def test_user_format_errors(
    hass: HomeAssistant,
    session_log: list[tuple[str, object]],
    changes: dict[str, str],
    errors: dict[str, str],
) -> None:
    """Format errors are shown per field without connecting; the form keeps what was typed."""
    typed = {**OFFLINE_INPUT, **changes}

    result = await submit_user(hass, typed)

    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == errors
    assert suggested(result) == {**typed, CONF_SERIAL: typed[CONF_SERIAL].upper()}
    for key in errors.values():
        assert TRANSLATIONS["config"]["error"][key]
    assert session_log == []


async def test_unknown_serial_prefix_is_accepted(
    hass: HomeAssistant,
    virtual_printer: PrinterFactory,
    trust_test_cas: Path,
    no_entry_setup: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The prefix is only a model hint: a well-formed serial of a new family is fine."""
    unknown = virtual_printer("P1S", serial="ZZZ09A000000001")
    monkeypatch.setattr(config_flow, "MQTT_PORT", unknown.port)

    result = await submit_user(hass, user_input(unknown))

    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["title"] == "Bambu Lab P1S"  # model from get_version's product_name


async def test_invalid_access_code_then_recovery(
    hass: HomeAssistant, printer: VirtualPrinter, no_entry_setup: None
) -> None:
    """CONNACK 5: the form keeps host and serial but not the rejected code."""
    result = await submit_user(hass, user_input(printer, access_code="Wr0ngC0d"))

    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {"base": "invalid_auth"}
    assert suggested(result) == {CONF_HOST: printer.host, CONF_SERIAL: printer.serial}
    assert error_message(result)

    result = await hass.config_entries.flow.async_configure(result["flow_id"], user_input(printer))
    assert result["type"] is FlowResultType.CREATE_ENTRY


@pytest.mark.parametrize(
    ("profile", "error", "expected"),
    [
        ("other_serial", "serial_mismatch", "presented_serial"),
        ("self_signed", "untrusted_certificate", "fingerprint"),
        ("unknown_ca", "untrusted_certificate", "fingerprint"),
        ("expired", "certificate_expired", "not_after"),
        ("not_yet_valid", "certificate_not_yet_valid", "not_before"),
        ("tls1_0_only", "tls_failed", "error"),
    ],
)
async def test_user_tls_errors(
    hass: HomeAssistant,
    virtual_printer: PrinterFactory,
    trust_test_cas: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    profile: str,
    error: str,
    expected: str,
) -> None:
    """Each hostile certificate gets its own explanation, with the facts seen."""
    caplog.set_level(logging.DEBUG)
    hostile = virtual_printer(profile=profile)
    monkeypatch.setattr(config_flow, "MQTT_PORT", hostile.port)

    result = await submit_user(hass, user_input(hostile))

    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {"base": error}
    placeholders = result["description_placeholders"]
    message = error_message(result)
    assert placeholders[expected] in message
    assert suggested(result) == user_input(hostile)  # nothing was rejected by the printer
    match profile:
        case "other_serial":
            presented = leaf_cn(hostile)
            assert presented != hostile.serial
            assert placeholders["presented_serial"] == presented
        case "self_signed" | "unknown_ca":
            assert placeholders["fingerprint"] == hostile.fingerprint
            assert placeholders["issuer"] != "unknown"
        case "expired":
            assert placeholders["not_after"] < placeholders["now"]
        case "not_yet_valid":
            assert placeholders["not_before"] > placeholders["now"]
    # The pin is offered exactly for untrusted leaves that name the serial.
    assert (TRUST in form_fields(result)) is (profile in {"self_signed", "unknown_ca"})
    assert hostile.access_code not in caplog.text


async def test_serial_mismatch_named_only_when_verified(
    hass: HomeAssistant,
    virtual_printer: PrinterFactory,
    trust_test_cas: Path,
    test_cas: TestCAs,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A self-signed certificate for another serial is untrusted, not "printer <that serial>"."""
    printer = virtual_printer()
    printer.serve(issue_server("self_signed", "01P09A999999999", test_cas))
    monkeypatch.setattr(config_flow, "MQTT_PORT", printer.port)

    result = await submit_user(hass, user_input(printer))

    assert result["errors"] == {"base": "untrusted_certificate"}
    assert "presented_serial" not in result["description_placeholders"]
    assert result["description_placeholders"]["fingerprint"] == printer.fingerprint
    assert TRUST not in form_fields(result)  # its CN is not the serial: pinning could not work


async def test_unconfirmed_other_serial_is_not_named(
    hass: HomeAssistant,
    virtual_printer: PrinterFactory,
    trust_test_cas: Path,
    test_cas: TestCAs,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Another serial whose own chain does not verify (here: expired) is only "not yours"."""
    printer = virtual_printer()
    printer.serve(issue_server("expired", "00M09A999999999", test_cas))
    monkeypatch.setattr(config_flow, "MQTT_PORT", printer.port)

    result = await submit_user(hass, user_input(printer))

    assert result["errors"] == {"base": "wrong_device"}
    assert "00M09A999999999" not in error_message(result)
    assert printer.serial in error_message(result)


def test_validation_session_never_retries() -> None:
    """The short validation connection has no reconnect loop to keep alive."""
    assert flow_validation._Quiet().on_reconnect_failed(ConnectionError()) is False


async def test_cannot_connect_closed_port(
    hass: HomeAssistant, trust_test_cas: Path, socket_enabled: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Nothing listens: the message names the address and port."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed_port = sock.getsockname()[1]
    monkeypatch.setattr(config_flow, "MQTT_PORT", closed_port)

    result = await submit_user(
        hass, {CONF_HOST: "127.0.0.1", CONF_SERIAL: "00M09A000000001", CONF_ACCESS_CODE: "12345678"}
    )

    assert result["errors"] == {"base": "cannot_connect"}
    assert f"127.0.0.1:{closed_port}" in error_message(result)
    assert result["description_placeholders"]["error"] == "connection refused"


async def test_timeout_when_printer_ignores_get_version(
    hass: HomeAssistant, printer: VirtualPrinter, fast_timeout: None
) -> None:
    """Login works but the printer never answers: a timeout, not "cannot connect"."""
    printer.fault("silent")

    result = await submit_user(hass, user_input(printer))

    assert result["errors"] == {"base": "timeout"}
    assert f"{printer.host}:{printer.port}" in error_message(result)


async def answer_get_version(
    hass: HomeAssistant, printer: VirtualPrinter, flow_id: str, reply: dict[str, Any]
) -> ConfigFlowResult:
    """Submit the user step while the firmware is silent and answer get_version by hand."""
    printer.fault("silent")
    printer.clear_commands()
    task = hass.async_create_task(
        hass.config_entries.flow.async_configure(flow_id, user_input(printer))
    )
    request = await printer.async_wait_for_command("get_version")
    body = {**request["info"], **reply}
    printer.publish_raw(json.dumps({"info": body}).encode())
    return await task


async def test_firmware_serial_must_match(
    hass: HomeAssistant, printer: VirtualPrinter, no_entry_setup: None
) -> None:
    """A firmware reporting another serial than its certificate is refused."""
    result = await start_user_flow(hass)
    module = {"name": "ota", "sn": "00M09A999999999", "sw_ver": "01.09.00.00"}

    result = await answer_get_version(hass, printer, result["flow_id"], {"module": [module]})

    assert result["errors"] == {"base": "serial_mismatch"}
    assert result["description_placeholders"]["presented_serial"] == "00M09A999999999"


async def test_firmware_without_serial_is_accepted(
    hass: HomeAssistant, printer: VirtualPrinter, no_entry_setup: None
) -> None:
    """Old firmware without the ota sn: the verified certificate already proved the serial."""
    result = await start_user_flow(hass)
    modules = [{"name": "ota", "sw_ver": "01.04.00.00"}]

    result = await answer_get_version(hass, printer, result["flow_id"], {"module": modules})

    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["title"] == "Bambu Lab X1 Carbon"  # model from the serial prefix


async def test_get_version_refused(hass: HomeAssistant, printer: VirtualPrinter) -> None:
    """A failed get_version acknowledgement is a connection problem."""
    result = await start_user_flow(hass)

    result = await answer_get_version(
        hass, printer, result["flow_id"], {"result": "failed", "reason": "busy"}
    )

    assert result["errors"] == {"base": "cannot_connect"}
    assert "busy" in result["description_placeholders"]["error"]


async def _start_tls_server(
    test_cas: TestCAs, tmp_path: Path, *, hang_up: bool
) -> tuple[asyncio.Server, str]:
    """A genuine-looking printer TLS endpoint that never completes the MQTT login."""
    serial = "00M09A000000007"
    chain, key = issue_server("legacy", serial, test_cas).write_server_files(tmp_path)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(chain, key)

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not hang_up:
            while await reader.read(1024):  # the CONNECT packet, never answered, until EOF
                pass
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0, ssl=context)
    return server, serial


@pytest.fixture
async def hangup_server(
    test_cas: TestCAs, tmp_path: Path, socket_enabled: None
) -> AsyncIterator[tuple[int, str]]:
    """Hangs up right after the handshake."""
    server, serial = await _start_tls_server(test_cas, tmp_path, hang_up=True)
    yield server.sockets[0].getsockname()[1], serial
    server.close()
    await server.wait_closed()


@pytest.fixture
async def mute_server(
    test_cas: TestCAs, tmp_path: Path, socket_enabled: None
) -> AsyncIterator[tuple[int, str]]:
    """Completes the handshake, reads the login and never answers it."""
    server, serial = await _start_tls_server(test_cas, tmp_path, hang_up=False)
    yield server.sockets[0].getsockname()[1], serial
    server.close()
    server.close_clients()
    await server.wait_closed()


async def test_timeout_when_login_is_unanswered(
    hass: HomeAssistant,
    trust_test_cas: Path,
    mute_server: tuple[int, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Verified TLS, then no CONNACK: the printer is too busy (too many clients?)."""
    port, serial = mute_server
    monkeypatch.setattr(config_flow, "MQTT_PORT", port)
    monkeypatch.setattr(client, "CONNECT_TIMEOUT", 0.5)

    result = await submit_user(
        hass, {CONF_HOST: "127.0.0.1", CONF_SERIAL: serial, CONF_ACCESS_CODE: "12345678"}
    )

    assert result["errors"] == {"base": "timeout"}


async def test_cannot_connect_when_login_is_cut(
    hass: HomeAssistant,
    trust_test_cas: Path,
    hangup_server: tuple[int, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Verified TLS, then the connection closes before the MQTT login completes."""
    port, serial = hangup_server
    monkeypatch.setattr(config_flow, "MQTT_PORT", port)

    result = await submit_user(
        hass, {CONF_HOST: "127.0.0.1", CONF_SERIAL: serial, CONF_ACCESS_CODE: "12345678"}
    )

    assert result["errors"] == {"base": "cannot_connect"}
    assert error_message(result)


async def test_unknown_error_is_logged_without_secrets(
    hass: HomeAssistant,
    printer: VirtualPrinter,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A bug surfaces as "unknown" with a traceback in the log, never the access code."""

    async def broken(self: client.PrinterSession) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(client.PrinterSession, "async_connect", broken)

    result = await submit_user(hass, user_input(printer))

    assert result["errors"] == {"base": "unknown"}
    assert "Traceback" in caplog.text
    assert "boom" in caplog.text
    assert printer.access_code not in caplog.text


async def test_already_configured_aborts_without_connecting(
    hass: HomeAssistant, session_log: list[tuple[str, object]]
) -> None:
    """A second entry for the same printer is refused before any connection."""
    offline_entry().add_to_hass(hass)

    result = await submit_user(hass, {**OFFLINE_INPUT, CONF_SERIAL: OFFLINE_SERIAL.lower()})

    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured"
    assert TRANSLATIONS["config"]["abort"]["already_configured"]
    assert session_log == []


async def test_user_step_uses_discovered_name(
    hass: HomeAssistant, printer: VirtualPrinter, no_entry_setup: None
) -> None:
    """A printer heard announcing itself gets its own name in the title."""
    listener = await discovery.async_start_discovery(hass)
    assert listener is not None
    announcement = discovery.Announcement(printer.host, printer.serial, "X1 Carbon", "Lab", None)
    listener._announcements[printer.serial] = announcement

    result = await submit_user(hass, user_input(printer))

    assert result["title"] == "Lab"  # the printer's own name
    listener.async_stop()


# --- discovery -----------------------------------------------------------------------------------


def discovery_data(printer: VirtualPrinter, **changes: str) -> dict[str, str]:
    """What the listener passes for this printer."""
    return {
        CONF_HOST: printer.host,
        CONF_SERIAL: printer.serial,
        "model": "X1 Carbon",
        "name": "Workshop",
        **changes,
    }


OFFLINE_DISCOVERY = {CONF_HOST: UNUSED_ADDRESS, CONF_SERIAL: OFFLINE_SERIAL}


async def start_discovery_flow(hass: HomeAssistant, data: dict[str, str]) -> ConfigFlowResult:
    """Start the flow the listener would start."""
    return await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": SOURCE_INTEGRATION_DISCOVERY}, data=data
    )


async def test_discovery_asks_only_for_access_code(
    hass: HomeAssistant, printer: VirtualPrinter
) -> None:
    """The confirm step shows what was announced; a wrong code is asked again; setup runs."""
    result = await start_discovery_flow(hass, discovery_data(printer))

    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "discovery_confirm"
    assert [key.schema for key in result["data_schema"].schema] == [CONF_ACCESS_CODE]
    placeholders = result["description_placeholders"]
    assert placeholders == {
        CONF_HOST: printer.host,
        CONF_SERIAL: printer.serial,
        "model": "X1 Carbon",
        "name": "Workshop",
    }
    description = TRANSLATIONS["config"]["step"]["discovery_confirm"]["description"]
    assert "Workshop" in description.format(**placeholders)
    flows = hass.config_entries.flow.async_progress_by_handler(DOMAIN)
    assert flows[0]["context"]["title_placeholders"] == {
        "name": "X1 Carbon Workshop",
        "host": printer.host,
    }

    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_ACCESS_CODE: "short"}
    )
    assert result["errors"] == {CONF_ACCESS_CODE: "invalid_access_code_format"}

    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_ACCESS_CODE: "Wr0ngC0d"}
    )
    assert result["errors"] == {"base": "invalid_auth"}
    assert suggested(result) == {}

    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_ACCESS_CODE: printer.access_code}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["title"] == "Workshop"
    assert result["data"][CONF_SERIAL] == printer.serial
    await hass.async_block_till_done()
    assert result["result"].state is ConfigEntryState.LOADED


async def test_discovery_without_model_or_name(
    hass: HomeAssistant, printer: VirtualPrinter, no_entry_setup: None
) -> None:
    """Announcements may lack model and name; the serial stands in."""
    data = {CONF_HOST: printer.host, CONF_SERIAL: printer.serial}

    result = await start_discovery_flow(hass, data)

    assert result["description_placeholders"]["name"] == printer.serial
    assert result["description_placeholders"]["model"] == "Bambu Lab"
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_ACCESS_CODE: printer.access_code}
    )
    assert result["title"] == "Bambu Lab X1 Carbon"


async def test_discovery_of_configured_printer_aborts(
    hass: HomeAssistant, session_log: list[tuple[str, object]]
) -> None:
    """Same printer, same address: nothing to do, no connection."""
    entry = offline_entry()
    entry.add_to_hass(hass)

    result = await start_discovery_flow(hass, OFFLINE_DISCOVERY)

    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured"
    assert entry.data[CONF_HOST] == UNUSED_ADDRESS
    assert session_log == []


async def test_discovery_moves_printer_to_new_address(
    hass: HomeAssistant, printer: VirtualPrinter
) -> None:
    """A printer that got a new IP is followed once it proves itself there; setup retries."""
    entry = printer_entry(printer, host=UNUSED_ADDRESS)
    entry.add_to_hass(hass)
    entry.mock_state(hass, ConfigEntryState.SETUP_RETRY)

    result = await start_discovery_flow(hass, discovery_data(printer))

    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured"
    assert entry.data[CONF_HOST] == printer.host
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.LOADED


async def test_discovery_does_not_follow_an_impostor(
    hass: HomeAssistant, virtual_printer: PrinterFactory, trust_test_cas: Path
) -> None:
    """An announcement pointing at a device that cannot prove the serial changes nothing."""
    impostor = virtual_printer(profile="self_signed")
    entry = printer_entry(impostor, host=UNUSED_ADDRESS)
    entry.add_to_hass(hass)
    entry.mock_state(hass, ConfigEntryState.SETUP_RETRY)  # unreachable: the probe runs

    result = await start_discovery_flow(hass, discovery_data(impostor))

    assert result["reason"] == "already_configured"
    assert entry.data[CONF_HOST] == UNUSED_ADDRESS


@pytest.fixture
def second_loopback(socket_enabled: None) -> None:
    """Let the integration connect to 127.0.0.2 too (still loopback): a relay listens there."""
    pytest_socket.socket_allow_hosts(["127.0.0.1", "127.0.0.2"])


class Relay:
    """A transparent TCP relay on another loopback address: the handshake it forwards is the
    genuine printer's, so it verifies; the relay can cut the connection whenever it likes."""

    def __init__(self, host: str, port: int, target: tuple[str, int]) -> None:
        self.address = (host, port)
        self.target = target
        self.connections = 0
        self.server: asyncio.Server | None = None

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._pipe, *self.address)

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()
        self.server.close_clients()
        await self.server.wait_closed()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        up_reader, up_writer = await asyncio.open_connection(*self.target)

        async def copy(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            while data := await src.read(65536):
                dst.write(data)
                await dst.drain()
            dst.close()

        await asyncio.gather(
            copy(reader, up_writer), copy(up_reader, writer), return_exceptions=True
        )


async def test_discovery_does_not_move_a_reachable_printer_behind_a_relay(
    hass: HomeAssistant, printer: VirtualPrinter, second_loopback: None
) -> None:
    """A forged announcement points a connected printer at a relay to it: nothing moves and the
    relay is not even probed; once the printer is unreachable where it is, it follows."""
    relay = Relay("127.0.0.2", printer.port, ("127.0.0.1", printer.port))
    await relay.start()
    try:
        entry = printer_entry(printer)
        entry.add_to_hass(hass)
        assert await hass.config_entries.async_setup(entry.entry_id)
        await hass.async_block_till_done()
        assert entry.state is ConfigEntryState.LOADED

        result = await start_discovery_flow(hass, discovery_data(printer, host="127.0.0.2"))
        assert result["reason"] == "already_configured"
        assert entry.data[CONF_HOST] == printer.host
        assert relay.connections == 0
    finally:
        await relay.stop()
        await hass.config_entries.async_unload(entry.entry_id)


async def test_discovery_follows_a_printer_unreachable_where_it_was(
    hass: HomeAssistant,
    printer: VirtualPrinter,
    monkeypatch: pytest.MonkeyPatch,
    second_loopback: None,
) -> None:
    """The printer was reached through 127.0.0.2, which went away (session down, reconnect
    failed): an announcement at its real address moves it there after a verified handshake."""
    monkeypatch.setattr(client, "BACKOFF_INITIAL", 0.05)
    relay = Relay("127.0.0.2", printer.port, ("127.0.0.1", printer.port))
    await relay.start()
    entry = printer_entry(printer, host="127.0.0.2")
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    coordinator = entry.runtime_data
    await relay.stop()
    await wait_until(lambda: coordinator.unreachable)

    result = await start_discovery_flow(hass, discovery_data(printer))

    assert result["reason"] == "already_configured"
    assert entry.data[CONF_HOST] == printer.host
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.LOADED


async def test_discovery_keeps_a_host_name(
    hass: HomeAssistant, session_log: list[tuple[str, object]]
) -> None:
    """An entry configured by host name is not rewritten to an IP address."""
    entry = offline_entry(host="printer.invalid")
    entry.add_to_hass(hass)

    result = await start_discovery_flow(hass, OFFLINE_DISCOVERY)

    assert result["reason"] == "already_configured"
    assert entry.data[CONF_HOST] == "printer.invalid"
    assert session_log == []


async def test_discovery_of_ignored_printer_aborts(hass: HomeAssistant) -> None:
    """An ignored printer stays ignored."""
    MockConfigEntry(domain=DOMAIN, unique_id=OFFLINE_SERIAL, source="ignore", data={}).add_to_hass(
        hass
    )

    result = await start_discovery_flow(hass, OFFLINE_DISCOVERY)

    assert result["reason"] == "already_configured"


async def test_discovery_tls_error_shown_in_confirm_step(
    hass: HomeAssistant,
    virtual_printer: PrinterFactory,
    trust_test_cas: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A discovered device that fails verification gets the explanation in its form."""
    hostile = virtual_printer(profile="unknown_ca")
    monkeypatch.setattr(config_flow, "MQTT_PORT", hostile.port)
    result = await start_discovery_flow(hass, discovery_data(hostile))

    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_ACCESS_CODE: hostile.access_code}
    )

    assert result["errors"] == {"base": "untrusted_certificate"}
    assert result["description_placeholders"]["name"] == "Workshop"
    assert hostile.fingerprint in error_message(result)


async def test_user_flow_finishes_while_discovery_flow_open(
    hass: HomeAssistant, printer: VirtualPrinter, no_entry_setup: None
) -> None:
    """The user may add a printer by hand while its discovery is pending; that one then ends."""
    await start_discovery_flow(hass, discovery_data(printer))

    result = await submit_user(hass, user_input(printer))

    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert hass.config_entries.flow.async_progress_by_handler(DOMAIN) == []


# --- pinning the certificate of a new printer ----------------------------------------------------


def leaf_pem(printer: VirtualPrinter) -> str:
    """The PEM of the certificate the printer presents now."""
    return printer.identity.leaf.pem.decode()


async def offer_pin(hass: HomeAssistant, printer: VirtualPrinter) -> ConfigFlowResult:
    """Add a printer whose issuer is not bundled: the user form offers to review its leaf."""
    result = await submit_user(hass, user_input(printer))
    assert result["errors"] == {"base": "untrusted_certificate"}
    assert form_fields(result) == [CONF_HOST, CONF_SERIAL, CONF_ACCESS_CODE, TRUST]
    return result


async def review_pin(
    hass: HomeAssistant, printer: VirtualPrinter, flow_id: str, **typed: str
) -> ConfigFlowResult:
    """Tick the trust field: the pin step shows the certificate on offer."""
    data = user_input(printer) if typed.get("step") != "discovery" else {}
    data |= {CONF_ACCESS_CODE: printer.access_code, TRUST: True}
    result = await hass.config_entries.flow.async_configure(flow_id, data)
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "pin_certificate"
    assert form_fields(result) == []
    return result


# The test PKI's organisation, after the CN in the pin step's names.
TEST_ORG = ", O=BBL Technologies Co. Ltd test, C=CN"


@pytest.mark.parametrize(
    ("profile", "issuer"), [("unknown_ca", "CN=Untrusted Test CA"), ("self_signed", None)]
)
async def test_user_pins_certificate_of_unknown_issuer(
    hass: HomeAssistant,
    virtual_printer: PrinterFactory,
    trust_test_cas: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    profile: str,
    issuer: str | None,
) -> None:
    """The user reviews and confirms the one certificate; the entry connects with that pin."""
    caplog.set_level(logging.DEBUG)
    pinned = virtual_printer("P1S", profile)
    monkeypatch.setattr(config_flow, "MQTT_PORT", pinned.port)

    result = await offer_pin(hass, pinned)
    trust = next(key for key in result["data_schema"].schema if key.schema == TRUST)
    assert trust.default() is False  # never trusted by default
    assert suggested(result) == user_input(pinned)
    step = TRANSLATIONS["config"]["step"]["user"]
    assert TRUST in step["data"]
    help_text = step["data_description"][TRUST].format(**result["description_placeholders"])
    assert pinned.fingerprint in help_text

    result = await review_pin(hass, pinned, result["flow_id"])
    placeholders = result["description_placeholders"]
    assert placeholders == {
        CONF_HOST: pinned.host,
        CONF_SERIAL: pinned.serial,
        "subject": f"CN={pinned.serial}{TEST_ORG}",
        "issuer": f"{issuer or f'CN={pinned.serial}'}{TEST_ORG}",
        "not_before": placeholders["not_before"],
        "not_after": placeholders["not_after"],
        "key": "RSA 2048",
        "fingerprint": pinned.fingerprint,
    }
    assert placeholders["not_before"] < placeholders["not_after"]
    text = TRANSLATIONS["config"]["step"]["pin_certificate"]["description"].format(**placeholders)
    assert "exactly this certificate" in text
    assert "trust your network" in text

    result = await hass.config_entries.flow.async_configure(result["flow_id"], {})

    assert result["type"] is FlowResultType.CREATE_ENTRY
    entry = result["result"]
    assert entry.options == {CONF_PINNED_CERT: leaf_pem(pinned)}
    assert entry.data[CONF_CERT_FINGERPRINT] == pinned.fingerprint
    assert entry.data[CONF_SERIAL] == pinned.serial
    assert entry.data[CONF_CA_VERIFIED] is False
    assert TRUST not in entry.data
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.LOADED  # the entry's own session trusts the pin
    assert entry.runtime_data.certificate.sha256 == pinned.fingerprint
    assert pinned.access_code not in caplog.text


async def test_pin_refused_when_printer_presents_another_certificate(
    hass: HomeAssistant,
    virtual_printer: PrinterFactory,
    trust_test_cas: Path,
    monkeypatch: pytest.MonkeyPatch,
    no_entry_setup: None,
) -> None:
    """Confirming trusts only the certificate that was shown: another one is a new offer."""
    pinned = virtual_printer("P1S", "unknown_ca")
    monkeypatch.setattr(config_flow, "MQTT_PORT", pinned.port)
    result = await offer_pin(hass, pinned)
    result = await review_pin(hass, pinned, result["flow_id"])
    shown = result["description_placeholders"]["fingerprint"]
    new_fingerprint = await hass.async_add_executor_job(pinned.reissue_cert)
    assert new_fingerprint != shown

    result = await hass.config_entries.flow.async_configure(result["flow_id"], {})

    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "user"
    assert result["errors"] == {"base": "untrusted_certificate"}
    assert result["description_placeholders"]["fingerprint"] == new_fingerprint
    assert suggested(result) == user_input(pinned)
    assert hass.config_entries.async_entries(DOMAIN) == []

    result = await review_pin(hass, pinned, result["flow_id"])
    assert result["description_placeholders"]["fingerprint"] == new_fingerprint
    result = await hass.config_entries.flow.async_configure(result["flow_id"], {})
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["options"] == {CONF_PINNED_CERT: leaf_pem(pinned)}
    assert result["data"][CONF_CERT_FINGERPRINT] == new_fingerprint


async def test_trust_holds_only_for_the_offered_printer(
    hass: HomeAssistant,
    virtual_printer: PrinterFactory,
    trust_test_cas: Path,
    monkeypatch: pytest.MonkeyPatch,
    no_entry_setup: None,
) -> None:
    """Ticking trust with another serial validates that serial; its CN does not match: no pin."""
    pinned = virtual_printer("P1S", "self_signed")
    monkeypatch.setattr(config_flow, "MQTT_PORT", pinned.port)
    result = await offer_pin(hass, pinned)
    other = pinned.serial[:-1] + ("2" if pinned.serial[-1] != "2" else "3")

    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {**user_input(pinned, serial=other), TRUST: True}
    )

    assert result["step_id"] == "user"
    assert result["errors"] == {"base": "untrusted_certificate"}
    assert result["description_placeholders"][CONF_SERIAL] == other
    assert TRUST not in form_fields(result)


async def test_discovered_printer_pins_certificate(
    hass: HomeAssistant,
    virtual_printer: PrinterFactory,
    trust_test_cas: Path,
    monkeypatch: pytest.MonkeyPatch,
    no_entry_setup: None,
) -> None:
    """The confirm step of a discovered printer offers the pin too, and shows its failures."""
    pinned = virtual_printer("P1S", "unknown_ca")
    monkeypatch.setattr(config_flow, "MQTT_PORT", pinned.port)
    result = await start_discovery_flow(hass, discovery_data(pinned, model="P1S"))
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_ACCESS_CODE: pinned.access_code}
    )
    assert result["errors"] == {"base": "untrusted_certificate"}
    assert form_fields(result) == [CONF_ACCESS_CODE, TRUST]
    step = TRANSLATIONS["config"]["step"]["discovery_confirm"]
    assert pinned.fingerprint in step["data_description"][TRUST].format(
        **result["description_placeholders"]
    )

    result = await review_pin(hass, pinned, result["flow_id"], step="discovery")
    new_fingerprint = await hass.async_add_executor_job(pinned.reissue_cert)
    result = await hass.config_entries.flow.async_configure(result["flow_id"], {})
    assert result["step_id"] == "discovery_confirm"
    assert result["errors"] == {"base": "untrusted_certificate"}
    assert result["description_placeholders"]["name"] == "Workshop"
    assert result["description_placeholders"]["fingerprint"] == new_fingerprint
    assert suggested(result) == {CONF_ACCESS_CODE: pinned.access_code}
    assert TRUST in form_fields(result)

    result = await review_pin(hass, pinned, result["flow_id"], step="discovery")
    assert result["description_placeholders"]["fingerprint"] == new_fingerprint
    result = await hass.config_entries.flow.async_configure(result["flow_id"], {})

    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["title"] == "Workshop"
    assert result["options"] == {CONF_PINNED_CERT: leaf_pem(pinned)}
    assert result["data"][CONF_CERT_FINGERPRINT] == new_fingerprint


def test_pin_offered_only_for_the_certificate_described(test_cas: TestCAs) -> None:
    """The PEM on offer must parse and be the very certificate the error names."""
    leaf = issue_server("self_signed", "01P00A000000001", test_cas).leaf.cert
    pem = leaf.public_bytes(serialization.Encoding.PEM).decode()
    fingerprint = hashlib.sha256(leaf.public_bytes(serialization.Encoding.DER)).hexdigest()

    def error(**details: Any) -> PrinterTLSError:
        return PrinterTLSError(TLSErrorKind.UNTRUSTED_ISSUER, **details)

    assert PinnableCertificate.from_error(error(fingerprint=fingerprint)) is None
    assert PinnableCertificate.from_error(error(leaf_pem="junk", fingerprint=fingerprint)) is None
    assert PinnableCertificate.from_error(error(leaf_pem=pem, fingerprint="0" * 64)) is None
    offered = PinnableCertificate.from_error(error(leaf_pem=pem, fingerprint=fingerprint))
    assert offered is not None
    assert offered.pem == pem
    assert offered.info.sha256 == fingerprint


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("CN=Untrusted Test CA,O=Example", "CN=Untrusted Test CA,O=Example"),
        ("[click me](https://evil.example/x)", "click me"),
        ("Office http://evil.example/x printer", "Office printer"),
        ("Visit WWW.evil.example now", "Visit now"),
        ("ftp://a.b hxxp://c.d", ""),
        ("http:/*/evil.example", ""),
        ("<img src=x onerror=alert(1)>", "img src=x onerror=alert1"),
        ("**bold** _it_ `code` # h | t \\ !", "bold it code h t"),
        ("line 1\nline 2\r\n\tline 3\u2028end\x00", "line 1 line 2 line 3 end"),
        ("A" * 64, "A" * 64),
        ("B" * 65, "B" * 63 + "…"),
        ("  \n*_  ", ""),
    ],
)
def test_display_text(raw: str, shown: str) -> None:
    """Untrusted names lose markup and line breaks and are capped at 64 characters."""
    assert display_text(raw) == shown
    assert len(display_text(raw)) <= issues.DISPLAY_LIMIT


async def test_discovered_names_are_plain_text(hass: HomeAssistant) -> None:
    """Anyone can announce any name: the confirm step shows it without markup."""
    announced = {
        **OFFLINE_DISCOVERY,
        "model": "X1 <b>Carbon</b>",
        "name": "[Shop](https://evil.example)\n# Big",
    }

    result = await start_discovery_flow(hass, announced)

    placeholders = result["description_placeholders"]
    assert placeholders["model"] == "X1 bCarbon/b"
    assert placeholders["name"] == "Shop Big"
    flows = hass.config_entries.flow.async_progress_by_handler(DOMAIN)
    # The discovery card's title: no URL reaches it.
    assert flows[0]["context"]["title_placeholders"]["name"] == "X1 bCarbon/b Shop Big"


async def test_discovered_url_never_reaches_the_card(hass: HomeAssistant) -> None:
    """A name that is only a link leaves the card with the serial instead."""
    result = await start_discovery_flow(
        hass, {**OFFLINE_DISCOVERY, "name": "www.evil.example/login"}
    )
    assert result["description_placeholders"]["name"] == OFFLINE_SERIAL
    flows = hass.config_entries.flow.async_progress_by_handler(DOMAIN)
    assert "evil" not in str(flows[0]["context"]["title_placeholders"])


# --- reauthentication ----------------------------------------------------------------------------


async def test_reauth_after_access_code_change(
    hass: HomeAssistant, printer: VirtualPrinter, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The printer's code changes: reauth starts, validates the new code, reloads the entry."""
    monkeypatch.setattr(client, "BACKOFF_INITIAL", 0.05)
    entry = printer_entry(printer)
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.LOADED

    await hass.async_add_executor_job(printer.set_access_code, NEW_CODE)
    async with asyncio.timeout(15):  # the session notices on its next reconnect attempt
        while not (flows := hass.config_entries.flow.async_progress_by_handler(DOMAIN)):
            await asyncio.sleep(0.05)
    flow = flows[0]
    assert flow["context"]["source"] == "reauth"
    assert flow["step_id"] == "reauth_confirm"

    result = await hass.config_entries.flow.async_configure(
        flow["flow_id"], {CONF_ACCESS_CODE: "bad"}
    )
    assert result["errors"] == {CONF_ACCESS_CODE: "invalid_access_code_format"}
    assert suggested(result) == {CONF_ACCESS_CODE: "bad"}
    result = await hass.config_entries.flow.async_configure(
        flow["flow_id"], {CONF_ACCESS_CODE: "Wr0ngC0d"}
    )
    assert result["errors"] == {"base": "invalid_auth"}
    assert suggested(result) == {}
    assert result["description_placeholders"]["name"] == entry.title
    assert result["description_placeholders"][CONF_HOST] == printer.host

    result = await hass.config_entries.flow.async_configure(
        flow["flow_id"], {CONF_ACCESS_CODE: NEW_CODE}
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reauth_successful"
    assert entry.data[CONF_ACCESS_CODE] == NEW_CODE
    assert entry.data[CONF_CERT_FINGERPRINT] == printer.fingerprint
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.LOADED


async def test_reauth_reports_other_printer(
    hass: HomeAssistant, virtual_printer: PrinterFactory, trust_test_cas: Path
) -> None:
    """Reauth at an address that now belongs to another printer says which one it is."""
    other = virtual_printer(profile="other_serial")
    entry = printer_entry(other)
    entry.add_to_hass(hass)

    result = await entry.start_reauth_flow(hass)
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_ACCESS_CODE: other.access_code}
    )

    assert result["errors"] == {"base": "serial_mismatch"}
    assert other.serial not in result["description_placeholders"]["presented_serial"]
    assert error_message(result)


async def test_reauth_keeps_the_recorded_certificate(
    hass: HomeAssistant, printer: VirtualPrinter, no_entry_setup: None
) -> None:
    """A new certificate that verifies is left to the certificate-changed repair."""
    entry = printer_entry(printer)
    entry.add_to_hass(hass)
    old_fingerprint = printer.fingerprint
    new_fingerprint = await hass.async_add_executor_job(printer.reissue_cert)
    assert new_fingerprint != old_fingerprint

    result = await entry.start_reauth_flow(hass)
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_ACCESS_CODE: printer.access_code}
    )

    assert result["reason"] == "reauth_successful"
    assert entry.data[CONF_ACCESS_CODE] == printer.access_code
    assert entry.data[CONF_CERT_FINGERPRINT] == old_fingerprint


# --- reconfiguration -----------------------------------------------------------------------------


async def test_reconfigure_new_address_keeps_code(
    hass: HomeAssistant, printer: VirtualPrinter
) -> None:
    """A new address alone is enough; the stored code is reused and the entry reloads."""
    entry = printer_entry(printer, host=UNUSED_ADDRESS)
    entry.add_to_hass(hass)

    result = await entry.start_reconfigure_flow(hass)
    assert result["step_id"] == "reconfigure"
    assert form_fields(result) == [CONF_HOST, CONF_ACCESS_CODE]  # nothing pinned, nothing to remove
    assert suggested(result) == {CONF_HOST: UNUSED_ADDRESS}
    assert result["description_placeholders"] == {
        "title": entry.title,
        CONF_SERIAL: printer.serial,
    }

    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_HOST: f" {printer.host} "}
    )

    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reconfigure_successful"
    assert entry.data[CONF_HOST] == printer.host
    assert entry.data[CONF_ACCESS_CODE] == printer.access_code
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.LOADED


async def test_reconfigure_new_access_code(
    hass: HomeAssistant, printer: VirtualPrinter, no_entry_setup: None
) -> None:
    """Errors keep the form (minus a rejected code); a valid new code is stored."""
    entry = printer_entry(printer)
    entry.add_to_hass(hass)
    await hass.async_add_executor_job(printer.set_access_code, NEW_CODE)

    result = await entry.start_reconfigure_flow(hass)
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_HOST: printer.host, CONF_ACCESS_CODE: "x"}
    )
    assert result["errors"] == {CONF_ACCESS_CODE: "invalid_access_code_format"}

    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_HOST: printer.host}
    )
    assert result["errors"] == {"base": "invalid_auth"}
    assert suggested(result) == {CONF_HOST: printer.host}

    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_HOST: printer.host, CONF_ACCESS_CODE: NEW_CODE}
    )
    assert result["reason"] == "reconfigure_successful"
    assert entry.data[CONF_ACCESS_CODE] == NEW_CODE


async def test_reconfigure_to_another_printer_aborts(
    hass: HomeAssistant, virtual_printer: PrinterFactory, trust_test_cas: Path
) -> None:
    """The address of a different (genuine) printer cannot take over the entry."""
    other = virtual_printer(profile="other_serial")
    entry = printer_entry(other, host=UNUSED_ADDRESS)
    entry.add_to_hass(hass)

    result = await entry.start_reconfigure_flow(hass)
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_HOST: other.host}
    )

    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "wrong_printer"
    message = TRANSLATIONS["config"]["abort"]["wrong_printer"].format(
        **result["description_placeholders"]
    )
    assert other.serial in message
    assert entry.data[CONF_HOST] == UNUSED_ADDRESS


async def test_reconfigure_unreachable(
    hass: HomeAssistant, trust_test_cas: Path, socket_enabled: None
) -> None:
    """A wrong new address is explained in the form, which keeps it for correction."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed_port = sock.getsockname()[1]
    entry = MockConfigEntry(
        domain=DOMAIN,
        unique_id="00M09A000000001",
        title="X1 Carbon Workshop",
        data={
            CONF_HOST: UNUSED_ADDRESS,
            CONF_SERIAL: "00M09A000000001",
            CONF_ACCESS_CODE: "12345678",
            "port": closed_port,
        },
    )
    entry.add_to_hass(hass)

    result = await entry.start_reconfigure_flow(hass)
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_HOST: "127.0.0.1"}
    )

    assert result["errors"] == {"base": "cannot_connect"}
    assert suggested(result) == {CONF_HOST: "127.0.0.1"}
    assert f"127.0.0.1:{closed_port}" in error_message(result)


async def test_reconfigure_keeps_the_recorded_certificate(
    hass: HomeAssistant, printer: VirtualPrinter, no_entry_setup: None
) -> None:
    """A new certificate that verifies is left to the certificate-changed repair."""
    entry = printer_entry(printer)
    entry.add_to_hass(hass)
    old_fingerprint = entry.data[CONF_CERT_FINGERPRINT]
    new_fingerprint = await hass.async_add_executor_job(printer.reissue_cert)
    assert old_fingerprint != new_fingerprint

    result = await entry.start_reconfigure_flow(hass)
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_HOST: printer.host}
    )

    assert result["reason"] == "reconfigure_successful"
    assert entry.data[CONF_CERT_FINGERPRINT] == old_fingerprint
    assert entry.options == {}


async def test_reconfigure_removes_pin_once_bundled_cas_verify(
    hass: HomeAssistant, printer: VirtualPrinter, no_entry_setup: None
) -> None:
    """A pinned printer whose chain the bundled CAs now cover can drop its pin; the leaf that
    verified becomes the expected one (the user changed the trust decision)."""
    stale_pin = printer.identity.leaf.pem.decode()
    new_fingerprint = await hass.async_add_executor_job(printer.reissue_cert)
    entry = printer_entry(printer, options={CONF_PINNED_CERT: stale_pin})
    entry.add_to_hass(hass)

    result = await entry.start_reconfigure_flow(hass)
    assert form_fields(result) == [CONF_HOST, CONF_ACCESS_CODE, config_flow.CONF_REMOVE_PIN]
    remove_pin = next(
        key for key in result["data_schema"].schema if key.schema == config_flow.CONF_REMOVE_PIN
    )
    assert remove_pin.default() is False  # keeping the pin is what happens by default
    step = TRANSLATIONS["config"]["step"]["reconfigure"]
    assert config_flow.CONF_REMOVE_PIN in step["data"]
    assert "bundled Bambu Lab CAs" in step["data_description"][config_flow.CONF_REMOVE_PIN]

    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_HOST: printer.host, config_flow.CONF_REMOVE_PIN: True}
    )

    assert result["reason"] == "reconfigure_successful"
    assert CONF_PINNED_CERT not in entry.options
    assert entry.data[CONF_CERT_FINGERPRINT] == new_fingerprint
    assert entry.data[CONF_CA_VERIFIED] is True  # proven now: never pinned again
    assert config_flow.CONF_REMOVE_PIN not in entry.data


async def test_pin_stays_while_bundled_cas_do_not_verify(
    hass: HomeAssistant,
    virtual_printer: PrinterFactory,
    trust_test_cas: Path,
    no_entry_setup: None,
) -> None:
    """Removing the pin of a printer of an unknown issuer fails and changes nothing; the pin
    itself still validates."""
    pinned = virtual_printer("P1S", "unknown_ca")
    pin = pinned.identity.leaf.pem.decode()
    entry = printer_entry(pinned, options={CONF_PINNED_CERT: pin}, cert_fingerprint="0" * 64)
    entry.add_to_hass(hass)

    result = await entry.start_reconfigure_flow(hass)
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_HOST: pinned.host, config_flow.CONF_REMOVE_PIN: True}
    )

    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {"base": "untrusted_certificate"}
    assert result["description_placeholders"]["fingerprint"] == pinned.fingerprint
    assert suggested(result) == {CONF_HOST: pinned.host, config_flow.CONF_REMOVE_PIN: True}
    assert entry.options == {CONF_PINNED_CERT: pin}
    assert entry.data[CONF_CERT_FINGERPRINT] == "0" * 64

    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_HOST: pinned.host, config_flow.CONF_REMOVE_PIN: False}
    )

    assert result["reason"] == "reconfigure_successful"
    assert entry.options == {CONF_PINNED_CERT: pin}
    assert entry.data[CONF_CERT_FINGERPRINT] == "0" * 64  # only removing the pin records one


async def test_title_gets_a_serial_suffix_only_on_collision(
    hass: HomeAssistant, printer: VirtualPrinter, no_entry_setup: None
) -> None:
    """A second unnamed printer of one model is told apart by its serial's last four."""
    MockConfigEntry(
        domain=DOMAIN, unique_id="00M09A000000777", title="Bambu Lab X1 Carbon"
    ).add_to_hass(hass)

    result = await submit_user(hass, user_input(printer))

    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["title"] == f"Bambu Lab X1 Carbon {printer.serial[-4:]}"


# --- replacing a pinned certificate --------------------------------------------------------------


async def test_reconfigure_repins_only_with_the_access_code_typed(
    hass: HomeAssistant,
    virtual_printer: PrinterFactory,
    trust_test_cas: Path,
    no_entry_setup: None,
) -> None:
    """A pinned printer presents another certificate (e.g. after a factory reset): reconfigure
    offers it, pinning needs the access code typed again, and the confirmation shows both
    fingerprints. Until the user confirms, the printer receives no login."""
    pinned = virtual_printer("P1S", "unknown_ca")
    old_pin, old_fingerprint = leaf_pem(pinned), pinned.fingerprint
    entry = printer_entry(pinned, options={CONF_PINNED_CERT: old_pin}, **{CONF_CA_VERIFIED: False})
    entry.add_to_hass(hass)
    new_fingerprint = await hass.async_add_executor_job(pinned.reissue_cert)
    logins = pinned.logins()

    result = await entry.start_reconfigure_flow(hass)
    assert TRUST not in form_fields(result)
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_HOST: pinned.host}
    )
    assert result["errors"] == {"base": "untrusted_certificate"}
    assert form_fields(result) == [CONF_HOST, CONF_ACCESS_CODE, config_flow.CONF_REMOVE_PIN, TRUST]
    step = TRANSLATIONS["config"]["step"]["reconfigure"]
    assert new_fingerprint in step["data_description"][TRUST].format(
        **result["description_placeholders"]
    )

    # The stored code is not enough to trust another certificate.
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_HOST: pinned.host, TRUST: True}
    )
    assert result["errors"] == {CONF_ACCESS_CODE: "access_code_required"}
    assert "access_code_required" in TRANSLATIONS["config"]["error"]
    assert TRUST in form_fields(result)

    result = await hass.config_entries.flow.async_configure(
        result["flow_id"],
        {CONF_HOST: pinned.host, CONF_ACCESS_CODE: pinned.access_code, TRUST: True},
    )
    assert result["step_id"] == "reconfigure_pin"
    shown = result["description_placeholders"]
    assert shown["pinned_fingerprint"] == old_fingerprint
    assert shown["fingerprint"] == new_fingerprint
    text = TRANSLATIONS["config"]["step"]["reconfigure_pin"]["description"].format(**shown)
    assert old_fingerprint in text
    assert new_fingerprint in text
    assert pinned.logins() == logins  # nothing was sent to the new certificate yet
    assert entry.options == {CONF_PINNED_CERT: old_pin}

    result = await hass.config_entries.flow.async_configure(result["flow_id"], {})

    assert result["reason"] == "reconfigure_successful"
    assert entry.options == {CONF_PINNED_CERT: leaf_pem(pinned)}
    assert entry.data[CONF_CERT_FINGERPRINT] == new_fingerprint
    assert entry.data[CONF_CA_VERIFIED] is False
    assert pinned.logins() == logins + 1  # the validation, after the confirmation


async def test_reconfigure_repin_refuses_a_certificate_not_shown(
    hass: HomeAssistant,
    virtual_printer: PrinterFactory,
    trust_test_cas: Path,
    no_entry_setup: None,
) -> None:
    """The certificate changes again while the confirmation is open: nothing is pinned and no
    login is sent; the form offers the newest certificate instead."""
    pinned = virtual_printer("P1S", "self_signed")
    old_pin = leaf_pem(pinned)
    entry = printer_entry(pinned, options={CONF_PINNED_CERT: old_pin})
    entry.add_to_hass(hass)
    await hass.async_add_executor_job(pinned.reissue_cert)
    result = await entry.start_reconfigure_flow(hass)
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_HOST: pinned.host}
    )
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"],
        {CONF_HOST: pinned.host, CONF_ACCESS_CODE: pinned.access_code, TRUST: True},
    )
    assert result["step_id"] == "reconfigure_pin"
    newest = await hass.async_add_executor_job(pinned.reissue_cert)
    logins = pinned.logins()

    result = await hass.config_entries.flow.async_configure(result["flow_id"], {})

    assert result["step_id"] == "reconfigure"
    assert result["errors"] == {"base": "untrusted_certificate"}
    assert result["description_placeholders"]["fingerprint"] == newest
    assert TRUST in form_fields(result)
    assert entry.options == {CONF_PINNED_CERT: old_pin}
    assert pinned.logins() == logins


async def test_reconfigure_never_pins_a_verified_printer(
    hass: HomeAssistant,
    virtual_printer: PrinterFactory,
    trust_test_cas: Path,
    test_cas: TestCAs,
    no_entry_setup: None,
) -> None:
    """A printer the bundled CAs have verified, now answered by a self-signed impostor with its
    serial as CN: reconfigure explains, offers no pin, and the impostor gets no login."""
    printer = virtual_printer("X1C")
    entry = printer_entry(printer)
    entry.add_to_hass(hass)
    printer.serve(issue_server("self_signed", printer.serial, test_cas))
    logins = printer.logins()

    result = await entry.start_reconfigure_flow(hass)
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_HOST: printer.host, CONF_ACCESS_CODE: printer.access_code}
    )
    assert result["errors"] == {"base": "untrusted_certificate"}
    assert form_fields(result) == [CONF_HOST, CONF_ACCESS_CODE]
    # Not even a hand-made request can tick a field the form does not have.
    with pytest.raises(InvalidData):
        await hass.config_entries.flow.async_configure(
            result["flow_id"],
            {CONF_HOST: printer.host, CONF_ACCESS_CODE: printer.access_code, TRUST: True},
        )

    assert entry.options == {}
    assert printer.logins() == logins


async def test_reconfigure_refuses_an_invalid_host_before_connecting(
    hass: HomeAssistant, session_log: list[tuple[str, object]]
) -> None:
    """A bad host is refused per field, without a connection, and nothing is stored."""
    entry = offline_entry()
    entry.add_to_hass(hass)
    result = await entry.start_reconfigure_flow(hass)
    for host in ("127.0.0.1\x00evil", "", "a" * 300, f"{'c' * 64}.lan"):
        result = await hass.config_entries.flow.async_configure(
            result["flow_id"], {CONF_HOST: host}
        )
        assert result["errors"] == {CONF_HOST: "invalid_host"}
    assert "invalid_host" in TRANSLATIONS["config"]["error"]
    assert session_log == []
    assert entry.data[CONF_HOST] == UNUSED_ADDRESS
