"""Discover printers from the NOTIFY packets they broadcast on UDP port 2021.

Bambu Lab printers announce themselves every 1-5 s with SSDP-style NOTIFY packets sent to
255.255.255.255:2021 (source port 1900). Home Assistant's SSDP integration listens on 1900 and never
sees them, so this module runs its own listener while the integration is loaded and starts one
discovery flow per printer. An announcement proves nothing (anyone on the LAN can send one); the
config flow's verified TLS, bound to the announced serial, is what makes acting on it safe.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from typing import Any, Final, override

from homeassistant.config_entries import (
    SOURCE_INTEGRATION_DISCOVERY,
    ConfigEntry,
    signal_discovered_config_entry_removed,
)
from homeassistant.const import EVENT_HOMEASSISTANT_STOP
from homeassistant.core import CALLBACK_TYPE, Event, HomeAssistant, callback
from homeassistant.helpers import discovery_flow
from homeassistant.helpers.dispatcher import async_dispatcher_connect
from homeassistant.util.hass_dict import HassKey

from .const import CONF_HOST, DOMAIN
from .printer.announce import Announcement, parse_notify

_LOGGER = logging.getLogger(__name__)

# Where the listener binds. Printers broadcast, so production listens on every IPv4 interface;
# tests bind 127.0.0.1 and a free port (0) instead.
DISCOVERY_ADDRESS = "0.0.0.0"  # noqa: S104 - broadcasts only reach a socket bound to any address
DISCOVERY_PORT = 2021

# A printer repeats its announcement every few seconds: start a flow for it again only after
# this long (e.g. to retry an entry that failed to set up) ...
REDISCOVERY_INTERVAL: Final = 900.0
# ... or when its address changed, but not more often than this: each such flow may probe the
# announced address, and announcements are easy to forge.
ADDRESS_CHANGE_INTERVAL: Final = 30.0
# Bound the memory a LAN flooding us with invented serials can take. Configured printers are
# tracked apart, so invented serials cannot push their rate limits out.
MAX_TRACKED_PRINTERS: Final = 64
# An announcement of a configured printer at a new address may make its flow probe that address:
# at most one such probe in this many seconds, whatever the serials.
PROBE_INTERVAL: Final = 10.0
# Discovery flows waiting for the user: at most this many, and this many per source address (a
# printer announces its own address, so one address is one printer). The rest is dropped.
MAX_OPEN_FLOWS: Final = 16
MAX_OPEN_FLOWS_PER_SOURCE: Final = 2
# A flow just asked for may not be listed as in progress yet (before Home Assistant has started,
# discovery flows wait): it counts for this long regardless.
_FLOW_GRACE: Final = 60.0
_DEBUG_LOG_INTERVAL: Final = 60.0

# Keys of a discovery flow's data besides host and serial (see `Announcement.flow_data`).
CONF_MODEL: Final = "model"
CONF_NAME: Final = "name"

DATA_DISCOVERY: HassKey[PrinterDiscovery] = HassKey(f"{DOMAIN}_discovery")


def _open_socket(address: str, port: int) -> socket.socket:
    """A non-blocking UDP socket that shares the port with other listeners on this host."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_UDP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if hasattr(socket, "SO_REUSEPORT"):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        sock.setblocking(False)
        sock.bind((address, port))
    except OSError:
        sock.close()
        raise
    return sock


