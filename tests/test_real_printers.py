"""Shapes recorded from real X1C, A1 mini, P2S and H2D printers, through the whole integration.

Each case here has a twin in the virtual printer (a model's quirk or its idle state) or in
`tests/fixtures/reports.py`, so the suite keeps covering what real printers send.
"""

from __future__ import annotations

import logging

from homeassistant.config_entries import ConfigEntryState
from homeassistant.const import EVENT_STATE_CHANGED, STATE_UNKNOWN
from homeassistant.core import Event, HomeAssistant, callback
from homeassistant.helpers import entity_registry as er
import pytest

from custom_components.bambu_lan.const import DOMAIN
from tests.fixtures import reports as r
from tests.helpers import async_setup_printer, printer_entry
from tests.test_entities import setup_printer, state_of, wait_for_state
from tests.virtual_printer.printer import PrinterFactory

pytestmark = pytest.mark.usefixtures("trust_test_cas")


@pytest.mark.parametrize("model", ["X1C", "H2D"])
async def test_full_reports_without_msg(
    hass: HomeAssistant, virtual_printer: PrinterFactory, model: str
) -> None:
    """Printers whose full reports carry no `msg` set up and show their state."""
    printer = virtual_printer(model, time_scale=0, quirks=["full_without_msg"])
    entry = await async_setup_printer(hass, printer, title=model)
    assert entry.state is ConfigEntryState.LOADED
    slug = model.lower()
    assert state_of(hass, f"sensor.{slug}_print_status") == "idle"
    assert state_of(hass, f"sensor.{slug}_bed_temperature") == "25.0"
    printer.set_state({"gcode_state": "RUNNING", "mc_percent": 12})
    await wait_for_state(hass, f"sensor.{slug}_progress", "12")

    # A reconnect asks for pushall again; its msg-less answer is taken as the whole state.
    printer.restart_broker()
    await wait_for_state(hass, f"sensor.{slug}_progress", "12")
    assert entry.state is ConfigEntryState.LOADED


async def test_idle_a1_mini_is_not_printing(
    hass: HomeAssistant, virtual_printer: PrinterFactory
) -> None:
    """An idle A1 mini reports the "printing" stage id: the stage follows the job state."""
    _, printer = await setup_printer(hass, virtual_printer, "A1MINI")
    assert printer.state()["stg_cur"] == 0
    assert state_of(hass, "sensor.a1mini_current_stage") == "idle"
    printer.set_state({"gcode_state": "RUNNING"})
    await wait_for_state(hass, "sensor.a1mini_current_stage", "printing")
    printer.set_state({"gcode_state": "FINISH"})
    await wait_for_state(hass, "sensor.a1mini_current_stage", "idle")


