"""The printer session against a real broker over real TLS."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from typing import Any

from homeassistant.core import HomeAssistant
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
import pytest

from custom_components.bambu_lan.printer import session as client
from custom_components.bambu_lan.printer.session import (
    CommandError,
    InvalidAuth,
    PrinterSession,
    SessionClosed,
    _Client,
)
from custom_components.bambu_lan.printer.tls import PrinterTLSError, TLSErrorKind
from custom_components.bambu_lan.printer.values import MAX_PAYLOAD_BYTES
from tests.helpers import sent_commands, wait_until

pytestmark = pytest.mark.usefixtures("trust_test_cas")


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


async def test_pending_command_fails_when_the_link_drops(
    open_session: Any, hass: HomeAssistant, virtual_printer: Any
) -> None:
    """A command still waiting for its acknowledgement fails at once when the link drops."""
    printer = virtual_printer("X1C")
    session = open_session(printer)
    await session.async_connect()
    printer.fault("ignore_next")
    pending = asyncio.ensure_future(
        session.async_command("print", "print_speed", {"param": "3"}, ack_timeout=30)
    )
    await printer.async_wait_for_command("print_speed")
    printer.stop_broker()
    with pytest.raises(CommandError) as err:
        await asyncio.wait_for(pending, 10)
    assert err.value.kind == "not_connected"
    assert not session.connected
    assert session.stats.disconnects == 1


async def test_pushall_after_a_quick_reconnect_waits_out_the_interval(
    open_session: Any, hass: HomeAssistant, virtual_printer: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A reconnect soon after the last pushall defers the next one instead of flooding."""
    monkeypatch.setattr(client, "PUSHALL_MIN_INTERVAL", 1.5)
    monkeypatch.setattr(client, "BACKOFF_INITIAL", 0.05)
    printer = virtual_printer("P1S")
    session = open_session(printer)
    await session.async_connect()
    session.start_reconnecting()
    await wait_until(lambda: sent_commands(printer).count("pushall") == 1)
    printer.restart_broker()
    await wait_until(lambda: session.stats.connects == 2)
    assert sent_commands(printer).count("pushall") == 1  # deferred, not sent on reconnect
    assert session._pushall_timer is not None
    session._request_pushall()  # asking again while deferred schedules nothing more
    await wait_until(lambda: sent_commands(printer).count("pushall") == 2)
    await asyncio.sleep(0.2)
    assert sent_commands(printer).count("pushall") == 2


async def test_callbacks_from_a_stale_client_are_ignored(
    open_session: Any, hass: HomeAssistant, virtual_printer: Any
) -> None:
    """Late paho callbacks for a client we already gave up on touch nothing."""
    printer = virtual_printer("P1S")
    session = open_session(printer)
    await session.async_connect()
    stale = object()
    session._wire._misc(stale)  # no timer is rescheduled for it
    assert session.connected
    # A message on another topic (the broker's ACL would not even deliver one) is dropped.
    dropped = session.stats.dropped_messages
    message = mqtt.MQTTMessage(topic=b"device/OTHER/report")
    message.payload = b'{"print": {"command": "push_status"}}'
    session._on_message(None, None, message)
    assert session.stats.dropped_messages == dropped + 1
    await session.async_close()
    session._watchdog()  # a watchdog firing after close does nothing
    assert session._watchdog_timer is None


