"""Images: the current job's plate preview, and "Last print", a camera frame per ended print.

The plate preview is the thumbnail the slicer stored in the job's 3MF.

"Last print" lets a notification show how the print ended (the image entity's picture); its
state is the time the photo was taken. Exactly one photo per ended print: the event tracker
reports each end once (not again after a reconnect), and a capture already running absorbs a
repeat.
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

from .coordinator import BambuConfigEntry, BambuCoordinator
from .entity import BambuEntity
from .printer.events import PRINT, PRINT_CANCELLED, PRINT_FAILED, PRINT_FINISHED, PrinterEvent

_LOGGER = logging.getLogger(__name__)

PARALLEL_UPDATES = 0

PREVIEW: Final = ImageEntityDescription(key="job_preview", translation_key="job_preview")
LAST_PRINT: Final = ImageEntityDescription(key="last_print", translation_key="last_print")
ENDED: Final = frozenset({PRINT_FINISHED, PRINT_FAILED, PRINT_CANCELLED})


async def async_setup_entry(
    hass: HomeAssistant,
    entry: BambuConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add the plate preview, and the finish photo for printers with a camera."""
    coordinator = entry.runtime_data
    entities: list[ImageEntity] = [BambuJobPreview(hass, coordinator)]
    if coordinator.camera.kind is not None:
        entities.append(BambuLastPrintImage(hass, coordinator))
    async_add_entities(entities)


class BambuJobPreview(BambuEntity, ImageEntity):
    """The plate thumbnail the slicer stored in the job's 3MF (PNG)."""

    _attr_content_type = "image/png"

    def __init__(self, hass: HomeAssistant, coordinator: BambuCoordinator) -> None:
        """Bind to the printer; the image comes and goes with the job's details."""
        BambuEntity.__init__(self, coordinator, PREVIEW)
        ImageEntity.__init__(self, hass)
        self._image: bytes | None = None

    @override
    def _refresh(self) -> tuple[Any, ...]:
        job = self.coordinator.job.details
        image = None if job is None else job.thumbnail
        if image != self._image:
            self._image = image
            self._attr_image_last_updated = dt_util.utcnow() if image else None
        return (self._image is not None, self._attr_image_last_updated)

    @override
    async def async_image(self) -> bytes | None:
        return self._image


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
            image = await self.coordinator.camera.async_snapshot()
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
