"""Part cooling, auxiliary and chamber fans, with the printer's own 15 speed steps.

The printer reports each fan in 15 steps (0-15) and takes `M106 P<fan> S<0-255>`; 255 / 15 is
exactly 17, so step n is sent as S = 17 n and comes back as step n. Home Assistant offers the
same 15 steps (`speed_count`), so a percentage never promises more precision than the fan has.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
import math
from typing import Any, Final, override

from homeassistant.components.fan import FanEntity, FanEntityDescription
from homeassistant.components.fan.const import FanEntityFeature
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback
from homeassistant.util.percentage import percentage_to_ranged_value

from .coordinator import BambuConfigEntry
from .entity import BambuControlEntity
from .printer.models import has_aux_fan, has_chamber_fan
from .printer.state import PrinterState

PARALLEL_UPDATES = 1

FAN_STEPS: Final = 15
PWM_PER_STEP: Final = 255 // FAN_STEPS  # 17


@dataclass(frozen=True, kw_only=True)
class BambuFanEntityDescription(FanEntityDescription):
    """A fan: how to read its speed, its `M106 P` index, and which printers have it."""

    value_fn: Callable[[PrinterState], int | None]
    index: int
    exists_fn: Callable[[PrinterState], bool] = lambda _: True


FANS: Final[tuple[BambuFanEntityDescription, ...]] = (
    BambuFanEntityDescription(
        key="part_fan",
        translation_key="part_fan",
        index=1,
        value_fn=lambda state: state.part_fan_percent,
    ),
    BambuFanEntityDescription(
        key="aux_fan",
        translation_key="aux_fan",
        index=2,
        value_fn=lambda state: state.aux_fan_percent,
        exists_fn=lambda state: has_aux_fan(state.model),
    ),
    BambuFanEntityDescription(
        key="chamber_fan",
        translation_key="chamber_fan",
        index=3,
        value_fn=lambda state: state.chamber_fan_percent,
        exists_fn=lambda state: has_chamber_fan(state.model),
    ),
)


def percentage_to_pwm(percentage: int) -> int:
    """The `M106 S` value of the fan step that serves `percentage` (0 turns the fan off)."""
    if percentage <= 0:
        return 0
    step = math.ceil(percentage_to_ranged_value((1, FAN_STEPS), percentage))
    return min(FAN_STEPS, step) * PWM_PER_STEP


async def async_setup_entry(
    hass: HomeAssistant,
    entry: BambuConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add the fans this printer model has."""
    coordinator = entry.runtime_data
    async_add_entities(
        BambuFan(coordinator, description)
        for description in FANS
        if description.exists_fn(coordinator.state)
    )


class BambuFan(BambuControlEntity, FanEntity):
    """A fan whose speed is what the printer reports; a new speed is sent as `M106`."""

    entity_description: BambuFanEntityDescription
    _attr_speed_count = FAN_STEPS
    _attr_supported_features = (
        FanEntityFeature.SET_SPEED | FanEntityFeature.TURN_ON | FanEntityFeature.TURN_OFF
    )

    @override
    def _refresh(self) -> tuple[Any, ...]:
        self._attr_percentage = self.entity_description.value_fn(self.coordinator.state)
        return (self._attr_percentage,)

    @override
    async def async_set_percentage(self, percentage: int) -> None:
        pwm = percentage_to_pwm(percentage)
        gcode = f"M106 P{self.entity_description.index} S{pwm}\n"
        await self.coordinator.async_send("print", "gcode_line", {"param": gcode})

    @override
    async def async_turn_on(
        self, percentage: int | None = None, preset_mode: str | None = None, **kwargs: Any
    ) -> None:
        await self.async_set_percentage(100 if percentage is None else percentage)

    @override
    async def async_turn_off(self, **kwargs: Any) -> None:
        await self.async_set_percentage(0)
