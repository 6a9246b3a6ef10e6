"""Actions on a printer: delete, print and upload files, skip objects of the current job."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
import posixpath
from typing import Any, Final

from homeassistant.const import ATTR_DEVICE_ID
from homeassistant.core import HomeAssistant, ServiceCall, SupportsResponse
from homeassistant.exceptions import ServiceValidationError
from homeassistant.helpers import config_validation as cv, device_registry as dr
import probatio

from .const import DOMAIN
from .coordinator import BambuCoordinator
from .files import ftps_error, is_print_file, loaded_entry, normalize_path
from .printer.ftps import FtpsError

SERVICE_DELETE_FILE: Final = "delete_file"
SERVICE_PRINT_FILE: Final = "print_file"
SERVICE_UPLOAD_FILE: Final = "upload_file"
SERVICE_SKIP_OBJECTS: Final = "skip_objects"
EVENT_UPLOAD_PROGRESS: Final = f"{DOMAIN}_upload_progress"
ATTR_PATH: Final = "path"
ATTR_CONFIRM: Final = "confirm"
ATTR_PLATE: Final = "plate"
ATTR_USE_AMS: Final = "use_ams"
ATTR_AMS_MAPPING: Final = "ams_mapping"
ATTR_BED_LEVELLING: Final = "bed_levelling"
ATTR_FLOW_CALIBRATION: Final = "flow_calibration"
ATTR_TIMELAPSE: Final = "timelapse"
ATTR_SOURCE: Final = "source"
ATTR_DESTINATION: Final = "destination"
ATTR_OBJECT_IDS: Final = "object_ids"
# Progress events: one per this many percent (and the last one), not one per chunk.
PROGRESS_STEP: Final = 5

_DEVICE = {probatio.Required(ATTR_DEVICE_ID): probatio.All(cv.ensure_list, [cv.string])}
DELETE_FILE_SCHEMA: Final = probatio.Schema(
    {
        **_DEVICE,
        probatio.Required(ATTR_PATH): cv.string,
        probatio.Required(ATTR_CONFIRM): cv.boolean,
    }
)

PRINT_FILE_SCHEMA: Final = probatio.Schema(
    {
        **_DEVICE,
        probatio.Required(ATTR_PATH): cv.string,
        probatio.Optional(ATTR_PLATE, default=1): probatio.All(
            probatio.Coerce(int), probatio.Range(min=1, max=64)
        ),
        probatio.Optional(ATTR_USE_AMS, default=True): cv.boolean,
        probatio.Optional(ATTR_AMS_MAPPING, default=list): probatio.All(
            cv.ensure_list, [probatio.All(probatio.Coerce(int), probatio.Range(min=-1, max=255))]
        ),
        probatio.Optional(ATTR_BED_LEVELLING, default=True): cv.boolean,
        probatio.Optional(ATTR_FLOW_CALIBRATION, default=True): cv.boolean,
        probatio.Optional(ATTR_TIMELAPSE, default=False): cv.boolean,
    }
)
UPLOAD_FILE_SCHEMA: Final = probatio.Schema(
    {
        **_DEVICE,
        probatio.Required(ATTR_SOURCE): cv.string,
        probatio.Optional(ATTR_DESTINATION): cv.string,
    }
)
SKIP_OBJECTS_SCHEMA: Final = probatio.Schema(
    {
        **_DEVICE,
        probatio.Required(ATTR_OBJECT_IDS): probatio.All(
            cv.ensure_list,
            probatio.Length(min=1),
            [probatio.All(probatio.Coerce(int), probatio.Range(min=0))],
        ),
    }
)

type _Handler = Callable[[BambuCoordinator, ServiceCall], Awaitable[None]]


def coordinators_for(hass: HomeAssistant, call: ServiceCall) -> list[BambuCoordinator]:
    """The loaded printers the call targets; ServiceValidationError for anything else."""
    registry = dr.async_get(hass)
    found: list[BambuCoordinator] = []
    for device_id in call.data[ATTR_DEVICE_ID]:
        device = registry.async_get(device_id)
        entry = None if device is None else loaded_entry(hass, device.config_entry_id)
        coordinator = None if entry is None else entry.runtime_data
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


async def _print_file(coordinator: BambuCoordinator, call: ServiceCall) -> None:
    path = normalize_path(call.data[ATTR_PATH])
    if not is_print_file(path):
        raise ServiceValidationError(
            translation_domain=DOMAIN,
            translation_key="not_a_print_file",
            translation_placeholders={"path": path},
        )
    name = posixpath.basename(path)
    await coordinator.async_send(
        "print",
        "project_file",
        {
            "param": f"Metadata/plate_{call.data[ATTR_PLATE]}.gcode",
            "url": f"ftp://{path}",  # ftp:///cache/x.3mf: a file on the printer's own storage
            "file": path,
            "subtask_name": name.removesuffix(".3mf").removesuffix(".gcode"),
            "project_id": "0",
            "profile_id": "0",
            "task_id": "0",
            "subtask_id": "0",
            "md5": "",
            "bed_type": "auto",
            "bed_levelling": call.data[ATTR_BED_LEVELLING],
            "flow_cali": call.data[ATTR_FLOW_CALIBRATION],
            "timelapse": call.data[ATTR_TIMELAPSE],
            "use_ams": call.data[ATTR_USE_AMS],
            "ams_mapping": call.data[ATTR_AMS_MAPPING],
        },
    )


def _check_source(hass: HomeAssistant, source: str) -> Path:
    """The file to upload, if it lies in an allowed directory or a media folder (blocking)."""
    path = Path(source).resolve()
    media = [Path(folder).resolve() for folder in hass.config.media_dirs.values()]
    allowed = hass.config.is_allowed_path(str(path)) or any(
        path.is_relative_to(folder) for folder in media
    )
    if not allowed:
        raise ServiceValidationError(
            translation_domain=DOMAIN,
            translation_key="source_not_allowed",
            translation_placeholders={"source": source},
        )
    if not path.is_file():
        raise ServiceValidationError(
            translation_domain=DOMAIN,
            translation_key="source_not_found",
            translation_placeholders={"source": source},
        )
    return path


async def _upload_file(coordinator: BambuCoordinator, call: ServiceCall) -> None:
    hass = call.hass
    source = await hass.async_add_executor_job(_check_source, hass, call.data[ATTR_SOURCE])
    destination = normalize_path(call.data.get(ATTR_DESTINATION) or source.name)
    device_id = next(iter(call.data[ATTR_DEVICE_ID]))
    reported = -1

    def progress(sent: int, total: int) -> None:
        nonlocal reported
        percent = 100 if total <= 0 else sent * 100 // total
        if percent // PROGRESS_STEP == reported // PROGRESS_STEP and sent < total:
            return
        reported = percent
        hass.bus.async_fire(
            EVENT_UPLOAD_PROGRESS,
            {
                "device_id": device_id,
                "serial": coordinator.serial,
                "destination": destination,
                "sent": sent,
                "total": total,
                "percent": percent,
            },
        )

    try:
        await coordinator.ftps.async_upload(source, destination, progress)
    except FtpsError as err:
        raise ftps_error(err, destination) from err


async def _skip_objects(coordinator: BambuCoordinator, call: ServiceCall) -> None:
    await coordinator.async_send("print", "skip_objects", {"obj_list": call.data[ATTR_OBJECT_IDS]})


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
    SERVICE_PRINT_FILE: (PRINT_FILE_SCHEMA, _for_each_printer(_print_file)),
    SERVICE_UPLOAD_FILE: (UPLOAD_FILE_SCHEMA, _for_each_printer(_upload_file)),
    SERVICE_SKIP_OBJECTS: (SKIP_OBJECTS_SCHEMA, _for_each_printer(_skip_objects)),
}


def async_setup_services(hass: HomeAssistant) -> None:
    """Register the file actions (once, in async_setup)."""
    for name, (schema, handler) in SERVICES.items():
        hass.services.async_register(
            DOMAIN, name, handler, schema=schema, supports_response=SupportsResponse.NONE
        )
