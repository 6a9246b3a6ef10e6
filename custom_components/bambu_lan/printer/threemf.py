"""What a print job's 3MF says: plate preview, weight, filament length, bed type and objects.

No Home Assistant imports; part of the printer library. The file comes from the printer (over
verified FTPS) but is still treated as hostile input: the archive, each member read and the
compression ratio are bounded, so a malformed, huge or zip-bomb file is rejected with a clear
error instead of filling memory. XML with a document type (entity tricks) is refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
import io
import json
import re
from typing import Final
import xml.etree.ElementTree as ET
import zipfile
import zlib

MAX_FILE_BYTES: Final = 64 * 1024 * 1024  # what is fetched from the printer at most
MAX_MEMBER_BYTES: Final = 8 * 1024 * 1024  # per member read (XML, JSON, PNG)
MAX_MEMBERS: Final = 10_000
MAX_RATIO: Final = 100  # uncompressed / compressed, per member read

_PLATE_RE: Final = re.compile(r"plate_(\d+)\.gcode")


class ThreeMFErrorKind(StrEnum):
    """Why a 3MF was rejected."""

    MALFORMED = "malformed"
    TOO_LARGE = "too_large"
    ZIP_BOMB = "zip_bomb"


class ThreeMFError(Exception):
    """A 3MF that cannot be read safely."""

    def __init__(self, kind: ThreeMFErrorKind, detail: str) -> None:
        """`detail` names the member or the limit."""
        super().__init__(f"{kind}: {detail}")
        self.kind = kind
        self.detail = detail


@dataclass(frozen=True, slots=True)
class JobObject:
    """One object on the plate (its id is what `skip_objects` takes)."""

    id: int
    name: str


@dataclass(frozen=True, slots=True)
class JobFilament:
    """One filament the plate uses."""

    id: int
    type: str
    color: str
    used_m: float
    used_g: float


@dataclass(frozen=True, slots=True)
class JobDetails:
    """The plate being printed, as sliced."""

    plate: int
    weight_g: float | None
    length_m: float | None
    bed_type: str | None
    prediction_s: int | None
    objects: tuple[JobObject, ...]
    filaments: tuple[JobFilament, ...]
    thumbnail: bytes | None  # PNG


def plate_from_gcode_file(gcode_file: str | None) -> int | None:
    """The plate number in a report's `gcode_file` (e.g. /data/Metadata/plate_2.gcode)."""
    match = _PLATE_RE.search(gcode_file or "")
    return int(match.group(1)) if match else None


def _read(archive: zipfile.ZipFile, name: str) -> bytes | None:
    """One member, bounded however its header lies; None if absent."""
    try:
        info = archive.getinfo(name)
    except KeyError:
        return None
    if info.file_size > MAX_MEMBER_BYTES:
        raise ThreeMFError(ThreeMFErrorKind.TOO_LARGE, f"{name}: {info.file_size} bytes")
    if info.file_size > max(info.compress_size, 1) * MAX_RATIO:
        raise ThreeMFError(ThreeMFErrorKind.ZIP_BOMB, f"{name}: compression ratio")
    try:
        with archive.open(info) as member:
            data = member.read(MAX_MEMBER_BYTES + 1)
    except (zipfile.BadZipFile, zlib.error, OSError, EOFError, NotImplementedError) as err:
        raise ThreeMFError(ThreeMFErrorKind.MALFORMED, f"{name}: {err}") from err
    if len(data) > MAX_MEMBER_BYTES:
        raise ThreeMFError(ThreeMFErrorKind.ZIP_BOMB, f"{name}: larger than declared")
    return data


def _xml(data: bytes, name: str) -> ET.Element:
    if b"<!DOCTYPE" in data or b"<!ENTITY" in data:
        raise ThreeMFError(ThreeMFErrorKind.MALFORMED, f"{name}: document type not allowed")
    try:
        return ET.fromstring(data)  # noqa: S314 - no DTD, bounded size (checked above)
    except ET.ParseError as err:
        raise ThreeMFError(ThreeMFErrorKind.MALFORMED, f"{name}: {err}") from err


def _number(text: str | None) -> float | None:
    try:
        return float(text) if text not in {None, ""} else None
    except ValueError:
        return None


def _plate_element(config: ET.Element, plate: int | None) -> tuple[int, ET.Element]:
    plates: dict[int, ET.Element] = {}
    for element in config.iter("plate"):
        for meta in element.iter("metadata"):
            if meta.get("key") == "index" and (index := _number(meta.get("value"))) is not None:
                plates[int(index)] = element
    if not plates:
        raise ThreeMFError(ThreeMFErrorKind.MALFORMED, "slice_info.config: no plate")
    if plate in plates:
        return plate, plates[plate]
    if plate is None and len(plates) == 1:
        return next(iter(plates.items()))
    raise ThreeMFError(ThreeMFErrorKind.MALFORMED, f"slice_info.config: no plate {plate}")


def _bed_type(archive: zipfile.ZipFile, plate: int) -> str | None:
    for name, key in (
        (f"Metadata/plate_{plate}.json", "bed_type"),
        ("Metadata/project_settings.config", "curr_bed_type"),
    ):
        data = _read(archive, name)
        if data is None:
            continue
        try:
            value = json.loads(data).get(key)
        except (ValueError, AttributeError) as err:
            raise ThreeMFError(ThreeMFErrorKind.MALFORMED, f"{name}: {err}") from err
        if isinstance(value, str) and value:
            return value
    return None


def parse_3mf(data: bytes, plate: int | None = None) -> JobDetails:
    """The details of one plate (`None`: the only plate) of a sliced 3MF (blocking, CPU)."""
    if len(data) > MAX_FILE_BYTES:
        raise ThreeMFError(ThreeMFErrorKind.TOO_LARGE, f"{len(data)} bytes")
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, OSError, ValueError) as err:
        raise ThreeMFError(ThreeMFErrorKind.MALFORMED, f"not a zip archive: {err}") from err
    with archive:
        if len(archive.infolist()) > MAX_MEMBERS:
            raise ThreeMFError(ThreeMFErrorKind.ZIP_BOMB, "too many members")
        config_data = _read(archive, "Metadata/slice_info.config")
        if config_data is None:
            raise ThreeMFError(ThreeMFErrorKind.MALFORMED, "not sliced: no slice_info.config")
        number, element = _plate_element(_xml(config_data, "slice_info.config"), plate)
        meta = {m.get("key"): m.get("value") for m in element.iter("metadata")}
        objects = tuple(
            JobObject(int(identify), obj.get("name") or f"#{identify}")
            for obj in element.iter("object")
            if (identify := obj.get("identify_id") or "").isdigit()
        )
        filaments = tuple(
            JobFilament(
                int(_number(item.get("id")) or 0),
                item.get("type") or "",
                item.get("color") or "",
                _number(item.get("used_m")) or 0.0,
                _number(item.get("used_g")) or 0.0,
            )
            for item in element.iter("filament")
        )
        weight = _number(meta.get("weight"))
        if weight is None and filaments:
            weight = sum(item.used_g for item in filaments)
        prediction = _number(meta.get("prediction"))
        return JobDetails(
            plate=number,
            weight_g=weight,
            length_m=round(sum(item.used_m for item in filaments), 2) if filaments else None,
            bed_type=_bed_type(archive, number),
            prediction_s=int(prediction) if prediction is not None else None,
            objects=objects,
            filaments=filaments,
            thumbnail=_read(archive, f"Metadata/plate_{number}.png"),
        )
