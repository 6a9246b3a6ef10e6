"""Nozzle type codes: the material and the flow type of a hotend.

Older firmware reports `nozzle_type` as a word ("stainless_steel", "hardened_steel"). Newer
firmware (P2S, H2D `device.nozzle.info[].type`, X1C on recent firmware) sends a four-character
code such as "HS01" or "HH01", sometimes followed by "-<diameter>" ("HH01-0.4"):

- 2nd character, the flow type: "S" standard; "H" high flow; "E" high flow (the E3D-made
  high-flow hotend); "U" TPU high flow; "A" and "X" are standard-flow variants.
- 3rd and 4th characters, the material: "00" stainless steel, "01" hardened steel,
  "05" tungsten carbide.
- The 1st character ("H", hotend) carries nothing we show.

Sources (facts only, no code taken): Bambu Studio's DevNozzleSystem (commit 692d9558, which added
the TPU high-flow nozzle), as summarised in greghesp/ha-bambulab PR #2017 ("add flow type 'U',
map 'E' to high flow"); bambu-printer-manager's `bambutools` (flow codes S/H/U/A/X/E and material
codes 00/01/05); the project's protocol reference (shared/docs/protocol.md, section 2, H2D).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

NOZZLE_MATERIALS: Final = ("stainless_steel", "hardened_steel", "tungsten_carbide")
NOZZLE_FLOWS: Final = ("standard", "high_flow", "tpu_high_flow")

_MATERIAL_CODES: Final[Mapping[str, str]] = {
    "00": "stainless_steel",
    "01": "hardened_steel",
    "05": "tungsten_carbide",
}
_FLOW_CODES: Final[Mapping[str, str]] = {
    "S": "standard",
    "A": "standard",
    "X": "standard",
    "H": "high_flow",
    "E": "high_flow",
    "U": "tpu_high_flow",
}


@dataclass(frozen=True, slots=True)
class NozzleKind:
    """What a nozzle type value says; `raw` is kept (lower case) to log unknown codes once."""

    material: str | None
    flow: str | None
    raw: str


def parse_nozzle_type(value: object) -> NozzleKind | None:
    """Decode a word ("hardened_steel") or a code ("HH01", "HS00-0.4"); None if not a string.

    Parts the table does not know are None (the sensor shows unknown and logs `raw` once).
    """
    if type(value) is not str or not value.strip():
        return None
    text = value.strip()
    word = text.lower()
    if word in NOZZLE_MATERIALS:
        return NozzleKind(material=word, flow=None, raw=word)
    code = text.split("-", 1)[0].upper()
    if len(code) == 4 and code[2:].isdigit():
        return NozzleKind(
            material=_MATERIAL_CODES.get(code[2:]), flow=_FLOW_CODES.get(code[1]), raw=word
        )
    return NozzleKind(material=None, flow=None, raw=word)
