"""The simulated AMS: units per model, filament commands, drying, humidity and run-out.

Wire shapes follow custom_components/bambu_lan/printer/ams.py (and its sources): `info` bit
fields on the AMS 2 Pro / AMS HT (the H2D here), none on the older AMS and AMS lite firmware.
"""

from __future__ import annotations

from typing import Any, Final

type Json = dict[str, Any]

# info bits 0-3: unit type; 4-7: drying state; 8-11: extruder fed
TYPE_CODES: Final = {"ams": 1, "ams_lite": 2, "n3f": 3, "n3s": 4}
MODULE_PREFIX: Final = {"ams": "ams", "ams_lite": "ams_f1", "n3f": "n3f", "n3s": "n3s"}
HW_VERSIONS: Final = {"ams": "AMS08", "ams_lite": "AMS_F102", "n3f": "N3F05", "n3s": "N3S05"}
DRY_OFF, DRY_DRYING = 0, 2
DRYING_TYPES: Final = frozenset({"n3f", "n3s"})
# Per model: (unit id, type, extruder) of each unit, and whether the firmware sends `info`.
UNITS: Final[dict[str, tuple[tuple[int, str, int], ...]]] = {
    "X1C": ((0, "ams", 0),),
    "P1S": ((0, "ams", 0),),
    "A1": ((0, "ams_lite", 0),),
    "A1MINI": ((0, "ams_lite", 0),),
    "H2D": ((0, "n3f", 1), (1, "n3f", 0), (128, "n3s", 0)),
}
REPORTS_INFO: Final = frozenset({"H2D"})
HUMIDITY_PERIOD: Final = 600.0  # simulated seconds between humidity steps
USE_PER_SECOND: Final = 0.01  # % of a spool a running print uses per simulated second


def tray(tray_id: int, kind: str, color: str, idx: str, remain: int) -> Json:
    """A loaded tray as the printer reports it."""
    return {
        "id": str(tray_id),
        "tray_type": kind,
        "tray_sub_brands": f"{kind} Basic",
        "tray_color": color,
        "cols": [color],
        "tray_info_idx": idx,
        "nozzle_temp_min": "190",
        "nozzle_temp_max": "230",
        "remain": remain,
        "k": 0.02,
        "tag_uid": "5D8F2A3B00000100",
        "tray_uuid": "00000000000000000000000000000000",
        "state": 11,
    }


def empty_tray(tray_id: int) -> Json:
    """An empty slot: a tray holding only its id (and state)."""
    return {"id": str(tray_id), "state": 0}


def _trays(unit_type: str) -> list[Json]:
    if unit_type == "n3s":
        return [tray(0, "PA-CF", "2D2D2DFF", "GFN03", 90)]
    return [
        tray(0, "PLA", "FFFFFFFF", "GFA00", 80),
        tray(1, "PLA", "000000FF", "GFA00", 45),
        tray(2, "PETG", "FF6A13FF", "GFG00", -1),
        empty_tray(3),
    ]


def unit(unit_id: int, unit_type: str, extruder: int = 0, *, info: bool = True) -> Json:
    """One AMS unit in its initial state."""
    entry: Json = {"id": str(unit_id), "humidity": "4", "temp": "24.5", "tray": _trays(unit_type)}
    if unit_type != "ams_lite":
        entry["humidity_raw"] = "31"
    if info:
        entry["info"] = f"{TYPE_CODES[unit_type] | extruder << 8:X}"
    if unit_type in DRYING_TYPES:
        entry["dry_time"] = 0
    return entry


def initial_ams(model: str, *, enabled: bool = True) -> Json:
    """`print.ams` of an idle printer of this model (no units when `enabled` is False)."""
    units = UNITS.get(model, ()) if enabled else ()
    info = model in REPORTS_INFO
    ams: Json = {
        "ams": [unit(unit_id, kind, extruder, info=info) for unit_id, kind, extruder in units],
        "tray_now": "255",
        "tray_tar": "255",
        "tray_pre": "255",
        "insert_flag": True,
        "power_on_flag": False,
        "version": 4,
    }
    _set_exist_bits(ams)
    return ams


def modules(model: str, serial: str, *, enabled: bool = True) -> list[Json]:
    """get_version modules of the units."""
    if not enabled:
        return []
    return [
        {
            "name": f"{MODULE_PREFIX[kind]}/{unit_id}",
            "hw_ver": HW_VERSIONS[kind],
            "sw_ver": "00.00.06.49",
            "sn": f"19C{serial[-8:]}{unit_id:04d}"[:15],
        }
        for unit_id, kind, _extruder in UNITS.get(model, ())
    ]


