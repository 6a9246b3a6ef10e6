"""Options: what filament costs, for the job cost sensor.

One price per kg for the printer, and optionally one per filament type that overrides it.
Saving reloads the entry (`OptionsFlowWithReload`); other options (a pinned certificate) are
kept as they are.
"""

from __future__ import annotations

from typing import Any, Final

from homeassistant.config_entries import ConfigFlowResult, OptionsFlowWithReload
from homeassistant.helpers.selector import (
    NumberSelector,
    NumberSelectorConfig,
    NumberSelectorMode,
)
import probatio

CONF_PRICE_PER_KG: Final = "price_per_kg"
CONF_TYPE_PRICES: Final = "type_prices"
# The filament types slicers name in a 3MF; anything else costs the printer's price.
FILAMENT_TYPES: Final = ("PLA", "PETG", "ABS", "ASA", "TPU", "PA", "PC", "PVA")

_PRICE = NumberSelector(
    NumberSelectorConfig(min=0, max=10_000, step=0.01, mode=NumberSelectorMode.BOX)
)


def _type_field(kind: str) -> str:
    return f"price_{kind.lower()}"


def price_for(options: dict[str, Any], filament_type: str) -> float | None:
    """The price per kg of a filament type: its own, else the printer's, else None."""
    prices: dict[str, float] = options.get(CONF_TYPE_PRICES) or {}
    base = filament_type.upper().split("-")[0].split(" ")[0]  # "PLA-CF", "PETG HF" → family
    for key in (filament_type.upper(), base):
        if key in prices:
            return prices[key]
    price: float | None = options.get(CONF_PRICE_PER_KG)
    return price


class BambuOptionsFlow(OptionsFlowWithReload):
    """Filament prices per kg."""

    async def async_step_init(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """One form: the printer's price and optional prices per filament type."""
        options = dict(self.config_entry.options)
        if user_input is not None:
            type_prices = {
                kind: float(user_input[_type_field(kind)])
                for kind in FILAMENT_TYPES
                if user_input.get(_type_field(kind)) is not None
            }
            options[CONF_TYPE_PRICES] = type_prices
            if user_input.get(CONF_PRICE_PER_KG) is None:
                options.pop(CONF_PRICE_PER_KG, None)
            else:
                options[CONF_PRICE_PER_KG] = float(user_input[CONF_PRICE_PER_KG])
            return self.async_create_entry(data=options)

        current: dict[str, float] = options.get(CONF_TYPE_PRICES) or {}
        fields: dict[Any, Any] = {
            probatio.Optional(
                CONF_PRICE_PER_KG,
                description={"suggested_value": options.get(CONF_PRICE_PER_KG)},
            ): _PRICE
        }
        for kind in FILAMENT_TYPES:
            fields[
                probatio.Optional(
                    _type_field(kind), description={"suggested_value": current.get(kind)}
                )
            ] = _PRICE
        return self.async_show_form(
            step_id="init",
            data_schema=probatio.Schema(fields),
            description_placeholders={"currency": self.hass.config.currency},
        )
