"""Farms of virtual printers in one Home Assistant instance (CPU share and memory per printer),
and the memory floor: what Home Assistant itself spends on a bare entity."""

from __future__ import annotations

import asyncio
import cProfile
from datetime import timedelta
import logging
from pathlib import Path
import pstats
import sys
import time
import tracemalloc
from typing import Any, Final

from bench_ha import ACCESS_CODE, add_printer, line
from homeassistant.components.sensor import SensorDeviceClass, SensorEntity, SensorStateClass
from homeassistant.const import UnitOfTemperature
from homeassistant.core import HomeAssistant
from homeassistant.helpers.device_registry import DeviceInfo
from homeassistant.helpers.entity_platform import EntityPlatform
from homeassistant.setup import async_setup_component
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_test_home_assistant,
)

from custom_components.bambu_lan import fanout
from tests.virtual_printer.models import default_serial
from tests.virtual_printer.printer import VirtualPrinter

OUR_CODE: Final = str(Path(fanout.__file__).parent)
# Let the registries' delayed saves (10 s after the entities appeared) pass before measuring CPU.
SETTLE: Final = 12.0
FLOOR_DEVICES: Final = 20
FLOOR_ENTITIES: Final = 60
_LOGGER = logging.getLogger(__name__)


class BareSensor(SensorEntity):
    """The least a device's sensor can be: a unique id, a device, a value with a unit."""

    _attr_has_entity_name = True
    _attr_should_poll = False
    _attr_device_class = SensorDeviceClass.TEMPERATURE
    _attr_native_unit_of_measurement = UnitOfTemperature.CELSIUS
    _attr_state_class = SensorStateClass.MEASUREMENT

    def __init__(self, device: str, index: int) -> None:
        self._attr_unique_id = f"{device}_{index}"
        self._attr_name = f"Value {index}"
        self._attr_native_value = index
        self._attr_device_info = DeviceInfo(identifiers={("bench_floor", device)}, name=device)


async def bench_floor(config_dir: str) -> float:
    """Traced memory per bare sensor entity (KiB): Home Assistant's own entity, state and
    registry bookkeeping, the least any integration pays per entity it enables."""
    async with async_test_home_assistant(config_dir=config_dir) as hass:
        await async_setup_component(hass, "sensor", {})

        async def add_device(device: str) -> None:
            entry = MockConfigEntry(domain="bench_floor")
            entry.add_to_hass(hass)
            platform = EntityPlatform(
                hass=hass,
                logger=_LOGGER,
                domain="sensor",
                platform_name="bench_floor",
                platform=None,
                scan_interval=timedelta(seconds=30),
                entity_namespace=None,
            )
            platform.config_entry = entry
            await platform.async_add_entities(
                [BareSensor(device, index) for index in range(FLOOR_ENTITIES)]
            )

        # As in the farm: the first device loads what all share.
        await add_device("first")
        await hass.async_block_till_done()
        tracemalloc.start()
        traced0 = tracemalloc.get_traced_memory()[0]
        for index in range(FLOOR_DEVICES):
            await add_device(f"device {index}")
        await hass.async_block_till_done()
        traced = tracemalloc.get_traced_memory()[0] - traced0
        tracemalloc.stop()
        await hass.async_stop(force=True)
    floor = traced / (FLOOR_DEVICES * FLOOR_ENTITIES) / 1024
    line("ha_entity_floor_kib", floor, "KiB")
    return floor


def farm_models(count: int) -> list[str]:
    """20: the usual mix; 100: 10 % X1C (full reports), the rest P1S / A1 mini / H2D deltas."""
    if count < 100:
        mix = ["P1S", "X1C", "A1MINI", "H2D"]
        return [mix[i % len(mix)] for i in range(count)]
    deltas = ["P1S", "A1MINI", "H2D"]
    return ["X1C" if i % 10 == 0 else deltas[i % len(deltas)] for i in range(count)]


FARM_WINDOWS: Final = 3


async def cpu_share(window: float) -> float:
    """This process's CPU time over the next `window` seconds, as a share of one core."""
    cpu0, wall0 = time.process_time(), time.monotonic()
    await asyncio.sleep(window)
    return (time.process_time() - cpu0) / (time.monotonic() - wall0)


