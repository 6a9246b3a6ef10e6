"""Binary sensors: connection, printing, problem and door."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, override

from homeassistant.components.binary_sensor import (
    BinarySensorEntity,
    BinarySensorEntityDescription,
)
from homeassistant.components.binary_sensor.const import BinarySensorDeviceClass
from homeassistant.const import EntityCategory
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .coordinator import BambuConfigEntry
from .entity import BambuEntity
from .printer.models import has_door_sensor
from .printer.state import PrinterState

PARALLEL_UPDATES = 0

# A job is in progress (a paused job still occupies the printer).
PRINTING_STATES: Final = frozenset({"PREPARE", "RUNNING", "PAUSE", "SLICING"})


@dataclass(frozen=True, kw_only=True)
class BambuBinarySensorEntityDescription(BinarySensorEntityDescription):
    """A printer binary sensor: how to read it, and on which printers it exists."""

    value_fn: Callable[[PrinterState], bool | None]
    exists_fn: Callable[[PrinterState], bool] = lambda _: True


def _printing(state: PrinterState) -> bool | None:
    gcode_state = state.gcode_state
    return None if gcode_state is None else gcode_state in PRINTING_STATES


def _problem(state: PrinterState) -> bool | None:
    if state.hms_codes:
        return True
    error = state.print_error
    return None if error is None else error != 0


BINARY_SENSORS: Final[tuple[BambuBinarySensorEntityDescription, ...]] = (
    BambuBinarySensorEntityDescription(
        key="printing",
        translation_key="printing",
        device_class=BinarySensorDeviceClass.RUNNING,
        value_fn=_printing,
    ),
    BambuBinarySensorEntityDescription(
        key="problem",
        translation_key="problem",
        device_class=BinarySensorDeviceClass.PROBLEM,
        value_fn=_problem,
    ),
    BambuBinarySensorEntityDescription(
        key="door",
        translation_key="door",
        device_class=BinarySensorDeviceClass.DOOR,
        value_fn=lambda state: state.door_open,
        exists_fn=lambda state: has_door_sensor(state.model),
    ),
)

CONNECTED: Final = BinarySensorEntityDescription(
    key="connected",
    translation_key="connected",
    device_class=BinarySensorDeviceClass.CONNECTIVITY,
    entity_category=EntityCategory.DIAGNOSTIC,
)


async def async_setup_entry(
    hass: HomeAssistant,
    entry: BambuConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add the binary sensors this printer model has."""
    coordinator = entry.runtime_data
    entities: list[BinarySensorEntity] = [
        BambuBinarySensor(coordinator, description)
        for description in BINARY_SENSORS
        if description.exists_fn(coordinator.state)
    ]
    entities.append(BambuConnectedSensor(coordinator, CONNECTED))
    async_add_entities(entities)


class BambuBinarySensor(BambuEntity, BinarySensorEntity):
    """A binary sensor read from the printer's state by its description."""

    entity_description: BambuBinarySensorEntityDescription

    @override
    def _refresh(self) -> tuple[Any, ...]:
        self._attr_is_on = self.entity_description.value_fn(self.coordinator.state)
        return (self._attr_is_on,)


class BambuConnectedSensor(BambuEntity, BinarySensorEntity):
    """Whether the printer is connected; available even (especially) while it is not."""

    @property
    @override
    def available(self) -> bool:
        return True

    @override
    def _refresh(self) -> tuple[Any, ...]:
        self._attr_is_on = self.coordinator.last_update_success
        return (self._attr_is_on,)
