"""Nozzle, bed and chamber target temperatures, set with G-code."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, override

from homeassistant.components.number import (
    NumberDeviceClass,
    NumberEntity,
    NumberEntityDescription,
    NumberMode,
)
from homeassistant.const import UnitOfTemperature
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .coordinator import BambuConfigEntry
from .entity import BambuControlEntity
from .printer.models import has_chamber_heater
from .printer.state import PrinterState

PARALLEL_UPDATES = 1


@dataclass(frozen=True, kw_only=True)
class BambuNumberEntityDescription(NumberEntityDescription):
    """A target temperature: how to read it and the G-code that sets it."""

    value_fn: Callable[[PrinterState], float | None]
    gcode: str
    """G-code with a `{value}` placeholder for the whole-degree target."""
    exists_fn: Callable[[PrinterState], bool] = lambda _: True


NUMBERS: Final[tuple[BambuNumberEntityDescription, ...]] = (
    BambuNumberEntityDescription(
        key="nozzle_target_temperature",
        translation_key="nozzle_target_temperature",
        device_class=NumberDeviceClass.TEMPERATURE,
        native_unit_of_measurement=UnitOfTemperature.CELSIUS,
        native_min_value=0,
        native_max_value=300,
        native_step=1,
        mode=NumberMode.BOX,
        value_fn=lambda state: state.nozzle_target,
        gcode="M104 S{value}\n",
    ),
    BambuNumberEntityDescription(
        key="bed_target_temperature",
        translation_key="bed_target_temperature",
        device_class=NumberDeviceClass.TEMPERATURE,
        native_unit_of_measurement=UnitOfTemperature.CELSIUS,
        native_min_value=0,
        native_max_value=120,
        native_step=1,
        mode=NumberMode.BOX,
        value_fn=lambda state: state.bed_target,
        gcode="M140 S{value}\n",
    ),
    BambuNumberEntityDescription(
        key="chamber_target_temperature",
        translation_key="chamber_target_temperature",
        device_class=NumberDeviceClass.TEMPERATURE,
        native_unit_of_measurement=UnitOfTemperature.CELSIUS,
        native_min_value=0,
        native_max_value=65,  # the H2 family's limit; the X1E firmware caps at 60 itself
        native_step=1,
        mode=NumberMode.BOX,
        value_fn=lambda state: state.chamber_target,
        gcode="M141 S{value}\n",
        exists_fn=lambda state: has_chamber_heater(state.model),
    ),
)


async def async_setup_entry(
    hass: HomeAssistant,
    entry: BambuConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add the target temperature controls."""
    coordinator = entry.runtime_data
    async_add_entities(
        BambuTargetTemperature(coordinator, description)
        for description in NUMBERS
        if description.exists_fn(coordinator.state)
    )


class BambuTargetTemperature(BambuControlEntity, NumberEntity):
    """Shows the reported target; a new one is sent as G-code and confirmed by the next report."""

    entity_description: BambuNumberEntityDescription

    @override
    def _refresh(self) -> tuple[Any, ...]:
        self._attr_native_value = self.entity_description.value_fn(self.coordinator.state)
        return (self._attr_native_value,)

    @override
    async def async_set_native_value(self, value: float) -> None:
        gcode = self.entity_description.gcode.format(value=round(value))
        await self.coordinator.async_send("print", "gcode_line", {"param": gcode})
