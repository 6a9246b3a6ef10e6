"""Controls drive the virtual printer, and their state follows what the printer then reports.

Every command goes over the real broker and waits for the printer's acknowledgement; refused and
unanswered commands raise translated errors.
"""

from __future__ import annotations

from typing import Any

from homeassistant.components.button import DOMAIN as BUTTON_DOMAIN, SERVICE_PRESS
from homeassistant.components.light import DOMAIN as LIGHT_DOMAIN
from homeassistant.components.number import (
    ATTR_VALUE,
    DOMAIN as NUMBER_DOMAIN,
    SERVICE_SET_VALUE,
)
from homeassistant.components.select import (
    ATTR_OPTION,
    DOMAIN as SELECT_DOMAIN,
    SERVICE_SELECT_OPTION,
)
from homeassistant.const import (
    ATTR_ENTITY_ID,
    SERVICE_TURN_OFF,
    SERVICE_TURN_ON,
    STATE_OFF,
    STATE_ON,
    STATE_UNAVAILABLE,
    STATE_UNKNOWN,
)
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError, ServiceValidationError
import pytest

from custom_components.bambu_lan.const import DOMAIN
from custom_components.bambu_lan.printer import session as client
from tests.test_entities import (
    enable_all_entities,  # noqa: F401 - a fixture
    setup_printer,
    state_of,
    wait_for_state,
)
from tests.virtual_printer.printer import PrinterFactory, VirtualPrinter

pytestmark = pytest.mark.usefixtures("trust_test_cas")

PAUSE = "button.x1c_pause_print"
RESUME = "button.x1c_resume_print"
STOP = "button.x1c_stop_print"


def sent(printer: VirtualPrinter, command: str) -> list[dict[str, Any]]:
    """Bodies of the requests with this command the printer received (sequence ids dropped)."""
    bodies = []
    for request in printer.received_commands():
        for body in request.values():
            if isinstance(body, dict) and body.get("command") == command:
                bodies.append({key: value for key, value in body.items() if key != "sequence_id"})
    return bodies


async def call(hass: HomeAssistant, domain: str, service: str, entity_id: str, **data: Any) -> None:
    """Call an entity service and wait for it (and so for the printer's acknowledgement)."""
    await hass.services.async_call(
        domain, service, {ATTR_ENTITY_ID: entity_id, **data}, blocking=True
    )


async def test_job_buttons(hass: HomeAssistant, virtual_printer: PrinterFactory) -> None:
    """Pause, resume and stop are available only when they apply, and move the job."""
    _, printer = await setup_printer(hass, virtual_printer, "X1C")
    assert [state_of(hass, button) for button in (PAUSE, RESUME, STOP)] == [STATE_UNAVAILABLE] * 3

    printer.start_job("benchy")
    await wait_for_state(hass, "sensor.x1c_print_status", "prepare")
    assert [state_of(hass, button) for button in (PAUSE, RESUME, STOP)] == [
        STATE_UNKNOWN,
        STATE_UNAVAILABLE,
        STATE_UNKNOWN,
    ]

    await call(hass, BUTTON_DOMAIN, SERVICE_PRESS, PAUSE)
    assert sent(printer, "pause") == [{"command": "pause", "param": ""}]
    await wait_for_state(hass, "sensor.x1c_print_status", "pause")
    assert state_of(hass, PAUSE) == STATE_UNAVAILABLE
    assert state_of(hass, RESUME) != STATE_UNAVAILABLE

    await call(hass, BUTTON_DOMAIN, SERVICE_PRESS, RESUME)
    await wait_for_state(hass, "sensor.x1c_print_status", "prepare")

    await call(hass, BUTTON_DOMAIN, SERVICE_PRESS, STOP)
    await wait_for_state(hass, "sensor.x1c_print_status", "failed")
    assert [state_of(hass, button) for button in (PAUSE, RESUME, STOP)] == [STATE_UNAVAILABLE] * 3
    assert state_of(hass, "sensor.x1c_print_error") == "0300_400C"  # cancelled by the user
    # The end of the job takes a finish photo (image.py); let it complete before teardown.
    await hass.async_block_till_done(wait_background_tasks=True)


