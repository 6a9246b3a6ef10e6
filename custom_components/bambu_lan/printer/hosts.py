"""What may be typed as a printer's address: an IP address literal or an RFC 1123 host name."""

from __future__ import annotations

import ipaddress
import re
from typing import Final

# RFC 1123 labels: letters, digits and inner hyphens, 1-63 characters; 253 characters in all.
_LABEL: Final = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
# An IPv6 zone (fe80::1%eth0) is an interface name: Python accepts any characters there.
_ZONE: Final = re.compile(r"[A-Za-z0-9_.-]{1,32}")
MAX_HOST_NAME: Final = 253


def normalize_host(text: str) -> str | None:
    """The host to store for what the user typed, or None if it is not a valid address.

    IPv6 may be typed in brackets; one trailing dot of a fully qualified name is dropped.
    Nothing here touches the network.
    """
    host = text.strip()
    literal = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        address = ipaddress.ip_address(literal)
    except ValueError:
        pass
    else:
        zone = getattr(address, "scope_id", None)
        return str(address) if zone is None or _ZONE.fullmatch(zone) else None
    name = host.removesuffix(".")
    if not name or len(name) > MAX_HOST_NAME or not name.isascii():
        return None
    labels = name.split(".")
    if not all(_LABEL.fullmatch(label) for label in labels):
        return None
    # An all-numeric last label is not a name (RFC 3696): "999.1.1.1" is a mistyped address.
    if labels[-1].isdigit():
        return None
    return name
