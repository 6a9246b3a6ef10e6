"""The printer state model: decoding, merging full and delta reports, typed accessors."""

from __future__ import annotations

import copy
import json
import random
import re
import types
from typing import Any, Final, get_args, get_origin, get_type_hints

import pytest

from custom_components.bambu_lan.printer import merge, values
from custom_components.bambu_lan.printer.ams import AmsTray, AmsUnit
from custom_components.bambu_lan.printer.ams_fields import ROUTE_KEY
from custom_components.bambu_lan.printer.fields import NOZZLE_TARGET_KEY
from custom_components.bambu_lan.printer.models import (
    PrinterModel,
    has_chamber_sensor,
    has_door_sensor,
    is_dual_nozzle_model,
    model_from_code,
    model_from_product_name,
    model_from_serial,
    reports_full,
)
from custom_components.bambu_lan.printer.nozzle import NozzleKind, parse_nozzle_type
from custom_components.bambu_lan.printer.state import PrinterState
from custom_components.bambu_lan.printer.values import (
    MAX_PAYLOAD_BYTES,
    HmsEntry,
    ModuleInfo,
    Nozzle,
    decode_payload,
)
from tests.fixtures import reports as r

PROPERTIES = sorted(
    name for name, value in vars(PrinterState).items() if isinstance(value, property)
)


@pytest.fixture(autouse=True)
def auto_enable_custom_integrations() -> None:
    """Override the package-wide fixture: these tests need no Home Assistant instance."""


def state_with(*messages: dict[str, Any], serial: str | None = None) -> PrinterState:
    """A state that has applied `messages` in order."""
    state = PrinterState(serial)
    for message in messages:
        state.apply(message)
    return state


def delta(**fields: Any) -> dict[str, Any]:
    """A delta push."""
    return r.status(999, 1, **fields)


ENVELOPE = ("command", "msg", "sequence_id")


def content(state: PrinterState) -> dict[str, Any]:
    """The state's snapshot without the envelope fields every push changes."""
    snap = state.snapshot()
    for key in ENVELOPE:
        snap.pop(key, None)
    return snap


# --- decode_payload -----------------------------------------------------------------------------


