"""The benchmarks' Home Assistant harness: printers added as config entries, state writes
counted, payloads handed to a session where its MQTT reader hands them, one line per figure."""

from __future__ import annotations

import statistics
from typing import Any

from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity import Entity
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.bambu_lan import fanout
from custom_components.bambu_lan.const import DOMAIN
from tests.virtual_printer.printer import VirtualPrinter

ACCESS_CODE = "B3nchC0d"


def quiet_median(samples: list[int], slices: int = 5) -> float:
    """The lowest median of `slices` consecutive slices of `samples` (ns)."""
    size = max(len(samples) // slices, 1)
    return min(
        statistics.median(samples[start : start + size])
        for start in range(0, len(samples) - size + 1, size)
    )


def line(name: str, value: float | int, unit: str = "") -> None:
    """One tracked figure."""
    text = f"{value:.1f}" if isinstance(value, float) else str(value)
    print(f"{name}: {text}{' ' + unit if unit else ''}", flush=True)


class WriteCounter:
    """Counts state writes (every `Entity.async_write_ha_state` call, changed or not)."""

    def __init__(self) -> None:
        self.count = 0
        original = Entity.async_write_ha_state

        def counting(entity: Entity) -> None:
            self.count += 1
            original(entity)

        Entity.async_write_ha_state = counting  # type: ignore[method-assign]


async def add_printer(hass: HomeAssistant, printer: VirtualPrinter) -> MockConfigEntry:
    """Configure `printer` as an entry (its current access code) and wait until it is loaded."""
    entry = MockConfigEntry(
        domain=DOMAIN,
        unique_id=printer.serial,
        title=f"{printer.model} {printer.serial[-4:]}",
        data={
            "host": "127.0.0.1",
            "serial": printer.serial,
            "access_code": printer.access_code,
            "port": printer.port,
            "cert_fingerprint": printer.fingerprint,
        },
    )
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.LOADED, entry.state
    return entry


class Unthrottled:
    """Lift the fan-out's flood throttle (for per-message figures) while inside."""

    def __enter__(self) -> None:
        self._saved = fanout.RATE, fanout.BURST
        fanout.RATE, fanout.BURST = 1e9, 10**9

    def __exit__(self, *_exc: object) -> None:
        fanout.RATE, fanout.BURST = self._saved


def feeder(session: Any, serial: str) -> Any:
    """Hand payloads to the session, as its MQTT reader does (printer/mqtt_frames.py)."""
    topic = f"device/{serial}/report".encode()

    def feed(payload: bytes) -> None:
        session._on_publish(topic, payload)

    return feed
