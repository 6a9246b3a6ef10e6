"""The session's MQTT reader against a scripted broker over real TLS.

The broker is a few lines of asyncio on 127.0.0.1 with a printer certificate from the test CAs:
it accepts the login and the subscription, then writes exactly the bytes a test gives it, split
as the test says (every piece its own TLS record), so packet boundaries fall anywhere.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
import contextlib
from pathlib import Path
import socket
import ssl
import struct
from typing import Any

from homeassistant.core import HomeAssistant
import pytest

from custom_components.bambu_lan.printer.mqtt_frames import MAX_PACKET
from custom_components.bambu_lan.printer.session import PrinterSession
from tests.helpers import wait_until
from tests.printer.test_session import Recorder
from tests.virtual_printer.pki import TestCAs, issue_server

pytestmark = pytest.mark.usefixtures("trust_test_cas")

SERIAL = "01P00A000000007"
TOPIC = f"device/{SERIAL}/report".encode()


def packet(first: int, body: bytes) -> bytes:
    """An MQTT packet: type/flags byte, remaining length, body."""
    length, size = b"", len(body)
    while True:
        size, digit = divmod(size, 128)
        length += bytes([digit | (0x80 if size else 0)])
        if not size:
            return bytes([first]) + length + body


def publish(payload: bytes, *, topic: bytes = TOPIC, qos: int = 0, packet_id: int = 1) -> bytes:
    """A PUBLISH packet (QoS 1 carries a packet id)."""
    head = len(topic).to_bytes(2, "big") + topic
    if qos:
        head += packet_id.to_bytes(2, "big")
    return packet(0x30 | qos << 1, head + payload)


def report(n: int) -> bytes:
    """The payload of the n-th small report."""
    return b'{"print": {"command": "push_status", "sequence_id": "%d", "mc_percent": %d}}' % (n, n)


class ScriptedBroker:
    """Accepts one client: CONNACK, SUBACK, then whatever `send` is given.

    TLS runs through memory BIOs, so a test chooses where TLS records end (each `send` piece is
    one record) and where TCP writes end (`tcp_chunk`), a record cut in two included.
    """

    def __init__(self, context: ssl.SSLContext) -> None:
        self._context = context
        self._server: asyncio.Server | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._tls: ssl.SSLObject | None = None
        self._outgoing = ssl.MemoryBIO()
        self.subscribed = asyncio.Event()
        self.received: list[int] = []  # packet types the client sent after subscribing
        self.port = 0

    async def start(self) -> ScriptedBroker:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writer = writer
        incoming = ssl.MemoryBIO()
        self._tls = tls = self._context.wrap_bio(incoming, self._outgoing, server_side=True)
        plain = bytearray()
        with contextlib.suppress(ConnectionError, ssl.SSLError):
            while data := await reader.read(65536):
                incoming.write(data)
                with contextlib.suppress(ssl.SSLWantReadError):
                    tls.do_handshake()  # done after the first flight; then a no-op
                    while chunk := tls.read(65536):
                        plain += chunk
                writer.write(self._outgoing.read())
                while (answer := self._answer(plain)) is not None:
                    if answer:
                        tls.write(answer)
                        writer.write(self._outgoing.read())

    def _answer(self, plain: bytearray) -> bytes | None:
        """Take one whole packet off `plain` and return the reply (None: no whole packet)."""
        if len(plain) < 2:
            return None
        length, shift, index = 0, 0, 1
        while True:
            if index >= len(plain):
                return None
            byte = plain[index]
            index += 1
            length |= (byte & 0x7F) << shift
            shift += 7
            if byte < 0x80:
                break
        if len(plain) < index + length:
            return None
        kind, body = plain[0] >> 4, bytes(plain[index : index + length])
        del plain[: index + length]
        if kind == 1:  # CONNECT
            return packet(0x20, b"\x00\x00")
        if kind == 8:  # SUBSCRIBE: granted at QoS 0
            self.subscribed.set()
            return packet(0x90, body[:2] + b"\x00")
        self.received.append(kind)
        return b""

    async def send(self, *pieces: bytes, tcp_chunk: int = 0) -> None:
        """Write each piece as its own TLS record; the records go out in `tcp_chunk`-byte
        writes (0: one write per record), the client reading in between."""
        assert self._writer is not None
        assert self._tls is not None
        for piece in pieces:
            self._tls.write(piece)
            wire = self._outgoing.read()
            step = tcp_chunk or len(wire)
            for offset in range(0, len(wire), step):
                self._writer.write(wire[offset : offset + step])
                await self._writer.drain()
                await asyncio.sleep(0.002)

    def hang_up(self, *, reset: bool = False) -> None:
        """Close the TCP connection (with an RST when `reset`)."""
        assert self._writer is not None
        if reset:
            sock = self._writer.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self._writer.transport.abort()
        else:
            self._writer.close()

    async def close(self) -> None:
        assert self._server is not None
        self._server.close()
        self._server.close_clients()
        await self._server.wait_closed()


@pytest.fixture
async def broker(
    socket_enabled: None, test_cas: TestCAs, tmp_path: Path
) -> AsyncIterator[ScriptedBroker]:
    chain, key = issue_server("legacy", SERIAL, test_cas).write_server_files(tmp_path)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(chain, key)
    server = await ScriptedBroker(context).start()
    yield server
    await server.close()


@pytest.fixture
async def session(broker: ScriptedBroker, hass: HomeAssistant) -> AsyncIterator[Any]:
    """A connected session (no state requests) and what it told its listener."""
    recorder = Recorder()
    opened = PrinterSession(
        "127.0.0.1", SERIAL, "12345678", recorder, port=broker.port, request_state=False
    )
    await opened.async_connect()
    await asyncio.wait_for(broker.subscribed.wait(), 5)
    yield opened, recorder
    await opened.async_close()


def sequences(recorder: Recorder) -> list[int]:
    return [int(message["print"]["sequence_id"]) for message in recorder.reports]


async def test_packets_split_anywhere_arrive_whole_and_in_order(
    broker: ScriptedBroker, session: Any
) -> None:
    """Reports split across records, several in one record, and paho's packets in between."""
    opened, recorder = session
    stream = (
        publish(report(1))
        + publish(report(2))
        + packet(0xD0, b"")  # PINGRESP: paho's
        + publish(report(3), qos=1, packet_id=7)  # QoS 1: paho reads it and acknowledges
        + publish(report(4))
    )
    cuts = [1, 2, 3, 40, 41, len(stream) - 20, len(stream) - 1]
    pieces = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)]
    await broker.send(*pieces)
    await broker.send(publish(report(5)) * 3)  # three in one record
    # A report with a two-byte length, cut after its first length byte, its records cut in
    # TCP writes of 7 bytes (TLS sees partial records: nothing to read yet).
    longer = publish(report(6) + b" " * 200)
    await broker.send(longer[:2], longer[2:], tcp_chunk=7)
    await wait_until(lambda: len(recorder.reports) == 8)
    assert sequences(recorder) == [1, 2, 3, 4, 5, 5, 5, 6]
    await wait_until(lambda: 4 in broker.received)  # PUBACK for the QoS 1 report
    assert opened.connected
    assert opened.stats.messages == 8
    assert opened.stats.dropped_messages == 0


