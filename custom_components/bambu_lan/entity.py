"""Base entity: device info, unique ids, and writes only when the state really changed."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Final, override

from homeassistant.const import MAX_LENGTH_STATE_STATE
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers.device_registry import DeviceInfo
from homeassistant.helpers.entity import Entity, EntityDescription

from .const import DOMAIN, MANUFACTURER
from .coordinator import BambuCoordinator

# Attribute text and lists from reports are bounded too: they go to the state machine, the
# recorder and every frontend.
MAX_ATTRIBUTE_TEXT: Final = 255
MAX_ATTRIBUTE_ITEMS: Final = 64
_NATIVE_VALUE: Final = "_attr_native_value"  # declared by SensorEntity, not by every platform


def truncate(text: str, limit: int) -> str:
    """`text` cut to `limit` characters, the last one an ellipsis when something was cut."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def bounded_attributes(value: Any) -> Any:
    """A copy of attribute values with every string and list cut to its bound."""
    if type(value) is str:
        return truncate(value, MAX_ATTRIBUTE_TEXT)
    if isinstance(value, dict):
        return {key: bounded_attributes(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [bounded_attributes(item) for item in value[:MAX_ATTRIBUTE_ITEMS]]
    return value


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


class BambuEntity(Entity):
    """An entity of one printer.

    A report reaches the entity only when it changed a report key the entity read last time
    (the coordinator's fan-out indexes the recorded reads); every other update (connection,
    availability, get_version, certificate) reaches every entity, as a member of the fan-out.
    The entity is written only when what it shows changed.

    Not a `CoordinatorEntity`: its coordinator listener (one per entity, ~76 per printer) would
    only duplicate the fan-out's registration. What it did is here: no polling, availability
    from the coordinator's last update, and a refresh on `homeassistant.update_entity`.
    """

    _attr_has_entity_name = True
    _attr_should_poll = False

    def __init__(self, coordinator: BambuCoordinator, description: EntityDescription) -> None:
        """Bind the entity to its printer and description."""
        self.coordinator = coordinator
        self.entity_description = description
        self._attr_unique_id = f"{coordinator.serial}_{description.key}"
        # One device info per printer, shared by its ~60 entities (Home Assistant only reads it
        # when the entity is added); a new one only once get_version changed what it holds.
        info = device_info(coordinator)
        if info != coordinator.entity_device_info:
            coordinator.entity_device_info = info
        self._attr_device_info = coordinator.entity_device_info
        self._written: tuple[Any, ...] | None = None
        # Report keys the last refresh read, shared and sorted (None: not evaluated yet).
        self._reads: tuple[str, ...] | None = None
        # The one bound method the fan-out knows the entity by (in its members and under
        # every key it reads), instead of a new one per registration.
        self._listener: Callable[[], None] = self._handle_coordinator_update

    @property
    @override
    def available(self) -> bool:
        """Available while the printer is connected and has reported."""
        return self.coordinator.last_update_success

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
            self._bound_strings()
        finally:
            # Compared with the set just recorded: a tuple is made only when the reads moved
            # (rarely).
            reads, old = state.stop_recording(), self._reads
            if old is None or len(reads) != len(old) or not reads.issuperset(old):
                fanout = self.coordinator.fanout
                self._reads = fanout.shared(reads)
                fanout.index(self._listener, old or (), self._reads)
        return shown

    def _bound_strings(self) -> None:
        """Keep text from the printer (any publisher on its report topic) within what Home
        Assistant stores: a state of at most 255 characters, and bounded attributes."""
        # Only sensors show report text as their state (selects show fixed options).
        value = getattr(self, _NATIVE_VALUE, None)
        if type(value) is str and len(value) > MAX_LENGTH_STATE_STATE:
            setattr(self, _NATIVE_VALUE, truncate(value, MAX_LENGTH_STATE_STATE))
        attributes = getattr(self, "_attr_extra_state_attributes", None)
        if attributes:
            self._attr_extra_state_attributes = bounded_attributes(attributes)

    @override
    async def async_added_to_hass(self) -> None:
        """Join the fan-out and compute the first state before Home Assistant writes it."""
        await super().async_added_to_hass()
        self.coordinator.fanout.add_member(self._listener)
        self._written = self._evaluate()

    async def async_update(self) -> None:
        """`homeassistant.update_entity`: show the printer's state as the integration holds it
        (it is pushed; there is nothing to fetch)."""
        if self.enabled:
            self._written = self._evaluate()

    @override
    async def async_will_remove_from_hass(self) -> None:
        """Leave the fan-out."""
        await super().async_will_remove_from_hass()
        self.coordinator.fanout.remove_member(self._listener, self._reads or ())
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