@pytest.fixture(params=["orjson", "stdlib"])
def loader(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run decoding tests with orjson and with the stdlib fallback."""
    if request.param == "stdlib":
        monkeypatch.setattr(values, "_loads", values._stdlib_loads)
    return str(request.param)


def test_decode_payload_object(loader: str) -> None:
    """A report decodes to the same dict the printer encoded."""
    message = r.x1c_full_report()
    assert decode_payload(r.payload(message)) == message


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"{",
        b'{"print": }',
        b"\xff\xfe{}",  # not UTF-8
        b'{"a": "\xc3"}',  # truncated UTF-8 sequence inside a string
        b"[]",
        b'[{"print": {}}]',
        b'"print"',
        b"42",
        b"null",
        b"true",
        b"[" * 100_000 + b"]" * 100_000,  # deeper than any parser accepts
    ],
)
def test_decode_payload_rejects(loader: str, payload: bytes) -> None:
    """Anything but a JSON object is None, never an exception."""
    assert decode_payload(payload) is None


def test_decode_payload_size_cap(loader: str) -> None:
    """Payloads over MAX_PAYLOAD_BYTES are dropped undecoded; the cap itself is allowed."""
    body = b'{"print":{}}'
    at_cap = body + b" " * (MAX_PAYLOAD_BYTES - len(body))
    assert decode_payload(at_cap) == {"print": {}}
    assert decode_payload(at_cap + b" ") is None
    assert MAX_PAYLOAD_BYTES >= 64 * 1024  # well above a real full report


# --- merging ------------------------------------------------------------------------------------


def test_p1s_full_then_deltas() -> None:
    """Deltas change only the fields they carry; everything else survives."""
    state = state_with(r.p1s_full_report())
    assert state.gcode_state == "IDLE"
    assert state.stage_name == "idle"
    assert state.nozzle_temp == 25.0
    changed = [state.apply(message) for message in r.p1s_deltas()]
    assert changed == [True] * len(changed)
    assert state.gcode_state == "RUNNING"
    assert state.stage_name == "printing"
    assert state.progress == 2
    assert state.total_layers == 240
    assert state.nozzle_temp == 220.0  # whole degrees, half up
    assert state.bed_temp == 32.0
    assert state.bed_target == 55.0
    assert state.remaining_minutes == 93
    assert state.aux_fan_percent == 47
    assert state.wifi_dbm == -62
    # untouched by any delta:
    assert state.nozzle_type == NozzleKind("stainless_steel", None, "stainless_steel")
    assert state.file_name == "Benchy.gcode.3mf"
    trays = state.ams_units[0].trays
    assert [tray.remain for tray in trays] == [93, 51, 40, 100]
    assert trays[2].tray_type == "ABS"
    assert state.ams_units[0].humidity_index == 4


def test_apply_reports_no_change_for_repeats() -> None:
    """Repeated values, and envelope-only changes, do not wake listeners."""
    state = state_with(r.p1s_full_report())
    assert state.apply(delta(mc_percent=5)) is True
    assert state.apply(delta(mc_percent=5)) is False
    assert state.apply(r.status(12345, 1)) is False  # only a new sequence_id
    assert state.apply(delta(mc_percent=5, ams={"tray_now": "255"})) is False

    x1 = state_with(r.x1c_full_report(1))
    assert x1.apply(r.x1c_full_report(2)) is False  # new sequence_id and t_utc only
    assert x1.apply(r.x1c_full_report(3, nozzle_temp=221.0)) is True
    assert x1.snapshot()["sequence_id"] == "3"  # envelope kept for diagnostics


def test_full_state_received() -> None:
    """Only a full push (msg 0) marks the state complete, and that counts as a change."""
    state = PrinterState()
    assert (state.apply(delta(mc_percent=1)), state.full_state_received) == (True, False)
    assert (state.apply(r.status(1, 0, mc_percent=1)), state.full_state_received) == (True, True)
    state.full_state_received = False  # the owner clears it on reconnect
    assert (state.apply(r.status(2, 0, mc_percent=1)), state.full_state_received) == (True, True)


@pytest.mark.parametrize(
    "message",
    [
        r.ack("gcode_line", gcode_state="PAUSE", mc_percent=99),
        r.ack("pause", gcode_state="PAUSE"),
        r.ack("print_speed", spd_lvl=4),
        {"print": {"gcode_state": "PAUSE", "mc_percent": 99}},  # no command at all
        {"print": {"command": ["push_status"], "mc_percent": 99}},
        {"info": {"command": "get_version"}},  # no module list
        {"info": {"command": "get_access_code", "module": [{"name": "ota", "sw_ver": "9"}]}},
        {"pushing": {"command": "pushall"}},
        {"print": "push_status"},
        {},
    ],
)
def test_non_status_messages_are_not_merged(message: dict[str, Any]) -> None:
    """Acks share the `print` key with status pushes but must not change the state."""
    state = state_with(r.x1c_full_report(), r.x1c_version())
    before = state.snapshot()
    assert state.apply(message) is False
    assert state.snapshot() == before
    assert state.gcode_state == "RUNNING"
    assert state.progress == 42
    assert state.speed_level == 2
    assert state.firmware == "01.09.00.01"


def test_h2d_nested_deltas() -> None:
    """Partial nested deltas deep-merge without losing siblings."""
    state = state_with(r.h2d_full_report(), r.h2d_version())
    assert state.is_dual_nozzle is True
    assert state.active_nozzle == 0
    assert state.nozzle_temp == 245.0

    state.apply(r.h2d_deltas()[0])  # {"device": {"extruder": {"state": 274}}}
    assert state.active_nozzle == 1
    assert state.is_dual_nozzle is True
    device = state.snapshot()["device"]
    assert len(device["extruder"]["info"]) == 2  # siblings of "state" survive
    assert device["bed"]["info"]["temp"] == r.packed(70, 70)
    assert device["airduct"]["modeCur"] == 0
    assert state.nozzle_temp == 47.0  # the left nozzle is now the active one

    state.apply(r.h2d_deltas()[2])  # packed temp for nozzle 1 only
    left, right = state.nozzles[1], state.nozzles[0]
    assert (left.id, left.temp, left.target) == (1, 215.0, 220.0)
    assert (right.id, right.temp, right.target) == (0, 245.0, 245.0)
    assert state.snapshot()["device"]["extruder"]["info"][1]["snow"] == 65279
    assert (state.nozzle_temp, state.nozzle_target) == (215.0, 220.0)

    state.apply(r.h2d_deltas()[3])
    assert (state.bed_temp, state.bed_target) == (68.0, 70.0)
    state.apply(r.h2d_deltas()[4])
    assert (state.chamber_temp, state.chamber_target) == (38.0, 45.0)
    assert state.progress == 7


def test_ams_lists_merge_by_id() -> None:
    """ams.ams[] and tray[] merge entry by entry, matched on id ("1" and 1 are the same)."""
    state = state_with(r.h2d_full_report())
    changed = state.apply(
        delta(ams={"ams": [{"id": 1, "temp": "30.5", "tray": [{"id": "3", "remain": 12}]}]})
    )
    assert changed is True
    first, second = state.ams_units
    assert first == state_with(r.h2d_full_report()).ams_units[0]
    assert second.temp == 30.5
    assert second.humidity_index == 3
    assert [tray.remain for tray in second.trays] == [93, 51, None, 12]
    assert second.trays[3].tray_type == "PLA"

    state.apply(delta(ams={"ams": [r.ams_unit(2, [r.tray(0, "TPU")])]}))
    assert [unit.id for unit in state.ams_units] == [0, 1, 2]
    assert state.ams_units[2].trays[0].tray_type == "TPU"


def test_empty_tray_replaces_cached_slot() -> None:
    """A tray with only id (and state) is an empty slot: clear it, don't merge into it."""
    state = state_with(r.x1c_full_report())
    state.apply(delta(ams={"ams": [{"id": "0", "tray": [{"id": "1", "state": 0}]}]}))
    cleared = state.ams_units[0].trays[1]
    assert cleared == AmsTray(
        slot=1, empty=True, tray_type=None, sub_brand=None, color=None, remain=None
    )
    assert state.snapshot()["ams"]["ams"][0]["tray"][1] == {"id": "1", "state": 0}
    assert state.ams_units[0].trays[0].tray_type == "PLA"  # neighbours untouched

    state.apply(delta(ams={"ams": [{"id": "0", "tray": [{"id": "1"}]}]}))
    assert state.snapshot()["ams"]["ams"][0]["tray"][1] == {"id": "1"}

    state.apply(delta(ams={"ams": [{"id": "0", "tray": [r.tray(1, "PETG", "FF0000FF", 80)]}]}))
    refilled = state.ams_units[0].trays[1]
    assert (refilled.empty, refilled.tray_type, refilled.color) == (False, "PETG", "FF0000FF")


def test_empty_external_spool() -> None:
    """vt_tray follows the same empty-slot rule, and vir_slot[] merges by id."""
    state = state_with(r.p1s_full_report(), delta(vt_tray=r.tray(254, "PLA")))
    assert state.external_spools[0].tray_type == "PLA"
    state.apply(delta(vt_tray={"id": "254"}))
    assert state.snapshot()["vt_tray"] == {"id": "254"}
    assert state.external_spools == [
        AmsTray(slot=254, empty=True, tray_type=None, sub_brand=None, color=None, remain=None)
    ]

    h2d = state_with(r.h2d_full_report())
    h2d.apply(delta(vir_slot=[{"id": "255", "tray_type": "PETG", "tray_color": "00FF00FF"}]))
    slots = {tray.slot: tray for tray in h2d.external_spools}
    assert slots[255].tray_type == "PETG"
    assert slots[254].empty is True


def test_full_report_drops_removed_ams_units() -> None:
    """A full report lists every unit, so units it omits are gone; a delta prunes nothing."""
    two_units = r.x1c_full_report()
    two_units["print"]["ams"]["ams"].append(r.ams_unit(1, r.four_trays()))
    state = state_with(two_units)
    assert [unit.id for unit in state.ams_units] == [0, 1]
    state.apply(delta(ams={"ams": [{"id": "1", "humidity": "2"}]}))
    assert [unit.id for unit in state.ams_units] == [0, 1]
    assert state.apply(r.x1c_full_report(5)) is True
    assert [unit.id for unit in state.ams_units] == [0]


def test_hms_and_lights_are_replaced_whole() -> None:
    """hms and lights_report are complete lists whenever present."""
    state = state_with(r.x1c_full_report())
    two = [{"attr": 0x07002000, "code": 0x00020002}, {"attr": 0x0C000300, "code": 0x00030003}]
    state.apply(delta(hms=two))
    assert state.hms_codes == ["HMS_0700_2000_0002_0002", "HMS_0C00_0300_0003_0003"]
    state.apply(delta(hms=two[1:]))
    assert state.hms_codes == ["HMS_0C00_0300_0003_0003"]
    state.apply(delta(hms=[]))
    assert state.hms == []

    state.apply(delta(lights_report=[{"node": "chamber_light", "mode": "off"}]))
    assert state.lights == {"chamber_light": "off"}
    assert state.chamber_light_on is False


def test_unknown_keys_kept_and_deep_merged() -> None:
    """Unknown keys are stored; unknown nested objects deep-merge like known ones."""
    state = state_with(r.p1s_full_report())
    state.apply(delta(new_thing={"a": 1, "nested": {"x": [1, 2]}}, flag="yes"))
    state.apply(delta(new_thing={"b": 2, "nested": {"y": None}}))
    snap = state.snapshot()
    assert snap["new_thing"] == {"a": 1, "b": 2, "nested": {"x": [1, 2], "y": None}}
    assert snap["flag"] == "yes"
    assert snap["xcam"]["buildplate_marker_detector"] is True


def _stored_size(state: PrinterState) -> int:
    return len(json.dumps(state.snapshot()))


def test_unknown_keys_are_bounded_per_printer() -> None:
    """Any publisher on the report topic can invent keys: 150 messages of 200 KB with a new key
    each, then a flood of small ones, keep the stored state bounded; known fields stay."""
    state = state_with(r.x1c_full_report())
    before = _stored_size(state)
    for i in range(150):
        assert state.apply(delta(**{f"junk{i}": "x" * 200_000}, mc_percent=i % 100)) is True
        assert state.progress == i % 100  # known fields always update
    assert not any(key.startswith("junk") for key in state.snapshot())
    assert _stored_size(state) <= before + 2  # none of the 200 KB values is kept

    for i in range(3000):
        state.apply(delta(**{f"k{i}": "y" * 20_000}, ams={"unit_junk": {f"n{i}": i}}))
    grown = _stored_size(state) - before
    assert grown <= merge.MAX_UNKNOWN_SIZE
    assert grown > merge.MAX_UNKNOWN_SIZE // 2  # it is a budget, not a refusal
    snap = state.snapshot()
    assert "k0" in snap  # what fitted stays
    assert "k2999" not in snap
    assert state.apply(delta(mc_percent=7, subtask_name="known")) is True
    assert state.progress == 7
    assert state.ams_units[0].trays[0].tray_type == "PLA"


def test_unknown_key_count_is_bounded() -> None:
    """Tiny keys exhaust the count before the size."""
    state = state_with(r.p1s_full_report())
    for i in range(merge.MAX_UNKNOWN_KEYS + 100):
        state.apply(delta(**{f"t{i}": 1}))
    stored = sum(1 for key in state.snapshot() if key.startswith("t") and key[1:].isdigit())
    assert merge.MAX_UNKNOWN_KEYS - 200 < stored < merge.MAX_UNKNOWN_KEYS


def test_unknown_budget_is_recounted_once_a_minute(monkeypatch: pytest.MonkeyPatch) -> None:
    """Unknown keys that left with their container (a pruned AMS unit) free their share, at the
    next recount: one walk a minute at most, however long a flood goes on."""
    clock = [1000.0]
    monkeypatch.setattr(merge.time, "monotonic", lambda: clock[0])
    state = state_with(r.x1c_full_report())
    unit = r.x1c_full_report()["print"]["ams"]["ams"][0]
    flood = {f"pad{i}": "z" * 20_000 for i in range(20)}
    state.apply(delta(ams={"ams": [unit | flood]}))
    assert "pad0" in state.snapshot()["ams"]["ams"][0]
    for i in range(merge.MAX_UNKNOWN_SIZE // 20_000):
        state.apply(delta(**{f"more{i}": "m" * 20_000}))
    assert "more0" in state.snapshot()
    assert "more19" not in state.snapshot()  # the budget is spent (and was recounted)

    full = r.x1c_full_report()
    full["print"]["ams"]["ams"] = []  # a full report without the unit prunes it
    state.apply(full)
    calls: list[int] = []
    usage = merge._unknown_usage

    def counted(stored: dict[str, Any], schema: Any) -> tuple[int, int]:
        if stored is state._print:  # a walk starts at the root
            calls.append(1)
        return usage(stored, schema)

    monkeypatch.setattr(merge, "_unknown_usage", counted)
    state.apply(delta(later="m" * 20_000))
    assert "later" not in state.snapshot()  # within the minute: no walk, still refused
    assert calls == []
    clock[0] += 61
    state.apply(delta(later="m" * 20_000))
    assert "later" in state.snapshot()  # recounted: the pruned unit's keys no longer count
    assert calls == [1]
    for i in range(merge.MAX_UNKNOWN_SIZE // 20_000 + 5):
        state.apply(delta(**{f"again{i}": "a" * 20_000}))
    assert calls == [1]  # exhausted again, but not a minute later: no second walk


def test_state_is_isolated_from_messages_and_snapshots() -> None:
    """Neither mutating an applied message nor a snapshot changes the state."""
    message = r.x1c_full_report()
    state = state_with(message)
    message["print"]["ams"]["ams"][0]["tray"][0]["tray_type"] = "CHANGED"
    message["print"]["hms"].clear()
    message["print"]["job"]["cur_stage"]["idx"] = 99  # an unknown field's nested object
    snap = state.snapshot()
    snap["device"]["extruder"]["info"].clear()
    snap["mc_percent"] = 1
    assert state.ams_units[0].trays[0].tray_type == "PLA"
    assert state.hms_codes == ["HMS_0300_0200_0001_0001"]
    assert state.nozzles[0].temp == 219.0
    assert state.progress == 42
    assert state.snapshot()["job"]["cur_stage"]["idx"] == 0


# --- accessors ----------------------------------------------------------------------------------


def test_x1c_accessors() -> None:
    """Every accessor on a realistic X1C full report."""
    state = state_with(r.x1c_full_report(), r.x1c_version())
    assert state.model is PrinterModel.X1C
    assert state.gcode_state == "RUNNING"
    assert (state.stage, state.stage_name) == (0, "printing")
    assert (state.progress, state.remaining_minutes) == (42, 73)
    assert (state.layer, state.total_layers) == (120, 240)
    # `device` is present on current X1 firmware, so its packed temperatures win
    assert (state.nozzle_temp, state.nozzle_target) == (219.0, 220.0)
    assert (state.bed_temp, state.bed_target) == (55.0, 55.0)
    assert state.chamber_temp == 31.0
    assert (state.part_fan_percent, state.aux_fan_percent) == (100, 67)
    assert (state.chamber_fan_percent, state.heatbreak_fan_percent) == (0, 100)
    assert (state.speed_level, state.speed_percent) == (2, 100)
    assert state.wifi_dbm == -53
    assert (state.job_name, state.file_name) == ("Benchy", "/data/Metadata/plate_1.gcode")
    assert (state.print_error, state.print_error_code) == (0, None)
    assert state.hms == [HmsEntry(code="HMS_0300_0200_0001_0001", severity=1, module=0x03)]
    assert state.lights == {"chamber_light": "on", "work_light": "flashing"}
    assert state.chamber_light_on is True
    assert state.door_open is False
    assert state.sdcard is True
    # the top-level word names the material; the flow type comes from device.nozzle.info
    assert state.nozzle_diameter == 0.4
    assert state.nozzle_type == NozzleKind("hardened_steel", "high_flow", "hardened_steel")
    assert state.update_available is False
    assert state.signed_commands_required is True
    assert state.nozzles == [
        Nozzle(
            id=0,
            temp=219.0,
            target=220.0,
            diameter=0.4,
            kind=NozzleKind("hardened_steel", "high_flow", "hh01"),
        )
    ]
    assert (state.is_dual_nozzle, state.active_nozzle) == (False, 0)
    assert state.active_tray == 1
    assert state.ip_address == "192.168.1.50"
    assert state.rtsp_url == "rtsps://192.168.1.50/streaming/live/1"
    unit = state.ams_units[0]
    assert (unit.id, unit.humidity_index, unit.humidity_percent, unit.temp) == (0, 4, 27, 24.8)
    assert unit.trays[1] == AmsTray(
        slot=1,
        empty=False,
        tray_type="PETG",
        sub_brand="PETG HF",
        color="ADB1B2FF",
        remain=51,
        preset="GFG02",
        k=0.02,
        temp_min=230,
        temp_max=260,
        rfid=True,
    )
    assert (unit.trays[1].name, unit.trays[1].rgb) == ("PETG HF", "#ADB1B2")
    assert unit.trays[2].remain is None  # -1: unknown
    assert [tray.slot for tray in state.external_spools] == [255]
    assert state.external_spools[0].empty is True


def test_legacy_fields_without_device() -> None:
    """Without `device`, temperatures come from the top-level float fields."""
    state = state_with(r.p1s_full_report())
    assert (state.nozzle_temp, state.nozzle_target) == (25.0, 0.0)
    assert (state.bed_temp, state.chamber_temp, state.chamber_target) == (24.0, 5.0, None)
    assert state.nozzles == []
    assert (state.is_dual_nozzle, state.active_nozzle) == (False, None)


def test_numbers_as_strings() -> None:
    """The firmware sends many numbers as strings; accessors parse them."""
    state = state_with(
        delta(
            mc_percent="42",
            mc_remaining_time="15",
            layer_num="7",
            total_layer_num=" 300 ",
            nozzle_temper="215.5",
            nozzle_target_temper="220",
            bed_temper="60.25",
            chamber_temper="31",
            spd_lvl="3",
            spd_mag="124",
            stg_cur="4",
            print_error="50348044",
            nozzle_diameter="0.6",
            home_flag="256",
        )
    )
    assert (state.progress, state.remaining_minutes) == (42, 15)
    assert (state.layer, state.total_layers) == (7, 300)
    assert (state.nozzle_temp, state.nozzle_target) == (216.0, 220.0)
    assert (state.bed_temp, state.chamber_temp) == (60.0, 31.0)
    assert (state.speed_level, state.speed_percent) == (3, 124)
    assert state.stage_name == "changing_filament"
    assert state.print_error_code == "0300_400C"
    assert state.nozzle_diameter == 0.6
    assert state.sdcard is True  # from home_flag 0x100 when `sdcard` is absent


def test_packed_temperatures() -> None:
    """Low 16 bits are the current temperature, high 16 bits the target."""
    packed = 0x00DC00D7
    state = state_with(
        delta(
            device={
                "extruder": {"state": 0x01, "info": [{"id": 0, "temp": packed}]},
                "bed": {"info": {"temp": str(r.packed(90, 100))}},
                "ctc": {"info": {"temp": r.packed(40, 0)}},
            },
            nozzle_temper=1.0,
            bed_temper=1.0,
            chamber_temper=1.0,
        )
    )
    assert (state.nozzle_temp, state.nozzle_target) == (215.0, 220.0)
    assert (state.bed_temp, state.bed_target) == (90.0, 100.0)
    assert (state.chamber_temp, state.chamber_target) == (40.0, 0.0)


@pytest.mark.parametrize(
    ("extruder_state", "dual", "active"),
    [(0x01, False, 0), (0x02, True, 0), (0x12, True, 1), (274, True, 1), (0x11, False, 1)],
)
def test_extruder_state_bits(extruder_state: int, dual: bool, active: int) -> None:
    """device.extruder.state: low 4 bits = nozzle count, bits 4-7 = active nozzle."""
    state = state_with(delta(device={"extruder": {"state": extruder_state}}))
    assert (state.is_dual_nozzle, state.active_nozzle) == (dual, active)


def test_dual_nozzle_from_extruder_list_without_state() -> None:
    """Without `extruder.state`, two entries in the list still mean two nozzles."""
    infos = [{"id": 1, "temp": r.packed(30, 0)}, {"id": 0, "temp": r.packed(200, 210)}]
    state = state_with(delta(device={"extruder": {"info": infos}}))
    assert state.is_dual_nozzle is True
    assert state.active_nozzle is None
    assert [nozzle.id for nozzle in state.nozzles] == [0, 1]  # ordered by id
    assert state.nozzle_temp == 200.0  # nozzle 0 when the active one is unknown


@pytest.mark.parametrize(
    ("attr", "code", "expected", "severity", "module"),
    [
        (0x03000200, 0x00010001, "HMS_0300_0200_0001_0001", 1, 0x03),
        (0x0C004000, 0x00020004, "HMS_0C00_4000_0002_0004", 2, 0x0C),
        (0x07012300, 0x0004ABCD, "HMS_0701_2300_0004_ABCD", 4, 0x07),
        ("50331648", "65537", "HMS_0300_0000_0001_0001", 1, 0x03),  # numbers as strings
        (-1, 0x00030001, "HMS_FFFF_FFFF_0003_0001", 3, 0xFF),  # a signed attr
    ],
)
def test_hms_formatting(attr: Any, code: Any, expected: str, severity: int, module: int) -> None:
    """HMS codes use Bambu's HMS_AAAA_AAAA_CCCC_CCCC form."""
    state = state_with(delta(hms=[{"attr": attr, "code": code}]))
    assert state.hms == [HmsEntry(code=expected, severity=severity, module=module)]
    assert state.hms_codes == [expected]


def test_hms_skips_malformed_entries() -> None:
    """Entries that are not {attr, code} numbers are skipped, the rest still read."""
    good = {"attr": 0x05000100, "code": 0x00030002}
    bad: list[Any] = [None, 5, "HMS", [], {"attr": 1}, {"code": 1}, {"attr": {}, "code": 1}]
    state = state_with(delta(hms=[*bad, good]))
    assert state.hms_codes == ["HMS_0500_0100_0003_0002"]


@pytest.mark.parametrize(
    ("value", "expected"),
    [(50348044, "0300_400C"), ("50348044", "0300_400C"), (0x0700_8001, "0700_8001"), (0, None)],
)
def test_print_error_code(value: Any, expected: str | None) -> None:
    """print_error renders as AAAA_BBBB; 0 means no error."""
    assert state_with(delta(print_error=value)).print_error_code == expected


@pytest.mark.parametrize(
    ("steps", "percent"),
    [("0", 0), ("1", 7), ("7", 47), ("8", 53), ("10", 67), ("15", 100), (15, 100), ("16", None)],
)
def test_fan_steps_to_percent(steps: Any, percent: int | None) -> None:
    """0-15 steps map to rounded percent; out-of-range steps are unknown."""
    state = state_with(
        delta(
            cooling_fan_speed=steps,
            big_fan1_speed=steps,
            big_fan2_speed=steps,
            heatbreak_fan_speed=steps,
        )
    )
    assert state.part_fan_percent == percent
    assert state.aux_fan_percent == percent
    assert state.chamber_fan_percent == percent
    assert state.heatbreak_fan_percent == percent


def test_fan_gear_fallback() -> None:
    """Without the step fields, fan_gear's bytes (part, aux, chamber; 0-255) are used."""
    state = state_with(delta(fan_gear=0x00FF80))
    assert (state.part_fan_percent, state.aux_fan_percent, state.chamber_fan_percent) == (
        50,
        100,
        0,
    )
    state.apply(delta(cooling_fan_speed="3"))
    assert state.part_fan_percent == 20  # the step field wins when present


@pytest.mark.parametrize(
    ("stage", "name"),
    [
        (-1, "idle"),
        (255, "idle"),
        (0, "printing"),
        (1, "auto_bed_leveling"),
        (2, "heatbed_preheating"),
        (4, "changing_filament"),
        (16, "paused_user"),
        (35, "paused_nozzle_clog"),
        ("14", "cleaning_nozzle_tip"),
        (999, None),
    ],
)
def test_stage_names(stage: Any, name: str | None) -> None:
    """stg_cur maps to snake_case names; unknown ids are None."""
    state = state_with(delta(stg_cur=stage))
    assert state.stage_name == name
    assert state.stage == int(stage)


@pytest.mark.parametrize(
    ("value", "expected"),
    [("RUNNING", "RUNNING"), ("pause", "PAUSE"), (" FINISH ", "FINISH"), ("SOMETHING", None)],
)
def test_gcode_state(value: str, expected: str | None) -> None:
    """gcode_state is upper-cased; a state this code does not know reads as None."""
    assert state_with(delta(gcode_state=value)).gcode_state == expected


@pytest.mark.parametrize(
    ("signal", "dbm"), [("-53dBm", -53), ("-90dbm", -90), ("-40", -40), (-70, -70), ("x", None)]
)
def test_wifi_dbm(signal: Any, dbm: int | None) -> None:
    """wifi_signal strings like "-53dBm" parse to an int; the field is a string on the wire."""
    state = state_with(delta(wifi_signal=signal))
    assert state.wifi_dbm == (dbm if isinstance(signal, str) else None)


@pytest.mark.parametrize(
    ("fun", "required"),
    [("20000000", True), ("1AFFF9CFF", True), ("0", False), ("1FFFFFFF", False), (0, False)],
)
def test_signed_commands_bit(fun: Any, required: bool) -> None:
    """Bit 0x20000000 of the hex string `fun` means signed commands are required."""
    assert state_with(delta(fun=fun)).signed_commands_required is required


def test_signed_commands_unknown() -> None:
    """No `fun`, or one that is not hex: unknown."""
    assert PrinterState().signed_commands_required is None
    assert state_with(delta(fun="not hex")).signed_commands_required is None


@pytest.mark.parametrize(("value", "expected"), [(1, True), (2, False), (0, False), ("1", True)])
def test_update_available(value: Any, expected: bool) -> None:
    """upgrade_state.new_version_state 1 means an update is offered."""
    state = state_with(delta(upgrade_state={"new_version_state": value}))
    assert state.update_available is expected


@pytest.mark.parametrize(
    ("version", "fields", "door"),
    [
        (r.x1c_version(), {"home_flag": 0x00800100}, True),
        (r.x1c_version(), {"home_flag": -1067070064}, False),
        (r.x1c_version(), {"stat": "00800000"}, None),  # X1 reads home_flag, not stat
        (r.h2d_version(), {"stat": "46A58008"}, True),
        (r.h2d_version(), {"stat": "16382181F0"}, False),
        (r.h2d_version(), {"home_flag": 0x00800000}, None),
        (r.p1s_version(), {"home_flag": 0x00800000, "stat": "800000"}, None),  # no sensor
        (None, {"home_flag": 0x00800000, "stat": "800000"}, None),  # model unknown
    ],
)
def test_door_open(
    version: dict[str, Any] | None, fields: dict[str, Any], door: bool | None
) -> None:
    """The door comes from the field the model reports it in, else None."""
    messages = [delta(**fields)] + ([version] if version else [])
    assert state_with(*messages).door_open is door


def test_sdcard_and_lights() -> None:
    """sdcard is a bool; light modes map to on/off."""
    state = state_with(delta(sdcard=False, home_flag=0x100))
    assert state.sdcard is False
    assert PrinterState().sdcard is None
    state.apply(delta(lights_report=[{"node": "chamber_light", "mode": "flashing"}, {"x": 1}]))
    assert state.chamber_light_on is True
    assert state.lights == {"chamber_light": "flashing"}
    assert PrinterState().chamber_light_on is None


def test_network_and_camera() -> None:
    """net.info[0].ip is a little-endian uint32; rtsp_url "disable" means off."""
    state = state_with(delta(net={"info": [{"ip": 0x0A01A8C0}]}, ipcam={"rtsp_url": "disable"}))
    assert state.ip_address == "192.168.1.10"
    assert state.rtsp_url is None
    state.apply(delta(net={"info": [{"ip": 0}]}))
    assert state.ip_address is None


@pytest.mark.parametrize(("tray_now", "active"), [("255", None), ("254", 254), ("5", 5), (1, 1)])
def test_active_tray(tray_now: Any, active: int | None) -> None:
    """tray_now 255 means nothing loaded, 254 the external spool."""
    assert state_with(delta(ams={"tray_now": tray_now})).active_tray == active


def test_empty_state_reads_none() -> None:
    """Before any report, every accessor answers None or empty, never raises."""
    state = PrinterState()
    for name in PROPERTIES:
        assert getattr(state, name) in (None, [], {}, (), False), name
    assert state.snapshot() == {}


# --- version info and models --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("Bambu Lab X1 Carbon", PrinterModel.X1C),
        ("Bambu Lab X1-Carbon", PrinterModel.X1C),
        ("Bambu Lab X1", PrinterModel.X1),
        ("Bambu Lab X1E", PrinterModel.X1E),
        ("Bambu Lab P1P", PrinterModel.P1P),
        ("Bambu Lab P1S", PrinterModel.P1S),
        ("Bambu Lab P2S", PrinterModel.P2S),
        ("Bambu Lab A1", PrinterModel.A1),
        ("Bambu Lab A1 mini", PrinterModel.A1MINI),
        ("Bambu Lab A2L", PrinterModel.A2L),
        ("Bambu Lab H2D", PrinterModel.H2D),
        ("Bambu Lab H2D Pro", PrinterModel.H2DPRO),
        ("Bambu Lab H2S", PrinterModel.H2S),
        ("Bambu Lab H2C", PrinterModel.H2C),
        ("Bambu Lab X2D", PrinterModel.X2D),
        ("Bambu Lab N8", None),
        ("AMS (1)", None),
        ("", None),
    ],
)
def test_model_from_product_name(name: str, expected: PrinterModel | None) -> None:
    """The ota module's product_name names the model."""
    assert model_from_product_name(name) is expected
    version = r.version([{"name": "ota", "sw_ver": "01.00.00.00", "product_name": name}])
    assert state_with(version).model is expected


@pytest.mark.parametrize(
    ("board", "hw_ver", "project", "expected"),
    [
        ("esp32", "AP04", "C11", PrinterModel.P1P),
        ("esp32", "AP04", "C12", PrinterModel.P1S),
        ("esp32", "AP05", "N1", PrinterModel.A1MINI),
        ("esp32", "AP04", "N1", PrinterModel.A1MINI),
        ("esp32", "AP05", "N2S", PrinterModel.A1),
        ("ap", "AP02", None, PrinterModel.X1E),
        ("rv1126", "AP05", None, PrinterModel.X1C),
        ("rv1126", "AP05", "", PrinterModel.X1C),
    ],
)
def test_model_from_legacy_version(
    board: str, hw_ver: str, project: str | None, expected: PrinterModel
) -> None:
    """Without product_name, project_name and the AP board's hw_ver decide."""
    version = r.legacy_version(board, hw_ver, "XXXNOTASERIAL00", project)
    state = state_with(version)
    assert state.model is expected
    assert state.hardware == hw_ver
    assert state.product_name is None


def test_model_falls_back_to_serials() -> None:
    """Last resorts: the reported serial's prefix, then the configured serial's."""
    unknown_board = r.legacy_version("esp32", "AP09", r.A1MINI_SERIAL, "ZZ9")
    assert state_with(unknown_board).model is PrinterModel.A1MINI
    no_serial = r.legacy_version("esp32", "AP09", "", "ZZ9")
    assert state_with(no_serial, serial=" 01p09c470101234").model is PrinterModel.P1S
    assert PrinterState("094XXXXXXXXXXXX").model is PrinterModel.H2D  # before get_version
    assert PrinterState().model is None
    assert state_with(no_serial).model is None


@pytest.mark.parametrize(
    ("serial", "expected"),
    [
        ("00M09C452703629", PrinterModel.X1C),
        ("00W00A000000000", PrinterModel.X1),
        ("03W00A000000000", PrinterModel.X1E),
        ("01S00A000000000", PrinterModel.P1P),
        ("01P00A000000000", PrinterModel.P1S),
        ("22E8BJ5B1001755", PrinterModel.P2S),
        ("0309DA3B2100171", PrinterModel.A1MINI),
        ("039000000000000", PrinterModel.A1),
        ("093000000000000", PrinterModel.H2S),
        ("094000000000000", PrinterModel.H2D),
        ("239000000000000", PrinterModel.H2DPRO),
        ("31B8BP5A1001227", PrinterModel.H2C),
        ("20P000000000000", PrinterModel.X2D),
        ("26A000000000000", PrinterModel.A2L),
        (" 00m09c452703629 ", PrinterModel.X1C),
        ("35F000000000000", None),  # N8: no model of ours
        ("006000000000000", None),  # an AMS serial
        ("", None),
        (None, None),
    ],
)
def test_model_from_serial(serial: str | None, expected: PrinterModel | None) -> None:
    """The serial prefix table (a hint only)."""
    assert model_from_serial(serial) is expected


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("BL-P001", PrinterModel.X1C),
        ("3DPrinter-X1-Carbon", PrinterModel.X1C),
        ("BL-P002", PrinterModel.X1),
        ("C13", PrinterModel.X1E),
        ("N7", PrinterModel.P2S),
        ("n2s", PrinterModel.A1),
        ("O1D", PrinterModel.H2D),
        ("O1E", PrinterModel.H2DPRO),
        ("O1S", PrinterModel.H2S),
        ("O1C2", PrinterModel.H2C),
        ("N6", PrinterModel.X2D),
        ("N9", PrinterModel.A2L),
        ("N8", None),
        (None, None),
    ],
)
def test_model_from_code(code: str | None, expected: PrinterModel | None) -> None:
    """SSDP DevModel / project_name codes."""
    assert model_from_code(code) is expected


