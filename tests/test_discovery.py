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
from tests.virtual_printer.printer import PrinterFactory

SERIAL = "01P09A000000042"
_MARKERS = itertools.count(1)


def notify(
    serial: str = SERIAL,
    host: str = "127.0.0.1",
    *,
    model: str = "C12",
    name: str = "Workshop",
    extra: str = "",
) -> bytes:
    """A NOTIFY packet shaped like a P1S's (header names as printers spell them)."""
    return (
        "NOTIFY * HTTP/1.1\r\n"
        "HOST: 239.255.255.250:1990\r\n"
        "Server: UPnP/1.0\r\n"
        f"Location: {host}\r\n"
        "NT: urn:bambulab-com:device:3dprinter:1\r\n"
        f"USN: {serial}\r\n"
        "Cache-Control: max-age=1800\r\n"
        f"DevModel.bambu.com: {model}\r\n"
        f"DevName.bambu.com: {name}\r\n"
        "DevSignal.bambu.com: -44\r\n"
        "DevConnect.bambu.com: lan\r\n"
        "DevBind.bambu.com: free\r\n"
        "Devseclink.bambu.com: secure\r\n"
        "DevVersion.bambu.com: 01.08.02.00\r\n"
        "DevCap.bambu.com: 1\r\n"
        f"{extra}"
        "\r\n"
    ).encode()


# --- parsing -------------------------------------------------------------------------------------


def test_parse_notify() -> None:
    """Every field the flow needs, from a real-shaped packet."""
    announcement = discovery.parse_notify(notify())

    assert announcement == discovery.Announcement(
        host="127.0.0.1", serial=SERIAL, model="P1S", name="Workshop", firmware="01.08.02.00"
    )
    assert announcement.flow_data() == {
        CONF_HOST: "127.0.0.1",
        CONF_SERIAL: SERIAL,
        "model": "P1S",
        "name": "Workshop",
    }


def test_parse_notify_is_lenient_where_printers_differ() -> None:
    """Header case, LF-only lines, a lower-case serial, a URL location, legacy model names."""
    packet = (
        b"notify * HTTP/1.1\n"
        b"location: http://192.168.1.20/\n"
        b"nt: URN:bambulab-com:device:3dprinter:1\n"
        b"nts: ssdp:alive\n"
        b"usn: 00m09a000000001\n"
        b"DEVMODEL.BAMBU.COM: 3DPrinter-X1-Carbon\n"
    )

    announcement = discovery.parse_notify(packet)

    assert announcement is not None
    assert announcement.host == "192.168.1.20"
    assert announcement.serial == "00M09A000000001"
    assert announcement.model == "X1 Carbon"
    assert announcement.name is None
    assert announcement.flow_data() == {
        CONF_HOST: "192.168.1.20",
        CONF_SERIAL: "00M09A000000001",
        "model": "X1 Carbon",
    }


@pytest.mark.parametrize(
    ("code", "model"),
    [("N2S", "A1"), ("N1", "A1 mini"), ("O1E", "H2D Pro"), ("N8", "N8"), ("", None)],
)
def test_model_labels(code: str, model: str | None) -> None:
    """Known codes become model names; an unknown code is kept as it is."""
    announcement = discovery.parse_notify(notify(model=code))

    assert announcement is not None
    assert announcement.model == model
    assert announcement.flow_data().get("model") == model


def test_display_values_are_sanitised() -> None:
    """Names come from the network: control characters go, length is bounded."""
    announcement = discovery.parse_notify(notify(name="Lab\x1b[31m\x07" + "x" * 100))

    assert announcement is not None
    assert announcement.name == "Lab[31m" + "x" * 57


@pytest.mark.parametrize(
    "packet",
    [
        b"",
        b"\xff\xfe\x00\x01",
        notify().replace(b"NOTIFY *", b"M-SEARCH *"),
        notify().replace(b"NT: urn:bambulab-com:device:3dprinter:1\r\n", b""),
        notify().replace(b"urn:bambulab-com:device:3dprinter:1", b"upnp:rootdevice"),
        notify().replace(f"USN: {SERIAL}\r\n".encode(), b""),
        notify(serial="01P09A00000004"),
        notify(serial="01P09A00000004-"),
        notify(serial="uuid:01P09A000000042"),
        notify(host="printer.local"),
        notify(host="0.0.0.0"),
        notify(host="239.255.255.250"),
        notify(extra="X-Padding: " + "x" * 2048 + "\r\n"),
        b"NOTIFY * HTTP/1.1\r\nno header separators here\r\n",
    ],
)
def test_malformed_packets_are_ignored(packet: bytes) -> None:
    """Anything that is not a well-formed printer announcement yields nothing."""
    assert discovery.parse_notify(packet) is None


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
    assert result["title"] == "P1S Garage"
    await hass.async_block_till_done()
    assert result["result"].state is ConfigEntryState.LOADED


async def test_announcement_from_another_address_is_ignored(
    hass: HomeAssistant, listener: discovery.PrinterDiscovery, sender: socket.socket
) -> None:
    """A packet whose Location is not its sender is forged: no flow, nothing remembered."""
    sender.sendto(notify(serial="00M09A350199999", host="127.0.0.5"), ("127.0.0.1", listener.port))
    await announce(listener, sender)
    assert listener.announcement("00M09A350199999") is None
