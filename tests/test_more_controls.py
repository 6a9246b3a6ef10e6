"""Fans, print options, chamber target, heatbed light, air duct, buzzer and refresh against the
virtual printer: acknowledged, refused, timed out, gated per model and by signed commands."""

from __future__ import annotations

from homeassistant.components.button import DOMAIN as BUTTON_DOMAIN, SERVICE_PRESS
from homeassistant.components.fan import (
    ATTR_PERCENTAGE,
    DOMAIN as FAN_DOMAIN,
    SERVICE_SET_PERCENTAGE,
)
from homeassistant.components.light import DOMAIN as LIGHT_DOMAIN
from homeassistant.components.number import ATTR_VALUE, DOMAIN as NUMBER_DOMAIN, SERVICE_SET_VALUE
from homeassistant.components.select import (
    ATTR_OPTION,
    DOMAIN as SELECT_DOMAIN,
    SERVICE_SELECT_OPTION,
)
from homeassistant.components.switch import DOMAIN as SWITCH_DOMAIN
from homeassistant.const import (
    SERVICE_TURN_OFF,
    SERVICE_TURN_ON,
    STATE_OFF,
    STATE_ON,
    STATE_UNAVAILABLE,
    STATE_UNKNOWN,
)
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError
import pytest

from custom_components.bambu_lan.fan import percentage_to_pwm
from custom_components.bambu_lan.printer import session as client
from tests.test_controls import call, sent
from tests.test_entities import setup_printer, state_of, wait_for_state
from tests.virtual_printer.printer import PrinterFactory

pytestmark = pytest.mark.usefixtures("trust_test_cas")


@pytest.mark.parametrize(
    ("percentage", "pwm"), [(0, 0), (1, 17), (7, 34), (50, 136), (99, 255), (100, 255)]
)
def test_fan_steps(percentage: int, pwm: int) -> None:
    """A percentage goes to the fan step that serves it: S = 17 x step (255 = 15 steps)."""
    assert percentage_to_pwm(percentage) == pwm


@pytest.mark.parametrize(
    ("model", "fans"),
    [
        ("X1C", ["part_cooling_fan", "auxiliary_fan", "chamber_fan"]),
        ("P1S", ["part_cooling_fan", "auxiliary_fan", "chamber_fan"]),
        ("A1MINI", ["part_cooling_fan"]),
    ],
)
async def test_fans(
    hass: HomeAssistant, virtual_printer: PrinterFactory, model: str, fans: list[str]
) -> None:
    """Each fan the model has: M106 with its index, speed as the printer then reports it."""
    _, printer = await setup_printer(hass, virtual_printer, model)
    slug = model.lower()
    for name in ("part_cooling_fan", "auxiliary_fan", "chamber_fan"):
        assert (hass.states.get(f"fan.{slug}_{name}") is not None) == (name in fans), name
    part = f"fan.{slug}_part_cooling_fan"
    assert state_of(hass, part) == STATE_OFF

    await call(hass, FAN_DOMAIN, SERVICE_SET_PERCENTAGE, part, **{ATTR_PERCENTAGE: 40})
    assert sent(printer, "gcode_line") == [{"command": "gcode_line", "param": "M106 P1 S102\n"}]
    await wait_for_state(hass, part, STATE_ON)
    state = hass.states.get(part)
    assert state is not None
    assert state.attributes[ATTR_PERCENTAGE] == 40  # step 6 of 15
    assert state.attributes["percentage_step"] == pytest.approx(100 / 15)

    await call(hass, FAN_DOMAIN, SERVICE_TURN_OFF, part)
    await wait_for_state(hass, part, STATE_OFF)
    if len(fans) == 3:
        await call(hass, FAN_DOMAIN, SERVICE_TURN_ON, f"fan.{slug}_chamber_fan")
        await wait_for_state(hass, f"fan.{slug}_chamber_fan", STATE_ON)
        assert sent(printer, "gcode_line")[-1] == {
            "command": "gcode_line",
            "param": "M106 P3 S255\n",
        }


async def test_print_options(hass: HomeAssistant, virtual_printer: PrinterFactory) -> None:
    """AI detections via xcam_control_set, auto-recovery via print_option; state as reported."""
    _, printer = await setup_printer(hass, virtual_printer, "X1C")
    spaghetti = "switch.x1c_spaghetti_detection"
    assert state_of(hass, spaghetti) == STATE_ON
    assert state_of(hass, "switch.x1c_first_layer_inspection") == STATE_ON
    assert hass.states.get("switch.x1c_prompt_sound") is None  # not on the X1C

    await call(hass, SWITCH_DOMAIN, SERVICE_TURN_OFF, spaghetti)
    assert sent(printer, "xcam_control_set") == [
        {
            "command": "xcam_control_set",
            "module_name": "spaghetti_detector",
            "control": False,
            "enable": False,
            "print_halt": True,
        }
    ]
    await wait_for_state(hass, spaghetti, STATE_OFF)

    recovery = "switch.x1c_auto_recovery_from_step_loss"
    assert state_of(hass, recovery) == STATE_ON
    await call(hass, SWITCH_DOMAIN, SERVICE_TURN_OFF, recovery)
    assert sent(printer, "print_option") == [{"command": "print_option", "auto_recovery": False}]
    await wait_for_state(hass, recovery, STATE_OFF)


