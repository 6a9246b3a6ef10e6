"""The camera entity against a virtual printer's camera (real TLS, real Home Assistant camera)."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from homeassistant.components.camera import async_get_image, async_get_stream_source
from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers import issue_registry as ir
import pytest
from pytest_homeassistant_custom_component.components.diagnostics import (
    get_diagnostics_for_config_entry,
)
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator

from custom_components.bambu_lan import camera as camera_platform
from custom_components.bambu_lan.const import CONF_CA_VERIFIED, CONF_PINNED_CERT, DOMAIN
from custom_components.bambu_lan.printer import camera as camera_module
from custom_components.bambu_lan.printer.tls import PrinterTLSError
from tests.helpers import async_setup_printer, wait_until
from tests.virtual_printer.camera_server import make_frames
from tests.virtual_printer.pki import TestCAs, issue_server
from tests.virtual_printer.printer import PrinterFactory, VirtualPrinter

pytestmark = pytest.mark.usefixtures("trust_test_cas")

ENTITY = "camera.p1s_camera"


async def setup(
    hass: HomeAssistant, virtual_printer: PrinterFactory, model: str = "P1S", **camera: Any
) -> tuple[Any, VirtualPrinter]:
    printer = virtual_printer(model, camera={"fps": 20, **camera})
    entry = await async_setup_printer(hass, printer, title=model)
    assert entry.state is ConfigEntryState.LOADED
    return entry, printer


async def test_snapshots_share_one_connection(
    hass: HomeAssistant, virtual_printer: PrinterFactory
) -> None:
    entry, printer = await setup(hass, virtual_printer)
    assert printer.camera is not None
    state = hass.states.get(ENTITY)
    assert state is not None
    assert state.state == "idle"
    assert printer.camera.stats()["connections"] == 0  # nothing opens until it is needed

    image = await async_get_image(hass, ENTITY)
    assert image.content_type == "image/jpeg"
    assert image.content in make_frames()
    await async_get_image(hass, ENTITY)
    assert printer.camera.stats()["connections"] == 1

    assert await hass.config_entries.async_unload(entry.entry_id)
    await wait_until(lambda: printer.camera is not None and not printer.camera.stats()["active"])


async def test_mjpeg_stream_and_idle_close(
    hass: HomeAssistant, hass_client: ClientSessionGenerator, virtual_printer: PrinterFactory
) -> None:
    entry, printer = await setup(hass, virtual_printer)
    assert printer.camera is not None
    entry.runtime_data.camera.jpeg.idle_timeout = 0.3
    client = await hass_client()
    response = await client.get(f"/api/camera_proxy_stream/{ENTITY}")
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("multipart/x-mixed-replace")
    body = b""
    async with asyncio.timeout(10):
        while body.count(b"--frameboundary") < 4:
            body += await response.content.read(65536)
    assert b"Content-Type: image/jpeg" in body
    assert any(frame in body for frame in make_frames())
    # A snapshot while the viewer watches uses the same upstream.
    await async_get_image(hass, ENTITY)
    assert printer.camera.stats()["connections"] == 1

    response.close()  # the viewer leaves: the upstream closes after the idle timeout
    await wait_until(lambda: not entry.runtime_data.camera.jpeg.connected)
    await wait_until(lambda: printer.camera is not None and not printer.camera.stats()["active"])


async def test_wrong_code_gives_error_then_repair(
    hass: HomeAssistant, virtual_printer: PrinterFactory, caplog: pytest.LogCaptureFixture
) -> None:
    entry, printer = await setup(hass, virtual_printer)
    assert printer.camera is not None
    printer.camera.call("access_code", value="N3wC0de9")
    issue_registry = ir.async_get(hass)
    issue_id = f"camera_invalid_auth_{entry.entry_id}"
    for attempt in range(3):
        with pytest.raises(HomeAssistantError) as caught:
            await async_get_image(hass, ENTITY)
        assert caught.value.translation_key == "camera_invalid_auth"
        opened = issue_registry.async_get_issue(DOMAIN, issue_id) is not None
        assert opened == (attempt == 2)
    assert printer.camera.stats()["auth_failed"] == 3
    assert printer.access_code not in caplog.text

    printer.camera.call("access_code", value=printer.access_code)  # the code works again
    await async_get_image(hass, ENTITY)
    assert issue_registry.async_get_issue(DOMAIN, issue_id) is None


async def test_impostor_on_camera_port_gets_nothing(
    hass: HomeAssistant, virtual_printer: PrinterFactory, test_cas: TestCAs
) -> None:
    _entry, printer = await setup(hass, virtual_printer)
    assert printer.camera is not None
    printer.camera.serve(issue_server("other_serial", printer.serial, test_cas))
    with pytest.raises(HomeAssistantError) as caught:
        await async_get_image(hass, ENTITY)
    assert caught.value.translation_key == "tls_serial_mismatch"
    stats = printer.camera.stats()
    assert stats["handshakes"] == 0
    assert stats["received"] == [0]


async def test_unreachable_camera(hass: HomeAssistant, virtual_printer: PrinterFactory) -> None:
    _entry, printer = await setup(hass, virtual_printer)
    assert printer.camera is not None
    printer.camera.close()
    printer.camera = None
    with pytest.raises(HomeAssistantError) as caught:
        await async_get_image(hass, ENTITY)
    assert caught.value.translation_key == "camera_unavailable"


async def test_mjpeg_refused_answers_502_then_repair(
    hass: HomeAssistant, hass_client: ClientSessionGenerator, virtual_printer: PrinterFactory
) -> None:
    entry, printer = await setup(hass, virtual_printer)
    assert printer.camera is not None
    printer.camera.call("access_code", value="N3wC0de9")
    client = await hass_client()
    issue_id = f"camera_invalid_auth_{entry.entry_id}"
    for attempt in range(3):
        response = await client.get(f"/api/camera_proxy_stream/{ENTITY}")
        assert response.status == 502
        opened = ir.async_get(hass).async_get_issue(DOMAIN, issue_id) is not None
        assert opened == (attempt == 2)
    assert printer.camera.stats()["auth_failed"] == 3


async def test_mjpeg_viewer_ends_when_an_impostor_takes_over(
    hass: HomeAssistant,
    hass_client: ClientSessionGenerator,
    virtual_printer: PrinterFactory,
    test_cas: TestCAs,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The stream drops and the camera port now presents another printer's certificate: the
    viewer's stream ends instead of retrying, and the impostor got no auth packet."""
    monkeypatch.setattr(camera_module, "RETRY_INITIAL", 0.05)
    entry, printer = await setup(hass, virtual_printer)
    assert printer.camera is not None
    client = await hass_client()
    response = await client.get(f"/api/camera_proxy_stream/{ENTITY}")
    assert response.status == 200
    body = b""
    async with asyncio.timeout(10):
        while body.count(b"--frameboundary") < 3:
            body += await response.content.read(65536)
    before = len(printer.camera.stats()["received"])
    printer.camera.serve(issue_server("other_serial", printer.serial, test_cas))
    printer.camera.call("drop")
    async with asyncio.timeout(10):
        while await response.content.read(65536):
            pass  # until the stream ends
    assert printer.camera.stats()["received"][before:] == [0]
    await wait_until(lambda: not entry.runtime_data.camera.jpeg.connected)
    assert isinstance(entry.runtime_data.camera.jpeg.error, PrinterTLSError)


