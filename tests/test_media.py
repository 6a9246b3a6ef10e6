"""Media → Bambu Lab LAN: browsing, playback through the authenticated view, and deletion.

Everything goes through the real path: the integration talks FTPS (verified TLS, session reuse)
to the virtual printer's server, and the view is fetched over HTTP.
"""

from __future__ import annotations

import asyncio
import hashlib
from http import HTTPStatus
import time
import tracemalloc
from typing import Any

from homeassistant.components import media_source
from homeassistant.components.media_player.browse_media import async_process_play_media_url
from homeassistant.components.media_player.errors import BrowseError
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError, ServiceValidationError
from homeassistant.helpers import device_registry as dr
from homeassistant.setup import async_setup_component
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator

from custom_components.bambu_lan.const import DOMAIN
from custom_components.bambu_lan.media_view import media_url
from tests.helpers import async_setup_printer
from tests.virtual_printer.printer import PrinterFactory, VirtualPrinter

pytestmark = pytest.mark.usefixtures("trust_test_cas")

ROOT = f"media-source://{DOMAIN}"


async def _setup(
    hass: HomeAssistant, virtual_printer: PrinterFactory, model: str = "X1C"
) -> tuple[VirtualPrinter, MockConfigEntry]:
    printer = virtual_printer(model, ftps=True)
    assert await async_setup_component(hass, "media_source", {})
    entry = await async_setup_printer(hass, printer, ftps_port=printer.ftps_port)
    assert entry.state.recoverable or entry.state.value == "loaded"
    return printer, entry


def _device_id(hass: HomeAssistant, printer: VirtualPrinter, entry: MockConfigEntry) -> str:
    device = dr.async_get(hass).async_get_device_by_identifier(
        (DOMAIN, printer.serial), entry.entry_id
    )
    assert device is not None
    return device.id


@pytest.mark.parametrize(
    ("model", "ext", "mime"), [("X1C", "mp4", "video/mp4"), ("P1S", "avi", "video/x-msvideo")]
)
async def test_browse(
    hass: HomeAssistant, virtual_printer: PrinterFactory, model: str, ext: str, mime: str
) -> None:
    """Printer → Timelapses (newest first, playable) / Files (print files, root and cache)."""
    printer, entry = await _setup(hass, virtual_printer, model)
    printer.add_timelapse("video_2026-01-01_09-00-00", b"old")
    printer.add_timelapse("video_2026-01-02_10-00-00", b"new")
    printer.add_file("/timelapse/thumbnail.jpg", b"not a video")
    printer.add_file("/cube.gcode.3mf", b"PK")
    printer.add_file("/cache/benchy.3mf", b"PK")
    printer.add_file("/notes.txt", b"ignored")

    root = await media_source.async_browse_media(hass, ROOT)
    assert root.title == "Bambu Lab LAN"
    assert [child.title for child in root.children or []] == [entry.title]

    node = await media_source.async_browse_media(hass, f"{ROOT}/{entry.entry_id}")
    assert [child.title for child in node.children or []] == ["Timelapses", "Files"]

    timelapses = await media_source.async_browse_media(hass, f"{ROOT}/{entry.entry_id}/timelapse")
    children = timelapses.children or []
    assert [child.title for child in children] == [
        f"video_2026-01-02_10-00-00.{ext}",
        f"video_2026-01-01_09-00-00.{ext}",
    ]
    assert all(child.can_play and child.media_content_type == mime for child in children)

    files = await media_source.async_browse_media(hass, f"{ROOT}/{entry.entry_id}/files")
    assert [(child.title, child.can_play) for child in files.children or []] == [
        ("benchy.3mf", False),
        ("cube.gcode.3mf", False),
    ]

    resolved = await media_source.async_resolve_media(hass, children[0].media_content_id, None)
    assert resolved.url == media_url(entry.entry_id, f"/timelapse/video_2026-01-02_10-00-00.{ext}")
    assert resolved.mime_type == mime