async def test_print_options_by_model(hass: HomeAssistant, virtual_printer: PrinterFactory) -> None:
    """Only the detections the printer reports; the A1 mini's prompt sound switch works."""
    _, printer = await setup_printer(hass, virtual_printer, "A1MINI")
    assert hass.states.get("switch.a1mini_spaghetti_detection") is None
    sound = "switch.a1mini_prompt_sound"
    assert state_of(hass, sound) == STATE_ON
    await call(hass, SWITCH_DOMAIN, SERVICE_TURN_OFF, sound)
    assert sent(printer, "print_option") == [{"command": "print_option", "sound_enable": False}]
    await wait_for_state(hass, sound, STATE_OFF)


async def test_h2d_controls(hass: HomeAssistant, virtual_printer: PrinterFactory) -> None:
    """Chamber target (M141), heatbed light (assumed state), air duct, buzzer silence."""
    _, printer = await setup_printer(hass, virtual_printer, "H2D")
    chamber = "number.h2d_chamber_target_temperature"
    assert state_of(hass, chamber) == "0.0"
    await call(hass, NUMBER_DOMAIN, SERVICE_SET_VALUE, chamber, **{ATTR_VALUE: 45})
    assert sent(printer, "gcode_line") == [{"command": "gcode_line", "param": "M141 S45\n"}]
    await wait_for_state(hass, chamber, "45.0")

    heatbed = "light.h2d_heatbed_light"
    assert state_of(hass, heatbed) == STATE_UNKNOWN
    await call(hass, LIGHT_DOMAIN, SERVICE_TURN_ON, heatbed)
    assert state_of(hass, heatbed) == STATE_ON
    assert sent(printer, "ledctrl")[0]["led_node"] == "heatbed_light"
    printer.fault("refuse_next", reason="busy")
    with pytest.raises(HomeAssistantError):
        await call(hass, LIGHT_DOMAIN, SERVICE_TURN_OFF, heatbed)
    assert state_of(hass, heatbed) == STATE_ON  # refused: nothing assumed

    airduct = "select.h2d_air_duct_mode"
    assert state_of(hass, airduct) == "cooling"
    await call(hass, SELECT_DOMAIN, SERVICE_SELECT_OPTION, airduct, **{ATTR_OPTION: "heating"})
    assert sent(printer, "set_airduct") == [{"command": "set_airduct", "modeId": 1, "submode": -1}]
    await wait_for_state(hass, airduct, "heating")

    await call(hass, BUTTON_DOMAIN, SERVICE_PRESS, "button.h2d_silence_buzzer")
    assert sent(printer, "buzzer_ctrl") == [{"command": "buzzer_ctrl", "mode": 0, "reason": ""}]


async def test_controls_exist_per_model(
    hass: HomeAssistant, virtual_printer: PrinterFactory
) -> None:
    """The P1S has none of the H2 controls."""
    await setup_printer(hass, virtual_printer, "P1S")
    for entity_id in (
        "number.p1s_chamber_target_temperature",
        "light.p1s_heatbed_light",
        "select.p1s_air_duct_mode",
        "button.p1s_silence_buzzer",
        "switch.p1s_prompt_sound",
    ):
        assert hass.states.get(entity_id) is None, entity_id
    assert state_of(hass, "switch.p1s_spaghetti_detection") == STATE_ON


