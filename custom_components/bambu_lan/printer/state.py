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
- Containers nested deeper than `merge.MAX_DEPTH` are dropped, so neither merging nor copying the
  state can recurse without bound.

`PrinterState.apply` keeps the containers it stores private (new containers are copied in), so a
caller may reuse or mutate a message after applying it.
"""

from __future__ import annotations

import copy
from dataclasses import replace
from typing import Any, Final

from .ams import AmsUnit, parse_ams_unit
from .ams_fields import (
    AMS_IDS_KEY,
    AMS_UNITS_KEY,
    ROUTE_KEY,
    ams_tray_key,
    ams_unit_key,
    filament_route,
)
from .fields import NOZZLE_TARGET_KEY, StateFields
from .merge import UnknownBudget, merge_obj
from .models import PrinterModel, model_from_code, model_from_product_name, model_from_serial
from .reads import Readable
from .schema import AMS_UNITS, PRINT_SCHEMA
from .values import AP_BOARDS, ModuleInfo, dig, parse_module_info, to_int


def _ams_keys(unit_id: int, old: AmsUnit | None, new: AmsUnit | None) -> set[str]:
    """The fan-out keys of what differs between two parses of one unit (see `ams_unit_key`)."""
    if old == new:
        return set()
    keys = set()
    if old is None or new is None or replace(old, trays=()) != replace(new, trays=()):
        keys.add(ams_unit_key(unit_id))
    if old is None or new is None:
        keys.add(AMS_IDS_KEY)
    trays = (*(old.trays if old else ()), *(new.trays if new else ()))
    for slot in {tray.slot for tray in trays}:
        if (old.tray(slot) if old else None) != (new.tray(slot) if new else None):
            keys.add(ams_tray_key(unit_id, slot))
    return keys


CORE_FIELDS: Final = ("gcode_state", "mc_percent", "bed_temper")
"""Fields every model's full report carries and deltas rarely do all at once."""

_MISSING: Final = object()

# --- the state ----------------------------------------------------------------------------------


class PrinterState(StateFields):
    """The merged `print` object of one printer plus its get_version information."""

    def __init__(self, serial: str | None = None) -> None:
        """Start empty; `serial` (the configured one) is the last resort for the model."""
        self.serial = serial.strip().upper() if isinstance(serial, str) else None
        self._print: dict[str, Any] = {}
        # Bounds what is kept of keys the schema does not know (any publisher can invent them).
        self._unknown = UnknownBudget(self._print, PRINT_SCHEMA)
        # Accessors read the print object through `_view`: the dict itself, or a recorder
        # while an entity refreshes (see `record_reads`).
        self._view: Readable = self._print
        self._memo = {}
        self.changed_keys: frozenset[str] | None = None
        """`print` keys the last `apply` changed; None: anything may have changed.

        A change inside a shared block (`reads.SHARED_BLOCKS`) names the block and the part
        (`device` and `device.bed`), matching what `recorded_reads` names.
        """
        self._modules: dict[str, ModuleInfo] = {}
        self._ams_cache = None
        self._route = None
        self._nozzle_target = None
        # Before the last report that touched `ams`: the parsed units and the block's other
        # fields; `ams_changed_units` compares them with what the report left.
        self._ams_before: (
            tuple[dict[int, AmsUnit] | None, dict[str, Any], frozenset[str]] | None
        ) = None
        self._ams_changed: dict[int, frozenset[int | str]] | None = None
        self._model = model_from_serial(self.serial)
        self.full_state_received = False
        """Set by the first full report (see `is_full_report`), e.g. the reply to pushall."""
        self._awaiting_full = True

    def expect_full_report(self) -> None:
        """We (re)connected and asked for pushall: the next report with the core fields is full.

        Some firmware (an H2D from 2025, some X1C) answers pushall without any `msg` key.
        """
        self._awaiting_full = True

    # --- input --------------------------------------------------------------------------------

    def apply(self, message: dict[str, Any]) -> bool:
        """Merge one decoded report message; True if anything an entity can show changed.

        Only `print` messages with `command == "push_status"` are status; command acks that
        share the `print` key (gcode_line, pause ...) are ignored. `info` get_version replies
        update the module table.
        """
        self.changed_keys = frozenset()
        self._memo.clear()
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

    def is_full_report(self, status: dict[str, Any]) -> bool:
        """Whether a `push_status` body holds the whole state (so lists it omits are gone).

        `msg` 0 is full and any other `msg` a delta. Without `msg`, it is full only while we await
        the answer to pushall (the first report after connecting) and it carries the core fields.
        """
        msg = status.get("msg", _MISSING)
        if msg is not _MISSING:
            return type(msg) is int and msg == 0
        return self._awaiting_full and all(key in status for key in CORE_FIELDS)

    def _apply_status(self, status: dict[str, Any]) -> bool:
        full = self.is_full_report(status)
        if full:
            self._awaiting_full = False
        keys: set[str] = set()
        unit_ids = AMS_UNITS.changed
        assert unit_ids is not None
        unit_ids.clear()
        changed = merge_obj(
            self._print, status, PRINT_SCHEMA, 0, full, changed_keys=keys, budget=self._unknown
        )
        # The route and the target read only `device.extruder` (a bed temperature leaves it).
        if "device.extruder" in keys:
            self._derive_from_extruder(keys)
        if AMS_UNITS_KEY in keys:
            keys |= self._refresh_ams(unit_ids)
        self.changed_keys = frozenset(keys)
        if full and not self.full_state_received:
            self.full_state_received = True
            self.changed_keys = None
            changed = True
        return changed

    def _derive_from_extruder(self, keys: set[str]) -> None:
        """Name the filament route and the active nozzle's target among `keys` when they
        changed: most `device.extruder` changes are temperature readings, which move neither."""
        if (route := filament_route(self._print)) != self._route:
            self._route = route
            keys.add(ROUTE_KEY)
        # Computed once per report: the nozzle temperature sensor reads it from the memo.
        packed = self._active_nozzle_temps()
        target = packed[1] if packed else None
        if target != self._nozzle_target:
            self._nozzle_target = target
            keys.add(NOZZLE_TARGET_KEY)

    def _refresh_ams(self, unit_ids: set[str]) -> set[str]:
        """Re-parse only the units the merge touched (the others are as they were), and name
        what changed in them: one tray's `remain` then wakes that tray's entity alone."""
        old = self._ams_cache
        if old is None:  # never parsed: nothing to compare with
            new = self._ams()
            return {AMS_IDS_KEY} | {
                key for unit_id, unit in new.items() for key in _ams_keys(unit_id, None, unit)
            }
        raw_units = dig(self._print.get("ams"), "ams")
        raw_by_id = (
            {str(to_int(raw.get("id"))): raw for raw in raw_units if type(raw) is dict}
            if type(raw_units) is list
            else {}
        )
        units = dict(old)
        keys: set[str] = set()
        for ident in unit_ids:
            unit_id = to_int(ident)
            if unit_id is None:
                continue  # an entry without a usable id is no unit
            parsed = parse_ams_unit(raw_by_id.get(str(unit_id)))
            if parsed is None:
                units.pop(unit_id, None)
            else:
                units[unit_id] = parsed
            keys |= _ams_keys(unit_id, old.get(unit_id), parsed)
        self._ams_cache = dict(sorted(units.items()))
        return keys

    def _apply_version(self, info: dict[str, Any]) -> bool:
        raw_modules = info.get("module")
        if type(raw_modules) is not list:
            return False
        modules = {m.name: m for m in map(parse_module_info, raw_modules) if m is not None}
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
        for name in AP_BOARDS:
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
