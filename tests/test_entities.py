"""Entities against the virtual printer: every model's entities, their states and availability.

The printer is real (mosquitto over the printer's TLS chain plus the firmware process) with its
simulation clock stopped (time_scale=0), so every value comes from what a test sets. The snapshots
hold each entity's registry settings, state and attributes after the first full report and after
a sequence of reports (deltas on P1S, A1 mini and H2D; full reports on the X1C).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
import json
import logging
from pathlib import Path
from typing import Any
from unittest.mock import PropertyMock, patch

from homeassistant.config_entries import ConfigEntryState
from homeassistant.const import (
    EVENT_STATE_CHANGED,
    MATCH_ALL,
    STATE_OFF,
    STATE_ON,
    STATE_UNAVAILABLE,
    STATE_UNKNOWN,
)
from homeassistant.core import Event, HomeAssistant, callback
from homeassistant.helpers import device_registry as dr, entity_registry as er
from homeassistant.helpers.entity import EntityDescription
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry
from pytest_homeassistant_custom_component.syrupy import HomeAssistantSnapshotExtension
from syrupy.assertion import SnapshotAssertion

import custom_components.bambu_lan
from custom_components.bambu_lan import (
    ams_button,
    ams_sensor,
    binary_sensor,
    button,
    camera,
    certificate,
    entity,
    event,
    fan,
    image,
    job_sensor,
    light,
    number,
    printer_info,
    select,
    sensor_descriptions,
    switch,
    update,
)
from custom_components.bambu_lan.const import DOMAIN
from tests.helpers import async_setup_printer, wait_until as poll_until
from tests.virtual_printer.models import pack_temp, spec_for, version_modules
from tests.virtual_printer.printer import PrinterFactory, VirtualPrinter

MODELS = ("X1C", "P1S", "A1MINI", "H2D")
NOW = datetime(2026, 5, 1, 12, 0, 10, tzinfo=UTC)
HMS_ATTR = 0x03000200
HMS_CODE = 0x00010001  # HMS_0300_0200_0001_0001
CANCELLED_BY_USER = 0x0300400C  # 0300_400C
WAIT_TIMEOUT = 10.0
FILAMENT_KEYS = frozenset(
    {
        "active_tray",
        "external_spool",
        "external_spool_left",
        "external_spool_right",
        "left_nozzle_filament",
        "right_nozzle_filament",
        "unload_filament",
        "left_nozzle_unload_filament",
        "right_nozzle_unload_filament",
    }
)


# --- helpers (test_controls.py uses them too) ------------------------------------------------


async def setup_printer(
    hass: HomeAssistant, virtual_printer: PrinterFactory, model: str, **options: Any
) -> tuple[MockConfigEntry, VirtualPrinter]:
    """Start a virtual printer with a stopped clock and set up a config entry for it."""
    printer = virtual_printer(model, time_scale=0, **options)
    entry = await async_setup_printer(hass, printer, title=model)
    assert entry.state is ConfigEntryState.LOADED
    return entry, printer


async def wait_for_state(hass: HomeAssistant, entity_id: str, expected: str) -> None:
    """Wait until the entity shows `expected` (reports travel through the real broker)."""
    await wait_until(
        hass,
        lambda: (state := hass.states.get(entity_id)) is not None and state.state == expected,
        f"{entity_id} == {expected!r}",
    )


async def wait_until(hass: HomeAssistant, check: Callable[[], bool], what: str) -> None:
    """Wait until `check` holds, re-checking after every event on the bus (state changes,
    registry updates)."""
    done = asyncio.Event()

    @callback
    def recheck(_event: Event) -> None:
        if check():
            done.set()

    unsubscribe = hass.bus.async_listen(MATCH_ALL, recheck)
    try:
        if not check():
            async with asyncio.timeout(WAIT_TIMEOUT):
                await done.wait()
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}") from None
    finally:
        unsubscribe()


def state_of(hass: HomeAssistant, entity_id: str) -> str:
    """The entity's state (it must exist)."""
    state = hass.states.get(entity_id)
    assert state is not None, f"{entity_id} does not exist"
    return state.state


class SnapshotExtension(HomeAssistantSnapshotExtension):
    """The project keeps its snapshots in tests/snapshots/."""

    snapshot_dirname = "snapshots"


