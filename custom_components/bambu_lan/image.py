"""Image: "Last print", one camera frame taken when a print ends.

A notification can show how the print ended (the image entity's picture), and the entity's state
is the time the photo was taken. Exactly one photo per ended print: the event tracker reports
each end once (not again after a reconnect), and a capture already running absorbs a repeat.
"""

from __future__ import annotations

from datetime import datetime
import logging
from typing import Any, Final, override

from homeassistant.components.image import ImageEntity, ImageEntityDescription
from homeassistant.core import HomeAssistant, callback
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback
from homeassistant.util import dt as dt_util

from .camera import async_take_frame
from .coordinator import BambuConfigEntry, BambuCoordinator
from .entity import BambuEntity
from .printer.events import PRINT, PRINT_CANCELLED, PRINT_FAILED, PRINT_FINISHED, PrinterEvent
from .printer.models import camera_kind

_LOGGER = logging.getLogger(__name__)

PARALLEL_UPDATES = 0

ENDED: Final = frozenset({PRINT_FINISHED, PRINT_FAILED, PRINT_CANCELLED})
LAST_PRINT: Final = ImageEntityDescription(key="last_print", translation_key="last_print")


async def async_setup_entry(
    hass: HomeAssistant,
    entry: BambuConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add the finish photo for printers with a camera."""
    coordinator = entry.runtime_data
    if camera_kind(coordinator.state.model) is not None:
        async_add_entities([BambuLastPrintImage(hass, coordinator)])


class BambuLastPrintImage(BambuEntity, ImageEntity):
    """The frame taken when the last print ended."""

    _attr_content_type = "image/jpeg"

    def __init__(self, hass: HomeAssistant, coordinator: BambuCoordinator) -> None:
        """No picture until a print ends while Home Assistant runs."""
        BambuEntity.__init__(self, coordinator, LAST_PRINT)
        ImageEntity.__init__(self, hass)
        self._image: bytes | None = None
        self._capturing = False
        self._attr_extra_state_attributes: dict[str, Any] = {}
        self.captures = 0

    @override
    async def async_added_to_hass(self) -> None:
        await super().async_added_to_hass()
        self.async_on_remove(self.coordinator.async_add_event_listener(self._on_event))

    @property
    @override
    def available(self) -> bool:
        # The photo stays viewable while the printer is offline.
        return True

    @override
    async def async_image(self) -> bytes | None:
        return self._image

    @callback
    def _on_event(self, event: PrinterEvent) -> None:
        if event.channel != PRINT or event.type not in ENDED or self._capturing:
            return
        self._capturing = True
        self.coordinator.config_entry.async_create_background_task(
            self.hass, self._capture(event), f"bambu_lan finish photo {self.coordinator.serial}"
        )

    async def _capture(self, event: PrinterEvent) -> None:
        try:
            image = await async_take_frame(self.hass, self.coordinator)
        except HomeAssistantError as err:
            _LOGGER.info("No finish photo of the printer at %s: %s", self.coordinator.host, err)
            return
        finally:
            self._capturing = False
        taken: datetime = dt_util.utcnow()
        self._image = image
        self.captures += 1
        self._attr_image_last_updated = taken
        self._attr_extra_state_attributes = {
            "result": event.type,
            "job_name": event.data.get("job_name"),
        }
        self.async_write_ha_state()
