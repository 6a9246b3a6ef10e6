"""AMS and filament actions: drying, a tray's filament, RFID, loading and unloading.

Each action awaits the printer's acknowledgement; a refusal or a timeout raises a translated
error (see `coordinator.async_send`). Targets: drying acts on AMS devices (or any of their
entities), tray actions on tray and external spool sensors, unloading on printers. Payloads and
their sources: `printer/ams.py`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
import re
from typing import Any, Final

from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import HomeAssistant, ServiceCall, callback
from homeassistant.exceptions import ServiceValidationError
from homeassistant.helpers import (
    config_validation as cv,
    device_registry as dr,
    entity_registry as er,
)
from homeassistant.helpers.target import TargetSelection, async_extract_referenced_entity_ids
from homeassistant.helpers.typing import VolSchemaType
import probatio as vol

from .ams import unit_id_of
from .const import DOMAIN
from .coordinator import BambuCoordinator
from .printer.ams import (
    AMS_MODEL_NAMES,
    DRYING_HOURS,
    DRYING_KINDS,
    DRYING_TEMPERATURES,
    EXTERNAL_IDS,
    EXTERNAL_MAIN,
    AmsTray,
    change_filament,
    drying_start,
    drying_stop,
    filament_setting,
    k_setting,
    unit_number,
    unload_filament,
)

SERVICE_START_DRYING: Final = "start_drying"
SERVICE_STOP_DRYING: Final = "stop_drying"
SERVICE_SET_FILAMENT: Final = "set_filament"
SERVICE_RESET_TRAY: Final = "reset_tray"
SERVICE_READ_RFID: Final = "read_rfid"
SERVICE_LOAD_FILAMENT: Final = "load_filament"
SERVICE_UNLOAD_FILAMENT: Final = "unload_filament"

ATTR_TEMPERATURE: Final = "temperature"
ATTR_DURATION: Final = "duration"
ATTR_FILAMENT: Final = "filament"
ATTR_ROTATE_TRAY: Final = "rotate_tray"
ATTR_TRAY_TYPE: Final = "tray_type"
ATTR_COLOR: Final = "color"
ATTR_TEMP_MIN: Final = "nozzle_temp_min"
ATTR_TEMP_MAX: Final = "nozzle_temp_max"
ATTR_PRESET: Final = "preset_id"
ATTR_K: Final = "k"
ATTR_EXTRUDER: Final = "extruder"

EXTRUDERS: Final = {"right": 0, "left": 1}
"""Nozzle ids of `device.extruder.info`; the right one is the main extruder."""
DEFAULT_TEMPERATURE: Final = 220
# Bambu Studio's generic filament presets, used when the user names only a type.
GENERIC_PRESETS: Final = {
    "PLA": "GFL99",
    "PETG": "GFG99",
    "ABS": "GFB99",
    "ASA": "GFB98",
    "TPU": "GFU99",
    "PA": "GFN99",
    "PC": "GFC99",
    "PVA": "GFS99",
}
_TRAY_ID: Final = re.compile(r"ams_(\d+)_tray_(\d+)|external_spool_(\d+)")
_TEMPERATURE: Final = vol.All(vol.Coerce(int), vol.Range(min=0, max=350))

_DRYING_SCHEMA: Final = cv.make_entity_service_schema(
    {
        vol.Required(ATTR_TEMPERATURE): vol.All(vol.Coerce(int), vol.Range(min=20, max=100)),
        vol.Required(ATTR_DURATION): vol.All(
            vol.Coerce(int), vol.Range(min=DRYING_HOURS[0], max=DRYING_HOURS[1])
        ),
        vol.Optional(ATTR_FILAMENT): vol.All(cv.string, vol.Length(min=1, max=32)),
        vol.Optional(ATTR_ROTATE_TRAY, default=False): cv.boolean,
    }
)
_TARGET_SCHEMA: Final = cv.make_entity_service_schema({})
_SET_FILAMENT_SCHEMA: Final = cv.make_entity_service_schema(
    {
        vol.Required(ATTR_TRAY_TYPE): vol.All(cv.string, vol.Length(min=1, max=16)),
        vol.Required(ATTR_COLOR): vol.All(
            vol.Length(min=3, max=3), [vol.All(vol.Coerce(int), vol.Range(min=0, max=255))]
        ),
        vol.Required(ATTR_TEMP_MIN): _TEMPERATURE,
        vol.Required(ATTR_TEMP_MAX): _TEMPERATURE,
        vol.Optional(ATTR_PRESET): vol.All(cv.string, vol.Length(max=16)),
        vol.Optional(ATTR_K): vol.All(vol.Coerce(float), vol.Range(min=0, max=2)),
    }
)
_LOAD_SCHEMA: Final = cv.make_entity_service_schema(
    {
        vol.Optional(ATTR_EXTRUDER): vol.In(EXTRUDERS),
        vol.Optional(ATTR_TEMPERATURE): _TEMPERATURE,
    }
)


def _invalid(key: str, **placeholders: Any) -> ServiceValidationError:
    return ServiceValidationError(
        translation_domain=DOMAIN,
        translation_key=key,
        translation_placeholders={name: str(value) for name, value in placeholders.items()},
    )


def _coordinator(hass: HomeAssistant, entry_id: str | None) -> BambuCoordinator | None:
    entry = hass.config_entries.async_get_entry(entry_id) if entry_id else None
    if entry is None or entry.domain != DOMAIN:
        return None
    if entry.state is not ConfigEntryState.LOADED:
        raise _invalid("printer_not_loaded", name=entry.title)
    coordinator: BambuCoordinator = entry.runtime_data
    if coordinator.state.signed_commands_required:
        raise _invalid("signed_commands_required", name=entry.title)
    return coordinator


def _selected(hass: HomeAssistant, call: ServiceCall) -> tuple[set[str], set[str]]:
    """The device ids and entity ids the call names (no expansion through areas)."""
    selected = async_extract_referenced_entity_ids(
        hass, TargetSelection(call.data), expand_group=False
    )
    return selected.referenced_devices, selected.referenced


def _device_ids(hass: HomeAssistant, call: ServiceCall) -> set[str]:
    """Devices named directly, and the devices of the entities named."""
    devices, entities = _selected(hass, call)
    registry = er.async_get(hass)
    for entity_id in entities:
        entry = registry.async_get(entity_id)
        if entry is not None and entry.device_id:
            devices.add(entry.device_id)
    return devices


def _units(hass: HomeAssistant, call: ServiceCall) -> list[tuple[BambuCoordinator, int]]:
    registry = dr.async_get(hass)
    found = []
    for device_id in _device_ids(hass, call):
        device = registry.async_get(device_id)
        if device is None or (coordinator := _coordinator(hass, device.config_entry_id)) is None:
            continue
        if (unit_id := unit_id_of(coordinator, device)) is not None:
            found.append((coordinator, unit_id))
    if not found:
        raise _invalid("no_ams_target")
    return found


def _printers(hass: HomeAssistant, call: ServiceCall) -> list[BambuCoordinator]:
    registry = dr.async_get(hass)
    found: dict[str, BambuCoordinator] = {}
    for device_id in _device_ids(hass, call):
        device = registry.async_get(device_id)
        if device is not None and (coordinator := _coordinator(hass, device.config_entry_id)):
            found[coordinator.serial] = coordinator
    if not found:
        raise _invalid("no_printer_target")
    return list(found.values())


def _trays(hass: HomeAssistant, call: ServiceCall) -> list[tuple[BambuCoordinator, int, int]]:
    """(printer, unit id, slot) of each tray or external spool sensor named."""
    registry = er.async_get(hass)
    found = []
    for entity_id in _selected(hass, call)[1]:
        entry = registry.async_get(entity_id)
        if entry is None or (coordinator := _coordinator(hass, entry.config_entry_id)) is None:
            continue
        match = _TRAY_ID.fullmatch(entry.unique_id.removeprefix(f"{coordinator.serial}_"))
        if match is None:
            continue
        if match[3] is not None:
            found.append((coordinator, int(match[3]), 0))
        else:
            found.append((coordinator, int(match[1]), int(match[2])))
    if not found:
        raise _invalid("no_tray_target")
    return found


def _unit_name(coordinator: BambuCoordinator, unit_id: int) -> str:
    unit = coordinator.state.ams_unit(unit_id)
    if unit is None:
        raise _invalid("ams_unavailable", unit=unit_number(unit_id))
    return f"{AMS_MODEL_NAMES[coordinator.state.ams_kind(unit)]} {unit_number(unit_id)}"


def _dryer(coordinator: BambuCoordinator, unit_id: int) -> tuple[int, int]:
    """The temperature range of a unit that dries; a validation error for the others."""
    name = _unit_name(coordinator, unit_id)
    unit = coordinator.state.ams_unit(unit_id)
    assert unit is not None
    kind = coordinator.state.ams_kind(unit)
    if kind not in DRYING_KINDS:
        raise _invalid("drying_not_supported", unit=name)
    return DRYING_TEMPERATURES[kind]


async def _start_drying(hass: HomeAssistant, call: ServiceCall) -> None:
    temperature, hours = call.data[ATTR_TEMPERATURE], call.data[ATTR_DURATION]
    units = _units(hass, call)
    for coordinator, unit_id in units:
        low, high = _dryer(coordinator, unit_id)
        if not low <= temperature <= high:
            raise _invalid("drying_temperature_out_of_range", min=low, max=high)
    for coordinator, unit_id in units:
        unit = coordinator.state.ams_unit(unit_id)
        loaded = [tray.tray_type for tray in unit.trays if tray.tray_type] if unit else []
        filament = call.data.get(ATTR_FILAMENT) or (loaded[0] if loaded else "PLA")
        await coordinator.async_send(
            "print",
            "ams_filament_drying",
            drying_start(
                unit_id,
                temperature=temperature,
                hours=hours,
                filament=filament,
                rotate_tray=call.data[ATTR_ROTATE_TRAY],
            ),
        )


async def _stop_drying(hass: HomeAssistant, call: ServiceCall) -> None:
    units = _units(hass, call)
    for coordinator, unit_id in units:
        _dryer(coordinator, unit_id)
    for coordinator, unit_id in units:
        await coordinator.async_send("print", "ams_filament_drying", drying_stop(unit_id))


async def _set_filament(hass: HomeAssistant, call: ServiceCall) -> None:
    low, high = call.data[ATTR_TEMP_MIN], call.data[ATTR_TEMP_MAX]
    if low > high:
        raise _invalid("invalid_temperature_range", min=low, max=high)
    tray_type = call.data[ATTR_TRAY_TYPE].strip().upper()
    red, green, blue = call.data[ATTR_COLOR]
    preset = call.data.get(ATTR_PRESET, GENERIC_PRESETS.get(tray_type, ""))
    trays = _trays(hass, call)
    for coordinator, unit_id, _slot in trays:
        if unit_id not in EXTERNAL_IDS:
            _unit_name(coordinator, unit_id)
    for coordinator, unit_id, slot in trays:
        await coordinator.async_send(
            "print",
            "ams_filament_setting",
            filament_setting(
                unit_id,
                slot,
                tray_type=tray_type,
                color=f"{red:02X}{green:02X}{blue:02X}FF",
                temp_min=low,
                temp_max=high,
                preset=preset,
            ),
        )
        if (k := call.data.get(ATTR_K)) is not None:
            await coordinator.async_send("print", "extrusion_cali_set", k_setting(unit_id, slot, k))


async def _reset_tray(hass: HomeAssistant, call: ServiceCall) -> None:
    for coordinator, unit_id, slot in _trays(hass, call):
        await coordinator.async_send(
            "print",
            "ams_filament_setting",
            filament_setting(
                unit_id, slot, tray_type="", color="00000000", temp_min=0, temp_max=0, preset=""
            ),
        )


async def _read_rfid(hass: HomeAssistant, call: ServiceCall) -> None:
    trays = _trays(hass, call)
    for coordinator, unit_id, _slot in trays:
        if unit_id in EXTERNAL_IDS:
            raise _invalid("rfid_not_supported")
        _unit_name(coordinator, unit_id)
    for coordinator, unit_id, slot in trays:
        await coordinator.async_send("print", "ams_get_rfid", {"ams_id": unit_id, "slot_id": slot})


def _feeds(coordinator: BambuCoordinator, unit_id: int) -> int | None:
    """The nozzle a unit or external spool feeds on a dual-nozzle printer (None: unknown)."""
    if unit_id in EXTERNAL_IDS:
        return EXTRUDERS["right"] if unit_id == EXTERNAL_MAIN else EXTRUDERS["left"]
    unit = coordinator.state.ams_unit(unit_id)
    return unit.extruder if unit else None


def _loaded_tray(coordinator: BambuCoordinator, unit_id: int, slot: int) -> AmsTray:
    tray = coordinator.state.tray_at(unit_id, slot)
    if tray is None or tray.empty:
        raise _invalid("tray_empty")
    return tray


async def _load_filament(hass: HomeAssistant, call: ServiceCall) -> None:
    trays = _trays(hass, call)
    extruder = call.data.get(ATTR_EXTRUDER)
    loads = []
    for coordinator, unit_id, slot in trays:
        tray = _loaded_tray(coordinator, unit_id, slot)
        if extruder is not None and coordinator.state.is_dual_nozzle:
            feeds = _feeds(coordinator, unit_id)
            if feeds is not None and feeds != EXTRUDERS[extruder]:
                raise _invalid("tray_feeds_other_nozzle", extruder=extruder)
        temperature = call.data.get(ATTR_TEMPERATURE) or tray.temp_max or DEFAULT_TEMPERATURE
        loads.append((coordinator, change_filament(unit_id, slot, temperature=temperature)))
    for coordinator, params in loads:
        await coordinator.async_send("print", "ams_change_filament", params)


def unload_params(
    coordinator: BambuCoordinator, extruder: str | None, temperature: int
) -> dict[str, Any]:
    """`ams_change_filament` parameters that unload a nozzle (`extruder` on dual-nozzle
    printers); a validation error when there is nothing to unload."""
    state = coordinator.state
    if state.is_dual_nozzle:
        if extruder is None:
            raise _invalid("extruder_required")
        location = state.nozzle_location(EXTRUDERS[extruder])
    else:
        location = state.active_location
    if location is None:
        raise _invalid("nothing_loaded")
    return unload_filament(location[0], temperature=temperature)


async def _unload_filament(hass: HomeAssistant, call: ServiceCall) -> None:
    extruder = call.data.get(ATTR_EXTRUDER)
    temperature = call.data.get(ATTR_TEMPERATURE) or DEFAULT_TEMPERATURE
    unloads = [
        (coordinator, unload_params(coordinator, extruder, temperature))
        for coordinator in _printers(hass, call)
    ]
    for coordinator, params in unloads:
        await coordinator.async_send("print", "ams_change_filament", params)


SERVICES: Final[
    dict[str, tuple[Callable[[HomeAssistant, ServiceCall], Awaitable[None]], VolSchemaType]]
] = {
    SERVICE_START_DRYING: (_start_drying, _DRYING_SCHEMA),
    SERVICE_STOP_DRYING: (_stop_drying, _TARGET_SCHEMA),
    SERVICE_SET_FILAMENT: (_set_filament, _SET_FILAMENT_SCHEMA),
    SERVICE_RESET_TRAY: (_reset_tray, _TARGET_SCHEMA),
    SERVICE_READ_RFID: (_read_rfid, _TARGET_SCHEMA),
    SERVICE_LOAD_FILAMENT: (_load_filament, _LOAD_SCHEMA),
    SERVICE_UNLOAD_FILAMENT: (_unload_filament, _LOAD_SCHEMA),
}


@callback
def async_setup_services(hass: HomeAssistant) -> None:
    """Register the AMS and filament actions (once, in `async_setup`)."""
    for name, (handler, schema) in SERVICES.items():

        async def handle(call: ServiceCall, handler: Any = handler) -> None:
            await handler(hass, call)

        hass.services.async_register(DOMAIN, name, handle, schema=schema)
