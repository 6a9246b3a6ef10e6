"""Camera: the printer's live view.

P1, A1 and A2L serve JPEG frames on port 6000 (`printer/camera.py`): snapshots and an MJPEG
stream come from one shared upstream connection that opens on demand and closes when idle.

X1, P2S, H2 and X2D serve RTSPS on port 322. Home Assistant's stream component gets the URL of
the integration's local relay (`printer/rtsp_relay.py`), which verifies the printer and holds
the access code; snapshots are one ffmpeg frame through the same relay, cached briefly.
"""

from __future__ import annotations

import logging
import time
from typing import Final, override

from aiohttp import web
from homeassistant.components.camera import Camera, CameraEntityDescription
from homeassistant.components.camera.const import CameraEntityFeature
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .coordinator import BambuConfigEntry, BambuCoordinator
from .entity import BambuEntity
from .printer.camera import CameraError, JpegCamera
from .printer.models import CameraKind
from .printer.tls import PrinterTLSError

_LOGGER = logging.getLogger(__name__)

PARALLEL_UPDATES = 0

# A dashboard refreshes camera pictures every 10 s; one ffmpeg run serves a few of them.
SNAPSHOT_CACHE: Final = 5.0
_BOUNDARY: Final = "frameboundary"

CAMERA_DESCRIPTION: Final = CameraEntityDescription(key="camera", translation_key="camera")


async def async_setup_entry(
    hass: HomeAssistant,
    entry: BambuConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add the camera the model has (none for an unknown model)."""
    coordinator = entry.runtime_data
    kind = coordinator.camera.kind
    if kind is CameraKind.JPEG:
        async_add_entities([BambuJpegCamera(coordinator)])
    elif kind is CameraKind.RTSP:
        async_add_entities([BambuRtspCamera(coordinator)])


class BambuJpegCamera(BambuEntity, Camera):
    """The port-6000 camera (P1, A1, A2L)."""

    def __init__(self, coordinator: BambuCoordinator) -> None:
        """Bind the camera to the printer's shared upstream."""
        BambuEntity.__init__(self, coordinator, CAMERA_DESCRIPTION)
        Camera.__init__(self)

    @property
    def _camera(self) -> JpegCamera:
        return self.coordinator.camera.jpeg

    @override
    async def async_camera_image(
        self, width: int | None = None, height: int | None = None
    ) -> bytes | None:
        return await self.coordinator.camera.async_snapshot()

    @override
    async def handle_async_mjpeg_stream(self, request: web.Request) -> web.StreamResponse | None:
        """Serve the printer's own frames as they arrive (no re-encoding, no polling)."""
        link = self.coordinator.camera
        frames = self._camera.frames()
        try:
            first = await anext(frames)
        except (CameraError, PrinterTLSError) as err:
            await frames.aclose()
            link.note_failure(err)
            # None: Home Assistant answers 502; snapshots carry the translated reason.
            _LOGGER.debug("No camera stream from %s: %s", self.coordinator.host, err)
            return None
        link.note_auth(accepted=True)
        response = web.StreamResponse()
        response.content_type = f"multipart/x-mixed-replace;boundary={_BOUNDARY}"
        await response.prepare(request)
        try:
            # Browsers show the previous part of a multipart stream: send the first one twice.
            await response.write(_part(first) + _part(first))
            async for frame in frames:
                await response.write(_part(frame))
        except (CameraError, PrinterTLSError, ConnectionResetError) as err:
            # The camera refused us again (code, certificate), the entry unloads, or the viewer
            # left (Home Assistant usually cancels the handler instead).
            link.note_failure(err)
            _LOGGER.debug("Camera stream from %s ended: %s", self.coordinator.host, err)
        finally:
            await frames.aclose()  # the idle countdown starts
        return response


class BambuRtspCamera(BambuEntity, Camera):
    """The RTSPS camera (X1, P2S, H2, X2D), streamed through the local relay."""

    _attr_supported_features = CameraEntityFeature.STREAM

    def __init__(self, coordinator: BambuCoordinator) -> None:
        """The relay starts listening when the stream or a snapshot first needs it."""
        BambuEntity.__init__(self, coordinator, CAMERA_DESCRIPTION)
        Camera.__init__(self)
        # The printers (and so the relay) serve RTSP over TCP only: no UDP attempt first.
        self.stream_options["rtsp_transport"] = "tcp"
        self._snapshot: tuple[float, bytes] | None = None

    @property
    @override
    def available(self) -> bool:
        # "LAN Mode Liveview" off: the printer serves no stream (a repair explains it).
        return super().available and not self.coordinator.state.liveview_disabled

    @override
    async def stream_source(self) -> str | None:
        relay = await self.coordinator.camera.async_relay()
        return relay.url

    @override
    async def async_camera_image(
        self, width: int | None = None, height: int | None = None
    ) -> bytes | None:
        now = time.monotonic()
        if self._snapshot is not None and now - self._snapshot[0] < SNAPSHOT_CACHE:
            return self._snapshot[1]
        image = await self.coordinator.camera.async_snapshot(width, height)
        self._snapshot = (now, image)
        return image


def _part(frame: bytes) -> bytes:
    header = f"--{_BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(frame)}\r\n\r\n"
    return header.encode() + frame + b"\r\n"
