"""The config flow's forms: their fields, their schemas, and what a form shows again."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
import re
from typing import Any, Final, Self

from homeassistant.helpers.selector import (
    BooleanSelector,
    TextSelector,
    TextSelectorConfig,
    TextSelectorType,
)
import probatio

from .const import CONF_ACCESS_CODE, CONF_HOST, CONF_SERIAL
from .discovery import CONF_MODEL, CONF_NAME
from .issues import display_text
from .printer.announce import SERIAL_RE
from .printer.hosts import normalize_host

ACCESS_CODE_RE: Final = re.compile(r"[0-9A-Za-z]{8}")

# Reconfigure field, shown only while a certificate is pinned: go back to the bundled CAs.
CONF_REMOVE_PIN: Final = "remove_pin"
# Add-printer field, shown only after an untrusted certificate for the serial: review it.
CONF_TRUST_CERTIFICATE: Final = "trust_certificate"

_PASSWORD: Final = TextSelector(TextSelectorConfig(type=TextSelectorType.PASSWORD))

USER_SCHEMA: Final = probatio.Schema(
    {
        probatio.Required(CONF_HOST): TextSelector(),
        probatio.Required(CONF_SERIAL): TextSelector(),
        probatio.Required(CONF_ACCESS_CODE): _PASSWORD,
    }
)
ACCESS_CODE_SCHEMA: Final = probatio.Schema({probatio.Required(CONF_ACCESS_CODE): _PASSWORD})
RECONFIGURE_SCHEMA: Final = probatio.Schema(
    {
        probatio.Required(CONF_HOST): TextSelector(),
        # Empty keeps the current code, so that a new address does not need it typed again.
        probatio.Optional(CONF_ACCESS_CODE): _PASSWORD,
    }
)
RECONFIGURE_PINNED_SCHEMA: Final = RECONFIGURE_SCHEMA.extend(
    {probatio.Optional(CONF_REMOVE_PIN, default=False): BooleanSelector()}
)
TRUST_FIELD: Final = {probatio.Optional(CONF_TRUST_CERTIFICATE, default=False): BooleanSelector()}


def keep_typed(
    user_input: dict[str, Any] | None, errors: Mapping[str, str]
) -> dict[str, Any] | None:
    """What the form shows again: what was typed, minus an access code the printer rejected.

    Trusting a certificate is never pre-ticked: each offer is a new decision.
    """
    if user_input is None:
        return None
    dropped = {CONF_TRUST_CERTIFICATE}
    if errors.get("base") == "invalid_auth":
        dropped.add(CONF_ACCESS_CODE)
    return {key: value for key, value in user_input.items() if key not in dropped}


@dataclass(frozen=True, slots=True)
class TypedPrinter:
    """The add-printer form's fields, normalized and checked."""

    host: str
    serial: str
    access_code: str
    shown: dict[str, Any]  # what the form shows again: the host and serial as normalized
    errors: dict[str, str]

    @classmethod
    def read(cls, user_input: dict[str, Any]) -> Self:
        """Normalize the host and serial and check every field's format."""
        errors: dict[str, str] = {}
        host = normalize_host(user_input[CONF_HOST]) or ""
        serial = user_input[CONF_SERIAL].strip().upper()
        access_code = user_input[CONF_ACCESS_CODE].strip()
        if host:
            user_input = {**user_input, CONF_HOST: host}
        else:
            errors[CONF_HOST] = "invalid_host"
        user_input = {**user_input, CONF_SERIAL: serial}
        if not SERIAL_RE.fullmatch(serial):
            errors[CONF_SERIAL] = "invalid_serial"
        if not ACCESS_CODE_RE.fullmatch(access_code):
            errors[CONF_ACCESS_CODE] = "invalid_access_code_format"
        return cls(host, serial, access_code, user_input, errors)


def discovered_fields(discovery_info: Mapping[str, Any]) -> dict[str, str]:
    """What the discovery dialog shows of an announcement.

    Anyone on the network can announce any name: shown only as plain text.
    """
    serial: str = discovery_info[CONF_SERIAL]
    return {
        CONF_HOST: discovery_info[CONF_HOST],
        CONF_SERIAL: serial,
        CONF_MODEL: display_text(discovery_info.get(CONF_MODEL) or "") or "Bambu Lab",
        CONF_NAME: display_text(discovery_info.get(CONF_NAME) or "") or serial,
    }
