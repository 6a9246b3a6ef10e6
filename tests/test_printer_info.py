"""Diagnostic sensors: print type, SD card, IP address, and usage hours counted while printing
and restored across restarts."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from unittest.mock import patch

from homeassistant.core import HomeAssistant, State
from homeassistant.util import dt as dt_util
import pytest
from pytest_homeassistant_custom_component.common import (
    async_fire_time_changed,
    mock_restore_cache_with_extra_data,
)

from tests.test_entities import (
    enable_all_entities,  # noqa: F401 - a fixture
    setup_printer,
    state_of,
    wait_for_state,
)
from tests.virtual_printer.printer import PrinterFactory

pytestmark = pytest.mark.usefixtures("trust_test_cas")

USAGE = "sensor.p1s_total_usage"


@pytest.fixture
def clock() -> Iterator[list[float]]:
    """The monotonic clock the usage counter reads; tests move it by replacing item 0."""
    now = [1000.0]
    with patch("custom_components.bambu_lan.printer_info.monotonic", side_effect=lambda: now[0]):
        yield now


@pytest.mark.usefixtures("enable_all_entities")  # the sensor is disabled by default
async def test_info_sensors(hass: HomeAssistant, virtual_printer: PrinterFactory) -> None:
    """Print type follows the job, SD card the `home_flag` bits, IP address `net.info`."""
    _, printer = await setup_printer(hass, virtual_printer, "X1C")
    assert state_of(hass, "sensor.x1c_print_type") == "idle"
    assert state_of(hass, "sensor.x1c_sd_card") == "present"
    assert state_of(hass, "sensor.x1c_ip_address") == "127.0.0.1"

    printer.start_job("benchy")
    await wait_for_state(hass, "sensor.x1c_print_type", "local")
    printer.set_state({"home_flag": 0x200})
    await wait_for_state(hass, "sensor.x1c_sd_card", "abnormal")
    printer.set_state({"home_flag": 0, "print_type": "teleport"})
    await wait_for_state(hass, "sensor.x1c_sd_card", "absent")
    assert state_of(hass, "sensor.x1c_print_type") == "unknown"


async def test_usage_hours_count_while_printing(
    hass: HomeAssistant, virtual_printer: PrinterFactory, clock: list[float]
) -> None:
    """Restored total + time spent preparing or printing; paused and idle time do not count."""
    mock_restore_cache_with_extra_data(
        hass,
        [(State(USAGE, "10.5"), {"native_value": 10.5, "native_unit_of_measurement": "h"})],
    )
    _, printer = await setup_printer(hass, virtual_printer, "P1S")
    assert state_of(hass, USAGE) == "10.5"

    printer.set_state({"gcode_state": "RUNNING"})
    await wait_for_state(hass, "sensor.p1s_print_status", "running")
    clock[0] += 1800  # half an hour of printing without a report that changes the state
    async_fire_time_changed(hass, dt_util.utcnow() + timedelta(minutes=1))
    await wait_for_state(hass, USAGE, "11.0")

    printer.set_state({"gcode_state": "PAUSE"})
    clock[0] += 900
    await wait_for_state(hass, USAGE, "11.25")
    clock[0] += 3600  # paused for an hour: not counted
    printer.set_state({"gcode_state": "RUNNING"})
    await wait_for_state(hass, "sensor.p1s_print_status", "running")
    clock[0] += 360
    printer.set_state({"gcode_state": "FINISH"})
    await wait_for_state(hass, USAGE, "11.35")
    clock[0] += 7200
    async_fire_time_changed(hass, dt_util.utcnow() + timedelta(minutes=5))
    printer.set_state({"gcode_state": "IDLE"})
    await wait_for_state(hass, "sensor.p1s_print_status", "idle")
    assert state_of(hass, USAGE) == "11.35"
