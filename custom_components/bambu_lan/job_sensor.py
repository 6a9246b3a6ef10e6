"""Sensors for the current job, from its 3MF: weight, filament length, bed type, objects."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, override

from homeassistant.components.sensor import (
    SensorDeviceClass,
    SensorEntity,
    SensorEntityDescription,
    SensorStateClass,
)
from homeassistant.const import UnitOfLength, UnitOfMass
from homeassistant.helpers.typing import StateType

from .coordinator import BambuCoordinator
from .entity import BambuEntity
from .options_flow import price_for
from .printer.threemf import JobDetails


@dataclass(frozen=True, kw_only=True)
class BambuJobSensorEntityDescription(SensorEntityDescription):
    """A value read from the job's 3MF."""

    value_fn: Callable[[JobDetails], StateType]
    attributes_fn: Callable[[JobDetails], dict[str, Any]] | None = None


JOB_SENSORS: Final[tuple[BambuJobSensorEntityDescription, ...]] = (
    BambuJobSensorEntityDescription(
        key="job_weight",
        translation_key="job_weight",
        device_class=SensorDeviceClass.WEIGHT,
        native_unit_of_measurement=UnitOfMass.GRAMS,
        state_class=SensorStateClass.MEASUREMENT,
        suggested_display_precision=1,
        value_fn=lambda job: job.weight_g,
    ),
    BambuJobSensorEntityDescription(
        key="job_filament_length",
        translation_key="job_filament_length",
        device_class=SensorDeviceClass.DISTANCE,
        native_unit_of_measurement=UnitOfLength.METERS,
        state_class=SensorStateClass.MEASUREMENT,
        suggested_display_precision=2,
        value_fn=lambda job: job.length_m,
    ),
    BambuJobSensorEntityDescription(
        key="job_bed_type",
        translation_key="job_bed_type",
        value_fn=lambda job: job.bed_type,
    ),
    BambuJobSensorEntityDescription(
        key="job_objects",
        translation_key="job_objects",
        state_class=SensorStateClass.MEASUREMENT,
        value_fn=lambda job: len(job.objects),
        # The names the user picks from for skip_objects, by the id it takes.
        attributes_fn=lambda job: {
            "objects": [{"id": obj.id, "name": obj.name} for obj in job.objects]
        },
    ),
)


COST: Final = SensorEntityDescription(key="job_cost", translation_key="job_cost")


def job_sensors(coordinator: BambuCoordinator) -> list[SensorEntity]:
    """The job sensors (every model prints from 3MF files)."""
    sensors: list[SensorEntity] = [
        BambuJobSensor(coordinator, description) for description in JOB_SENSORS
    ]
    sensors.append(BambuJobCostSensor(coordinator))
    return sensors


class BambuJobSensor(BambuEntity, SensorEntity):
    """Unknown until the running (or last) job's 3MF was read."""

    entity_description: BambuJobSensorEntityDescription

    @override
    def _refresh(self) -> tuple[Any, ...]:
        job = self.coordinator.job.details
        description = self.entity_description
        self._attr_native_value = None if job is None else description.value_fn(job)
        attributes_fn = description.attributes_fn
        self._attr_extra_state_attributes = (
            {} if job is None or attributes_fn is None else attributes_fn(job)
        )
        return (self._attr_native_value, self._attr_extra_state_attributes)


class BambuJobCostSensor(BambuEntity, SensorEntity):
    """The filament cost of the current (or last) job: grams per filament times price per kg."""

    _attr_device_class = SensorDeviceClass.MONETARY
    # Monetary sensors allow only "total": the job's cost, which each new job starts afresh.
    _attr_state_class = SensorStateClass.TOTAL
    _attr_suggested_display_precision = 2

    def __init__(self, coordinator: BambuCoordinator) -> None:
        """Priced in Home Assistant's currency, from the entry's options."""
        super().__init__(coordinator, COST)
        self._attr_native_unit_of_measurement = coordinator.hass.config.currency

    @override
    def _refresh(self) -> tuple[Any, ...]:
        self._attr_native_value = job_cost(
            self.coordinator.job.details, dict(self.coordinator.config_entry.options)
        )
        return (self._attr_native_value,)


def job_cost(job: JobDetails | None, options: dict[str, Any]) -> float | None:
    """What the job's filament costs; None without details or without a price for each."""
    if job is None or not job.filaments:
        return None
    total = 0.0
    for filament in job.filaments:
        price = price_for(options, filament.type)
        if price is None:
            return None
        total += filament.used_g / 1000 * price
    return round(total, 2)
