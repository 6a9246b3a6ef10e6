"""AMS and filament actions against the virtual printer: each is acknowledged (and the state
follows), refused, or times out, with translated errors; bad input is rejected before sending.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from homeassistant.const import ATTR_DEVICE_ID, ATTR_ENTITY_ID
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError, ServiceValidationError
from homeassistant.helpers import device_registry as dr
import pytest
import yaml

import custom_components.bambu_lan
from custom_components.bambu_lan import ams_services
from custom_components.bambu_lan.const import DOMAIN
from custom_components.bambu_lan.printer import session as client
from tests.test_controls import sent
from tests.test_entities import setup_printer, state_of, wait_for_state, wait_until
from tests.virtual_printer.printer import PrinterFactory

pytestmark = pytest.mark.usefixtures("trust_test_cas")
ROOT = Path(custom_components.bambu_lan.__file__).parent


async def act(hass: HomeAssistant, service: str, **data: Any) -> None:
    """Call one of the integration's actions and wait for the printer's answer."""
    await hass.services.async_call(DOMAIN, service, data, blocking=True)


def unit_device(hass: HomeAssistant, entry_id: str, serial: str, unit_id: int) -> str:
    """The device id of an AMS unit."""
    device = dr.async_get(hass).async_get_device_by_identifier(
        (DOMAIN, f"{serial}_ams_{unit_id}"), entry_id
    )
    assert device is not None
    return device.id


def printer_device(hass: HomeAssistant, entry_id: str, serial: str) -> str:
    """The device id of the printer."""
    device = dr.async_get(hass).async_get_device_by_identifier((DOMAIN, serial), entry_id)
    assert device is not None
    return device.id


async def test_drying(hass: HomeAssistant, virtual_printer: PrinterFactory) -> None:
    """Start and stop drying an AMS 2 Pro; the drying sensors follow the printer."""
    entry, printer = await setup_printer(hass, virtual_printer, "H2D")
    device = unit_device(hass, entry.entry_id, printer.serial, 1)
    await act(hass, "start_drying", device_id=device, temperature=55, duration=8)
    assert sent(printer, "ams_filament_drying") == [
        {
            "command": "ams_filament_drying",
            "ams_id": 1,
            "mode": 1,
            "filament": "PLA",
            "temp": 55,
            "duration": 8,
            "humidity": 0,
            "rotate_tray": False,
            "cooling_temp": 45,
            "close_power_conflict": False,
        }
    ]
    await wait_for_state(hass, "sensor.ams_2_pro_2_drying", "drying")
    assert state_of(hass, "sensor.ams_2_pro_2_drying_time_left") == "480"
    assert state_of(hass, "sensor.ams_2_pro_2_drying_temperature") == "55.0"
    assert state_of(hass, "sensor.ams_2_pro_1_drying") == "off"

    # An entity of the unit works as a target too.
    await act(hass, "stop_drying", entity_id="sensor.ams_2_pro_2_humidity")
    await wait_for_state(hass, "sensor.ams_2_pro_2_drying", "off")
    assert sent(printer, "ams_filament_drying")[-1]["mode"] == 0

    # The AMS HT dries hotter; a PA spool is the default filament there.
    ht = unit_device(hass, entry.entry_id, printer.serial, 128)
    await act(hass, "start_drying", device_id=ht, temperature=80, duration=2, rotate_tray=True)
    await wait_for_state(hass, "sensor.ams_ht_1_drying", "drying")
    assert sent(printer, "ams_filament_drying")[-1]["filament"] == "PA-CF"


async def test_drying_refused_and_invalid(
    hass: HomeAssistant, virtual_printer: PrinterFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A refusal and a timeout raise translated errors; invalid input is never sent."""
    entry, printer = await setup_printer(hass, virtual_printer, "H2D")
    device = unit_device(hass, entry.entry_id, printer.serial, 0)
    printer.fault("refuse_next", reason="busy")
    with pytest.raises(HomeAssistantError) as err:
        await act(hass, "start_drying", device_id=device, temperature=50, duration=4)
    assert (err.value.translation_key, err.value.translation_placeholders) == (
        "command_failed",
        {"command": "ams_filament_drying", "reason": "busy"},
    )
    assert state_of(hass, "sensor.ams_2_pro_1_drying") == "off"

    monkeypatch.setattr(client, "COMMAND_TIMEOUT", 0.5)
    printer.fault("ignore_next")
    with pytest.raises(HomeAssistantError) as err:
        await act(hass, "stop_drying", device_id=device)
    assert err.value.translation_key == "command_timeout"

    printer.clear_commands()
    with pytest.raises(ServiceValidationError) as invalid:
        await act(hass, "start_drying", device_id=device, temperature=80, duration=4)
    assert invalid.value.translation_key == "drying_temperature_out_of_range"
    assert invalid.value.translation_placeholders == {"min": "45", "max": "65"}
    with pytest.raises(ServiceValidationError) as invalid:
        await act(
            hass,
            "start_drying",
            device_id=printer_device(hass, entry.entry_id, printer.serial),
            temperature=50,
            duration=4,
        )
    assert invalid.value.translation_key == "no_ams_target"
    assert sent(printer, "ams_filament_drying") == []