def _set_exist_bits(ams: Json) -> None:
    units = trays = 0
    for entry in ams["ams"]:
        unit_id = int(entry["id"])
        if unit_id >= 128:
            units |= 1 << (4 + unit_id - 128)
        else:
            units |= 1 << unit_id
        for slot in entry.get("tray", []):
            if "tray_type" in slot:
                index = 16 + unit_id - 128 if unit_id >= 128 else unit_id * 4 + int(slot["id"])
                trays |= 1 << index
    ams["ams_exist_bits"] = f"{units:X}"
    ams["tray_exist_bits"] = f"{trays:X}"


class AmsSim:
    """The AMS part of a printer's state (the `ams` block and the external spools)."""

    def __init__(self, state: Json, model: str) -> None:
        self.state = state
        self.model = model
        self._humidity_clock = 0.0
        self._dry_left: dict[int, float] = {}  # simulated seconds of drying left, per unit
        self._used: dict[int, float] = {}  # fractions of a % used, per tray index

    @property
    def units(self) -> list[Json]:
        """The unit entries of `ams.ams`."""
        units: list[Json] = self.state.setdefault("ams", {}).setdefault("ams", [])
        return units

    def unit(self, unit_id: int) -> Json | None:
        """The unit entry with this id."""
        return next((entry for entry in self.units if int(entry["id"]) == unit_id), None)

    # -- test controls ----------------------------------------------------------------------------

    def add_unit(self, unit_id: int, unit_type: str, extruder: int = 0) -> None:
        """A unit plugged in while the printer runs."""
        if self.unit(unit_id) is not None:
            raise ValueError(f"unit {unit_id} exists")
        self.units.append(unit(unit_id, unit_type, extruder, info=self.model in REPORTS_INFO))
        _set_exist_bits(self.state["ams"])

    def remove_unit(self, unit_id: int) -> None:
        """A unit unplugged."""
        self.state["ams"]["ams"] = [entry for entry in self.units if int(entry["id"]) != unit_id]
        _set_exist_bits(self.state["ams"])

    def runout(self, unit_id: int, slot: int) -> None:
        """The spool in this slot ran out: the slot reports empty."""
        entry = self.unit(unit_id)
        if entry is None:
            raise ValueError(f"no unit {unit_id}")
        entry["tray"] = [
            empty_tray(slot) if int(item["id"]) == slot else item for item in entry["tray"]
        ]
        _set_exist_bits(self.state["ams"])

    # -- time -------------------------------------------------------------------------------------

    def step(self, dt: float, *, printing: bool) -> None:
        """Humidity creeps up, drying counts down, a running print uses the loaded spool."""
        self._humidity_clock += dt
        wetter = self._humidity_clock >= HUMIDITY_PERIOD
        if wetter:
            self._humidity_clock = 0.0
        for entry in self.units:
            self._dry_step(entry, dt)
            if wetter and not self._drying(entry):
                self._wetter(entry)
        if printing:
            self._use_filament(dt)

    def _drying(self, entry: Json) -> bool:
        return "info" in entry and (int(entry["info"], 16) >> 4) & 0xF == DRY_DRYING

    def _dry_step(self, entry: Json, dt: float) -> None:
        if not self._drying(entry):
            return
        unit_id = int(entry["id"])
        left = self._dry_left.get(unit_id, 0.0) - dt
        self._dry_left[unit_id] = max(0.0, left)
        entry["dry_time"] = max(0, round(left / 60))
        humidity = int(entry.get("humidity_raw", "31"))
        entry["humidity_raw"] = str(max(10, humidity - 1))
        entry["humidity"] = "5"
        if left <= 0:
            self._set_dry_state(entry, DRY_OFF)

    @staticmethod
    def _wetter(entry: Json) -> None:
        if "humidity_raw" in entry:
            entry["humidity_raw"] = str(min(80, int(entry["humidity_raw"]) + 1))
        index = int(entry.get("humidity", "4"))
        entry["humidity"] = str(max(1, index - 1)) if index > 2 else entry["humidity"]

    def _use_filament(self, dt: float) -> None:
        now = int(self.state.get("ams", {}).get("tray_now", "255"))
        if now >= 16 * 4:
            return
        entry = self.unit(now // 4)
        slot = next((t for t in entry["tray"] if int(t["id"]) == now % 4), None) if entry else None
        if slot is None or slot.get("remain", -1) < 0:
            return
        used = self._used.get(now, 0.0) + dt * USE_PER_SECOND
        whole = int(used)
        self._used[now] = used - whole
        if whole:
            slot["remain"] = max(0, slot["remain"] - whole)

    @staticmethod
    def _set_dry_state(entry: Json, dry_state: int) -> None:
        info = int(entry["info"], 16)
        entry["info"] = f"{(info & ~0xF0) | dry_state << 4:X}"

    # -- commands ---------------------------------------------------------------------------------

    def handle(self, command: str, body: Json) -> str | None:
        """Apply an AMS command; return why it failed, or None."""
        match command:
            case "ams_filament_drying":
                return self._drying_command(body)
            case "ams_filament_setting":
                return self._filament_setting(body)
            case "ams_get_rfid":
                return self._slot_error(body.get("ams_id"), body.get("slot_id"))
            case "extrusion_cali_set":
                return self._k_value(body)
            case "ams_change_filament":
                return self._change_filament(body)
        return f"unknown command {command!r}"

    def _drying_command(self, body: Json) -> str | None:
        entry = self.unit(_int(body.get("ams_id")))
        if entry is None:
            return "no such AMS"
        code = int(entry["info"], 16) & 0xF if "info" in entry else TYPE_CODES["ams"]
        if code not in {TYPE_CODES[kind] for kind in DRYING_TYPES}:
            return "drying not supported"
        if body.get("mode") == 0:
            self._set_dry_state(entry, DRY_OFF)
            entry["dry_time"] = 0
            return None
        temp, hours = _int(body.get("temp")), _int(body.get("duration"))
        if body.get("mode") != 1 or not 45 <= temp <= 85 or not 1 <= hours <= 24:
            return "invalid drying parameters"
        self._set_dry_state(entry, DRY_DRYING)
        self._dry_left[int(entry["id"])] = hours * 3600.0
        entry["dry_time"] = hours * 60
        entry["dry_setting"] = {
            "dry_filament": str(body.get("filament", "")),
            "dry_temperature": temp,
            "dry_duration": hours,
        }
        return None

    def _slot_error(self, unit_id: object, slot: object) -> str | None:
        entry = self.unit(_int(unit_id))
        if entry is None:
            return "no such AMS"
        if _int(slot) not in range(1 if int(entry["id"]) >= 128 else 4):
            return "no such slot"
        return None

    def _tray(self, unit_id: int, slot: int) -> Json | None:
        if unit_id in (254, 255):
            spools = self.state.get("vir_slot") or [self.state.get("vt_tray") or {}]
            return next((s for s in spools if _int(s.get("id")) in (unit_id, 254)), None)
        entry = self.unit(unit_id)
        if entry is None:
            return None
        found = next((t for t in entry["tray"] if _int(t.get("id")) == slot), None)
        if found is None:
            found = {"id": str(slot)}
            entry["tray"].append(found)
        return found

    def _filament_setting(self, body: Json) -> str | None:
        unit_id, slot = _int(body.get("ams_id")), _int(body.get("slot_id"))
        if unit_id not in (254, 255) and (error := self._slot_error(unit_id, slot)):
            return error
        target = self._tray(unit_id, slot)
        if target is None:
            return "no such tray"
        kind = str(body.get("tray_type", ""))
        if not kind:  # a reset: the slot forgets its filament
            target.clear()
            target.update(id=str(unit_id if unit_id in (254, 255) else slot), state=0)
        else:
            target.update(
                tray_type=kind,
                tray_sub_brands="",
                tray_color=str(body.get("tray_color", "FFFFFFFF")),
                tray_info_idx=str(body.get("tray_info_idx", "")),
                nozzle_temp_min=str(body.get("nozzle_temp_min", "")),
                nozzle_temp_max=str(body.get("nozzle_temp_max", "")),
                remain=target.get("remain", -1),
                tag_uid="0000000000000000",
            )
        _set_exist_bits(self.state["ams"])
        return None

    def _k_value(self, body: Json) -> str | None:
        index = _int(body.get("tray_id"))
        unit_id, slot = (index // 4, index % 4) if index < 64 else (index, 0)
        target = self._tray(unit_id, slot)
        if target is None or not isinstance(body.get("k_value"), int | float):
            return "invalid k"
        target["k"] = body["k_value"]
        return None

    def _change_filament(self, body: Json) -> str | None:
        target = _int(body.get("target"))
        ams = self.state["ams"]
        if target == 255:
            ams["tray_now"] = "255"
            self._set_snow(_int(body.get("ams_id")), None)
            return None
        unit_id, slot = _int(body.get("ams_id")), _int(body.get("slot_id"))
        if unit_id not in (254, 255):
            if error := self._slot_error(unit_id, slot):
                return error
            found = self._tray(unit_id, slot)
            if found is None or "tray_type" not in found:
                return "slot is empty"
        ams["tray_now"] = str(target)
        self._set_snow(unit_id, slot)
        return None

    def _set_snow(self, unit_id: int, slot: int | None) -> None:
        """On the H2D, the nozzle that unit feeds now holds that filament (or none)."""
        extruder = self.state.get("device", {}).get("extruder")
        if not extruder:
            return
        entry = self.unit(unit_id)
        nozzle = (int(entry["info"], 16) >> 8) & 0xF if entry and "info" in entry else 0
        if unit_id in (254, 255):
            nozzle = 0 if unit_id == 255 else 1
        for info in extruder["info"]:
            if info["id"] == nozzle:
                info["snow"] = 0xFFFF if slot is None else unit_id << 8 | slot


def _int(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return -1
    try:
        return int(value)
    except ValueError:
        return -1