async def bench_farm(
    hass: HomeAssistant,
    cas: Any,
    count: int,
    window: float,
    *,
    profile: bool = False,
    last: bool = False,
    floor: float = 0.0,
) -> None:
    printers: list[VirtualPrinter] = []
    try:
        # Baseline: this process with Home Assistant idle and no printers. The quietest of the
        # windows, as for the farm below (the lower the baseline, the higher the farm figure).
        await asyncio.sleep(1)
        idle = min([await cpu_share(window / FARM_WINDOWS) for _ in range(FARM_WINDOWS)])

        for i, model in enumerate(farm_models(count)):
            printers.append(
                VirtualPrinter(
                    cas,
                    serial=default_serial(model, 100 + i),
                    access_code=ACCESS_CODE,
                    model=model,
                    demo_print=True,
                    time_scale=1.0,
                    push_interval=1.0,
                    # Temperatures in raw 1/32 °C steps, as real printers report them while
                    # printing: every printer pushes every second (else a steady heater's
                    # printer has nothing to say and the farm runs below its nominal load).
                    quirks=["raw_temperatures"],
                ).start()
            )
        # The first printer loads the platforms, translations and caches every printer shares;
        # the memory per printer is what each further one adds.
        entries = [await add_printer(hass, printers[0])]
        await asyncio.sleep(1)
        tracemalloc.start()
        traced0 = tracemalloc.get_traced_memory()[0]
        entities0 = len(hass.states.async_all())
        entries += [await add_printer(hass, printer) for printer in printers[1:]]
        await asyncio.sleep(5)
        traced = tracemalloc.get_traced_memory()[0] - traced0
        # Whose code allocated it (the innermost frame): this integration's, or anything else's
        # (Home Assistant's entity, state and registry bookkeeping, mostly).
        ours = sum(
            stat.size
            for stat in tracemalloc.take_snapshot().statistics("filename")
            if OUR_CODE in stat.traceback[0].filename
        )
        tracemalloc.stop()
        added = max(count - 1, 1)
        per_printer = traced / added / 1024
        entities = (len(hass.states.async_all()) - entities0) / added
        # Let the registries' delayed saves (10 s after the entities appeared) pass first.
        await asyncio.sleep(SETTLE)

        messages0 = sum(e.runtime_data.session.stats.messages for e in entries)
        profiler = cProfile.Profile() if profile else None
        wall0, loop0 = time.monotonic(), time.thread_time()
        if profiler:
            profiler.enable()
        # Consecutive windows; the figure is the quietest one (the host's steal time and the 200
        # publishing processes only ever add), and every window is printed.
        shares = [await cpu_share(window) for _ in range(FARM_WINDOWS)]
        if profiler:
            profiler.disable()
            pstats.Stats(profiler, stream=sys.stderr).sort_stats("cumulative").print_stats(45)
        elapsed = time.monotonic() - wall0
        loop_busy = (time.thread_time() - loop0) / elapsed
        messages = sum(e.runtime_data.session.stats.messages for e in entries) - messages0
        line(f"farm{count}_messages_per_s", messages / elapsed, "msg/s")
        line(f"farm{count}_cpu_percent", max(min(shares) - idle, 0.0) * 100, "%")
        windows = ", ".join(f"{max(share - idle, 0.0) * 100:.1f}" for share in shares)
        print(f"farm{count}_cpu_percent_windows: {windows} %", flush=True)
        line(f"farm{count}_loop_thread_cpu_percent", loop_busy * 100, "%")
        line(f"farm{count}_mem_per_printer_kib", per_printer, "KiB")
        if last:
            line("farm_mem_per_printer_kib", per_printer, "KiB")
            line("farm_mem_ours_per_printer_kib", ours / added / 1024, "KiB")
            line("farm_entities_per_printer", entities)
            line(
                "farm_mem_rest_per_entity_kib",
                (traced - ours) / added / max(entities, 1) / 1024,
                "KiB",
            )
            if floor:
                # What Home Assistant alone would take for this many bare entities.
                line("farm_mem_floor_per_printer_kib", entities * floor, "KiB")
        for entry in entries:
            await hass.config_entries.async_unload(entry.entry_id)
        await hass.async_block_till_done()
    finally:
        for printer in printers:
            printer.close()