async def test_pinned_printer_camera(hass: HomeAssistant, virtual_printer: PrinterFactory) -> None:
    """A printer trusted by its pinned certificate: the camera port is verified by that pin."""
    printer = virtual_printer("P1S", "unknown_ca", camera={"fps": 20})
    entry = await async_setup_printer(
        hass,
        printer,
        title="P1S",
        options={CONF_PINNED_CERT: printer.identity.leaf.pem.decode()},
        **{CONF_CA_VERIFIED: False},
    )
    assert entry.state is ConfigEntryState.LOADED
    image = await async_get_image(hass, ENTITY)
    assert image.content in make_frames()


@pytest.mark.parametrize(("model", "has_camera"), [("A1MINI", True), ("X1C", True)])
async def test_camera_per_model(
    hass: HomeAssistant, virtual_printer: PrinterFactory, model: str, has_camera: bool
) -> None:
    printer = virtual_printer(model)
    await async_setup_printer(hass, printer, title=model)
    assert (hass.states.get(f"camera.{model.lower()}_camera") is not None) == has_camera


# --- RTSPS through the relay (X1, H2) -----------------------------------------------------------

LIVEVIEW_ON = {"ipcam": {"rtsp_url": "rtsps://192.0.2.7/streaming/live/1"}}


async def test_liveview_disabled_makes_the_camera_unavailable(
    hass: HomeAssistant, virtual_printer: PrinterFactory
) -> None:
    entry, printer = await setup(hass, virtual_printer, "X1C")
    printer.set_state(LIVEVIEW_ON)
    issue_registry = ir.async_get(hass)
    issue_id = f"liveview_disabled_{entry.entry_id}"
    state = hass.states.get("camera.x1c_camera")
    assert state is not None
    assert state.state != "unavailable"
    assert issue_registry.async_get_issue(DOMAIN, issue_id) is None

    printer.set_state({"ipcam": {"rtsp_url": "disable"}})
    await wait_until(lambda: hass.states.get("camera.x1c_camera").state == "unavailable")
    issue = issue_registry.async_get_issue(DOMAIN, issue_id)
    assert issue is not None
    assert issue.translation_key == "liveview_disabled"
    with pytest.raises(HomeAssistantError) as caught:
        await async_get_image(hass, "camera.x1c_camera")
    assert caught.value.translation_key == "camera_liveview_off"
    assert printer.camera is not None
    assert printer.camera.stats()["connections"] == 0  # nothing asked the printer

    printer.set_state(LIVEVIEW_ON)
    await wait_until(lambda: hass.states.get("camera.x1c_camera").state != "unavailable")
    assert issue_registry.async_get_issue(DOMAIN, issue_id) is None


