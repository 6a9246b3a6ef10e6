"""Typed read access to the AMS and the filament path of the merged `print` object.

The keys no report carries that `PrinterState` names in `changed_keys` for them live here too.
"""

from __future__ import annotations

from typing import Any, Final

from .ams import (
    EXTERNAL_IDS,
    HT_FIRST_ID,
    KIND_BY_MODULE,
    NO_TRAY,
    AmsKind,
    AmsTray,
    AmsUnit,
    parse_ams_unit,
    parse_tray,
)
from .models import AMS_LITE_MODELS, PrinterModel
from .reads import RecordedReads
from .values import ModuleInfo, bounded, dig, to_int

AMS_UNITS_KEY: Final = "ams.ams"
"""The raw AMS unit list's part of `ams` (`SHARED_BLOCKS`); no accessor records it: the unit
list is read at a finer grain (`AMS_IDS_KEY`, `ams_unit_key`, `ams_tray_key`)."""
AMS_IDS_KEY: Final = "ams.units"
"""A key no report carries: `PrinterState` puts it in `changed_keys` when a unit appeared or
went, and `ams_units` and `has_ams_unit` record it."""


def ams_unit_key(unit_id: int) -> str:
    """The key of one unit's own readings (humidity, drying ...), named like `ams_tray_key`."""
    return f"{AMS_UNITS_KEY}.{unit_id}"


def ams_tray_key(unit_id: int, slot: int) -> str:
    """The key of one tray: a report that changes only its `remain` changes only this key."""
    return f"{AMS_UNITS_KEY}.{unit_id}.{slot}"


ROUTE_KEY: Final = "device.filament"
"""A key no report carries: `PrinterState` puts it in `changed_keys` when the filament a
nozzle holds (or the active nozzle) changed, and accessors of those record it instead of
`device`, whose temperatures change with nearly every H2D report."""

type FilamentRoute = tuple[int, dict[int, int]]
"""(active nozzle, {nozzle id: `snow`}) of a dual-nozzle printer."""


def filament_route(status: dict[str, Any]) -> FilamentRoute | None:
    """Which tray each nozzle of a dual-nozzle printer holds; None on single-nozzle ones."""
    extruder = dig(status.get("device"), "extruder")
    infos = dig(extruder, "info")
    infos = [item for item in infos if type(item) is dict] if type(infos) is list else []
    state = to_int(dig(extruder, "state"))
    if (state & 0xF if state is not None else len(infos)) < 2:
        return None
    snows = {}
    for item in infos:
        nozzle, snow = to_int(item.get("id")), to_int(item.get("snow"))
        if nozzle is not None and snow is not None:
            snows[nozzle] = snow
    return ((state >> 4) & 0xF if state is not None else 0), snows