async def test_browse_errors(hass: HomeAssistant, virtual_printer: PrinterFactory) -> None:
    """Unknown printers and folders, unplayable items and a failing card are clear errors."""
    printer, entry = await _setup(hass, virtual_printer)
    with pytest.raises(BrowseError):
        await media_source.async_browse_media(hass, f"{ROOT}/no-such-entry")
    with pytest.raises(BrowseError):
        await media_source.async_browse_media(hass, f"{ROOT}/{entry.entry_id}/elsewhere")
    with pytest.raises(media_source.Unresolvable):
        await media_source.async_resolve_media(
            hass, f"{ROOT}/{entry.entry_id}/file/cube.gcode.3mf", None
        )
    with pytest.raises(media_source.Unresolvable):
        await media_source.async_resolve_media(hass, f"{ROOT}/{entry.entry_id}/timelapse", None)
    printer.start_ftps("unknown_ca")  # an impostor now answers on the FTPS port
    with pytest.raises(BrowseError, match="tls"):
        await media_source.async_browse_media(hass, f"{ROOT}/{entry.entry_id}/timelapse")
    assert [event["verb"] for event in printer.ftps_log()].count("PASS") == 0


async def test_playback_with_ranges(
    hass: HomeAssistant,
    virtual_printer: PrinterFactory,
    hass_client: ClientSessionGenerator,
    hass_client_no_auth: ClientSessionGenerator,
) -> None:
    """The view streams the file, honours ranges, and requires authentication."""
    printer, entry = await _setup(hass, virtual_printer)
    payload = bytes(range(256)) * 40
    path = printer.add_timelapse("video", payload)
    url = media_url(entry.entry_id, path)
    client = await hass_client()

    response = await client.get(url)
    assert response.status == HTTPStatus.OK
    assert response.headers["Content-Type"] == "video/mp4"
    assert response.headers["Accept-Ranges"] == "bytes"
    assert await response.read() == payload

    expectations: dict[str, tuple[int, bytes, str | None]] = {
        "bytes=10-19": (HTTPStatus.PARTIAL_CONTENT, payload[10:20], f"bytes 10-19/{len(payload)}"),
        "bytes=10000-": (HTTPStatus.PARTIAL_CONTENT, payload[10000:], None),
        "bytes=-24": (HTTPStatus.PARTIAL_CONTENT, payload[-24:], None),
        "bytes=5-999999": (HTTPStatus.PARTIAL_CONTENT, payload[5:], None),
    }
    for header, (status, body, content_range) in expectations.items():
        ranged = await client.get(url, headers={"Range": header})
        assert ranged.status == status, header
        assert await ranged.read() == body, header
        if content_range:
            assert ranged.headers["Content-Range"] == content_range

    for header in ("bytes=20000-", "bytes=abc"):
        refused = await client.get(url, headers={"Range": header})
        assert refused.status == HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE
        assert refused.headers["Content-Range"] == f"bytes */{len(payload)}"

    assert (await client.get(media_url(entry.entry_id, "/timelapse/none.mp4"))).status == 404
    assert (await client.get(media_url(entry.entry_id, "/etc/passwd"))).status == 404
    assert (await client.get(media_url("other", path))).status == 404
    assert (await client.get(f"/api/{DOMAIN}/media/{entry.entry_id}/a/../b.mp4")).status in {
        HTTPStatus.BAD_REQUEST,
        HTTPStatus.NOT_FOUND,
    }

    anonymous = await hass_client_no_auth()
    assert (await anonymous.get(url)).status == HTTPStatus.UNAUTHORIZED

    # What the frontend gets: a signed URL, fetched without a token.
    resolved = await media_source.async_resolve_media(
        hass, f"{ROOT}/{entry.entry_id}/file{path}", None
    )
    signed = async_process_play_media_url(hass, resolved.url, allow_relative_url=True)
    assert "authSig=" in signed
    assert printer.access_code not in signed
    fetched = await anonymous.get(signed)
    assert fetched.status == HTTPStatus.OK
    assert await fetched.read() == payload

    # Every data connection resumed the session; the client kept one control connection.
    data = [event["arg"] for event in printer.ftps_log() if event["verb"] == "DATA"]
    assert set(data) == {"resumed"}


