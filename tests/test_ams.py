"""AMS and filament entities against the virtual printer: devices per unit, trays, external
spools, the active tray; units appearing after setup and stale devices; malformed blocks.
"""

from __future__ import annotations

import json
from typing import Any

from homeassistant.const import EVENT_STATE_CHANGED
from homeassistant.core import Event, EventStateChangedData, HomeAssistant, callback
from homeassistant.helpers import device_registry as dr, entity_registry as er
from homeassistant.setup import async_setup_component
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry
from syrupy.assertion import SnapshotAssertion

from custom_components.bambu_lan.const import DOMAIN
from tests.test_entities import (
    FILAMENT_KEYS,
    SnapshotExtension,
    setup_printer,
    state_of,
    wait_for_state,
    wait_until,
)
from tests.test_fanout import spy_evaluations
from tests.virtual_printer.ams import HUMIDITY_PERIOD
from tests.virtual_printer.models import initial_state, spec_for, version_modules
from tests.virtual_printer.printer import PrinterFactory
from tests.virtual_printer.sim import PrinterSim

pytestmark = pytest.mark.usefixtures("trust_test_cas")


@pytest.fixture
def snapshot(snapshot: SnapshotAssertion) -> SnapshotAssertion:
    """Home Assistant's snapshot serializer, stored in tests/snapshots/."""
    return snapshot.use_extension(SnapshotExtension)


PROFILES = {
    "P1S": ("P1S", {}),
    "H2D": ("H2D", {}),
    "A1": ("A1", {}),
    "X1C_NO_AMS": ("X1C", {"ams": False}),
}


def ams_snapshot(
    hass: HomeAssistant,
    entity_registry: er.EntityRegistry,
    device_registry: dr.DeviceRegistry,
    entry: MockConfigEntry,
) -> dict[str, Any]:
    """Devices and AMS/filament entities of the entry: registry settings, state, attributes."""
    devices = {}
    for device in dr.async_entries_for_config_entry(device_registry, entry.entry_id):
        via = device_registry.async_get(device.via_device_id) if device.via_device_id else None
        devices[device.name] = {
            "model": device.model,
            "serial_number": device.serial_number,
            "sw_version": device.sw_version,
            "via_device": via.name if via else None,
        }
    entities = {}
    entries = er.async_entries_for_config_entry(entity_registry, entry.entry_id)
    for reg in sorted(entries, key=lambda reg: reg.entity_id):
        key = reg.translation_key or ""
        if not (key.startswith("ams_") or key in FILAMENT_KEYS):
            continue
        state = hass.states.get(reg.entity_id)
        device = device_registry.async_get(reg.device_id) if reg.device_id else None
        entities[reg.entity_id] = {
            "unique_id": reg.unique_id,
            "device": device.name if device else None,
            "translation_key": key,
            "device_class": reg.original_device_class,
            "state": state.state if state else None,
            "attributes": dict(state.attributes) if state else None,
        }
    return {"devices": devices, "entities": entities}


@pytest.mark.parametrize("profile", PROFILES)
async def test_ams_entities(
    hass: HomeAssistant,
    entity_registry: er.EntityRegistry,
    device_registry: dr.DeviceRegistry,
    virtual_printer: PrinterFactory,
    snapshot: SnapshotAssertion,
    profile: str,
) -> None:
    """Each profile's AMS devices and filament entities after the first full report."""
    model, options = PROFILES[profile]
    entry, _ = await setup_printer(hass, virtual_printer, model, **options)
    result = ams_snapshot(hass, entity_registry, device_registry, entry)
    assert result == snapshot


async def test_one_trays_delta_writes_that_tray_alone(
    hass: HomeAssistant, virtual_printer: PrinterFactory
) -> None:
    """On an H2D with three units, a delta that changes one tray's remaining filament is
    delivered to that tray's sensor alone (the fan-out indexes trays), and only it is written."""
    _, printer = await setup_printer(hass, virtual_printer, "H2D")
    tray = "sensor.ams_2_pro_2_tray_3"
    before = hass.states.get(tray)
    assert before is not None
    remaining = before.attributes["remaining"]
    evaluated, _ = spy_evaluations(hass)
    written: list[str] = []

    @callback
    def on_state_changed(event: Event[EventStateChangedData]) -> None:
        written.append(event.data["entity_id"])

    unsubscribe = hass.bus.async_listen(EVENT_STATE_CHANGED, on_state_changed)
    try:
        printer.set_state({"ams": {"ams": [{"id": "1", "tray": [{"id": "2", "remain": 7}]}]}})
        await wait_until(
            hass,
            lambda: (
                (state := hass.states.get(tray)) is not None and state.attributes["remaining"] == 7
            ),
            "remaining 7",
        )
        await hass.async_block_till_done()
    finally:
        unsubscribe()
    assert remaining != 7
    assert evaluated == [tray]
    assert written == [tray]
    # Humidity of the same unit reaches its humidity sensors, not its trays.
    evaluated.clear()
    printer.set_state({"ams": {"ams": [{"id": "1", "humidity_raw": "61"}]}})
    await wait_for_state(hass, "sensor.ams_2_pro_2_humidity", "61")
    await hass.async_block_till_done()
    assert not any("tray" in entity_id for entity_id in evaluated), evaluated
    assert "sensor.ams_2_pro_2_humidity" in evaluated
    assert all(entity_id.split(".")[1].startswith("ams_2_pro_2_") for entity_id in evaluated)


