"""A printer address that accepts TCP and never answers (a tarpit) holds nothing for long.

Unloading the entry or stopping Home Assistant while a connect is stuck in the TLS handshake
returns at once and leaves no thread and no socket behind; so does an aborted probe. Real
sockets on 127.0.0.1, real TLS contexts, the real entry setup.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
import contextlib
import os
import socket
import sys
import threading
import time
import traceback
from typing import Any, Self

from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.loader import async_get_integration
from homeassistant.setup import async_setup_component
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.bambu_lan import config_flow
from custom_components.bambu_lan.const import DOMAIN
from custom_components.bambu_lan.printer.tls import (
    PrinterTLSError,
    TLSErrorKind,
    async_create_printer_context,
    async_probe_printer,
)
from tests.helpers import async_setup_printer, wait_until
from tests.virtual_printer.printer import VirtualPrinter

pytestmark = pytest.mark.usefixtures("trust_test_cas")

SERIAL = "01P00A000000001"
QUICK = 2.0  # seconds: what "at once" has to mean on a loaded CI machine


class Tarpit:
    """A listener on 127.0.0.1 that accepts TCP, reads what comes, and never answers."""

    def __init__(self) -> None:
        self.connections = 0
        self.ended = 0  # connections the client closed
        self.port = 0
        self._server: asyncio.Server | None = None

    async def start(self, port: int = 0) -> Self:
        self._server = await asyncio.start_server(self._hold, "127.0.0.1", port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def _hold(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        with contextlib.suppress(ConnectionError):
            while await reader.read(4096):  # the ClientHello, then nothing until the client goes
                pass
            self.ended += 1
        writer.close()

    async def close(self) -> None:
        assert self._server is not None
        self._server.close()
        self._server.close_clients()
        await self._server.wait_closed()


@pytest.fixture
async def tarpit(socket_enabled: None) -> AsyncIterator[Tarpit]:
    """A tarpit on a free port, closed after the test."""
    pit = await Tarpit().start()
    yield pit
    await pit.close()


def sockets_to(port: int) -> int:
    """How many of this process's open TCP sockets have 127.0.0.1:`port` as their peer."""
    own = set()
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            link = os.readlink(f"/proc/self/fd/{fd}")
            if link.startswith("socket:["):
                own.add(link.removeprefix("socket:[").removesuffix("]"))
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(FileNotFoundError), open(table, encoding="ascii") as lines:
            for line in list(lines)[1:]:
                fields = line.split()
                peer_port = int(fields[2].rsplit(":", 1)[1], 16)
                count += peer_port == port and fields[9] in own
    return count


# What an idle worker of Home Assistant's executor runs while it waits for work.
_IDLE = ("threading.py", "queue.py", "concurrent/futures/thread.py")


def busy_new_threads(before: set[threading.Thread]) -> list[str]:
    """Threads started since `before` that are doing anything but waiting for work.

    Home Assistant's executor may start a worker for its own jobs and keep it; a thread stuck
    in a handshake (paho's connect, a probe) runs ssl / socket code and is reported.
    """
    frames = sys._current_frames()
    busy = []
    for thread in threading.enumerate():
        if thread in before or thread.ident not in frames:
            continue
        files = {frame.filename for frame in traceback.extract_stack(frames[thread.ident])}
        if not all(name.endswith(_IDLE) for name in files):
            busy.append(f"{thread.name}: {sorted(files)}")
    return busy


async def assert_let_go(tarpit: Tarpit, before: set[threading.Thread]) -> None:
    """The tarpit saw every connection closed; no socket to it and no busy new thread remain."""
    await wait_until(lambda: tarpit.ended == tarpit.connections, timeout=QUICK)
    assert sockets_to(tarpit.port) == 0
    assert busy_new_threads(before) == []


async def timed(action: Callable[[], Any]) -> float:
    """Seconds `action()` took to complete."""
    started = time.monotonic()
    await action()
    return time.monotonic() - started


@pytest.mark.usefixtures("fast_reconnect")
@pytest.mark.parametrize("how", ["unload", "stop"])
async def test_reconnect_stuck_in_a_tarpit(
    hass: HomeAssistant, virtual_printer: Callable[..., VirtualPrinter], how: str
) -> None:
    """The printer's address turns into a tarpit: the session's reconnect hangs in the
    handshake; unloading the entry or stopping Home Assistant lets go of it at once."""
    printer = virtual_printer("P1S")
    entry = await async_setup_printer(hass, printer)
    assert entry.state is ConfigEntryState.LOADED
    session = entry.runtime_data.session
    assert session is not None
    before = set(threading.enumerate())
    printer.stop_broker()
    tarpit = await Tarpit().start(printer.port)
    try:
        await wait_until(lambda: tarpit.connections == 1)
        await asyncio.sleep(0.3)  # well into the handshake (its timeout is 10 s)
        assert not session.connected
        assert sockets_to(tarpit.port) == 1
        if how == "unload":
            elapsed = await timed(lambda: hass.config_entries.async_unload(entry.entry_id))
            assert entry.state is ConfigEntryState.NOT_LOADED
        else:
            elapsed = await timed(hass.async_stop)
        assert elapsed < QUICK
        await assert_let_go(tarpit, before)
        assert tarpit.connections == 1  # and no further attempt after that
    finally:
        await tarpit.close()