async def test_drying_needs_a_dryer(hass: HomeAssistant, virtual_printer: PrinterFactory) -> None:
    """A plain AMS cannot dry: a validation error names it, nothing is sent."""
    entry, printer = await setup_printer(hass, virtual_printer, "P1S")
    device = unit_device(hass, entry.entry_id, printer.serial, 0)
    with pytest.raises(ServiceValidationError) as invalid:
        await act(hass, "stop_drying", device_id=device)
    assert invalid.value.translation_key == "drying_not_supported"
    assert invalid.value.translation_placeholders == {"unit": "AMS 1"}
    assert sent(printer, "ams_filament_drying") == []


async def test_set_filament_and_reset(hass: HomeAssistant, virtual_printer: PrinterFactory) -> None:
    """Setting a tray's filament (and k), then resetting it; the tray sensor follows."""
    _, printer = await setup_printer(hass, virtual_printer, "P1S")
    tray = "sensor.ams_1_tray_4"
    await act(
        hass,
        "set_filament",
        entity_id=tray,
        tray_type="petg",
        color=[255, 16, 0],
        nozzle_temp_min=220,
        nozzle_temp_max=260,
        k=0.025,
    )
    assert sent(printer, "ams_filament_setting") == [
        {
            "command": "ams_filament_setting",
            "ams_id": 0,
            "slot_id": 3,
            "tray_id": 3,
            "tray_info_idx": "GFG99",
            "setting_id": "",
            "tray_color": "FF1000FF",
            "nozzle_temp_min": 220,
            "nozzle_temp_max": 260,
            "tray_type": "PETG",
        }
    ]
    assert sent(printer, "extrusion_cali_set") == [
        {"command": "extrusion_cali_set", "tray_id": 3, "k_value": 0.025, "n_coef": 1.4}
    ]
    await wait_for_state(hass, tray, "PETG")
    await wait_until(
        hass,
        lambda: (state := hass.states.get(tray)) is not None and state.attributes["k"] == 0.025,
        "k set",
    )
    attributes = hass.states.get(tray).attributes  # type: ignore[union-attr]
    assert (attributes["color"], attributes["nozzle_temp_max"], attributes["preset_id"]) == (
        "#FF1000",
        260,
        "GFG99",
    )

    await act(hass, "reset_tray", entity_id=tray)
    await wait_for_state(hass, tray, "unknown")
    assert sent(printer, "ams_filament_setting")[-1]["tray_type"] == ""

    # The external spool takes the same action.
    await act(
        hass,
        "set_filament",
        entity_id="sensor.p1s_external_spool",
        tray_type="TPU",
        color=[0, 0, 0],
        nozzle_temp_min=200,
        nozzle_temp_max=230,
        preset_id="GFU01",
    )
    await wait_for_state(hass, "sensor.p1s_external_spool", "TPU")
    last = sent(printer, "ams_filament_setting")[-1]
    assert (last["ams_id"], last["tray_id"], last["tray_info_idx"]) == (254, 254, "GFU01")


