"""Sliced 3MF files like Bambu Studio writes them, for the virtual printer's storage."""

from __future__ import annotations

import io
import json
import struct
import zipfile
import zlib

SLICE_INFO = """<?xml version="1.0" encoding="UTF-8"?>
<config>
  <header>
    <header_item key="X-BBL-Client-Type" value="slicer"/>
  </header>
{plates}</config>
"""
PLATE = """  <plate>
    <metadata key="index" value="{index}"/>
    <metadata key="prediction" value="{prediction}"/>
    <metadata key="weight" value="{weight}"/>
{objects}{filaments}  </plate>
"""


def png(width: int = 2, height: int = 2, rgb: tuple[int, int, int] = (0, 174, 66)) -> bytes:
    """A tiny valid PNG (a plate thumbnail)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    row = b"\x00" + bytes(rgb) * width
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(row * height))
        + chunk(b"IEND", b"")
    )


def sample_3mf(
    *,
    plates: int = 1,
    objects: tuple[tuple[int, str], ...] = ((512, "Cube"), (1024, "Benchy")),
    filaments: tuple[tuple[str, float, float], ...] = (("PLA", 4.12, 12.3), ("PETG", 1.5, 4.6)),
    bed_type: str = "textured_plate",
    thumbnail: bytes | None = None,
) -> bytes:
    """A sliced project: per plate slice info (objects, filament use), preview and bed type.

    `filaments` holds (type, used metres, used grams).
    """
    thumbnail = png() if thumbnail is None else thumbnail
    object_lines = "".join(
        f'    <object identify_id="{ident}" name="{name}" skipped="false"/>\n'
        for ident, name in objects
    )
    filament_lines = "".join(
        f'    <filament id="{index}" tray_info_idx="GFL99" type="{kind}" color="#00AE42" '
        f'used_m="{metres}" used_g="{grams}"/>\n'
        for index, (kind, metres, grams) in enumerate(filaments, start=1)
    )
    weight = round(sum(grams for _kind, _metres, grams in filaments), 2)
    plate_xml = "".join(
        PLATE.format(
            index=index,
            prediction=1800 * index,
            weight=weight,
            objects=object_lines,
            filaments=filament_lines,
        )
        for index in range(1, plates + 1)
    )
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("3D/3dmodel.model", "<model/>")
        archive.writestr("Metadata/slice_info.config", SLICE_INFO.format(plates=plate_xml))
        archive.writestr(
            "Metadata/project_settings.config", json.dumps({"curr_bed_type": "Cool Plate"})
        )
        for index in range(1, plates + 1):
            archive.writestr(f"Metadata/plate_{index}.png", thumbnail)
            archive.writestr(f"Metadata/plate_{index}.json", json.dumps({"bed_type": bed_type}))
            archive.writestr(f"Metadata/plate_{index}.gcode", "G28\n")
    return buffer.getvalue()
