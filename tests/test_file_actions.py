"""print_file, upload_file and skip_objects against the virtual printer (MQTT acks, FTPS)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from homeassistant.core import Event, HomeAssistant, callback
from homeassistant.exceptions import HomeAssistantError, ServiceValidationError
from homeassistant.helpers import device_registry as dr
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.bambu_lan.const import DOMAIN
from custom_components.bambu_lan.file_services import EVENT_UPLOAD_PROGRESS
from custom_components.bambu_lan.printer import session as client
from tests.helpers import async_setup_printer
from tests.virtual_printer.printer import PrinterFactory, VirtualPrinter

pytestmark = pytest.mark.usefixtures("trust_test_cas")


async def _setup(
    hass: HomeAssistant, virtual_printer: PrinterFactory, model: str = "X1C"
) -> tuple[VirtualPrinter, MockConfigEntry, str]:
    printer = virtual_printer(model, ftps=True)
    entry = await async_setup_printer(hass, printer, ftps_port=printer.ftps_port)
    device = dr.async_get(hass).async_get_device_by_identifier(
        (DOMAIN, printer.serial), entry.entry_id
    )
    assert device is not None
    return printer, entry, device.id


async def _call(hass: HomeAssistant, service: str, device_id: str, **data: Any) -> None:
    await hass.services.async_call(DOMAIN, service, {"device_id": device_id, **data}, blocking=True)


def _bodies(printer: VirtualPrinter, command: str) -> list[dict[str, Any]]:
    return [
        body
        for request in printer.received_commands()
        for body in request.values()
        if isinstance(body, dict) and body.get("command") == command
    ]


async def test_print_file_acknowledged(
    hass: HomeAssistant, virtual_printer: PrinterFactory
) -> None:
    """project_file with the chosen options; the call returns once the printer accepted it."""
    printer, _entry, device_id = await _setup(hass, virtual_printer)
    printer.add_file("/cache/benchy.gcode.3mf", b"PK")
    await _call(
        hass,
        "print_file",
        device_id,
        path="cache/benchy.gcode.3mf",
        plate=2,
        ams_mapping=[1, -1],
        bed_levelling=False,
        timelapse=True,
    )
    [body] = _bodies(printer, "project_file")
    assert body["param"] == "Metadata/plate_2.gcode"
    assert body["url"] == "ftp:///cache/benchy.gcode.3mf"
    assert body["file"] == "/cache/benchy.gcode.3mf"
    assert body["subtask_name"] == "benchy"
    assert body["ams_mapping"] == [1, -1]
    assert body["use_ams"] is True
    assert body["bed_levelling"] is False
    assert body["flow_cali"] is True
    assert body["timelapse"] is True
    assert printer.state()["gcode_state"] == "PREPARE"


async def test_print_file_refused_and_timed_out(
    hass: HomeAssistant, virtual_printer: PrinterFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A refusal and a missing acknowledgement are translated errors; bad paths never go out."""
    printer, _entry, device_id = await _setup(hass, virtual_printer, "P1S")
    printer.fault("refuse_next", reason="sdcard busy")
    with pytest.raises(HomeAssistantError) as refused:
        await _call(hass, "print_file", device_id, path="/cube.3mf")
    assert refused.value.translation_key == "command_failed"
    assert refused.value.translation_placeholders["reason"] == "sdcard busy"

    monkeypatch.setattr(client, "COMMAND_TIMEOUT", 0.5)
    printer.fault("ignore_next")
    with pytest.raises(HomeAssistantError) as timed_out:
        await _call(hass, "print_file", device_id, path="/cube.3mf")
    assert timed_out.value.translation_key == "command_timeout"

    printer.clear_commands()
    for path, key in (("/notes.txt", "not_a_print_file"), ("../x.3mf", "invalid_path")):
        with pytest.raises(ServiceValidationError) as invalid:
            await _call(hass, "print_file", device_id, path=path)
        assert invalid.value.translation_key == key
    assert _bodies(printer, "project_file") == []


async def test_skip_objects(hass: HomeAssistant, virtual_printer: PrinterFactory) -> None:
    """skip_objects sends the ids and waits for the acknowledgement."""
    printer, _entry, device_id = await _setup(hass, virtual_printer)
    await _call(hass, "skip_objects", device_id, object_ids=[512, "1024"])
    [body] = _bodies(printer, "skip_objects")
    assert body["obj_list"] == [512, 1024]
    printer.fault("refuse_next", reason="not printing")
    with pytest.raises(HomeAssistantError) as refused:
        await _call(hass, "skip_objects", device_id, object_ids=[512])
    assert refused.value.translation_key == "command_failed"


async def test_upload_file(
    hass: HomeAssistant, virtual_printer: PrinterFactory, tmp_path: Path
) -> None:
    """A file from a media folder goes to the printer, with progress events on the way."""
    printer, _entry, device_id = await _setup(hass, virtual_printer)
    media = tmp_path / "media"
    media.mkdir()
    hass.config.media_dirs = {"local": str(media)}
    source = media / "cube.gcode.3mf"
    source.write_bytes(bytes(range(256)) * 8192)  # 2 MiB: eight chunks
    events: list[Event] = []

    @callback
    def record(event: Event) -> None:
        events.append(event)

    hass.bus.async_listen(EVENT_UPLOAD_PROGRESS, record)

    await _call(hass, "upload_file", device_id, source=str(source))
    await hass.async_block_till_done()
    assert (printer.sdcard / "cube.gcode.3mf").read_bytes() == source.read_bytes()
    percents = [event.data["percent"] for event in events]
    assert percents == sorted(percents)
    assert percents[-1] == 100
    assert len(percents) <= 100 // 5 + 1
    assert events[-1].data == {
        "device_id": device_id,
        "serial": printer.serial,
        "destination": "/cube.gcode.3mf",
        "sent": 2 * 1024 * 1024,
        "total": 2 * 1024 * 1024,
        "percent": 100,
    }

    await _call(hass, "upload_file", device_id, source=str(source), destination="/cache/a.3mf")
    assert (printer.sdcard / "cache" / "a.3mf").exists()


async def test_upload_file_refuses_other_paths(
    hass: HomeAssistant, virtual_printer: PrinterFactory, tmp_path: Path
) -> None:
    """Only allowed directories and media folders; nothing is sent otherwise."""
    printer, _entry, device_id = await _setup(hass, virtual_printer)
    secret = tmp_path / "secrets.yaml"
    secret.write_text("x")
    hass.config.media_dirs = {"local": str(tmp_path / "media")}
    (tmp_path / "media").mkdir()
    for source in (str(secret), str(tmp_path / "media" / ".." / "secrets.yaml")):
        with pytest.raises(ServiceValidationError) as refused:
            await _call(hass, "upload_file", device_id, source=source)
        assert refused.value.translation_key == "source_not_allowed"
    with pytest.raises(ServiceValidationError) as missing:
        await _call(hass, "upload_file", device_id, source=str(tmp_path / "media" / "none.3mf"))
    assert missing.value.translation_key == "source_not_found"

    hass.config.allowlist_external_dirs = {str(tmp_path)}
    printer.start_ftps("unknown_ca")
    with pytest.raises(HomeAssistantError) as tls:
        await _call(hass, "upload_file", device_id, source=str(secret))
    assert tls.value.translation_key == "ftps_tls"
    assert not (printer.sdcard / "secrets.yaml").exists()
    assert [event["verb"] for event in printer.ftps_log()].count("PASS") == 0
