"""Actions on a printer's files: delete (with confirmation)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Final

from homeassistant.const import ATTR_DEVICE_ID
from homeassistant.core import HomeAssistant, ServiceCall, SupportsResponse
from homeassistant.exceptions import ServiceValidationError
from homeassistant.helpers import config_validation as cv, device_registry as dr
import probatio

from .const import DOMAIN
from .coordinator import BambuCoordinator
from .files import ftps_error, loaded_entry, normalize_path
from .printer.ftps import FtpsError

SERVICE_DELETE_FILE: Final = "delete_file"
ATTR_PATH: Final = "path"
ATTR_CONFIRM: Final = "confirm"

_DEVICE = {probatio.Required(ATTR_DEVICE_ID): probatio.All(cv.ensure_list, [cv.string])}
DELETE_FILE_SCHEMA: Final = probatio.Schema(
    {
        **_DEVICE,
        probatio.Required(ATTR_PATH): cv.string,
        probatio.Required(ATTR_CONFIRM): cv.boolean,
    }
)

type _Handler = Callable[[BambuCoordinator, ServiceCall], Awaitable[None]]


def coordinators_for(hass: HomeAssistant, call: ServiceCall) -> list[BambuCoordinator]:
    """The loaded printers the call targets; ServiceValidationError for anything else."""
    registry = dr.async_get(hass)
    found: list[BambuCoordinator] = []
    for device_id in call.data[ATTR_DEVICE_ID]:
        device = registry.async_get(device_id)
        entries = [] if device is None else [loaded_entry(hass, e) for e in device.config_entries]
        coordinator = next((e.runtime_data for e in entries if e is not None), None)
        if coordinator is None:
            raise ServiceValidationError(
                translation_domain=DOMAIN,
                translation_key="device_not_printer",
                translation_placeholders={"device_id": device_id},
            )
        found.append(coordinator)
    return found


async def _delete_file(coordinator: BambuCoordinator, call: ServiceCall) -> None:
    path = normalize_path(call.data[ATTR_PATH])
    try:
        await coordinator.ftps.async_delete(path)
    except FtpsError as err:
        raise ftps_error(err, path) from err


def _confirmed(call: ServiceCall) -> None:
    if not call.data[ATTR_CONFIRM]:
        raise ServiceValidationError(
            translation_domain=DOMAIN, translation_key="confirmation_required"
        )


def _for_each_printer(
    handler: _Handler, check: Callable[[ServiceCall], None] | None = None
) -> Callable[[ServiceCall], Coroutine[Any, Any, None]]:
    async def run(call: ServiceCall) -> None:
        if check is not None:
            check(call)
        for coordinator in coordinators_for(call.hass, call):
            await handler(coordinator, call)

    return run


SERVICES: Final[
    dict[str, tuple[probatio.Schema, Callable[[ServiceCall], Coroutine[Any, Any, None]]]]
] = {
    SERVICE_DELETE_FILE: (DELETE_FILE_SCHEMA, _for_each_printer(_delete_file, _confirmed)),
}


def async_setup_services(hass: HomeAssistant) -> None:
    """Register the file actions (once, in async_setup)."""
    for name, (schema, handler) in SERVICES.items():
        hass.services.async_register(
            DOMAIN, name, handler, schema=schema, supports_response=SupportsResponse.NONE
        )
