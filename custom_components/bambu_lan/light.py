"""The chamber light (state as the printer reports it) and the H2D's heatbed light."""

from __future__ import annotations

from typing import Any, Final, override

from homeassistant.components.light import LightEntity, LightEntityDescription
from homeassistant.components.light.const import ColorMode
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .coordinator import BambuConfigEntry
from .entity import BambuEntity
from .printer.models import has_heatbed_light

PARALLEL_UPDATES = 1

CHAMBER_LIGHT: Final = "chamber_light"
# H2-series printers have a second chamber light; the slicer switches both together.
CHAMBER_LIGHT_2: Final = "chamber_light2"

HEATBED_LIGHT: Final = "heatbed_light"

DESCRIPTION: Final = LightEntityDescription(key=CHAMBER_LIGHT, translation_key=CHAMBER_LIGHT)
HEATBED_DESCRIPTION: Final = LightEntityDescription(
    key=HEATBED_LIGHT, translation_key=HEATBED_LIGHT
)


def ledctrl(node: str, mode: str) -> dict[str, Any]:
    """The `ledctrl` parameters that switch one light node."""
    return {
        "led_node": node,
        "led_mode": mode,
        # The firmware wants the blink timing even for plain on/off.
        "led_on_time": 500,
        "led_off_time": 500,
        "loop_times": 0,
        "interval_time": 0,
    }


async def async_setup_entry(
    hass: HomeAssistant,
    entry: BambuConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add the chamber light if the printer reports one."""
    coordinator = entry.runtime_data
    entities: list[LightEntity] = []
    if CHAMBER_LIGHT in coordinator.state.lights:
        entities.append(BambuChamberLight(coordinator, DESCRIPTION))
    if has_heatbed_light(coordinator.state.model):
        entities.append(BambuHeatbedLight(coordinator, HEATBED_DESCRIPTION))
    async_add_entities(entities)


class BambuChamberLight(BambuEntity, LightEntity):
    """The chamber light; its state changes only when the printer's lights report says so.

    Unlike the other controls it stays available on firmware that wants signed commands:
    those printers still accept the light command unsigned.
    """

    _attr_color_mode = ColorMode.ONOFF
    _attr_supported_color_modes = {ColorMode.ONOFF}

    @override
    def _refresh(self) -> tuple[Any, ...]:
        self._attr_is_on = self.coordinator.state.chamber_light_on
        return (self._attr_is_on,)

    @override
    async def async_turn_on(self, **kwargs: Any) -> None:
        await self._async_set("on")

    @override
    async def async_turn_off(self, **kwargs: Any) -> None:
        await self._async_set("off")

    async def _async_set(self, mode: str) -> None:
        nodes = [CHAMBER_LIGHT]
        if CHAMBER_LIGHT_2 in self.coordinator.state.lights:
            nodes.append(CHAMBER_LIGHT_2)
        for node in nodes:
            await self.coordinator.async_send("system", "ledctrl", ledctrl(node, mode))


class BambuHeatbedLight(BambuEntity, LightEntity):
    """The H2D's heatbed light. The printer never reports it, so the state shown is the last one
    the printer acknowledged (assumed), unknown until then."""

    _attr_assumed_state = True
    _attr_color_mode = ColorMode.ONOFF
    _attr_supported_color_modes = {ColorMode.ONOFF}
    _attr_is_on: bool | None = None

    @override
    def _refresh(self) -> tuple[Any, ...]:
        return (self._attr_is_on,)

    @override
    async def async_turn_on(self, **kwargs: Any) -> None:
        await self._async_set(True)

    @override
    async def async_turn_off(self, **kwargs: Any) -> None:
        await self._async_set(False)

    async def _async_set(self, on: bool) -> None:
        await self.coordinator.async_send(
            "system", "ledctrl", ledctrl(HEATBED_LIGHT, "on" if on else "off")
        )
        self._attr_is_on = on
        self._written = self._evaluate()
        self.async_write_ha_state()
