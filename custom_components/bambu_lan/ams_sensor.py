"""AMS sensors: per unit (humidity, temperature, drying), per tray and external spool, and the
printer's active tray and (dual nozzle) the filament in each nozzle.

Wire facts and their sources: `printer/ams.py`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Final, override

from homeassistant.components.sensor import (
    SensorDeviceClass,
    SensorEntity,
    SensorEntityDescription,
    SensorStateClass,
)
from homeassistant.const import PERCENTAGE, UnitOfTemperature, UnitOfTime
from homeassistant.core import HomeAssistant
from homeassistant.helpers.device_registry import DeviceInfo
from homeassistant.helpers.entity import Entity
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback
from homeassistant.helpers.typing import StateType

from .ams import BambuAmsEntity, async_track_unit_devices, async_track_units
from .coordinator import BambuConfigEntry, BambuCoordinator
from .entity import BambuEntity
from .printer.ams import (
    DRY_STATES,
    DRYING_KINDS,
    EXTERNAL_IDS,
    EXTERNAL_MAIN,
    AmsKind,
    AmsTray,
    AmsUnit,
    slot_count,
    unit_number,
)
from .printer.state import PrinterState

# Nozzle ids in `device.extruder.info`: 0 is the right nozzle, 1 the left one.
RIGHT_NOZZLE: Final = 0
LEFT_NOZZLE: Final = 1
TRAY_KEY: Final = "tray"
EXTERNAL_SPOOL_KEY: Final = "external_spool"


@dataclass(frozen=True, kw_only=True)
class AmsUnitSensorEntityDescription(SensorEntityDescription):
    """A sensor of an AMS unit: how to read it, and on which units it exists."""

    value_fn: Callable[[AmsUnit], StateType]
    exists_fn: Callable[[AmsUnit, AmsKind], bool] = lambda _unit, _kind: True


def _dries(_unit: AmsUnit, kind: AmsKind) -> bool:
    return kind in DRYING_KINDS


UNIT_SENSORS: Final[tuple[AmsUnitSensorEntityDescription, ...]] = (
    AmsUnitSensorEntityDescription(
        key="humidity",
        translation_key="ams_humidity",
        device_class=SensorDeviceClass.HUMIDITY,
        native_unit_of_measurement=PERCENTAGE,
        state_class=SensorStateClass.MEASUREMENT,
        value_fn=lambda unit: unit.humidity_percent,
        exists_fn=lambda unit, _kind: unit.humidity_percent is not None,
    ),
    AmsUnitSensorEntityDescription(
        key="humidity_level",
        translation_key="ams_humidity_level",
        state_class=SensorStateClass.MEASUREMENT,
        value_fn=lambda unit: unit.humidity_level,
    ),
    AmsUnitSensorEntityDescription(
        key="temperature",
        translation_key="ams_temperature",
        device_class=SensorDeviceClass.TEMPERATURE,
        native_unit_of_measurement=UnitOfTemperature.CELSIUS,
        state_class=SensorStateClass.MEASUREMENT,
        suggested_display_precision=0,
        value_fn=lambda unit: unit.temp,
    ),
    AmsUnitSensorEntityDescription(
        key="drying",
        translation_key="ams_drying",
        device_class=SensorDeviceClass.ENUM,
        options=list(DRY_STATES),
        value_fn=lambda unit: unit.dry_state,
        exists_fn=_dries,
    ),
    AmsUnitSensorEntityDescription(
        key="drying_remaining",
        translation_key="ams_drying_remaining",
        device_class=SensorDeviceClass.DURATION,
        native_unit_of_measurement=UnitOfTime.MINUTES,
        state_class=SensorStateClass.MEASUREMENT,
        value_fn=lambda unit: unit.dry_minutes_left,
        exists_fn=_dries,
    ),
    AmsUnitSensorEntityDescription(
        key="drying_target_temperature",
        translation_key="ams_drying_target_temperature",
        device_class=SensorDeviceClass.TEMPERATURE,
        native_unit_of_measurement=UnitOfTemperature.CELSIUS,
        state_class=SensorStateClass.MEASUREMENT,
        value_fn=lambda unit: unit.dry_target,
        exists_fn=_dries,
    ),
)

TRAY: Final = SensorEntityDescription(key=TRAY_KEY, translation_key="ams_tray")


def tray_unique_suffix(unit_id: int, slot: int) -> str:
    """What follows the serial in a tray sensor's unique id (`ams_services` parses it)."""
    if unit_id in EXTERNAL_IDS:
        return f"{EXTERNAL_SPOOL_KEY}_{unit_id}"
    return f"ams_{unit_id}_{TRAY_KEY}_{slot}"