async def test_humidity_level_is_inverted(
    hass: HomeAssistant, virtual_printer: PrinterFactory
) -> None:
    """The wire's humidity index (1 wet ... 5 dry) shows on the apps' scale (1 dry ... 5 wet)."""
    _, printer = await setup_printer(hass, virtual_printer, "P1S")
    assert state_of(hass, "sensor.ams_1_humidity_level") == "2"  # wire "4"
    for wire, shown in (("1", "5"), ("5", "1"), ("3", "3")):
        printer.set_state({"ams": {"ams": [{"id": "0", "humidity": wire, "humidity_raw": "55"}]}})
        await wait_for_state(hass, "sensor.ams_1_humidity_level", shown)
    assert state_of(hass, "sensor.ams_1_humidity") == "55"


async def test_tray_empties_and_refills(
    hass: HomeAssistant, virtual_printer: PrinterFactory
) -> None:
    """A run-out empties the slot (a running print pauses); a new spool fills it again."""
    _, printer = await setup_printer(hass, virtual_printer, "P1S")
    tray = "sensor.ams_1_tray_2"
    assert state_of(hass, tray) == "PLA Basic"
    printer.set_state({"ams": {"tray_now": "1"}})
    await wait_until(
        hass,
        lambda: hass.states.get(tray) is not None and hass.states.get(tray).attributes["active"],
        "tray 2 active",
    )
    assert state_of(hass, "sensor.p1s_active_filament") == "PLA Basic"
    active = hass.states.get("sensor.p1s_active_filament")
    assert active is not None
    assert (active.attributes["ams"], active.attributes["tray"]) == (1, 2)

    printer.start_job("benchy")
    await wait_for_state(hass, "sensor.p1s_print_status", "prepare")
    printer.runout(0, 1)
    await wait_for_state(hass, tray, "unknown")
    attributes = hass.states.get(tray).attributes  # type: ignore[union-attr]
    assert attributes["empty"] is True
    await wait_for_state(hass, "sensor.p1s_print_status", "pause")
    assert state_of(hass, "sensor.p1s_hms_errors") == "1"

    printer.set_state(
        {
            "ams": {
                "ams": [
                    {
                        "id": "0",
                        "tray": [
                            {
                                "id": "1",
                                "tray_type": "PETG",
                                "tray_sub_brands": "PETG HF",
                                "tray_color": "112233FF",
                                "remain": 100,
                            }
                        ],
                    }
                ]
            }
        }
    )
    await wait_for_state(hass, tray, "PETG HF")
    attributes = hass.states.get(tray).attributes  # type: ignore[union-attr]
    assert (attributes["color"], attributes["remaining"], attributes["empty"]) == (
        "#112233",
        100,
        False,
    )


async def test_unit_appears_after_setup_and_stale_device_is_removable(
    hass: HomeAssistant,
    device_registry: dr.DeviceRegistry,
    virtual_printer: PrinterFactory,
    hass_ws_client: Any,
) -> None:
    """A unit plugged in later gets its device; one unplugged can then be deleted (only then)."""
    entry, printer = await setup_printer(hass, virtual_printer, "P1S")
    printer.add_ams(1, "ams")
    await wait_for_state(hass, "sensor.ams_2_tray_1", "PLA Basic")
    device = device_registry.async_get_device_by_identifier(
        (DOMAIN, f"{printer.serial}_ams_1"), entry.entry_id
    )
    assert device is not None
    assert device.name == "AMS 2"
    printer_device = device_registry.async_get_device_by_identifier(
        (DOMAIN, printer.serial), entry.entry_id
    )
    assert printer_device is not None
    assert device.via_device_id == printer_device.id

    assert await async_setup_component(hass, "config", {})
    client = await hass_ws_client(hass)

    async def remove(device_id: str) -> dict[str, Any]:
        await client.send_json_auto_id(
            {
                "type": "config/device_registry/remove",
                "device_id": device_id,
            }
        )
        response: dict[str, Any] = await client.receive_json()
        return response

    rejected = "Failed to remove device entry, rejected by integration"
    assert (await remove(device.id))["error"]["message"] == rejected  # still reporting
    assert (await remove(printer_device.id))["error"]["message"] == rejected  # the printer

    printer.remove_ams(1)
    printer.push()  # a full report drops units it no longer lists
    await wait_for_state(hass, "sensor.ams_2_tray_1", "unavailable")
    result = await remove(device.id)
    assert result["success"] is True, result
    assert device_registry.async_get(device.id) is None

    printer.add_ams(1, "ams")  # plugged in again: it comes back
    await wait_until(
        hass,
        lambda: (
            (state := hass.states.get("sensor.ams_2_tray_1")) is not None
            and state.state == "PLA Basic"
        ),
        "AMS 2 back",
    )


