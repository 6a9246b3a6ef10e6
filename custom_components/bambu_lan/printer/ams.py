"""AMS units, trays and external spools: wire facts, typed values and command payloads.

Facts beyond shared/docs/protocol.md §2, with their sources (BS = bambulab/BambuStudio
`src/slic3r/GUI/DeviceCore/DevFilaSystem.cpp`, `DevFilaSystemCtrl.cpp` and `DeviceManager.cpp`):

- `ams.ams[].info` is a hex string of bit fields (BS `ParseAmsInfo`): bits 0-3 the unit type
  (1 AMS, 2 AMS lite, 3 AMS 2 Pro "N3F", 4 AMS HT "N3S"), bits 4-7 the drying status (0 off,
  1 checking, 2 drying, 3 cooling, 4 stopping, 5 error, 6 heater out of control, 7 factory test),
  bits 8-11 the extruder the unit feeds (0 right/main, 1 left/deputy, 0xE not initialised).
  Older firmware sends no `info`: the unit type then follows the get_version module
  (`ams/N`, `ams_f1/N`, `n3f/N`, `n3s/N`) or the printer (A1 series: AMS lite).
- `dry_time` is the drying time left in minutes; `dry_setting` holds `dry_filament`,
  `dry_temperature` (°C) and `dry_duration` (hours) of the running cycle (BS).
- AMS HT units have ids from 128 up and one slot; the apps number them from 1 (id - 127),
  other units id + 1 (BS `DevAms::GetDisplayName`).
- External spools: `vt_tray` (id 254) on single-nozzle printers; `vir_slot[]` on the H2D with
  id 255 for the main (right) extruder and 254 for the deputy (left) one (BS
  `VIRTUAL_TRAY_MAIN_ID` / `VIRTUAL_TRAY_DEPUTY_ID`, `GetExtruderIdByAmsId`).
- Commands (BS `MachineObject::command_*`, `DevFilaSystem::CtrlAmsStartDryingHour`):
  - `ams_filament_drying`: `ams_id`, `mode` (1 run for a duration, 0 stop), `filament`, `temp`
    (°C), `duration` (hours), `humidity` 0, `rotate_tray`, `cooling_temp`,
    `close_power_conflict`. Only AMS 2 Pro and AMS HT dry.
  - `ams_filament_setting`: `ams_id`, `slot_id`, `tray_id` (the slot; 254 for an external
    spool), `tray_info_idx` (preset id), `setting_id`, `tray_color` (RRGGBBAA),
    `nozzle_temp_min`, `nozzle_temp_max`, `tray_type`.
  - `extrusion_cali_set`: `tray_id` (ams_id * 4 + slot), `k_value`, `n_coef` 1.4.
  - `ams_get_rfid`: `ams_id`, `slot_id`.
  - `ams_change_filament`: `ams_id`, `slot_id`, `target` (ams_id * 4 + slot below 16, else the
    unit or spool id), `curr_temp`, `tar_temp`; unloading sends `target` and `slot_id` 255.
- `device.extruder.info[].snow` = (ams_id << 8) | slot of the filament in that nozzle,
  0xFFFF when empty (protocol.md §2).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final

from .values import ID_RANGE, TEMP_RANGE, bounded, to_float, to_hex, to_int, to_str, to_temp


class AmsKind(StrEnum):
    """AMS unit types (values are the translation keys of the unit models)."""

    AMS = "ams"
    AMS_LITE = "ams_lite"
    AMS_2_PRO = "ams_2_pro"
    AMS_HT = "ams_ht"


AMS_MODEL_NAMES: Final = {
    AmsKind.AMS: "AMS",
    AmsKind.AMS_LITE: "AMS lite",
    AmsKind.AMS_2_PRO: "AMS 2 Pro",
    AmsKind.AMS_HT: "AMS HT",
}
_KIND_BY_INFO: Final = {
    1: AmsKind.AMS,
    2: AmsKind.AMS_LITE,
    3: AmsKind.AMS_2_PRO,
    4: AmsKind.AMS_HT,
}
KIND_BY_MODULE: Final = {
    "ams": AmsKind.AMS,
    "ams_f1": AmsKind.AMS_LITE,
    "n3f": AmsKind.AMS_2_PRO,
    "n3s": AmsKind.AMS_HT,
}
DRYING_KINDS: Final = frozenset({AmsKind.AMS_2_PRO, AmsKind.AMS_HT})
# Drying temperature limits of each dryer (°C, Bambu Studio's dialog); 45 °C is the lowest the
# heater acts on.
DRYING_TEMPERATURES: Final = {AmsKind.AMS_2_PRO: (45, 65), AmsKind.AMS_HT: (45, 85)}
DRYING_HOURS: Final = (1, 24)
DRY_STATES: Final = (
    "off",
    "checking",
    "drying",
    "cooling",
    "stopping",
    "error",
    "heater_fault",
    "testing",
)

HT_FIRST_ID: Final = 128
EXTERNAL_MAIN: Final = 255
"""`vir_slot` id of the main (right) extruder's spool; `tray_now` 255 means nothing loaded."""
EXTERNAL_DEPUTY: Final = 254
"""`vt_tray` id, and the deputy (left) extruder's spool in `vir_slot`."""
EXTERNAL_IDS: Final = frozenset({EXTERNAL_MAIN, EXTERNAL_DEPUTY})
NO_TRAY: Final = 0xFFFF
# Beyond these a report is broken or forged and the value reads as unknown.
K_RANGE: Final = (0.0, 10.0)  # pressure advance; real filaments sit around 0.01-0.1
MAX_DRY_MINUTES: Final = 7 * 24 * 60
_NOT_INITIALISED: Final = 0xE