async def test_set_filament_rejects_bad_input(
    hass: HomeAssistant, virtual_printer: PrinterFactory
) -> None:
    """Reversed temperatures and non-tray targets are rejected; nothing reaches the printer."""
    _, printer = await setup_printer(hass, virtual_printer, "P1S")
    with pytest.raises(ServiceValidationError) as invalid:
        await act(
            hass,
            "set_filament",
            entity_id="sensor.ams_1_tray_1",
            tray_type="PLA",
            color=[1, 2, 3],
            nozzle_temp_min=230,
            nozzle_temp_max=190,
        )
    assert invalid.value.translation_key == "invalid_temperature_range"
    with pytest.raises(ServiceValidationError) as invalid:
        await act(hass, "reset_tray", entity_id="sensor.p1s_progress")
    assert invalid.value.translation_key == "no_tray_target"
    with pytest.raises(ServiceValidationError) as invalid:
        await act(hass, "read_rfid", entity_id="sensor.p1s_external_spool")
    assert invalid.value.translation_key == "rfid_not_supported"
    assert sent(printer, "ams_filament_setting") == sent(printer, "ams_get_rfid") == []


async def test_read_rfid(
    hass: HomeAssistant, virtual_printer: PrinterFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """RFID is read again on request; refused and unanswered requests raise."""
    _, printer = await setup_printer(hass, virtual_printer, "P1S")
    await act(hass, "read_rfid", entity_id="sensor.ams_1_tray_2")
    assert sent(printer, "ams_get_rfid") == [{"command": "ams_get_rfid", "ams_id": 0, "slot_id": 1}]
    printer.fault("refuse_next", reason="printing")
    with pytest.raises(HomeAssistantError) as err:
        await act(hass, "read_rfid", entity_id="sensor.ams_1_tray_2")
    assert err.value.translation_key == "command_failed"
    monkeypatch.setattr(client, "COMMAND_TIMEOUT", 0.5)
    printer.fault("ignore_next")
    with pytest.raises(HomeAssistantError) as err:
        await act(hass, "read_rfid", entity_id="sensor.ams_1_tray_2")
    assert err.value.translation_key == "command_timeout"


async def test_load_and_unload(hass: HomeAssistant, virtual_printer: PrinterFactory) -> None:
    """Loading a tray makes it the active filament; unloading empties the nozzle."""
    entry, printer = await setup_printer(hass, virtual_printer, "P1S")
    await act(hass, "load_filament", entity_id="sensor.ams_1_tray_3")
    assert sent(printer, "ams_change_filament") == [
        {
            "command": "ams_change_filament",
            "ams_id": 0,
            "slot_id": 2,
            "target": 2,
            "curr_temp": 230,
            "tar_temp": 230,
        }
    ]
    await wait_for_state(hass, "sensor.p1s_active_filament", "PETG Basic")
    with pytest.raises(ServiceValidationError) as invalid:
        await act(hass, "load_filament", entity_id="sensor.ams_1_tray_4")
    assert invalid.value.translation_key == "tray_empty"

    await act(
        hass,
        "unload_filament",
        device_id=printer_device(hass, entry.entry_id, printer.serial),
        temperature=240,
    )
    assert sent(printer, "ams_change_filament")[-1] == {
        "command": "ams_change_filament",
        "ams_id": 0,
        "slot_id": 255,
        "target": 255,
        "curr_temp": 240,
        "tar_temp": 240,
    }
    await wait_for_state(hass, "sensor.p1s_active_filament", "unknown")
    with pytest.raises(ServiceValidationError) as invalid:
        await act(hass, "unload_filament", entity_id="sensor.p1s_progress")
    assert invalid.value.translation_key == "nothing_loaded"


async def test_dual_nozzle_extruder(hass: HomeAssistant, virtual_printer: PrinterFactory) -> None:
    """On the H2D the user picks the extruder: a tray loads only into the nozzle it feeds."""
    entry, printer = await setup_printer(hass, virtual_printer, "H2D")
    # AMS 2 Pro 1 (id 0) feeds the left nozzle in the virtual H2D.
    with pytest.raises(ServiceValidationError) as invalid:
        await act(hass, "load_filament", entity_id="sensor.ams_2_pro_1_tray_1", extruder="right")
    assert invalid.value.translation_key == "tray_feeds_other_nozzle"
    await act(hass, "load_filament", entity_id="sensor.ams_2_pro_1_tray_1", extruder="left")
    await wait_for_state(hass, "sensor.h2d_left_nozzle_filament", "PLA Basic")
    assert state_of(hass, "sensor.h2d_right_nozzle_filament") == "unknown"

    target = printer_device(hass, entry.entry_id, printer.serial)
    with pytest.raises(ServiceValidationError) as invalid:
        await act(hass, "unload_filament", device_id=target)
    assert invalid.value.translation_key == "extruder_required"
    await act(hass, "unload_filament", device_id=target, extruder="left")
    await wait_for_state(hass, "sensor.h2d_left_nozzle_filament", "unknown")
    assert sent(printer, "ams_change_filament")[-1]["ams_id"] == 0


async def test_actions_refused_while_signed_commands_are_required(
    hass: HomeAssistant, virtual_printer: PrinterFactory
) -> None:
    """Firmware that demands signed commands gets none: a translated error says what to do."""
    _, printer = await setup_printer(hass, virtual_printer, "P1S")
    printer.fault("signed_commands", required=True)
    await wait_until(
        hass,
        lambda: (
            hass.config_entries.async_entries(DOMAIN)[0].runtime_data.state.signed_commands_required
            is True
        ),
        "signed commands required",
    )
    with pytest.raises(ServiceValidationError) as invalid:
        await act(hass, "read_rfid", entity_id="sensor.ams_1_tray_1")
    assert invalid.value.translation_key == "signed_commands_required"
    assert sent(printer, "ams_get_rfid") == []


async def test_every_action_refused_and_timed_out(
    hass: HomeAssistant, virtual_printer: PrinterFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each action reports the printer's refusal, and its silence, as translated errors (and
    the state stays as it was)."""
    entry, printer = await setup_printer(hass, virtual_printer, "H2D")
    await act(hass, "load_filament", entity_id="sensor.ams_2_pro_1_tray_1", extruder="left")
    await wait_for_state(hass, "sensor.h2d_left_nozzle_filament", "PLA Basic")
    dryer = unit_device(hass, entry.entry_id, printer.serial, 1)
    tray = "sensor.ams_2_pro_1_tray_2"
    calls: dict[str, tuple[str, dict[str, Any]]] = {
        "start_drying": (
            "ams_filament_drying",
            {"device_id": dryer, "temperature": 50, "duration": 2},
        ),
        "stop_drying": ("ams_filament_drying", {"device_id": dryer}),
        "set_filament": (
            "ams_filament_setting",
            {
                "entity_id": tray,
                "tray_type": "ABS",
                "color": [1, 2, 3],
                "nozzle_temp_min": 240,
                "nozzle_temp_max": 270,
            },
        ),
        "reset_tray": ("ams_filament_setting", {"entity_id": tray}),
        "read_rfid": ("ams_get_rfid", {"entity_id": tray}),
        "load_filament": ("ams_change_filament", {"entity_id": tray, "extruder": "left"}),
        "unload_filament": (
            "ams_change_filament",
            {"device_id": printer_device(hass, entry.entry_id, printer.serial), "extruder": "left"},
        ),
    }
    assert set(calls) == set(ams_services.SERVICES)
    monkeypatch.setattr(client, "COMMAND_TIMEOUT", 0.5)
    for service, (command, data) in calls.items():
        printer.fault("refuse_next", reason="busy")
        with pytest.raises(HomeAssistantError) as err:
            await act(hass, service, **data)
        assert (err.value.translation_key, err.value.translation_placeholders) == (
            "command_failed",
            {"command": command, "reason": "busy"},
        ), service
        printer.fault("ignore_next")
        with pytest.raises(HomeAssistantError) as err:
            await act(hass, service, **data)
        assert err.value.translation_key == "command_timeout", service
    assert state_of(hass, tray) == "PLA Basic"
    assert state_of(hass, "sensor.ams_2_pro_2_drying") == "off"
    assert state_of(hass, "sensor.h2d_left_nozzle_filament") == "PLA Basic"


def test_services_yaml_matches_translations() -> None:
    """Every action and field in services.yaml has a name and a description, and an icon."""
    services = yaml.safe_load((ROOT / "services.yaml").read_text())
    strings = json.loads((ROOT / "translations" / "en.json").read_text())
    icons = json.loads((ROOT / "icons.json").read_text())["services"]
    assert set(ams_services.SERVICES) <= set(services)
    for name, spec in services.items():
        text = strings["services"][name]
        assert text["name"], name
        assert text["description"], name
        assert name in icons
        for field in spec.get("fields", {}):
            assert text["fields"][field]["name"], (name, field)
            assert text["fields"][field]["description"], (name, field)
    for key in (
        "printer_not_loaded",
        "signed_commands_required",
        "no_ams_target",
        "no_tray_target",
        "no_printer_target",
        "ams_unavailable",
        "drying_not_supported",
        "drying_temperature_out_of_range",
        "invalid_temperature_range",
        "rfid_not_supported",
        "tray_empty",
        "tray_feeds_other_nozzle",
        "extruder_required",
        "nothing_loaded",
    ):
        assert strings["exceptions"][key]["message"], key
    assert set(strings["selector"]["extruder"]["options"]) == set(ams_services.EXTRUDERS)


async def test_unloaded_printer_is_refused(
    hass: HomeAssistant, virtual_printer: PrinterFactory
) -> None:
    """An action naming a printer that is not loaded gets a translated error."""
    entry, printer = await setup_printer(hass, virtual_printer, "P1S")
    device = unit_device(hass, entry.entry_id, printer.serial, 0)
    await hass.config_entries.async_unload(entry.entry_id)
    with pytest.raises(ServiceValidationError) as invalid:
        await act(hass, "stop_drying", **{ATTR_DEVICE_ID: device})
    assert invalid.value.translation_key == "printer_not_loaded"
    assert ATTR_ENTITY_ID  # the constants module is what the frontend uses too


async def test_targets_that_name_nothing_of_ours(
    hass: HomeAssistant, virtual_printer: PrinterFactory
) -> None:
    """Targets outside the integration, a unit that went and an external spool on the H2D."""
    _, printer = await setup_printer(hass, virtual_printer, "H2D")
    hass.states.async_set("sensor.elsewhere", "1")
    with pytest.raises(ServiceValidationError) as invalid:
        await act(hass, "unload_filament", entity_id="sensor.elsewhere", extruder="left")
    assert invalid.value.translation_key == "no_printer_target"
    with pytest.raises(ServiceValidationError) as invalid:
        await act(hass, "reset_tray", entity_id="sensor.elsewhere")
    assert invalid.value.translation_key == "no_tray_target"
    with pytest.raises(ServiceValidationError) as invalid:
        await act(hass, "stop_drying", device_id="0123456789abcdef")
    assert invalid.value.translation_key == "no_ams_target"

    # The right external spool feeds the right nozzle only.
    printer.set_state(
        {"vir_slot": [{"id": "255", "tray_type": "PLA", "tray_color": "FFFFFFFF", "remain": 80}]}
    )
    await wait_for_state(hass, "sensor.h2d_right_external_spool", "PLA")
    with pytest.raises(ServiceValidationError) as invalid:
        await act(
            hass, "load_filament", entity_id="sensor.h2d_right_external_spool", extruder="left"
        )
    assert invalid.value.translation_key == "tray_feeds_other_nozzle"

    # A unit that stopped reporting takes no commands.
    printer.remove_ams(128)
    printer.push()
    await wait_for_state(hass, "sensor.ams_ht_1_tray_1", "unavailable")
    with pytest.raises(ServiceValidationError) as invalid:
        await act(hass, "read_rfid", entity_id="sensor.ams_ht_1_tray_1")
    assert invalid.value.translation_key == "ams_unavailable"
    assert sent(printer, "ams_get_rfid") == []
