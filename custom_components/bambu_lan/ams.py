"""AMS devices: one per unit, hanging off the printer, added when a unit first reports.

Each unit is a device of its own (model from the unit type, serial and firmware from
get_version) linked to the printer with `via_device_id`. Home Assistant's child devices
(2026.9) carry no model, serial or firmware, so a linked main device is what fits here.
A unit that stops reporting leaves its entities unavailable; the user can then delete its
device (`async_remove_device`), and it comes back by itself if the unit reports again.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Final, override

from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers.device_registry import DeviceEntry, DeviceInfo
from homeassistant.helpers.entity import Entity, EntityDescription

from .const import DOMAIN, MANUFACTURER
from .coordinator import BambuConfigEntry, BambuCoordinator
from .entity import BambuEntity, device_info
from .printer.ams import AMS_MODEL_NAMES, AmsUnit, unit_number
from .printer.ams_fields import AMS_IDS_KEY

UNIT_ID_MARK: Final = "_ams_"


def unit_identifier(serial: str, unit_id: int) -> tuple[str, str]:
    """The device registry identifier of one AMS unit."""
    return DOMAIN, f"{serial}{UNIT_ID_MARK}{unit_id}"


def unit_id_of(coordinator: BambuCoordinator, device: dr.AnyDeviceEntry) -> int | None:
    """The AMS unit a device stands for (None: the printer or a foreign device)."""
    prefix = f"{coordinator.serial}{UNIT_ID_MARK}"
    for domain, identifier in device.identifiers:
        if domain == DOMAIN and identifier.startswith(prefix):
            suffix = identifier.removeprefix(prefix)
            if suffix.isdigit():
                return int(suffix)
    return None


def unit_device_info(coordinator: BambuCoordinator, unit: AmsUnit) -> DeviceInfo:
    """The unit as a device: "AMS 1", "AMS HT 1" ..., linked to its printer."""
    state = coordinator.state
    model = AMS_MODEL_NAMES[state.ams_kind(unit)]
    module = state.ams_module(unit.id)
    info = DeviceInfo(
        identifiers={unit_identifier(coordinator.serial, unit.id)},
        manufacturer=MANUFACTURER,
        name=f"{model} {unit_number(unit.id)}",
        model=model,
        serial_number=module.sn if module else None,
        sw_version=module.sw_ver if module else None,
        hw_version=module.hw_ver if module else None,
    )
    if coordinator.device_id is not None:
        info["via_device_id"] = coordinator.device_id
    return info


class BambuAmsEntity(BambuEntity):
    """An entity of one AMS unit: on the unit's device, unavailable while it is gone."""

    def __init__(
        self,
        coordinator: BambuCoordinator,
        description: EntityDescription,
        unit: AmsUnit,
        device_info: DeviceInfo,
    ) -> None:
        """Bind the entity to its unit's device."""
        super().__init__(coordinator, description)
        self.unit_id = unit.id
        self._attr_unique_id = f"{coordinator.serial}{UNIT_ID_MARK}{unit.id}_{description.key}"
        self._attr_device_info = device_info

    @property
    @override
    def available(self) -> bool:
        return super().available and self.coordinator.state.has_ams_unit(self.unit_id)


type UnitEntities = Callable[[BambuCoordinator, AmsUnit, DeviceInfo], Iterable[Entity]]


@callback
def async_track_units(
    entry: BambuConfigEntry,
    add_entities: Callable[[Iterable[Entity]], None],
    unit_entities: UnitEntities,
) -> None:
    """Add a platform's entities for every AMS unit now and whenever a new unit reports."""
    coordinator = entry.runtime_data
    known: set[int] = set()
    coordinator.ams_platforms.append(known)

    @callback
    def add_new_units() -> None:
        units = [unit for unit in coordinator.state.ams_units if unit.id not in known]
        if not units:
            return
        entities: list[Entity] = []
        for unit in units:
            known.add(unit.id)
            entities.extend(unit_entities(coordinator, unit, unit_device_info(coordinator, unit)))
        add_entities(entities)

    add_new_units()
    # Full refreshes reach coordinator listeners; reports only the fan-out's readers.
    entry.async_on_unload(coordinator.async_add_listener(add_new_units))
    coordinator.fanout.index(add_new_units, (), (AMS_IDS_KEY,))
    entry.async_on_unload(lambda: coordinator.fanout.index(add_new_units, (AMS_IDS_KEY,), ()))


@callback
def async_track_unit_devices(hass: HomeAssistant, entry: BambuConfigEntry) -> None:
    """Keep each AMS device's model, serial and firmware as the printer reports them (an AMS
    firmware update, a get_version reply that arrives late); the user's name stays."""
    coordinator = entry.runtime_data
    registry = dr.async_get(hass)

    def shown(unit: AmsUnit) -> tuple[str | None, ...]:
        info = unit_device_info(coordinator, unit)
        return (
            info.get("model"),
            info.get("serial_number"),
            info.get("sw_version"),
            info.get("hw_version"),
        )

    written: dict[int, tuple[str | None, ...]] = {}

    @callback
    def update_devices() -> None:
        for unit in coordinator.state.ams_units:
            current = shown(unit)
            if written.get(unit.id) == current:
                continue  # the usual case: a few comparisons, no registry lookup
            written[unit.id] = current
            identifier = unit_identifier(coordinator.serial, unit.id)
            device = registry.async_get_device_by_identifier(identifier, entry.entry_id)
            if device is None or current == (
                device.model,
                device.serial_number,
                device.sw_version,
                device.hw_version,
            ):
                continue
            model, serial_number, sw_version, hw_version = current
            registry.async_update_device(
                device.id,
                model=model,
                serial_number=serial_number,
                sw_version=sw_version,
                hw_version=hw_version,
            )

    # get_version replies reach coordinator listeners (they may change anything).
    entry.async_on_unload(coordinator.async_add_listener(update_devices))


async def async_remove_device(
    hass: HomeAssistant, entry: BambuConfigEntry, device: DeviceEntry
) -> bool:
    """Allow deleting an AMS unit's device once the unit no longer reports."""
    coordinator = entry.runtime_data
    unit_id = unit_id_of(coordinator, device)
    if unit_id is None or coordinator.state.ams_unit(unit_id) is not None:
        return False
    for known in coordinator.ams_platforms:
        known.discard(unit_id)  # re-added if the unit reports again
    return True


def printer_device_id(hass: HomeAssistant, coordinator: BambuCoordinator) -> str:
    """Register the printer's device up front, so AMS devices can link to it."""
    device = dr.async_get(hass).async_get_or_create(
        config_entry_id=coordinator.config_entry.entry_id, **device_info(coordinator)
    )
    return device.id