def unit_number(unit_id: int) -> int:
    """The number the apps show: AMS 1-4 for ids 0-3, AMS HT 1.. for ids 128.."""
    return unit_id - HT_FIRST_ID + 1 if unit_id >= HT_FIRST_ID else unit_id + 1


def slot_count(kind: AmsKind) -> int:
    """Slots of a unit: one on an AMS HT, four on the others."""
    return 1 if kind is AmsKind.AMS_HT else 4


def tray_index(unit_id: int, slot: int) -> int:
    """The printer's global tray number (`tray_now`, `target`): unit * 4 + slot below 16."""
    return unit_id * 4 + slot if unit_id < 16 else unit_id


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
    preset: str | None = None
    """Filament preset id (`tray_info_idx`, e.g. "GFA00")."""
    k: float | None = None
    temp_min: int | None = None
    temp_max: int | None = None
    rfid: bool = False
    """A Bambu RFID tag was read (`tag_uid` not all zeros)."""

    @property
    def name(self) -> str | None:
        """What the apps show: the brand name where known ("PLA Basic"), else the type."""
        return self.sub_brand or self.tray_type

    @property
    def rgb(self) -> str | None:
        """The colour as "#RRGGBB"."""
        return f"#{self.color[:6]}" if self.color else None


@dataclass(frozen=True, slots=True)
class AmsUnit:
    """One AMS unit (ids from 128 up are AMS HT units with a single slot)."""

    id: int
    humidity_index: int | None
    """As the printer sends it: 1 = wet ... 5 = dry (Bambu's apps show 6 - index)."""
    humidity_percent: int | None
    temp: float | None
    trays: tuple[AmsTray, ...]
    kind: AmsKind | None = None
    """From `info`; None when the firmware does not say (see `fields.ams_kind`)."""
    dry_state: str | None = None
    dry_minutes_left: int | None = None
    dry_target: float | None = None
    dry_filament: str | None = None
    extruder: int | None = None

    @property
    def humidity_level(self) -> int | None:
        """Humidity on the apps' scale: 1 = dry ... 5 = wet (the wire value inverted)."""
        return None if self.humidity_index is None else 6 - self.humidity_index

    def tray(self, slot: int) -> AmsTray | None:
        """The tray in `slot` (0-based), if reported."""
        return next((tray for tray in self.trays if tray.slot == slot), None)


def parse_tray(raw: Any) -> AmsTray | None:
    if type(raw) is not dict:
        return None
    slot = bounded(to_int(raw.get("id")), *ID_RANGE)
    if slot is None:
        return None
    tray_type = to_str(raw.get("tray_type"))
    color = to_str(raw.get("tray_color"))
    if color is not None and (len(color) != 8 or to_hex(color) is None):
        color = None
    remain = to_int(raw.get("remain"))
    tag = to_str(raw.get("tag_uid"))
    return AmsTray(
        slot=slot,
        empty=tray_type is None,
        tray_type=tray_type,
        sub_brand=to_str(raw.get("tray_sub_brands")),
        color=color.upper() if color else None,
        remain=remain if remain is not None and 0 <= remain <= 100 else None,
        preset=to_str(raw.get("tray_info_idx")),
        k=bounded(to_float(raw.get("k")), *K_RANGE),
        temp_min=_positive(raw.get("nozzle_temp_min")),
        temp_max=_positive(raw.get("nozzle_temp_max")),
        rfid=tag is not None and tag.strip("0") != "",
    )