async def test_socket_callbacks_of_a_stale_client_touch_nothing(
    open_session: Any, hass: HomeAssistant, virtual_printer: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """paho's socket callbacks for a client we gave up on leave the live socket registered."""
    printer = virtual_printer("P1S")
    session = open_session(printer)
    await session.async_connect()
    wire = session._wire
    fileno = wire._fileno
    stale = object()
    touched: list[str] = []
    with monkeypatch.context() as patched:
        for name in ("add_reader", "remove_reader", "add_writer", "remove_writer"):
            patched.setattr(hass.loop, name, lambda *_args, name=name: touched.append(name))
        wire._on_socket_register_write(stale, None, None)
        wire._on_socket_unregister_write(stale, None, None)
        wire._on_socket_close(stale, None, None)
    assert touched == []
    assert wire._fileno == fileno
    assert session.connected
    await session.async_close()
    assert wire._fileno is None


async def test_misc_tick_runs_until_close(
    open_session: Any, hass: HomeAssistant, virtual_printer: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """paho's loop_misc (keepalive pings) ticks on a timer that closing cancels."""
    monkeypatch.setattr(client, "MISC_INTERVAL", 0.05)
    printer = virtual_printer("P1S")
    session = open_session(printer)
    await session.async_connect()
    first = session._wire._misc_timer
    assert first is not None
    await wait_until(lambda: session._wire._misc_timer is not first)
    assert session.connected
    await session.async_close()
    assert session._wire._misc_timer is None


async def test_acks_ignore_malformed_bodies(
    open_session: Any, hass: HomeAssistant, virtual_printer: Any
) -> None:
    """A report whose type keys hold no objects cannot complete a pending command."""
    printer = virtual_printer("X1C")
    session = open_session(printer)
    await session.async_connect()
    printer.fault("ignore_next")
    pending = asyncio.ensure_future(
        session.async_command("print", "print_speed", {"param": "3"}, ack_timeout=2)
    )
    sent = (await printer.async_wait_for_command("print_speed"))["print"]
    # Same sequence id, but under a non-object and with another command: neither matches.
    printer.publish_raw(
        json.dumps(
            {
                "print": "not an object",
                "info": {"sequence_id": sent["sequence_id"], "command": "get_version"},
            }
        ).encode()
    )
    with pytest.raises(CommandError) as err:
        await pending
    assert err.value.kind == "timeout"


async def test_flapping_printer_backs_off(
    hass: HomeAssistant,
    test_cas: Any,
    tmp_path: Any,
    socket_enabled: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A printer that hangs up right after every login is not reconnected at a steady pace:
    the back-off keeps growing until a link stays up for STABLE_LINK."""
    import ssl

    from tests.virtual_printer.pki import issue_server

    monkeypatch.setattr(client, "BACKOFF_INITIAL", 0.05)
    monkeypatch.setattr(client, "BACKOFF_MAX", 10.0)
    serial = "00M09A000000007"
    chain, key = issue_server("legacy", serial, test_cas).write_server_files(tmp_path)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(chain, key)
    logins = 0

    async def flap(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal logins
        if await reader.read(1024):  # CONNECT
            logins += 1
            writer.write(b"\x20\x02\x00\x00")  # CONNACK: accepted
            await writer.drain()
            await asyncio.sleep(0.05)
        writer.close()

    server = await asyncio.start_server(flap, "127.0.0.1", 0, ssl=context)
    recorder = Recorder()
    session = PrinterSession(
        "127.0.0.1", serial, "12345678", recorder, port=server.sockets[0].getsockname()[1]
    )
    try:
        await session.async_connect()
        session.start_reconnecting()
        await asyncio.sleep(3.0)
        # Without the growing back-off: one login every ~0.1 s, about 30 in 3 s.
        assert 3 <= logins <= 8, logins
        assert session._backoff >= 0.05 * 2**3  # it grew: the logins never reset it
    finally:
        await session.async_close()
        server.close()
        server.close_clients()  # a handler may still wait on a login the close cut short
        async with asyncio.timeout(2):
            await server.wait_closed()
        await asyncio.sleep(0.1)  # let the handlers see their closed streams and end
        await server.wait_closed()


async def test_stable_link_resets_the_back_off(
    hass: HomeAssistant, virtual_printer: Any, open_session: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Once a link has stayed up for STABLE_LINK, the next outage starts from the first delay."""
    monkeypatch.setattr(client, "BACKOFF_INITIAL", 0.05)
    monkeypatch.setattr(client, "STABLE_LINK", 2.0)
    printer = virtual_printer("P1S")
    recorder = Recorder()
    session = open_session(printer, recorder)
    await session.async_connect()
    session.start_reconnecting()
    for outage in (1, 2):  # dropped right after each login: not a stable link
        printer.restart_broker()
        await wait_until(lambda outage=outage: recorder.connected == outage)
    assert session._backoff == 0.2  # 0.05, doubled after each of the two reconnects
    await asyncio.sleep(2.2)
    printer.restart_broker()  # the link stayed up for longer than STABLE_LINK
    await wait_until(lambda: recorder.connected == 3)
    assert session._backoff == 0.1  # started over at 0.05, doubled once


async def test_close_while_the_login_goes_unanswered(
    hass: HomeAssistant, test_cas: Any, tmp_path: Any, socket_enabled: None
) -> None:
    """The handshake verifies but the CONNACK never comes: closing the session ends the
    connect at once (SessionClosed) and hangs up."""
    import ssl
    import time

    from tests.virtual_printer.pki import issue_server

    serial = "00M09A000000007"
    chain, key = issue_server("legacy", serial, test_cas).write_server_files(tmp_path)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(chain, key)
    logins: list[bytes] = []
    hung_up = asyncio.Event()

    async def never_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        logins.append(await reader.read(1024))  # CONNECT, then silence
        with contextlib.suppress(ConnectionError, ssl.SSLError):
            await reader.read()
        hung_up.set()
        writer.close()

    server = await asyncio.start_server(never_answer, "127.0.0.1", 0, ssl=context)
    session = PrinterSession(
        "127.0.0.1", serial, "12345678", Recorder(), port=server.sockets[0].getsockname()[1]
    )
    try:
        connecting = asyncio.ensure_future(session.async_connect())
        await wait_until(lambda: logins)
        started = time.monotonic()
        await session.async_close()
        with pytest.raises(SessionClosed):
            await connecting
        assert time.monotonic() - started < 1.0  # not the 10 s CONNACK timeout
        async with asyncio.timeout(2):
            await hung_up.wait()
        assert not session.connected
        with pytest.raises(SessionClosed):  # a closed session does not connect again
            await session.async_connect()
        assert len(logins) == 1
    finally:
        server.close()
        server.close_clients()
        await server.wait_closed()


def test_paho_never_opens_a_connection_itself() -> None:
    """paho gets a verified socket or nothing: its own connect path fails without a socket."""
    paho = _Client(CallbackAPIVersion.VERSION2)
    paho.connect_async("127.0.0.1", 8883)
    with pytest.raises(ConnectionError):
        paho.reconnect()
    left, right = socket.socketpair()
    with right:
        with pytest.raises(ValueError, match="Invalid host"):
            paho.connect_over(left, "", 8883)  # type: ignore[arg-type]
        assert left.fileno() == -1  # the socket it was given is closed, not leaked