@pytest.mark.parametrize(
    ("model", "nodes"),
    [("P1S", ["chamber_light"]), ("H2D", ["chamber_light", "chamber_light2"])],
)
async def test_chamber_light(
    hass: HomeAssistant, virtual_printer: PrinterFactory, model: str, nodes: list[str]
) -> None:
    """The light switches every chamber light node and shows what the printer reports."""
    _, printer = await setup_printer(hass, virtual_printer, model)
    light = f"light.{model.lower()}_chamber_light"
    assert state_of(hass, light) == STATE_OFF

    await call(hass, LIGHT_DOMAIN, SERVICE_TURN_ON, light)
    await wait_for_state(hass, light, STATE_ON)
    timing = {"led_on_time": 500, "led_off_time": 500, "loop_times": 0, "interval_time": 0}
    assert sent(printer, "ledctrl") == [
        {"command": "ledctrl", "led_node": node, "led_mode": "on", **timing} for node in nodes
    ]

    await call(hass, LIGHT_DOMAIN, SERVICE_TURN_OFF, light)
    await wait_for_state(hass, light, STATE_OFF)


async def test_light_state_is_never_assumed(
    hass: HomeAssistant, virtual_printer: PrinterFactory
) -> None:
    """A refused light command raises and leaves the light as the printer reports it."""
    _, printer = await setup_printer(hass, virtual_printer, "A1MINI")
    printer.fault("refuse_next", reason="busy")
    with pytest.raises(HomeAssistantError) as err:
        await call(hass, LIGHT_DOMAIN, SERVICE_TURN_ON, "light.a1mini_chamber_light")
    assert err.value.translation_key == "command_failed"
    printer.push()  # one more full report: still off
    await hass.async_block_till_done()
    assert state_of(hass, "light.a1mini_chamber_light") == STATE_OFF


@pytest.mark.usefixtures("enable_all_entities")  # the sensor is disabled by default
async def test_speed_profile(hass: HomeAssistant, virtual_printer: PrinterFactory) -> None:
    """The select sends print_speed with the level as a string and follows the report."""
    _, printer = await setup_printer(hass, virtual_printer, "P1S")
    assert state_of(hass, "select.p1s_speed_profile") == "standard"

    await call(
        hass,
        SELECT_DOMAIN,
        SERVICE_SELECT_OPTION,
        "select.p1s_speed_profile",
        **{ATTR_OPTION: "ludicrous"},
    )
    assert sent(printer, "print_speed") == [{"command": "print_speed", "param": "4"}]
    await wait_for_state(hass, "select.p1s_speed_profile", "ludicrous")
    assert state_of(hass, "sensor.p1s_speed_profile") == "ludicrous"


async def test_target_temperatures(hass: HomeAssistant, virtual_printer: PrinterFactory) -> None:
    """Targets are set with M104/M140 and shown once the printer reports them; out of range
    values never reach the printer."""
    _, printer = await setup_printer(hass, virtual_printer, "A1MINI")
    nozzle, bed = "number.a1mini_nozzle_target_temperature", "number.a1mini_bed_target_temperature"

    await call(hass, NUMBER_DOMAIN, SERVICE_SET_VALUE, nozzle, **{ATTR_VALUE: 215})
    await call(hass, NUMBER_DOMAIN, SERVICE_SET_VALUE, bed, **{ATTR_VALUE: 55})
    assert sent(printer, "gcode_line") == [
        {"command": "gcode_line", "param": "M104 S215\n"},
        {"command": "gcode_line", "param": "M140 S55\n"},
    ]
    await wait_for_state(hass, nozzle, "215.0")
    await wait_for_state(hass, bed, "55.0")

    printer.clear_commands()
    with pytest.raises(ServiceValidationError):
        await call(hass, NUMBER_DOMAIN, SERVICE_SET_VALUE, nozzle, **{ATTR_VALUE: 301})
    with pytest.raises(ServiceValidationError):
        await call(hass, NUMBER_DOMAIN, SERVICE_SET_VALUE, bed, **{ATTR_VALUE: 121})
    assert sent(printer, "gcode_line") == []


