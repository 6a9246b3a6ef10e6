"""Reports reach only the entities that read what they changed; floods are written at a bounded
rate, and the last state always."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
import json
import time
from typing import Any, cast

from homeassistant.const import EVENT_STATE_CHANGED, STATE_UNAVAILABLE
from homeassistant.core import Event, HomeAssistant, callback
from homeassistant.helpers.entity_platform import async_get_platforms
from homeassistant.setup import async_setup_component
import pytest

from custom_components.bambu_lan.const import DOMAIN
from custom_components.bambu_lan.coordinator import BambuCoordinator
from custom_components.bambu_lan.entity import BambuEntity
from custom_components.bambu_lan.fanout import BURST, MAX_SHARED_READS, RATE, ReportFanout
from tests.test_entities import setup_printer, state_of, wait_for_state
from tests.virtual_printer.models import pack_temp, spec_for, version_modules
from tests.virtual_printer.printer import PrinterFactory

# --- the fan-out alone, on a clock the test moves ----------------------------------------------


class FakeTimer:
    """What `call_at` returns: something to cancel."""

    def __init__(self, when: float, action: Callable[[], None]) -> None:
        self.when = when
        self.action = action
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class FakeLoop:
    """`time` and `call_at`, the two loop methods the fan-out uses, on a hand-moved clock."""

    def __init__(self) -> None:
        self.now = 100.0
        self.timers: list[FakeTimer] = []

    def time(self) -> float:
        return self.now

    def call_at(self, when: float, action: Callable[[], None]) -> FakeTimer:
        timer = FakeTimer(when, action)
        self.timers.append(timer)
        return timer

    def advance(self, seconds: float) -> None:
        self.now += seconds
        self.timers = [timer for timer in self.timers if not timer.cancelled]
        due = [timer for timer in self.timers if timer.when <= self.now]
        self.timers = [timer for timer in self.timers if timer not in due]
        for timer in due:
            timer.action()


def make_fanout() -> tuple[ReportFanout, FakeLoop, list[frozenset[str] | None]]:
    loop = FakeLoop()
    delivered: list[frozenset[str] | None] = []
    return ReportFanout(cast(Any, loop), delivered.append), loop, delivered


def test_index_follows_the_reads() -> None:
    """Readers are found by any key they read, once each; re-indexing moves them."""
    fanout, _, _ = make_fanout()

    def first() -> None: ...
    def second() -> None: ...

    fanout.index(first, (), {"mc_percent", "device.bed"})
    fanout.index(second, (), {"device.bed", "device"})
    assert fanout.readers({"device.bed", "mc_percent"}) == [first, second]
    assert fanout.readers({"device.extruder"}) == []
    assert fanout.readers({"device", "device.extruder"}) == [second]
    fanout.index(first, {"mc_percent", "device.bed"}, {"layer_num"})
    assert fanout.readers({"mc_percent", "device.bed"}) == [second]
    assert fanout.readers({"layer_num"}) == [first]
    fanout.index(second, {"device.bed", "device"}, ())
    assert fanout.indexed_keys == {"layer_num"}
    # Indexing a listener again under a key it already has keeps it there once.
    fanout.index(first, (), {"layer_num"})
    assert fanout.readers({"layer_num"}) == [first]
    fanout.index(second, {"unknown"}, ())
    assert fanout.readers({"layer_num"}) == [first]


def test_members_join_and_leave() -> None:
    """Members are everyone a broadcast reaches; leaving also takes a member out of the index."""
    fanout, _, _ = make_fanout()

    def first() -> None: ...
    def second() -> None: ...

    fanout.add_member(first)
    fanout.add_member(second)
    fanout.index(first, (), {"mc_percent"})
    members = fanout.members()
    assert members == [first, second]
    fanout.remove_member(first, {"mc_percent"})
    assert members == [first, second]  # a copy: a broadcast survives members leaving
    assert fanout.members() == [second]
    assert fanout.indexed_keys == frozenset()
    fanout.remove_member(first, ())  # twice: nothing left to forget
    assert fanout.members() == [second]


def test_equal_key_sets_are_shared() -> None:
    """Listeners that read the same keys keep one sorted tuple; the sharing cache is bounded."""
    fanout, _, _ = make_fanout()
    mine = fanout.shared({"mc_percent", "layer_num"})
    theirs = fanout.shared(["layer_num", "mc_percent"])
    assert mine == ("layer_num", "mc_percent")
    assert theirs is mine
    for number in range(MAX_SHARED_READS + 1):
        fanout.shared({f"key{number}"})
    assert len(fanout._shared) <= MAX_SHARED_READS
    again = fanout.shared({"layer_num", "mc_percent"})
    assert again == mine


def test_ordinary_traffic_is_delivered_at_once() -> None:
    """A report a second, or a short burst, is never delayed."""
    fanout, loop, delivered = make_fanout()
    for _ in range(BURST):
        fanout.notify(frozenset({"mc_percent"}))
    assert delivered == [frozenset({"mc_percent"})] * BURST
    for second in range(10):
        loop.advance(1.0)
        fanout.notify(frozenset({f"key{second}"}))
        assert delivered[-1] == {f"key{second}"}
    assert not loop.timers


def test_a_flood_is_delivered_at_a_bounded_rate_and_the_last_state_always() -> None:
    """1000 reports a second for 3 s: at most BURST + RATE per second deliveries, every key that
    changed is delivered, and the pending delivery after the flood still happens."""
    fanout, loop, delivered = make_fanout()
    for i in range(3000):
        fanout.notify(frozenset({"wifi_signal"} | ({"mc_percent"} if i == 2998 else set())))
        loop.advance(0.001)
    assert len(delivered) <= BURST + RATE * 3 + 1
    loop.advance(1.0)  # the flood is over: whatever was pending is delivered
    assert delivered[-1] == {"wifi_signal", "mc_percent"}
    assert BURST + RATE * 3 - 1 <= len(delivered) <= BURST + RATE * 3 + 1
    assert not [timer for timer in loop.timers if not timer.cancelled]


def test_anything_changed_wins_and_a_full_refresh_cancels() -> None:
    """A pending "anything may have changed" is not narrowed by later reports; a refresh of every
    entity makes the pending delivery moot."""
    fanout, loop, delivered = make_fanout()
    for _ in range(BURST):
        fanout.notify(frozenset({"a"}))
    fanout.notify(None)
    fanout.notify(frozenset({"b"}))
    loop.advance(1.0)
    assert delivered[-1] is None
    count = len(delivered)
    for _ in range(BURST + 2):
        fanout.notify(frozenset({"c"}))
    fanout.delivered_all()
    loop.advance(1.0)
    assert all(d == {"c"} for d in delivered[count:])
    assert len(delivered) < count + BURST + 2
    fanout.notify(frozenset({"d"}))  # tokens came back while the clock moved
    assert delivered[-1] == {"d"}


# --- in Home Assistant, against a virtual printer -----------------------------------------------


def bambu_entities(hass: HomeAssistant) -> dict[str, BambuEntity]:
    """Every entity of the integration, by entity id."""
    return {
        entity_id: entity
        for platform in async_get_platforms(hass, DOMAIN)
        for entity_id, entity in platform.entities.items()
        if isinstance(entity, BambuEntity)
    }


def spy_evaluations(hass: HomeAssistant) -> tuple[list[str], dict[str, frozenset[str]]]:
    """Record which entities are evaluated, and what each read before it was."""
    evaluated: list[str] = []
    reads_before: dict[str, frozenset[str]] = {}
    for entity_id, entity in bambu_entities(hass).items():
        original = entity._evaluate

        def spy(
            *, entity_id: str = entity_id, entity: BambuEntity = entity, original: Any = original
        ) -> tuple[Any, ...]:
            evaluated.append(entity_id)
            reads_before.setdefault(entity_id, frozenset(entity._reads or ()))
            return cast(tuple[Any, ...], original())

        entity._evaluate = spy  # type: ignore[method-assign]
    return evaluated, reads_before


@pytest.mark.usefixtures("trust_test_cas")
async def test_a_report_reaches_only_the_readers_of_what_it_changed(
    hass: HomeAssistant, virtual_printer: PrinterFactory
) -> None:
    """A packed bed temperature (`device.bed`) wakes the bed entities, not the nozzle ones that
    read `device.extruder`; disconnect, reconnect and get_version reach every entity."""
    entry, printer = await setup_printer(hass, virtual_printer, "H2D")
    coordinator: BambuCoordinator = entry.runtime_data
    entities = bambu_entities(hass)
    assert "device.extruder" in (entities["sensor.h2d_right_nozzle_temperature"]._reads or ())
    assert "device" not in (entities["sensor.h2d_right_nozzle_temperature"]._reads or ())
    changed: list[frozenset[str] | None] = []
    original_notify = coordinator.fanout.notify

    def spy_notify(keys: frozenset[str] | None) -> None:
        changed.append(keys)
        original_notify(keys)

    coordinator.fanout.notify = spy_notify  # type: ignore[method-assign]
    evaluated, reads_before = spy_evaluations(hass)

    printer.set_state({"device": {"bed": {"info": {"temp": pack_temp(61, 70)}}}})
    await wait_for_state(hass, "sensor.h2d_bed_temperature", "61.0")
    await hass.async_block_till_done()
    assert changed
    assert all(keys is not None for keys in changed)
    keys = frozenset().union(*(k for k in changed if k is not None))
    assert "device.bed" in keys
    assert "device.extruder" not in keys
    assert "sensor.h2d_bed_temperature" in evaluated
    assert "sensor.h2d_right_nozzle_temperature" not in evaluated
    # Exactly the readers of a changed key were evaluated, nobody else.
    readers = {
        entity_id
        for entity_id, entity in entities.items()
        if not keys.isdisjoint(reads_before.get(entity_id, entity._reads or ()))
    }
    assert set(evaluated) == readers
    assert len(evaluated) < len(entities) / 3

    # get_version (anything may have changed): every entity.
    evaluated.clear()
    modules = version_modules(spec_for("H2D"), printer.serial)
    modules[0]["sw_ver"] = "01.99.00.00"
    printer.publish_raw(
        json.dumps(
            {"info": {"command": "get_version", "sequence_id": "0", "module": modules}}
        ).encode()
    )
    await poll(lambda: set(evaluated) == set(entities))

    # A disconnect and the reconnect: every entity, both times.
    evaluated.clear()
    printer.stop_broker()
    await wait_for_state(hass, "sensor.h2d_right_nozzle_temperature", STATE_UNAVAILABLE)
    assert set(evaluated) == set(entities)
    assert state_of(hass, "sensor.h2d_bed_temperature") == STATE_UNAVAILABLE
    evaluated.clear()
    printer.start_broker()
    await wait_for_state(hass, "sensor.h2d_bed_temperature", "61.0")
    assert set(evaluated) == set(entities)
    assert state_of(hass, "sensor.h2d_right_nozzle_temperature") != STATE_UNAVAILABLE

    # Entities are the fan-out's members, no coordinator listeners (the few listeners left
    # are per platform: new AMS units, device registry updates).
    members = coordinator.fanout.members()
    assert len(members) == len(entities)
    assert set(members) == {entity._listener for entity in entities.values()}
    listeners = [listener for listener, _ in coordinator._listeners.values()]
    assert not any(isinstance(getattr(f, "__self__", None), BambuEntity) for f in listeners)
    assert len(listeners) <= 5

    # Unloading takes every entity out of the index and the members, and leaves no listener.
    assert coordinator.fanout.indexed_keys
    assert await hass.config_entries.async_unload(entry.entry_id)
    assert coordinator.fanout.indexed_keys == frozenset()
    assert coordinator.fanout.members() == []
    assert coordinator._listeners == {}


@pytest.mark.usefixtures("trust_test_cas")
async def test_a_broken_entity_stops_no_other(
    hass: HomeAssistant, virtual_printer: PrinterFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """An entity that raises during a broadcast is logged; the others are still refreshed."""
    entry, _printer = await setup_printer(hass, virtual_printer, "P1S")
    coordinator: BambuCoordinator = entry.runtime_data
    entities = bambu_entities(hass)
    evaluated, _ = spy_evaluations(hass)
    broken = entities["sensor.p1s_nozzle_temperature"]

    def explode() -> tuple[Any, ...]:
        raise RuntimeError("broken")

    broken._evaluate = explode  # type: ignore[method-assign]
    coordinator.async_update_listeners()
    assert set(evaluated) == set(entities) - {"sensor.p1s_nozzle_temperature"}
    assert "Unexpected error updating an entity" in caplog.text


@pytest.mark.usefixtures("trust_test_cas")
async def test_update_entity_refreshes_from_the_held_state(
    hass: HomeAssistant, virtual_printer: PrinterFactory
) -> None:
    """`homeassistant.update_entity` re-evaluates the entity from the state the integration
    holds: it neither fetches anything nor makes an entity of a disconnected printer
    available."""
    assert await async_setup_component(hass, "homeassistant", {})
    entry, printer = await setup_printer(hass, virtual_printer, "P1S")
    coordinator: BambuCoordinator = entry.runtime_data
    evaluated, _ = spy_evaluations(hass)
    await hass.services.async_call(
        "homeassistant",
        "update_entity",
        {"entity_id": "sensor.p1s_nozzle_temperature"},
        blocking=True,
    )
    assert evaluated == ["sensor.p1s_nozzle_temperature"]
    printer.stop_broker()
    await wait_for_state(hass, "sensor.p1s_nozzle_temperature", STATE_UNAVAILABLE)
    evaluated.clear()
    await hass.services.async_call(
        "homeassistant",
        "update_entity",
        {"entity_id": "sensor.p1s_nozzle_temperature"},
        blocking=True,
    )
    assert evaluated == ["sensor.p1s_nozzle_temperature"]
    assert not coordinator.last_update_success
    assert state_of(hass, "sensor.p1s_nozzle_temperature") == STATE_UNAVAILABLE


@pytest.mark.usefixtures("trust_test_cas")
async def test_a_flood_is_applied_but_written_at_a_bounded_rate(
    hass: HomeAssistant, virtual_printer: PrinterFactory
) -> None:
    """1000 reports back to back: every one is merged, the layer sensor is written a bounded
    number of times, and its last state is the last report's."""
    entry, printer = await setup_printer(hass, virtual_printer, "P1S")
    coordinator: BambuCoordinator = entry.runtime_data
    assert coordinator.session is not None
    stats = coordinator.session.stats
    written: list[str] = []

    @callback
    def record(event: Event) -> None:
        if event.data["entity_id"] == "sensor.p1s_current_layer":
            written.append(event.data["new_state"].state)

    hass.bus.async_listen(EVENT_STATE_CHANGED, record)
    seen = stats.messages
    start = time.monotonic()
    printer.fault("flood", count=1000, field="layer_num")
    # layer_num 0 repeats the state: the printer sends no delta for it.
    await poll(lambda: stats.messages - seen >= 999, timeout=30)
    elapsed = time.monotonic() - start
    await wait_for_state(hass, "sensor.p1s_current_layer", "999")
    assert coordinator.state.layer == 999
    assert 1 <= len(written) <= BURST + RATE * (elapsed + 1) + 1, (len(written), elapsed)
    assert written[-1] == "999"


