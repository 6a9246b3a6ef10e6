"""The config flow's forms: their fields, their schemas, and what a form shows again."""

from __future__ import annotations

from collections.abc import Mapping
import re
from typing import Any, Final

from homeassistant.helpers.selector import (
    BooleanSelector,
    TextSelector,
    TextSelectorConfig,
    TextSelectorType,
)
import probatio

from .const import CONF_ACCESS_CODE, CONF_HOST, CONF_SERIAL

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
