"""One printer's camera: its connections, snapshots, and the repairs about it.

The port-6000 camera (`printer/camera.py`) and the RTSPS relay (`printer/rtsp_relay.py`) are
created on first use, so nothing connects (or listens) for a printer nobody looks at. Snapshots
(the camera entity's pictures, the finish photo) come from the shared port-6000 upstream, or as
one ffmpeg frame through the relay. Repeated refusals of the access code raise a repair; so does
"LAN Mode Liveview" being off.
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Any, Final

from homeassistant.components.ffmpeg import async_get_image as ffmpeg_image
from homeassistant.core import callback
from homeassistant.exceptions import HomeAssistantError

from . import issues
from .const import CONF_ACCESS_CODE, CONF_PINNED_CERT, DOMAIN, is_ca_verified
from .printer.camera import CAMERA_PORT, CameraAuthError, CameraError, JpegCamera
from .printer.models import CameraKind, camera_kind
from .printer.rtsp_relay import RTSP_PORT, RtspRelay
from .printer.tls import PrinterTLSError

if TYPE_CHECKING:
    from .coordinator import BambuCoordinator

# Camera refusals of the access code in a row before a repair (one can be a code just changed).
CAMERA_REFUSALS_BEFORE_ISSUE: Final = 3


class CameraLink:
    """The camera side of one printer (owned by its coordinator)."""

    def __init__(self, coordinator: BambuCoordinator) -> None:
        """Nothing opens until a camera entity or a finish photo needs it."""
        self._coordinator = coordinator
        self._jpeg: JpegCamera | None = None
        self._relay: RtspRelay | None = None
        self._refusals = 0
        self._liveview_disabled: bool | None = None

    @property
    def kind(self) -> CameraKind | None:
        """The printer's camera protocol (None: unknown model)."""
        return camera_kind(self._coordinator.state.model)

    def _pinned_cert(self) -> str | None:
        # As for MQTT: a printer a bundled CA has proven is never reached through a pin.
        entry = self._coordinator.config_entry
        if is_ca_verified(entry.data, entry.options):
            return None
        pinned: str | None = entry.options.get(CONF_PINNED_CERT)
        return pinned

    @property
    def jpeg(self) -> JpegCamera:
        """The port-6000 camera, shared by its users (it connects only when used)."""
        if self._jpeg is None:
            coordinator = self._coordinator
            data = coordinator.config_entry.data
            self._jpeg = JpegCamera(
                coordinator.host,
                coordinator.serial,
                data[CONF_ACCESS_CODE],
                port=data.get("camera_port", CAMERA_PORT),
                pinned_cert=self._pinned_cert(),
            )
        return self._jpeg

    async def async_relay(self) -> RtspRelay:
        """The local relay to the printer's RTSPS camera (listening once asked for)."""
        if self._relay is None:
            coordinator = self._coordinator
            data = coordinator.config_entry.data
            self._relay = RtspRelay(
                coordinator.host,
                coordinator.serial,
                data[CONF_ACCESS_CODE],
                port=data.get("rtsp_port", RTSP_PORT),
                pinned_cert=self._pinned_cert(),
                on_auth_failed=partial(self.note_auth, accepted=False),
                on_authenticated=partial(self.note_auth, accepted=True),
            )
        await self._relay.async_start()
        return self._relay

    async def async_snapshot(self, width: int | None = None, height: int | None = None) -> bytes:
        """One current frame, whatever the camera's kind; translated errors."""
        coordinator = self._coordinator
        if self.kind is CameraKind.JPEG:
            try:
                frame = await self.jpeg.async_get_frame()
            except (CameraError, PrinterTLSError) as err:
                self.note_failure(err)
                raise camera_error(err, coordinator.host) from err
            self.note_auth(accepted=True)
            return frame
        if coordinator.state.liveview_disabled:
            raise HomeAssistantError(
                translation_domain=DOMAIN,
                translation_key="camera_liveview_off",
                translation_placeholders={"host": coordinator.host},
            )
        relay = await self.async_relay()
        # The printer and the relay speak RTSP over TCP only.
        image = await ffmpeg_image(
            coordinator.hass, f"-rtsp_transport tcp -i {relay.url}", width=width, height=height
        )
        if image:
            return image
        if isinstance(relay.error, PrinterTLSError):
            raise camera_error(relay.error, coordinator.host)
        if relay.refused:
            raise camera_error(CameraAuthError("refused"), coordinator.host)
        reason = CameraError(str(relay.error) if relay.error is not None else "no picture")
        raise camera_error(reason, coordinator.host)

    @callback
    def note_failure(self, err: Exception) -> None:
        """Something failed: only a refused access code counts towards the repair."""
        if isinstance(err, CameraAuthError):
            self.note_auth(accepted=False)

    @callback
    def note_auth(self, *, accepted: bool) -> None:
        """The camera accepted or refused the access code: a repair after repeated refusals."""
        coordinator = self._coordinator
        if accepted:
            if self._refusals >= CAMERA_REFUSALS_BEFORE_ISSUE:
                issues.async_set_camera_issue(
                    coordinator.hass, coordinator.config_entry, issues.CAMERA_AUTH, False
                )
            self._refusals = 0
            return
        self._refusals += 1
        if self._refusals == CAMERA_REFUSALS_BEFORE_ISSUE:
            issues.async_set_camera_issue(
                coordinator.hass, coordinator.config_entry, issues.CAMERA_AUTH, True
            )

    @callback
    def check_liveview(self, disabled: bool) -> None:
        """After a report that changed `disabled` (the state's `liveview_disabled`): RTSP
        cameras need "LAN Mode Liveview" on; a repair while off."""
        if self.kind is not CameraKind.RTSP:
            return
        coordinator = self._coordinator
        if disabled != self._liveview_disabled:
            self._liveview_disabled = disabled
            issues.async_set_camera_issue(
                coordinator.hass, coordinator.config_entry, issues.LIVEVIEW_DISABLED, disabled
            )

    def diagnostics(self) -> dict[str, Any]:
        """Counters and the last errors; never the access code or the relay's token."""
        kind = self.kind
        jpeg, relay = self._jpeg, self._relay
        return {
            "kind": kind.value if kind is not None else None,
            "liveview_disabled": self._liveview_disabled,
            "refusals_in_a_row": self._refusals,
            "jpeg": None
            if jpeg is None
            else {
                "connected": jpeg.connected,
                "connections": jpeg.connections,
                "last_error": str(jpeg.error) if jpeg.error is not None else None,
            },
            "relay": None
            if relay is None
            else {
                "listening": relay.listening,
                "sessions": relay.sessions,
                "upstreams": relay.upstreams,
                "bytes_relayed": relay.bytes_relayed,
                "refused": relay.refused,
                "last_error": str(relay.error) if relay.error is not None else None,
            },
        }

    async def async_close(self) -> None:
        """Close the camera connection and the relay (unload)."""
        jpeg, self._jpeg = self._jpeg, None
        if jpeg is not None:
            await jpeg.async_close()
        relay, self._relay = self._relay, None
        if relay is not None:
            await relay.async_stop()


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
