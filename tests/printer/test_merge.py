"""The merge's fast path and its change keys, checked against the plain key-by-key merge."""

from __future__ import annotations

import copy
import random
from typing import Any

import pytest

from custom_components.bambu_lan.printer import merge, schema
from custom_components.bambu_lan.printer.merge import merge_obj
from custom_components.bambu_lan.printer.reads import SHARED_BLOCKS
from custom_components.bambu_lan.printer.schema import PRINT_SCHEMA
from custom_components.bambu_lan.printer.state import PrinterState
from tests.fixtures import reports as r

_MISSING = object()


def plain_merge(
    target: dict[str, Any],
    delta: dict[str, Any],
    spec: Any,
    depth: int,
    full: bool,
    *,
    changed_keys: set[str] | None = None,
    prefix: str = "",
    budget: merge.UnknownBudget | None = None,
) -> bool:
    """The merge without the fast path: every key of the delta, one by one."""
    changed = False
    for key, value in delta.items():
        old = target.get(key, _MISSING)
        if old is value or old == value:
            continue
        field = spec.fields.get(key, schema.ANY)
        if merge._merge_field(
            target, key, old, value, field, depth=depth + 1, full=full, budget=budget
        ):
            changed = True
            if changed_keys is not None:
                changed_keys.add(prefix + key)
    return changed


def _mutate(rng: random.Random, value: Any, depth: int = 0) -> Any:
    """A copy of a report value with a few random changes (types, numbers, ids, removals)."""
    if type(value) is dict:
        out = {}
        for key, item in value.items():
            roll = rng.random()
            if roll < 0.03:
                continue  # dropped from this report
            out[key] = _mutate(rng, item, depth + 1) if roll < 0.25 else copy.deepcopy(item)
        if rng.random() < 0.05:
            out[rng.choice(["extra", "temp", "info", "state", "id"])] = _leaf(rng)
        return out
    if type(value) is list:
        items = [_mutate(rng, item, depth + 1) for item in value]
        if items and rng.random() < 0.1:
            items.pop(rng.randrange(len(items)))
        return items
    return _leaf(rng) if rng.random() < 0.5 else value


def _leaf(rng: random.Random) -> Any:
    return rng.choice(
        [None, 0, 1, 7, -3, 2**40, 25.5, "25.5", "x", "", True, [], {}, {"id": "1"}, float("nan")]
    )


@pytest.mark.parametrize("full_report", [r.x1c_full_report, r.p1s_full_report, r.h2d_full_report])
@pytest.mark.parametrize("seed", range(3))
def test_fast_path_equals_the_plain_merge(
    full_report: Any, seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Random report sequences leave the same state, the same verdicts and the same top-level
    changed keys with and without the fast path; shared blocks name every part that changed."""
    rng = random.Random(seed)
    base = full_report()["print"]
    fast: dict[str, Any] = {}
    plain: dict[str, Any] = {}
    for step in range(300):
        delta = _mutate(rng, base) if step else copy.deepcopy(base)
        full = rng.random() < 0.5
        before = copy.deepcopy(fast)
        fast_keys: set[str] = set()
        fast_changed = merge_obj(
            fast, copy.deepcopy(delta), PRINT_SCHEMA, 0, full, changed_keys=fast_keys
        )
        with monkeypatch.context() as patched:
            patched.setattr(merge, "merge_obj", plain_merge)
            plain_keys: set[str] = set()
            plain_changed = plain_merge(
                plain, copy.deepcopy(delta), PRINT_SCHEMA, 0, full, changed_keys=plain_keys
            )
        assert repr(fast) == repr(plain), step  # repr: NaN compares unequal to itself
        assert fast_changed == plain_changed, step
        assert {key for key in fast_keys if "." not in key} == plain_keys, step
        for block in SHARED_BLOCKS:
            old, new = before.get(block), fast.get(block)
            if type(old) is dict and type(new) is dict:
                moved = {
                    f"{block}.{part}"
                    for part in old.keys() | new.keys()
                    if repr(old.get(part)) != repr(new.get(part))
                }
                assert moved <= fast_keys, (step, moved - fast_keys)
        if rng.random() < 0.2:
            base = full_report()["print"]  # back to a sane state now and then


def test_shared_blocks_are_the_schema_flags() -> None:
    """The blocks whose reads are recorded per part are the blocks whose changes are named so."""
    flagged = {
        key
        for key, spec in PRINT_SCHEMA.fields.items()
        if isinstance(spec, schema.Obj) and spec.shared
    }
    assert flagged == SHARED_BLOCKS


def test_changed_parts_of_shared_blocks() -> None:
    """A packed bed temperature changes `device` and `device.bed`, not `device.extruder`; a
    whole new block names all of its parts."""
    state = PrinterState()
    state.apply(r.h2d_full_report())
    state.apply(r.status(1, 1, device={"bed": {"info": {"temp": r.packed(61, 70)}}}))
    assert state.changed_keys == {"device", "device.bed"}
    state.apply(r.status(2, 1, device={"bed": {"info": {"temp": r.packed(61, 70)}}}))
    assert state.changed_keys == frozenset()
    state.apply(r.status(3, 1, ams={"tray_now": "7"}))
    assert state.changed_keys == {"ams", "ams.tray_now"}

    fresh = PrinterState()
    fresh.apply(r.status(1, 1, device={"bed": {"info": {"temp": 5}}, "ctc": {"info": {"temp": 6}}}))
    assert fresh.changed_keys == {"device", "device.bed", "device.ctc"}


def test_reads_of_shared_blocks_are_recorded_per_part() -> None:
    """The bed temperature reads `device.bed`; the nozzle temperature `device.extruder`."""
    state = PrinterState()
    state.apply(r.h2d_full_report())
    state.record_reads()
    assert state.bed_temp is not None
    reads = state.recorded_reads()
    assert "device.bed" in reads
    assert "device" not in reads
    assert "device.extruder" not in reads
    state.record_reads()
    assert state.nozzle_temp is not None
    reads = state.recorded_reads()
    assert "device.extruder" in reads
    assert "device" not in reads
    assert "device.bed" not in reads


@pytest.mark.parametrize("padding", [0, 20], ids=["few keys", "many keys"])
def test_the_same_nan_object_again_changes_nothing(padding: int) -> None:
    """A NaN never equals itself; the very object stored before, passed again, is no change
    (both ways of finding the differing keys: a few keys, and a full report's many)."""
    nan = float("nan")
    delta: dict[str, Any] = {"unknown_nan": nan} | {f"pad{i}": i for i in range(padding)}
    target: dict[str, Any] = {}
    assert merge_obj(target, delta, PRINT_SCHEMA, 0, False)
    assert target["unknown_nan"] is nan
    assert not merge_obj(target, dict(delta), PRINT_SCHEMA, 0, False)
    # A new NaN object is a new value (stored as the last one seen).
    assert merge_obj(target, delta | {"unknown_nan": float("nan")}, PRINT_SCHEMA, 0, False)
