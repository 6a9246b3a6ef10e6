"""AMS buttons: stop drying (on units that dry) and unload the nozzle (one per nozzle).

The commands that need input (drying temperature and time, a tray's filament) are actions in
`ams_services.py`; what fits a single press is a button here. Each press waits for the
printer's acknowledgement, and the buttons are unavailable while the printer demands signed
commands or there is nothing to do (no drying running, nothing loaded).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Final, override

from homeassistant.components.button import ButtonEntity, ButtonEntityDescription
from homeassistant.helpers.device_registry import DeviceInfo
from homeassistant.helpers.entity import Entity
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .ams import BambuAmsEntity, async_track_units
from .ams_services import DEFAULT_TEMPERATURE, EXTRUDERS, unload_params
from .coordinator import BambuConfigEntry, BambuCoordinator
from .entity import BambuControlEntity
from .printer.ams import DRYING_KINDS, AmsUnit, drying_stop

STOP_DRYING: Final = ButtonEntityDescription(key="stop_drying", translation_key="ams_stop_drying")
UNLOAD: Final = ButtonEntityDescription(key="unload_filament", translation_key="unload_filament")
# Dual-nozzle printers: one per nozzle (the extruder names of the `unload_filament` action).
UNLOAD_NOZZLES: Final = {
    "left": ButtonEntityDescription(
        key="left_nozzle_unload_filament", translation_key="left_nozzle_unload_filament"
    ),
    "right": ButtonEntityDescription(
        key="right_nozzle_unload_filament", translation_key="right_nozzle_unload_filament"
    ),
}
DESCRIPTIONS: Final = (STOP_DRYING, UNLOAD, *UNLOAD_NOZZLES.values())
"""Every description this module uses (the translation and icon tests walk them)."""
_IDLE_DRYING: Final = frozenset({None, "off"})


def _unit_buttons(
    coordinator: BambuCoordinator, unit: AmsUnit, device: DeviceInfo
) -> Iterable[Entity]:
    if coordinator.state.ams_kind(unit) in DRYING_KINDS:
        yield StopDryingButton(coordinator, STOP_DRYING, unit, device)


def async_setup_ams_buttons(
    entry: BambuConfigEntry, async_add_entities: AddConfigEntryEntitiesCallback
) -> None:
    """Add the unload buttons now, and each drying unit's stop button as it reports."""
    coordinator = entry.runtime_data
    if coordinator.state.is_dual_nozzle:
        async_add_entities(
            UnloadButton(coordinator, description, extruder)
            for extruder, description in UNLOAD_NOZZLES.items()
        )
    else:
        async_add_entities([UnloadButton(coordinator, UNLOAD, None)])
    async_track_units(entry, async_add_entities, _unit_buttons)


class StopDryingButton(BambuAmsEntity, BambuControlEntity, ButtonEntity):
    """Stops the unit's drying cycle; available while one runs."""

    @property
    @override
    def available(self) -> bool:
        unit = self.coordinator.state.ams_unit(self.unit_id)
        return super().available and unit is not None and unit.dry_state not in _IDLE_DRYING

    @override
    async def async_press(self) -> None:
        await self.coordinator.async_send("print", "ams_filament_drying", drying_stop(self.unit_id))


class UnloadButton(BambuControlEntity, ButtonEntity):
    """Unloads the filament from the nozzle (or one nozzle); available while one is loaded."""

    def __init__(
        self,
        coordinator: BambuCoordinator,
        description: ButtonEntityDescription,
        extruder: str | None,
    ) -> None:
        """Bind the button to the printer's nozzle, or to the left or right one."""
        super().__init__(coordinator, description)
        self._extruder = extruder

    @property
    @override
    def available(self) -> bool:
        state = self.coordinator.state
        if self._extruder is None:
            loaded = state.active_location is not None
        else:
            loaded = state.nozzle_location(EXTRUDERS[self._extruder]) is not None
        return super().available and loaded

    @override
    def _refresh(self) -> tuple[Any, ...]:
        return ()

    @override
    async def async_press(self) -> None:
        params = unload_params(self.coordinator, self._extruder, DEFAULT_TEMPERATURE)
        await self.coordinator.async_send("print", "ams_change_filament", params)
