"""The print speed profile (silent, standard, sport, ludicrous) and the air duct mode."""

from __future__ import annotations

from typing import Any, Final, override

from homeassistant.components.select import SelectEntity, SelectEntityDescription
from homeassistant.const import EntityCategory
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .coordinator import BambuConfigEntry
from .entity import BambuControlEntity
from .printer.codes import SPEED_LEVELS
from .printer.models import has_airduct

PARALLEL_UPDATES = 1

# print_speed takes the level as a string: "1" silent ... "4" ludicrous.
LEVEL_BY_OPTION: Final = {option: str(level) for level, option in SPEED_LEVELS.items()}

SPEED_PROFILE: Final = SelectEntityDescription(
    key="speed_profile",
    translation_key="speed_profile",
    options=list(LEVEL_BY_OPTION),
)


# `set_airduct` mode ids (Bambu Studio's names); others the printer may list are not offered.
AIRDUCT_MODES: Final = {0: "cooling", 1: "heating"}
MODE_ID_BY_OPTION: Final = {option: mode for mode, option in AIRDUCT_MODES.items()}

AIRDUCT_MODE: Final = SelectEntityDescription(
    key="airduct_mode",
    translation_key="airduct_mode",
    entity_category=EntityCategory.CONFIG,
    options=list(MODE_ID_BY_OPTION),
)


async def async_setup_entry(
    hass: HomeAssistant,
    entry: BambuConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add the speed profile select."""
    coordinator = entry.runtime_data
    entities: list[SelectEntity] = [BambuSpeedProfileSelect(coordinator, SPEED_PROFILE)]
    state = coordinator.state
    if has_airduct(state.model) and state.airduct_mode is not None:
        entities.append(BambuAirductSelect(coordinator, AIRDUCT_MODE))
    async_add_entities(entities)


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


class BambuAirductSelect(BambuControlEntity, SelectEntity):
    """The air duct mode (cooling or heating) as reported; the modes the printer lists."""

    @override
    def _refresh(self) -> tuple[Any, ...]:
        state = self.coordinator.state
        offered = [AIRDUCT_MODES[mode] for mode in state.airduct_modes if mode in AIRDUCT_MODES]
        self._attr_options = offered or list(MODE_ID_BY_OPTION)
        mode = state.airduct_mode
        self._attr_current_option = None if mode is None else AIRDUCT_MODES.get(mode)
        return (self._attr_current_option, tuple(self._attr_options))

    @override
    async def async_select_option(self, option: str) -> None:
        await self.coordinator.async_send(
            "print", "set_airduct", {"modeId": MODE_ID_BY_OPTION[option], "submode": -1}
        )