async def poll(condition: Callable[[], Any], timeout: float = 15.0) -> None:
    """Wait until `condition()` holds, letting the event loop run."""
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.02)


@pytest.mark.usefixtures("trust_test_cas")
async def test_report_checks_run_only_for_keys_they_read(
    hass: HomeAssistant, virtual_printer: PrinterFactory
) -> None:
    """The event, job and signed-command checks run for a report that changed a key they read
    (the job state here), not for one that moved a temperature only; events still fire."""
    entry, printer = await setup_printer(hass, virtual_printer, "P1S")
    coordinator: BambuCoordinator = entry.runtime_data
    checked: list[str | None] = []
    original = coordinator.events.update

    def spy_update(state: Any, now: float) -> Any:
        checked.append(state.gcode_state)
        return original(state, now)

    coordinator.events.update = spy_update  # type: ignore[method-assign]
    fired: list[Event] = []
    hass.bus.async_listen("state_changed", fired.append)

    printer.set_state({"nozzle_temper": 87.0})
    await wait_for_state(hass, "sensor.p1s_nozzle_temperature", "87.0")
    assert checked == []

    printer.set_state({"gcode_state": "RUNNING", "subtask_name": "benchy"})
    await poll(
        lambda: any(
            event.data["entity_id"] == "event.p1s_print"
            and event.data["new_state"].attributes.get("event_type") == "started"
            for event in fired
        )
    )
    assert checked == ["RUNNING"]
    assert coordinator.job.key is not None
    assert coordinator.job.key[0] == "benchy"
