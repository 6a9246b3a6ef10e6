"""Buttons: pause, resume and stop (each available only when it makes sense), silence the
buzzer (H2D), and refresh the whole state; the AMS ones are in `ams_button.py`."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, override

from homeassistant.components.button import ButtonEntity, ButtonEntityDescription
from homeassistant.const import EntityCategory
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .ams_button import async_setup_ams_buttons
from .coordinator import BambuConfigEntry
from .entity import BambuControlEntity, BambuEntity
from .printer.models import has_buzzer
from .printer.state import PrinterState

PARALLEL_UPDATES = 1


@dataclass(frozen=True, kw_only=True)
class BambuButtonEntityDescription(ButtonEntityDescription):
    """A job command and the printer states in which it applies."""

    command: str
    allowed_fn: Callable[[PrinterState], bool]
    params: Mapping[str, Any] = field(default_factory=lambda: {"param": ""})
    exists_fn: Callable[[PrinterState], bool] = lambda _: True


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
    BambuButtonEntityDescription(
        key="silence_buzzer",
        translation_key="silence_buzzer",
        command="buzzer_ctrl",
        params={"mode": 0, "reason": ""},  # 0: silent
        allowed_fn=lambda _: True,
        exists_fn=lambda state: has_buzzer(state.model),
    ),
)

REFRESH: Final = ButtonEntityDescription(
    key="refresh", translation_key="refresh", entity_category=EntityCategory.DIAGNOSTIC
)


async def async_setup_entry(
    hass: HomeAssistant,
    entry: BambuConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add the job control buttons."""
    coordinator = entry.runtime_data
    entities: list[ButtonEntity] = [
        BambuButton(coordinator, description)
        for description in BUTTONS
        if description.exists_fn(coordinator.state)
    ]
    entities.append(BambuRefreshButton(coordinator, REFRESH))
    async_add_entities(entities)
    async_setup_ams_buttons(entry, async_add_entities)


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
        description = self.entity_description
        await self.coordinator.async_send("print", description.command, dict(description.params))


class BambuRefreshButton(BambuEntity, ButtonEntity):
    """Asks the printer for its whole state (pushall).

    The printer answers with a full report, not an acknowledgement. P1 printers lag when asked
    too often, so a press within five minutes of the last pushall is sent when that time is up.
    Reading the state is no command, so signed-command firmware allows it.
    """

    @override
    async def async_press(self) -> None:
        self.coordinator.request_full_state()
