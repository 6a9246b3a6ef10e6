"""Push coordinator: owns one printer's session, its merged state and its certificate report."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime, timedelta
import logging
import time
from typing import Any, Final, override

from homeassistant.config_entries import ConfigEntry
from homeassistant.const import EVENT_HOMEASSISTANT_STOP
from homeassistant.core import CALLBACK_TYPE, Event, HomeAssistant, callback
from homeassistant.exceptions import (
    ConfigEntryAuthFailed,
    ConfigEntryNotReady,
    HomeAssistantError,
)
from homeassistant.helpers.device_registry import DeviceInfo
from homeassistant.helpers.event import async_call_later, async_track_time_interval
from homeassistant.helpers.update_coordinator import DataUpdateCoordinator, UpdateFailed
from homeassistant.util import dt as dt_util

from . import issues
from .camera_link import CameraLink
from .const import (
    CONF_ACCESS_CODE,
    CONF_CERT_FINGERPRINT,
    CONF_HOST,
    CONF_PINNED_CERT,
    CONF_SERIAL,
    DOMAIN,
    MQTT_PORT,
    is_ca_verified,
)
from .fanout import ReportFanout
from .job import JobTracker
from .printer.events import EventTracker, PrinterEvent
from .printer.ftps import FTPS_PORT, PrinterFtps
from .printer.health import CertificateHealth, evaluate_health
from .printer.session import (
    STABLE_LINK,
    CannotConnect,
    CommandError,
    InvalidAuth,
    PrinterSession,
)
from .printer.state import PrinterState
from .printer.tls import CertificateReport, PrinterTLSError, TLSErrorKind

_LOGGER = logging.getLogger(__name__)

FIRST_REPORT_TIMEOUT: Final = 20.0
HEALTH_CHECK_INTERVAL: Final = timedelta(days=1)
PROTOCOL_FAILURES_BEFORE_ISSUE: Final = 3

type BambuConfigEntry = ConfigEntry[BambuCoordinator]


class BambuCoordinator(DataUpdateCoordinator[PrinterState]):
    """Holds the printer's state; the session pushes into it (there is no polling)."""

    config_entry: BambuConfigEntry

    def __init__(self, hass: HomeAssistant, entry: BambuConfigEntry) -> None:
        """Create the coordinator; the connection opens in `_async_setup`."""
        super().__init__(
            hass,
            _LOGGER,
            config_entry=entry,
            name=f"{DOMAIN} {entry.title}",
            update_interval=None,
        )
        self.serial: str = entry.data[CONF_SERIAL]
        self.host: str = entry.data[CONF_HOST]
        self.state = PrinterState(self.serial)
        self._health_timer: CALLBACK_TYPE | None = None
        self._signed_commands_required: bool | None = None
        self._protocol_failures = 0
        self.session: PrinterSession | None = None
        # The card over FTPS: connects on first use, closes when idle.
        self.ftps = PrinterFtps(
            self.host,
            self.serial,
            entry.data[CONF_ACCESS_CODE],
            port=entry.data.get("ftps_port", FTPS_PORT),
            pinned_cert=entry.options.get(CONF_PINNED_CERT),
        )
        # The running job's details from its 3MF (fetched when a print starts).
        self.job = JobTracker(self)
        # The camera: connects (or listens) on first use.
        self.camera = CameraLink(self)
        self.certificate: CertificateReport | None = None
        self.tls_error: PrinterTLSError | None = None
        self.tls_error_at: str | None = None
        self._full_report = asyncio.Event()
        self._unavailable_logged = False
        self._recovery_logged = False
        self._stable_timer: CALLBACK_TYPE | None = None
        self._unsub_stop: CALLBACK_TYPE | None = None
        self._reconnect_failed = False
        # Outlives reconnects, so a reconnect's full report repeats no event.
        self.events = EventTracker()
        self._event_listeners: list[Callable[[PrinterEvent], None]] = []
        self._flush_timer: CALLBACK_TYPE | None = None
        self.fanout = ReportFanout(hass.loop, self._deliver)
        """Entities register the report keys they read here; reports reach only their readers."""
        self.entity_device_info: DeviceInfo | None = None
        """The device info the entities last created carry (see `BambuEntity`)."""
        # Report keys the last signed-commands, job and event check read (see `on_report`).
        self._report_reads: frozenset[str] | None = None
        self.device_id: str | None = None
        """The printer's device registry id (AMS devices link to it)."""
        self.ams_platforms: list[set[int]] = []
        """Per platform, the AMS units whose entities it added (see `ams.async_track_units`)."""

    # --- lifecycle ---------------------------------------------------------------------------

    async def _async_setup(self) -> None:
        """Open the verified connection; map failures to what Home Assistant should do."""
        data = self.config_entry.data
        session = PrinterSession(
            self.host,
            self.serial,
            data[CONF_ACCESS_CODE],
            self,
            port=data.get("port", MQTT_PORT),
            # Defence in depth: a printer a bundled CA has proven is never reached through a pin.
            pinned_cert=None
            if is_ca_verified(data, self.config_entry.options)
            else self.config_entry.options.get(CONF_PINNED_CERT),
        )
        # Home Assistant neither waits for nor promptly cancels a setup that is still connecting
        # when it stops; closing the session aborts the connect (and a later reconnect) at once.
        self.session = session
        self._unsub_stop = self.hass.bus.async_listen_once(
            EVENT_HOMEASSISTANT_STOP, self._async_hass_stop
        )
        try:
            certificate = await session.async_connect()
        except InvalidAuth as err:
            raise ConfigEntryAuthFailed(
                translation_domain=DOMAIN, translation_key="invalid_auth"
            ) from err
        except PrinterTLSError as err:
            self._record_tls_error(err)
            raise ConfigEntryNotReady(
                translation_domain=DOMAIN,
                translation_key=f"tls_{err.kind}",
                translation_placeholders=issues.tls_placeholders(err),
            ) from err
        except CannotConnect as err:
            raise ConfigEntryNotReady(
                translation_domain=DOMAIN,
                translation_key="cannot_connect",
                translation_placeholders={"host": self.host, "error": str(err)},
            ) from err
        self._on_verified(certificate)

    async def _async_update_data(self) -> PrinterState:
        """Only used by the first refresh: wait for the printer's first full report."""
        try:
            async with asyncio.timeout(FIRST_REPORT_TIMEOUT):
                await self._full_report.wait()
        except TimeoutError as err:
            raise UpdateFailed(
                translation_domain=DOMAIN,
                translation_key="no_report",
                translation_placeholders={"host": self.host},
            ) from err
        assert self.session is not None
        self.session.start_reconnecting()
        return self.state

    async def _async_hass_stop(self, _event: Event) -> None:
        self._unsub_stop = None  # a fired one-time listener must not be removed again
        await self.async_close()

    async def async_close(self) -> None:
        """Close the connections (unload, a failed setup, or Home Assistant stopping)."""
        if self._unsub_stop is not None:
            self._unsub_stop()
            self._unsub_stop = None
        if self._stable_timer is not None:
            self._stable_timer()
            self._stable_timer = None
        if self._flush_timer is not None:
            self._flush_timer()
            self._flush_timer = None
        await self.camera.async_close()
        await self.ftps.async_close()
        if self.session is not None:
            await self.session.async_close()
            self.session = None

    async def async_shutdown(self) -> None:
        """Close the session along with the coordinator."""
        self.fanout.cancel()
        await super().async_shutdown()
        await self.async_close()

    # --- session listener (on the event loop) ------------------------------------------------

    @callback
    def on_report(self, message: dict[str, Any]) -> None:
        """Merge a report; tell the entities that read what it changed."""
        state = self.state
        if not state.apply(message):
            return
        changed, reads = state.changed_keys, self._report_reads
        # Signed commands, live view, the running job and the printer's events depend on a few
        # report keys (recorded while they are read): a report that changed none of them is
        # nothing new for them.
        if changed is None or reads is None or not reads.isdisjoint(changed):
            state.record_reads()
            try:
                required = state.signed_commands_required
                liveview_disabled = state.liveview_disabled
                job = self.job.running(state)
                events = (
                    self.events.update(state, time.monotonic())
                    if state.full_state_received
                    else None
                )
            finally:
                self._report_reads = state.recorded_reads()
            self._check_signed_commands(required)
            self.camera.check_liveview(liveview_disabled)
            self.job.follow(job)
            if events is not None:
                self._dispatch(events)
        if not self._full_report.is_set():
            if self.state.full_state_received:
                self._full_report.set()
            return
        self.fanout.notify(self.state.changed_keys)

    def _deliver(self, changed: frozenset[str] | None) -> None:
        """Call the readers of `changed` (every entity for None, or while unavailable).

        Every other update (connect, disconnect, certificate, daily check) reaches every entity
        through `async_update_listeners`.
        """
        if changed is None or not self.last_update_success:
            self.async_set_updated_data(self.state)
            return
        for listener in self.fanout.readers(changed):
            listener()

    @callback
    @override
    def async_update_listeners(self) -> None:
        """Refresh the listeners and every entity (the fan-out's members: entities are no
        coordinator listeners); a delivery that was waiting for the throttle is covered."""
        self.fanout.delivered_all()
        super().async_update_listeners()
        for member in self.fanout.members():
            try:
                member()
            except Exception:
                # As Home Assistant does for its listeners: one broken entity stops no other.
                _LOGGER.exception("Unexpected error updating an entity of %s", self.name)

    @callback
    def on_connected(self, certificate: CertificateReport) -> None:
        """A reconnect succeeded.

        "Lost" and "reconnected" are logged once per outage: an outage ends only once the link
        has stayed up for STABLE_LINK, so a printer that keeps hanging up does not fill the log.
        """
        if self._unavailable_logged and not self._recovery_logged:
            _LOGGER.info("Reconnected to the printer at %s", self.host)
            self._recovery_logged = True
        if self._unavailable_logged and self._stable_timer is None:
            self._stable_timer = async_call_later(self.hass, STABLE_LINK, self._outage_over)
        self.state.expect_full_report()  # the session asked for pushall again
        self._on_verified(certificate)
        self.async_set_updated_data(self.state)

    @callback
    def on_disconnected(self, error: Exception | None) -> None:
        """The link dropped: entities go unavailable until the session reconnects."""
        if self._stable_timer is not None:
            self._stable_timer()  # the link did not stay up: still the same outage
            self._stable_timer = None
        if not self._unavailable_logged:
            _LOGGER.info("Lost the connection to the printer at %s: %s", self.host, error)
            self._unavailable_logged = True
        # Not async_set_update_error: it logs at ERROR, and losing a printer that was switched
        # off is routine (logged once at INFO above).
        self.last_exception = error or ConnectionError("disconnected")
        self.last_update_success = False
        self.async_update_listeners()

    @callback
    def _outage_over(self, _now: datetime) -> None:
        self._stable_timer = None
        self._unavailable_logged = self._recovery_logged = False

    @callback
    def on_reconnect_failed(self, error: Exception) -> bool:
        """Decide whether to keep retrying after a failed reconnect."""
        self._reconnect_failed = True
        if isinstance(error, InvalidAuth):
            _LOGGER.warning("The printer at %s rejected the access code", self.host)
            self.config_entry.async_start_reauth(self.hass)
            return False
        if isinstance(error, PrinterTLSError):
            if error.kind is TLSErrorKind.PROTOCOL:
                # A printer that is rebooting cuts handshakes short: only a repeated failure
                # is worth a repair issue.
                self._protocol_failures += 1
                if self._protocol_failures < PROTOCOL_FAILURES_BEFORE_ISSUE:
                    return True
            self._record_tls_error(error)
        return True

    # --- events ------------------------------------------------------------------------------

    @callback
    def async_add_event_listener(
        self, listener: Callable[[PrinterEvent], None]
    ) -> Callable[[], None]:
        """Call `listener` with every derived event; returns the function that stops it."""
        self._event_listeners.append(listener)
        return lambda: self._event_listeners.remove(listener)

    def _dispatch(self, events: list[PrinterEvent]) -> None:
        for event in events:
            for listener in list(self._event_listeners):
                listener(event)
        self._schedule_flush()

    def _schedule_flush(self) -> None:
        """Wake up when a vanished HMS code has stayed away long enough to count as cleared."""
        if self._flush_timer is not None:
            self._flush_timer()
            self._flush_timer = None
        due = self.events.next_flush()
        if due is not None:
            self._flush_timer = async_call_later(
                self.hass, max(0.0, due - time.monotonic()), self._async_flush
            )

    @callback
    def _async_flush(self, _now: datetime) -> None:
        self._flush_timer = None
        self._dispatch(self.events.flush(time.monotonic()))

    @property
    def unreachable(self) -> bool:
        """Whether the printer cannot be reached at its address: no session, or the link is
        down and the last reconnect attempt failed (a drop alone is not enough)."""
        session = self.session
        return session is None or (not session.connected and self._reconnect_failed)

    # --- certificate bookkeeping -------------------------------------------------------------

    @property
    def recorded_fingerprint(self) -> str | None:
        """SHA-256 of the leaf accepted at setup (or confirmed later in a repair flow)."""
        fingerprint: str | None = self.config_entry.data.get(CONF_CERT_FINGERPRINT)
        return fingerprint

    def certificate_health(self) -> CertificateHealth | None:
        """The certificate health right now (cheap: no I/O)."""
        return evaluate_health(
            self.certificate,
            self.recorded_fingerprint,
            self.tls_error,
            dt_util.utcnow(),
            connected=self.session is not None and self.session.connected,
        )

    @callback
    def async_check_certificate(self) -> None:
        """Re-evaluate the health: open or close repair issues, refresh the entities."""
        self._sync_certificate_issues()
        self.async_update_listeners()

    def _sync_certificate_issues(self) -> None:
        issues.async_sync_certificate_issue(
            self.hass,
            self.config_entry,
            self.certificate_health(),
            report=self.certificate,
            error=self.tls_error,
            recorded_fingerprint=self.recorded_fingerprint,
        )

    def _on_verified(self, certificate: CertificateReport) -> None:
        self._reconnect_failed = False
        self._protocol_failures = 0
        self.certificate = certificate
        self.tls_error = None
        self.tls_error_at = None
        self._sync_certificate_issues()
        if self._health_timer is None:
            # Days left shrink while the connection stays up: re-evaluate once a day.
            self._health_timer = async_track_time_interval(
                self.hass, self._async_daily_check, HEALTH_CHECK_INTERVAL, cancel_on_shutdown=True
            )
            self.config_entry.async_on_unload(self._health_timer)

    def _record_tls_error(self, error: PrinterTLSError) -> None:
        self.tls_error = error
        self.tls_error_at = dt_util.utcnow().isoformat()
        # The certificate sensors stay available while disconnected: show what went wrong.
        self.async_check_certificate()

    @callback
    def _async_daily_check(self, _now: datetime) -> None:
        self.async_check_certificate()

    def _check_signed_commands(self, required: bool | None) -> None:
        if required is None or required == self._signed_commands_required:
            return
        self._signed_commands_required = required
        issues.async_set_signed_commands_issue(self.hass, self.config_entry, required)

    # --- commands ----------------------------------------------------------------------------

    def request_full_state(self) -> bool:
        """Ask the printer for its whole state (honouring the pushall rate limit)."""
        if self.session is None or not self.session.connected:
            raise HomeAssistantError(translation_domain=DOMAIN, translation_key="not_connected")
        return self.session.request_full_state()

    async def async_send(
        self, kind: str, command: str, params: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """Send a command and wait for its acknowledgement; failures are translated."""
        if self.session is None:
            raise HomeAssistantError(translation_domain=DOMAIN, translation_key="not_connected")
        try:
            return await self.session.async_command(kind, command, params)
        except CommandError as err:
            raise HomeAssistantError(
                translation_domain=DOMAIN,
                translation_key=f"command_{err.kind}",
                translation_placeholders={"command": command, "reason": err.reason or "-"},
            ) from err
