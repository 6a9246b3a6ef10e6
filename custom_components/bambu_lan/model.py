"""A Bambu Lab printer's state: decode MQTT reports, merge them, read typed values.

Pure Python (no Home Assistant imports) so it stays fast and can be tested and fuzzed alone.

Wire facts come from the project's protocol reference (shared/docs/protocol.md, sections 1, 2, 6
and 7). Policy for bad wire data, applied everywhere:

- Known fields are type-checked when merged. A value of the wrong type (a dict for `mc_percent`,
  a string for `ams`, text that is not a number for a numeric field, `null`) is dropped and the
  last good value stays. Numbers that arrive as numeric strings are accepted, as the firmware
  sends many of them that way.
- Accessors still parse defensively and return None for anything they cannot read.
- Unknown keys are kept as they arrive (they are only shown in diagnostics).
- Containers nested deeper than `_MAX_DEPTH` are dropped, so neither merging nor copying the
  state can recurse without bound.

`PrinterState.apply` keeps the containers it stores private (new containers are copied in), so a
caller may reuse or mutate a message after applying it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
import copy
from dataclasses import dataclass
from enum import StrEnum
import json
import math
from typing import Any, Final, Protocol

MAX_PAYLOAD_BYTES: Final = 256 * 1024
"""Reports larger than this are dropped undecoded (a full X1 report is about 5-15 KiB)."""

_MAX_DEPTH: Final = 16
"""Deepest container nesting stored; real reports nest about 6 levels below `print`."""

DOOR_OPEN_BIT: Final = 0x00800000
"""Door open: bit of `stat` (H2, P2S, X2D) and of `home_flag` (X1 family)."""
SIGNED_COMMANDS_BIT: Final = 0x20000000
"""Bit of `print.fun` set when the firmware only accepts signed commands."""
_SDCARD_PRESENT_BIT: Final = 0x100

GCODE_STATES: Final = frozenset(
    {"IDLE", "PREPARE", "RUNNING", "PAUSE", "FINISH", "FAILED", "SLICING", "INIT"}
)

STAGE_NAMES: Final[Mapping[int, str]] = {
    -1: "idle",  # X1
    0: "printing",
    1: "auto_bed_leveling",
    2: "heatbed_preheating",
    3: "sweeping_xy_mech_mode",
    4: "changing_filament",
    5: "m400_pause",
    6: "paused_filament_runout",
    7: "heating_hotend",
    8: "calibrating_extrusion",
    9: "scanning_bed_surface",
    10: "inspecting_first_layer",
    11: "identifying_build_plate_type",
    12: "calibrating_micro_lidar",
    13: "homing_toolhead",
    14: "cleaning_nozzle_tip",
    15: "checking_extruder_temperature",
    16: "paused_user",
    17: "paused_front_cover_falling",
    18: "calibrating_micro_lidar",  # the firmware uses both 12 and 18 for this stage
    19: "calibrating_extrusion_flow",
    20: "paused_nozzle_temperature_malfunction",
    21: "paused_heat_bed_temperature_malfunction",
    22: "filament_unloading",
    23: "paused_skipped_step",
    24: "filament_loading",
    25: "calibrating_motor_noise",
    26: "paused_ams_lost",
    27: "paused_low_fan_speed_heat_break",
    28: "paused_chamber_temperature_control_error",
    29: "cooling_chamber",
    30: "paused_user_gcode",
    31: "motor_noise_showoff",
    32: "paused_nozzle_filament_covered_detected",
    33: "paused_cutter_error",
    34: "paused_first_layer_error",
    35: "paused_nozzle_clog",
    255: "idle",  # P1, A1
}

SPEED_LEVELS: Final[Mapping[int, str]] = {1: "silent", 2: "standard", 3: "sport", 4: "ludicrous"}

HMS_SEVERITIES: Final[Mapping[int, str]] = {1: "fatal", 2: "serious", 3: "common", 4: "info"}


# --- models ------------------------------------------------------------------------------------


class PrinterModel(StrEnum):
    """Printer models (values are Bambu's short names, without spaces)."""

    X1C = "X1C"
    X1 = "X1"
    X1E = "X1E"
    P1P = "P1P"
    P1S = "P1S"
    P2S = "P2S"
    A1 = "A1"
    A1MINI = "A1MINI"
    A2L = "A2L"
    H2D = "H2D"
    H2DPRO = "H2DPRO"
    H2S = "H2S"
    H2C = "H2C"
    X2D = "X2D"


_X1_FAMILY: Final = frozenset({PrinterModel.X1C, PrinterModel.X1, PrinterModel.X1E})
# Newer series report the door in `stat`; the X1 family in `home_flag`.
_STAT_DOOR_MODELS: Final = frozenset(
    {
        PrinterModel.P2S,
        PrinterModel.H2D,
        PrinterModel.H2DPRO,
        PrinterModel.H2S,
        PrinterModel.H2C,
        PrinterModel.X2D,
    }
)
_CHAMBER_SENSOR_MODELS: Final = _X1_FAMILY | _STAT_DOOR_MODELS
_DUAL_NOZZLE_MODELS: Final = frozenset(
    {PrinterModel.H2D, PrinterModel.H2DPRO, PrinterModel.H2C, PrinterModel.X2D}
)


def has_chamber_sensor(model: PrinterModel | None) -> bool:
    """Whether `chamber_temper` is a real reading (P1 and A1 report junk such as 5)."""
    return model in _CHAMBER_SENSOR_MODELS


def has_door_sensor(model: PrinterModel | None) -> bool:
    """Whether the printer reports its door (P1P, P1S and the A series do not)."""
    return model in _CHAMBER_SENSOR_MODELS


def is_dual_nozzle_model(model: PrinterModel | None) -> bool:
    """Whether the model has two nozzles (the data itself decides: `PrinterState.nozzles`)."""
    return model in _DUAL_NOZZLE_MODELS


def reports_full(model: PrinterModel | None) -> bool:
    """Whether the model sends its whole state on every push (the X1 family)."""
    return model in _X1_FAMILY


_SERIAL_PREFIXES: Final[Mapping[str, PrinterModel]] = {
    "00M": PrinterModel.X1C,  # X1 and X1C share it; the X1C is far more common
    "00W": PrinterModel.X1,
    "03W": PrinterModel.X1E,
    "01S": PrinterModel.P1P,
    "01P": PrinterModel.P1S,
    "22E": PrinterModel.P2S,
    "030": PrinterModel.A1MINI,
    "039": PrinterModel.A1,
    "093": PrinterModel.H2S,
    "094": PrinterModel.H2D,
    "239": PrinterModel.H2DPRO,
    "31B": PrinterModel.H2C,
    "20P": PrinterModel.X2D,
    "26A": PrinterModel.A2L,
}

_MODEL_CODES: Final[Mapping[str, PrinterModel]] = {
    "BL-P001": PrinterModel.X1C,
    "3DPRINTER-X1-CARBON": PrinterModel.X1C,
    "BL-P002": PrinterModel.X1,
    "3DPRINTER-X1": PrinterModel.X1,
    "C13": PrinterModel.X1E,
    "C11": PrinterModel.P1P,
    "C12": PrinterModel.P1S,
    "N7": PrinterModel.P2S,
    "N1": PrinterModel.A1MINI,
    "N2S": PrinterModel.A1,
    "N9": PrinterModel.A2L,
    "O1D": PrinterModel.H2D,
    "O1E": PrinterModel.H2DPRO,
    "O1S": PrinterModel.H2S,
    "O1C": PrinterModel.H2C,
    "O1C2": PrinterModel.H2C,
    "N6": PrinterModel.X2D,
}

_PRODUCT_NAMES: Final[Mapping[str, PrinterModel]] = {
    **{model.value: model for model in PrinterModel},
    "X1CARBON": PrinterModel.X1C,
}


def model_from_serial(serial: str | None) -> PrinterModel | None:
    """Guess the model from the serial's first three characters (a hint, not a rule)."""
    if not isinstance(serial, str):
        return None
    return _SERIAL_PREFIXES.get(serial.strip().upper()[:3])


def model_from_code(code: str | None) -> PrinterModel | None:
    """Model from a model code: SSDP `DevModel.bambu.com` or get_version `project_name`."""
    if not isinstance(code, str):
        return None
    return _MODEL_CODES.get(code.strip().upper())


def model_from_product_name(name: str | None) -> PrinterModel | None:
    """Model from get_version's `product_name`, e.g. "Bambu Lab X1-Carbon", "Bambu Lab A1 mini"."""
    if not isinstance(name, str):
        return None
    key = name.strip().upper()
    key = key.removeprefix("BAMBU LAB")
    for char in " -_":
        key = key.replace(char, "")
    return _PRODUCT_NAMES.get(key)


# --- decoding -----------------------------------------------------------------------------------


def _stdlib_loads(data: bytes) -> Any:
    return json.loads(data)


try:
    import orjson
except ImportError:  # pragma: no cover - orjson ships with Home Assistant
    _loads: Callable[[bytes], Any] = _stdlib_loads
else:
    _loads = orjson.loads


def decode_payload(payload: bytes) -> dict[str, Any] | None:
    """Decode one report; None for oversized, non-UTF-8, non-JSON or non-object payloads."""
    if len(payload) > MAX_PAYLOAD_BYTES:
        return None
    try:
        data = _loads(payload)
    except ValueError, TypeError, RecursionError:  # UnicodeDecodeError is a ValueError
        return None
    return data if type(data) is dict else None


# --- value parsing ------------------------------------------------------------------------------


def _to_float(value: Any) -> float | None:
    """A finite number from an int, float or numeric string (never from a bool)."""
    kind = type(value)
    try:
        if kind is not float and kind is not str and kind is not int:
            return None
        number = float(value)
    except ValueError, OverflowError:
        return None
    return number if math.isfinite(number) else None


def _to_int(value: Any) -> int | None:
    """An int from an int, float or numeric string; fractions are truncated."""
    if type(value) is int:
        return value
    if type(value) is str:
        try:
            return int(value)
        except ValueError:
            pass
    number = _to_float(value)
    return None if number is None else int(number)


def _to_hex(value: Any) -> int | None:
    """An int from a hex string (`fun`, `stat`) or an int."""
    if type(value) is int:
        return value
    if type(value) is str:
        try:
            return int(value, 16)
        except ValueError:
            return None
    return None


def _to_str(value: Any) -> str | None:
    """A non-empty string, else None."""
    return value if type(value) is str and value else None


def _dig(obj: Any, *keys: str) -> Any:
    """`obj[k1][k2]...` through dicts only; None when a step is missing or not a dict."""
    for key in keys:
        if type(obj) is not dict:
            return None
        obj = obj.get(key)
    return obj


def _unpack_temp(value: Any) -> tuple[float, float] | None:
    """(current, target) from an H2-style packed temperature: low 16 bits current, high target."""
    packed = _to_int(value)
    if packed is None or packed < 0:
        return None
    return float(packed & 0xFFFF), float((packed >> 16) & 0xFFFF)


def _steps_to_percent(value: Any) -> int | None:
    """Fan speed in 0-15 steps (as the printer reports it) to percent."""
    steps = _to_int(value)
    if steps is None or not 0 <= steps <= 15:
        return None
    return (steps * 200 + 15) // 30  # round(steps * 100 / 15) without float rounding quirks


# --- merging ------------------------------------------------------------------------------------

_MISSING: Final = object()
_INVALID: Final = object()

type _Check = Callable[[Any], bool]


class _Obj:
    """Schema of a JSON object: known fields and whether it is a filament tray."""

    __slots__ = ("fields", "tray")

    def __init__(self, fields: Mapping[str, _Spec], *, tray: bool = False) -> None:
        self.fields = fields
        self.tray = tray


class _ById:
    """A list of objects merged entry by entry, matched on their `id`."""

    __slots__ = ("entry",)

    def __init__(self, entry: _Obj) -> None:
        self.entry = entry


class _Any:
    """An unknown field: stored as it arrives, nested objects deep-merged."""

    __slots__ = ()


class _Quiet:
    """A field stored as it arrives whose changes never count as a state change."""

    __slots__ = ()


type _Spec = _Check | _Obj | _ById | _Any | _Quiet

_ANY: Final = _Any()
_QUIET: Final = _Quiet()
_GENERIC: Final = _Obj({})


def _is_num(value: Any) -> bool:
    return type(value) is int or _to_float(value) is not None


def _is_str(value: Any) -> bool:
    return type(value) is str


def _is_hex(value: Any) -> bool:
    return _to_hex(value) is not None


def _is_flag(value: Any) -> bool:
    return type(value) is bool or type(value) is int


def _is_list(value: Any) -> bool:
    return type(value) is list


def _is_id(value: Any) -> bool:
    return type(value) is str or type(value) is int


def _id_key(value: Any) -> str | None:
    """Entries are matched on `id`, which arrives as "0" or 0 depending on the list."""
    if type(value) is str:
        return value.strip()
    if type(value) is int:
        return str(value)
    return None


_EMPTY_TRAY_KEYS: Final = frozenset({"id", "state"})


def _is_empty_tray(tray: dict[str, Any]) -> bool:
    """A tray holding only a valid `id` (and maybe `state`) is an empty slot."""
    return tray.keys() <= _EMPTY_TRAY_KEYS and _is_id(tray.get("id"))


def _empty_tray(tray: dict[str, Any]) -> dict[str, Any]:
    cleared = {"id": tray["id"]}
    state = tray.get("state", _MISSING)
    if state is not _MISSING and _is_num(state):
        cleared["state"] = state
    return cleared


def _clone(value: Any, depth: int) -> Any:
    """Deep-copy JSON containers; _INVALID when nested deeper than `_MAX_DEPTH`."""
    kind = type(value)
    if kind is not dict and kind is not list:
        return value
    if depth > _MAX_DEPTH:
        return _INVALID
    if kind is dict:
        copied_dict: dict[Any, Any] = {}
        for key, item in value.items():
            copied = _clone(item, depth + 1)
            if copied is _INVALID:
                return _INVALID
            copied_dict[key] = copied
        return copied_dict
    copied_list: list[Any] = []
    for item in value:
        copied = _clone(item, depth + 1)
        if copied is _INVALID:
            return _INVALID
        copied_list.append(copied)
    return copied_list


def _merge_obj(
    target: dict[str, Any],
    delta: dict[str, Any],
    spec: _Obj,
    depth: int,
    full: bool,
    *,
    changed_keys: set[str] | None = None,
) -> bool:
    """Merge `delta` into `target` (at nesting `depth`) in place; True if anything changed.

    `changed_keys`, at the top level, collects the keys whose value changed.
    """
    changed = False
    fields = spec.fields
    for key, value in delta.items():
        old = target.get(key, _MISSING)
        if old is value or old == value:  # `is`: a NaN equals itself here
            continue  # the common case for X1 full reports: most fields repeat
        if _merge_field(target, key, old, value, fields.get(key, _ANY), depth=depth + 1, full=full):
            changed = True
            if changed_keys is not None:
                changed_keys.add(key)
    return changed


def _merge_field(
    target: dict[str, Any], key: str, old: Any, value: Any, spec: _Spec, *, depth: int, full: bool
) -> bool:
    """Merge one differing value into `target[key]`; `depth` is the value's nesting level."""
    if isinstance(spec, _Obj):
        if type(value) is not dict or depth > _MAX_DEPTH:
            return False
        if spec.tray and _is_empty_tray(value):
            target[key] = _empty_tray(value)
            return True
        if type(old) is dict:
            return _merge_obj(old, value, spec, depth, full)
        fresh: dict[str, Any] = {}
        if _merge_obj(fresh, value, spec, depth, full) or not value:
            target[key] = fresh
            return True
        return False
    if isinstance(spec, _ById):
        if type(value) is not list or depth >= _MAX_DEPTH:
            return False
        if type(old) is not list:
            old = target[key] = []
        return _merge_by_id(old, value, spec.entry, depth, full)
    if isinstance(spec, _Any):
        if type(old) is dict and type(value) is dict:
            return depth <= _MAX_DEPTH and _merge_obj(old, value, _GENERIC, depth, full)
        return _store(target, key, value, depth)
    if isinstance(spec, _Quiet):
        _store(target, key, value, depth)
        return False
    return spec(value) and _store(target, key, value, depth)


def _store(target: dict[str, Any], key: str, value: Any, depth: int) -> bool:
    copied = _clone(value, depth)
    if copied is _INVALID:
        return False
    target[key] = copied
    return True


def _merge_by_id(
    items: list[dict[str, Any]], delta: list[Any], entry: _Obj, depth: int, full: bool
) -> bool:
    """Merge a list of objects by `id`; on a full report, drop entries it no longer lists."""
    index = {_id_key(item.get("id")): pos for pos, item in enumerate(items)}
    seen: set[str] = set()
    changed = False
    for raw in delta:
        ident = _id_key(raw.get("id")) if type(raw) is dict else None
        if ident is None:
            continue
        seen.add(ident)
        pos = index.get(ident)
        if pos is None:
            fresh: dict[str, Any] = {}
            if entry.tray and _is_empty_tray(raw):
                fresh = _empty_tray(raw)
            else:
                _merge_obj(fresh, raw, entry, depth + 1, full)
            index[ident] = len(items)
            items.append(fresh)
            changed = True
            continue
        current = items[pos]
        if current == raw:
            continue
        if entry.tray and _is_empty_tray(raw):
            items[pos] = _empty_tray(raw)
            changed = True
        elif _merge_obj(current, raw, entry, depth + 1, full):
            changed = True
    if full and len(seen) < len(items):
        items[:] = [item for item in items if _id_key(item.get("id")) in seen]
        changed = True
    return changed


_TRAY: Final = _Obj(
    {
        "id": _is_id,
        "tray_type": _is_str,
        "tray_sub_brands": _is_str,
        "tray_color": _is_str,
        "tray_info_idx": _is_str,
        "cols": _is_list,
        "remain": _is_num,
        "nozzle_temp_min": _is_num,
        "nozzle_temp_max": _is_num,
        "state": _is_num,
    },
    tray=True,
)

_AMS_UNIT: Final = _Obj(
    {
        "id": _is_id,
        "humidity": _is_num,
        "humidity_raw": _is_num,
        "temp": _is_num,
        "dry_time": _is_num,
        "tray": _ById(_TRAY),
    }
)

_PACKED_TEMP_HOLDER: Final = _Obj({"info": _Obj({"temp": _is_num})})

_DEVICE: Final = _Obj(
    {
        "extruder": _Obj(
            {
                "state": _is_num,
                "info": _ById(_Obj({"id": _is_id, "temp": _is_num, "snow": _is_num})),
            }
        ),
        "nozzle": _Obj({"info": _ById(_Obj({"id": _is_id, "diameter": _is_num, "type": _is_str}))}),
        "bed": _PACKED_TEMP_HOLDER,
        "ctc": _PACKED_TEMP_HOLDER,
    }
)

_PRINT: Final = _Obj(
    {
        # envelope: kept for diagnostics, but a new sequence number is not a state change
        "command": _QUIET,
        "msg": _QUIET,
        "sequence_id": _QUIET,
        "t_utc": _QUIET,
        "gcode_state": _is_str,
        "mc_percent": _is_num,
        "mc_remaining_time": _is_num,
        "layer_num": _is_num,
        "total_layer_num": _is_num,
        "nozzle_temper": _is_num,
        "nozzle_target_temper": _is_num,
        "bed_temper": _is_num,
        "bed_target_temper": _is_num,
        "chamber_temper": _is_num,
        "cooling_fan_speed": _is_num,
        "big_fan1_speed": _is_num,
        "big_fan2_speed": _is_num,
        "heatbreak_fan_speed": _is_num,
        "fan_gear": _is_num,
        "spd_lvl": _is_num,
        "spd_mag": _is_num,
        "wifi_signal": _is_str,
        "subtask_name": _is_str,
        "gcode_file": _is_str,
        "print_type": _is_str,
        "print_error": _is_num,
        "stg_cur": _is_num,
        "home_flag": _is_num,
        "stat": _is_hex,
        "fun": _is_hex,
        "sdcard": _is_flag,
        "nozzle_diameter": _is_num,
        "nozzle_type": _is_str,
        "hms": _is_list,
        "lights_report": _is_list,
        "upgrade_state": _Obj({"new_version_state": _is_num}),
        "ipcam": _Obj({"rtsp_url": _is_str}),
        "net": _Obj({"info": _is_list}),
        "ams": _Obj(
            {
                "ams": _ById(_AMS_UNIT),
                "tray_now": _is_num,
                "tray_tar": _is_num,
                "tray_pre": _is_num,
                "ams_exist_bits": _is_hex,
                "tray_exist_bits": _is_hex,
            }
        ),
        "vt_tray": _TRAY,
        "vir_slot": _ById(_TRAY),
        "device": _DEVICE,
    }
)


# --- typed values -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HmsEntry:
    """One Health Management System notification."""

    code: str
    """"HMS_AAAA_AAAA_CCCC_CCCC", the form Bambu's wiki and apps use."""
    severity: int
    """1 fatal, 2 serious, 3 common, 4 info (`HMS_SEVERITIES`)."""
    module: int
    """0x03 motion controller, 0x05 mainboard, 0x07 AMS, 0x08 toolhead, 0x0C xcam."""


@dataclass(frozen=True, slots=True)
class Nozzle:
    """One nozzle of an H2-style printer (`device.extruder.info[]`); id 0 right, 1 left."""

    id: int
    temp: float | None
    target: float | None
    diameter: float | None
    type: str | None


@dataclass(frozen=True, slots=True)
class AmsTray:
    """One filament slot (an AMS tray, or an external spool with slot 254/255)."""

    slot: int
    empty: bool
    tray_type: str | None
    sub_brand: str | None
    color: str | None
    """"RRGGBBAA", upper case."""
    remain: int | None
    """Percent left; None when the printer does not know (it sends -1)."""


@dataclass(frozen=True, slots=True)
class AmsUnit:
    """One AMS unit (ids from 128 up are AMS HT units with a single slot)."""

    id: int
    humidity_index: int | None
    """As the printer sends it: 1 = wet ... 5 = dry (Bambu's apps show 6 - index)."""
    humidity_percent: int | None
    temp: float | None
    trays: tuple[AmsTray, ...]


@dataclass(frozen=True, slots=True)
class ModuleInfo:
    """One entry of the get_version reply."""

    name: str
    sw_ver: str | None
    hw_ver: str | None
    sn: str | None
    product_name: str | None
    project_name: str | None


def _hms_entry(raw: Any) -> HmsEntry | None:
    if type(raw) is not dict:
        return None
    attr = _to_int(raw.get("attr"))
    code = _to_int(raw.get("code"))
    if attr is None or code is None:
        return None
    attr &= 0xFFFFFFFF
    code &= 0xFFFFFFFF
    return HmsEntry(
        code=f"HMS_{attr >> 16:04X}_{attr & 0xFFFF:04X}_{code >> 16:04X}_{code & 0xFFFF:04X}",
        severity=code >> 16,
        module=attr >> 24,
    )


def _tray(raw: Any) -> AmsTray | None:
    if type(raw) is not dict:
        return None
    slot = _to_int(raw.get("id"))
    if slot is None:
        return None
    tray_type = _to_str(raw.get("tray_type"))
    color = _to_str(raw.get("tray_color"))
    if color is not None and (len(color) != 8 or _to_hex(color) is None):
        color = None
    remain = _to_int(raw.get("remain"))
    return AmsTray(
        slot=slot,
        empty=tray_type is None,
        tray_type=tray_type,
        sub_brand=_to_str(raw.get("tray_sub_brands")),
        color=color.upper() if color else None,
        remain=remain if remain is not None and 0 <= remain <= 100 else None,
    )


def _ams_unit(raw: Any) -> AmsUnit | None:
    if type(raw) is not dict:
        return None
    unit_id = _to_int(raw.get("id"))
    if unit_id is None:
        return None
    trays = raw.get("tray")
    parsed = [_tray(tray) for tray in trays] if type(trays) is list else []
    humidity = _to_int(raw.get("humidity"))
    return AmsUnit(
        id=unit_id,
        humidity_index=humidity if humidity is not None and 1 <= humidity <= 5 else None,
        humidity_percent=_to_int(raw.get("humidity_raw")),
        temp=_to_float(raw.get("temp")),
        trays=tuple(tray for tray in parsed if tray is not None),
    )


def _module_info(raw: Any) -> ModuleInfo | None:
    if type(raw) is not dict or not _to_str(raw.get("name")):
        return None
    return ModuleInfo(
        name=raw["name"],
        sw_ver=_to_str(raw.get("sw_ver")),
        hw_ver=_to_str(raw.get("hw_ver")),
        sn=_to_str(raw.get("sn")),
        product_name=_to_str(raw.get("product_name")),
        project_name=_to_str(raw.get("project_name")),
    )


_AP_BOARDS: Final = ("rv1126", "ap", "esp32")  # X1; X1E/H2/P2S; P1/A1


# --- the state ----------------------------------------------------------------------------------


class _Readable(Protocol):
    def get(self, key: str, default: Any = None, /) -> Any: ...


class _KeyRecorder:
    """Reads through to the print object and remembers which top-level keys were read."""

    __slots__ = ("_data", "keys")

    def __init__(self, data: dict[str, Any]) -> None:
        self._data = data
        self.keys: set[str] = set()

    def get(self, key: str, default: Any = None, /) -> Any:
        self.keys.add(key)
        return self._data.get(key, default)


class PrinterState:
    """The merged `print` object of one printer plus its get_version information."""

    def __init__(self, serial: str | None = None) -> None:
        """Start empty; `serial` (the configured one) is the last resort for the model."""
        self.serial = serial.strip().upper() if isinstance(serial, str) else None
        self._print: dict[str, Any] = {}
        # Accessors read the print object through `_view`: the dict itself, or a recorder
        # while an entity refreshes (see `record_reads`).
        self._view: _Readable = self._print
        self.changed_keys: frozenset[str] | None = None
        """Top-level `print` keys the last `apply` changed; None: anything may have changed."""
        self._modules: dict[str, ModuleInfo] = {}
        self._model = model_from_serial(self.serial)
        self.full_state_received = False
        """Set by a full report (`push_status` with `msg` 0, e.g. the reply to pushall).

        The owner may clear it after a reconnect to wait for the next full report.
        """

    # --- input --------------------------------------------------------------------------------

    def apply(self, message: dict[str, Any]) -> bool:
        """Merge one decoded report message; True if anything an entity can show changed.

        Only `print` messages with `command == "push_status"` are status; command acks that
        share the `print` key (gcode_line, pause ...) are ignored. `info` get_version replies
        update the module table.
        """
        self.changed_keys = frozenset()
        if type(message) is not dict:
            return False
        changed = False
        status = message.get("print")
        if type(status) is dict and status.get("command") == "push_status":
            changed = self._apply_status(status)
        info = message.get("info")
        if (
            type(info) is dict
            and info.get("command") == "get_version"
            and self._apply_version(info)
        ):
            self.changed_keys = None  # model and firmware feed many entities
            changed = True
        return changed

    def record_reads(self) -> None:
        """Start recording which top-level `print` keys the accessors read."""
        self._view = _KeyRecorder(self._print)

    def recorded_reads(self) -> frozenset[str]:
        """Stop recording; the keys read since `record_reads`.

        An entity that read none of `changed_keys` after a report shows what it showed before,
        so it need not be evaluated again (the coordinator's fan-out stays small).
        """
        view, self._view = self._view, self._print
        return frozenset(view.keys) if isinstance(view, _KeyRecorder) else frozenset()

    def _apply_status(self, status: dict[str, Any]) -> bool:
        full = type(status.get("msg")) is int and status["msg"] == 0
        keys: set[str] = set()
        changed = _merge_obj(self._print, status, _PRINT, 0, full, changed_keys=keys)
        self.changed_keys = frozenset(keys)
        if full and not self.full_state_received:
            self.full_state_received = True
            self.changed_keys = None
            changed = True
        return changed

    def _apply_version(self, info: dict[str, Any]) -> bool:
        raw_modules = info.get("module")
        if type(raw_modules) is not list:
            return False
        modules = {m.name: m for m in map(_module_info, raw_modules) if m is not None}
        if not modules or modules == self._modules:
            return False
        self._modules = modules
        self._model = self._detect_model()
        return True

    def snapshot(self) -> dict[str, Any]:
        """A deep copy of the merged `print` object (for diagnostics)."""
        return copy.deepcopy(self._print)

    # --- version info -------------------------------------------------------------------------

    @property
    def modules(self) -> tuple[ModuleInfo, ...]:
        """The modules of the last get_version reply."""
        return tuple(self._modules.values())

    @property
    def model(self) -> PrinterModel | None:
        """Model from get_version (product_name, then project/hardware), else the serial."""
        return self._model

    @property
    def product_name(self) -> str | None:
        """E.g. "Bambu Lab P1S" (newer firmware only)."""
        ota = self._modules.get("ota")
        return ota.product_name if ota else None

    @property
    def firmware(self) -> str | None:
        """Printer firmware version (the `ota` module's sw_ver)."""
        ota = self._modules.get("ota")
        return ota.sw_ver if ota else None

    @property
    def hardware(self) -> str | None:
        """Hardware version of the main (AP) board, e.g. "AP05"."""
        board = self._ap_board()
        return board.hw_ver if board else None

    @property
    def reported_serial(self) -> str | None:
        """The serial the printer reports (the `ota` module's sn)."""
        ota = self._modules.get("ota")
        return ota.sn if ota else None

    def _ap_board(self) -> ModuleInfo | None:
        for name in _AP_BOARDS:
            if module := self._modules.get(name):
                return module
        for module in self._modules.values():
            if module.hw_ver and module.hw_ver.startswith("AP"):
                return module
        return None

    def _detect_model(self) -> PrinterModel | None:
        if model := model_from_product_name(self.product_name):
            return model
        board = self._ap_board()
        if board is not None:
            if model := model_from_code(board.project_name):
                return model
            if board.hw_ver == "AP02":
                return PrinterModel.X1E
            if board.name == "rv1126" and board.hw_ver == "AP05" and not board.project_name:
                return PrinterModel.X1C
        return model_from_serial(self.reported_serial) or model_from_serial(self.serial)

    # --- job ----------------------------------------------------------------------------------

    @property
    def gcode_state(self) -> str | None:
        """IDLE, PREPARE, RUNNING, PAUSE, FINISH, FAILED, SLICING or INIT; None if unknown."""
        value = self.gcode_state_raw
        return value if value in GCODE_STATES else None

    @property
    def gcode_state_raw(self) -> str | None:
        """The reported gcode_state, upper-cased, even if unknown (for logging it once)."""
        value = self._view.get("gcode_state")
        return value.strip().upper() if type(value) is str else None

    @property
    def stage(self) -> int | None:
        """The current stage id (`stg_cur`)."""
        return _to_int(self._view.get("stg_cur"))

    @property
    def stage_name(self) -> str | None:
        """Snake-case name of the current stage (`STAGE_NAMES`); None for unknown ids."""
        stage = self.stage
        return None if stage is None else STAGE_NAMES.get(stage)

    @property
    def progress(self) -> int | None:
        """Print progress in percent."""
        value = _to_int(self._view.get("mc_percent"))
        return value if value is not None and 0 <= value <= 100 else None

    @property
    def remaining_minutes(self) -> int | None:
        """Estimated minutes left."""
        value = _to_int(self._view.get("mc_remaining_time"))
        return value if value is not None and value >= 0 else None

    @property
    def layer(self) -> int | None:
        """Current layer."""
        return self._non_negative_int("layer_num")

    @property
    def total_layers(self) -> int | None:
        """Layers in the job."""
        return self._non_negative_int("total_layer_num")

    @property
    def job_name(self) -> str | None:
        """The job's name (`subtask_name`)."""
        return _to_str(self._view.get("subtask_name"))

    @property
    def file_name(self) -> str | None:
        """The printed file (`gcode_file`)."""
        return _to_str(self._view.get("gcode_file"))

    @property
    def print_error(self) -> int | None:
        """The raw print error (0 = none)."""
        value = _to_int(self._view.get("print_error"))
        return None if value is None else value & 0xFFFFFFFF

    @property
    def print_error_code(self) -> str | None:
        """Print error as "AAAA_BBBB" (e.g. "0300_400C", cancelled by the user); None if none."""
        value = self.print_error
        if not value:
            return None
        return f"{value >> 16:04X}_{value & 0xFFFF:04X}"

    def _non_negative_int(self, key: str) -> int | None:
        value = _to_int(self._view.get(key))
        return value if value is not None and value >= 0 else None

    # --- temperatures -------------------------------------------------------------------------

    @property
    def nozzle_temp(self) -> float | None:
        """Active nozzle temperature (°C); H2-style packed values win over the legacy field."""
        packed = self._active_nozzle_temps()
        return packed[0] if packed else _to_float(self._view.get("nozzle_temper"))

    @property
    def nozzle_target(self) -> float | None:
        """Active nozzle target (°C)."""
        packed = self._active_nozzle_temps()
        return packed[1] if packed else _to_float(self._view.get("nozzle_target_temper"))

    @property
    def bed_temp(self) -> float | None:
        """Bed temperature (°C)."""
        packed = _unpack_temp(_dig(self._view.get("device"), "bed", "info", "temp"))
        return packed[0] if packed else _to_float(self._view.get("bed_temper"))

    @property
    def bed_target(self) -> float | None:
        """Bed target (°C)."""
        packed = _unpack_temp(_dig(self._view.get("device"), "bed", "info", "temp"))
        return packed[1] if packed else _to_float(self._view.get("bed_target_temper"))

    @property
    def chamber_temp(self) -> float | None:
        """Chamber temperature as reported; junk on models without a sensor (gate on model)."""
        packed = _unpack_temp(_dig(self._view.get("device"), "ctc", "info", "temp"))
        return packed[0] if packed else _to_float(self._view.get("chamber_temper"))

    @property
    def chamber_target(self) -> float | None:
        """Chamber target (°C); only H2-style printers report it."""
        packed = _unpack_temp(_dig(self._view.get("device"), "ctc", "info", "temp"))
        return packed[1] if packed else None

    def _active_nozzle_temps(self) -> tuple[float, float] | None:
        active = self.active_nozzle or 0
        for nozzle in self._extruder_infos():
            if _to_int(nozzle.get("id")) == active:
                return _unpack_temp(nozzle.get("temp"))
        return None

    def _extruder_infos(self) -> list[dict[str, Any]]:
        infos = _dig(self._view.get("device"), "extruder", "info")
        return [item for item in infos if type(item) is dict] if type(infos) is list else []

    # --- nozzles (H2D dual nozzle) ------------------------------------------------------------

    @property
    def nozzles(self) -> list[Nozzle]:
        """Every nozzle the printer reports in `device.extruder.info`, ordered by id."""
        details: dict[int | None, dict[str, Any]] = {}
        infos = _dig(self._view.get("device"), "nozzle", "info")
        if type(infos) is list:
            details = {_to_int(item.get("id")): item for item in infos if type(item) is dict}
        nozzles = []
        for item in self._extruder_infos():
            nozzle_id = _to_int(item.get("id"))
            if nozzle_id is None:
                continue
            temps = _unpack_temp(item.get("temp"))
            detail = details.get(nozzle_id, {})
            nozzles.append(
                Nozzle(
                    id=nozzle_id,
                    temp=temps[0] if temps else None,
                    target=temps[1] if temps else None,
                    diameter=_to_float(detail.get("diameter")),
                    type=_to_str(detail.get("type")),
                )
            )
        return sorted(nozzles, key=lambda nozzle: nozzle.id)

    @property
    def is_dual_nozzle(self) -> bool:
        """Two nozzles: from `device.extruder.state` (low 4 bits = count), else the list."""
        state = _to_int(_dig(self._view.get("device"), "extruder", "state"))
        if state is not None:
            return state & 0xF >= 2
        return len(self._extruder_infos()) >= 2

    @property
    def active_nozzle(self) -> int | None:
        """Id of the active nozzle (bits 4-7 of `device.extruder.state`): 0 right, 1 left."""
        state = _to_int(_dig(self._view.get("device"), "extruder", "state"))
        return None if state is None else (state >> 4) & 0xF

    @property
    def nozzle_diameter(self) -> float | None:
        """Nozzle diameter (mm)."""
        return _to_float(self._view.get("nozzle_diameter"))

    @property
    def nozzle_type(self) -> str | None:
        """E.g. "stainless_steel" or "hardened_steel"."""
        return _to_str(self._view.get("nozzle_type"))

    # --- fans and speed -----------------------------------------------------------------------

    @property
    def part_fan_percent(self) -> int | None:
        """Part cooling fan (%); from the 0-15 step field, else from `fan_gear` byte 0."""
        return self._fan_percent("cooling_fan_speed", 0)

    @property
    def aux_fan_percent(self) -> int | None:
        """Auxiliary fan (%); from the 0-15 step field, else from `fan_gear` byte 1."""
        return self._fan_percent("big_fan1_speed", 1)

    @property
    def chamber_fan_percent(self) -> int | None:
        """Chamber fan (%); from the 0-15 step field, else from `fan_gear` byte 2."""
        return self._fan_percent("big_fan2_speed", 2)

    @property
    def heatbreak_fan_percent(self) -> int | None:
        """Heatbreak (hotend) fan (%)."""
        return _steps_to_percent(self._view.get("heatbreak_fan_speed"))

    def _fan_percent(self, key: str, gear_byte: int) -> int | None:
        # The step fields exist on every model; fan_gear only on newer firmware.
        value = self._view.get(key, _MISSING)
        if value is not _MISSING:
            return _steps_to_percent(value)
        gear = _to_int(self._view.get("fan_gear"))
        if gear is None or gear < 0:
            return None
        level = (gear >> (8 * gear_byte)) & 0xFF
        return (level * 200 + 255) // 510  # round(level * 100 / 255)

    @property
    def speed_level(self) -> int | None:
        """Speed profile: 1 silent, 2 standard, 3 sport, 4 ludicrous (`SPEED_LEVELS`)."""
        value = _to_int(self._view.get("spd_lvl"))
        return value if value in SPEED_LEVELS else None

    @property
    def speed_percent(self) -> int | None:
        """Speed in percent of standard (`spd_mag`)."""
        return self._non_negative_int("spd_mag")

    # --- health -------------------------------------------------------------------------------

    @property
    def hms(self) -> list[HmsEntry]:
        """Active HMS notifications."""
        raw = self._view.get("hms")
        if type(raw) is not list:
            return []
        return [entry for entry in map(_hms_entry, raw) if entry is not None]

    @property
    def hms_codes(self) -> list[str]:
        """Active HMS codes, "HMS_XXXX_XXXX_XXXX_XXXX"."""
        return [entry.code for entry in self.hms]

    @property
    def signed_commands_required(self) -> bool | None:
        """Whether the firmware rejects unsigned commands (`fun` bit 0x20000000)."""
        fun = _to_hex(self._view.get("fun"))
        return None if fun is None else bool(fun & SIGNED_COMMANDS_BIT)

    @property
    def update_available(self) -> bool | None:
        """Whether a firmware update is offered (`upgrade_state.new_version_state` == 1)."""
        state = _to_int(_dig(self._view.get("upgrade_state"), "new_version_state"))
        return None if state is None else state == 1

    # --- hardware state -----------------------------------------------------------------------

    @property
    def lights(self) -> dict[str, str]:
        """Light node -> mode ("on", "off" or "flashing")."""
        raw = self._view.get("lights_report")
        if type(raw) is not list:
            return {}
        return {
            item["node"]: item["mode"]
            for item in raw
            if type(item) is dict and _to_str(item.get("node")) and _to_str(item.get("mode"))
        }

    @property
    def chamber_light_on(self) -> bool | None:
        """Whether the chamber light is on (flashing counts as on)."""
        mode = self.lights.get("chamber_light")
        return None if mode is None else mode.lower() in ("on", "flashing")

    @property
    def door_open(self) -> bool | None:
        """Door state where the model reports it (X1 in `home_flag`; H2/P2S/X2D in `stat`)."""
        model = self._model
        if model in _X1_FAMILY:
            bits = _to_int(self._view.get("home_flag"))
        elif model in _STAT_DOOR_MODELS:
            bits = _to_hex(self._view.get("stat"))
        else:
            return None
        return None if bits is None else bool(bits & DOOR_OPEN_BIT)

    @property
    def sdcard(self) -> bool | None:
        """Whether an SD card is present (`sdcard`, else `home_flag` bit 0x100)."""
        value = self._view.get("sdcard")
        if type(value) is bool or type(value) is int:
            return bool(value)
        flags = _to_int(self._view.get("home_flag"))
        return None if flags is None else bool(flags & _SDCARD_PRESENT_BIT)

    @property
    def wifi_dbm(self) -> int | None:
        """Wi-Fi signal in dBm, from e.g. "-53dBm"."""
        value = self._view.get("wifi_signal")
        if type(value) is str:
            value = value.strip().removesuffix("dBm").removesuffix("dbm")
        return _to_int(value)

    @property
    def ip_address(self) -> str | None:
        """The printer's IPv4 address from `net.info[0].ip` (a little-endian uint32)."""
        infos = _dig(self._view.get("net"), "info")
        if type(infos) is not list or not infos:
            return None
        ip = _to_int(_dig(infos[0], "ip"))
        if not ip or not 0 < ip <= 0xFFFFFFFF:
            return None
        return ".".join(str(part) for part in ip.to_bytes(4, "little"))

    @property
    def rtsp_url(self) -> str | None:
        """The camera URL the printer reports; None while LAN live view is disabled."""
        url = _to_str(_dig(self._view.get("ipcam"), "rtsp_url"))
        return None if url is None or url == "disable" else url

    # --- AMS ----------------------------------------------------------------------------------

    @property
    def ams_units(self) -> list[AmsUnit]:
        """The AMS units the printer reports, ordered by id."""
        units = _dig(self._view.get("ams"), "ams")
        if type(units) is not list:
            return []
        parsed = [unit for unit in map(_ams_unit, units) if unit is not None]
        return sorted(parsed, key=lambda unit: unit.id)

    @property
    def active_tray(self) -> int | None:
        """Loaded tray (`ams.tray_now`): ams_id * 4 + slot, 254 external; None when none."""
        value = _to_int(_dig(self._view.get("ams"), "tray_now"))
        return None if value is None or value == 255 or value < 0 else value

    @property
    def external_spools(self) -> list[AmsTray]:
        """External spools: `vir_slot[]` (H2) or the single `vt_tray`."""
        slots = self._view.get("vir_slot")
        raw = slots if type(slots) is list else [self._view.get("vt_tray")]
        return [tray for tray in map(_tray, raw) if tray is not None]
