"""The printer's storage as Home Assistant sees it: folders, path rules and translated errors.

Shared by the media source, the streaming view and the file actions.
"""

from __future__ import annotations

import mimetypes
import posixpath
from typing import Final

from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError, ServiceValidationError

from .const import DOMAIN
from .coordinator import BambuConfigEntry, BambuCoordinator
from .printer.ftps import FtpsError, FtpsErrorKind, RemoteFile

FOLDER_TIMELAPSES: Final = "timelapse"
FOLDER_FILES: Final = "files"
# X1 and H2 record mp4, P1 and A1 avi.
VIDEO_TYPES: Final = {".mp4": "video/mp4", ".avi": "video/x-msvideo"}
PRINT_SUFFIXES: Final = (".3mf", ".gcode")
# Print files: jobs sent over the LAN land at the root, cloud and MakerWorld jobs in /cache.
PRINT_DIRECTORIES: Final = ("/", "/cache")
TIMELAPSE_DIRECTORY: Final = "/timelapse"
MAX_PATH: Final = 512


def is_video(path: str) -> bool:
    """Whether the file is a timelapse recording."""
    return posixpath.splitext(path)[1].lower() in VIDEO_TYPES


def is_print_file(path: str) -> bool:
    """Whether the file is something the printer can print."""
    return path.lower().endswith(PRINT_SUFFIXES)


def content_type(path: str) -> str:
    """The MIME type to serve a file with."""
    suffix = posixpath.splitext(path)[1].lower()
    if suffix in VIDEO_TYPES:
        return VIDEO_TYPES[suffix]
    return mimetypes.types_map.get(suffix, "application/octet-stream")


def normalize_path(path: str) -> str:
    """An absolute printer path, or ServiceValidationError.

    Rejects what could leave the card or smuggle an FTP command in (line breaks).
    """
    cleaned = "/" + path.strip().lstrip("/")
    parts = cleaned.split("/")
    if (
        len(cleaned) > MAX_PATH
        or cleaned == "/"
        or ".." in parts
        or any(char in cleaned for char in "\r\n\0")
    ):
        raise ServiceValidationError(
            translation_domain=DOMAIN,
            translation_key="invalid_path",
            translation_placeholders={"path": path[:MAX_PATH]},
        )
    return posixpath.normpath(cleaned)


def ftps_error(err: FtpsError, path: str = "") -> HomeAssistantError:
    """A translated error for a failed file operation."""
    placeholders = {"path": path, "error": err.detail or str(err.kind)}
    if err.kind is FtpsErrorKind.NOT_FOUND:
        return ServiceValidationError(
            translation_domain=DOMAIN,
            translation_key="file_not_found",
            translation_placeholders=placeholders,
        )
    return HomeAssistantError(
        translation_domain=DOMAIN,
        translation_key=f"ftps_{err.kind}",
        translation_placeholders=placeholders,
    )


async def async_list_folder(coordinator: BambuCoordinator, folder: str) -> list[RemoteFile]:
    """The files of one media folder, newest name first (timelapses are named by date)."""
    if folder == FOLDER_TIMELAPSES:
        found = await coordinator.ftps.async_list(TIMELAPSE_DIRECTORY)
        return sorted((item for item in found if is_video(item.path)), reverse=True, key=_key)
    files: list[RemoteFile] = []
    for directory in PRINT_DIRECTORIES:
        listed = await coordinator.ftps.async_list(directory)
        files += [item for item in listed if is_print_file(item.path)]
    return sorted(files, key=_key)


def _key(item: RemoteFile) -> str:
    return item.path


def loaded_entry(hass: HomeAssistant, entry_id: str) -> BambuConfigEntry | None:
    """The loaded config entry of this integration with that id."""
    entry: BambuConfigEntry | None = hass.config_entries.async_get_entry(entry_id)
    if entry is None or entry.domain != DOMAIN or entry.state is not ConfigEntryState.LOADED:
        return None
    return entry