def _positive(value: Any) -> int | None:
    """A nozzle temperature; 0 (or less) means the printer does not know one."""
    return bounded(to_int(value), 1, int(TEMP_RANGE[1]))


def parse_ams_unit(raw: Any) -> AmsUnit | None:
    if type(raw) is not dict:
        return None
    unit_id = bounded(to_int(raw.get("id")), *ID_RANGE)
    if unit_id is None:
        return None
    info = to_hex(raw.get("info"))
    kind = dry_state = extruder = None
    if info is not None and info >= 0:
        kind = _KIND_BY_INFO.get(info & 0xF)
        dry_state = DRY_STATES[(info >> 4) & 0x7] if kind in DRYING_KINDS else None
        extruder = (info >> 8) & 0xF
        if extruder == _NOT_INITIALISED:
            extruder = None
    trays = raw.get("tray")
    parsed = [parse_tray(tray) for tray in trays] if type(trays) is list else []
    humidity = to_int(raw.get("humidity"))
    setting = raw.get("dry_setting")
    setting = setting if type(setting) is dict else {}
    minutes = to_int(raw.get("dry_time"))
    return AmsUnit(
        id=unit_id,
        humidity_index=humidity if humidity is not None and 1 <= humidity <= 5 else None,
        humidity_percent=bounded(to_int(raw.get("humidity_raw")), 0, 100),
        temp=to_temp(raw.get("temp")),
        trays=tuple(tray for tray in parsed if tray is not None),
        kind=kind,
        dry_state=dry_state,
        dry_minutes_left=bounded(minutes, 0, MAX_DRY_MINUTES),
        dry_target=to_temp(setting.get("dry_temperature")),
        dry_filament=to_str(setting.get("dry_filament")),
        extruder=extruder,
    )


# --- command payloads ---------------------------------------------------------------------------


def drying_start(
    unit_id: int, *, temperature: int, hours: int, filament: str, rotate_tray: bool
) -> dict[str, Any]:
    """`ams_filament_drying` parameters that start a timed drying cycle."""
    return {
        "ams_id": unit_id,
        "mode": 1,
        "filament": filament,
        "temp": temperature,
        "duration": hours,
        "humidity": 0,
        "rotate_tray": rotate_tray,
        "cooling_temp": 45,
        "close_power_conflict": False,
    }


def drying_stop(unit_id: int) -> dict[str, Any]:
    """`ams_filament_drying` parameters that stop drying."""
    return {
        "ams_id": unit_id,
        "mode": 0,
        "filament": "",
        "temp": 0,
        "duration": 0,
        "humidity": 0,
        "rotate_tray": False,
        "cooling_temp": 0,
        "close_power_conflict": False,
    }


def filament_setting(
    unit_id: int,
    slot: int,
    *,
    tray_type: str,
    color: str,
    temp_min: int,
    temp_max: int,
    preset: str,
) -> dict[str, Any]:
    """`ams_filament_setting` parameters (an external spool is unit 254/255, slot 0)."""
    return {
        "ams_id": unit_id,
        "slot_id": slot,
        "tray_id": EXTERNAL_DEPUTY if unit_id in EXTERNAL_IDS else slot,
        "tray_info_idx": preset,
        "setting_id": "",
        "tray_color": color,
        "nozzle_temp_min": temp_min,
        "nozzle_temp_max": temp_max,
        "tray_type": tray_type,
    }


def k_setting(unit_id: int, slot: int, k: float) -> dict[str, Any]:
    """`extrusion_cali_set` parameters that set a tray's pressure advance (k)."""
    return {"tray_id": tray_index(unit_id, slot), "k_value": k, "n_coef": 1.4}


def change_filament(unit_id: int, slot: int, *, temperature: int) -> dict[str, Any]:
    """`ams_change_filament` parameters that load this tray into the nozzle."""
    return {
        "ams_id": unit_id,
        "slot_id": slot,
        "target": tray_index(unit_id, slot),
        "curr_temp": temperature,
        "tar_temp": temperature,
    }


def unload_filament(unit_id: int, *, temperature: int) -> dict[str, Any]:
    """`ams_change_filament` parameters that unload the nozzle fed by `unit_id`."""
    return {
        "ams_id": unit_id,
        "slot_id": 255,
        "target": 255,
        "curr_temp": temperature,
        "tar_temp": temperature,
    }
