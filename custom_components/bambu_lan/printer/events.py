"""Events derived from the printer's state transitions: print lifecycle, HMS, filament run-out.

Nothing here is invented: an event fires only when a report changes a state this tracker had
already seen. The first report after startup is a baseline (a print that finished while Home
Assistant was down fires nothing), and a reconnect's full report that repeats the known state
fires nothing either, because the tracker outlives connections.

A HMS code that flaps (cleared and raised again within `HMS_CLEAR_DEBOUNCE` seconds) fires
"appeared" once: a disappearance is confirmed only after the code has stayed away that long.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from .codes import CANCELLED_BY_USER, HMS_SEVERITIES
from .fields import StateFields
from .values import HmsEntry

HMS_CLEAR_DEBOUNCE: Final = 30.0
"""Seconds a HMS code must stay away before it counts as cleared."""

HMS_WIKI_URL: Final = "https://e.bambulab.com/index.php?e={code}&s=device_hms&lang=en"
"""Bambu Lab's HMS lookup (what Bambu Studio opens): it redirects to the code's wiki page."""

HMS_MODULES: Final[Mapping[int, str]] = {
    0x03: "motion_controller",
    0x05: "mainboard",
    0x07: "ams",
    0x08: "toolhead",
    0x0C: "camera",
}

PRINT_STARTED: Final = "started"
PRINT_PAUSED: Final = "paused"
PRINT_RESUMED: Final = "resumed"
PRINT_FINISHED: Final = "finished"
PRINT_FAILED: Final = "failed"
PRINT_CANCELLED: Final = "cancelled"
PRINT_EVENT_TYPES: Final = (
    PRINT_STARTED,
    PRINT_PAUSED,
    PRINT_RESUMED,
    PRINT_FINISHED,
    PRINT_FAILED,
    PRINT_CANCELLED,
)
HMS_APPEARED: Final = "error_appeared"
HMS_CLEARED: Final = "error_cleared"
HMS_EVENT_TYPES: Final = (HMS_APPEARED, HMS_CLEARED)
FILAMENT_RUNOUT: Final = "runout"
FILAMENT_EVENT_TYPES: Final = (FILAMENT_RUNOUT,)

# Event channels (one event entity each).
PRINT: Final = "print"
HMS: Final = "hms"
FILAMENT: Final = "filament"

_WORKING: Final = frozenset({"PREPARE", "RUNNING", "SLICING"})
_ACTIVE: Final = _WORKING | {"PAUSE"}
STAGE_FILAMENT_RUNOUT: Final = 6


def hms_module_name(module: int) -> str:
    """The module a HMS code belongs to, e.g. "ams"; "0x12" for ones without a known name."""
    return HMS_MODULES.get(module, f"0x{module:02X}")


def hms_wiki_url(code: str) -> str:
    """Bambu Lab's page for a code "HMS_0300_0200_0001_0001" (the lookup wants 16 hex digits)."""
    return HMS_WIKI_URL.format(code=code.removeprefix("HMS_").replace("_", ""))


def hms_details(entry: HmsEntry) -> dict[str, Any]:
    """What users see of one HMS code: code, severity, module and the wiki link."""
    return {
        "code": entry.code,
        "severity": HMS_SEVERITIES.get(entry.severity, "unknown"),
        "module": hms_module_name(entry.module),
        "url": hms_wiki_url(entry.code),
    }


@dataclass(frozen=True, slots=True)
class PrinterEvent:
    """One derived event: its channel (print, hms, filament), type and data."""

    channel: str
    type: str
    data: dict[str, Any] = field(default_factory=dict)


class EventTracker:
    """Turns successive states into events; feed it after every report with the clock."""

    def __init__(self) -> None:
        """Start without a baseline (the first `update` only records what it sees)."""
        self._baseline = False
        self._gcode_state: str | None = None
        self._stage: int | None = None
        self._started_at: float | None = None
        self._job_name: str | None = None
        self._hms: dict[str, HmsEntry] = {}
        """Codes that count as active (including ones waiting for their clear to settle)."""
        self._leaving: dict[str, float] = {}
        """Code -> when it disappeared; cleared once it stays away for the debounce."""

    def update(self, state: StateFields, now: float) -> list[PrinterEvent]:
        """Events caused by the change from the last seen state to `state` at `now` (seconds)."""
        gcode_state = state.gcode_state
        stage = state.stage
        hms = {entry.code: entry for entry in state.hms}
        if not self._baseline:
            self._baseline = True
            self._gcode_state, self._stage, self._hms = gcode_state, stage, hms
            self._job_name = state.job_name
            return []
        events = self._print_events(state, gcode_state, now)
        if stage != self._stage and stage == STAGE_FILAMENT_RUNOUT:
            events.append(PrinterEvent(FILAMENT, FILAMENT_RUNOUT, {"job_name": self._job_name}))
        if stage is not None:
            self._stage = stage
        events.extend(self._hms_events(hms, now))
        return events

    def flush(self, now: float) -> list[PrinterEvent]:
        """HMS codes whose absence has now lasted the debounce: they fire "cleared"."""
        events = []
        for code, since in list(self._leaving.items()):
            if now - since >= HMS_CLEAR_DEBOUNCE:
                del self._leaving[code]
                entry = self._hms.pop(code)
                events.append(PrinterEvent(HMS, HMS_CLEARED, hms_details(entry)))
        return events

    def next_flush(self) -> float | None:
        """When `flush` has something to do (None: nothing is waiting)."""
        if not self._leaving:
            return None
        return min(self._leaving.values()) + HMS_CLEAR_DEBOUNCE

    def _print_events(
        self, state: StateFields, gcode_state: str | None, now: float
    ) -> list[PrinterEvent]:
        before = self._gcode_state
        if gcode_state is None or gcode_state == before:
            if gcode_state in _ACTIVE and state.job_name:
                self._job_name = state.job_name
            return []
        self._gcode_state = gcode_state
        event: str | None = None
        if gcode_state in _WORKING and before == "PAUSE":
            event = PRINT_RESUMED
        elif gcode_state in _WORKING and before not in _WORKING:
            event = PRINT_STARTED
            self._started_at = now
        elif gcode_state == "PAUSE" and before in _WORKING:
            event = PRINT_PAUSED
        elif gcode_state == "FINISH" and before in _ACTIVE:
            event = PRINT_FINISHED
        elif gcode_state == "FAILED" and before in _ACTIVE:
            cancelled = state.print_error == CANCELLED_BY_USER
            event = PRINT_CANCELLED if cancelled else PRINT_FAILED
        if gcode_state in _ACTIVE and state.job_name:
            self._job_name = state.job_name
        if event is None:
            return []
        duration = None if self._started_at is None else round(now - self._started_at)
        data: dict[str, Any] = {"job_name": self._job_name, "duration": duration}
        if event == PRINT_FAILED:
            data["print_error"] = state.print_error_code
        if gcode_state not in _ACTIVE:
            self._started_at = None
        return [PrinterEvent(PRINT, event, data)]

    def _hms_events(self, hms: dict[str, HmsEntry], now: float) -> list[PrinterEvent]:
        events = []
        for code, entry in hms.items():
            if code in self._leaving:
                del self._leaving[code]  # back within the debounce: it never cleared
            elif code not in self._hms:
                self._hms[code] = entry
                events.append(PrinterEvent(HMS, HMS_APPEARED, hms_details(entry)))
        for code in self._hms.keys() - hms.keys() - self._leaving.keys():
            self._leaving[code] = now
        return events
