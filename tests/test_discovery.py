"""Discovery from NOTIFY packets: parsing, and the UDP listener on 127.0.0.1 feeding flows."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
import itertools
import logging
from pathlib import Path
import socket
from unittest.mock import MagicMock, patch

from homeassistant.config_entries import SOURCE_INTEGRATION_DISCOVERY, ConfigEntryState
from homeassistant.const import EVENT_HOMEASSISTANT_STOP
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.helpers import discovery_flow
from homeassistant.setup import async_setup_component
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.bambu_lan import config_flow, discovery
from custom_components.bambu_lan.const import CONF_ACCESS_CODE, CONF_HOST, CONF_SERIAL, DOMAIN
from tests.printer.test_announce import notify
from tests.virtual_printer.printer import PrinterFactory

SERIAL = "01P09A000000042"
_MARKERS = itertools.count(1)


# --- the listener --------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def discovery_on_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    """Never listen on 0.0.0.0:2021 in tests: 127.0.0.1 and a free port."""
    monkeypatch.setattr(discovery, "DISCOVERY_ADDRESS", "127.0.0.1")
    monkeypatch.setattr(discovery, "DISCOVERY_PORT", 0)


@pytest.fixture
def flow_spy() -> Iterator[MagicMock]:
    """Count the discovery flows the listener asks for (the real helper still runs)."""
    with patch.object(
        discovery.discovery_flow,
        "async_create_flow",
        wraps=discovery_flow.async_create_flow,
    ) as spy:
        yield spy


@pytest.fixture
async def listener(
    hass: HomeAssistant, socket_enabled: None
) -> AsyncIterator[discovery.PrinterDiscovery]:
    """A running listener on 127.0.0.1."""
    started = await discovery.async_start_discovery(hass)
    assert started is not None
    assert started.port
    yield started
    started.async_stop()


@pytest.fixture
def sender(socket_enabled: None) -> Iterator[socket.socket]:
    """A UDP socket for sending announcements."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        yield sock


async def announce(
    listener: discovery.PrinterDiscovery, sender: socket.socket, *packets: bytes
) -> None:
    """Send packets; wait until the listener handled them and their flows started.

    A valid announcement from a marker serial goes last: loopback keeps the order, so once it
    is seen every packet before it was handled too.
    """
    marker = f"00W{next(_MARKERS):012d}"
    for packet in (*packets, notify(serial=marker, host="127.0.0.9")):
        # Printers send from the address they announce: do the same on loopback.
        parsed = discovery.parse_notify(packet)
        source = parsed.host if parsed and parsed.host.startswith("127.") else "127.0.0.1"
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.bind((source, 0))
            sock.sendto(packet, ("127.0.0.1", listener.port))
    async with asyncio.timeout(5):
        while listener.announcement(marker) is None:
            await asyncio.sleep(0.01)
    # Discovery flows start as background tasks.
    await listener.hass.async_block_till_done(wait_background_tasks=True)


def started_for(spy: MagicMock, serial: str) -> list[dict[str, str]]:
    """The flow data of the flows started for one serial."""
    return [call.args[3] for call in spy.call_args_list if call.args[3][CONF_SERIAL] == serial]


async def test_announcement_starts_discovery_flow(
    hass: HomeAssistant, listener: discovery.PrinterDiscovery, sender: socket.socket
) -> None:
    """A new printer gets a discovery flow waiting for its access code."""
    await announce(listener, sender, notify())
    await hass.async_block_till_done()

    flows = [
        flow
        for flow in hass.config_entries.flow.async_progress_by_handler(DOMAIN)
        if flow["context"]["unique_id"] == SERIAL
    ]
    assert len(flows) == 1
    flow = flows[0]
    assert flow["context"]["source"] == SOURCE_INTEGRATION_DISCOVERY
    assert flow["step_id"] == "discovery_confirm"
    assert flow["context"]["discovery_key"] == discovery_flow.DiscoveryKey(
        domain=DOMAIN, key=SERIAL, version=1
    )
    assert flow["context"]["title_placeholders"] == {
        "name": "P1S Workshop",
        "host": "127.0.0.1",
    }
    assert discovery.async_get_announcement(hass, SERIAL) == discovery.parse_notify(notify())