@pytest.fixture
def snapshot(snapshot: SnapshotAssertion) -> SnapshotAssertion:
    """Home Assistant's snapshot serializer, stored in tests/snapshots/."""
    return snapshot.use_extension(SnapshotExtension)


@pytest.fixture
def now() -> Iterator[list[datetime]]:
    """Pin the clock the end-time sensor reads; tests move it by replacing item 0.

    freezegun cannot be used here: it also stops the event loop's clock, and the real socket
    traffic these tests depend on never gets scheduled again.
    """
    clock = [NOW]
    with (
        patch("custom_components.bambu_lan.sensor.utcnow", side_effect=lambda: clock[0]),
        # The usage counter's clock stands still too: snapshots must not depend on test speed.
        patch("custom_components.bambu_lan.printer_info.monotonic", return_value=0.0),
    ):
        yield clock


@pytest.fixture
def enable_all_entities() -> Iterator[None]:
    """Create disabled-by-default entities enabled, so the snapshots hold their states."""
    with patch(
        "homeassistant.helpers.entity.Entity.entity_registry_enabled_default",
        new_callable=PropertyMock,
        return_value=True,
    ):
        yield


# --- snapshots -------------------------------------------------------------------------------


def entities_snapshot(
    hass: HomeAssistant, entity_registry: er.EntityRegistry, entry: MockConfigEntry
) -> dict[str, Any]:
    """Registry settings, state and attributes of this helper's entities (certificate health
    has its own tests, and its values change with the generated certificates; AMS and
    filament entities are in test_ams.py's snapshots)."""
    result: dict[str, Any] = {}
    entries = er.async_entries_for_config_entry(entity_registry, entry.entry_id)
    for reg in sorted(entries, key=lambda reg: reg.entity_id):
        if (reg.translation_key or "").startswith(("certificate", "ams_")) or (
            reg.translation_key in FILAMENT_KEYS
        ):
            continue
        state = hass.states.get(reg.entity_id)
        shown = state.state if state else None
        if reg.domain == "event" and shown not in (None, STATE_UNKNOWN, STATE_UNAVAILABLE):
            shown = "<fired>"  # an event's state is the wall-clock time it fired
        attributes = dict(state.attributes) if state else None
        if attributes and "access_token" in attributes:
            # An image's token (also in its picture URL) changes with every setup.
            attributes["access_token"] = "<random>"
            attributes["entity_picture"] = str(attributes["entity_picture"]).split("?")[0]
        result[reg.entity_id] = {
            "unique_id": reg.unique_id,
            "translation_key": reg.translation_key,
            "device_class": reg.original_device_class,
            "entity_category": reg.entity_category,
            "disabled_by": reg.disabled_by,
            "state": shown,
            "attributes": attributes,
        }
    return result


def job_steps(model: str) -> list[tuple[dict[str, Any], str, str]]:
    """A print as a sequence of reports: (raw `print` patch, sentinel entity, its state)."""
    slug = model.lower()
    temperatures: dict[str, Any] = {
        "nozzle_temper": 219.6,
        "nozzle_target_temper": 220.0,
        "bed_temper": 59.8,
        "bed_target_temper": 60.0,
    }
    if spec_for(model).chamber_sensor:
        temperatures["chamber_temper"] = 31.5
    if spec_for(model).dual_nozzle:
        temperatures = {
            "device": {
                "extruder": {
                    "info": [
                        {"id": 0, "temp": pack_temp(218, 220)},
                        {"id": 1, "temp": pack_temp(151, 160)},
                    ]
                },
                "bed": {"info": {"temp": pack_temp(60, 60)}},
                "ctc": {"info": {"temp": pack_temp(32, 0)}},
            }
        }
    return [
        (
            {
                "gcode_state": "RUNNING",
                "stg_cur": 0,
                "subtask_name": "benchy",
                "gcode_file": "benchy.gcode.3mf",
                "total_layer_num": 50,
            },
            f"sensor.{slug}_print_status",
            "running",
        ),
        (
            {"mc_percent": 42, "mc_remaining_time": 17, "layer_num": 21},
            f"sensor.{slug}_progress",
            "42",
        ),
        (temperatures, f"number.{slug}_bed_target_temperature", "60.0"),
        (
            {
                "cooling_fan_speed": "15",
                "big_fan1_speed": "10",
                "big_fan2_speed": "6",
                "spd_lvl": 3,
                "wifi_signal": "-61dBm",
                "upgrade_state": {"new_version_state": 1},
                "lights_report": [{"node": node, "mode": "on"} for node in spec_for(model).lights],
                "hms": [{"attr": HMS_ATTR, "code": HMS_CODE}],
                "print_error": CANCELLED_BY_USER,
            },
            f"sensor.{slug}_print_error",
            "0300_400C",
        ),
    ]


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.usefixtures("trust_test_cas", "now", "enable_all_entities")
async def test_entities(
    hass: HomeAssistant,
    entity_registry: er.EntityRegistry,
    virtual_printer: PrinterFactory,
    snapshot: SnapshotAssertion,
    model: str,
) -> None:
    """Each model's entities after its full report, then after a print's reports."""
    entry, printer = await setup_printer(hass, virtual_printer, model)
    assert entities_snapshot(hass, entity_registry, entry) == snapshot(name="full_report")

    for patch_, entity_id, expected in job_steps(model):
        printer.set_state(patch_)
        await wait_for_state(hass, entity_id, expected)
    if spec_for(model).door:
        printer.set_door(True)
        await wait_for_state(hass, f"binary_sensor.{model.lower()}_door", STATE_ON)
    assert entities_snapshot(hass, entity_registry, entry) == snapshot(name="printing")