def test_version_info() -> None:
    """firmware, hardware, serial and product name come from get_version."""
    state = PrinterState()
    assert state.apply(r.h2d_version()) is True
    assert state.apply(r.h2d_version()) is False
    assert state.firmware == "01.01.01.00"
    assert state.hardware == "AP05"
    assert state.reported_serial == r.H2D_SERIAL
    assert state.product_name == "Bambu Lab H2D"
    assert state.model is PrinterModel.H2D
    assert (
        ModuleInfo(
            name="mc",
            sw_ver="02.02.56.50",
            hw_ver="MC09",
            sn="00C09A123456789",
            product_name=None,
            project_name=None,
        )
        in state.modules
    )
    # a reply without usable modules keeps what we know
    for modules in ([], [None, 5, {"sw_ver": "1"}, {"name": ""}], "ota", {"name": "ota"}):
        assert state.apply({"info": {"command": "get_version", "module": modules}}) is False
    assert state.firmware == "01.01.01.00"
    assert state.apply(r.x1c_version()) is True
    assert state.reported_serial == r.X1C_SERIAL


def test_status_and_version_in_one_message() -> None:
    """A message carrying both keys applies both."""
    message = {**r.p1s_full_report(), **r.p1s_version()}
    state = state_with(message)
    assert (state.model, state.gcode_state) == (PrinterModel.P1S, "IDLE")


