"""Nozzle, bed and chamber target temperatures, set with G-code."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, override

from homeassistant.components.number import (
    DOMAIN as NUMBER_DOMAIN,
    NumberDeviceClass,
    NumberEntity,
    NumberEntityDescription,
    NumberMode,
)
from homeassistant.const import UnitOfTemperature
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .const import LEFT_NOZZLE, RIGHT_NOZZLE
from .coordinator import BambuConfigEntry
from .entity import BambuControlEntity, async_remove_stale_entities
from .printer.models import has_chamber_heater
from .printer.state import PrinterState

PARALLEL_UPDATES = 1


@dataclass(frozen=True, kw_only=True)
class BambuNumberEntityDescription(NumberEntityDescription):
    """A target temperature: how to read it, the G-code that sets it, where it exists."""

    value_fn: Callable[[PrinterState], float | None]
    gcode: str
    """G-code with a `{value}` placeholder for the whole-degree target."""
    exists_fn: Callable[[PrinterState], bool] = lambda _: True


def _nozzle_target(nozzle_id: int) -> Callable[[PrinterState], float | None]:
    def read(state: PrinterState) -> float | None:
        nozzle = next((nozzle for nozzle in state.nozzles if nozzle.id == nozzle_id), None)
        return nozzle.target if nozzle else None

    return read


def _nozzle_number(key: str, **kwargs: Any) -> BambuNumberEntityDescription:
    return BambuNumberEntityDescription(
        key=key,
        translation_key=key,
        device_class=NumberDeviceClass.TEMPERATURE,
        native_unit_of_measurement=UnitOfTemperature.CELSIUS,
        native_min_value=0,
        native_max_value=300,
        native_step=1,
        mode=NumberMode.BOX,
        **kwargs,
    )


NUMBERS: Final[tuple[BambuNumberEntityDescription, ...]] = (
    _nozzle_number(
        "nozzle_target_temperature",
        value_fn=lambda state: state.nozzle_target,
        gcode="M104 S{value}\n",
        exists_fn=lambda state: not state.is_dual_nozzle,
    ),
    # Dual nozzle: one target per extruder, `T` naming the tool as the printer numbers it in
    # device.extruder.info (T0 right, T1 left), whichever nozzle is active.
    _nozzle_number(
        "left_nozzle_target_temperature",
        value_fn=_nozzle_target(LEFT_NOZZLE),
        gcode=f"M104 S{{value}} T{LEFT_NOZZLE}\n",
        exists_fn=lambda state: state.is_dual_nozzle,
    ),
    _nozzle_number(
        "right_nozzle_target_temperature",
        value_fn=_nozzle_target(RIGHT_NOZZLE),
        gcode=f"M104 S{{value}} T{RIGHT_NOZZLE}\n",
        exists_fn=lambda state: state.is_dual_nozzle,
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
    """Add the target temperature controls this printer has."""
    coordinator = entry.runtime_data
    state = coordinator.state
    async_add_entities(
        BambuTargetTemperature(coordinator, description)
        for description in NUMBERS
        if description.exists_fn(state)
    )
    absent = {description.key for description in NUMBERS if not description.exists_fn(state)}
    async_remove_stale_entities(hass, coordinator, NUMBER_DOMAIN, absent)


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