class PrinterDiscovery(asyncio.DatagramProtocol):
    """Listens for announcements and starts a discovery flow per printer (rate limited)."""

    def __init__(self, hass: HomeAssistant) -> None:
        """Prepare; nothing listens until `async_start`."""
        self.hass = hass
        self.port: int | None = None
        self._transport: asyncio.DatagramTransport | None = None
        # serial -> (host, monotonic time) of the last flow started for it, oldest first; the
        # configured printers' in a table of their own that invented serials cannot evict
        self._flows_started: dict[str, tuple[str, float]] = {}
        self._configured_started: dict[str, tuple[str, float]] = {}
        # serial -> (source address, monotonic time) of the flows started for unknown printers
        self._open_flows: dict[str, tuple[str, float]] = {}
        self._last_probe: float | None = None
        self._last_drop_log: float | None = None
        self._announcements: dict[str, Announcement] = {}
        self._unsub_removed: CALLBACK_TYPE | None = None

    async def async_start(self) -> bool:
        """Bind and listen; False (logged once) if the port cannot be had."""
        try:
            sock = _open_socket(DISCOVERY_ADDRESS, DISCOVERY_PORT)
        except OSError as err:
            _LOGGER.warning(
                "Cannot listen on UDP port %s for printer announcements (%s); is Bambu Studio "
                "or Orca Slicer running on this host? Printers will not be discovered "
                "automatically, add them by IP address",
                DISCOVERY_PORT,
                err,
            )
            return False
        self.port = sock.getsockname()[1]
        await self.hass.loop.create_datagram_endpoint(lambda: self, sock=sock)
        self._unsub_removed = async_dispatcher_connect(
            self.hass, signal_discovered_config_entry_removed(DOMAIN), self._entry_removed
        )
        _LOGGER.debug("Listening for printer announcements on UDP port %s", self.port)
        return True

    @callback
    def async_stop(self, _event: Event | None = None) -> None:
        """Stop listening."""
        if self._unsub_removed is not None:
            self._unsub_removed()
            self._unsub_removed = None
        if self._transport is not None:
            self._transport.close()
            self._transport = None
        if self.hass.data.get(DATA_DISCOVERY) is self:
            del self.hass.data[DATA_DISCOVERY]

    def announcement(self, serial: str) -> Announcement | None:
        """The last announcement heard from this serial, if any."""
        return self._announcements.get(serial)

    @override
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.DatagramTransport)
        self._transport = transport

    @override
    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        announcement = parse_notify(data)
        # A printer announces its own address; a packet naming another one is forged (and
        # would make us probe an arbitrary address).
        if announcement is None or announcement.host != addr[0]:
            return
        serial = announcement.serial
        self._remember(self._announcements, serial, announcement)
        now = time.monotonic()
        entry = self.hass.config_entries.async_entry_for_domain_unique_id(DOMAIN, serial)
        last = self._flows_started.get(serial)
        if entry is not None:
            last = self._configured_started.get(serial, last)
        if last is not None:
            last_host, last_time = last
            wait = (
                REDISCOVERY_INTERVAL if last_host == announcement.host else ADDRESS_CHANGE_INTERVAL
            )
            if now - last_time < wait:
                return
        if entry is None:
            self._open_flows.pop(serial, None)
            if not self._flow_slot_free(announcement.host, now):
                self._drop(f"too many open discovery flows (from {announcement.host})", now)
                return
            self._open_flows[serial] = (announcement.host, now)
            self._remember(self._flows_started, serial, (announcement.host, now))
        else:
            if entry.data.get(CONF_HOST) != announcement.host:
                if self._last_probe is not None and now - self._last_probe < PROBE_INTERVAL:
                    self._drop(f"{serial} announced at {announcement.host}: probe limit", now)
                    return
                self._last_probe = now
            self._configured_started[serial] = (announcement.host, now)
        discovery_flow.async_create_flow(
            self.hass,
            DOMAIN,
            {"source": SOURCE_INTEGRATION_DISCOVERY},
            announcement.flow_data(),
            discovery_key=discovery_flow.DiscoveryKey(domain=DOMAIN, key=serial, version=1),
        )

    def _flow_slot_free(self, source: str, now: float) -> bool:
        """Whether another discovery flow from `source` stays within the caps (a flow for the
        same serial replaces its earlier one)."""
        in_progress = {
            flow["context"].get("unique_id")
            for flow in self.hass.config_entries.flow.async_progress_by_handler(
                DOMAIN,
                include_uninitialized=True,
                match_context={"source": SOURCE_INTEGRATION_DISCOVERY},
            )
        }
        self._open_flows = {
            serial: (host, started)
            for serial, (host, started) in self._open_flows.items()
            if serial in in_progress or now - started < _FLOW_GRACE
        }
        if len(self._open_flows) >= MAX_OPEN_FLOWS:
            return False
        from_source = sum(host == source for host, _ in self._open_flows.values())
        return from_source < MAX_OPEN_FLOWS_PER_SOURCE

    def _drop(self, reason: str, now: float) -> None:
        """Ignore an announcement quietly: at most one debug line a minute."""
        if self._last_drop_log is None or now - self._last_drop_log >= _DEBUG_LOG_INTERVAL:
            self._last_drop_log = now
            _LOGGER.debug("Ignored printer announcements: %s (logged once a minute)", reason)

    @override
    def error_received(self, exc: Exception) -> None:
        _LOGGER.debug("Discovery socket error: %s", exc)

    @staticmethod
    def _remember[V](table: dict[str, V], serial: str, value: V) -> None:
        """Store as the newest item, dropping the oldest beyond the bound."""
        table.pop(serial, None)
        table[serial] = value
        if len(table) > MAX_TRACKED_PRINTERS:
            del table[next(iter(table))]

    @callback
    def _entry_removed(self, entry: ConfigEntry) -> None:
        """A removed printer should be offered again at its next announcement."""
        if entry.unique_id is not None:
            self._flows_started.pop(entry.unique_id, None)
            self._configured_started.pop(entry.unique_id, None)


async def async_start_discovery(hass: HomeAssistant) -> PrinterDiscovery | None:
    """Start listening for printers until Home Assistant stops (None if the port is taken)."""
    discovery = PrinterDiscovery(hass)
    if not await discovery.async_start():
        return None
    hass.data[DATA_DISCOVERY] = discovery
    hass.bus.async_listen_once(EVENT_HOMEASSISTANT_STOP, discovery.async_stop)
    return discovery


@callback
def async_get_announcement(hass: HomeAssistant, serial: str) -> Announcement | None:
    """The last announcement from this serial, when discovery is running."""
    discovery = hass.data.get(DATA_DISCOVERY)
    return discovery.announcement(serial) if discovery is not None else None
