"""Print options as switches, where the printer reports them: AI detections, first-layer
inspection, auto-recovery after step loss, and the prompt sound (A1 and H2D)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, override

from homeassistant.components.switch import SwitchEntity, SwitchEntityDescription
from homeassistant.const import EntityCategory
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .coordinator import BambuConfigEntry
from .entity import BambuControlEntity
from .printer.models import has_prompt_sound
from .printer.state import PrinterState

PARALLEL_UPDATES = 1


@dataclass(frozen=True, kw_only=True)
class BambuSwitchEntityDescription(SwitchEntityDescription):
    """A print option: how to read it, the command that sets it, and where it exists."""

    value_fn: Callable[[PrinterState], bool | None]
    command_fn: Callable[[bool], tuple[str, str, dict[str, Any]]]
    """(kind, command, params) that set the option to the given value."""
    exists_fn: Callable[[PrinterState], bool]


def _xcam(module: str) -> BambuSwitchEntityDescription:
    """An AI detection of the camera module (`xcam.<module>`, set with xcam_control_set)."""
    return BambuSwitchEntityDescription(
        key=module,
        translation_key=module,
        entity_category=EntityCategory.CONFIG,
        value_fn=lambda state: state.xcam_option(module),
        command_fn=lambda on: (
            "xcam",
            "xcam_control_set",
            # print_halt: a detection pauses the print (what the slicer's switch does).
            {"module_name": module, "control": on, "enable": on, "print_halt": True},
        ),
        exists_fn=lambda state: state.xcam_option(module) is not None,
    )


def _print_option(option: str) -> Callable[[bool], tuple[str, str, dict[str, Any]]]:
    return lambda on: ("print", "print_option", {option: on})


SWITCHES: Final[tuple[BambuSwitchEntityDescription, ...]] = (
    _xcam("spaghetti_detector"),
    _xcam("printing_monitor"),
    _xcam("buildplate_marker_detector"),
    _xcam("first_layer_inspector"),
    BambuSwitchEntityDescription(
        key="auto_recovery",
        translation_key="auto_recovery",
        entity_category=EntityCategory.CONFIG,
        value_fn=lambda state: state.auto_recovery,
        command_fn=_print_option("auto_recovery"),
        exists_fn=lambda state: state.auto_recovery is not None,
    ),
    BambuSwitchEntityDescription(
        key="prompt_sound",
        translation_key="prompt_sound",
        entity_category=EntityCategory.CONFIG,
        value_fn=lambda state: state.prompt_sound,
        command_fn=_print_option("sound_enable"),
        exists_fn=lambda state: has_prompt_sound(state.model) and state.prompt_sound is not None,
    ),
)


async def async_setup_entry(
    hass: HomeAssistant,
    entry: BambuConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add the print options this printer reports."""
    coordinator = entry.runtime_data
    async_add_entities(
        BambuSwitch(coordinator, description)
        for description in SWITCHES
        if description.exists_fn(coordinator.state)
    )


class BambuSwitch(BambuControlEntity, SwitchEntity):
    """Shows the option as reported; switching waits for the printer's acknowledgement."""

    entity_description: BambuSwitchEntityDescription

    @override
    def _refresh(self) -> tuple[Any, ...]:
        self._attr_is_on = self.entity_description.value_fn(self.coordinator.state)
        return (self._attr_is_on,)

    @override
    async def async_turn_on(self, **kwargs: Any) -> None:
        await self._async_set(True)

    @override
    async def async_turn_off(self, **kwargs: Any) -> None:
        await self._async_set(False)

    async def _async_set(self, on: bool) -> None:
        kind, command, params = self.entity_description.command_fn(on)
        await self.coordinator.async_send(kind, command, params)