async def test_refresh_honours_the_rate_limit(
    hass: HomeAssistant, virtual_printer: PrinterFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Refresh sends pushall at once after the limit passed; within it, only once it ends."""
    monkeypatch.setattr(client, "PUSHALL_MIN_INTERVAL", 1.0)
    entry, printer = await setup_printer(hass, virtual_printer, "P1S")
    await printer.async_wait_for_command("pushall")  # the one after connecting
    printer.clear_commands()
    await call(hass, BUTTON_DOMAIN, SERVICE_PRESS, "button.p1s_refresh")
    await call(hass, BUTTON_DOMAIN, SERVICE_PRESS, "button.p1s_refresh")
    assert sent(printer, "pushall") == []  # too soon after the connect's pushall
    await printer.async_wait_for_command("pushall", within=5.0)
    assert len(sent(printer, "pushall")) == 1  # two presses, one deferred pushall

    monkeypatch.setattr(client, "PUSHALL_MIN_INTERVAL", 0.0)
    printer.clear_commands()
    await call(hass, BUTTON_DOMAIN, SERVICE_PRESS, "button.p1s_refresh")
    await printer.async_wait_for_command("pushall")
    assert entry.runtime_data.request_full_state() is True


@pytest.mark.parametrize("fault", ["refuse_next", "ignore_next"])
async def test_new_controls_refused_and_timed_out(
    hass: HomeAssistant,
    virtual_printer: PrinterFactory,
    monkeypatch: pytest.MonkeyPatch,
    fault: str,
) -> None:
    """A refused or unanswered command raises the translated error; the state stays."""
    monkeypatch.setattr(client, "COMMAND_TIMEOUT", 0.5)
    _, printer = await setup_printer(hass, virtual_printer, "X1C")
    expected = "command_failed" if fault == "refuse_next" else "command_timeout"
    attempts = [
        (FAN_DOMAIN, SERVICE_TURN_ON, "fan.x1c_auxiliary_fan", {}),
        (SWITCH_DOMAIN, SERVICE_TURN_OFF, "switch.x1c_spaghetti_detection", {}),
        (SWITCH_DOMAIN, SERVICE_TURN_OFF, "switch.x1c_auto_recovery_from_step_loss", {}),
    ]
    for domain, service, entity_id, data in attempts:
        before = state_of(hass, entity_id)
        printer.fault(fault)
        with pytest.raises(HomeAssistantError) as err:
            await call(hass, domain, service, entity_id, **data)
        assert err.value.translation_key == expected
        assert state_of(hass, entity_id) == before


async def test_new_controls_need_unsigned_commands(
    hass: HomeAssistant, virtual_printer: PrinterFactory
) -> None:
    """While the firmware wants signed commands the new controls are unavailable."""
    _, printer = await setup_printer(hass, virtual_printer, "H2D")
    controls = [
        "fan.h2d_part_cooling_fan",
        "switch.h2d_spaghetti_detection",
        "switch.h2d_prompt_sound",
        "number.h2d_chamber_target_temperature",
        "select.h2d_air_duct_mode",
        "button.h2d_silence_buzzer",
    ]
    printer.fault("signed_commands", required=True)
    await wait_for_state(hass, "select.h2d_air_duct_mode", STATE_UNAVAILABLE)
    assert [state_of(hass, control) for control in controls] == [STATE_UNAVAILABLE] * 6
    assert state_of(hass, "button.h2d_refresh") != STATE_UNAVAILABLE
    assert state_of(hass, "light.h2d_heatbed_light") != STATE_UNAVAILABLE


@pytest.mark.parametrize(
    ("fault", "key"), [("refuse_next", "command_failed"), ("ignore_next", "command_timeout")]
)
async def test_h2d_controls_refused_and_timed_out(
    hass: HomeAssistant,
    virtual_printer: PrinterFactory,
    monkeypatch: pytest.MonkeyPatch,
    fault: str,
    key: str,
) -> None:
    """Chamber target, air duct, heatbed light and buzzer: a refusal or no answer raises the
    translated error and changes nothing shown."""
    monkeypatch.setattr(client, "COMMAND_TIMEOUT", 0.5)
    _, printer = await setup_printer(hass, virtual_printer, "H2D")
    attempts = [
        (
            NUMBER_DOMAIN,
            SERVICE_SET_VALUE,
            "number.h2d_chamber_target_temperature",
            {ATTR_VALUE: 40},
        ),
        (
            SELECT_DOMAIN,
            SERVICE_SELECT_OPTION,
            "select.h2d_air_duct_mode",
            {ATTR_OPTION: "heating"},
        ),
        (LIGHT_DOMAIN, SERVICE_TURN_ON, "light.h2d_heatbed_light", {}),
        (BUTTON_DOMAIN, SERVICE_PRESS, "button.h2d_silence_buzzer", {}),
        (FAN_DOMAIN, SERVICE_SET_PERCENTAGE, "fan.h2d_chamber_fan", {ATTR_PERCENTAGE: 50}),
    ]
    for domain, service, entity_id, data in attempts:
        before = state_of(hass, entity_id)
        printer.fault(fault)
        with pytest.raises(HomeAssistantError) as err:
            await call(hass, domain, service, entity_id, **data)
        assert err.value.translation_key == key, entity_id
        if domain != BUTTON_DOMAIN:  # a button's state is its last press, whatever came of it
            assert state_of(hass, entity_id) == before, entity_id
