"""The device page as a user sees it: no duplicates, clean migrations, a quiet logbook."""

from __future__ import annotations

from datetime import datetime, timedelta
import itertools
import math

from homeassistant.components.sensor import SensorDeviceClass
from homeassistant.config_entries import ConfigEntryState
from homeassistant.const import ATTR_DEVICE_CLASS, EVENT_STATE_CHANGED
from homeassistant.core import Event, HomeAssistant, callback
from homeassistant.helpers import entity_registry as er
import pytest

from custom_components.bambu_lan import fanout, sensor_descriptions
from custom_components.bambu_lan.const import DOMAIN
from tests.fixtures import reports as r
from tests.helpers import printer_entry
from tests.test_entities import (
    CANCELLED_BY_USER,
    NOW,
    enable_all_entities,  # noqa: F401 - a fixture
    now,  # noqa: F401 - a fixture
    setup_printer,
    state_of,
    wait_for_state,
)
from tests.virtual_printer.__main__ import cli_default_serial
from tests.virtual_printer.models import MODELS, spec_for
from tests.virtual_printer.printer import PrinterFactory

pytestmark = pytest.mark.usefixtures("trust_test_cas")

# Every entity an earlier version created that this one does not (or not for this model).
REMOVED: dict[str, list[tuple[str, str]]] = {
    "P1S": [
        ("sensor", "nozzle_target_temperature"),
        ("sensor", "bed_target_temperature"),
    ],
    "H2D": [
        ("sensor", "nozzle_target_temperature"),
        ("sensor", "bed_target_temperature"),
        ("sensor", "left_nozzle_target_temperature"),
        ("sensor", "right_nozzle_target_temperature"),
        ("sensor", "nozzle_temperature"),  # a duplicate of one of left/right
        ("sensor", "nozzle_type"),  # stale on the H2D: per nozzle now
        ("sensor", "nozzle_diameter"),
        ("number", "nozzle_target_temperature"),  # commanded only the active nozzle
    ],
}


@pytest.mark.parametrize("model", list(REMOVED))
async def test_removed_entities_leave_no_orphans(
    hass: HomeAssistant,
    entity_registry: er.EntityRegistry,
    virtual_printer: PrinterFactory,
    model: str,
) -> None:
    """Entities of an earlier version are removed from the registry when the entry sets up."""
    printer = virtual_printer(model, time_scale=0)
    entry = printer_entry(hass, printer, title=model)
    for domain, key in REMOVED[model]:
        entity_registry.async_get_or_create(
            domain, DOMAIN, f"{printer.serial}_{key}", config_entry=entry
        )
    await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.LOADED
    for domain, key in REMOVED[model]:
        unique_id = f"{printer.serial}_{key}"
        assert entity_registry.async_get_entity_id(domain, DOMAIN, unique_id) is None, key
    # what replaces them is there
    slug = model.lower()
    kept = ["number.{}_bed_target_temperature", "sensor.{}_bed_temperature"]
    if model == "H2D":
        kept += ["number.{}_left_nozzle_target_temperature", "sensor.{}_right_nozzle_type"]
    for entity_id in kept:
        assert hass.states.get(entity_id.format(slug)) is not None, entity_id