@pytest.mark.parametrize("auth", ["digest", "basic"])
async def test_stream_source_and_snapshot_through_the_relay(
    hass: HomeAssistant,
    hass_client: ClientSessionGenerator,
    virtual_printer: PrinterFactory,
    caplog: pytest.LogCaptureFixture,
    auth: str,
) -> None:
    caplog.set_level(logging.DEBUG)
    entry, printer = await setup(hass, virtual_printer, "X1C", auth=auth)
    assert printer.camera is not None
    printer.set_state(LIVEVIEW_ON)
    await wait_until(lambda: hass.states.get("camera.x1c_camera").state != "unavailable")

    source = await async_get_stream_source(hass, "camera.x1c_camera")
    assert source is not None
    relay = await entry.runtime_data.camera.async_relay()
    assert source == relay.url
    assert source.startswith(f"rtsp://127.0.0.1:{relay.local_port}/{relay.token}/")
    assert printer.access_code not in source

    image = await async_get_image(hass, "camera.x1c_camera")
    assert image.content.startswith(b"\xff\xd8")
    again = await async_get_image(hass, "camera.x1c_camera")  # cached briefly
    assert again.content == image.content
    stats = printer.camera.stats()
    assert stats["connections"] == 1
    assert set(stats["schemes"]) == {auth}
    await wait_until(lambda: relay.sessions == 0)  # ffmpeg left: the upstream is closed

    # The access code is in no log line; neither it nor the relay's token is in diagnostics.
    assert printer.access_code not in caplog.text
    diagnostics = json.dumps(await get_diagnostics_for_config_entry(hass, hass_client, entry))
    assert printer.access_code not in diagnostics
    assert relay.token not in diagnostics
    assert '"upstreams": 1' in diagnostics

    assert await hass.config_entries.async_unload(entry.entry_id)
    with pytest.raises(OSError):
        await asyncio.open_connection("127.0.0.1", relay.local_port)


async def test_relay_refusals_and_impostor(
    hass: HomeAssistant,
    virtual_printer: PrinterFactory,
    test_cas: TestCAs,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(camera_platform, "SNAPSHOT_CACHE", 0.0)
    entry, printer = await setup(hass, virtual_printer, "X1C")
    assert printer.camera is not None
    printer.set_state(LIVEVIEW_ON)
    await wait_until(lambda: hass.states.get("camera.x1c_camera").state != "unavailable")
    coordinator = entry.runtime_data

    printer.camera.call("access_code", value="N3wC0de9")
    with pytest.raises(HomeAssistantError) as caught:
        await async_get_image(hass, "camera.x1c_camera")
    assert caught.value.translation_key == "camera_invalid_auth"
    for _ in range(2):
        coordinator.camera.note_auth(accepted=False)
    issue_id = f"camera_invalid_auth_{entry.entry_id}"
    assert ir.async_get(hass).async_get_issue(DOMAIN, issue_id) is not None

    printer.camera.call("access_code", value=printer.access_code)
    printer.camera.serve(issue_server("unknown_ca", printer.serial, test_cas))
    before = len(printer.camera.stats()["received"])
    with pytest.raises(HomeAssistantError) as caught:
        await async_get_image(hass, "camera.x1c_camera")
    assert caught.value.translation_key == "tls_untrusted_issuer"
    assert printer.camera.stats()["received"][before:] == [0]


async def test_relay_to_an_unreachable_camera(
    hass: HomeAssistant, virtual_printer: PrinterFactory
) -> None:
    entry, printer = await setup(hass, virtual_printer, "X1C")
    assert printer.camera is not None
    printer.set_state(LIVEVIEW_ON)
    await wait_until(lambda: hass.states.get("camera.x1c_camera").state != "unavailable")
    printer.camera.close()
    printer.camera = None
    with pytest.raises(HomeAssistantError) as caught:
        await async_get_image(hass, "camera.x1c_camera")
    assert caught.value.translation_key == "camera_unavailable"
    relay = await entry.runtime_data.camera.async_relay()
    assert isinstance(relay.error, OSError)
    assert relay.upstreams == 0
