"""AMS units, trays and external spools in the state model, and the AMS command payloads."""

from __future__ import annotations

from typing import Any

import pytest

from custom_components.bambu_lan.printer import ams
from custom_components.bambu_lan.printer.ams import AmsKind, parse_ams_unit, parse_tray
from custom_components.bambu_lan.printer.ams_fields import (
    AMS_IDS_KEY,
    ROUTE_KEY,
    ams_tray_key,
    ams_unit_key,
)
from custom_components.bambu_lan.printer.fields import NOZZLE_TARGET_KEY
from custom_components.bambu_lan.printer.state import PrinterState
from tests.fixtures import reports as r


def state_with(*messages: dict[str, Any], serial: str | None = None) -> PrinterState:
    """A state that has applied `messages` in order."""
    state = PrinterState(serial)
    for message in messages:
        state.apply(message)
    return state


def delta(**fields: Any) -> dict[str, Any]:
    """A delta push."""
    return r.status(999, 1, **fields)


def unit(unit_id: str, **fields: Any) -> dict[str, Any]:
    """A unit entry with four PLA trays."""
    trays = [{"id": str(slot), "tray_type": "PLA", "remain": 50} for slot in range(4)]
    return {"id": unit_id, "humidity": "4", "tray": trays, **fields}


def full(*units: dict[str, Any], **fields: Any) -> dict[str, Any]:
    """A full report with these units."""
    return r.status(1, 0, ams={"ams": list(units), "tray_now": "255", **fields})


@pytest.mark.parametrize(
    ("info", "kind", "dry_state", "extruder"),
    [
        ("1", AmsKind.AMS, None, 0),
        ("2", AmsKind.AMS_LITE, None, 0),
        ("103", AmsKind.AMS_2_PRO, "off", 1),
        ("23", AmsKind.AMS_2_PRO, "drying", 0),
        ("E33", AmsKind.AMS_2_PRO, "cooling", None),  # extruder 0xE: not initialised
        ("64", AmsKind.AMS_HT, "heater_fault", 0),
        ("9", None, None, 0),
    ],
)
def test_info_bits(info: str, kind: AmsKind | None, dry_state: str | None, extruder: int) -> None:
    """`info`: type in bits 0-3, drying state 4-7 (dryers only), extruder 8-11."""
    parsed = parse_ams_unit({"id": "0", "info": info})
    assert parsed is not None
    assert (parsed.kind, parsed.dry_state, parsed.extruder) == (kind, dry_state, extruder)


def test_unit_fields() -> None:
    """Humidity (inverted level), drying time and settings; bad values are unknown."""
    parsed = parse_ams_unit(
        {
            "id": "128",
            "humidity": "1",
            "humidity_raw": "63",
            "temp": "41.5",
            "dry_time": 95,
            "dry_setting": {"dry_filament": "PA", "dry_temperature": 80, "dry_duration": 6},
            "tray": [{"id": "0", "tray_type": "PA-CF"}, "x"],
        }
    )
    assert parsed is not None
    assert (parsed.humidity_index, parsed.humidity_level, parsed.humidity_percent) == (1, 5, 63)
    assert (parsed.dry_minutes_left, parsed.dry_target, parsed.dry_filament) == (95, 80.0, "PA")
    assert parsed.tray(0) is not None
    assert parsed.tray(1) is None
    odd = parse_ams_unit(
        {"id": "1", "humidity": "9", "humidity_raw": "140", "dry_time": -3, "dry_setting": 5}
    )
    assert odd is not None
    assert (odd.humidity_level, odd.humidity_percent, odd.dry_minutes_left) == (None, None, None)
    assert odd.dry_target is None
    assert parse_ams_unit({"id": "-1"}) is None
    assert parse_ams_unit("x") is None


def test_tray_fields() -> None:
    """Name, colour, preset, k, temperatures and the RFID tag."""
    tray = parse_tray(
        {
            "id": "2",
            "tray_type": "PETG",
            "tray_sub_brands": "",
            "tray_color": "ff6a13ff",
            "tray_info_idx": "GFG00",
            "k": "0.025",
            "nozzle_temp_min": "0",
            "nozzle_temp_max": "260",
            "tag_uid": "0000000000000000",
        }
    )
    assert tray is not None
    assert (tray.name, tray.rgb, tray.preset, tray.k) == ("PETG", "#FF6A13", "GFG00", 0.025)
    assert (tray.temp_min, tray.temp_max, tray.rfid) == (None, 260, False)
    tagged = parse_tray({"id": "0", "tag_uid": "5D8F2A3B00000100", "tray_color": "bad"})
    assert tagged is not None
    assert (tagged.rfid, tagged.rgb, tagged.name, tagged.empty) == (True, None, None, True)


