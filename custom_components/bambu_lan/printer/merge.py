"""Merging full and delta reports into the stored `print` object, field by field, typed."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from itertools import filterfalse
import math
import time
from types import FunctionType
from typing import Any, Final

from .values import to_float, to_hex

_MAX_DEPTH: Final = 16
"""Deepest container nesting stored; real reports nest about 6 levels below `print`."""

_C_DIFF_MIN_KEYS: Final = 12
"""From this many keys on, a delta's differing keys are found by a loop in C (see `merge_obj`)."""


# --- what is kept of unknown fields ------------------------------------------------------------

# Any publisher on the report topic can invent keys: what the schema does not know is kept (for
# diagnostics) only within a per-printer budget. Known fields are never subject to it. Sizes are
# estimates (string lengths, 8 per other value, 16 + name per key); a real printer's unknown
# fields take a few hundred keys and some tens of KiB.
MAX_UNKNOWN_KEYS: Final = 2048
MAX_UNKNOWN_SIZE: Final = 512 * 1024
MAX_UNKNOWN_VALUE: Final = 32 * 1024
_KEY_COST: Final = 16
# An exhausted budget may hold keys that have left the state since (an emptied tray, a pruned
# AMS unit): it is recounted, but not more often than this, so a flood costs one walk a minute.
_RECOUNT_INTERVAL: Final = 60.0


class UnknownBudget:
    """The unknown keys one printer keeps (in `stored`), in count and estimated size."""

    __slots__ = ("_recounted_at", "_schema", "_stored", "keys", "size")

    def __init__(self, stored: dict[str, Any], schema: _Obj) -> None:
        """Account for what `stored` (merged with `schema`) keeps; it starts empty."""
        self._stored = stored
        self._schema = schema
        self.keys = 0
        self.size = 0
        self._recounted_at: float | None = None

    def fits(self, keys: int, size: int) -> bool:
        """Whether `keys` more keys and `size` more bytes stay within the caps."""
        if self._within(keys, size):
            return True
        # Keys may have left since with their container (an emptied tray, a pruned AMS unit).
        return self._recount() and self._within(keys, size)

    def _within(self, keys: int, size: int) -> bool:
        return self.keys + keys <= MAX_UNKNOWN_KEYS and self.size + size <= MAX_UNKNOWN_SIZE

    def _recount(self) -> bool:
        now = time.monotonic()
        if self._recounted_at is not None and now - self._recounted_at < _RECOUNT_INTERVAL:
            return False
        self._recounted_at = now
        self.keys, self.size = _unknown_usage(self._stored, self._schema)
        return True


def _cost(value: Any, limit: int) -> tuple[int, int]:
    """(keys, estimated size) of a stored value; the size exceeds `limit` once it is over it."""
    keys = size = 0
    pending = [value]
    while pending:
        item = pending.pop()
        kind = type(item)
        if kind is dict:
            keys += len(item)
            size += 8 + sum(_KEY_COST + len(key) for key in item)
            pending.extend(item.values())
        elif kind is list:
            size += 8
            pending.extend(item)
        else:
            size += len(item) if kind is str else 8
        if size > limit:
            break
    return keys, size


def _unknown_usage(obj: dict[str, Any], spec: _Obj) -> tuple[int, int]:
    keys = size = 0
    for key, value in obj.items():
        field = spec.fields.get(key, _ANY)
        if isinstance(field, _Obj) and type(value) is dict:
            more = _unknown_usage(value, field)
        elif isinstance(field, _ById) and type(value) is list:
            more = (0, 0)
            for item in value:
                if type(item) is dict:
                    inner = _unknown_usage(item, field.entry)
                    more = (more[0] + inner[0], more[1] + inner[1])
        elif isinstance(field, _Any):
            inner = _cost(value, MAX_UNKNOWN_SIZE)
            more = (1 + inner[0], _KEY_COST + len(key) + inner[1])
        else:
            continue
        keys += more[0]
        size += more[1]
    return keys, size


# --- merging ------------------------------------------------------------------------------------