class AmsFields(RecordedReads):
    """The AMS accessors of `PrinterState` (see `StateFields`)."""

    _model: PrinterModel | None
    _modules: dict[str, ModuleInfo]
    _ams_cache: dict[int, AmsUnit] | None
    """Parsed AMS units; `PrinterState` re-parses the units a report touches."""
    _route: FilamentRoute | None
    """`filament_route` of the merged state, kept current by `PrinterState`."""

    # --- units and trays --------------------------------------------------------------------------

    def _ams(self) -> dict[int, AmsUnit]:
        # Parsed once; `PrinterState` re-parses the units a report touches. Not recorded here:
        # the accessors below record the unit or tray they return.
        cache = self._ams_cache
        if cache is None:
            units = dig(self._print.get("ams"), "ams")
            parsed = map(parse_ams_unit, units) if type(units) is list else ()
            ordered = sorted((unit for unit in parsed if unit is not None), key=lambda u: u.id)
            cache = self._ams_cache = {unit.id: unit for unit in ordered}
        return cache

    @property
    def ams_units(self) -> list[AmsUnit]:
        """The AMS units the printer reports, ordered by id (recorded as the list of ids)."""
        self._view.get(AMS_IDS_KEY)
        return list(self._ams().values())

    def has_ams_unit(self, unit_id: int) -> bool:
        """Whether the printer reports that unit (recorded as the list of ids)."""
        self._view.get(AMS_IDS_KEY)
        return unit_id in self._ams()

    def ams_unit(self, unit_id: int) -> AmsUnit | None:
        """One AMS unit, if the printer reports it (recorded as the unit's own readings)."""
        self._view.get(ams_unit_key(unit_id))
        return self._ams().get(unit_id)

    def ams_tray(self, unit_id: int, slot: int) -> AmsTray | None:
        """One tray of an AMS unit (recorded as that tray alone)."""
        self._view.get(ams_tray_key(unit_id, slot))
        unit = self._ams().get(unit_id)
        return unit.tray(slot) if unit else None

    def ams_kind(self, unit: AmsUnit) -> AmsKind:
        """The unit's type: from its `info`, else its get_version module, else the printer."""
        if unit.kind is not None:
            return unit.kind
        if module := self.ams_module(unit.id):
            return KIND_BY_MODULE[module.name.partition("/")[0]]
        if unit.id >= HT_FIRST_ID:
            return AmsKind.AMS_HT
        return AmsKind.AMS_LITE if self._model in AMS_LITE_MODELS else AmsKind.AMS

    def ams_module(self, unit_id: int) -> ModuleInfo | None:
        """The get_version module of an AMS unit (serial and firmware), if listed."""
        for prefix in KIND_BY_MODULE:
            if module := self._modules.get(f"{prefix}/{unit_id}"):
                return module
        return None

    @property
    def active_tray(self) -> int | None:
        """Loaded tray (`ams.tray_now`): ams_id * 4 + slot, 254 external; None when none."""
        value = to_int(self._part("ams", "tray_now"))
        return None if value == 255 else bounded(value, 0, 254)

    @property
    def active_location(self) -> tuple[int, int] | None:
        """(unit id, slot) of the filament being fed; external spools are (254 or 255, 0).

        Dual-nozzle printers say it per nozzle (`snow`), the others in `tray_now`.
        """
        self._view.get(ROUTE_KEY)
        if self._route is not None:
            return self.nozzle_location(self._route[0])
        value = self.active_tray
        if value is None:
            return None
        if value in EXTERNAL_IDS or value >= HT_FIRST_ID:
            return value, 0
        return divmod(value, 4)

    def nozzle_location(self, nozzle_id: int) -> tuple[int, int] | None:
        """(unit id, slot) of the filament in that nozzle (`snow`), None when empty."""
        self._view.get(ROUTE_KEY)
        snow = self._route[1].get(nozzle_id) if self._route else None
        if snow is None or snow < 0 or snow == NO_TRAY or snow & 0xFF == 0xFF:
            return None  # 0xFFFF, or slot 255 (e.g. 0xFEFF): the nozzle holds nothing
        return snow >> 8, snow & 0xFF

    def tray_at(self, unit_id: int, slot: int) -> AmsTray | None:
        """The tray at (unit id, slot): an AMS tray or an external spool."""
        if unit_id in EXTERNAL_IDS:
            return next((t for t in self.external_spools if t.slot == unit_id), None)
        return self.ams_tray(unit_id, slot)

    @property
    def external_spools(self) -> list[AmsTray]:
        """External spools: `vir_slot[]` (H2) or the single `vt_tray` (id 254)."""
        slots = self._view.get("vir_slot")
        if type(slots) is list:
            return [tray for tray in map(parse_tray, slots) if tray is not None]
        tray = parse_tray(self._view.get("vt_tray"))
        return [] if tray is None else [tray]

    @property
    def has_external_spool_list(self) -> bool:
        """Whether external spools come as `vir_slot[]` (one per nozzle)."""
        return type(self._view.get("vir_slot")) is list
