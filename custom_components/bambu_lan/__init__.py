"""Bambu Lab LAN: Bambu Lab printers over verified TLS on the local network."""

from __future__ import annotations

from typing import Final

from homeassistant.const import Platform
from homeassistant.core import HomeAssistant
from homeassistant.helpers import (
    config_validation as cv,
    device_registry as dr,
    entity_registry as er,
)
from homeassistant.helpers.typing import ConfigType

from . import ams, ams_services, discovery, file_services, issues, media_view, services
from .const import CONF_CA_VERIFIED, DOMAIN, is_ca_verified
from .coordinator import BambuConfigEntry, BambuCoordinator

PLATFORMS: list[Platform] = [
    Platform.BINARY_SENSOR,
    Platform.BUTTON,
    Platform.CAMERA,
    Platform.EVENT,
    Platform.FAN,
    Platform.IMAGE,
    Platform.LIGHT,
    Platform.NUMBER,
    Platform.SELECT,
    Platform.SENSOR,
    Platform.SWITCH,
    Platform.UPDATE,
]

CONFIG_SCHEMA = cv.config_entry_only_config_schema(DOMAIN)


async def async_setup(hass: HomeAssistant, config: ConfigType) -> bool:
    """Register the actions; listen for printer announcements (UDP 2021)."""
    ams_services.async_setup_services(hass)
    file_services.async_setup_services(hass)
    media_view.async_register_view(hass)
    await discovery.async_start_discovery(hass)
    services.async_setup_services(hass)
    return True


async def async_migrate_entry(hass: HomeAssistant, entry: BambuConfigEntry) -> bool:
    """1.1 -> 1.2: record whether a bundled CA has proven the printer's identity.

    Entries before 1.2 were created without a pin only after their chain verified against the
    bundled CAs; a pinned one is treated as never verified (it may have been pinned from a
    repair, which no longer exists).
    """
    # Home Assistant calls this only for an older version (a newer one fails to load), and 1.2
    # is the first minor version after 1.1.
    verified = is_ca_verified(entry.data, entry.options)
    hass.config_entries.async_update_entry(
        entry, data={**entry.data, CONF_CA_VERIFIED: verified}, minor_version=2
    )
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
    coordinator.device_id = ams.printer_device_id(hass, coordinator)
    _async_remove_retired_entities(hass, entry)
    await hass.config_entries.async_forward_entry_setups(entry, PLATFORMS)
    return True


# Entities earlier versions created that another entity replaced: (platform, unique id suffix).
RETIRED_ENTITIES: Final = ((Platform.BINARY_SENSOR, "firmware_update"),)  # now update.firmware


def _async_remove_retired_entities(hass: HomeAssistant, entry: BambuConfigEntry) -> None:
    """Drop replaced entities from the registry, so none is left behind without its entity."""
    registry = er.async_get(hass)
    serial = entry.runtime_data.serial
    for platform, key in RETIRED_ENTITIES:
        entity_id = registry.async_get_entity_id(platform, DOMAIN, f"{serial}_{key}")
        if entity_id is not None:
            registry.async_remove(entity_id)


async def async_unload_entry(hass: HomeAssistant, entry: BambuConfigEntry) -> bool:
    """Unload platforms; the coordinator's shutdown closes the connection."""
    unloaded = await hass.config_entries.async_unload_platforms(entry, PLATFORMS)
    if unloaded:
        await entry.runtime_data.async_close()
    return unloaded


async def async_remove_config_entry_device(
    hass: HomeAssistant, entry: BambuConfigEntry, device: dr.DeviceEntry
) -> bool:
    """Only an AMS unit that stopped reporting can be deleted; the printer cannot."""
    return await ams.async_remove_device(hass, entry, device)


async def async_remove_entry(hass: HomeAssistant, entry: BambuConfigEntry) -> None:
    """A deleted printer leaves no repair issues behind."""
    issues.async_remove_entry_issues(hass, entry)
