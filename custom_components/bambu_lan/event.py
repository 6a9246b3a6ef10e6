"""Event entities: print lifecycle, HMS errors appearing and clearing, filament run-out.

The coordinator derives the events from state transitions (`printer/events.py`); these entities
only show them, so automations can trigger on a print finishing or an error appearing.
"""

from __future__ import annotations

from typing import Any, Final, override

from homeassistant.components.event import EventEntity, EventEntityDescription
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .coordinator import BambuConfigEntry
from .entity import BambuEntity
from .printer.events import (
    FILAMENT,
    FILAMENT_EVENT_TYPES,
    HMS,
    HMS_EVENT_TYPES,
    PRINT,
    PRINT_EVENT_TYPES,
    PrinterEvent,
)

PARALLEL_UPDATES = 0

EVENTS: Final[tuple[EventEntityDescription, ...]] = (
    EventEntityDescription(key=PRINT, translation_key=PRINT, event_types=list(PRINT_EVENT_TYPES)),
    EventEntityDescription(key=HMS, translation_key=HMS, event_types=list(HMS_EVENT_TYPES)),
    EventEntityDescription(
        key=FILAMENT, translation_key=FILAMENT, event_types=list(FILAMENT_EVENT_TYPES)
    ),
)


async def async_setup_entry(
    hass: HomeAssistant,
    entry: BambuConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add the printer's event entities."""
    coordinator = entry.runtime_data
    async_add_entities(BambuEvent(coordinator, description) for description in EVENTS)


class BambuEvent(BambuEntity, EventEntity):
    """Fires the coordinator's events of one channel (print, hms or filament)."""

    @override
    async def async_added_to_hass(self) -> None:
        await super().async_added_to_hass()
        self.async_on_remove(self.coordinator.async_add_event_listener(self._handle_event))

    @callback
    def _handle_event(self, event: PrinterEvent) -> None:
        if event.channel != self.entity_description.key:
            return
        self._trigger_event(event.type, event.data)
        self.async_write_ha_state()

    @override
    def _refresh(self) -> tuple[Any, ...]:
        # Only availability follows the coordinator; the state is the last event.
        return ()
