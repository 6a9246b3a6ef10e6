"""Parse and validate the NOTIFY packets Bambu Lab printers broadcast on UDP port 2021.

An announcement proves nothing (anyone on the LAN can send one): this only checks that a packet
is well formed and bounded, and extracts what it claims. No Home Assistant imports.
"""

from __future__ import annotations

from dataclasses import dataclass
import ipaddress
import re
from typing import Final
from urllib.parse import urlsplit

from .models import model_from_code, model_label

# NOTIFY packets are a few hundred bytes; anything much larger is not one.
MAX_PACKET_BYTES: Final = 2048
SERIAL_RE: Final = re.compile(r"[0-9A-Z]{15}")
_NOTIFICATION_TYPE: Final = "urn:bambulab-com:device:3dprinter"


@dataclass(frozen=True, slots=True)
class Announcement:
    """What one NOTIFY packet says about a printer (unverified)."""

    host: str
    serial: str
    model: str | None  # a model label, or the raw model code when the model is unknown
    name: str | None
    firmware: str | None

    def flow_data(self) -> dict[str, str]:
        """The discovery flow's data; stable across repeats so in-progress flows deduplicate."""
        data = {"host": self.host, "serial": self.serial}
        if self.model:
            data["model"] = self.model
        if self.name:
            data["name"] = self.name
        return data


def _header_value(value: str | None, limit: int = 64) -> str | None:
    """A header value fit for display: printable and short, or None."""
    if not value:
        return None
    clean = "".join(char for char in value if char.isprintable())[:limit].strip()
    return clean or None


def _parse_host(location: str) -> str | None:
    """The printer's IP from `Location` (a bare address; tolerate a URL too)."""
    candidate = location if "/" not in location else (urlsplit(location).hostname or "")
    try:
        address = ipaddress.ip_address(candidate.strip("[]"))
    except ValueError:
        return None
    if address.is_unspecified or address.is_multicast:
        return None
    return str(address)


def parse_notify(packet: bytes) -> Announcement | None:
    """Parse a NOTIFY packet from a Bambu Lab printer; None for anything else."""
    if len(packet) > MAX_PACKET_BYTES:
        return None
    lines = packet.decode("utf-8", errors="replace").splitlines()
    if not lines or not lines[0].upper().startswith("NOTIFY "):
        return None
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, separator, value = line.partition(":")
        if separator:
            headers.setdefault(name.strip().lower(), value.strip())
    if not headers.get("nt", "").lower().startswith(_NOTIFICATION_TYPE):
        return None
    serial = headers.get("usn", "").upper()
    host = _parse_host(headers.get("location", ""))
    if host is None or not SERIAL_RE.fullmatch(serial):
        return None
    code = _header_value(headers.get("devmodel.bambu.com"), 32)
    model = model_from_code(code)
    return Announcement(
        host=host,
        serial=serial,
        model=model_label(model) if model else code,
        name=_header_value(headers.get("devname.bambu.com")),
        firmware=_header_value(headers.get("devversion.bambu.com"), 32),
    )