@pytest.mark.parametrize(
    ("model", "chamber", "door", "dual", "side_fans"),
    [
        ("X1C", True, True, False, True),
        ("P1S", False, False, False, True),
        ("A1MINI", False, False, False, False),
        ("H2D", True, True, True, True),
    ],
)
@pytest.mark.usefixtures("trust_test_cas")
async def test_model_gating(
    hass: HomeAssistant,
    entity_registry: er.EntityRegistry,
    virtual_printer: PrinterFactory,
    model: str,
    chamber: bool,
    door: bool,
    dual: bool,
    side_fans: bool,
) -> None:
    """Entities exist only where the model has the hardware (spelled out beside the snapshot).
    Sensors that repeat a control or the configuration are disabled by default."""
    await setup_printer(hass, virtual_printer, model)
    slug = model.lower()
    exists = {
        f"sensor.{slug}_chamber_temperature": chamber,
        f"binary_sensor.{slug}_door": door,
        f"sensor.{slug}_left_nozzle_temperature": dual,
        f"number.{slug}_right_nozzle_target_temperature": dual,
        f"sensor.{slug}_active_nozzle": dual,
        f"sensor.{slug}_nozzle_temperature": not dual,  # no single-nozzle duplicates
        f"number.{slug}_nozzle_target_temperature": not dual,
        f"sensor.{slug}_nozzle_target_temperature": False,  # the number shows the target
        f"light.{slug}_chamber_light": True,
    }
    assert {entity_id: hass.states.get(entity_id) is not None for entity_id in exists} == exists
    disabled = {
        f"sensor.{slug}_wi_fi_signal": True,
        f"sensor.{slug}_ip_address": True,
        f"sensor.{slug}_speed_profile": True,  # the select shows it
        f"sensor.{slug}_part_cooling_fan": True,  # the fan entity shows it
        f"sensor.{slug}_auxiliary_fan": side_fans,  # enabled where there is no fan entity
        f"sensor.{slug}_chamber_fan": side_fans,
        f"sensor.{slug}_bed_temperature": False,
    }
    registered = {entity_id: entity_registry.async_get(entity_id) for entity_id in disabled}
    assert {
        entity_id: entry is not None and entry.disabled_by is er.RegistryEntryDisabler.INTEGRATION
        for entity_id, entry in registered.items()
    } == disabled
    assert all(entry is not None for entry in registered.values())
    for name in ("auxiliary_fan", "chamber_fan"):
        assert (hass.states.get(f"fan.{slug}_{name}") is not None) == side_fans
        assert (hass.states.get(f"sensor.{slug}_{name}") is not None) == (not side_fans)