async def test_unit_device_follows_get_version(
    hass: HomeAssistant,
    device_registry: dr.DeviceRegistry,
    virtual_printer: PrinterFactory,
) -> None:
    """An AMS firmware update (a new get_version reply) reaches the unit's device; the name the
    user gave it stays."""
    entry, printer = await setup_printer(hass, virtual_printer, "P1S")
    identifier = (DOMAIN, f"{printer.serial}_ams_0")
    device = device_registry.async_get_device_by_identifier(identifier, entry.entry_id)
    assert device is not None
    assert device.sw_version == "00.00.06.49"
    device_registry.async_update_device(device.id, name_by_user="Shelf AMS")
    modules = version_modules(spec_for("P1S"), printer.serial)
    for module in modules:
        if module["name"] == "ams/0":
            module["sw_ver"] = "00.00.07.01"
    printer.publish_raw(
        json.dumps(
            {"info": {"command": "get_version", "sequence_id": "0", "module": modules}}
        ).encode()
    )
    await wait_until(
        hass,
        lambda: (
            (found := device_registry.async_get(device.id)) is not None
            and found.sw_version == "00.00.07.01"
        ),
        "AMS firmware updated",
    )
    updated = device_registry.async_get(device.id)
    assert updated is not None
    assert (updated.name, updated.name_by_user, updated.model) == ("AMS 1", "Shelf AMS", "AMS")


async def test_malformed_ams_keeps_last_good_state(
    hass: HomeAssistant, virtual_printer: PrinterFactory
) -> None:
    """Broken `ams` blocks are dropped; what the entities show stays."""
    _, printer = await setup_printer(hass, virtual_printer, "P1S")
    for step, broken in enumerate(
        (
            {"ams": "x"},
            {"ams": {"ams": "x"}},
            {"ams": {"ams": [{"id": "0", "tray": "x", "humidity": [], "info": "zz"}]}},
            {"ams": {"ams": [{"id": "0", "tray": [{"id": "1", "remain": "lots"}]}]}},
        )
    ):
        report = {"command": "push_status", "msg": 1, "sequence_id": "9", **broken}
        progress = 50 + step  # the same report moves progress: proof it was merged
        printer.publish_raw(json.dumps({"print": {**report, "mc_percent": progress}}).encode())
        await wait_for_state(hass, "sensor.p1s_progress", str(progress))
        assert state_of(hass, "sensor.ams_1_tray_2") == "PLA Basic"
        tray = hass.states.get("sensor.ams_1_tray_2")
        assert tray is not None
        assert tray.attributes["remaining"] == 45
        assert state_of(hass, "sensor.ams_1_humidity_level") == "2"


def test_virtual_ams_changes_over_time() -> None:
    """The simulated AMS: humidity creeps up, a print uses the loaded spool, drying counts
    down and dries the air (what scripts/develop shows without hardware)."""
    spec = spec_for("H2D")
    sim = PrinterSim(spec, "09409A000000001", initial_state(spec), time_scale=1.0)
    ams = sim.state["ams"]
    humidity = [unit["humidity_raw"] for unit in ams["ams"]]
    sim.step(HUMIDITY_PERIOD + 1)
    assert [unit["humidity_raw"] for unit in ams["ams"]] == [
        str(int(value) + 1) for value in humidity
    ]

    outcome = sim.handle_request(
        {"print": {"command": "ams_change_filament", "ams_id": 1, "slot_id": 0, "target": 4}}
    )
    assert outcome.messages[0]["print"]["result"] == "success"
    sim.start_job("benchy", minutes=600, prepare_minutes=0.01)
    sim.step(10)  # prepare
    remain = ams["ams"][1]["tray"][0]["remain"]
    sim.step(500)
    assert ams["ams"][1]["tray"][0]["remain"] == remain - 5

    started = sim.handle_request(
        {
            "print": {
                "command": "ams_filament_drying",
                "ams_id": 0,
                "mode": 1,
                "temp": 55,
                "duration": 1,
                "filament": "PLA",
            }
        }
    )
    assert started.messages[0]["print"]["result"] == "success"
    sim.step(1800)
    unit = ams["ams"][0]
    assert (int(unit["info"], 16) >> 4) & 0xF == 2
    assert unit["dry_time"] == 30
    sim.step(1900)
    assert (int(unit["info"], 16) >> 4) & 0xF == 0
    refused = sim.handle_request(
        {
            "print": {
                "command": "ams_filament_drying",
                "ams_id": 0,
                "mode": 1,
                "temp": 20,
                "duration": 1,
            }
        }
    )
    assert refused.messages[0]["print"]["result"] == "failed"
