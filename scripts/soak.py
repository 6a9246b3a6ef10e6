"""Soak: virtual printers for a long while, faults injected on a schedule, nothing may be lost.

Run through `scripts/soak` (it uses the project's venv). Prints `soak_*` lines (`name: value
unit`). Not a test: too long for CI's test command; nothing here asserts.

20 virtual printers (real mosquitto + firmware processes, real TLS; X1C, P1S, A1 mini and H2D)
print a long job at 5x speed into one Home Assistant instance. Each printer goes through the
faults in turn, staggered, with a pause between two:

- `broker_restart`: the printer's broker stops and starts (every client dropped);
- `dropped_connection`: the session's TCP connection is cut under it;
- `silence`: the printer stays connected but says nothing (and ignores requests) for longer than
  the silence watchdog allows, then speaks again;
- `reissued_certificate`: the printer presents a newly issued certificate (broker restart);
- `access_code`: the access code changes; the reauthentication flow is completed with the new one;
- `malformed`: every kind of broken payload the virtual firmware knows that does not carry
  believable values (`unknown_enum` and `huge` do, and are shown as received);
- `flood`: 1000 reports back to back.

After each fault the printer's clock is stopped and the entry's merged state is compared with the
virtual printer's own state, key by key, until they are equal (recovery time, measured from the
end of the fault) or for at most 6 minutes (a lost change). Resources (RSS, threads, sockets,
file descriptors) are taken after a warm-up and at the end; the event loop's lag is sampled
every 50 ms throughout.
With `--trace-memory`, the Python heap is traced too: `soak_heap_growth_kib` and, on stderr, the
lines where it grew most (an RSS that grows while the heap stays flat grows outside it: the C
allocator, OpenSSL).
"""

from __future__ import annotations

import argparse
import asyncio
from collections import Counter
from collections.abc import Awaitable
from dataclasses import dataclass, field
import gc
import logging
import os
from pathlib import Path
import random
import re
import socket
import statistics
import sys
import tempfile
import threading
import time
import tracemalloc
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench_ha import add_printer  # noqa: E402
from homeassistant import loader  # noqa: E402
from homeassistant.config_entries import SOURCE_REAUTH, ConfigEntryState  # noqa: E402
from homeassistant.core import HomeAssistant  # noqa: E402
from pytest_homeassistant_custom_component.common import (  # noqa: E402
    async_test_home_assistant,
)

from custom_components.bambu_lan.const import DOMAIN  # noqa: E402
from custom_components.bambu_lan.printer import coalesce, tls  # noqa: E402
from custom_components.bambu_lan.printer.mqtt_frames import FramedSocket  # noqa: E402
from custom_components.bambu_lan.printer.schema import PRINT_SCHEMA, Quiet  # noqa: E402
from custom_components.bambu_lan.printer.session import (  # noqa: E402
    BACKOFF_INITIAL,
    STABLE_LINK,
)
from tests.virtual_printer.models import default_serial  # noqa: E402
from tests.virtual_printer.pki import generate_cas  # noqa: E402
from tests.virtual_printer.printer import VirtualPrinter  # noqa: E402

FAULTS = (
    "broker_restart",
    "dropped_connection",
    "silence",
    "reissued_certificate",
    "access_code",
    "malformed",
    "flood",
)
MALFORMED = (
    "invalid_json",
    "array",
    "scalar",
    "not_utf8",
    "empty",
    "print_not_object",
    "wrong_types",
)
_LOGGER = logging.getLogger("soak")
SILENCE = 100.0  # seconds: beyond the session's silence watchdog (90 s, checked every 10 s)
IN_FLIGHT = 3 * coalesce.WINDOW  # seconds: see `recover`; part of every recovery time
RECOVERY_LIMIT = 360.0  # seconds: longer than the pushall rate limit (5 minutes)
MODELS = ("X1C", "P1S", "A1MINI", "H2D")
HEAP_TOP = 25  # lines of heap growth printed by --trace-memory
COMPARED = [key for key, spec in PRINT_SCHEMA.fields.items() if not isinstance(spec, Quiet)]


def line(name: str, value: float | int | str, unit: str = "") -> None:
    """One tracked figure."""
    text = f"{value:.1f}" if isinstance(value, float) else str(value)
    print(f"{name}: {text}{' ' + unit if unit else ''}", flush=True)


