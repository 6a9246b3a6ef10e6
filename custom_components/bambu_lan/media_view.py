"""Streams a file from the printer's card to an authenticated Home Assistant user.

`GET /api/bambu_lan/media/<entry_id>/<path on the printer>` reads over FTPS a chunk at a time
(memory stays bounded whatever the size) and honours `Range` requests, which browsers need to
seek in a video. The media source hands out signed URLs for it; the printer's access code never
appears in a URL.
"""

from __future__ import annotations

import contextlib
from http import HTTPStatus
import logging
from typing import Final
from urllib.parse import quote

from aiohttp import web
from homeassistant.core import HomeAssistant, callback
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers.http import HomeAssistantView
from homeassistant.util.hass_dict import HassKey

from .const import DOMAIN
from .files import content_type, is_print_file, is_video, loaded_entry, normalize_path
from .printer.ftps import FtpsError, FtpsErrorKind

_LOGGER = logging.getLogger(__name__)

URL_PREFIX: Final = f"/api/{DOMAIN}/media"
_REGISTERED: Final[HassKey[bool]] = HassKey(f"{DOMAIN}_media_view")


@callback
def async_register_view(hass: HomeAssistant) -> None:
    """Register the view once, when Home Assistant serves HTTP.

    Called at setup (so a signed URL works right after a restart) and by the media source.
    """
    if hass.data.get(_REGISTERED) or "http" not in hass.config.components:
        return
    try:
        hass.http.register_view(BambuMediaView(hass))
    except RuntimeError:
        # A router already serving refuses new routes: only aiohttp's test servers, since Home
        # Assistant's own server allows registering after start.
        _LOGGER.debug("HTTP router frozen: the media view is not available")
        return
    hass.data[_REGISTERED] = True


def media_url(entry_id: str, path: str) -> str:
    """The (unsigned) URL of a file on a printer."""
    return f"{URL_PREFIX}/{entry_id}{quote(path)}"


def _byte_range(request: web.Request, size: int) -> tuple[int, int] | None:
    """(start, length) asked for, (0, size) without a Range header; None if unsatisfiable."""
    try:
        wanted = request.http_range
    except ValueError:
        return None
    start, stop = wanted.start, wanted.stop
    if start is None and stop is None:
        return 0, size
    if start is None:  # never: aiohttp turns "bytes=-N" into a negative start
        return None
    if start < 0:  # the last -start bytes
        start = max(0, size + start)
        stop = size
    stop = size if stop is None else min(stop, size)
    if start >= size or stop <= start:
        return None
    return start, stop - start


class BambuMediaView(HomeAssistantView):
    """Timelapses and print files, streamed from the printer (authenticated)."""

    url = URL_PREFIX + "/{entry_id}/{path:.+}"
    name = f"api:{DOMAIN}:media"
    requires_auth = True

    def __init__(self, hass: HomeAssistant) -> None:
        """Bind to Home Assistant."""
        self.hass = hass

    async def get(self, request: web.Request, entry_id: str, path: str) -> web.StreamResponse:
        """Stream the file, or the part of it the Range header asks for."""
        entry = loaded_entry(self.hass, entry_id)
        try:
            path = normalize_path(path)
        except HomeAssistantError:
            return web.Response(status=HTTPStatus.BAD_REQUEST)
        if entry is None or not (is_video(path) or is_print_file(path)):
            return web.Response(status=HTTPStatus.NOT_FOUND)
        ftps = entry.runtime_data.ftps
        try:
            size = await ftps.async_size(path)
        except FtpsError as err:
            return _error_response(err)
        byte_range = _byte_range(request, size)
        if byte_range is None:
            return web.Response(
                status=HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE,
                headers={"Content-Range": f"bytes */{size}"},
            )
        start, length = byte_range
        partial = request.headers.get("Range") is not None
        response = web.StreamResponse(
            status=HTTPStatus.PARTIAL_CONTENT if partial else HTTPStatus.OK,
            headers={
                "Content-Type": content_type(path),
                "Accept-Ranges": "bytes",
                "Cache-Control": "private, no-store",
            },
        )
        response.content_length = length
        if partial:
            response.headers["Content-Range"] = f"bytes {start}-{start + length - 1}/{size}"
        await response.prepare(request)
        # A viewer that seeks or closes the tab ends the response: the read stops with it.
        with contextlib.suppress(ConnectionResetError, FtpsError):
            async with contextlib.aclosing(
                ftps.async_read(path, offset=start, length=length)
            ) as chunks:
                async for chunk in chunks:
                    await response.write(chunk)
            await response.write_eof()
        return response


def _error_response(err: FtpsError) -> web.Response:
    if err.kind is FtpsErrorKind.NOT_FOUND:
        return web.Response(status=HTTPStatus.NOT_FOUND)
    if err.kind is FtpsErrorKind.TIMEOUT:
        return web.Response(status=HTTPStatus.GATEWAY_TIMEOUT)
    return web.Response(status=HTTPStatus.BAD_GATEWAY, text=f"printer: {err.kind}")