async def test_print_error_reads_none(hass: HomeAssistant, virtual_printer: PrinterFactory) -> None:
    """No error shows the translated "none"; an error shows its code and decoded module."""
    _, printer = await setup_printer(hass, virtual_printer, "A1MINI")
    error = "sensor.a1mini_print_error"
    assert state_of(hass, error) == sensor_descriptions.NO_ERROR == "none"
    state = hass.states.get(error)
    assert state is not None
    assert "module" not in state.attributes

    printer.set_print_error(CANCELLED_BY_USER)
    await wait_for_state(hass, error, "0300_400C")
    state = hass.states.get(error)
    assert state is not None
    assert state.attributes["module"] == "motion_controller"
    printer.set_print_error(0x07008010)  # an AMS error
    await wait_for_state(hass, error, "0700_8010")
    state = hass.states.get(error)
    assert state is not None
    assert state.attributes["module"] == "ams"


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.usefixtures("enable_all_entities")
async def test_every_numeric_sensor_has_a_state_class(
    hass: HomeAssistant,
    entity_registry: er.EntityRegistry,
    virtual_printer: PrinterFactory,
    model: str,
) -> None:
    """A numeric sensor without a state class writes a logbook entry per change and keeps no
    long-term statistics; only timestamps and enums are exempt."""
    entry, _ = await setup_printer(hass, virtual_printer, model)
    checked = []
    for reg in er.async_entries_for_config_entry(entity_registry, entry.entry_id):
        if reg.domain != "sensor":
            continue
        state = hass.states.get(reg.entity_id)
        assert state is not None, reg.entity_id
        if state.attributes.get(ATTR_DEVICE_CLASS) in (
            SensorDeviceClass.TIMESTAMP,
            SensorDeviceClass.ENUM,
        ):
            continue
        try:
            float(state.state)
        except ValueError:
            if "unit_of_measurement" not in state.attributes:
                continue  # text (job name, print error, certificate issuer ...)
        checked.append(reg.entity_id)
        assert state.attributes.get("state_class") is not None, reg.entity_id
    # layers, progress and remaining time are among them
    for key in ("current_layer", "progress", "remaining_time", "total_layers"):
        assert f"sensor.{model.lower()}_{key}" in checked


async def test_end_time_changes_at_most_once_a_minute(
    hass: HomeAssistant,
    virtual_printer: PrinterFactory,
    now: list[datetime],  # noqa: F811 - the fixture imported above
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """At real speed (a report a second, remaining time in whole minutes that wobbles as the
    printer re-estimates) the estimated end time changes at most once a minute."""
    # The reports below stand for one a second of simulated time but arrive back to back; at
    # real speed the fan-out's flood throttle would never hold one back, so lift it here.
    monkeypatch.setattr(fanout, "RATE", 1e9)
    monkeypatch.setattr(fanout, "BURST", 10**9)
    entry, _ = await setup_printer(hass, virtual_printer, "P1S")
    coordinator = entry.runtime_data
    end_time = "sensor.p1s_estimated_end_time"
    changes: list[datetime] = []

    @callback
    def record(event: Event) -> None:
        if event.data["entity_id"] == end_time:
            changes.append(now[0])

    hass.bus.async_listen(EVENT_STATE_CHANGED, record)
    job_seconds = 20 * 60
    coordinator.on_report(r.p1s_delta(1, gcode_state="RUNNING", mc_remaining_time=20))
    for second in range(1, job_seconds - 60):
        now[0] = NOW + timedelta(seconds=second)
        wobble = 40 if second // 7 % 2 else -40  # the estimate moves back and forth
        left = max(0, job_seconds - second + wobble)
        coordinator.on_report(
            r.p1s_delta(
                1 + second,
                mc_remaining_time=math.ceil(left / 60),
                nozzle_temper=220 + second % 3 / 32,
            )
        )
    await hass.async_block_till_done()
    assert len(changes) >= 10  # it does follow the job
    gaps = [later - earlier for earlier, later in itertools.pairwise(changes)]
    assert min(gaps) >= timedelta(minutes=1)
    shown = datetime.fromisoformat(state_of(hass, end_time))
    assert abs(shown - (NOW + timedelta(seconds=job_seconds))) <= timedelta(minutes=2)


@pytest.mark.parametrize("model", MODELS)
def test_develop_serial_follows_the_model(model: str) -> None:
    """scripts/develop's printer (the CLI without --serial) gets the model's serial prefix."""
    serial = cli_default_serial(model)
    assert serial.startswith(spec_for(model).serial_prefix)
    assert len(serial) == 15
    assert cli_default_serial("X1C") == "00M09A350100001"  # the README's example stays