def _unit_entities(
    coordinator: BambuCoordinator, unit: AmsUnit, device: DeviceInfo
) -> Iterable[Entity]:
    kind = coordinator.state.ams_kind(unit)
    for description in UNIT_SENSORS:
        if description.exists_fn(unit, kind):
            yield AmsUnitSensor(coordinator, description, unit, device)
    for slot in range(slot_count(kind)):
        yield AmsTraySensor(coordinator, unit, device, slot)


def _external_description(state: PrinterState, spool: int) -> SensorEntityDescription:
    # One spool (`vt_tray`), or one per nozzle (`vir_slot`: 255 right/main, 254 left/deputy).
    key = EXTERNAL_SPOOL_KEY
    if state.has_external_spool_list:
        key = f"{key}_{'right' if spool == EXTERNAL_MAIN else 'left'}"
    return EXTERNAL_SPOOLS[key]


def async_setup_ams_sensors(
    hass: HomeAssistant, entry: BambuConfigEntry, async_add_entities: AddConfigEntryEntitiesCallback
) -> None:
    """Add the printer's filament sensors now and each AMS unit's as it reports."""
    coordinator = entry.runtime_data
    state = coordinator.state
    entities: list[SensorEntity] = [ActiveTraySensor(coordinator, ACTIVE_TRAY)]
    entities.extend(
        ExternalSpoolSensor(coordinator, _external_description(state, tray.slot), tray.slot)
        for tray in state.external_spools
        if tray.slot in EXTERNAL_IDS
    )
    if state.is_dual_nozzle:
        entities.extend(
            NozzleFilamentSensor(coordinator, description, nozzle)
            for description, nozzle in (
                (LEFT_NOZZLE_FILAMENT, LEFT_NOZZLE),
                (RIGHT_NOZZLE_FILAMENT, RIGHT_NOZZLE),
            )
        )
    async_add_entities(entities)
    async_track_units(entry, async_add_entities, _unit_entities)
    async_track_unit_devices(hass, entry)


def tray_attributes(state: PrinterState, unit_id: int, slot: int) -> dict[str, Any]:
    """What the apps show about a tray, as state attributes."""
    tray = state.tray_at(unit_id, slot)
    if tray is None:
        return {"empty": True, "active": False}
    return {
        "type": tray.tray_type,
        "color": tray.rgb,
        "remaining": tray.remain,
        "k": tray.k,
        "nozzle_temp_min": tray.temp_min,
        "nozzle_temp_max": tray.temp_max,
        "preset_id": tray.preset,
        "rfid": tray.rfid,
        "empty": tray.empty,
        "active": state.active_location == (unit_id, slot),
    }


def _filament(tray: AmsTray | None) -> str | None:
    return None if tray is None or tray.empty else tray.name


class AmsUnitSensor(BambuAmsEntity, SensorEntity):
    """A reading of one AMS unit."""

    entity_description: AmsUnitSensorEntityDescription

    @override
    def _refresh(self) -> tuple[Any, ...]:
        unit = self.coordinator.state.ams_unit(self.unit_id)
        value = None if unit is None else self.entity_description.value_fn(unit)
        self._attr_native_value = value
        return (value,)


class AmsTraySensor(BambuAmsEntity, SensorEntity):
    """One slot of an AMS unit: its filament, and the spool's details as attributes."""

    def __init__(
        self, coordinator: BambuCoordinator, unit: AmsUnit, device: DeviceInfo, slot: int
    ) -> None:
        """Bind the sensor to a slot (0-based; shown as Tray 1-4)."""
        super().__init__(coordinator, TRAY, unit, device)
        self.slot = slot
        self._attr_unique_id = f"{coordinator.serial}_{tray_unique_suffix(unit.id, slot)}"
        self._attr_translation_placeholders = {"number": str(slot + 1)}

    @override
    def _refresh(self) -> tuple[Any, ...]:
        state = self.coordinator.state
        self._attr_native_value = _filament(state.tray_at(self.unit_id, self.slot))
        self._attr_extra_state_attributes = tray_attributes(state, self.unit_id, self.slot)
        return (self._attr_native_value, self._attr_extra_state_attributes)