async def test_oversized_packet_is_skipped_without_buffering_it(
    broker: ScriptedBroker, session: Any
) -> None:
    """A packet over MAX_PACKET is dropped as it streams past; the link stays up."""
    opened, recorder = session
    huge = publish(b"{" + b" " * MAX_PACKET + b"}")
    pieces = [huge[i : i + 100_000] for i in range(0, len(huge), 100_000)]
    await broker.send(*pieces, publish(report(9)))
    await wait_until(lambda: sequences(recorder) == [9])
    assert opened.stats.dropped_messages == 1
    assert opened.connected
    framed = opened._client._sock
    assert len(framed._buffer) < MAX_PACKET


async def test_other_topics_are_dropped(broker: ScriptedBroker, session: Any) -> None:
    opened, recorder = session
    await broker.send(publish(report(1), topic=b"device/OTHER/report"), publish(report(2)))
    await wait_until(lambda: sequences(recorder) == [2])
    assert opened.stats.dropped_messages == 1


@pytest.mark.parametrize(
    "garbage",
    [
        b"\x30\xff\xff\xff\xff\x01",  # a remaining length of five bytes
        packet(0x30, b"\x00\x40abc"),  # a topic longer than the packet
        packet(0x30, b"\x00"),  # no room for the topic length
    ],
    ids=["length_too_long", "topic_past_end", "no_topic"],
)
async def test_bytes_that_are_not_mqtt_end_the_connection(
    broker: ScriptedBroker, session: Any, garbage: bytes
) -> None:
    opened, recorder = session
    await broker.send(publish(report(1)), garbage)
    await wait_until(lambda: not opened.connected)
    assert sequences(recorder) == [1]
    assert len(recorder.disconnected) == 1
    assert isinstance(recorder.disconnected[0], ConnectionError)


@pytest.mark.parametrize("reset", [False, True], ids=["close", "reset"])
async def test_hang_up_in_the_middle_of_a_packet(
    broker: ScriptedBroker, session: Any, reset: bool
) -> None:
    opened, recorder = session
    await broker.send(publish(report(1)) + publish(report(2))[:10])
    await wait_until(lambda: sequences(recorder) == [1])
    broker.hang_up(reset=reset)
    await wait_until(lambda: not opened.connected)
    assert len(recorder.disconnected) == 1
