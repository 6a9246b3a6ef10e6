"""Merging full and delta reports into the stored `print` object, field by field, typed."""

from __future__ import annotations

from itertools import filterfalse
import time
from types import FunctionType
from typing import Any, Final

from .schema import (
    ANY,
    GENERIC,
    AnyField,
    ById,
    Obj,
    Quiet,
    Spec,
    is_id,
    is_num,
)

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

    def __init__(self, stored: dict[str, Any], schema: Obj) -> None:
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


def _unknown_usage(obj: dict[str, Any], spec: Obj) -> tuple[int, int]:
    keys = size = 0
    for key, value in obj.items():
        field = spec.fields.get(key, ANY)
        if isinstance(field, Obj) and type(value) is dict:
            more = _unknown_usage(value, field)
        elif isinstance(field, ById) and type(value) is list:
            more = (0, 0)
            for item in value:
                if type(item) is dict:
                    inner = _unknown_usage(item, field.entry)
                    more = (more[0] + inner[0], more[1] + inner[1])
        elif isinstance(field, AnyField):
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
    return tray.keys() <= _EMPTY_TRAY_KEYS and is_id(tray.get("id"))


def _empty_tray(tray: dict[str, Any]) -> dict[str, Any]:
    cleared = {"id": tray["id"]}
    state = tray.get("state", _MISSING)
    if state is not _MISSING and is_num(state):
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
    spec: Obj,
    depth: int,
    full: bool,
    *,
    changed_keys: set[str] | None = None,
    prefix: str = "",
    budget: UnknownBudget | None = None,
) -> bool:
    """Merge `delta` into `target` (at nesting `depth`) in place; True if anything changed.

    `changed_keys` collects the keys whose value changed (as `prefix` + key), and inside a
    shared block (`Obj.shared`) the changed parts too, as `block.part`. `budget` bounds what
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
        field = fields.get(key, ANY)
        parts = (
            changed_keys
            if changed_keys is not None and type(field) is Obj and field.shared
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
    spec: Spec,
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
    if isinstance(spec, Quiet):
        _store(target, key, value, depth)
        return False
    if isinstance(spec, Obj):
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
    if isinstance(spec, ById):
        if type(value) is not list or depth >= _MAX_DEPTH:
            return False
        if type(old) is not list:
            old = target[key] = []
        return _merge_by_id(
            old, value, spec.entry, depth, full, budget=budget, changed_ids=spec.changed
        )
    # An unknown field (`AnyField`): the schema's checks are plain functions, handled first.
    if type(old) is dict and type(value) is dict:
        return depth <= _MAX_DEPTH and merge_obj(old, value, GENERIC, depth, full, budget=budget)
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
    entry: Obj,
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
