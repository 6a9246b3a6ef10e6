"""Base entity: device info, unique ids, and writes only when the state really changed."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, override

from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers.device_registry import DeviceInfo
from homeassistant.helpers.entity import EntityDescription
from homeassistant.helpers.update_coordinator import CoordinatorEntity

from .const import DOMAIN, MANUFACTURER
from .coordinator import BambuCoordinator


def device_info(coordinator: BambuCoordinator) -> DeviceInfo:
    """The printer as a device (model and firmware come from get_version)."""
    state = coordinator.state
    return DeviceInfo(
        identifiers={(DOMAIN, coordinator.serial)},
        manufacturer=MANUFACTURER,
        name=coordinator.config_entry.title,
        model=state.product_name or (str(state.model) if state.model else None),
        model_id=str(state.model) if state.model else None,
        serial_number=coordinator.serial,
        sw_version=state.firmware,
        hw_version=state.hardware,
    )


def async_remove_stale_entities(
    hass: HomeAssistant, coordinator: BambuCoordinator, domain: str, keys: Iterable[str]
) -> None:
    """Drop registry entries of keys this printer does not get (any more).

    Platforms pass their retired keys and the keys whose `exists_fn` is false for this printer,
    so an entity removed in an update, or one that no longer fits the printer, leaves no orphan.
    """
    registry = er.async_get(hass)
    for key in keys:
        unique_id = f"{coordinator.serial}_{key}"
        if entity_id := registry.async_get_entity_id(domain, DOMAIN, unique_id):
            registry.async_remove(entity_id)


class BambuEntity(CoordinatorEntity[BambuCoordinator]):
    """An entity of one printer.

    A report reaches the entity only when it changed a report key the entity read last time
    (the coordinator's fan-out indexes the recorded reads); every other update (connection,
    availability, get_version, certificate) reaches every entity. The entity is written only
    when what it shows changed.
    """

    _attr_has_entity_name = True

    def __init__(self, coordinator: BambuCoordinator, description: EntityDescription) -> None:
        """Bind the entity to its printer and description."""
        super().__init__(coordinator)
        self.entity_description = description
        self._attr_unique_id = f"{coordinator.serial}_{description.key}"
        self._attr_device_info = device_info(coordinator)
        self._written: tuple[Any, ...] | None = None
        # Top-level report keys the last refresh read (None: not evaluated yet).
        self._reads: frozenset[str] | None = None

    def _refresh(self) -> tuple[Any, ...]:
        """Set the `_attr_*` values from the printer's state and return them.

        Platforms override this; the returned tuple decides whether the state machine is written.
        """
        return ()

    @callback
    def _handle_coordinator_update(self) -> None:
        # The fan-out calls this only when a report changed a key read here (or for anything
        # that may concern every entity), so there is nothing to filter any more.
        shown = self._evaluate()
        if shown == self._written:
            return
        self._written = shown
        self.async_write_ha_state()

    def _evaluate(self) -> tuple[Any, ...]:
        """Refresh while recording which report keys the entity (and its availability) read."""
        state = self.coordinator.state
        state.record_reads()
        try:
            shown = (self.available, *self._refresh())
        finally:
            reads, self._reads = self._reads, state.recorded_reads()
            if reads != self._reads:
                self.coordinator.fanout.index(
                    self._handle_coordinator_update, reads or (), self._reads
                )
        return shown

    async def async_added_to_hass(self) -> None:
        """Compute the first state before Home Assistant writes it."""
        await super().async_added_to_hass()
        self._written = self._evaluate()

    async def async_will_remove_from_hass(self) -> None:
        """Leave the fan-out's index."""
        await super().async_will_remove_from_hass()
        if self._reads:
            self.coordinator.fanout.index(self._handle_coordinator_update, self._reads, ())
        self._reads = None


class BambuControlEntity(BambuEntity):
    """An entity that sends commands the firmware refuses unless they are signed.

    While the printer demands signed commands (firmware since January 2025 without Developer
    Mode) such controls are unavailable rather than failing on use.
    """

    @property
    @override
    def available(self) -> bool:
        return super().available and not self.coordinator.state.signed_commands_required
