"""Media → Bambu Lab LAN → printer → Timelapses / Files, listed live over FTPS.

Nothing is cached locally (backups stay small): every browse lists the printer's card, and a
timelapse plays through `BambuMediaView`, which streams it from the printer.
"""

from __future__ import annotations

from typing import override

from homeassistant.components.media_player.const import MediaClass, MediaType
from homeassistant.components.media_player.errors import BrowseError
from homeassistant.components.media_source import (
    BrowseMediaSource,
    MediaSource,
    MediaSourceItem,
    PlayMedia,
    Unresolvable,
)
from homeassistant.core import HomeAssistant

from .const import DOMAIN
from .coordinator import BambuConfigEntry
from .files import (
    FOLDER_FILES,
    FOLDER_TIMELAPSES,
    async_list_folder,
    content_type,
    is_video,
    loaded_entry,
)
from .media_view import async_register_view, media_url
from .printer.ftps import FtpsError

_FILE = "file"
_FOLDER_TITLES = {FOLDER_TIMELAPSES: "Timelapses", FOLDER_FILES: "Files"}


async def async_get_media_source(hass: HomeAssistant) -> MediaSource:
    """The media source, and the view its timelapses play through."""
    async_register_view(hass)
    return BambuMediaSource(hass)


class BambuMediaSource(MediaSource):
    """Every loaded printer's timelapses and print files."""

    name = "Bambu Lab LAN"

    def __init__(self, hass: HomeAssistant) -> None:
        """Bind to Home Assistant."""
        super().__init__(DOMAIN)
        self.hass = hass

    @override
    async def async_resolve_media(self, item: MediaSourceItem) -> PlayMedia:
        entry_id, kind, path = _parse(item.identifier)
        if kind != _FILE or not path or not is_video(path) or not loaded_entry(self.hass, entry_id):
            raise Unresolvable(f"not a playable timelapse: {item.identifier}")
        return PlayMedia(media_url(entry_id, path), content_type(path))

    @override
    async def async_browse_media(self, item: MediaSourceItem) -> BrowseMediaSource:
        if not item.identifier:
            return self._root()
        entry_id, kind, _path = _parse(item.identifier)
        entry = loaded_entry(self.hass, entry_id)
        if entry is None:
            raise BrowseError(f"printer not loaded: {entry_id}")
        if kind is None:
            return self._printer(entry)
        if kind in _FOLDER_TITLES:
            return await self._folder(entry, kind)
        raise BrowseError(f"unknown media folder: {item.identifier}")

    def _root(self) -> BrowseMediaSource:
        entries: list[BambuConfigEntry] = self.hass.config_entries.async_loaded_entries(DOMAIN)
        return _directory(
            None, self.name, [_directory(entry.entry_id, entry.title) for entry in entries]
        )

    def _printer(self, entry: BambuConfigEntry) -> BrowseMediaSource:
        folders = [
            _directory(f"{entry.entry_id}/{folder}", title)
            for folder, title in _FOLDER_TITLES.items()
        ]
        return _directory(entry.entry_id, entry.title, folders)

    async def _folder(self, entry: BambuConfigEntry, folder: str) -> BrowseMediaSource:
        try:
            files = await async_list_folder(entry.runtime_data, folder)
        except FtpsError as err:
            raise BrowseError(f"{entry.title}: {err}") from err
        children = [
            BrowseMediaSource(
                domain=DOMAIN,
                identifier=f"{entry.entry_id}/{_FILE}{item.path}",
                media_class=MediaClass.VIDEO if is_video(item.path) else MediaClass.APP,
                media_content_type=content_type(item.path),
                title=item.name,
                can_play=is_video(item.path),
                can_expand=False,
            )
            for item in files
        ]
        title = f"{entry.title} · {_FOLDER_TITLES[folder]}"
        return _directory(f"{entry.entry_id}/{folder}", title, children)


def _directory(
    identifier: str | None, title: str, children: list[BrowseMediaSource] | None = None
) -> BrowseMediaSource:
    return BrowseMediaSource(
        domain=DOMAIN,
        identifier=identifier,
        media_class=MediaClass.DIRECTORY,
        media_content_type=MediaType.VIDEO,
        title=title,
        can_play=False,
        can_expand=True,
        children=children,
        children_media_class=MediaClass.DIRECTORY if identifier is None else None,
    )


def _parse(identifier: str) -> tuple[str, str | None, str | None]:
    """`<entry_id>[/<timelapse|files>]` or `<entry_id>/file/<path on the printer>`."""
    entry_id, _, rest = identifier.partition("/")
    if not rest:
        return entry_id, None, None
    kind, _, path = rest.partition("/")
    return entry_id, kind, f"/{path}" if kind == _FILE else None
