"""The current job's 3MF: fetched over FTPS when a print starts, shown as sensors and an image."""

from __future__ import annotations

from homeassistant.components.image import async_get_image
from homeassistant.const import STATE_UNKNOWN
from homeassistant.core import HomeAssistant
import pytest

from custom_components.bambu_lan.job import candidate_paths
from tests.helpers import async_setup_printer, wait_until
from tests.virtual_printer.printer import PrinterFactory
from tests.virtual_printer.sample3mf import png, sample_3mf

pytestmark = pytest.mark.usefixtures("trust_test_cas")


def test_candidate_paths() -> None:
    """The reported file first, then the job name at the root and in /cache."""
    assert candidate_paths("benchy", "benchy.gcode.3mf") == [
        "/benchy.gcode.3mf",
        "/benchy.3mf",
        "/cache/benchy.gcode.3mf",
        "/cache/benchy.3mf",
    ]
    assert candidate_paths("cube.3mf", "/data/Metadata/plate_1.gcode")[0] == "/cube.gcode.3mf"
    assert candidate_paths(None, None) == []


@pytest.mark.parametrize(("model", "where"), [("P1S", "/{}.gcode.3mf"), ("X1C", "/cache/{}.3mf")])
async def test_job_details_from_the_3mf(
    hass: HomeAssistant, virtual_printer: PrinterFactory, model: str, where: str
) -> None:
    """A print starts: weight, length, bed type, objects and the preview appear."""
    printer = virtual_printer(model, ftps=True)
    thumbnail = png(3, 3)
    printer.add_file(where.format("benchy"), sample_3mf(thumbnail=thumbnail))
    await async_setup_printer(hass, printer, ftps_port=printer.ftps_port)
    prefix = model.lower()
    weight = f"sensor.{prefix}_print_weight"
    assert hass.states.get(weight).state == STATE_UNKNOWN

    printer.start_job("benchy")
    await wait_until(lambda: hass.states.get(weight).state != STATE_UNKNOWN)
    assert float(hass.states.get(weight).state) == pytest.approx(16.9)
    assert float(hass.states.get(f"sensor.{prefix}_filament_length").state) == pytest.approx(5.62)
    assert hass.states.get(f"sensor.{prefix}_bed_type").state == "textured_plate"
    objects = hass.states.get(f"sensor.{prefix}_objects")
    assert objects.state == "2"
    assert objects.attributes["objects"] == [
        {"id": 512, "name": "Cube"},
        {"id": 1024, "name": "Benchy"},
    ]
    image = await async_get_image(hass, f"image.{prefix}_plate_preview")
    assert image.content == thumbnail
    assert image.content_type == "image/png"
    # Nothing was written on the Home Assistant side, and the file stays on the printer.
    assert (printer.sdcard / where.format("benchy").lstrip("/")).exists()


async def test_missing_or_broken_3mf(hass: HomeAssistant, virtual_printer: PrinterFactory) -> None:
    """No file, then a broken one: the sensors stay unknown, and the next job still works."""
    printer = virtual_printer("P1S", ftps=True)
    entry = await async_setup_printer(hass, printer, ftps_port=printer.ftps_port)
    coordinator = entry.runtime_data
    printer.start_job("ghost")
    await wait_until(lambda: coordinator.job.key is not None and coordinator.job.error)
    assert coordinator.job.details is None

    printer.set_state({"gcode_state": "FINISH"})
    printer.add_file("/broken.gcode.3mf", b"PK\x03\x04 not really")
    printer.start_job("broken")
    await wait_until(lambda: coordinator.job.key == ("broken", "broken.gcode.3mf"))
    await wait_until(lambda: coordinator.job.error and "malformed" in coordinator.job.error)
    assert hass.states.get("sensor.p1s_print_weight").state == STATE_UNKNOWN

    printer.set_state({"gcode_state": "FINISH"})
    printer.add_file("/good.gcode.3mf", sample_3mf())
    printer.start_job("good")
    await wait_until(lambda: hass.states.get("sensor.p1s_print_weight").state != STATE_UNKNOWN)
    assert coordinator.job.path == "/good.gcode.3mf"
