"""Job control buttons: pause, resume and stop, each available only when it makes sense."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, override

from homeassistant.components.button import ButtonEntity, ButtonEntityDescription
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .coordinator import BambuConfigEntry
from .entity import BambuControlEntity
from .printer.state import PrinterState

PARALLEL_UPDATES = 1


@dataclass(frozen=True, kw_only=True)
class BambuButtonEntityDescription(ButtonEntityDescription):
    """A job command and the printer states in which it applies."""

    command: str
    allowed_fn: Callable[[PrinterState], bool]


def _in_states(*states: str) -> Callable[[PrinterState], bool]:
    allowed = frozenset(states)
    return lambda state: state.gcode_state in allowed


BUTTONS: Final[tuple[BambuButtonEntityDescription, ...]] = (
    BambuButtonEntityDescription(
        key="pause",
        translation_key="pause",
        command="pause",
        allowed_fn=_in_states("PREPARE", "RUNNING"),
    ),
    BambuButtonEntityDescription(
        key="resume",
        translation_key="resume",
        command="resume",
        allowed_fn=_in_states("PAUSE"),
    ),
    BambuButtonEntityDescription(
        key="stop",
        translation_key="stop",
        command="stop",
        allowed_fn=_in_states("PREPARE", "RUNNING", "PAUSE"),
    ),
)


async def async_setup_entry(
    hass: HomeAssistant,
    entry: BambuConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add the job control buttons."""
    coordinator = entry.runtime_data
    async_add_entities(BambuButton(coordinator, description) for description in BUTTONS)


class BambuButton(BambuControlEntity, ButtonEntity):
    """Sends one job command and waits for the printer to acknowledge it."""

    entity_description: BambuButtonEntityDescription

    @property
    @override
    def available(self) -> bool:
        return super().available and self.entity_description.allowed_fn(self.coordinator.state)

    @override
    def _refresh(self) -> tuple[Any, ...]:
        # Availability (part of what the base compares) is all a button shows.
        return ()

    @override
    async def async_press(self) -> None:
        await self.coordinator.async_send("print", self.entity_description.command, {"param": ""})
