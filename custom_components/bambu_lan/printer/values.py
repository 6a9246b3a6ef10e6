"""Decoding report payloads, parsing wire values, and the typed values read from a report."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
import json
import math
from typing import Any, Final

from .nozzle import NozzleKind

MAX_PAYLOAD_BYTES: Final = 256 * 1024
"""Reports larger than this are dropped undecoded (a full X1 report is about 5-15 KiB)."""


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


def to_float(value: Any) -> float | None:
    """A finite number from an int, float or numeric string (never from a bool)."""
    kind = type(value)
    try:
        if kind is not float and kind is not str and kind is not int:
            return None
        number = float(value)
    except ValueError, OverflowError:
        return None
    return number if math.isfinite(number) else None


def to_int(value: Any) -> int | None:
    """An int from an int, float or numeric string; fractions are truncated."""
    if type(value) is int:
        return value
    if type(value) is str:
        try:
            return int(value)
        except ValueError:
            pass
    number = to_float(value)
    return None if number is None else int(number)


def bounded[N: (int, float)](value: N | None, low: N, high: N) -> N | None:
    """`value` if it lies within [low, high]; None otherwise (a report is not to be trusted)."""
    return value if value is not None and low <= value <= high else None


def to_hex(value: Any) -> int | None:
    """An int from a hex string (`fun`, `stat`) or an int."""
    if type(value) is int:
        return value
    if type(value) is str:
        try:
            return int(value, 16)
        except ValueError:
            return None
    return None


def to_str(value: Any) -> str | None:
    """A non-empty string, else None."""
    return value if type(value) is str and value else None


def dig(obj: Any, *keys: str) -> Any:
    """`obj[k1][k2]...` through dicts only; None when a step is missing or not a dict."""
    for key in keys:
        if type(obj) is not dict:
            return None
        obj = obj.get(key)
    return obj


# What a printer can physically report; anything outside is a broken or forged report and shows
# as unknown rather than, e.g., an end time past the year 9999.
TEMP_RANGE: Final = (-50.0, 500.0)  # °C; nozzles reach 350, beds 120, chambers 65
ID_RANGE: Final = (0, 255)  # AMS unit, tray and nozzle ids


def to_temp(value: Any) -> float | None:
    """A temperature (°C) within what a printer can report."""
    return bounded(to_float(value), *TEMP_RANGE)


def unpack_temp(value: Any) -> tuple[float, float] | None:
    """(current, target) from an H2-style packed temperature: low 16 bits current, high target."""
    packed = bounded(to_int(value), 0, 0xFFFFFFFF)
    if packed is None:
        return None
    current, target = float(packed & 0xFFFF), float(packed >> 16)
    high = TEMP_RANGE[1]
    return (current, target) if current <= high and target <= high else None


def whole_degrees(value: Any) -> float | None:
    """A temperature rounded to whole degrees (half up, not to even: 219.5 -> 220); None when it
    is beyond what a printer can report (`TEMP_RANGE`)."""
    number = to_temp(value)
    return None if number is None else float(math.floor(number + 0.5))


def steps_to_percent(value: Any) -> int | None:
    """Fan speed in 0-15 steps (as the printer reports it) to percent."""
    steps = to_int(value)
    if steps is None or not 0 <= steps <= 15:
        return None
    return (steps * 200 + 15) // 30  # round(steps * 100 / 15) without float rounding quirks


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
    kind: NozzleKind | None


@dataclass(frozen=True, slots=True)
class ModuleInfo:
    """One entry of the get_version reply."""

    name: str
    sw_ver: str | None
    hw_ver: str | None
    sn: str | None
    product_name: str | None
    project_name: str | None


def parse_hms_entry(raw: Any) -> HmsEntry | None:
    if type(raw) is not dict:
        return None
    attr = to_int(raw.get("attr"))
    code = to_int(raw.get("code"))
    if attr is None or code is None:
        return None
    attr &= 0xFFFFFFFF
    code &= 0xFFFFFFFF
    return HmsEntry(
        code=f"HMS_{attr >> 16:04X}_{attr & 0xFFFF:04X}_{code >> 16:04X}_{code & 0xFFFF:04X}",
        severity=code >> 16,
        module=attr >> 24,
    )


def parse_module_info(raw: Any) -> ModuleInfo | None:
    if type(raw) is not dict or not to_str(raw.get("name")):
        return None
    return ModuleInfo(
        name=raw["name"],
        sw_ver=to_str(raw.get("sw_ver")),
        hw_ver=to_str(raw.get("hw_ver")),
        sn=to_str(raw.get("sn")),
        product_name=to_str(raw.get("product_name")),
        project_name=to_str(raw.get("project_name")),
    )


AP_BOARDS: Final = ("rv1126", "ap", "esp32")  # X1; X1E/H2/P2S; P1/A1
