"""Diagnostic sensors users of the community integration rely on: print type, SD card, IP
address, and the total hours spent printing."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from time import monotonic  # imported by name: tests drive this module's clock
from typing import Any, Final, override

from homeassistant.components.sensor import (
    RestoreSensor,
    SensorDeviceClass,
    SensorEntity,
    SensorEntityDescription,
    SensorStateClass,
)
from homeassistant.const import EntityCategory, UnitOfTime
from homeassistant.core import CALLBACK_TYPE, callback
from homeassistant.helpers.event import async_track_time_interval

from .coordinator import BambuCoordinator
from .entity import BambuEntity
from .printer.codes import PRINT_TYPES, SDCARD_STATES
from .printer.state import PrinterState

# States in which the printer works on a job and its hours count.
WORKING_STATES: Final = frozenset({"PREPARE", "RUNNING"})
USAGE_TICK: Final = timedelta(minutes=1)
SECONDS_PER_HOUR: Final = 3600.0


@dataclass(frozen=True, kw_only=True)
class BambuInfoSensorEntityDescription(SensorEntityDescription):
    """A diagnostic value read from the printer's state."""

    value_fn: Callable[[PrinterState], str | None]


INFO_SENSORS: Final[tuple[BambuInfoSensorEntityDescription, ...]] = (
    BambuInfoSensorEntityDescription(
        key="print_type",
        translation_key="print_type",
        device_class=SensorDeviceClass.ENUM,
        options=list(PRINT_TYPES),
        entity_category=EntityCategory.DIAGNOSTIC,
        value_fn=lambda state: state.print_type,
    ),
    BambuInfoSensorEntityDescription(
        key="sd_card",
        translation_key="sd_card",
        device_class=SensorDeviceClass.ENUM,
        options=list(SDCARD_STATES.values()),
        entity_category=EntityCategory.DIAGNOSTIC,
        value_fn=lambda state: state.sdcard_state,
    ),
    BambuInfoSensorEntityDescription(
        key="ip_address",
        translation_key="ip_address",
        entity_category=EntityCategory.DIAGNOSTIC,
        entity_registry_enabled_default=False,  # the address is in the configuration
        value_fn=lambda state: state.ip_address,
    ),
)

USAGE_HOURS: Final = SensorEntityDescription(
    key="usage_hours",
    translation_key="usage_hours",
    device_class=SensorDeviceClass.DURATION,
    native_unit_of_measurement=UnitOfTime.HOURS,
    state_class=SensorStateClass.TOTAL_INCREASING,
    suggested_display_precision=1,
    entity_category=EntityCategory.DIAGNOSTIC,
)


def info_entities(coordinator: BambuCoordinator) -> list[SensorEntity]:
    """The diagnostic sensors of one printer (sensor.py adds them to its platform)."""
    entities: list[SensorEntity] = [
        BambuInfoSensor(coordinator, description) for description in INFO_SENSORS
    ]
    entities.append(BambuUsageHoursSensor(coordinator, USAGE_HOURS))
    return entities


class BambuInfoSensor(BambuEntity, SensorEntity):
    """A diagnostic value; values outside the known options show as unknown."""

    entity_description: BambuInfoSensorEntityDescription

    @override
    def _refresh(self) -> tuple[Any, ...]:
        value = self.entity_description.value_fn(self.coordinator.state)
        options = self.entity_description.options
        self._attr_native_value = None if options and value not in options else value
        return (self._attr_native_value,)


class BambuUsageHoursSensor(BambuEntity, RestoreSensor):
    """Hours the printer spent working on jobs, counted while it prepares or prints.

    LAN reports carry no lifetime counter, so the integration counts: while a job runs (and the
    printer is connected) the time adds up, minute by minute, and the total survives restarts.
    Time the printer worked while Home Assistant could not see it is not counted.
    """

    _attr_native_value: float | None = None
    _hours = 0.0
    _since: float | None = None
    _ticker: CALLBACK_TYPE | None = None

    @override
    async def async_added_to_hass(self) -> None:
        last = await self.async_get_last_sensor_data()
        if last is not None and isinstance(last.native_value, int | float):
            self._hours = float(last.native_value)
        self.async_on_remove(self._stop_ticker)
        await super().async_added_to_hass()

    @override
    def _refresh(self) -> tuple[Any, ...]:
        working = self.available and self.coordinator.state.gcode_state in WORKING_STATES
        self._account(working)
        self._attr_native_value = round(self._hours, 3)
        return (self._attr_native_value,)

    def _account(self, working: bool) -> None:
        now = monotonic()
        if self._since is not None:
            self._hours += (now - self._since) / SECONDS_PER_HOUR
        self._since = now if working else None
        if working and self._ticker is None:
            self._ticker = async_track_time_interval(self.hass, self._tick, USAGE_TICK)
        elif not working:
            self._stop_ticker()

    @callback
    def _stop_ticker(self) -> None:
        if self._ticker is not None:
            self._ticker()
            self._ticker = None

    @callback
    def _tick(self, _now: datetime) -> None:
        """A job running for long without reports still adds up on the display."""
        self._handle_tick()

    def _handle_tick(self) -> None:
        shown = self._evaluate()
        if shown != self._written:
            self._written = shown
            self.async_write_ha_state()