async def test_shutdown_while_setup_is_stuck_in_a_tarpit(
    hass: HomeAssistant, tarpit: Tarpit, caplog: pytest.LogCaptureFixture
) -> None:
    """Home Assistant stops while the entry's first connect hangs in the handshake: the stop
    returns at once, the setup ends (to be retried at the next start), nothing is left."""
    assert await async_setup_component(hass, DOMAIN, {})
    entry = MockConfigEntry(
        domain=DOMAIN,
        unique_id=SERIAL,
        minor_version=2,
        data={
            "host": "127.0.0.1",
            "port": tarpit.port,
            "serial": SERIAL,
            "access_code": "12345678",
            "cert_fingerprint": "ab" * 32,
            "ca_verified": True,
        },
    )
    entry.add_to_hass(hass)
    # What the setup would otherwise start in the executor the first time: built beforehand,
    # so that the thread comparison sees only what the connect itself leaves.
    await async_create_printer_context(SERIAL)
    await (await async_get_integration(hass, DOMAIN)).async_get_platform("config_flow")
    before = set(threading.enumerate())

    setup = hass.async_create_task(hass.config_entries.async_setup(entry.entry_id))
    await wait_until(lambda: tarpit.connections == 1)
    await asyncio.sleep(0.3)
    assert entry.state is ConfigEntryState.SETUP_IN_PROGRESS
    assert sockets_to(tarpit.port) == 1

    assert await timed(hass.async_stop) < QUICK
    assert setup.done()
    assert not setup.cancelled()  # it ended by itself, not by Home Assistant's last resort
    assert entry.state is ConfigEntryState.SETUP_RETRY
    await assert_let_go(tarpit, before)
    assert "still running" not in caplog.text
    assert "12345678" not in caplog.text


async def test_aborted_probe_leaves_nothing(hass: HomeAssistant, tarpit: Tarpit) -> None:
    """A probe (config flow, discovery) stuck in a tarpit's handshake: cancelling it closes
    the socket at once, and no thread is left waiting on it."""
    await async_create_printer_context(SERIAL)
    before = set(threading.enumerate())
    probe = asyncio.ensure_future(async_probe_printer("127.0.0.1", tarpit.port, SERIAL))
    await wait_until(lambda: tarpit.connections == 1)
    await asyncio.sleep(0.3)
    assert not probe.done()
    assert sockets_to(tarpit.port) == 1

    async def cancel() -> None:
        probe.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await probe

    assert await timed(cancel) < QUICK
    assert probe.cancelled()
    await assert_let_go(tarpit, before)


@pytest.mark.parametrize("how", ["close", "cancel"])
async def test_closing_the_dialog_stops_the_check(
    hass: HomeAssistant, tarpit: Tarpit, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    """The add-printer check hangs in a tarpit's handshake. The user closes the dialog: Home
    Assistant removes the flow without cancelling the running step, so the flow stops its check
    itself and the step ends with an abort. Or the step itself is cancelled (Home Assistant
    stopping): the check goes with it. Either way at once, and the socket is closed."""
    monkeypatch.setattr(config_flow, "MQTT_PORT", tarpit.port)
    await async_create_printer_context(SERIAL)
    flows = hass.config_entries.flow
    result = await flows.async_init(DOMAIN, context={"source": "user"})
    before = set(threading.enumerate())
    typed = {"host": "127.0.0.1", "serial": SERIAL, "access_code": "12345678"}
    step = hass.async_create_task(flows.async_configure(result["flow_id"], typed))
    await wait_until(lambda: tarpit.connections == 1)
    await asyncio.sleep(0.3)
    assert not step.done()

    async def stop() -> None:
        if how == "close":
            flows.async_abort(result["flow_id"])
        else:
            step.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await step

    assert await timed(stop) < QUICK
    if how == "close":
        assert step.result()["type"] is FlowResultType.ABORT
        assert step.result()["reason"] == "flow_closed"
        assert flows.async_progress() == []
    else:
        assert step.cancelled()
        flows.async_abort(result["flow_id"])
    await assert_let_go(tarpit, before)


async def test_each_step_has_its_deadline(hass: HomeAssistant, tarpit: Tarpit) -> None:
    """A handshake that never completes is a protocol failure, a TCP connect that never
    completes is unreachable; both name the address as configured and close their socket."""
    with pytest.raises(PrinterTLSError) as caught:
        # A host name: resolved without blocking the loop, then the same loop-driven handshake.
        await async_probe_printer("localhost", tarpit.port, SERIAL, 0.3)
    assert caught.value.kind is TLSErrorKind.PROTOCOL
    assert (caught.value.host, caught.value.port) == ("localhost", tarpit.port)
    assert caught.value.detail == "timed out"
    await wait_until(lambda: tarpit.ended == tarpit.connections == 1, timeout=QUICK)

    # A listener whose accept queue is full lets a new connect hang (its SYN goes unanswered).
    with socket.socket() as full:
        full.bind(("127.0.0.1", 0))
        full.listen(0)
        port = full.getsockname()[1]
        with socket.create_connection(("127.0.0.1", port)):
            with pytest.raises(PrinterTLSError) as caught:
                await async_probe_printer("127.0.0.1", port, SERIAL, 0.3)
            assert sockets_to(port) == 1  # only the one that filled the queue
    assert caught.value.kind is TLSErrorKind.UNREACHABLE
    assert caught.value.detail == "timed out"
    assert str(caught.value) == f"Cannot connect to 127.0.0.1:{port}: timed out."
