"""Helpers shared by the tests that run the integration against virtual printers."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from homeassistant.core import HomeAssistant
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.bambu_lan.const import DOMAIN
from tests.virtual_printer.printer import VirtualPrinter

WAIT = 15.0  # seconds; generous for a loaded CI machine


def printer_entry(
    hass: HomeAssistant,
    printer: VirtualPrinter,
    *,
    fingerprint: str | None = None,
    options: dict[str, Any] | None = None,
    title: str | None = None,
    **data: Any,
) -> MockConfigEntry:
    """A config entry for the virtual printer, added to Home Assistant but not set up.

    `port` (and `camera_port` / `rtsp_port`) are in the data only because test printers do not
    listen on 8883 (6000 / 322).
    """
    if printer.camera is not None:
        key = "camera_port" if printer.camera.kind == "jpeg" else "rtsp_port"
        data = {key: printer.camera.port} | data
    entry = MockConfigEntry(
        domain=DOMAIN,
        unique_id=printer.serial,
        title=title or printer.model,
        data={
            "host": printer.host,
            "serial": printer.serial,
            "access_code": printer.access_code,
            "port": printer.port,
            "cert_fingerprint": fingerprint or printer.fingerprint,
        }
        | data,
        options=options or {},
    )
    entry.add_to_hass(hass)
    return entry


async def async_setup_printer(
    hass: HomeAssistant, printer: VirtualPrinter, **kwargs: Any
) -> MockConfigEntry:
    """Add an entry for the printer and set it up (it may fail: check entry.state)."""
    entry = printer_entry(hass, printer, **kwargs)
    await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    return entry


async def wait_until(condition: Callable[[], Any], timeout: float = WAIT) -> None:
    """Let the event loop run until `condition()` holds (the printer is another process)."""
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.02)


def sent_commands(printer: Any) -> list[str]:
    """The `command` of every request the printer received."""
    return [
        body.get("command")
        for request in printer.received_commands()
        for body in request.values()
        if isinstance(body, dict)
    ]