def test_capabilities() -> None:
    """Capability helpers gate entities per model."""
    assert has_chamber_sensor(PrinterModel.X1C)
    assert has_chamber_sensor(PrinterModel.H2D)
    assert not has_chamber_sensor(PrinterModel.P1S)
    assert not has_chamber_sensor(PrinterModel.A1)
    assert has_door_sensor(PrinterModel.X1E)
    assert has_door_sensor(PrinterModel.P2S)
    for model_without_door in (PrinterModel.P1P, PrinterModel.A1, PrinterModel.A1MINI):
        assert not has_door_sensor(model_without_door)
    assert is_dual_nozzle_model(PrinterModel.H2D)
    assert not is_dual_nozzle_model(PrinterModel.H2S)
    assert reports_full(PrinterModel.X1)
    assert not reports_full(PrinterModel.P1S)
    assert not reports_full(PrinterModel.H2D)
    for check in (has_chamber_sensor, has_door_sensor, is_dual_nozzle_model, reports_full):
        assert check(None) is False


# --- bad input ----------------------------------------------------------------------------------

BAD_VALUES: list[Any] = [{"x": 1}, [1, 2], None, True, "abc", "nan", "inf", ""]

NUMERIC_FIELDS = {
    "mc_percent": "progress",
    "mc_remaining_time": "remaining_minutes",
    "layer_num": "layer",
    "total_layer_num": "total_layers",
    "nozzle_temper": "nozzle_temp",
    "bed_temper": "bed_temp",
    "bed_target_temper": "bed_target",
    "chamber_temper": "chamber_temp",
    "spd_lvl": "speed_level",
    "spd_mag": "speed_percent",
    "stg_cur": "stage",
    "print_error": "print_error",
    "cooling_fan_speed": "part_fan_percent",
    "big_fan1_speed": "aux_fan_percent",
    "heatbreak_fan_speed": "heatbreak_fan_percent",
    "nozzle_diameter": "nozzle_diameter",
}