_MISSING: Final = object()
_INVALID: Final = object()

type _Check = Callable[[Any], bool]


class _Obj:
    """Schema of a JSON object: known fields, whether it is a filament tray, and whether it is
    a block shared by unrelated readers (its changed parts are named, e.g. `device.bed`)."""

    __slots__ = ("fields", "shared", "tray")

    def __init__(
        self, fields: Mapping[str, _Spec], *, tray: bool = False, shared: bool = False
    ) -> None:
        self.fields = fields
        self.tray = tray
        self.shared = shared


class _ById:
    """A list of objects merged entry by entry, matched on their `id`.

    `changed`, when given, collects the ids of entries a merge added, changed or dropped (the
    caller clears it before merging).
    """

    __slots__ = ("changed", "entry")

    def __init__(self, entry: _Obj, changed: set[str] | None = None) -> None:
        self.entry = entry
        self.changed = changed


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
    kind = type(value)
    if kind is float:  # the common case, without to_float's conversion
        return math.isfinite(value)
    return kind is int or to_float(value) is not None


def _is_str(value: Any) -> bool:
    return type(value) is str


def _is_hex(value: Any) -> bool:
    return to_hex(value) is not None


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


def merge_obj(
    target: dict[str, Any],
    delta: dict[str, Any],
    spec: _Obj,
    depth: int,
    full: bool,
    *,
    changed_keys: set[str] | None = None,
    prefix: str = "",
    budget: UnknownBudget | None = None,
) -> bool:
    """Merge `delta` into `target` (at nesting `depth`) in place; True if anything changed.

    `changed_keys` collects the keys whose value changed (as `prefix` + key), and inside a
    shared block (`_Obj.shared`) the changed parts too, as `block.part`. `budget` bounds what
    is kept of unknown keys (None: no bound).
    """
    get = target.get
    # Fast path: one C-level comparison per key (nested objects compare as a whole), so a
    # report that repeats the stored state costs no recursion and no per-field work. NaN never
    # equals itself and goes the slow way. A big delta (an X1 full report: ~100 keys) is
    # compared by a loop in C, `(key, value) in target.items()`; for a few keys (P1 deltas) the
    # comprehension is cheaper than setting that loop up.
    if len(delta) > _C_DIFF_MIN_KEYS:
        differing = list(filterfalse(target.items().__contains__, delta.items()))
    else:
        differing = [(key, value) for key, value in delta.items() if get(key, _MISSING) != value]
    if not differing:
        return False
    changed = False
    fields = spec.fields
    for key, value in differing:
        old = get(key, _MISSING)
        if old is value:  # the very same object: a NaN stored and passed again
            continue
        field = fields.get(key, _ANY)
        parts = (
            changed_keys
            if changed_keys is not None and type(field) is _Obj and field.shared
            else None
        )
        if _merge_field(
            target, key, old, value, field, depth=depth + 1, full=full, parts=parts, budget=budget
        ):
            changed = True
            if changed_keys is not None:
                changed_keys.add(prefix + key)
    return changed


