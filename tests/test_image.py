"""The "Last print" finish photo: one camera frame when a print ends."""

from __future__ import annotations

import asyncio

from homeassistant.components.image import async_get_image
from homeassistant.const import STATE_UNKNOWN
from homeassistant.core import HomeAssistant
import pytest

from tests.helpers import async_setup_printer, wait_until
from tests.virtual_printer.camera_server import make_frames
from tests.virtual_printer.printer import PrinterFactory

pytestmark = pytest.mark.usefixtures("trust_test_cas")


def image_entity(hass: HomeAssistant, entity_id: str) -> object:
    component = hass.data["entity_components"]["image"]
    return component.get_entity(entity_id)


async def test_one_photo_per_print(
    hass: HomeAssistant, virtual_printer: PrinterFactory, fast_reconnect: None
) -> None:
    printer = virtual_printer("P1S", time_scale=0, camera={"fps": 20})
    await async_setup_printer(hass, printer, title="P1S")
    entity_id = "image.p1s_last_print"
    state = hass.states.get(entity_id)
    assert state is not None
    assert state.state == STATE_UNKNOWN  # no print has ended yet
    entity = image_entity(hass, entity_id)

    printer.set_state({"gcode_state": "RUNNING", "subtask_name": "gear"})
    await wait_until(lambda: hass.states.get("sensor.p1s_print_status").state == "running")
    printer.set_state({"gcode_state": "FINISH"})
    await wait_until(lambda: hass.states.get(entity_id).state != STATE_UNKNOWN)
    state = hass.states.get(entity_id)
    assert state.attributes["result"] == "finished"
    assert state.attributes["job_name"] == "gear"
    image = await async_get_image(hass, entity_id)
    assert image.content in make_frames()
    assert image.content_type == "image/jpeg"

    # The same end reported again (a push, a reconnect) takes no second photo.
    printer.push()
    printer.restart_broker()
    await wait_until(lambda: hass.states.get("binary_sensor.p1s_connected").state == "on")
    printer.push()
    await asyncio.sleep(1)
    assert entity.captures == 1  # type: ignore[attr-defined]

    # The next print's end does.
    printer.set_state({"gcode_state": "RUNNING", "subtask_name": "bracket"})
    await wait_until(lambda: hass.states.get("sensor.p1s_print_status").state == "running")
    printer.set_state({"gcode_state": "FAILED", "print_error": 0x0300400C})
    await wait_until(lambda: entity.captures == 2)  # type: ignore[attr-defined]
    assert hass.states.get(entity_id).attributes["job_name"] == "bracket"


async def test_no_photo_without_liveview(
    hass: HomeAssistant, virtual_printer: PrinterFactory, caplog: pytest.LogCaptureFixture
) -> None:
    printer = virtual_printer("X1C", time_scale=0, camera=True)
    await async_setup_printer(hass, printer, title="X1C")
    printer.set_state({"ipcam": {"rtsp_url": "disable"}})
    printer.set_state({"gcode_state": "RUNNING", "subtask_name": "gear"})
    await wait_until(lambda: hass.states.get("sensor.x1c_print_status").state == "running")
    printer.set_state({"gcode_state": "FINISH"})
    await wait_until(lambda: "No finish photo" in caplog.text)
    assert hass.states.get("image.x1c_last_print").state == STATE_UNKNOWN
    assert printer.access_code not in caplog.text