@pytest.mark.parametrize("field", sorted(NUMERIC_FIELDS))
def test_wrong_types_keep_last_good_numbers(field: str) -> None:
    """A numeric field set to a non-number is ignored; the last good value stays."""
    state = state_with(r.p1s_full_report(), r.p1s_deltas()[3])
    accessor = NUMERIC_FIELDS[field]
    good = getattr(state, accessor)
    assert good is not None
    for bad in BAD_VALUES:
        assert state.apply(delta(**{field: bad})) is False, bad
        assert getattr(state, accessor) == good, bad


@pytest.mark.parametrize(
    ("fields", "check"),
    [
        ({"ams": "string"}, lambda s: len(s.ams_units[0].trays) == 4),
        ({"ams": {"ams": {"id": "0"}}}, lambda s: len(s.ams_units) == 1),
        ({"ams": {"ams": [{"id": "0", "tray": "x"}]}}, lambda s: len(s.ams_units[0].trays) == 4),
        (
            {"ams": {"ams": [{"id": "0", "humidity": []}]}},
            lambda s: s.ams_units[0].humidity_index == 4,
        ),
        ({"ams": {"ams": [5, None, {"no": "id"}, {"id": None}]}}, lambda s: len(s.ams_units) == 1),
        ({"hms": {"attr": 1, "code": 1}}, lambda s: s.hms_codes == ["HMS_0300_0200_0001_0001"]),
        ({"lights_report": "on"}, lambda s: s.chamber_light_on is True),
        ({"device": 5}, lambda s: s.nozzles[0].temp == 219.0),
        ({"device": {"extruder": {"info": "x"}}}, lambda s: len(s.nozzles) == 1),
        ({"device": {"extruder": {"state": "two"}}}, lambda s: s.active_nozzle == 0),
        ({"device": {"bed": {"info": {"temp": [1]}}}}, lambda s: s.bed_temp == 55.0),
        ({"gcode_state": 5}, lambda s: s.gcode_state == "RUNNING"),
        ({"subtask_name": {"a": 1}}, lambda s: s.job_name == "Benchy"),
        ({"fun": "zz"}, lambda s: s.signed_commands_required is True),
        ({"sdcard": "yes"}, lambda s: s.sdcard is True),
        ({"upgrade_state": []}, lambda s: s.update_available is False),
        ({"vt_tray": "none"}, lambda s: s.external_spools[0].slot == 255),
        ({"wifi_signal": -3}, lambda s: s.wifi_dbm == -53),
    ],
)
def test_wrong_types_keep_last_good_values(fields: dict[str, Any], check: Any) -> None:
    """Type-changing values for known fields are dropped at merge time."""
    state = state_with(r.x1c_full_report(), r.x1c_version())
    before = content(state)
    assert state.apply(delta(**fields)) is False
    assert check(state)
    assert content(state) == before