def test_numbering_and_indices() -> None:
    """Apps number AMS from 1 and AMS HT from 1; trays below 16 units are unit * 4 + slot."""
    assert [ams.unit_number(unit_id) for unit_id in (0, 3, 128, 129)] == [1, 4, 1, 2]
    assert [ams.tray_index(*where) for where in ((0, 0), (1, 2), (128, 0), (254, 0))] == [
        0,
        6,
        128,
        254,
    ]
    assert (ams.slot_count(AmsKind.AMS_HT), ams.slot_count(AmsKind.AMS_LITE)) == (1, 4)


def test_kind_fallbacks() -> None:
    """Without `info`: the get_version module, then the unit id (HT), then the printer."""
    state = state_with(full(unit("0"), unit("1"), unit("128")), r.x1c_version())
    kinds = [state.ams_kind(u) for u in state.ams_units]
    assert kinds == [AmsKind.AMS, AmsKind.AMS, AmsKind.AMS_HT]  # ams/0 listed; 1 by model
    module = state.ams_module(0)
    assert module is not None
    assert module.name == "ams/0"
    assert state.ams_module(1) is None
    a1 = state_with(full(unit("0")), serial="03900A000000001")
    assert a1.ams_kind(a1.ams_units[0]) is AmsKind.AMS_LITE
    with_info = state_with(full(unit("0", info="3")), r.x1c_version())
    assert with_info.ams_kind(with_info.ams_units[0]) is AmsKind.AMS_2_PRO


def test_active_location_single_nozzle() -> None:
    """`tray_now`: unit * 4 + slot, an AMS HT id, 254 external, 255 nothing."""
    state = state_with(full(unit("0"), unit("1"), unit("128")))
    for tray_now, where in (("6", (1, 2)), ("128", (128, 0)), ("254", (254, 0)), ("255", None)):
        state.apply(delta(ams={"tray_now": tray_now}))
        assert state.active_location == where
    state.apply(delta(ams={"tray_now": "5"}))
    tray = state.tray_at(1, 1)
    assert tray is not None
    assert tray.tray_type == "PLA"
    assert state.tray_at(7, 0) is None


def test_dual_nozzle_route() -> None:
    """`snow` per nozzle: which tray each holds; the active nozzle's is the active one."""
    state = state_with(r.h2d_full_report())
    assert state.nozzle_location(0) == (1, 3)  # snow 259 = (1 << 8) | 3
    assert state.nozzle_location(1) is None  # 0xFEFF: slot 255, nothing
    assert state.active_location == (1, 3)  # state 0x02: nozzle 0 active
    state.apply(delta(device={"extruder": {"state": 0x12, "info": [{"id": 1, "snow": 254 << 8}]}}))
    assert state.changed_keys is not None
    assert ROUTE_KEY in state.changed_keys
    assert state.active_location == (254, 0)
    state.apply(delta(device={"extruder": {"info": [{"id": 1, "temp": r.packed(200, 220)}]}}))
    assert state.changed_keys is not None
    assert ROUTE_KEY not in state.changed_keys  # temperatures only: route unchanged
    single = state_with(r.p1s_full_report())
    assert single.nozzle_location(0) is None


def test_external_spools() -> None:
    """`vt_tray` is one spool (254); `vir_slot` one per nozzle."""
    p1s = state_with(r.p1s_full_report())
    assert not p1s.has_external_spool_list
    h2d = state_with(r.h2d_full_report())
    assert h2d.has_external_spool_list
    spool = h2d.tray_at(255, 0)
    assert spool is not None
    assert spool.slot == 255
    assert state_with(delta(vt_tray="x")).external_spools == []


def ams_keys(state: PrinterState) -> set[str]:
    """The AMS fan-out keys among the last report's changed keys."""
    assert state.changed_keys is not None
    return {key for key in state.changed_keys if key.startswith("ams.") and key != "ams.ams"}


def test_changes_name_unit_and_slot() -> None:
    """A report names the unit readings and the trays it changed, and nothing else."""
    state = state_with(full(unit("0"), unit("1")))
    state.apply(delta(ams={"ams": [{"id": "1", "tray": [{"id": "2", "remain": 40}]}]}))
    assert ams_keys(state) == {ams_tray_key(1, 2)}
    state.apply(delta(ams={"ams": [{"id": "0", "humidity": "2"}]}))
    assert ams_keys(state) == {ams_unit_key(0)}
    state.apply(delta(ams={"ams": [{"id": "0", "temp": "30"}], "tray_now": "1"}))
    assert ams_keys(state) == {ams_unit_key(0), "ams.tray_now"}
    state.apply(delta(ams={"ams": [unit("2")]}))
    assert ams_keys(state) == {
        AMS_IDS_KEY,
        ams_unit_key(2),
        *(ams_tray_key(2, s) for s in range(4)),
    }
    state.apply(delta(mc_percent=3))
    assert ams_keys(state) == set()
    state.apply(delta(ams={"ams": [{"id": "x"}, {"id": "1", "humidity": "3"}]}))
    assert ams_keys(state) == {ams_unit_key(1)}
    state.apply(delta(ams={"ams": [{"id": "1", "tray": [{"id": "2", "remain": 40}]}]}))
    assert ams_keys(state) == set()  # the same value again: nothing changed
    state.apply(full(unit("0"), unit("1")))  # unit 2 is gone
    assert AMS_IDS_KEY in ams_keys(state)
    assert {ams_unit_key(2), ams_tray_key(2, 0)} <= ams_keys(state)


