"""Camera: the printer's live view.

P1, A1 and A2L serve JPEG frames on port 6000 (`printer/camera.py`): snapshots and an MJPEG
stream come from one shared upstream connection that opens on demand and closes when idle.

X1, P2S, H2 and X2D serve RTSPS on port 322. Home Assistant's stream component gets the URL of
the integration's local relay (`printer/rtsp_relay.py`), which verifies the printer and holds
the access code; snapshots are one ffmpeg frame through the same relay, cached briefly.
"""

from __future__ import annotations

import time
from typing import Final, override

from aiohttp import web
from homeassistant.components.camera import Camera, CameraEntityDescription
from homeassistant.components.camera.const import CameraEntityFeature
from homeassistant.components.ffmpeg import async_get_image as ffmpeg_image
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from . import issues
from .const import DOMAIN
from .coordinator import BambuConfigEntry, BambuCoordinator
from .entity import BambuEntity
from .printer.camera import CameraAuthError, CameraError, JpegCamera
from .printer.models import CameraKind, camera_kind
from .printer.tls import PrinterTLSError

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
    kind = camera_kind(coordinator.state.model)
    if kind is CameraKind.JPEG:
        async_add_entities([BambuJpegCamera(coordinator)])
    elif kind is CameraKind.RTSP:
        async_add_entities([BambuRtspCamera(coordinator)])


async def async_take_frame(
    hass: HomeAssistant,
    coordinator: BambuCoordinator,
    *,
    width: int | None = None,
    height: int | None = None,
) -> bytes:
    """One current frame from the printer's camera, whatever its kind (translated errors)."""
    kind = camera_kind(coordinator.state.model)
    if kind is CameraKind.JPEG:
        try:
            frame = await coordinator.jpeg_camera.async_get_frame()
        except (CameraError, PrinterTLSError) as err:
            if isinstance(err, CameraAuthError):
                coordinator.note_camera_auth(accepted=False)
            raise camera_error(err, coordinator.host) from err
        coordinator.note_camera_auth(accepted=True)
        return frame
    error = "no picture"
    if kind is CameraKind.RTSP and not coordinator.state.liveview_disabled:
        relay = await coordinator.async_rtsp_relay()
        # The printer and the relay speak RTSP over TCP only.
        image = await ffmpeg_image(
            hass, f"-rtsp_transport tcp -i {relay.url}", width=width, height=height
        )
        if image:
            return image
        if isinstance(relay.error, PrinterTLSError):
            raise camera_error(relay.error, coordinator.host)
        if relay.refused:
            raise camera_error(CameraAuthError("refused"), coordinator.host)
    elif kind is CameraKind.RTSP:
        error = "LAN Mode Liveview is off"
    raise HomeAssistantError(
        translation_domain=DOMAIN,
        translation_key="camera_unavailable",
        translation_placeholders={"host": coordinator.host, "error": error},
    )


def camera_error(err: CameraError | PrinterTLSError, host: str) -> HomeAssistantError:
    """The translated error for a failed snapshot (never the access code)."""
    if isinstance(err, PrinterTLSError):
        return HomeAssistantError(
            translation_domain=DOMAIN,
            translation_key=f"tls_{err.kind}",
            translation_placeholders=issues.tls_placeholders(err),
        )
    key = "camera_invalid_auth" if isinstance(err, CameraAuthError) else "camera_unavailable"
    return HomeAssistantError(
        translation_domain=DOMAIN,
        translation_key=key,
        translation_placeholders={"host": host, "error": str(err)},
    )


class BambuJpegCamera(BambuEntity, Camera):
    """The port-6000 camera (P1, A1, A2L)."""

    def __init__(self, coordinator: BambuCoordinator) -> None:
        """Bind the camera to the printer's shared upstream."""
        BambuEntity.__init__(self, coordinator, CAMERA_DESCRIPTION)
        Camera.__init__(self)

    @property
    def _camera(self) -> JpegCamera:
        return self.coordinator.jpeg_camera

    @override
    async def async_camera_image(
        self, width: int | None = None, height: int | None = None
    ) -> bytes | None:
        return await async_take_frame(self.hass, self.coordinator)

    @override
    async def handle_async_mjpeg_stream(self, request: web.Request) -> web.StreamResponse | None:
        """Serve the printer's own frames as they arrive (no re-encoding, no polling)."""
        frames = self._camera.frames()
        try:
            first = await anext(frames)
        except (CameraError, PrinterTLSError) as err:
            await frames.aclose()
            self._note_failure(err)
            raise camera_error(err, self.coordinator.host) from err
        self._note_success()
        response = web.StreamResponse()
        response.content_type = f"multipart/x-mixed-replace;boundary={_BOUNDARY}"
        await response.prepare(request)
        try:
            # Browsers show the previous part of a multipart stream: send the first one twice.
            await response.write(_part(first) + _part(first))
            async for frame in frames:
                await response.write(_part(frame))
        except (CameraError, PrinterTLSError, ConnectionResetError) as err:
            if isinstance(err, CameraError | PrinterTLSError):
                self._note_failure(err)
        finally:
            await frames.aclose()  # the viewer left: the idle countdown starts
        return response

    def _note_failure(self, err: CameraError | PrinterTLSError) -> None:
        if isinstance(err, CameraAuthError):
            self.coordinator.note_camera_auth(accepted=False)

    def _note_success(self) -> None:
        self.coordinator.note_camera_auth(accepted=True)


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
        relay = await self.coordinator.async_rtsp_relay()
        return relay.url

    @override
    async def async_camera_image(
        self, width: int | None = None, height: int | None = None
    ) -> bytes | None:
        now = time.monotonic()
        if self._snapshot is not None and now - self._snapshot[0] < SNAPSHOT_CACHE:
            return self._snapshot[1]
        image = await async_take_frame(self.hass, self.coordinator, width=width, height=height)
        self._snapshot = (now, image)
        return image


def _part(frame: bytes) -> bytes:
    header = f"--{_BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(frame)}\r\n\r\n"
    return header.encode() + frame + b"\r\n"
