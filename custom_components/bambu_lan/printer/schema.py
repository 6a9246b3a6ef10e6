"""What the printer's `print` report holds, as the merge (`merge.py`) checks and stores it.

Each known field has a check (a value failing it is dropped, the stored one kept), or names a
nested object (`Obj`), a list of objects matched on `id` (`ById`), a field stored as it comes
(`ANY`), or one stored without counting as a change (`QUIET`). Fields the schema does not name
are kept within a budget (`merge.UnknownBudget`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
import math
from typing import Any, Final

from .values import to_float, to_hex

type Check = Callable[[Any], bool]


class Obj:
    """Schema of a JSON object: known fields, whether it is a filament tray, and whether it is
    a block shared by unrelated readers (its changed parts are named, e.g. `device.bed`)."""

    __slots__ = ("fields", "shared", "tray")

    def __init__(
        self, fields: Mapping[str, Spec], *, tray: bool = False, shared: bool = False
    ) -> None:
        self.fields = fields
        self.tray = tray
        self.shared = shared


class ById:
    """A list of objects merged entry by entry, matched on their `id`.

    `changed`, when given, collects the ids of entries a merge added, changed or dropped (the
    caller clears it before merging).
    """

    __slots__ = ("changed", "entry")

    def __init__(self, entry: Obj, changed: set[str] | None = None) -> None:
        self.entry = entry
        self.changed = changed


class AnyField:
    """An unknown field: stored as it arrives, nested objects deep-merged."""

    __slots__ = ()


class Quiet:
    """A field stored as it arrives whose changes never count as a state change."""

    __slots__ = ()


type Spec = Check | Obj | ById | AnyField | Quiet

ANY: Final = AnyField()
QUIET: Final = Quiet()
GENERIC: Final = Obj({})


def is_num(value: Any) -> bool:
    kind = type(value)
    if kind is float:  # the common case, without to_float's conversion
        return math.isfinite(value)
    return kind is int or to_float(value) is not None


def is_str(value: Any) -> bool:
    return type(value) is str


def is_hex(value: Any) -> bool:
    return to_hex(value) is not None


def is_flag(value: Any) -> bool:
    return type(value) is bool or type(value) is int


def is_list(value: Any) -> bool:
    return type(value) is list


def is_id(value: Any) -> bool:
    return type(value) is str or type(value) is int


_TRAY: Final = Obj(
    {
        "id": is_id,
        "tray_type": is_str,
        "tray_sub_brands": is_str,
        "tray_color": is_str,
        "tray_info_idx": is_str,
        "cols": is_list,
        "remain": is_num,
        "nozzle_temp_min": is_num,
        "nozzle_temp_max": is_num,
        "state": is_num,
        "k": is_num,
        "tag_uid": is_str,
    },
    tray=True,
)

_AMS_UNIT: Final = Obj(
    {
        "id": is_id,
        "humidity": is_num,
        "humidity_raw": is_num,
        "temp": is_num,
        "dry_time": is_num,
        "info": is_hex,
        "dry_setting": Obj(
            {"dry_filament": is_str, "dry_temperature": is_num, "dry_duration": is_num}
        ),
        "tray": ById(_TRAY),
    }
)

AMS_UNITS: Final = ById(_AMS_UNIT, changed=set())
"""The `ams.ams` list; `changed` holds the ids of the units the last merge touched."""

_PACKED_TEMP_HOLDER: Final = Obj({"info": Obj({"temp": is_num})})

_DEVICE: Final = Obj(
    {
        "extruder": Obj(
            {
                "state": is_num,
                "info": ById(Obj({"id": is_id, "temp": is_num, "snow": is_num})),
            }
        ),
        "nozzle": Obj({"info": ById(Obj({"id": is_id, "diameter": is_num, "type": is_str}))}),
        "bed": _PACKED_TEMP_HOLDER,
        "ctc": _PACKED_TEMP_HOLDER,
    },
    shared=True,
)

PRINT_SCHEMA: Final = Obj(
    {
        # envelope: kept for diagnostics, but a new sequence number is not a state change
        "command": QUIET,
        "msg": QUIET,
        "sequence_id": QUIET,
        "t_utc": QUIET,
        "gcode_state": is_str,
        "mc_percent": is_num,
        "mc_remaining_time": is_num,
        "layer_num": is_num,
        "total_layer_num": is_num,
        "nozzle_temper": is_num,
        "nozzle_target_temper": is_num,
        "bed_temper": is_num,
        "bed_target_temper": is_num,
        "chamber_temper": is_num,
        "cooling_fan_speed": is_num,
        "big_fan1_speed": is_num,
        "big_fan2_speed": is_num,
        "heatbreak_fan_speed": is_num,
        "fan_gear": is_num,
        "spd_lvl": is_num,
        "spd_mag": is_num,
        "wifi_signal": is_str,
        "subtask_name": is_str,
        "gcode_file": is_str,
        "print_type": is_str,
        "print_error": is_num,
        "stg_cur": is_num,
        "home_flag": is_num,
        "stat": is_hex,
        "fun": is_hex,
        "sdcard": is_flag,
        "nozzle_diameter": is_num,
        "nozzle_type": is_str,
        "hms": is_list,
        "lights_report": is_list,
        "upgrade_state": Obj({"new_version_state": is_num}),
        "ipcam": Obj({"rtsp_url": is_str}),
        "net": Obj({"info": is_list}),
        "ams": Obj(
            {
                "ams": AMS_UNITS,
                "tray_now": is_num,
                "tray_tar": is_num,
                "tray_pre": is_num,
                "ams_exist_bits": is_hex,
                "tray_exist_bits": is_hex,
            },
            shared=True,
        ),
        "vt_tray": _TRAY,
        "vir_slot": ById(_TRAY),
        "device": _DEVICE,
    }
)