async def test_dual_nozzle_targets(hass: HomeAssistant, virtual_printer: PrinterFactory) -> None:
    """H2D: a target per nozzle, each commanding its own extruder (T1 left, T0 right),
    whichever nozzle is active; no single-nozzle control or duplicates."""
    _, printer = await setup_printer(hass, virtual_printer, "H2D")
    left, right = (
        "number.h2d_left_nozzle_target_temperature",
        "number.h2d_right_nozzle_target_temperature",
    )
    assert state_of(hass, "sensor.h2d_active_nozzle") == "right"

    await call(hass, NUMBER_DOMAIN, SERVICE_SET_VALUE, left, **{ATTR_VALUE: 250})
    await call(hass, NUMBER_DOMAIN, SERVICE_SET_VALUE, right, **{ATTR_VALUE: 210})
    assert sent(printer, "gcode_line") == [
        {"command": "gcode_line", "param": "M104 S250 T1\n"},
        {"command": "gcode_line", "param": "M104 S210 T0\n"},
    ]
    await wait_for_state(hass, left, "250.0")
    await wait_for_state(hass, right, "210.0")
    extruders = printer.state()["device"]["extruder"]["info"]
    assert {entry["id"]: entry["temp"] >> 16 for entry in extruders} == {0: 210, 1: 250}

    printer.set_state({"device": {"extruder": {"state": 0x112}}})  # the left one is active now
    await wait_for_state(hass, "sensor.h2d_active_nozzle", "left")
    for single in (
        "number.h2d_nozzle_target_temperature",
        "sensor.h2d_nozzle_temperature",
        "sensor.h2d_nozzle_target_temperature",
        "sensor.h2d_left_nozzle_target_temperature",
    ):
        assert hass.states.get(single) is None, single


async def test_refused_command(hass: HomeAssistant, virtual_printer: PrinterFactory) -> None:
    """A command the printer refuses raises the translated command_failed error."""
    _, printer = await setup_printer(hass, virtual_printer, "X1C")
    printer.fault("refuse_next", reason="busy")
    with pytest.raises(HomeAssistantError) as err:
        await call(
            hass,
            SELECT_DOMAIN,
            SERVICE_SELECT_OPTION,
            "select.x1c_speed_profile",
            **{ATTR_OPTION: "sport"},
        )
    assert err.value.translation_domain == DOMAIN
    assert err.value.translation_key == "command_failed"
    assert err.value.translation_placeholders == {"command": "print_speed", "reason": "busy"}
    assert state_of(hass, "select.x1c_speed_profile") == "standard"


async def test_unanswered_command(
    hass: HomeAssistant, virtual_printer: PrinterFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A command the printer never acknowledges raises the translated command_timeout error."""
    monkeypatch.setattr(client, "COMMAND_TIMEOUT", 0.5)
    _, printer = await setup_printer(hass, virtual_printer, "P1S")
    printer.fault("ignore_next")
    with pytest.raises(HomeAssistantError) as err:
        await call(
            hass,
            NUMBER_DOMAIN,
            SERVICE_SET_VALUE,
            "number.p1s_bed_target_temperature",
            **{ATTR_VALUE: 60},
        )
    assert err.value.translation_domain == DOMAIN
    assert err.value.translation_key == "command_timeout"
    assert sent(printer, "gcode_line") == [{"command": "gcode_line", "param": "M140 S60\n"}]


async def test_signed_command_firmware(
    hass: HomeAssistant, virtual_printer: PrinterFactory
) -> None:
    """While the firmware wants signed commands only the light stays usable."""
    _, printer = await setup_printer(hass, virtual_printer, "X1C")
    printer.start_job("benchy")
    await wait_for_state(hass, "sensor.x1c_print_status", "prepare")
    controls = [
        PAUSE,
        STOP,
        "select.x1c_speed_profile",
        "number.x1c_nozzle_target_temperature",
        "number.x1c_bed_target_temperature",
    ]
    assert STATE_UNAVAILABLE not in [state_of(hass, control) for control in controls]

    printer.fault("signed_commands", required=True)
    await wait_for_state(hass, "select.x1c_speed_profile", STATE_UNAVAILABLE)
    assert [state_of(hass, control) for control in controls] == [STATE_UNAVAILABLE] * 5
    await call(hass, LIGHT_DOMAIN, SERVICE_TURN_ON, "light.x1c_chamber_light")
    await wait_for_state(hass, "light.x1c_chamber_light", STATE_ON)

    printer.fault("signed_commands", required=False)
    await wait_for_state(hass, "select.x1c_speed_profile", "standard")
    assert STATE_UNAVAILABLE not in [state_of(hass, control) for control in controls]
