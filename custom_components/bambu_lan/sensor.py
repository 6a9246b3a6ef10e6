"""Sensors: job progress, temperatures, fans, errors and printer details."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
import logging
from typing import Any, Final, override

from homeassistant.components.sensor import DOMAIN as SENSOR_DOMAIN, SensorEntity
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback
from homeassistant.helpers.typing import StateType
from homeassistant.util.dt import utcnow  # imported by name: tests pin this module's clock

from .ams_sensor import async_setup_ams_sensors
from .certificate import certificate_entities
from .const import DOMAIN
from .coordinator import BambuConfigEntry, BambuCoordinator
from .entity import BambuEntity, async_remove_stale_entities, device_info
from .job_sensor import job_sensors
from .printer_info import info_entities
from .sensor_descriptions import END_TIME, RETIRED_KEYS, SENSORS, BambuSensorEntityDescription

_LOGGER = logging.getLogger(__name__)

PARALLEL_UPDATES = 0

# States in which the printer works on a job (its remaining time means something).
ACTIVE_JOB_STATES: Final = frozenset({"PREPARE", "RUNNING", "PAUSE", "SLICING"})
END_TIME_MIN_INTERVAL: Final = timedelta(minutes=1)
END_TIME_WOBBLE: Final = timedelta(minutes=2)
"""Moves this small wait for END_TIME_MIN_INTERVAL; bigger ones (a job's first estimate) not."""


async def async_setup_entry(
    hass: HomeAssistant,
    entry: BambuConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add the sensors this printer model has, and keep the device's firmware current."""
    coordinator = entry.runtime_data
    state = coordinator.state
    entities: list[SensorEntity] = [
        BambuSensor(coordinator, description)
        for description in SENSORS
        if description.exists_fn(state)
    ]
    absent = {description.key for description in SENSORS if not description.exists_fn(state)}
    async_remove_stale_entities(hass, coordinator, SENSOR_DOMAIN, absent | RETIRED_KEYS)
    entities.append(BambuEndTimeSensor(coordinator, END_TIME))
    entities.extend(certificate_entities(coordinator))
    entities.extend(info_entities(coordinator))
    entities.extend(job_sensors(coordinator))
    async_add_entities(entities)
    async_setup_ams_sensors(hass, entry, async_add_entities)
    entry.async_on_unload(coordinator.async_add_listener(_device_updater(hass, coordinator)))


def _device_updater(hass: HomeAssistant, coordinator: BambuCoordinator) -> Callable[[], None]:
    """A listener that rewrites the device's model and versions when get_version changes them.

    It runs on every state change, so it compares a few values and touches the registry only
    when they differ from what it last wrote (firmware updates, a late get_version reply).
    """
    registry = dr.async_get(hass)

    def shown() -> tuple[str | None, ...]:
        state = coordinator.state
        return (state.firmware, state.hardware, state.product_name, state.model)

    written = shown()

    @callback
    def update_device() -> None:
        nonlocal written
        current = shown()
        if current == written or current[0] is None:
            return
        written = current
        device = registry.async_get_device_by_identifier(
            (DOMAIN, coordinator.serial), coordinator.config_entry.entry_id
        )
        if device is not None:
            info = device_info(coordinator)
            registry.async_update_device(
                device.id,
                sw_version=info.get("sw_version"),
                hw_version=info.get("hw_version"),
                model=info.get("model"),
                model_id=info.get("model_id"),
            )

    return update_device


class BambuSensor(BambuEntity, SensorEntity):
    """A sensor read from the printer's state by its description."""

    entity_description: BambuSensorEntityDescription

    def __init__(
        self, coordinator: BambuCoordinator, description: BambuSensorEntityDescription
    ) -> None:
        """Bind the sensor; enum values outside `options` are logged once each."""
        super().__init__(coordinator, description)
        self._logged_unknown: set[StateType] | None = None  # made on the first unknown value
        if description.control_fn(coordinator.state):
            self._attr_entity_registry_enabled_default = False

    @override
    def _refresh(self) -> tuple[Any, ...]:
        state = self.coordinator.state
        value = self.entity_description.value_fn(state)
        options = self.entity_description.options
        if options is not None and value is not None and value not in options:
            self._log_unknown(value)
            value = None
        self._attr_native_value = value
        attrs_fn = self.entity_description.attrs_fn
        if attrs_fn is None:
            return (value,)
        attributes = attrs_fn(state)
        self._attr_extra_state_attributes = attributes
        return (value, attributes)

    def _log_unknown(self, value: StateType) -> None:
        """A value newer firmware may send: it shows as unknown; say so once per value."""
        if self._logged_unknown is None:
            self._logged_unknown = set()
        if value not in self._logged_unknown:
            self._logged_unknown.add(value)
            _LOGGER.info(
                "%s: the printer reported %r, which this version does not know; showing unknown",
                self.entity_id,
                value,
            )


class BambuEndTimeSensor(BambuEntity, SensorEntity):
    """When the job will end: now + remaining minutes, computed when the remaining time changes.

    Recomputing it on every report would move the timestamp by seconds all the time; computing it
    only when the printer's minute count changes (on a whole minute) keeps it steady, and a small
    move replaces the shown estimate at most once a minute (an estimate that wobbles between two
    minutes writes no row per wobble; a job's first real estimate shows at once). After the job
    the last estimate stays; while paused, and before any job was seen, it is unknown.
    """

    _remaining: int | None = None
    _changed_at: datetime | None = None
    _attr_native_value: datetime | None = None

    @override
    def _refresh(self) -> tuple[Any, ...]:
        state = self.coordinator.state
        remaining = state.remaining_minutes
        if state.gcode_state == "PAUSE":
            # The end moves later by every paused minute: no estimate until the job resumes.
            self._remaining = None
            self._attr_native_value = None
        elif state.gcode_state not in ACTIVE_JOB_STATES:
            self._remaining = None
        elif remaining is None:
            # Not reported, or beyond what it can mean (e.g. 1e12 minutes): no estimate.
            self._remaining = None
            self._attr_native_value = None
        elif remaining != self._remaining:
            self._estimate(remaining)
        return (self._attr_native_value,)

    def _estimate(self, remaining: int) -> None:
        now = utcnow()
        rounded = (now + timedelta(seconds=30)).replace(second=0, microsecond=0)
        end = rounded + timedelta(minutes=remaining)
        shown = self._attr_native_value
        if (
            shown is not None
            and self._changed_at is not None
            and now - self._changed_at < END_TIME_MIN_INTERVAL
            and abs(end - shown) <= END_TIME_WOBBLE
        ):
            return  # a wobble too soon after the last change: retried at the next minute
        self._remaining = remaining
        if end != shown:
            self._attr_native_value = end
            self._changed_at = now