@pytest.mark.usefixtures("trust_test_cas")
async def test_end_time_moves_only_with_remaining_time(
    hass: HomeAssistant, virtual_printer: PrinterFactory, now: list[datetime]
) -> None:
    """The end time is now + remaining minutes, on a whole minute, recomputed only when the
    printer's remaining minutes change (not on every report), unknown while paused, and kept after
    the job."""
    _, printer = await setup_printer(hass, virtual_printer, "P1S")
    end_time = "sensor.p1s_estimated_end_time"
    assert state_of(hass, end_time) == STATE_UNKNOWN  # no job seen yet

    printer.set_state({"gcode_state": "RUNNING", "mc_remaining_time": 30, "mc_percent": 1})
    await wait_for_state(hass, end_time, "2026-05-01T12:30:00+00:00")

    now[0] = NOW + timedelta(seconds=45)  # 12:00:55 (rounds to 12:01)
    printer.set_state({"mc_percent": 2, "layer_num": 2})
    await wait_for_state(hass, "sensor.p1s_current_layer", "2")
    assert state_of(hass, end_time) == "2026-05-01T12:30:00+00:00"

    printer.set_state({"mc_remaining_time": 29})
    await wait_for_state(hass, "sensor.p1s_remaining_time", "29")
    assert state_of(hass, end_time) == "2026-05-01T12:30:00+00:00"  # 12:01 + 29 min
    now[0] = NOW + timedelta(minutes=3)
    printer.set_state({"mc_remaining_time": 25})
    await wait_for_state(hass, end_time, "2026-05-01T12:28:00+00:00")

    # Paused: every paused minute moves the end, so there is no estimate until it resumes.
    printer.set_state({"gcode_state": "PAUSE"})
    await wait_for_state(hass, end_time, STATE_UNKNOWN)
    now[0] = NOW + timedelta(minutes=10)
    printer.set_state({"gcode_state": "RUNNING"})
    await wait_for_state(hass, end_time, "2026-05-01T12:35:00+00:00")  # 12:10 + 25 min

    now[0] = NOW + timedelta(minutes=30)
    printer.set_state({"gcode_state": "FINISH", "mc_remaining_time": 0, "mc_percent": 100})
    await wait_for_state(hass, "sensor.p1s_print_status", "finish")
    assert state_of(hass, end_time) == "2026-05-01T12:35:00+00:00"


