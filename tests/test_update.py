"""The firmware update entity: versions from the printer's own report, release notes, no
install, and the retired firmware-available binary sensor removed from the registry."""

from __future__ import annotations

from homeassistant.components.update import UpdateEntityFeature
from homeassistant.config_entries import ConfigEntryState
from homeassistant.const import ATTR_SUPPORTED_FEATURES, STATE_OFF, STATE_ON, STATE_UNKNOWN
from homeassistant.core import HomeAssistant
from homeassistant.helpers import entity_registry as er
import pytest

from custom_components.bambu_lan.const import DOMAIN
from custom_components.bambu_lan.printer.state import PrinterState
from custom_components.bambu_lan.update import latest_version
from tests.helpers import printer_entry
from tests.test_entities import setup_printer, state_of, wait_for_state
from tests.virtual_printer.printer import PrinterFactory

pytestmark = pytest.mark.usefixtures("trust_test_cas")


async def test_p1_offers_an_update(hass: HomeAssistant, virtual_printer: PrinterFactory) -> None:
    """P1/A1 list the offered version in `new_ver_list`; the entity is on until installed."""
    _, printer = await setup_printer(hass, virtual_printer, "P1S")
    update = "update.p1s_firmware"
    assert state_of(hass, update) == STATE_OFF
    state = hass.states.get(update)
    assert state is not None
    assert state.attributes["installed_version"] == "01.08.01.00"
    assert state.attributes["latest_version"] == "01.08.01.00"
    assert state.attributes["release_url"] == (
        "https://wiki.bambulab.com/en/p1/manual/p1p-firmware-release-history"
    )
    assert state.attributes[ATTR_SUPPORTED_FEATURES] == UpdateEntityFeature(0)

    printer.set_state(
        {
            "upgrade_state": {
                "new_version_state": 1,
                "new_ver_list": [
                    {"name": "ams/0", "cur_ver": "00.00.06.49", "new_ver": "00.00.06.60"},
                    {"name": "ota", "cur_ver": "01.08.01.00", "new_ver": "01.09.00.00"},
                ],
            }
        }
    )
    await wait_for_state(hass, update, STATE_ON)
    state = hass.states.get(update)
    assert state is not None
    assert state.attributes["latest_version"] == "01.09.00.00"


async def test_x1_offers_an_update(hass: HomeAssistant, virtual_printer: PrinterFactory) -> None:
    """The X1 family reports `ota_new_version_number`."""
    _, printer = await setup_printer(hass, virtual_printer, "X1C")
    printer.set_state(
        {"upgrade_state": {"new_version_state": 1, "ota_new_version_number": "01.10.00.00"}}
    )
    await wait_for_state(hass, "update.x1c_firmware", STATE_ON)
    state = hass.states.get("update.x1c_firmware")
    assert state is not None
    assert state.attributes["latest_version"] == "01.10.00.00"
    assert "X1-X1C-firmware-release-history" in state.attributes["release_url"]


def test_latest_version_rules() -> None:
    """Latest: the installed version when none is offered; unknown when the printer is silent."""
    state = PrinterState("01P09A000000001")
    assert latest_version(state) is None

    def report(upgrade: dict[str, object]) -> None:
        state.apply({"print": {"command": "push_status", "msg": 1, "upgrade_state": upgrade}})

    report({"new_version_state": 1})
    assert latest_version(state) is None  # offered, but which version is not said
    report({"ota_new_version_number": "01.02.03.04"})
    assert latest_version(state) == "01.02.03.04"
    report({"new_version_state": 2})
    assert latest_version(state) == state.firmware


async def test_retired_binary_sensor_is_removed(
    hass: HomeAssistant, entity_registry: er.EntityRegistry, virtual_printer: PrinterFactory
) -> None:
    """An entry set up by an older version loses its firmware-available binary sensor; nothing
    of the entry is left without an entity behind it."""
    printer = virtual_printer("A1MINI", time_scale=0)
    entry = printer_entry(hass, printer, title="A1MINI")
    old = entity_registry.async_get_or_create(
        "binary_sensor",
        DOMAIN,
        f"{printer.serial}_firmware_update",
        config_entry=entry,
        suggested_object_id="a1mini_firmware_update_available",
    )
    await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.LOADED

    assert entity_registry.async_get(old.entity_id) is None
    assert hass.states.get(old.entity_id) is None
    assert state_of(hass, "update.a1mini_firmware") in (STATE_OFF, STATE_UNKNOWN)
    registered = er.async_entries_for_config_entry(entity_registry, entry.entry_id)
    orphans = [
        reg.entity_id
        for reg in registered
        if reg.disabled_by is None and hass.states.get(reg.entity_id) is None
    ]
    assert orphans == []
