"""Whether a configured printer may follow the address it announces from.

Only an entry configured by IP address follows: a host name tracks the printer by itself. Only a
printer that cannot be reached where it is follows (its session is down and the last reconnect
failed, or its setup is retrying): a printer that answers where it is stays there, otherwise a
forged announcement could move it behind a relay that forwards to it and cuts it off at will.
An announcement proves nothing, so the config flow must still probe the new address with a
verified TLS handshake before it moves the entry.
"""

from __future__ import annotations

import ipaddress
import logging

from homeassistant.config_entries import ConfigEntry, ConfigEntryState

from .const import CONF_HOST

_LOGGER = logging.getLogger(__name__)


def may_follow(entry: ConfigEntry, host: str) -> bool:
    """Whether the entry's printer may move to `host` (once it proves itself there)."""
    current = entry.data.get(CONF_HOST)
    if current is None or current == host or not _is_address(current):
        return False
    if not _unreachable(entry):
        _LOGGER.debug("Not moving %s to %s: it answers at %s", entry.title, host, current)
        return False
    return True


def _unreachable(entry: ConfigEntry) -> bool:
    """Whether the entry's printer cannot be reached at its configured address right now."""
    if entry.state is ConfigEntryState.SETUP_RETRY:
        return True
    if entry.state is ConfigEntryState.LOADED:
        unreachable: bool = entry.runtime_data.unreachable
        return unreachable
    return False


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