async def test_view_when_the_printer_fails(
    hass: HomeAssistant, virtual_printer: PrinterFactory, hass_client: ClientSessionGenerator
) -> None:
    """An impostor or a silent printer: a gateway error, never the file from someone else."""
    printer, entry = await _setup(hass, virtual_printer)
    path = printer.add_timelapse("video", b"data")
    client = await hass_client()
    printer.start_ftps("other_serial")
    response = await client.get(media_url(entry.entry_id, path))
    assert response.status == HTTPStatus.BAD_GATEWAY
    coordinator: Any = entry.runtime_data
    coordinator.ftps.timeout = 0.3
    printer.start_ftps(delay=1.0)
    response = await client.get(media_url(entry.entry_id, path))
    assert response.status == HTTPStatus.GATEWAY_TIMEOUT


async def test_streaming_50_mb_through_the_view(
    hass: HomeAssistant, virtual_printer: PrinterFactory, hass_client: ClientSessionGenerator
) -> None:
    """Measured: a 50 MB timelapse goes printer → FTPS → view → HTTP with bounded memory."""
    size = 50 * 1024 * 1024
    printer, entry = await _setup(hass, virtual_printer)
    path = printer.add_timelapse("big", size=size)
    expected = hashlib.sha256((printer.sdcard / path.lstrip("/")).read_bytes()).hexdigest()
    client = await hass_client()
    digest = hashlib.sha256()
    received = 0
    # Debug mode's per-callback stacks fill linecache: not the transfer's memory (test_ftps).
    asyncio.get_running_loop().set_debug(False)
    tracemalloc.start()
    started = time.perf_counter()
    try:
        response = await client.get(media_url(entry.entry_id, path))
        assert response.status == HTTPStatus.OK
        assert response.content_length == size
        async for chunk in response.content.iter_chunked(256 * 1024):
            if not received:
                tracemalloc.reset_peak()
            digest.update(chunk)
            received += len(chunk)
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    elapsed = time.perf_counter() - started
    assert received == size
    assert digest.hexdigest() == expected
    print(f"\nview: streamed 50 MB in {elapsed:.2f} s, peak traced memory {peak / 1024:.0f} KiB")
    assert peak < 16 * 1024 * 1024  # vs. 50 MiB if it were read whole


async def test_delete_file(hass: HomeAssistant, virtual_printer: PrinterFactory) -> None:
    """Deleting needs confirm: true, a real path and a printer device."""
    printer, entry = await _setup(hass, virtual_printer)
    path = printer.add_timelapse("video", b"data")
    device_id = _device_id(hass, printer, entry)

    async def delete(**data: Any) -> None:
        await hass.services.async_call(
            DOMAIN, "delete_file", {"device_id": device_id, **data}, blocking=True
        )

    with pytest.raises(ServiceValidationError) as unconfirmed:
        await delete(path=path, confirm=False)
    assert unconfirmed.value.translation_key == "confirmation_required"
    assert (printer.sdcard / path.lstrip("/")).exists()

    for bad in ("/", "../etc/passwd", "/timelapse/a\r\nDELE /x"):
        with pytest.raises(ServiceValidationError) as invalid:
            await delete(path=bad, confirm=True)
        assert invalid.value.translation_key == "invalid_path"

    await delete(path=path, confirm=True)
    assert not (printer.sdcard / path.lstrip("/")).exists()

    with pytest.raises(ServiceValidationError) as missing:
        await delete(path=path, confirm=True)
    assert missing.value.translation_key == "file_not_found"

    with pytest.raises(ServiceValidationError) as not_printer:
        await hass.services.async_call(
            DOMAIN,
            "delete_file",
            {"device_id": "nope", "path": path, "confirm": True},
            blocking=True,
        )
    assert not_printer.value.translation_key == "device_not_printer"

    printer.start_ftps("unknown_ca")
    with pytest.raises(HomeAssistantError) as tls:
        await delete(path="/timelapse/other.mp4", confirm=True)
    assert tls.value.translation_key == "ftps_tls"
