"""The print speed profile: silent, standard, sport or ludicrous."""

from __future__ import annotations

from typing import Any, Final, override

from homeassistant.components.select import SelectEntity, SelectEntityDescription
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .coordinator import BambuConfigEntry
from .entity import BambuControlEntity
from .printer.codes import SPEED_LEVELS

PARALLEL_UPDATES = 1

# print_speed takes the level as a string: "1" silent ... "4" ludicrous.
LEVEL_BY_OPTION: Final = {option: str(level) for level, option in SPEED_LEVELS.items()}

SPEED_PROFILE: Final = SelectEntityDescription(
    key="speed_profile",
    translation_key="speed_profile",
    options=list(LEVEL_BY_OPTION),
)


async def async_setup_entry(
    hass: HomeAssistant,
    entry: BambuConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add the speed profile select."""
    async_add_entities([BambuSpeedProfileSelect(entry.runtime_data, SPEED_PROFILE)])


class BambuSpeedProfileSelect(BambuControlEntity, SelectEntity):
    """Shows the reported speed profile; choosing one waits for the printer to accept it."""

    @override
    def _refresh(self) -> tuple[Any, ...]:
        self._attr_current_option = SPEED_LEVELS.get(self.coordinator.state.speed_level or 0)
        return (self._attr_current_option,)

    @override
    async def async_select_option(self, option: str) -> None:
        await self.coordinator.async_send(
            "print", "print_speed", {"param": LEVEL_BY_OPTION[option]}
        )
