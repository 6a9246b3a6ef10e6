"""3MF parsing (`printer/threemf.py`): the job's details, and hostile files rejected clearly."""

from __future__ import annotations

import io
import zipfile

import pytest

from custom_components.bambu_lan.printer import threemf
from custom_components.bambu_lan.printer.threemf import (
    JobObject,
    ThreeMFError,
    ThreeMFErrorKind,
    parse_3mf,
    plate_from_gcode_file,
)
from tests.virtual_printer.sample3mf import png, sample_3mf


def _zip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def _rejected(data: bytes, kind: ThreeMFErrorKind, plate: int | None = None) -> str:
    with pytest.raises(ThreeMFError) as caught:
        parse_3mf(data, plate)
    assert caught.value.kind is kind
    return str(caught.value)


def test_details_of_a_sliced_project() -> None:
    """Weight, length, bed type, prediction, objects and the preview of the chosen plate."""
    thumbnail = png(4, 3)
    details = parse_3mf(sample_3mf(thumbnail=thumbnail))
    assert details.plate == 1
    assert details.weight_g == pytest.approx(16.9)
    assert details.length_m == pytest.approx(5.62)
    assert details.bed_type == "textured_plate"
    assert details.prediction_s == 1800
    assert details.objects == (JobObject(512, "Cube"), JobObject(1024, "Benchy"))
    assert [f.type for f in details.filaments] == ["PLA", "PETG"]
    assert details.thumbnail == thumbnail

    second = parse_3mf(sample_3mf(plates=3), 2)
    assert (second.plate, second.prediction_s) == (2, 3600)
    _rejected(sample_3mf(plates=3), ThreeMFErrorKind.MALFORMED, 4)
    _rejected(sample_3mf(plates=2), ThreeMFErrorKind.MALFORMED)  # which plate? say so


def test_fallbacks() -> None:
    """No weight in the metadata: the filaments' sum; no plate JSON: the project's bed type."""
    config = (
        b'<config><plate><metadata key="index" value="1"/>'
        b'<object identify_id="7" name=""/><object identify_id="x" name="bad"/>'
        b'<filament id="1" type="PLA" used_m="2.5" used_g="7.5"/>'
        b'<filament id="2" type="PLA" used_m="nan?" used_g=""/></plate></config>'
    )
    details = parse_3mf(
        _zip(
            {
                "Metadata/slice_info.config": config,
                "Metadata/project_settings.config": b'{"curr_bed_type": "Cool Plate"}',
            }
        )
    )
    assert details.weight_g == 7.5
    assert details.length_m == 2.5
    assert details.bed_type == "Cool Plate"
    assert details.objects == (JobObject(7, "#7"),)
    assert details.thumbnail is None
    assert details.prediction_s is None
    config = b'<config><plate><metadata key="index" value="1"/></plate></config>'
    bare = parse_3mf(_zip({"Metadata/slice_info.config": config}))
    assert (bare.weight_g, bare.length_m, bare.bed_type) == (None, None, None)


def test_plate_from_the_report() -> None:
    """The plate number in a report's gcode_file, when there is one."""
    assert plate_from_gcode_file("/data/Metadata/plate_3.gcode") == 3
    assert plate_from_gcode_file("benchy.gcode.3mf") is None
    assert plate_from_gcode_file(None) is None


def test_malformed_files() -> None:
    """Not a zip, not sliced, broken XML, entity tricks, broken JSON: MALFORMED, saying what."""
    assert "not a zip" in _rejected(b"this is no zip", ThreeMFErrorKind.MALFORMED)
    assert "not sliced" in _rejected(
        _zip({"3D/3dmodel.model": b"<model/>"}), ThreeMFErrorKind.MALFORMED
    )
    assert "slice_info" in _rejected(
        _zip({"Metadata/slice_info.config": b"<config><plate>"}), ThreeMFErrorKind.MALFORMED
    )
    laughs = (
        b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
        b'<!ENTITY lol2 "&lol;&lol;&lol;&lol;">]><config>&lol2;</config>'
    )
    assert "document type" in _rejected(
        _zip({"Metadata/slice_info.config": laughs}), ThreeMFErrorKind.MALFORMED
    )
    assert "no plate" in _rejected(
        _zip({"Metadata/slice_info.config": b"<config/>"}), ThreeMFErrorKind.MALFORMED
    )
    config = b'<config><plate><metadata key="index" value="1"/></plate></config>'
    assert "plate_1.json" in _rejected(
        _zip({"Metadata/slice_info.config": config, "Metadata/plate_1.json": b"{nope"}),
        ThreeMFErrorKind.MALFORMED,
    )
    # A member whose data is corrupt (CRC) is reported too.
    good = bytearray(_zip({"Metadata/slice_info.config": config * 50}))
    offset = good.find(b"Metadata/slice_info.config") + len("Metadata/slice_info.config") + 4
    good[offset] ^= 0xFF
    with pytest.raises(ThreeMFError):
        parse_3mf(bytes(good))


def test_huge_files_and_zip_bombs(monkeypatch: pytest.MonkeyPatch) -> None:
    """Too big a file, too big or too compressed a member, too many members: rejected."""
    monkeypatch.setattr(threemf, "MAX_FILE_BYTES", 1000)
    assert "bytes" in _rejected(bytes(2000), ThreeMFErrorKind.TOO_LARGE)
    monkeypatch.undo()

    bomb = _zip({"Metadata/slice_info.config": b"<config>" + b" " * 5_000_000 + b"</config>"})
    assert len(bomb) < 20_000
    assert "ratio" in _rejected(bomb, ThreeMFErrorKind.ZIP_BOMB)

    monkeypatch.setattr(threemf, "MAX_MEMBER_BYTES", 100)
    assert "slice_info" in _rejected(sample_3mf(), ThreeMFErrorKind.TOO_LARGE)
    monkeypatch.undo()

    monkeypatch.setattr(threemf, "MAX_MEMBERS", 3)
    assert "members" in _rejected(sample_3mf(), ThreeMFErrorKind.ZIP_BOMB)


def test_a_member_larger_than_its_header_says(monkeypatch: pytest.MonkeyPatch) -> None:
    """Reading stops at the limit even when the declared size lies."""
    data = sample_3mf()
    original = zipfile.ZipFile.getinfo

    def lying(self: zipfile.ZipFile, name: str) -> zipfile.ZipInfo:
        info = original(self, name)
        if name.endswith("slice_info.config"):
            info.file_size = 10  # the member is much larger
        return info

    monkeypatch.setattr(zipfile.ZipFile, "getinfo", lying)
    monkeypatch.setattr(threemf, "MAX_MEMBER_BYTES", 100)
    with pytest.raises(ThreeMFError):
        parse_3mf(data)
