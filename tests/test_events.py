"""Event entities fire exactly once per transition the virtual printer makes: across a
reconnect and a restart too, never for what happened while nobody was looking."""

from __future__ import annotations

from typing import Any

from homeassistant.components.button import DOMAIN as BUTTON_DOMAIN, SERVICE_PRESS
from homeassistant.const import (
    ATTR_ENTITY_ID,
    EVENT_STATE_CHANGED,
    STATE_ON,
    STATE_UNAVAILABLE,
    STATE_UNKNOWN,
)
from homeassistant.core import Event, HomeAssistant, callback
from homeassistant.exceptions import HomeAssistantError
import pytest

from custom_components.bambu_lan.printer import events
from tests.test_entities import setup_printer, wait_for_state, wait_until
from tests.virtual_printer.printer import PrinterFactory

pytestmark = pytest.mark.usefixtures("trust_test_cas")

HMS_ATTR = 0x07000300
HMS_CODE = 0x00020002  # HMS_0700_0300_0002_0002: serious, AMS


class Recorder:
    """Every event the printer's event entities fire: (entity, event_type, data)."""

    def __init__(self, hass: HomeAssistant, slug: str) -> None:
        self.fired: list[tuple[str, str, dict[str, Any]]] = []
        self._seen: set[tuple[str, str]] = set()
        names = ("print", "hms_error", "filament")
        self._entities = {f"event.{slug}_{name}": name for name in names}
        hass.bus.async_listen(EVENT_STATE_CHANGED, self._record)

    @callback
    def _record(self, event: Event) -> None:
        name = self._entities.get(event.data["entity_id"])
        new = event.data["new_state"]
        if name is None or new is None or new.state in (STATE_UNAVAILABLE, STATE_UNKNOWN):
            return
        if (name, new.state) in self._seen:
            return  # the same event shown again (restored after a reload)
        self._seen.add((name, new.state))
        data = {
            key: value
            for key, value in new.attributes.items()
            if key not in ("event_type", "event_types", "friendly_name", "icon")
        }
        self.fired.append((name, new.attributes["event_type"], data))

    def types(self) -> list[tuple[str, str]]:
        return [(name, event_type) for name, event_type, _ in self.fired]

    async def wait_for(self, hass: HomeAssistant, count: int) -> None:
        await wait_until(
            hass, lambda: len(self.fired) >= count, f"{count} events (fired: {self.fired})"
        )


async def press(hass: HomeAssistant, entity_id: str) -> None:
    await hass.services.async_call(
        BUTTON_DOMAIN, SERVICE_PRESS, {ATTR_ENTITY_ID: entity_id}, blocking=True
    )


async def test_print_lifecycle(hass: HomeAssistant, virtual_printer: PrinterFactory) -> None:
    """Started, paused, resumed, finished, then a second job cancelled and a third failed."""
    _, printer = await setup_printer(hass, virtual_printer, "P1S")
    recorder = Recorder(hass, "p1s")
    assert recorder_state(hass, "event.p1s_print") == STATE_UNKNOWN

    printer.start_job("benchy")
    await recorder.wait_for(hass, 1)
    await press(hass, "button.p1s_pause_print")
    await recorder.wait_for(hass, 2)
    await press(hass, "button.p1s_resume_print")
    await recorder.wait_for(hass, 3)
    printer.set_state({"gcode_state": "FINISH", "mc_percent": 100})
    await recorder.wait_for(hass, 4)
    assert recorder.types() == [
        ("print", "started"),
        ("print", "paused"),
        ("print", "resumed"),
        ("print", "finished"),
    ]
    finished = recorder.fired[3][2]
    assert finished["job_name"] == "benchy"
    assert isinstance(finished["duration"], int)
    assert finished["duration"] >= 0

    printer.start_job("cube")
    await recorder.wait_for(hass, 5)
    await press(hass, "button.p1s_stop_print")
    await recorder.wait_for(hass, 6)
    printer.start_job("vase")
    await recorder.wait_for(hass, 7)
    printer.set_state({"gcode_state": "FAILED", "print_error": 0x07008011})
    await recorder.wait_for(hass, 8)
    assert recorder.types()[4:] == [
        ("print", "started"),
        ("print", "cancelled"),
        ("print", "started"),
        ("print", "failed"),
    ]
    assert recorder.fired[5][2]["job_name"] == "cube"
    assert recorder.fired[7][2]["print_error"] == "0700_8011"
    printer.push()  # the same state again: nothing new
    await wait_for_state(hass, "sensor.p1s_print_status", "failed")
    assert len(recorder.fired) == 8


async def test_filament_runout(hass: HomeAssistant, virtual_printer: PrinterFactory) -> None:
    """The run-out pause fires the filament event (and the print's pause) once."""
    _, printer = await setup_printer(hass, virtual_printer, "A1MINI")
    recorder = Recorder(hass, "a1mini")
    printer.set_state({"gcode_state": "RUNNING", "stg_cur": 0, "subtask_name": "spool"})
    await recorder.wait_for(hass, 1)
    printer.set_state({"gcode_state": "PAUSE", "stg_cur": 6})
    await recorder.wait_for(hass, 3)
    printer.set_state({"mc_percent": 40})
    await wait_for_state(hass, "sensor.a1mini_progress", "40")
    assert recorder.types() == [
        ("print", "started"),
        ("print", "paused"),
        ("filament", "runout"),
    ]
    assert recorder.fired[2][2] == {"job_name": "spool"}