async def test_repeats_are_rate_limited(
    hass: HomeAssistant,
    listener: discovery.PrinterDiscovery,
    sender: socket.socket,
    flow_spy: MagicMock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Printers repeat every few seconds: one flow; again for a new address, or much later."""
    await announce(listener, sender, notify(), notify(), notify(name="Renamed"))
    assert len(started_for(flow_spy, SERIAL)) == 1
    assert listener.announcement(SERIAL).name == "Renamed"  # the latest is remembered

    # A new address right away: throttled too (forged announcements could flap it).
    await announce(listener, sender, notify(host="127.0.0.2"))
    assert len(started_for(flow_spy, SERIAL)) == 1

    monkeypatch.setattr(discovery, "ADDRESS_CHANGE_INTERVAL", 0.0)
    await announce(listener, sender, notify(host="127.0.0.2"), notify(host="127.0.0.2"))
    assert [data[CONF_HOST] for data in started_for(flow_spy, SERIAL)] == [
        "127.0.0.1",
        "127.0.0.2",
    ]

    monkeypatch.setattr(discovery, "REDISCOVERY_INTERVAL", 0.0)
    await announce(listener, sender, notify(host="127.0.0.2"))
    assert len(started_for(flow_spy, SERIAL)) == 3
    await hass.async_block_till_done()


async def test_malformed_packets_start_nothing(
    hass: HomeAssistant,
    listener: discovery.PrinterDiscovery,
    sender: socket.socket,
    flow_spy: MagicMock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Garbage on the port is dropped quietly."""
    garbage = [b"", b"\x00" * 3000, b"hello", notify(serial="short"), notify(host="nowhere")]

    await announce(listener, sender, *garbage)
    await hass.async_block_till_done()

    assert len(flow_spy.call_args_list) == 1  # the marker only
    assert listener.announcement(SERIAL) is None
    assert not [
        record
        for record in caplog.records
        if record.name.startswith("custom_components") and record.levelno >= logging.WARNING
    ]


async def test_tracking_is_bounded(
    hass: HomeAssistant,
    listener: discovery.PrinterDiscovery,
    sender: socket.socket,
    flow_spy: MagicMock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A flood of invented serials cannot grow memory; the oldest are forgotten."""
    monkeypatch.setattr(discovery, "MAX_TRACKED_PRINTERS", 2)
    first, second = "01P09A000000001", "01P09A000000002"

    await announce(listener, sender, notify(first), notify(second))
    assert listener.announcement(first) is None  # pushed out by the second and the marker
    await announce(listener, sender, notify(first))

    assert len(started_for(flow_spy, first)) == 2
    await hass.async_block_till_done()


async def test_removed_entry_is_offered_again(
    hass: HomeAssistant,
    listener: discovery.PrinterDiscovery,
    sender: socket.socket,
    flow_spy: MagicMock,
) -> None:
    """After the user deletes a discovered printer, its next announcement offers it again."""
    await announce(listener, sender, notify())
    await hass.async_block_till_done()
    for flow in hass.config_entries.flow.async_progress_by_handler(DOMAIN):
        hass.config_entries.flow.async_abort(flow["flow_id"])
    entry = MockConfigEntry(
        domain=DOMAIN,
        unique_id=SERIAL,
        data={CONF_HOST: "127.0.0.1", CONF_SERIAL: SERIAL, CONF_ACCESS_CODE: "12345678"},
        discovery_keys={
            DOMAIN: (discovery_flow.DiscoveryKey(domain=DOMAIN, key=SERIAL, version=1),)
        },
    )
    entry.add_to_hass(hass)
    await announce(listener, sender, notify())
    assert len(started_for(flow_spy, SERIAL)) == 1

    await hass.config_entries.async_remove(entry.entry_id)
    await announce(listener, sender, notify())

    assert len(started_for(flow_spy, SERIAL)) == 2
    await hass.async_block_till_done()


async def test_port_in_use_is_logged_once(
    hass: HomeAssistant,
    socket_enabled: None,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Another program holding the port exclusively: no discovery, one warning, no error."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as holder:
        holder.bind(("127.0.0.1", 0))
        monkeypatch.setattr(discovery, "DISCOVERY_PORT", holder.getsockname()[1])

        assert await discovery.async_start_discovery(hass) is None

    warnings = [record for record in caplog.records if record.name == discovery.__name__]
    assert len(warnings) == 1
    assert "add them by IP address" in warnings[0].getMessage()
    assert discovery.async_get_announcement(hass, SERIAL) is None


async def test_listener_shares_the_port(
    hass: HomeAssistant, listener: discovery.PrinterDiscovery, socket_enabled: None
) -> None:
    """A second polite listener (e.g. Bambu Studio with SO_REUSEADDR) can bind alongside."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as other:
        other.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        other.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        other.bind(("127.0.0.1", listener.port))
    listener.error_received(OSError("ICMP port unreachable"))  # logged at debug, ignored


async def test_integration_listens_while_loaded(
    hass: HomeAssistant, socket_enabled: None, sender: socket.socket
) -> None:
    """Loading the integration starts the listener; stopping Home Assistant ends it."""
    assert await async_setup_component(hass, DOMAIN, {})
    running = hass.data[discovery.DATA_DISCOVERY]

    await announce(running, sender, notify())
    await hass.async_block_till_done()
    flows = hass.config_entries.flow.async_progress_by_handler(DOMAIN)
    assert SERIAL in [flow["context"]["unique_id"] for flow in flows]

    hass.bus.async_fire(EVENT_HOMEASSISTANT_STOP)
    await hass.async_block_till_done()
    assert discovery.DATA_DISCOVERY not in hass.data
    assert discovery.async_get_announcement(hass, SERIAL) is None


async def test_announced_printer_can_be_added(
    hass: HomeAssistant,
    listener: discovery.PrinterDiscovery,
    sender: socket.socket,
    virtual_printer: PrinterFactory,
    trust_test_cas: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """End to end: a UDP announcement, the access code, a verified entry that sets up."""
    printer = virtual_printer("P1S")
    monkeypatch.setattr(config_flow, "MQTT_PORT", printer.port)

    await announce(listener, sender, notify(printer.serial, name="Garage"))
    await hass.async_block_till_done()
    flow = next(
        flow
        for flow in hass.config_entries.flow.async_progress_by_handler(DOMAIN)
        if flow["context"]["unique_id"] == printer.serial
    )
    result = await hass.config_entries.flow.async_configure(
        flow["flow_id"], {CONF_ACCESS_CODE: printer.access_code}
    )

    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["title"] == "Garage"  # the printer's own name
    await hass.async_block_till_done()
    assert result["result"].state is ConfigEntryState.LOADED


async def test_announcement_from_another_address_is_ignored(
    hass: HomeAssistant, listener: discovery.PrinterDiscovery, sender: socket.socket
) -> None:
    """A packet whose Location is not its sender is forged: no flow, nothing remembered."""
    sender.sendto(notify(serial="00M09A350199999", host="127.0.0.5"), ("127.0.0.1", listener.port))
    await announce(listener, sender)
    assert listener.announcement("00M09A350199999") is None


def _open_discovery_flows(hass: HomeAssistant) -> list[str]:
    return [
        flow["context"]["unique_id"]
        for flow in hass.config_entries.flow.async_progress_by_handler(
            DOMAIN, match_context={"source": SOURCE_INTEGRATION_DISCOVERY}
        )
    ]


async def test_forged_announcements_open_bounded_flows(
    hass: HomeAssistant,
    listener: discovery.PrinterDiscovery,
    sender: socket.socket,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """500 invented serials from one address open two flows; from many addresses, at most
    MAX_OPEN_FLOWS; the rest is dropped with one debug line."""
    caplog.set_level(logging.DEBUG, logger="custom_components.bambu_lan.discovery")
    forged = [notify(f"01P09A{index:09d}", "127.0.0.1") for index in range(500)]
    for batch in range(0, 500, 50):  # in batches: a burst would overflow the socket buffer
        await announce(listener, sender, *forged[batch : batch + 50])
    from_one = [serial for serial in _open_discovery_flows(hass) if serial.startswith("01P09A")]
    assert len(from_one) == discovery.MAX_OPEN_FLOWS_PER_SOURCE

    spread = [notify(f"01S09A{index:09d}", f"127.0.1.{index % 200 + 1}") for index in range(500)]
    for batch in range(0, 500, 50):
        await announce(listener, sender, *spread[batch : batch + 50])
    assert len(_open_discovery_flows(hass)) == discovery.MAX_OPEN_FLOWS
    dropped = [
        record
        for record in caplog.records
        if "Ignored printer announcements" in record.getMessage()
    ]
    assert len(dropped) == 1  # at most one line a minute
    await hass.async_block_till_done()


async def test_invented_serials_cannot_lift_a_configured_printers_limit(
    hass: HomeAssistant,
    listener: discovery.PrinterDiscovery,
    sender: socket.socket,
    flow_spy: MagicMock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Flooding the table of unknown serials leaves a configured printer rate limited, and
    probes of new addresses are limited for all printers together."""
    monkeypatch.setattr(discovery, "MAX_TRACKED_PRINTERS", 4)
    other = "01P09A000000043"
    for serial in (SERIAL, other):
        MockConfigEntry(
            domain=DOMAIN,
            unique_id=serial,
            data={CONF_HOST: "192.0.2.10", CONF_SERIAL: serial, CONF_ACCESS_CODE: "12345678"},
        ).add_to_hass(hass)
    with patch.object(config_flow, "async_probe_printer") as probe:
        await announce(listener, sender, notify(SERIAL, "127.0.0.2"))
        assert len(started_for(flow_spy, SERIAL)) == 1
        flood = [notify(f"01S09A{index:09d}", f"127.0.2.{index + 1}") for index in range(20)]
        await announce(listener, sender, *flood)
        # Its 30 s address-change limit still holds, and another configured printer's new
        # address within PROBE_INTERVAL is not probed either.
        await announce(listener, sender, notify(SERIAL, "127.0.0.3"), notify(other, "127.0.0.4"))
        assert len(started_for(flow_spy, SERIAL)) == 1
        assert started_for(flow_spy, other) == []
        monkeypatch.setattr(discovery, "PROBE_INTERVAL", 0.0)
        await announce(listener, sender, notify(other, "127.0.0.4"))
        assert len(started_for(flow_spy, other)) == 1
        await hass.async_block_till_done()
    assert probe.call_count == 0  # neither entry is unreachable (they are not even set up)
