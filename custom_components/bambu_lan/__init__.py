"""Bambu Lab LAN: Bambu Lab printers over verified TLS on the local network."""

from __future__ import annotations

from homeassistant.const import Platform
from homeassistant.core import HomeAssistant
from homeassistant.helpers import config_validation as cv
from homeassistant.helpers.typing import ConfigType

from . import discovery, issues
from .const import DOMAIN
from .coordinator import BambuConfigEntry, BambuCoordinator

PLATFORMS: list[Platform] = [
    Platform.BINARY_SENSOR,
    Platform.BUTTON,
    Platform.CAMERA,
    Platform.EVENT,
    Platform.IMAGE,
    Platform.LIGHT,
    Platform.NUMBER,
    Platform.SELECT,
    Platform.SENSOR,
]

CONFIG_SCHEMA = cv.config_entry_only_config_schema(DOMAIN)


async def async_setup(hass: HomeAssistant, config: ConfigType) -> bool:
    """Listen for printer announcements (UDP 2021) while Home Assistant runs."""
    await discovery.async_start_discovery(hass)
    return True


async def async_setup_entry(hass: HomeAssistant, entry: BambuConfigEntry) -> bool:
    """Connect to the printer and set up its entities."""
    coordinator = BambuCoordinator(hass, entry)
    try:
        await coordinator.async_config_entry_first_refresh()
    except BaseException:
        # Printers accept only a few clients: never leave a half-set-up connection open.
        await coordinator.async_close()
        raise
    entry.runtime_data = coordinator
    await hass.config_entries.async_forward_entry_setups(entry, PLATFORMS)
    return True


async def async_unload_entry(hass: HomeAssistant, entry: BambuConfigEntry) -> bool:
    """Unload platforms; the coordinator's shutdown closes the connection."""
    unloaded = await hass.config_entries.async_unload_platforms(entry, PLATFORMS)
    if unloaded:
        await entry.runtime_data.async_close()
    return unloaded


async def async_remove_entry(hass: HomeAssistant, entry: BambuConfigEntry) -> None:
    """A deleted printer leaves no repair issues behind."""
    issues.async_remove_entry_issues(hass, entry)