async def test_hms_events_debounced(
    hass: HomeAssistant, virtual_printer: PrinterFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An error fires once when it appears, not again while it flaps, and once when cleared."""
    monkeypatch.setattr(events, "HMS_CLEAR_DEBOUNCE", 1.5)
    _, printer = await setup_printer(hass, virtual_printer, "X1C")
    recorder = Recorder(hass, "x1c")
    printer.raise_hms(HMS_ATTR, HMS_CODE)
    await recorder.wait_for(hass, 1)
    for _ in range(3):  # flapping
        printer.clear_hms()
        await wait_for_state(hass, "sensor.x1c_hms_errors", "0")
        printer.raise_hms(HMS_ATTR, HMS_CODE)
        await wait_for_state(hass, "sensor.x1c_hms_errors", "1")
    assert len(recorder.fired) == 1
    printer.clear_hms()
    await recorder.wait_for(hass, 2)
    details = {
        "code": "HMS_0700_0300_0002_0002",
        "severity": "serious",
        "module": "ams",
        "url": "https://e.bambulab.com/index.php?e=0700030000020002&s=device_hms&lang=en",
    }
    assert recorder.fired == [
        ("hms_error", "error_appeared", details),
        ("hms_error", "error_cleared", details),
    ]


async def test_no_duplicates_after_reconnect(
    hass: HomeAssistant, virtual_printer: PrinterFactory, fast_reconnect: None
) -> None:
    """A reconnect's report repeats known states: no event; a change made while the link was
    down fires once when the printer reports it."""
    _, printer = await setup_printer(hass, virtual_printer, "X1C")
    recorder = Recorder(hass, "x1c")
    printer.set_state({"gcode_state": "RUNNING", "subtask_name": "gear"})
    printer.raise_hms(HMS_ATTR, HMS_CODE)
    await recorder.wait_for(hass, 2)

    printer.restart_broker()
    await wait_for_state(hass, "binary_sensor.x1c_connected", STATE_ON)
    printer.push()
    await wait_for_state(hass, "event.x1c_print", recorder_state(hass, "event.x1c_print"))
    assert len(recorder.fired) == 2

    printer.stop_broker()
    await wait_for_state(hass, "binary_sensor.x1c_connected", "off")
    printer.set_state({"gcode_state": "FINISH"})
    printer.start_broker()
    await recorder.wait_for(hass, 3)
    printer.push()
    await wait_for_state(hass, "sensor.x1c_print_status", "finish")
    assert recorder.types() == [
        ("print", "started"),
        ("hms_error", "error_appeared"),
        ("print", "finished"),
    ]


def recorder_state(hass: HomeAssistant, entity_id: str) -> str:
    state = hass.states.get(entity_id)
    assert state is not None
    return state.state


async def test_nothing_invented_at_restart(
    hass: HomeAssistant, virtual_printer: PrinterFactory
) -> None:
    """A print that finished (and an error raised) while the entry was unloaded fires nothing
    when it loads again; the event entities keep their last event."""
    entry, printer = await setup_printer(hass, virtual_printer, "P1S")
    recorder = Recorder(hass, "p1s")
    printer.set_state({"gcode_state": "RUNNING", "subtask_name": "gear"})
    await recorder.wait_for(hass, 1)
    last = recorder_state(hass, "event.p1s_print")

    coordinator = entry.runtime_data
    await hass.config_entries.async_unload(entry.entry_id)
    with pytest.raises(HomeAssistantError) as err:  # an unloaded printer sends nothing
        await coordinator.async_send("print", "pause")
    assert err.value.translation_key == "not_connected"
    with pytest.raises(HomeAssistantError):
        coordinator.request_full_state()
    printer.set_state({"gcode_state": "FINISH"})
    printer.raise_hms(HMS_ATTR, HMS_CODE)
    await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    await wait_for_state(hass, "sensor.p1s_print_status", "finish")
    assert recorder_state(hass, "event.p1s_print") == last
    assert recorder_state(hass, "event.p1s_hms_error") == STATE_UNKNOWN
    assert recorder.types() == [("print", "started")]

    printer.start_job("next")
    await recorder.wait_for(hass, 2)
    assert recorder.types() == [("print", "started"), ("print", "started")]


async def test_hms_sensor_lists_details(
    hass: HomeAssistant, virtual_printer: PrinterFactory
) -> None:
    """The HMS sensor keeps its count and lists code, severity, module and link per error."""
    _, printer = await setup_printer(hass, virtual_printer, "H2D")
    printer.raise_hms(0x0C000300, 0x00030001)
    await wait_for_state(hass, "sensor.h2d_hms_errors", "1")
    state = hass.states.get("sensor.h2d_hms_errors")
    assert state is not None
    assert state.attributes["errors"] == [
        {
            "code": "HMS_0C00_0300_0003_0001",
            "severity": "common",
            "module": "camera",
            "url": "https://e.bambulab.com/index.php?e=0C00030000030001&s=device_hms&lang=en",
        }
    ]