@dataclass
class Outcome:
    """What one injected fault did."""

    fault: str
    serial: str
    recovered: bool
    recovery_s: float
    differing: list[str] = field(default_factory=list)
    # The session's reconnect back-off when the fault began: after a drop, the next attempt
    # comes after half to all of it (it doubles unless the link had stayed up for STABLE_LINK).
    backoff_s: float = 0.0


@dataclass
class Resources:
    """This process's resources at one moment."""

    rss_kib: int
    threads: int
    sockets: int
    fds: int
    thread_names: str = ""

    @classmethod
    def now(cls) -> Resources:
        rss = 0
        for row in Path("/proc/self/status").read_text().splitlines():
            if row.startswith("VmRSS:"):
                rss = int(row.split()[1])
        fds = os.listdir("/proc/self/fd")
        sockets = 0
        for fd in fds:
            try:
                sockets += os.readlink(f"/proc/self/fd/{fd}").startswith("socket:")
            except OSError:
                continue
        threads = len(os.listdir("/proc/self/task"))
        return cls(rss, threads, sockets, len(fds), thread_names())


class Soak:
    """The printers, their entries, the fault schedule and what came out of it."""

    def __init__(self, hass: HomeAssistant, args: argparse.Namespace) -> None:
        self.hass = hass
        self.args = args
        self.printers: list[VirtualPrinter] = []
        self.entries: dict[str, str] = {}  # serial -> entry id
        self.outcomes: list[Outcome] = []
        self.lags: list[float] = []
        self.rng = random.Random(18)  # noqa: S311 - a schedule, not a secret

    # --- setup ---------------------------------------------------------------------------------

    async def start(self, cas: Any) -> None:
        for i in range(self.args.printers):
            model = MODELS[i % len(MODELS)]
            printer = VirtualPrinter(
                cas,
                serial=default_serial(model, 200 + i),
                access_code=f"Soak{i:04d}",
                model=model,
                time_scale=self.args.time_scale,
                push_interval=1.0,
            )
            await asyncio.to_thread(printer.start)
            self.printers.append(printer)
            await asyncio.to_thread(printer.start_job, "soak", layers=400, minutes=240.0)
            entry = await add_printer(self.hass, printer)
            self.entries[printer.serial] = entry.entry_id

    def close(self) -> None:
        for printer in self.printers:
            printer.close()

    # --- the loop's lag ------------------------------------------------------------------------

    async def sample_lag(self, stop: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        while not stop.is_set():
            before = loop.time()
            await asyncio.sleep(0.05)
            self.lags.append(max(loop.time() - before - 0.05, 0.0))

    # --- faults --------------------------------------------------------------------------------

    def coordinator(self, printer: VirtualPrinter) -> Any:
        entry = self.hass.config_entries.async_get_entry(self.entries[printer.serial])
        return entry.runtime_data if entry and entry.state is ConfigEntryState.LOADED else None

    async def inject(self, fault: str, printer: VirtualPrinter) -> None:
        match fault:
            case "broker_restart":
                await asyncio.to_thread(printer.restart_broker)
            case "dropped_connection":
                coordinator = self.coordinator(printer)
                client = coordinator and coordinator.session and coordinator.session._client
                framed = client.socket() if client else None
                if isinstance(framed, FramedSocket):  # the session's reader; under it, TLS
                    framed.sock.shutdown(socket.SHUT_RDWR)
            case "silence":
                await asyncio.to_thread(printer.fault, "silent")
                await asyncio.sleep(SILENCE)
                await asyncio.to_thread(printer.fault, "resume")
            case "reissued_certificate":
                await asyncio.to_thread(printer.reissue_cert)
            case "access_code":
                await self.change_access_code(printer)
            case "malformed":
                for kind in MALFORMED:
                    await asyncio.to_thread(printer.fault, "malformed", kind=kind)
            case "flood":
                await asyncio.to_thread(printer.fault, "flood", count=1000)

    async def change_access_code(self, printer: VirtualPrinter) -> None:
        code = "".join(self.rng.choice("ABCDEFGHJKLMNPQRSTUVWXYZ23456789") for _ in range(8))
        await asyncio.to_thread(printer.set_access_code, code)
        entry_id = self.entries[printer.serial]
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            for flow in self.hass.config_entries.flow.async_progress_by_handler(DOMAIN):
                context = flow["context"]
                if context.get("source") == SOURCE_REAUTH and context.get("entry_id") == entry_id:
                    result = await self.hass.config_entries.flow.async_configure(
                        flow["flow_id"], {"access_code": code}
                    )
                    if result.get("reason") != "reauth_successful":
                        _LOGGER.warning("reauth of %s: %s", printer.serial, result)
                    return
            await asyncio.sleep(0.2)
        _LOGGER.warning("no reauthentication flow for %s", printer.serial)

    async def recover(self, printer: VirtualPrinter) -> tuple[bool, list[str]]:
        """Stop the printer's clock, then wait until the entry's state equals the printer's."""
        await asyncio.to_thread(printer.set_time_scale, 0)
        # What the fault sent may still be on its way: the sessions read a farm's reports in
        # passes up to coalesce.WINDOW apart. A comparison before it arrived would pass on a
        # state the fault never reached (a malformed report's believable value, read later).
        await asyncio.sleep(IN_FLIGHT)
        try:
            deadline = time.monotonic() + RECOVERY_LIMIT
            differing: list[str] = []
            while time.monotonic() < deadline:
                coordinator = self.coordinator(printer)
                if coordinator is not None and coordinator.last_update_success:
                    expected = await asyncio.to_thread(printer.state)
                    merged = coordinator.state.snapshot()
                    differing = [key for key in COMPARED if expected.get(key) != merged.get(key)]
                    if not differing:
                        return True, []
                await asyncio.sleep(0.25)
            return False, differing
        finally:
            await asyncio.to_thread(printer.set_time_scale, self.args.time_scale)

    async def run_printer(self, index: int, printer: VirtualPrinter, until: float) -> None:
        await asyncio.sleep(index * self.args.gap / len(self.printers))
        turn = index
        while time.monotonic() < until:
            fault = FAULTS[turn % len(FAULTS)]
            turn += 1
            coordinator = self.coordinator(printer)
            session = coordinator.session if coordinator is not None else None
            backoff = 0.0
            if session is not None:
                since = session.stats.connected_since
                stable = since is not None and time.monotonic() - since >= STABLE_LINK
                backoff = BACKOFF_INITIAL if stable else session._backoff
            await self.inject(fault, printer)
            ended = time.monotonic()
            recovered, differing = await self.recover(printer)
            self.outcomes.append(
                Outcome(
                    fault, printer.serial, recovered, time.monotonic() - ended, differing, backoff
                )
            )
            if not recovered:
                _LOGGER.warning("%s after %s: differs in %s", printer.serial, fault, differing)
            await asyncio.sleep(self.args.gap * (0.5 + self.rng.random()))

    # --- report --------------------------------------------------------------------------------

    def report(self, start: Resources, end: Resources, elapsed: float) -> None:
        outcomes = self.outcomes
        line("soak_printers", len(self.printers))
        line("soak_duration_s", elapsed, "s")
        line("soak_time_scale", self.args.time_scale, "x")
        line("soak_faults", len(outcomes))
        line(
            "soak_state_equal_after_fault", f"{sum(o.recovered for o in outcomes)}/{len(outcomes)}"
        )
        line("soak_state_lost", sum(not o.recovered for o in outcomes))
        times = [o.recovery_s for o in outcomes if o.recovered]
        if times:
            line("soak_recovery_p50_s", percentile(times, 50), "s")
            line("soak_recovery_p95_s", percentile(times, 95), "s")
        for fault in FAULTS:
            mine = [o for o in outcomes if o.fault == fault]
            times = [o.recovery_s for o in mine if o.recovered]
            line(f"soak_{fault}_equal", f"{len(times)}/{len(mine)}")
            if times:
                line(f"soak_{fault}_recovery_p50_s", percentile(times, 50), "s")
                line(f"soak_{fault}_recovery_p95_s", percentile(times, 95), "s")
                backoffs = [o.backoff_s for o in mine]
                line(f"soak_{fault}_backoff_at_fault_p95_s", percentile(backoffs, 95), "s")
        line("soak_rss_start_mib", start.rss_kib / 1024, "MiB")
        line("soak_rss_end_mib", end.rss_kib / 1024, "MiB")
        line("soak_rss_change_percent", (end.rss_kib / start.rss_kib - 1) * 100, "%")
        for name in ("threads", "sockets", "fds"):
            line(f"soak_{name}_start", getattr(start, name))
            line(f"soak_{name}_end", getattr(end, name))
        # Which threads: the soak's own `asyncio.to_thread` workers (it drives the printers from
        # them) and Home Assistant's executor grow on demand up to their caps.
        print(f"soak_thread_names_start: {start.thread_names}", flush=True)
        print(f"soak_thread_names_end: {end.thread_names}", flush=True)
        line("soak_loop_lag_p99_ms", percentile(self.lags, 99) * 1000, "ms")
        line("soak_loop_lag_max_ms", max(self.lags, default=0.0) * 1000, "ms")


def thread_names() -> str:
    """This process's Python threads, counted by name without the trailing number."""
    counts = Counter(re.sub(r"[_-]?\d+$", "", thread.name) for thread in threading.enumerate())
    return ", ".join(f"{name}: {count}" for name, count in sorted(counts.items()))


def percentile(values: list[float], pct: float) -> float:
    if len(values) < 2:
        return values[0] if values else 0.0
    return statistics.quantiles(values, n=100, method="inclusive")[int(pct) - 1]


async def run(args: argparse.Namespace) -> None:
    cas = generate_cas()
    with tempfile.TemporaryDirectory() as anchors, tempfile.TemporaryDirectory() as config:
        cas.write_anchors(Path(anchors))
        tls.CERTS_DIR = Path(anchors)  # trust the virtual printers' CAs, for this run only
        async with async_test_home_assistant(config_dir=config) as hass:
            hass.data.pop(loader.DATA_CUSTOM_COMPONENTS, None)
            soak = Soak(hass, args)
            try:
                if args.trace_memory:
                    # Before the entries: a reload frees their first entities, which must have
                    # been traced for the growth to net out.
                    tracemalloc.start()
                await soak.start(cas)
                await asyncio.sleep(args.warmup)
                start = Resources.now()
                heap0 = heap_snapshot() if args.trace_memory else None
                stop = asyncio.Event()
                lag = asyncio.create_task(soak.sample_lag(stop))
                began = time.monotonic()
                until = began + args.minutes * 60
                tasks: list[Awaitable[None]] = [
                    soak.run_printer(i, printer, until) for i, printer in enumerate(soak.printers)
                ]
                await asyncio.gather(*tasks)
                await asyncio.sleep(args.warmup)
                end = Resources.now()
                stop.set()
                await lag
                soak.report(start, end, time.monotonic() - began)
                if heap0 is not None:
                    report_heap_growth(heap0, heap_snapshot())
                    tracemalloc.stop()
                for entry_id in soak.entries.values():
                    await hass.config_entries.async_unload(entry_id)
                await hass.async_block_till_done()
            finally:
                soak.close()
            await hass.async_stop(force=True)


def heap_snapshot() -> tracemalloc.Snapshot:
    """The traced heap without garbage: a reloaded entry's old entities sit in reference cycles
    until the collector runs, and would count as growth."""
    gc.collect()
    return tracemalloc.take_snapshot()


def report_heap_growth(before: tracemalloc.Snapshot, after: tracemalloc.Snapshot) -> None:
    """Where the Python heap grew over the soak: the total, and the top lines (stderr)."""
    ignore = [tracemalloc.Filter(False, tracemalloc.__file__)]
    growth = after.filter_traces(ignore).compare_to(before.filter_traces(ignore), "lineno")
    line("soak_heap_growth_kib", sum(stat.size_diff for stat in growth) / 1024, "KiB")
    for stat in growth[:HEAP_TOP]:
        frame = stat.traceback[0]
        print(
            f"heap {stat.size_diff / 1024:+9.1f} KiB {stat.count_diff:+7d} "
            f"{frame.filename.split('site-packages/')[-1]}:{frame.lineno}",
            file=sys.stderr,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--printers", type=int, default=20)
    parser.add_argument("--minutes", type=float, default=10.0, help="faults start until then")
    parser.add_argument("--time-scale", type=float, default=5.0, help="simulated speed")
    parser.add_argument("--gap", type=float, default=30.0, help="mean seconds between faults")
    parser.add_argument("--warmup", type=float, default=30.0, help="seconds before measuring")
    parser.add_argument(
        "--trace-memory",
        action="store_true",
        help="trace the Python heap (slower): its growth, and where it grew (stderr)",
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("homeassistant").setLevel(logging.CRITICAL)
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
