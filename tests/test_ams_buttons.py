"""AMS buttons against the virtual printer: stop drying and unload, each acknowledged, refused
or timed out, and unavailable while there is nothing to do or commands must be signed."""

from __future__ import annotations

from homeassistant.const import ATTR_ENTITY_ID, STATE_UNAVAILABLE
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError
import pytest

from custom_components.bambu_lan.printer import session as client
from tests.test_ams_services import act, unit_device
from tests.test_controls import sent
from tests.test_entities import setup_printer, state_of, wait_for_state, wait_until
from tests.virtual_printer.printer import PrinterFactory

pytestmark = pytest.mark.usefixtures("trust_test_cas")


async def press(hass: HomeAssistant, entity_id: str) -> None:
    """Press a button and wait for the printer's answer."""
    await hass.services.async_call("button", "press", {ATTR_ENTITY_ID: entity_id}, blocking=True)


def available(hass: HomeAssistant, entity_id: str) -> bool:
    """Whether the entity is available."""
    return state_of(hass, entity_id) != STATE_UNAVAILABLE


async def test_stop_drying_button(
    hass: HomeAssistant, virtual_printer: PrinterFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only units that dry get the button; it is available while drying runs, stops it, and
    reports a refusal or silence; signed-command firmware makes it unavailable."""
    entry, printer = await setup_printer(hass, virtual_printer, "H2D")
    button = "button.ams_2_pro_2_stop_drying"
    assert not available(hass, button)  # nothing to stop
    assert hass.states.get("button.ams_ht_1_stop_drying") is not None
    device = unit_device(hass, entry.entry_id, printer.serial, 1)
    await act(hass, "start_drying", device_id=device, temperature=55, duration=8)
    await wait_until(hass, lambda: available(hass, button), "stop drying available")

    printer.fault("refuse_next", reason="busy")
    with pytest.raises(HomeAssistantError) as err:
        await press(hass, button)
    assert err.value.translation_key == "command_failed"
    monkeypatch.setattr(client, "COMMAND_TIMEOUT", 0.5)
    printer.fault("ignore_next")
    with pytest.raises(HomeAssistantError) as err:
        await press(hass, button)
    assert err.value.translation_key == "command_timeout"
    assert state_of(hass, "sensor.ams_2_pro_2_drying") == "drying"

    await press(hass, button)
    assert sent(printer, "ams_filament_drying")[-1]["mode"] == 0
    await wait_for_state(hass, "sensor.ams_2_pro_2_drying", "off")
    await wait_until(hass, lambda: not available(hass, button), "stop drying unavailable")

    await act(hass, "start_drying", device_id=device, temperature=55, duration=8)
    await wait_until(hass, lambda: available(hass, button), "drying again")
    printer.fault("signed_commands", required=True)
    await wait_until(hass, lambda: not available(hass, button), "signed commands required")


async def test_no_stop_drying_on_a_plain_ams(
    hass: HomeAssistant, virtual_printer: PrinterFactory
) -> None:
    """A plain AMS cannot dry: no button."""
    await setup_printer(hass, virtual_printer, "P1S")
    assert hass.states.get("button.ams_1_stop_drying") is None
    assert hass.states.get("sensor.ams_1_tray_1") is not None


async def test_unload_button(
    hass: HomeAssistant, virtual_printer: PrinterFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Available while a filament is loaded; unloads it; refusals and silence raise."""
    _, printer = await setup_printer(hass, virtual_printer, "P1S")
    button = "button.p1s_unload_filament"
    assert not available(hass, button)
    await act(hass, "load_filament", entity_id="sensor.ams_1_tray_3")
    await wait_until(hass, lambda: available(hass, button), "loaded")

    printer.fault("refuse_next", reason="printing")
    with pytest.raises(HomeAssistantError) as err:
        await press(hass, button)
    assert err.value.translation_key == "command_failed"
    monkeypatch.setattr(client, "COMMAND_TIMEOUT", 0.5)
    printer.fault("ignore_next")
    with pytest.raises(HomeAssistantError) as err:
        await press(hass, button)
    assert err.value.translation_key == "command_timeout"

    await press(hass, button)
    assert sent(printer, "ams_change_filament")[-1]["target"] == 255
    await wait_for_state(hass, "sensor.p1s_active_filament", "unknown")
    await wait_until(hass, lambda: not available(hass, button), "nothing loaded")

    await act(hass, "load_filament", entity_id="sensor.ams_1_tray_3")
    await wait_until(hass, lambda: available(hass, button), "loaded again")
    printer.fault("signed_commands", required=True)
    await wait_until(hass, lambda: not available(hass, button), "signed commands required")


async def test_unload_buttons_per_nozzle(
    hass: HomeAssistant, virtual_printer: PrinterFactory
) -> None:
    """On the H2D each nozzle has its button, available while that nozzle holds filament."""
    _, printer = await setup_printer(hass, virtual_printer, "H2D")
    left, right = "button.h2d_unload_left_nozzle", "button.h2d_unload_right_nozzle"
    assert hass.states.get("button.h2d_unload_filament") is None
    assert not available(hass, left)
    await act(hass, "load_filament", entity_id="sensor.ams_2_pro_1_tray_1", extruder="left")
    await wait_until(hass, lambda: available(hass, left), "left loaded")
    assert not available(hass, right)
    await press(hass, left)
    assert sent(printer, "ams_change_filament")[-1]["ams_id"] == 0
    await wait_for_state(hass, "sensor.h2d_left_nozzle_filament", "unknown")
    await wait_until(hass, lambda: not available(hass, left), "left empty")