async def test_stage_beyond_the_table_is_unknown_and_logged_once(
    hass: HomeAssistant, virtual_printer: PrinterFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """H2D stage lists hold ids such as 39 that no table names yet."""
    _, printer = await setup_printer(hass, virtual_printer, "H2D")
    caplog.set_level(logging.INFO, logger="custom_components.bambu_lan.sensor")
    for _ in range(2):
        printer.set_state({"gcode_state": "RUNNING", "stg_cur": 39})
        await wait_for_state(hass, "sensor.h2d_current_stage", STATE_UNKNOWN)
        printer.set_state({"stg_cur": 2})
        await wait_for_state(hass, "sensor.h2d_current_stage", "heatbed_preheating")
    logged = [record for record in caplog.records if "'stage_39'" in record.getMessage()]
    assert len(logged) == 1


async def test_nozzle_codes(
    hass: HomeAssistant, virtual_printer: PrinterFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """Old words keep working; codes decode to material and flow; unknown codes log once."""
    _, printer = await setup_printer(hass, virtual_printer, "X1C")
    caplog.set_level(logging.INFO, logger="custom_components.bambu_lan.sensor")
    assert state_of(hass, "sensor.x1c_nozzle_type") == "hardened_steel"
    assert state_of(hass, "sensor.x1c_nozzle_flow_type") == STATE_UNKNOWN  # a word has no flow

    printer.set_state({"nozzle_type": "HH05"})  # as a P2S sends it
    await wait_for_state(hass, "sensor.x1c_nozzle_type", "tungsten_carbide")
    assert state_of(hass, "sensor.x1c_nozzle_flow_type") == "high_flow"

    for _ in range(2):
        printer.set_state({"nozzle_type": "HS42"})
        await wait_for_state(hass, "sensor.x1c_nozzle_type", STATE_UNKNOWN)
        assert state_of(hass, "sensor.x1c_nozzle_flow_type") == "standard"
        printer.set_state({"nozzle_type": "stainless_steel"})
        await wait_for_state(hass, "sensor.x1c_nozzle_type", "stainless_steel")
    logged = [record for record in caplog.records if "'hs42'" in record.getMessage()]
    assert len(logged) == 1


async def test_h2d_nozzles_each_their_own(
    hass: HomeAssistant, virtual_printer: PrinterFactory
) -> None:
    """H2D: type, flow and diameter per nozzle; the stale top-level ones are not shown."""
    await setup_printer(hass, virtual_printer, "H2D")
    assert {
        entity_id: state_of(hass, entity_id)
        for entity_id in (
            "sensor.h2d_left_nozzle_type",
            "sensor.h2d_left_nozzle_flow_type",
            "sensor.h2d_left_nozzle_diameter",
            "sensor.h2d_right_nozzle_type",
            "sensor.h2d_right_nozzle_flow_type",
            "sensor.h2d_right_nozzle_diameter",
        )
    } == {
        "sensor.h2d_left_nozzle_type": "hardened_steel",
        "sensor.h2d_left_nozzle_flow_type": "high_flow",
        "sensor.h2d_left_nozzle_diameter": "0.6",
        "sensor.h2d_right_nozzle_type": "hardened_steel",
        "sensor.h2d_right_nozzle_flow_type": "standard",
        "sensor.h2d_right_nozzle_diameter": "0.4",
    }
    for gone in ("nozzle_type", "nozzle_flow_type", "nozzle_diameter"):
        assert hass.states.get(f"sensor.h2d_{gone}") is None


async def test_entities_that_do_not_fit_leave_no_orphans(
    hass: HomeAssistant, entity_registry: er.EntityRegistry, virtual_printer: PrinterFactory
) -> None:
    """Single-nozzle entities an older version created for an H2D are removed at setup."""
    printer = virtual_printer("H2D", time_scale=0)
    entry = printer_entry(hass, printer, title="H2D")
    for key in ("nozzle_type", "nozzle_diameter"):
        entity_registry.async_get_or_create(
            "sensor", DOMAIN, f"{printer.serial}_{key}", config_entry=entry
        )
    await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.LOADED
    unique_ids = {
        reg.unique_id for reg in er.async_entries_for_config_entry(entity_registry, entry.entry_id)
    }
    assert f"{printer.serial}_right_nozzle_type" in unique_ids
    assert f"{printer.serial}_nozzle_type" not in unique_ids
    assert f"{printer.serial}_nozzle_diameter" not in unique_ids


async def test_raw_temperature_jitter_writes_nothing(
    hass: HomeAssistant, virtual_printer: PrinterFactory
) -> None:
    """Readings at the sensor's raw resolution (1/32 °C) show whole degrees; jitter around a
    steady setpoint changes no state."""
    _, printer = await setup_printer(hass, virtual_printer, "P1S")
    changed: list[str] = []

    @callback
    def record(event: Event) -> None:
        changed.append(event.data["entity_id"])

    printer.set_state({"nozzle_temper": 219.96875, "bed_temper": 64.96875})
    await wait_for_state(hass, "sensor.p1s_nozzle_temperature", "220.0")
    await wait_for_state(hass, "sensor.p1s_bed_temperature", "65.0")
    hass.bus.async_listen(EVENT_STATE_CHANGED, record)
    for nozzle, bed in ((220.21875, 65.125), (219.6875, 64.875), (220.40625, 65.03125)):
        printer.set_state({"nozzle_temper": nozzle, "bed_temper": bed})
    printer.set_state({"layer_num": 7})
    await wait_for_state(hass, "sensor.p1s_current_layer", "7")
    assert changed == ["sensor.p1s_current_layer"]


def test_fixture_shapes_match_the_recordings() -> None:
    """The fixtures keep the shapes this file is about (guards against tidying them away)."""
    assert "msg" not in r.without_msg(r.h2d_full_report())["print"]
    assert r.a1mini_idle_report()["print"]["stg_cur"] == 0
    assert r.p2s_full_report()["print"]["nozzle_type"] == "HH01"
    assert 39 in r.h2d_full_report()["print"]["stg"]