@pytest.mark.usefixtures("trust_test_cas", "enable_all_entities")
async def test_unknown_values_are_unknown_and_logged_once(
    hass: HomeAssistant, virtual_printer: PrinterFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """Values newer firmware may send show as unknown (never an invalid enum state)."""
    _, printer = await setup_printer(hass, virtual_printer, "X1C")
    caplog.set_level(logging.INFO, logger="custom_components.bambu_lan.sensor")
    for _ in range(2):
        printer.set_state({"gcode_state": "RUNNING", "stg_cur": 0})
        await wait_for_state(hass, "sensor.x1c_current_stage", "printing")
        printer.fault("malformed", kind="unknown_enum")  # gcode_state WARP_DRIVE, stg_cur 999 ...
        await wait_for_state(hass, "sensor.x1c_current_stage", STATE_UNKNOWN)
    assert state_of(hass, "sensor.x1c_print_status") == STATE_UNKNOWN
    assert state_of(hass, "sensor.x1c_speed_profile") == STATE_UNKNOWN
    logged = [record for record in caplog.records if "'stage_999'" in record.getMessage()]
    assert len(logged) == 1
    logged = [record for record in caplog.records if "'warp_drive'" in record.getMessage()]
    assert len(logged) == 1


@pytest.mark.usefixtures("trust_test_cas")
async def test_forged_numbers_show_as_unknown(
    hass: HomeAssistant,
    virtual_printer: PrinterFactory,
    now: list[datetime],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A remaining time of 1e12 minutes while printing: the end time is unknown, nothing is
    logged at ERROR, and a sane value afterwards is shown again."""
    _, printer = await setup_printer(hass, virtual_printer, "P1S")
    end_time = "sensor.p1s_estimated_end_time"
    printer.set_state({"gcode_state": "RUNNING", "mc_remaining_time": 30, "mc_percent": 1})
    await wait_for_state(hass, end_time, "2026-05-01T12:30:00+00:00")

    printer.set_state({"mc_remaining_time": 1e12, "layer_num": -5, "bed_temper": 1e300})
    await wait_for_state(hass, end_time, STATE_UNKNOWN)
    assert state_of(hass, "sensor.p1s_remaining_time") == STATE_UNKNOWN
    assert state_of(hass, "sensor.p1s_current_layer") == STATE_UNKNOWN
    assert state_of(hass, "sensor.p1s_bed_temperature") == STATE_UNKNOWN
    printer.set_state({"mc_remaining_time": 10})
    await wait_for_state(hass, end_time, "2026-05-01T12:10:00+00:00")
    assert not [record for record in caplog.records if record.levelno >= logging.ERROR]


@pytest.mark.usefixtures("trust_test_cas")
async def test_long_strings_are_cut_to_the_state_limit(
    hass: HomeAssistant, virtual_printer: PrinterFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """A 100 000-character job name is shown cut to 255 characters; attributes are bounded."""
    _, printer = await setup_printer(hass, virtual_printer, "X1C")
    printer.set_state({"subtask_name": "J" * 100_000})
    await poll_until(lambda: state_of(hass, "sensor.x1c_job_name").startswith("J"))
    shown = state_of(hass, "sensor.x1c_job_name")
    assert len(shown) == 255
    assert shown.endswith("…")
    assert not [record for record in caplog.records if record.levelno >= logging.ERROR]

    for attr in range(100):  # more HMS entries than an attribute list keeps
        printer.raise_hms(0x07000300 + attr, 0x00020002)
    await wait_for_state(hass, "sensor.x1c_hms_errors", "100")
    state = hass.states.get("sensor.x1c_hms_errors")
    assert state is not None
    assert len(state.attributes["codes"]) == entity.MAX_ATTRIBUTE_ITEMS


def test_attribute_bounds() -> None:
    """Every string at any depth is cut; lists keep their first items; other values stay."""
    bounded = entity.bounded_attributes(
        {"text": "t" * 300, "nested": {"list": ["u" * 300] * 100, "n": 1.5}, "flag": True}
    )
    assert bounded["text"] == "t" * 254 + "…"
    assert bounded["nested"]["list"] == ["u" * 254 + "…"] * entity.MAX_ATTRIBUTE_ITEMS
    assert bounded["nested"]["n"] == 1.5
    assert bounded["flag"] is True


@pytest.mark.usefixtures("trust_test_cas")
async def test_hms_codes_attribute(hass: HomeAssistant, virtual_printer: PrinterFactory) -> None:
    """The HMS sensor counts the active codes and lists them; problem follows HMS or error."""
    _, printer = await setup_printer(hass, virtual_printer, "A1MINI")
    printer.raise_hms(HMS_ATTR, HMS_CODE)
    printer.raise_hms(0x07000300, 0x00020002)
    await wait_for_state(hass, "sensor.a1mini_hms_errors", "2")
    state = hass.states.get("sensor.a1mini_hms_errors")
    assert state is not None
    assert state.attributes["codes"] == ["HMS_0300_0200_0001_0001", "HMS_0700_0300_0002_0002"]
    assert state_of(hass, "binary_sensor.a1mini_problem") == STATE_ON

    printer.clear_hms()
    await wait_for_state(hass, "binary_sensor.a1mini_problem", STATE_OFF)
    printer.set_print_error(CANCELLED_BY_USER)
    await wait_for_state(hass, "binary_sensor.a1mini_problem", STATE_ON)
    assert state_of(hass, "sensor.a1mini_print_error") == "0300_400C"


@pytest.mark.usefixtures("trust_test_cas")
async def test_availability_follows_the_connection(
    hass: HomeAssistant, virtual_printer: PrinterFactory
) -> None:
    """Entities go unavailable while the printer is away; `connected` stays available (off)."""
    entry, printer = await setup_printer(hass, virtual_printer, "X1C")
    assert state_of(hass, "binary_sensor.x1c_connected") == STATE_ON
    assert state_of(hass, "sensor.x1c_nozzle_temperature") == "25.0"
    # The last report before the drop changes nothing (an ack): entities must still follow
    # the disconnect, not skip it as "nothing I read changed".
    stats = entry.runtime_data.session.stats
    seen = stats.messages
    printer.publish_raw(b'{"print": {"command": "gcode_line", "sequence_id": "1"}}')
    await poll_until(lambda: stats.messages > seen)

    printer.stop_broker()
    await wait_for_state(hass, "sensor.x1c_nozzle_temperature", STATE_UNAVAILABLE)
    assert state_of(hass, "binary_sensor.x1c_connected") == STATE_OFF
    assert state_of(hass, "light.x1c_chamber_light") == STATE_UNAVAILABLE
    assert state_of(hass, "select.x1c_speed_profile") == STATE_UNAVAILABLE

    printer.start_broker()
    await wait_for_state(hass, "binary_sensor.x1c_connected", STATE_ON)
    await wait_for_state(hass, "sensor.x1c_nozzle_temperature", "25.0")
    assert state_of(hass, "light.x1c_chamber_light") == STATE_OFF


@pytest.mark.usefixtures("trust_test_cas")
async def test_unchanged_reports_write_nothing(
    hass: HomeAssistant, virtual_printer: PrinterFactory
) -> None:
    """A report that changes one value writes that entity's state and no other."""
    _, printer = await setup_printer(hass, virtual_printer, "X1C")
    written: list[str] = []

    @callback
    def record(event: Event) -> None:
        written.append(event.data["entity_id"])

    hass.bus.async_listen(EVENT_STATE_CHANGED, record)
    printer.set_state({"bed_temper": 40.0})
    await wait_for_state(hass, "sensor.x1c_bed_temperature", "40.0")
    printer.push()  # the same state again, as a full report
    printer.set_state({"layer_num": 3})
    await wait_for_state(hass, "sensor.x1c_current_layer", "3")
    assert written == ["sensor.x1c_bed_temperature", "sensor.x1c_current_layer"]


@pytest.mark.usefixtures("trust_test_cas")
async def test_device_follows_firmware(
    hass: HomeAssistant, device_registry: dr.DeviceRegistry, virtual_printer: PrinterFactory
) -> None:
    """One device per printer, from get_version; a new firmware version updates it."""
    entry, printer = await setup_printer(hass, virtual_printer, "P1S")
    device = device_registry.async_get_device_by_identifier(
        (DOMAIN, printer.serial), entry.entry_id
    )
    assert device is not None
    assert (device.manufacturer, device.model, device.serial_number) == (
        "Bambu Lab",
        "Bambu Lab P1S",
        printer.serial,
    )
    assert (device.sw_version, device.hw_version) == ("01.08.01.00", "AP04")

    modules = version_modules(spec_for("P1S"), printer.serial)
    modules[0]["sw_ver"] = "01.09.00.00"
    reply = {"info": {"command": "get_version", "sequence_id": "0", "module": modules}}
    printer.publish_raw(json.dumps(reply).encode())

    def updated() -> bool:
        device = device_registry.async_get_device_by_identifier(
            (DOMAIN, printer.serial), entry.entry_id
        )
        return device is not None and device.sw_version == "01.09.00.00"

    await wait_until(hass, updated, "the device's firmware version to change")


def test_translations_and_icons_cover_every_entity() -> None:
    """Every entity has a translated name, every enum option a translated state, and every icon
    belongs to an entity (custom integrations get no hassfest check of this at runtime)."""
    root = Path(custom_components.bambu_lan.__file__).parent
    strings = json.loads((root / "translations" / "en.json").read_text())["entity"]
    icons = json.loads((root / "icons.json").read_text())["entity"]
    descriptions: dict[str, list[EntityDescription]] = {
        "sensor": [
            *sensor_descriptions.SENSORS,
            sensor_descriptions.END_TIME,
            *certificate.CERTIFICATE_SENSORS,
            *printer_info.INFO_SENSORS,
            printer_info.USAGE_HOURS,
            *job_sensor.JOB_SENSORS,
            job_sensor.COST,
            *ams_sensor.DESCRIPTIONS,
        ],
        "image": [image.PREVIEW, image.LAST_PRINT],
        "binary_sensor": [*binary_sensor.BINARY_SENSORS, binary_sensor.CONNECTED],
        "button": [*button.BUTTONS, button.REFRESH, *ams_button.DESCRIPTIONS],
        "event": list(event.EVENTS),
        "light": [light.DESCRIPTION, light.HEATBED_DESCRIPTION],
        "fan": list(fan.FANS),
        "switch": list(switch.SWITCHES),
        "number": list(number.NUMBERS),
        "select": [select.SPEED_PROFILE, select.AIRDUCT_MODE],
        "update": [update.FIRMWARE],
        "camera": [camera.CAMERA_DESCRIPTION],
    }
    for platform, platform_descriptions in descriptions.items():
        keys = {description.translation_key for description in platform_descriptions}
        assert set(icons.get(platform, {})) <= keys, platform
        for description in platform_descriptions:
            translated = strings[platform][description.translation_key]
            assert translated["name"], description.key
            options = getattr(description, "options", None) or []
            assert set(options) <= set(translated.get("state", {})), description.key
            event_types = getattr(description, "event_types", None) or []
            event_states = translated.get("state_attributes", {}).get("event_type", {})
            assert set(event_types) <= set(event_states.get("state", {})), description.key
