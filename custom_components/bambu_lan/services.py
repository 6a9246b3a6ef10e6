"""Actions: raw G-code, moving and homing the axes, extruding. Each targets one printer device
and returns once the printer acknowledged the command.

They are refused (with a translated error, and nothing sent) while the printer wants signed
commands; moving, homing and extruding also while a job runs, and raw G-code unless `force` is
set. Extruding needs a hot nozzle.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any, Final

from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import HomeAssistant, ServiceCall
from homeassistant.exceptions import ServiceValidationError
from homeassistant.helpers import config_validation as cv, device_registry as dr
import probatio as vol

from .const import DOMAIN
from .coordinator import BambuConfigEntry, BambuCoordinator

SERVICE_SEND_GCODE: Final = "send_gcode"
SERVICE_MOVE_AXIS: Final = "move_axis"
SERVICE_HOME: Final = "home"
SERVICE_EXTRUDE: Final = "extrude"

ATTR_DEVICE_ID: Final = "device_id"
ATTR_GCODE: Final = "gcode"
ATTR_FORCE: Final = "force"
ATTR_AXIS: Final = "axis"
ATTR_DISTANCE: Final = "distance"
ATTR_LENGTH: Final = "length"
ATTR_SPEED: Final = "speed"

# A job occupies the printer: moving it by hand would ruin the print (or worse).
JOB_STATES: Final = frozenset({"PREPARE", "RUNNING", "PAUSE", "SLICING"})
# Below this the firmware (and the filament) would grind instead of extruding.
MIN_EXTRUDE_TEMP: Final = 170
MAX_GCODE_LENGTH: Final = 4096

_DEVICE: Final[dict[Any, Any]] = {vol.Required(ATTR_DEVICE_ID): cv.string}
SEND_GCODE_SCHEMA: Final = vol.Schema(
    {
        **_DEVICE,
        vol.Required(ATTR_GCODE): vol.All(cv.string, vol.Length(min=1, max=MAX_GCODE_LENGTH)),
        vol.Optional(ATTR_FORCE, default=False): cv.boolean,
    }
)
MOVE_AXIS_SCHEMA: Final = vol.Schema(
    {
        **_DEVICE,
        vol.Required(ATTR_AXIS): vol.In(["x", "y", "z"]),
        vol.Required(ATTR_DISTANCE): vol.All(vol.Coerce(float), vol.Range(min=-350, max=350)),
        vol.Optional(ATTR_SPEED, default=3000): vol.All(
            vol.Coerce(int), vol.Range(min=1, max=12000)
        ),
    }
)
HOME_SCHEMA: Final = vol.Schema(_DEVICE)
EXTRUDE_SCHEMA: Final = vol.Schema(
    {
        **_DEVICE,
        vol.Required(ATTR_LENGTH): vol.All(vol.Coerce(float), vol.Range(min=-100, max=100)),
        vol.Optional(ATTR_SPEED, default=300): vol.All(vol.Coerce(int), vol.Range(min=1, max=1200)),
    }
)


def async_setup_services(hass: HomeAssistant) -> None:
    """Register the actions (once, for every printer)."""
    handlers: dict[str, tuple[vol.Schema, Callable[[ServiceCall], Coroutine[Any, Any, None]]]] = {
        SERVICE_SEND_GCODE: (SEND_GCODE_SCHEMA, _async_send_gcode),
        SERVICE_MOVE_AXIS: (MOVE_AXIS_SCHEMA, _async_move_axis),
        SERVICE_HOME: (HOME_SCHEMA, _async_home),
        SERVICE_EXTRUDE: (EXTRUDE_SCHEMA, _async_extrude),
    }
    for service, (schema, handler) in handlers.items():
        hass.services.async_register(DOMAIN, service, handler, schema=schema)


def _coordinator(call: ServiceCall) -> BambuCoordinator:
    """The loaded printer the call targets, ready for commands."""
    device_id: str = call.data[ATTR_DEVICE_ID]
    device = dr.async_get(call.hass).async_get(device_id)
    entry: BambuConfigEntry | None = None
    if device is not None:  # a device belongs to one config entry
        candidate = call.hass.config_entries.async_get_entry(device.config_entry_id)
        if candidate is not None and candidate.domain == DOMAIN:
            entry = candidate
    if entry is None:
        raise ServiceValidationError(
            translation_domain=DOMAIN,
            translation_key="device_not_found",
            translation_placeholders={"device_id": device_id},
        )
    if entry.state is not ConfigEntryState.LOADED:
        raise ServiceValidationError(
            translation_domain=DOMAIN,
            translation_key="printer_not_loaded",
            translation_placeholders={"name": entry.title},
        )
    coordinator = entry.runtime_data
    if coordinator.state.signed_commands_required:
        raise ServiceValidationError(
            translation_domain=DOMAIN,
            translation_key="signed_commands_required",
            translation_placeholders={"name": entry.title},
        )
    return coordinator


def _refuse_during_job(coordinator: BambuCoordinator, action: str) -> None:
    if coordinator.state.gcode_state in JOB_STATES:
        raise ServiceValidationError(
            translation_domain=DOMAIN,
            translation_key="job_running",
            translation_placeholders={"action": action},
        )


async def _async_gcode(coordinator: BambuCoordinator, lines: list[str]) -> dict[str, Any]:
    return await coordinator.async_send(
        "print", "gcode_line", {"param": "".join(f"{line}\n" for line in lines)}
    )


async def _async_send_gcode(call: ServiceCall) -> None:
    coordinator = _coordinator(call)
    if not call.data[ATTR_FORCE]:
        _refuse_during_job(coordinator, SERVICE_SEND_GCODE)
    lines = [line.strip() for line in call.data[ATTR_GCODE].splitlines()]
    await _async_gcode(coordinator, [line for line in lines if line])


async def _async_move_axis(call: ServiceCall) -> None:
    coordinator = _coordinator(call)
    _refuse_during_job(coordinator, SERVICE_MOVE_AXIS)
    axis = call.data[ATTR_AXIS].upper()
    distance = _number(call.data[ATTR_DISTANCE])
    # Relative for the move only: the firmware's (and the next job's) absolute mode stays.
    await _async_gcode(coordinator, ["G91", f"G1 {axis}{distance} F{call.data[ATTR_SPEED]}", "G90"])


async def _async_home(call: ServiceCall) -> None:
    coordinator = _coordinator(call)
    _refuse_during_job(coordinator, SERVICE_HOME)
    await _async_gcode(coordinator, ["G28"])


async def _async_extrude(call: ServiceCall) -> None:
    coordinator = _coordinator(call)
    _refuse_during_job(coordinator, SERVICE_EXTRUDE)
    temperature = coordinator.state.nozzle_temp
    if temperature is None or temperature < MIN_EXTRUDE_TEMP:
        raise ServiceValidationError(
            translation_domain=DOMAIN,
            translation_key="nozzle_cold",
            translation_placeholders={
                "temperature": "?" if temperature is None else f"{temperature:.0f}",
                "minimum": str(MIN_EXTRUDE_TEMP),
            },
        )
    length = _number(call.data[ATTR_LENGTH])
    # M83: relative extrusion, so the length is what moves whatever the E position was.
    await _async_gcode(coordinator, ["M83", f"G1 E{length} F{call.data[ATTR_SPEED]}"])


def _number(value: float) -> str:
    """A G-code number: no exponent, no trailing zeros ("10", "-0.5")."""
    return f"{value:.3f}".rstrip("0").rstrip(".")