def test_unreadable_entries_are_skipped() -> None:
    """Entries whose id is not a number read as absent; a bad colour reads as None."""
    state = state_with(
        delta(
            ams={
                "ams": [
                    {"id": "left", "tray": []},
                    {"id": "0", "tray": [{"id": "A", "tray_type": "PLA"}, r.tray(1, color="red")]},
                ]
            },
            device={"extruder": {"info": [{"id": "x", "temp": 1}, {"id": 0, "temp": 2}]}},
        )
    )
    assert [unit.id for unit in state.ams_units] == [0]
    assert [(tray.slot, tray.color) for tray in state.ams_units[0].trays] == [(1, None)]
    assert [nozzle.id for nozzle in state.nozzles] == [0]
    # a new object whose every field is invalid is not stored at all
    assert state.apply(delta(upgrade_state={"new_version_state": "soon"})) is False
    assert "upgrade_state" not in state.snapshot()


@pytest.mark.parametrize("bad", [None, [], "print", 5, {"print": None}, {"print": []}])
def test_apply_ignores_non_objects(bad: Any) -> None:
    """Anything but an object message is ignored."""
    state = state_with(r.x1c_full_report())
    assert state.apply(bad) is False
    assert state.progress == 42


def test_deep_nesting_is_dropped() -> None:
    """Values nested deeper than any real report are dropped, without recursion errors."""
    deep: Any = 1
    for _ in range(5000):
        deep = {"a": deep}
    state = state_with(r.p1s_full_report())
    assert state.apply(delta(unknown=deep, xcam={"deep": [deep]}, mc_percent=3)) is True
    snap = state.snapshot()
    assert "unknown" not in snap
    assert "deep" not in snap["xcam"]
    assert state.progress == 3
    shallow = json.loads('{"a":' * 5 + "1" + "}" * 5)
    state.apply(delta(unknown=shallow))
    assert state.snapshot()["unknown"] == shallow


def test_decoded_bad_payloads_end_to_end() -> None:
    """decode_payload + apply on a stream with garbage between good reports."""
    state = PrinterState()
    stream = [
        r.payload(r.p1s_full_report()),
        b"\x00\x01garbage",
        b"[1,2,3]",
        json.dumps({"print": {"command": "push_status", "mc_percent": {"x": 1}}}).encode(),
        r.payload(r.p1s_delta(mc_percent=9)),
        b"{" * 10,
    ]
    for data in stream:
        message = decode_payload(data)
        if message is not None:
            state.apply(message)
    assert state.progress == 9
    assert state.gcode_state == "IDLE"


# --- fuzz ---------------------------------------------------------------------------------------

_KEYS = [
    *NUMERIC_FIELDS,
    "ams",
    "tray",
    "id",
    "state",
    "tray_type",
    "tray_color",
    "remain",
    "humidity",
    "humidity_raw",
    "temp",
    "tray_now",
    "hms",
    "attr",
    "code",
    "lights_report",
    "node",
    "mode",
    "device",
    "extruder",
    "info",
    "bed",
    "ctc",
    "nozzle",
    "diameter",
    "type",
    "vt_tray",
    "vir_slot",
    "upgrade_state",
    "new_version_state",
    "net",
    "ip",
    "ipcam",
    "rtsp_url",
    "gcode_state",
    "fun",
    "stat",
    "home_flag",
    "sdcard",
    "wifi_signal",
    "fan_gear",
    "subtask_name",
    "gcode_file",
    "nozzle_type",
    "msg",
    "other",
]
_STRINGS = ["", "0", "15", "-1", "255", "1e400", "nan", "-53dBm", "ff", "RUNNING", "on", "x" * 50]