def _merge_field(
    target: dict[str, Any],
    key: str,
    old: Any,
    value: Any,
    spec: _Spec,
    *,
    depth: int,
    full: bool,
    parts: set[str] | None = None,
    budget: UnknownBudget | None = None,
) -> bool:
    """Merge one differing value into `target[key]`; `depth` is the value's nesting level.

    `parts`, for a shared block, collects its changed parts as `key.part`.
    """
    # Most frequent first: typed leaves, then the envelope (a new sequence_id every report).
    if isinstance(spec, FunctionType):
        return spec(value) and _store(target, key, value, depth)
    if isinstance(spec, _Quiet):
        _store(target, key, value, depth)
        return False
    if isinstance(spec, _Obj):
        if type(value) is not dict or depth > _MAX_DEPTH:
            return False
        if spec.tray and _is_empty_tray(value):
            target[key] = _empty_tray(value)
            return True
        prefix = "" if parts is None else f"{key}."
        if type(old) is dict:
            return merge_obj(
                old, value, spec, depth, full, changed_keys=parts, prefix=prefix, budget=budget
            )
        fresh: dict[str, Any] = {}
        if (
            merge_obj(
                fresh, value, spec, depth, full, changed_keys=parts, prefix=prefix, budget=budget
            )
            or not value
        ):
            target[key] = fresh
            return True
        return False
    if isinstance(spec, _ById):
        if type(value) is not list or depth >= _MAX_DEPTH:
            return False
        if type(old) is not list:
            old = target[key] = []
        return _merge_by_id(
            old, value, spec.entry, depth, full, budget=budget, changed_ids=spec.changed
        )
    # An unknown field (`_Any`): the schema's checks are plain functions, handled first.
    if type(old) is dict and type(value) is dict:
        return depth <= _MAX_DEPTH and merge_obj(old, value, _GENERIC, depth, full, budget=budget)
    if budget is None:
        return _store(target, key, value, depth)
    return _store_unknown(target, key, old, value, depth, budget=budget)


def _store(target: dict[str, Any], key: str, value: Any, depth: int) -> bool:
    kind = type(value)
    if kind is dict or kind is list:
        value = _clone(value, depth)
        if value is _INVALID:
            return False
    target[key] = value
    return True


def _store_unknown(
    target: dict[str, Any], key: str, old: Any, value: Any, depth: int, *, budget: UnknownBudget
) -> bool:
    """Store an unknown key's value if the printer's budget allows; a value too big to keep
    replaces nothing (the old value, which fitted, stays)."""
    keys, size = _cost(value, MAX_UNKNOWN_VALUE)
    if size > MAX_UNKNOWN_VALUE:
        return False
    keys, size = keys + 1, size + _KEY_COST + len(key)
    if old is not _MISSING:
        old_keys, old_size = _cost(old, MAX_UNKNOWN_SIZE)
        keys, size = keys - old_keys - 1, size - old_size - _KEY_COST - len(key)
    if not budget.fits(keys, size):
        return False
    if not _store(target, key, value, depth):
        return False
    budget.keys += keys
    budget.size += size
    return True


def _merge_by_id(
    items: list[dict[str, Any]],
    delta: list[Any],
    entry: _Obj,
    depth: int,
    full: bool,
    *,
    budget: UnknownBudget | None,
    changed_ids: set[str] | None = None,
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
                merge_obj(fresh, raw, entry, depth + 1, full, budget=budget)
            index[ident] = len(items)
            items.append(fresh)
            changed = True
            if changed_ids is not None:
                changed_ids.add(ident)
            continue
        current = items[pos]
        if current == raw:
            continue
        if entry.tray and _is_empty_tray(raw):
            items[pos] = _empty_tray(raw)
        elif not merge_obj(current, raw, entry, depth + 1, full, budget=budget):
            continue
        changed = True
        if changed_ids is not None:
            changed_ids.add(ident)
    if full and len(seen) < len(items):
        if changed_ids is not None:
            changed_ids.update(key for key in index if key is not None and key not in seen)
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
        "k": _is_num,
        "tag_uid": _is_str,
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
        "info": _is_hex,
        "dry_setting": _Obj(
            {"dry_filament": _is_str, "dry_temperature": _is_num, "dry_duration": _is_num}
        ),
        "tray": _ById(_TRAY),
    }
)

AMS_UNITS: Final = _ById(_AMS_UNIT, changed=set())
"""The `ams.ams` list; `changed` holds the ids of the units the last merge touched."""

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
    },
    shared=True,
)

PRINT_SCHEMA: Final = _Obj(
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
                "ams": AMS_UNITS,
                "tray_now": _is_num,
                "tray_tar": _is_num,
                "tray_pre": _is_num,
                "ams_exist_bits": _is_hex,
                "tray_exist_bits": _is_hex,
            },
            shared=True,
        ),
        "vt_tray": _TRAY,
        "vir_slot": _ById(_TRAY),
        "device": _DEVICE,
    }
)
