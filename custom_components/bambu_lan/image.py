"""The current job's plate preview, from its 3MF."""

from __future__ import annotations

from typing import Any, Final, override

from homeassistant.components.image import ImageEntity, ImageEntityDescription
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback
from homeassistant.util import dt as dt_util

from .coordinator import BambuConfigEntry, BambuCoordinator
from .entity import BambuEntity

PARALLEL_UPDATES = 0

PREVIEW: Final = ImageEntityDescription(key="job_preview", translation_key="job_preview")


async def async_setup_entry(
    hass: HomeAssistant,
    entry: BambuConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add the plate preview."""
    async_add_entities([BambuJobPreview(hass, entry.runtime_data)])


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