class ExternalSpoolSensor(BambuEntity, SensorEntity):
    """An external spool (`vt_tray`, or one per nozzle in `vir_slot`) on the printer."""

    def __init__(
        self, coordinator: BambuCoordinator, description: SensorEntityDescription, spool: int
    ) -> None:
        """Bind the sensor to spool id 254 or 255."""
        super().__init__(coordinator, description)
        self.spool = spool
        self._attr_unique_id = f"{coordinator.serial}_{tray_unique_suffix(spool, 0)}"

    @override
    def _refresh(self) -> tuple[Any, ...]:
        state = self.coordinator.state
        self._attr_native_value = _filament(state.tray_at(self.spool, 0))
        self._attr_extra_state_attributes = tray_attributes(state, self.spool, 0)
        return (self._attr_native_value, self._attr_extra_state_attributes)


def location_attributes(state: PrinterState, location: tuple[int, int] | None) -> dict[str, Any]:
    """Where a filament is fed from: AMS unit number and tray, or an external spool."""
    if location is None:
        return {"ams": None, "tray": None, "external": False, "color": None}
    unit_id, slot = location
    tray = state.tray_at(unit_id, slot)
    external = unit_id in EXTERNAL_IDS
    return {
        "ams": None if external else unit_number(unit_id),
        "tray": None if external else slot + 1,
        "external": external,
        "color": tray.rgb if tray else None,
    }


class _LocationSensor(BambuEntity, SensorEntity):
    """Shows the tray at a location that can move (it reads, so is told about, that tray alone)."""

    def _current_location(self) -> tuple[int, int] | None:
        raise NotImplementedError

    @override
    def _refresh(self) -> tuple[Any, ...]:
        state = self.coordinator.state
        location = self._current_location()
        self._attr_native_value = _filament(state.tray_at(*location)) if location else None
        self._attr_extra_state_attributes = location_attributes(state, location)
        return (self._attr_native_value, self._attr_extra_state_attributes)


class ActiveTraySensor(_LocationSensor):
    """The filament being fed to the (active) nozzle, and where it comes from."""

    @override
    def _current_location(self) -> tuple[int, int] | None:
        return self.coordinator.state.active_location


class NozzleFilamentSensor(_LocationSensor):
    """The filament one nozzle of a dual-nozzle printer holds (`snow`)."""

    def __init__(
        self, coordinator: BambuCoordinator, description: SensorEntityDescription, nozzle: int
    ) -> None:
        """Bind the sensor to nozzle 0 (right) or 1 (left)."""
        super().__init__(coordinator, description)
        self.nozzle = nozzle

    @override
    def _current_location(self) -> tuple[int, int] | None:
        return self.coordinator.state.nozzle_location(self.nozzle)


ACTIVE_TRAY: Final = SensorEntityDescription(key="active_tray", translation_key="active_tray")
LEFT_NOZZLE_FILAMENT: Final = SensorEntityDescription(
    key="left_nozzle_filament", translation_key="left_nozzle_filament"
)
RIGHT_NOZZLE_FILAMENT: Final = SensorEntityDescription(
    key="right_nozzle_filament", translation_key="right_nozzle_filament"
)
EXTERNAL_SPOOLS: Final = {
    key: SensorEntityDescription(key=key, translation_key=key)
    for key in (EXTERNAL_SPOOL_KEY, f"{EXTERNAL_SPOOL_KEY}_left", f"{EXTERNAL_SPOOL_KEY}_right")
}
DESCRIPTIONS: Final[tuple[SensorEntityDescription, ...]] = (
    *UNIT_SENSORS,
    TRAY,
    ACTIVE_TRAY,
    LEFT_NOZZLE_FILAMENT,
    RIGHT_NOZZLE_FILAMENT,
    *EXTERNAL_SPOOLS.values(),
)
"""Every description this module uses (the translation and icon tests walk them)."""
