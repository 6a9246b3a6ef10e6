"""Actions against the virtual printer: each targets a device, waits for the acknowledgement,
and refuses (sending nothing) what would be unsafe."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError, ServiceValidationError
from homeassistant.helpers import device_registry as dr
import probatio
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry
import yaml

import custom_components.bambu_lan
from custom_components.bambu_lan.const import DOMAIN
from custom_components.bambu_lan.printer import session as client
from tests.test_controls import sent
from tests.test_entities import setup_printer, wait_for_state
from tests.virtual_printer.printer import PrinterFactory, VirtualPrinter

pytestmark = pytest.mark.usefixtures("trust_test_cas")


def device_id(hass: HomeAssistant, entry: MockConfigEntry, printer: VirtualPrinter) -> str:
    device = dr.async_get(hass).async_get_device_by_identifier(
        (DOMAIN, printer.serial), entry.entry_id
    )
    assert device is not None
    return device.id


async def act(hass: HomeAssistant, service: str, **data: Any) -> None:
    await hass.services.async_call(DOMAIN, service, data, blocking=True)


async def test_actions_send_gcode(hass: HomeAssistant, virtual_printer: PrinterFactory) -> None:
    """Each action's G-code, acknowledged by the printer."""
    entry, printer = await setup_printer(hass, virtual_printer, "P1S")
    device = device_id(hass, entry, printer)
    await act(hass, "send_gcode", device_id=device, gcode="M104 S200\n\n  M140 S60  ")
    await act(hass, "move_axis", device_id=device, axis="z", distance=-2.5)
    await act(hass, "home", device_id=device)
    assert [body["param"] for body in sent(printer, "gcode_line")] == [
        "M104 S200\nM140 S60\n",
        "G91\nG1 Z-2.5 F3000\nG90\n",
        "G28\n",
    ]
    await wait_for_state(hass, "number.p1s_nozzle_target_temperature", "200.0")

    printer.set_state({"nozzle_temper": 215.0})
    await wait_for_state(hass, "sensor.p1s_nozzle_temperature", "215.0")
    await act(hass, "extrude", device_id=device, length=10, speed=200)
    assert sent(printer, "gcode_line")[-1]["param"] == "M83\nG1 E10 F200\n"


async def test_refusals_send_nothing(hass: HomeAssistant, virtual_printer: PrinterFactory) -> None:
    """Cold nozzle, a running job, unsigned firmware, an unknown device: translated errors."""
    entry, printer = await setup_printer(hass, virtual_printer, "X1C")
    device = device_id(hass, entry, printer)
    printer.clear_commands()

    with pytest.raises(ServiceValidationError) as err:
        await act(hass, "extrude", device_id=device, length=5)
    assert err.value.translation_key == "nozzle_cold"
    assert err.value.translation_placeholders == {"temperature": "25", "minimum": "170"}

    printer.start_job("benchy")
    await wait_for_state(hass, "sensor.x1c_print_status", "prepare")
    for service, data in (
        ("send_gcode", {"gcode": "G28"}),
        ("move_axis", {"axis": "x", "distance": 10}),
        ("home", {}),
        ("extrude", {"length": 1}),
    ):
        with pytest.raises(ServiceValidationError) as err:
            await act(hass, service, device_id=device, **data)
        assert err.value.translation_key == "job_running", service
    assert sent(printer, "gcode_line") == []
    await act(hass, "send_gcode", device_id=device, gcode="M106 P1 S255", force=True)
    assert sent(printer, "gcode_line") == [{"command": "gcode_line", "param": "M106 P1 S255\n"}]

    printer.fault("signed_commands", required=True)
    await wait_for_state(hass, "select.x1c_speed_profile", "unavailable")
    with pytest.raises(ServiceValidationError) as err:
        await act(hass, "send_gcode", device_id=device, gcode="G28", force=True)
    assert err.value.translation_key == "signed_commands_required"

    with pytest.raises(ServiceValidationError) as err:
        await act(hass, "home", device_id="not-a-device")
    assert err.value.translation_key == "device_not_found"

    await hass.config_entries.async_unload(entry.entry_id)
    with pytest.raises(ServiceValidationError) as err:
        await act(hass, "home", device_id=device)
    assert err.value.translation_key == "printer_not_loaded"


@pytest.mark.parametrize(
    ("fault", "key"), [("refuse_next", "command_failed"), ("ignore_next", "command_timeout")]
)
async def test_actions_refused_and_timed_out(
    hass: HomeAssistant,
    virtual_printer: PrinterFactory,
    monkeypatch: pytest.MonkeyPatch,
    fault: str,
    key: str,
) -> None:
    """A refusal or a missing acknowledgement fails the action with a translated error."""
    monkeypatch.setattr(client, "COMMAND_TIMEOUT", 0.5)
    entry, printer = await setup_printer(hass, virtual_printer, "A1MINI")
    device = device_id(hass, entry, printer)
    printer.fault(fault)
    with pytest.raises(HomeAssistantError) as err:
        await act(hass, "home", device_id=device)
    assert err.value.translation_key == key


async def test_invalid_input_is_rejected(
    hass: HomeAssistant, virtual_printer: PrinterFactory
) -> None:
    """Out-of-range values never reach the printer."""
    entry, printer = await setup_printer(hass, virtual_printer, "A1MINI")
    device = device_id(hass, entry, printer)
    printer.clear_commands()
    for service, data in (
        ("move_axis", {"axis": "e", "distance": 1}),
        ("move_axis", {"axis": "x", "distance": 1000}),
        ("extrude", {"length": 500}),
        ("send_gcode", {"gcode": ""}),
    ):
        with pytest.raises(probatio.Invalid):
            await act(hass, service, device_id=device, **data)
    assert sent(printer, "gcode_line") == []


def test_services_yaml_is_translated() -> None:
    """Every action and field in services.yaml has a name and a description, and an icon."""
    root = Path(custom_components.bambu_lan.__file__).parent
    actions = yaml.safe_load((root / "services.yaml").read_text())
    strings = json.loads((root / "translations" / "en.json").read_text())["services"]
    icons = json.loads((root / "icons.json").read_text())["services"]
    for action, spec in actions.items():
        assert strings[action]["name"], action
        assert strings[action]["description"], action
        assert icons[action]["service"].startswith("mdi:"), action
        for field in spec.get("fields", {}):
            assert strings[action]["fields"][field]["name"], (action, field)
            assert strings[action]["fields"][field]["description"], (action, field)
    assert "Dangerous" in strings["send_gcode"]["description"]