def _random_value(rng: random.Random, depth: int) -> Any:
    roll = rng.random()
    if depth > 4 or roll < 0.45:
        return rng.choice(
            [
                None,
                True,
                False,
                rng.randint(-(2**40), 2**40),
                rng.randint(-2, 300),
                2**70,
                rng.uniform(-1e6, 1e6),
                float("nan"),
                float("inf"),
                rng.choice(_STRINGS),
            ]
        )
    if roll < 0.7:
        return [_random_value(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    return {rng.choice(_KEYS): _random_value(rng, depth + 1) for _ in range(rng.randint(0, 5))}


def _random_message(rng: random.Random) -> Any:
    roll = rng.random()
    if roll < 0.05:
        return _random_value(rng, 0)
    if roll < 0.15:
        modules = [
            {
                "name": rng.choice(["ota", "esp32", "ap", "rv1126", 5]),
                "hw_ver": rng.choice(["AP02", "AP05", None, 3]),
                "project_name": rng.choice(["C11", "N2S", "", None]),
                "product_name": rng.choice(["Bambu Lab H2D", "x", None, []]),
                "sn": rng.choice([r.X1C_SERIAL, "", None]),
                "sw_ver": _random_value(rng, 3),
            }
            for _ in range(rng.randint(0, 3))
        ]
        return {"info": {"command": "get_version", "module": rng.choice([modules, "x", None])}}
    fields = {rng.choice(_KEYS): _random_value(rng, 1) for _ in range(rng.randint(1, 8))}
    return {"print": {**fields, "command": "push_status", "msg": rng.choice([0, 1, "0", None])}}


def _conforms(value: Any, hint: Any) -> bool:
    """Whether `value` has the type an accessor's annotation promises."""
    if isinstance(hint, types.UnionType):
        return any(_conforms(value, arg) for arg in get_args(hint))
    if hint is type(None):
        return value is None
    if hint is int:
        return type(value) is int
    if hint is float:
        return type(value) is float
    origin, args = get_origin(hint), get_args(hint)
    if origin is list:
        return type(value) is list and all(_conforms(item, args[0]) for item in value)
    if origin is tuple:
        return type(value) is tuple and all(_conforms(item, args[0]) for item in value)
    if origin is frozenset:
        return type(value) is frozenset and all(_conforms(item, args[0]) for item in value)
    if origin is dict:
        return type(value) is dict and all(
            _conforms(k, args[0]) and _conforms(v, args[1]) for k, v in value.items()
        )
    return isinstance(value, hint)


ACCESSOR_TYPES = {
    name: get_type_hints(getattr(PrinterState, name).fget)["return"] for name in PROPERTIES
}


def _check_invariants(state: PrinterState) -> None:
    for name, hint in ACCESSOR_TYPES.items():
        value = getattr(state, name)
        assert _conforms(value, hint), (name, value)
    for percent in (
        state.progress,
        state.part_fan_percent,
        state.aux_fan_percent,
        state.chamber_fan_percent,
        state.heatbreak_fan_percent,
    ):
        assert percent is None or 0 <= percent <= 100
    assert state.speed_level in (None, 1, 2, 3, 4)
    assert all(re.fullmatch(r"HMS(_[0-9A-F]{4}){4}", code) for code in state.hms_codes)
    code = state.print_error_code
    assert code is None or re.fullmatch(r"[0-9A-F]{4}_[0-9A-F]{4}", code)
    for unit in state.ams_units:
        assert isinstance(unit, AmsUnit)
        assert all(tray.remain is None or 0 <= tray.remain <= 100 for tray in unit.trays)
    # The units re-parsed incrementally are those a parse from scratch finds.
    fresh = PrinterState()
    fresh.apply({"print": {**state.snapshot(), "command": "push_status", "msg": 1}})
    assert state.ams_units == fresh.ams_units


@pytest.mark.parametrize("seed", range(4))
def test_fuzz_apply_never_raises(seed: int) -> None:
    """Random JSON-ish messages never raise and accessors keep their promised types."""
    rng = random.Random(seed)
    starts = [r.x1c_full_report, r.p1s_full_report, r.h2d_full_report]
    state = state_with(starts[seed % 3](), r.x1c_version())
    for case in range(500):
        message = _random_message(rng)
        pristine = copy.deepcopy(message)
        changed = state.apply(message)
        assert isinstance(changed, bool)
        assert repr(message) == repr(pristine)  # apply never mutates its input
        _check_invariants(state)
        if case % 50 == 0:
            snap = state.snapshot()
            assert state.apply({"print": {**snap, "msg": 1}}) is False  # itself: no change
    # a good full report still applies cleanly after all that
    state.apply(r.x1c_full_report())
    assert state.progress == 42
    assert state.gcode_state == "RUNNING"


# --- read recording (entities skip refreshes for reports that changed nothing they read) --------


def _accessors() -> list[str]:
    return [
        name
        for name, member in vars(PrinterState).items()
        if isinstance(member, property) and not name.startswith("_")
    ]


_DERIVED_FROM: Final = {ROUTE_KEY: "device.extruder", NOZZLE_TARGET_KEY: "device.extruder"}


@pytest.mark.parametrize("full_report", [r.x1c_full_report, r.p1s_full_report, r.h2d_full_report])
def test_recorded_reads_cover_every_dependency(full_report: Any) -> None:
    """An accessor's value never depends on a top-level key it did not report reading."""
    message = full_report()
    for name in _accessors():
        state = PrinterState()
        state.apply(message)
        state.record_reads()
        value = getattr(state, name)
        # A key no report carries stands for the part it is derived from.
        reads = {_DERIVED_FROM.get(key, key) for key in state.recorded_reads()}
        for key in set(message["print"]) - reads - {"command", "msg", "sequence_id"}:
            parts = {read.partition(".")[2] for read in reads if read.startswith(f"{key}.")}
            if not parts:
                without = copy.deepcopy(message)
                del without["print"][key]
                _assert_same(name, value, without, key)
                continue
            # A shared block read in parts: the parts not reported read are not depended on.
            for part in set(message["print"][key]) - parts:
                without = copy.deepcopy(message)
                del without["print"][key][part]
                _assert_same(name, value, without, f"{key}.{part}")


def _assert_same(name: str, value: Any, message: dict[str, Any], removed: str) -> None:
    other = PrinterState()
    other.apply(message)
    assert getattr(other, name) == value, (name, removed)


def test_changed_keys() -> None:
    """apply() names the top-level keys that changed; None when anything may have."""
    state = PrinterState()
    state.apply(r.p1s_full_report())
    assert state.changed_keys is None  # the first full report
    state.apply(r.p1s_delta(mc_percent=77, nozzle_temper=200.5))
    assert state.changed_keys == {"mc_percent", "nozzle_temper"}
    state.apply(r.p1s_delta(mc_percent=77))
    assert state.changed_keys == frozenset()
    state.apply(r.p1s_version())
    assert state.changed_keys is None
    state.record_reads()
    assert state.progress == 77
    assert state.recorded_reads() == {"mc_percent"}
    assert state.recorded_reads() == frozenset()  # not recording any more


# --- shapes recorded from real printers (issue 13) ------------------------------------------------


@pytest.mark.parametrize(
    "full_report", [r.x1c_full_report, r.h2d_full_report], ids=["x1_style", "h2d_style"]
)
def test_full_report_without_msg(full_report: Any) -> None:
    """A pushall answer without `msg` counts as full when it carries the core fields."""
    state = PrinterState()
    # before it, a delta without msg and without the core fields stays a delta
    assert state.apply({"print": {"command": "push_status", "wifi_signal": "-50dBm"}})
    assert state.full_state_received is False
    assert state.apply(r.without_msg(full_report())) is True
    assert state.full_state_received is True
    assert state.gcode_state == "RUNNING"
    assert state.changed_keys is None  # the first full report refreshes every entity


def test_reports_without_msg_after_the_full_one_are_deltas() -> None:
    """Only the first report after (re)connecting may be full without saying so."""
    state = state_with(r.without_msg(r.x1c_full_report()))
    two_units = r.ams([r.ams_unit(0, r.four_trays()), r.ams_unit(1, r.four_trays())])
    state.apply(r.status(1, 1, ams=two_units))
    assert [unit.id for unit in state.ams_units] == [0, 1]
    # a msg-less report listing one unit: merged as a delta (unit 1 stays) ...
    one_unit = r.without_msg(r.x1c_full_report(5))
    state.apply(one_unit)
    assert [unit.id for unit in state.ams_units] == [0, 1]
    # ... until we reconnect and ask for pushall again: its answer is the whole state
    state.expect_full_report()
    state.apply(one_unit)
    assert [unit.id for unit in state.ams_units] == [0]


@pytest.mark.parametrize(
    ("msg", "full"), [(0, True), (1, False), (2, False), ("0", False), (None, False)]
)
def test_msg_present_decides(msg: Any, full: bool) -> None:
    """A `msg` that is present decides alone; only 0 (an int) is full."""
    state = PrinterState()
    message = r.x1c_full_report()
    message["print"]["msg"] = msg
    state.apply(message)
    assert state.full_state_received is full


@pytest.mark.parametrize(
    ("gcode_state", "stage", "name"),
    [
        ("IDLE", 0, "idle"),  # the idle A1 mini
        ("FINISH", 0, "idle"),
        ("FAILED", 0, "idle"),
        ("RUNNING", 0, "printing"),
        ("PAUSE", 16, "paused_user"),
        ("IDLE", 24, "filament_loading"),  # loading filament between jobs is real
        ("RUNNING", 39, None),  # beyond the table (H2D stg lists carry 39)
    ],
)
def test_stage_agrees_with_the_job(gcode_state: str, stage: int, name: str | None) -> None:
    """An idle, finished or failed printer never shows the stage "printing"."""
    state = state_with(delta(gcode_state=gcode_state, stg_cur=stage))
    assert state.stage_name == name


def test_idle_a1_mini_shows_idle() -> None:
    state = state_with(r.a1mini_idle_report())
    assert (state.gcode_state, state.stage, state.stage_name) == ("IDLE", 0, "idle")
    assert (state.nozzle_temp, state.bed_temp) == (25.0, 25.0)


@pytest.mark.parametrize(
    ("value", "material", "flow"),
    [
        ("stainless_steel", "stainless_steel", None),
        ("hardened_steel", "hardened_steel", None),
        ("Hardened_Steel", "hardened_steel", None),
        ("tungsten_carbide", "tungsten_carbide", None),
        ("HS00", "stainless_steel", "standard"),
        ("HS01", "hardened_steel", "standard"),
        ("HH01", "hardened_steel", "high_flow"),
        ("HH05", "tungsten_carbide", "high_flow"),
        ("HE01", "hardened_steel", "high_flow"),
        ("HU00", "stainless_steel", "tpu_high_flow"),
        ("HA01", "hardened_steel", "standard"),
        ("hh01-0.6", "hardened_steel", "high_flow"),
        ("HS09", None, "standard"),
        ("HQ01", "hardened_steel", None),
        ("brass_gold", None, None),
    ],
)
def test_nozzle_type_codes(value: str, material: str | None, flow: str | None) -> None:
    kind = parse_nozzle_type(value)
    assert kind is not None
    assert (kind.material, kind.flow) == (material, flow)
    assert kind.raw == value.strip().lower()


@pytest.mark.parametrize("value", [None, "", "  ", 1, ["HH01"]])
def test_nozzle_type_unreadable(value: Any) -> None:
    assert parse_nozzle_type(value) is None
    assert state_with(delta(nozzle_type=value)).nozzle_type is None


def test_p2s_nozzle_code_and_raw_temperatures() -> None:
    """The P2S reports "HH01" and temperatures in 1/32 °C steps."""
    state = state_with(r.p2s_full_report())
    assert state.nozzle_type == NozzleKind("hardened_steel", "high_flow", "hh01")
    assert (state.nozzle_temp, state.nozzle_target) == (220.0, 220.0)
    assert (state.bed_temp, state.chamber_temp) == (65.0, 34.0)
    # jitter of a steady heater around its setpoint reads the same
    for raw in (219.53125, 220.0, 220.46875, 219.96875):
        state.apply(delta(nozzle_temper=raw))
        assert state.nozzle_temp == 220.0
    state.apply(delta(nozzle_temper=220.5))
    assert state.nozzle_temp == 221.0  # half up


def test_h2d_per_nozzle_type_and_diameter() -> None:
    """H2D: each nozzle's type and diameter from device.nozzle.info; top level is stale."""
    state = state_with(r.h2d_full_report())
    right, left = state.nozzles
    assert (right.id, right.diameter, right.kind) == (
        0,
        0.4,
        NozzleKind("hardened_steel", "standard", "hs01"),
    )
    assert (left.id, left.diameter, left.kind) == (
        1,
        0.6,
        NozzleKind("stainless_steel", "high_flow", "hh00"),
    )


HUGE_VALUES: list[Any] = [1e12, -1000, -1e12, "nan", float("nan"), "inf", 10**400, "9" * 5000]


@pytest.mark.parametrize(
    "huge",
    HUGE_VALUES,
    ids=["1e12", "-1000", "-1e12", "nan-str", "nan", "inf-str", "10**400", "9x5000"],
)
def test_numeric_accessors_clamp_what_cannot_be_meant(huge: Any) -> None:
    """Huge, negative, NaN and infinite values read as unknown, never as a number that breaks
    whoever uses it (an end time 1e12 minutes away overflows datetime)."""
    packed = huge if type(huge) is not float else 0xFFFFFFFF
    state = PrinterState()  # nothing earlier to fall back on
    state.apply(
        delta(
            mc_remaining_time=huge,
            mc_percent=huge,
            layer_num=huge,
            total_layer_num=huge,
            spd_mag=huge,
            stg_cur=huge,
            nozzle_temper=huge,
            bed_temper=huge,
            bed_target_temper=huge,
            chamber_temper=huge,
            nozzle_target_temper=huge,
            nozzle_diameter=huge,
            wifi_signal=f"{huge}dBm",
            device={
                "bed": {"info": {"temp": packed}},
                "ctc": {"info": {"temp": packed}},
                "extruder": {"info": [{"id": 0, "temp": packed}, {"id": huge, "temp": 1}]},
                "nozzle": {"info": [{"id": 0, "diameter": huge}]},
            },
            ams={
                "ams": [
                    {"id": huge, "tray": []},
                    {"id": "0", "humidity_raw": huge, "temp": huge, "tray": [{"id": huge}]},
                ],
                "tray_now": huge,
            },
        )
    )
    for name in (
        "remaining_minutes",
        "progress",
        "layer",
        "total_layers",
        "speed_percent",
        "stage",
        "nozzle_temp",
        "nozzle_target",
        "bed_temp",
        "bed_target",
        "chamber_temp",
        "chamber_target",
        "nozzle_diameter",
        "wifi_dbm",
        "active_tray",
    ):
        assert getattr(state, name) is None, name
    assert [nozzle.id for nozzle in state.nozzles] == [0]
    assert state.nozzles[0].temp is None
    assert state.nozzles[0].diameter is None
    (unit,) = state.ams_units
    assert unit.id == 0
    assert unit.humidity_percent is None
    assert unit.temp is None
    assert unit.trays == ()


def test_clamps_keep_real_values() -> None:
    """The bounds sit well outside anything a printer reports."""
    state = state_with(
        delta(
            mc_remaining_time=60 * 24 * 14,
            layer_num=0,
            total_layer_num=4000,
            spd_mag=166,
            nozzle_temper=300.5,
            bed_temper=-5,
            nozzle_diameter="0.4",
            wifi_signal="-90dBm",
        )
    )
    assert state.remaining_minutes == 20160
    assert (state.layer, state.total_layers, state.speed_percent) == (0, 4000, 166)
    assert (state.nozzle_temp, state.bed_temp) == (301.0, -5.0)  # whole degrees, half up
    assert state.nozzle_diameter == 0.4
    assert state.wifi_dbm == -90


def test_derived_values_once_per_report_with_their_reads() -> None:
    """The nozzle list (read by a dozen H2D entities after a report) is computed once per report;
    a recorder served from the memo records what computing it read, and a report recomputes it."""
    state = PrinterState()
    state.apply(r.h2d_full_report())
    first = state.nozzles
    first.clear()  # callers get a copy: they cannot spoil the memo
    state.record_reads()
    nozzles = state.nozzles
    reads = state.recorded_reads()
    assert len(nozzles) == 2
    assert {"device.extruder", "device.nozzle"} <= reads
    state.record_reads()
    temp = state.nozzle_temp
    assert "device.extruder" in state.recorded_reads()
    state.apply(
        r.status(2100, 1, device={"extruder": {"info": [{"id": 1, "temp": r.packed(150, 200)}]}})
    )
    left = next(nozzle for nozzle in state.nozzles if nozzle.id == 1)
    assert (left.temp, left.target) == (150.0, 200.0)
    assert temp is not None
    state.record_reads()
    assert state.nozzles == state.nozzles
    assert {"device.extruder", "device.nozzle"} <= state.recorded_reads()
