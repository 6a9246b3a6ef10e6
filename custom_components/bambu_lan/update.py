"""Firmware: the version installed and the one the printer offers, with Bambu's release notes.

There is no install feature: over the LAN a printer only reports what its cloud connection
offered, and Bambu's LAN protocol has no documented, unsigned command that installs it (updates
are confirmed in Bambu Studio, Bambu Handy or on the printer's screen).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final, override

from homeassistant.components.update import (
    UpdateDeviceClass,
    UpdateEntity,
    UpdateEntityDescription,
)
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .coordinator import BambuConfigEntry
from .entity import BambuEntity
from .printer.models import PrinterModel
from .printer.state import PrinterState

PARALLEL_UPDATES = 0

_WIKI: Final = "https://wiki.bambulab.com/en/"
RELEASE_NOTES: Final[Mapping[PrinterModel, str]] = {
    PrinterModel.X1C: f"{_WIKI}x1/manual/X1-X1C-firmware-release-history",
    PrinterModel.X1: f"{_WIKI}x1/manual/X1-X1C-firmware-release-history",
    PrinterModel.X1E: f"{_WIKI}x1/manual/X1E-firmware-release-history",
    PrinterModel.P1P: f"{_WIKI}p1/manual/p1p-firmware-release-history",
    PrinterModel.P1S: f"{_WIKI}p1/manual/p1p-firmware-release-history",
    PrinterModel.P2S: f"{_WIKI}p2s/manual/p2s-firmware-release-history",
    PrinterModel.A1: f"{_WIKI}a1/manual/a1-firmware-release-history",
    PrinterModel.A1MINI: f"{_WIKI}a1-mini/manual/a1-mini-firmware-release-history",
    PrinterModel.H2D: f"{_WIKI}h2d/manual/h2d-firmware-release-history",
    PrinterModel.H2DPRO: f"{_WIKI}h2d-pro/manual/firmware-release-history",
    PrinterModel.H2S: f"{_WIKI}h2s/manual/h2s-firmware-release-history",
    PrinterModel.H2C: f"{_WIKI}h2c/manual/h2c-firmware-release-history",
    PrinterModel.X2D: f"{_WIKI}x2d/manual/x2d-firmware-release-history",
}

FIRMWARE: Final = UpdateEntityDescription(
    key="firmware", translation_key="firmware", device_class=UpdateDeviceClass.FIRMWARE
)


def latest_version(state: PrinterState) -> str | None:
    """The newest firmware: the installed one when the printer says none is offered."""
    available = state.update_available
    if available is False:
        return state.firmware
    offered = state.firmware_offered
    if available is None and offered is None:
        return None  # the printer has not said
    return offered


async def async_setup_entry(
    hass: HomeAssistant,
    entry: BambuConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add the firmware update entity."""
    async_add_entities([BambuFirmwareUpdate(entry.runtime_data, FIRMWARE)])


class BambuFirmwareUpdate(BambuEntity, UpdateEntity):
    """Installed and offered firmware as the printer reports them; nothing to install from here."""

    @override
    def _refresh(self) -> tuple[Any, ...]:
        state = self.coordinator.state
        self._attr_installed_version = state.firmware
        self._attr_latest_version = latest_version(state)
        model = state.model
        self._attr_release_url = RELEASE_NOTES.get(model) if model else None
        return (
            self._attr_installed_version,
            self._attr_latest_version,
            self._attr_release_url,
        )
