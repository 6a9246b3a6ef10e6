"""The printer's sensors as descriptions: what each reads from the state, and where it exists."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from homeassistant.components.sensor import (
    SensorDeviceClass,
    SensorEntityDescription,
    SensorStateClass,
)
from homeassistant.const import (
    PERCENTAGE,
    SIGNAL_STRENGTH_DECIBELS_MILLIWATT,
    EntityCategory,
    UnitOfLength,
    UnitOfTemperature,
    UnitOfTime,
)
from homeassistant.helpers.typing import StateType

from .const import LEFT_NOZZLE, RIGHT_NOZZLE
from .fan import FANS
from .printer.codes import SPEED_LEVELS, STAGE_NAMES
from .printer.events import hms_details, hms_module_name
from .printer.models import has_chamber_sensor
from .printer.nozzle import NOZZLE_FLOWS, NOZZLE_MATERIALS, NozzleKind
from .printer.state import PrinterState
from .printer.values import Nozzle

PRINT_STATUS_OPTIONS: Final = [
    "idle",
    "prepare",
    "running",
    "pause",
    "finish",
    "failed",
    "slicing",
    "init",
]
STAGE_OPTIONS: Final = sorted(set(STAGE_NAMES.values()))
# Keys of sensors that earlier versions created and this one no longer does.
# The read-only targets duplicated the number entities that show and set them (issue 20).
RETIRED_KEYS: Final = frozenset(
    {
        "nozzle_target_temperature",
        "bed_target_temperature",
        "left_nozzle_target_temperature",
        "right_nozzle_target_temperature",
    }
)
NO_ERROR: Final = "none"


@dataclass(frozen=True, kw_only=True)
class BambuSensorEntityDescription(SensorEntityDescription):
    """A printer sensor: how to read it, and on which printers it exists."""

    value_fn: Callable[[PrinterState], StateType]
    exists_fn: Callable[[PrinterState], bool] = lambda _: True
    attrs_fn: Callable[[PrinterState], dict[str, Any]] | None = None
    # Whether a control of this printer shows the same value: the sensor is then disabled by
    # default (e.g. a fan's speed where the `fan` entity exists).
    control_fn: Callable[[PrinterState], bool] = lambda _: False


def _lower(value: str | None) -> str | None:
    return value.lower() if value else None


def _stage(state: PrinterState) -> str | None:
    # Unknown stage ids come through as "stage_<id>" so the entity can log them (once).
    name = state.stage_name
    if name is None and (stage := state.stage) is not None:
        return f"stage_{stage}"
    return name


def _material(kind: NozzleKind | None) -> str | None:
    # An unknown code comes through raw so that the entity logs it (once) and shows unknown.
    return None if kind is None else kind.material or kind.raw


def _flow(kind: NozzleKind | None) -> str | None:
    return None if kind is None else kind.flow


def _print_error(state: PrinterState) -> str | None:
    if state.print_error is None:
        return None
    return state.print_error_code or NO_ERROR


def _print_error_attrs(state: PrinterState) -> dict[str, Any]:
    error = state.print_error
    if not error:
        return {}
    return {"module": hms_module_name(error >> 24)}


def _active_nozzle(state: PrinterState) -> str | None:
    active = state.active_nozzle
    return None if active is None else {LEFT_NOZZLE: "left", RIGHT_NOZZLE: "right"}.get(active)


def _hms_attributes(state: PrinterState) -> dict[str, Any]:
    entries = state.hms
    return {
        "codes": [entry.code for entry in entries],
        "errors": [hms_details(entry) for entry in entries],
    }


def _nozzle(state: PrinterState, nozzle_id: int) -> Nozzle | None:
    return next((nozzle for nozzle in state.nozzles if nozzle.id == nozzle_id), None)


def _nozzle_temp(nozzle_id: int) -> Callable[[PrinterState], float | None]:
    def read(state: PrinterState) -> float | None:
        nozzle = _nozzle(state, nozzle_id)
        return nozzle.temp if nozzle else None

    return read


def _nozzle_field(
    nozzle_id: int, read: Callable[[Nozzle], StateType]
) -> Callable[[PrinterState], StateType]:
    def value(state: PrinterState) -> StateType:
        nozzle = _nozzle(state, nozzle_id)
        return read(nozzle) if nozzle else None

    return value


def _is_dual_nozzle(state: PrinterState) -> bool:
    return state.is_dual_nozzle


def _is_single_nozzle(state: PrinterState) -> bool:
    return not state.is_dual_nozzle


def _nozzle_details(side: str, nozzle_id: int) -> tuple[BambuSensorEntityDescription, ...]:
    """Diameter, material and flow type of one nozzle of a dual-nozzle printer."""
    return (
        BambuSensorEntityDescription(
            key=f"{side}_nozzle_diameter",
            translation_key=f"{side}_nozzle_diameter",
            native_unit_of_measurement=UnitOfLength.MILLIMETERS,
            state_class=SensorStateClass.MEASUREMENT,
            entity_category=EntityCategory.DIAGNOSTIC,
            value_fn=_nozzle_field(nozzle_id, lambda nozzle: nozzle.diameter),
            exists_fn=_is_dual_nozzle,
        ),
        BambuSensorEntityDescription(
            key=f"{side}_nozzle_type",
            translation_key=f"{side}_nozzle_type",
            device_class=SensorDeviceClass.ENUM,
            options=list(NOZZLE_MATERIALS),
            entity_category=EntityCategory.DIAGNOSTIC,
            value_fn=_nozzle_field(nozzle_id, lambda nozzle: _material(nozzle.kind)),
            exists_fn=_is_dual_nozzle,
        ),
        BambuSensorEntityDescription(
            key=f"{side}_nozzle_flow",
            translation_key=f"{side}_nozzle_flow",
            device_class=SensorDeviceClass.ENUM,
            options=list(NOZZLE_FLOWS),
            entity_category=EntityCategory.DIAGNOSTIC,
            value_fn=_nozzle_field(nozzle_id, lambda nozzle: _flow(nozzle.kind)),
            exists_fn=_is_dual_nozzle,
        ),
    )


def _temperature(
    key: str, value_fn: Callable[[PrinterState], StateType], **kwargs: Any
) -> BambuSensorEntityDescription:
    return BambuSensorEntityDescription(
        key=key,
        translation_key=key,
        device_class=SensorDeviceClass.TEMPERATURE,
        native_unit_of_measurement=UnitOfTemperature.CELSIUS,
        state_class=SensorStateClass.MEASUREMENT,
        suggested_display_precision=0,
        value_fn=value_fn,
        **kwargs,
    )


# The fan entities by key (the same keys as the fan speed sensors).
_FAN_EXISTS: Final = {fan.key: fan.exists_fn for fan in FANS}


def _fan(key: str, value_fn: Callable[[PrinterState], StateType]) -> BambuSensorEntityDescription:
    return BambuSensorEntityDescription(
        key=key,
        translation_key=key,
        native_unit_of_measurement=PERCENTAGE,
        state_class=SensorStateClass.MEASUREMENT,
        value_fn=value_fn,
        control_fn=_FAN_EXISTS[key],
    )


SENSORS: Final[tuple[BambuSensorEntityDescription, ...]] = (
    BambuSensorEntityDescription(
        key="print_status",
        translation_key="print_status",
        device_class=SensorDeviceClass.ENUM,
        options=PRINT_STATUS_OPTIONS,
        value_fn=lambda state: _lower(state.gcode_state_raw),
    ),
    BambuSensorEntityDescription(
        key="current_stage",
        translation_key="current_stage",
        device_class=SensorDeviceClass.ENUM,
        options=STAGE_OPTIONS,
        value_fn=_stage,
    ),
    BambuSensorEntityDescription(
        key="progress",
        translation_key="progress",
        native_unit_of_measurement=PERCENTAGE,
        state_class=SensorStateClass.MEASUREMENT,
        value_fn=lambda state: state.progress,
    ),
    BambuSensorEntityDescription(
        key="remaining_time",
        translation_key="remaining_time",
        device_class=SensorDeviceClass.DURATION,
        native_unit_of_measurement=UnitOfTime.MINUTES,
        state_class=SensorStateClass.MEASUREMENT,
        value_fn=lambda state: state.remaining_minutes,
    ),
    BambuSensorEntityDescription(
        key="current_layer",
        translation_key="current_layer",
        state_class=SensorStateClass.MEASUREMENT,
        value_fn=lambda state: state.layer,
    ),
    BambuSensorEntityDescription(
        key="total_layers",
        translation_key="total_layers",
        state_class=SensorStateClass.MEASUREMENT,
        value_fn=lambda state: state.total_layers,
    ),
    # Targets are shown (and set) by the number entities; no read-only duplicates here.
    _temperature(
        "nozzle_temperature", lambda state: state.nozzle_temp, exists_fn=_is_single_nozzle
    ),
    _temperature("bed_temperature", lambda state: state.bed_temp),
    _temperature(
        "chamber_temperature",
        lambda state: state.chamber_temp,
        exists_fn=lambda state: has_chamber_sensor(state.model),
    ),
    _temperature("left_nozzle_temperature", _nozzle_temp(LEFT_NOZZLE), exists_fn=_is_dual_nozzle),
    _temperature("right_nozzle_temperature", _nozzle_temp(RIGHT_NOZZLE), exists_fn=_is_dual_nozzle),
    BambuSensorEntityDescription(
        key="active_nozzle",
        translation_key="active_nozzle",
        device_class=SensorDeviceClass.ENUM,
        options=["left", "right"],
        value_fn=_active_nozzle,
        exists_fn=_is_dual_nozzle,
    ),
    _fan("part_fan", lambda state: state.part_fan_percent),
    _fan("aux_fan", lambda state: state.aux_fan_percent),
    _fan("chamber_fan", lambda state: state.chamber_fan_percent),
    BambuSensorEntityDescription(
        key="speed_profile",
        translation_key="speed_profile",
        device_class=SensorDeviceClass.ENUM,
        options=list(SPEED_LEVELS.values()),
        entity_registry_enabled_default=False,  # every printer has the speed profile select
        value_fn=lambda state: SPEED_LEVELS.get(state.speed_level or 0),
    ),
    BambuSensorEntityDescription(
        key="job_name",
        translation_key="job_name",
        value_fn=lambda state: state.job_name,
    ),
    BambuSensorEntityDescription(
        key="file_name",
        translation_key="file_name",
        value_fn=lambda state: state.file_name,
    ),
    BambuSensorEntityDescription(
        key="print_error",
        translation_key="print_error",
        value_fn=_print_error,  # "none" (translated) or the code, e.g. "0300_400C"
        attrs_fn=_print_error_attrs,
    ),
    BambuSensorEntityDescription(
        key="hms_errors",
        translation_key="hms_errors",
        state_class=SensorStateClass.MEASUREMENT,
        value_fn=lambda state: len(state.hms_codes),
        attrs_fn=_hms_attributes,
    ),
    BambuSensorEntityDescription(
        key="wifi_signal",
        translation_key="wifi_signal",
        device_class=SensorDeviceClass.SIGNAL_STRENGTH,
        native_unit_of_measurement=SIGNAL_STRENGTH_DECIBELS_MILLIWATT,
        state_class=SensorStateClass.MEASUREMENT,
        entity_category=EntityCategory.DIAGNOSTIC,
        entity_registry_enabled_default=False,
        value_fn=lambda state: state.wifi_dbm,
    ),
    # Single-nozzle printers: the top-level fields. Dual-nozzle ones: per nozzle (below), as
    # their top-level `nozzle_type` can be stale.
    BambuSensorEntityDescription(
        key="nozzle_diameter",
        translation_key="nozzle_diameter",
        native_unit_of_measurement=UnitOfLength.MILLIMETERS,
        state_class=SensorStateClass.MEASUREMENT,
        entity_category=EntityCategory.DIAGNOSTIC,
        value_fn=lambda state: state.nozzle_diameter,
        exists_fn=_is_single_nozzle,
    ),
    BambuSensorEntityDescription(
        key="nozzle_type",
        translation_key="nozzle_type",
        device_class=SensorDeviceClass.ENUM,
        options=list(NOZZLE_MATERIALS),
        entity_category=EntityCategory.DIAGNOSTIC,
        value_fn=lambda state: _material(state.nozzle_type),
        exists_fn=_is_single_nozzle,
    ),
    BambuSensorEntityDescription(
        key="nozzle_flow",
        translation_key="nozzle_flow",
        device_class=SensorDeviceClass.ENUM,
        options=list(NOZZLE_FLOWS),
        entity_category=EntityCategory.DIAGNOSTIC,
        value_fn=lambda state: _flow(state.nozzle_type),
        exists_fn=_is_single_nozzle,
    ),
    *_nozzle_details("left", LEFT_NOZZLE),
    *_nozzle_details("right", RIGHT_NOZZLE),
)

END_TIME: Final = SensorEntityDescription(
    key="end_time",
    translation_key="end_time",
    device_class=SensorDeviceClass.TIMESTAMP,
)