def test_first_parse_names_every_unit() -> None:
    """Before anything read the units there is nothing to compare: every unit is named."""
    state = state_with(r.status(1, 1, ams={"ams": [unit("0")]}))
    assert {AMS_IDS_KEY, ams_unit_key(0), ams_tray_key(0, 3)} <= ams_keys(state)


def test_accessors_record_their_unit_and_tray() -> None:
    """What an entity reads is recorded at the unit's or the tray's grain."""
    state = state_with(full(unit("0"), unit("1")))
    state.record_reads()
    assert state.ams_tray(1, 2) is not None
    assert state.recorded_reads() == {ams_tray_key(1, 2)}
    state.record_reads()
    assert state.ams_unit(0) is not None
    assert state.has_ams_unit(5) is False
    assert state.recorded_reads() == {ams_unit_key(0), AMS_IDS_KEY}
    assert state.ams_tray(7, 0) is None


def test_full_report_drops_a_unit_from_the_cache() -> None:
    """A unit a full report no longer lists is gone from the parsed units too."""
    state = state_with(full(unit("0"), unit("1")))
    assert [u.id for u in state.ams_units] == [0, 1]
    state.apply(full(unit("0")))
    assert [u.id for u in state.ams_units] == [0]
    assert state.ams_unit(1) is None


def test_command_payloads() -> None:
    """The parameters Bambu Studio sends for each AMS command."""
    assert ams.drying_start(1, temperature=55, hours=8, filament="PETG", rotate_tray=True) == {
        "ams_id": 1,
        "mode": 1,
        "filament": "PETG",
        "temp": 55,
        "duration": 8,
        "humidity": 0,
        "rotate_tray": True,
        "cooling_temp": 45,
        "close_power_conflict": False,
    }
    stop = ams.drying_stop(128)
    assert (stop["ams_id"], stop["mode"], stop["temp"], stop["duration"]) == (128, 0, 0, 0)
    setting = ams.filament_setting(
        0, 2, tray_type="PLA", color="FF0000FF", temp_min=190, temp_max=230, preset="GFL99"
    )
    assert (setting["ams_id"], setting["slot_id"], setting["tray_id"]) == (0, 2, 2)
    assert (setting["tray_info_idx"], setting["tray_color"], setting["tray_type"]) == (
        "GFL99",
        "FF0000FF",
        "PLA",
    )
    external = ams.filament_setting(
        255, 0, tray_type="PLA", color="FF0000FF", temp_min=190, temp_max=230, preset=""
    )
    assert external["tray_id"] == 254
    assert ams.k_setting(1, 2, 0.03) == {"tray_id": 6, "k_value": 0.03, "n_coef": 1.4}
    assert ams.change_filament(1, 2, temperature=220) == {
        "ams_id": 1,
        "slot_id": 2,
        "target": 6,
        "curr_temp": 220,
        "tar_temp": 220,
    }
    assert ams.unload_filament(0, temperature=220)["target"] == 255


def test_nozzle_target_wakes_only_on_a_target_change() -> None:
    """A packed nozzle reading that moves only the temperature leaves the target's key alone;
    the target, a switch of the active nozzle, or a target that stops being packed name it."""
    state = state_with(r.h2d_full_report())
    state.record_reads()
    target = state.nozzle_target
    assert state.recorded_reads() == {NOZZLE_TARGET_KEY}
    temp = state.nozzle_temp
    assert temp is not None
    assert target is not None
    state.apply(
        delta(
            device={"extruder": {"info": [{"id": 0, "temp": r.packed(int(temp) + 3, int(target))}]}}
        )
    )
    assert state.changed_keys is not None
    assert "device.extruder" in state.changed_keys
    assert NOZZLE_TARGET_KEY not in state.changed_keys
    assert state.nozzle_temp == temp + 3
    state.apply(delta(device={"extruder": {"info": [{"id": 0, "temp": r.packed(int(temp), 250)}]}}))
    assert state.changed_keys is not None
    assert NOZZLE_TARGET_KEY in state.changed_keys
    assert state.nozzle_target == 250
    state.apply(delta(device={"extruder": {"state": 0x12}}))  # the other nozzle is active
    assert state.changed_keys is not None
    assert NOZZLE_TARGET_KEY in state.changed_keys
    assert state.nozzle_target == state.nozzles[1].target
    state.apply(delta(nozzle_target_temper=215, device={"extruder": {"state": 0x52}}))
    assert state.changed_keys is not None
    assert NOZZLE_TARGET_KEY in state.changed_keys  # no nozzle 5: the legacy field counts
    assert state.nozzle_target == 215
