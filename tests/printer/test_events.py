"""Events come from state transitions only: baseline first, one event per transition, debounced
HMS clears."""

from __future__ import annotations

from typing import Any

import pytest

from custom_components.bambu_lan.printer import events
from custom_components.bambu_lan.printer.events import EventTracker, PrinterEvent
from custom_components.bambu_lan.printer.state import PrinterState

HMS_A = {"attr": 0x03000200, "code": 0x00010001}  # HMS_0300_0200_0001_0001, fatal, mc
HMS_B = {"attr": 0x07000300, "code": 0x00020002}  # HMS_0700_0300_0002_0002, serious, ams


class Feed:
    """A printer state plus a tracker, fed with delta reports at chosen times."""

    def __init__(self, **initial: Any) -> None:
        self.state = PrinterState("01P09A000000001")
        self.tracker = EventTracker()
        self.report(0.0, msg=0, **{"gcode_state": "IDLE", "hms": [], **initial})

    def report(self, now: float, msg: int = 1, **fields: Any) -> list[tuple[str, str]]:
        self.state.apply({"print": {"command": "push_status", "msg": msg, **fields}})
        self.last = self.tracker.update(self.state, now)
        return [(event.channel, event.type) for event in self.last]


def test_baseline_fires_nothing() -> None:
    """What the first report shows happened before we looked: no event."""
    feed = Feed(gcode_state="FINISH", hms=[HMS_A], stg_cur=6)
    assert feed.last == []
    assert feed.report(1.0, gcode_state="FINISH") == []


def test_print_lifecycle() -> None:
    """Started, paused, resumed and finished, with job name and duration."""
    feed = Feed()
    assert feed.report(10.0, gcode_state="PREPARE", subtask_name="benchy") == [("print", "started")]
    assert feed.last[0].data == {"job_name": "benchy", "duration": 0}
    assert feed.report(20.0, gcode_state="RUNNING") == []  # prepare -> running: same job
    assert feed.report(30.0, gcode_state="PAUSE") == [("print", "paused")]
    assert feed.report(31.0, gcode_state="PAUSE", mc_percent=5) == []
    assert feed.report(40.0, gcode_state="RUNNING") == [("print", "resumed")]
    assert feed.report(100.0, gcode_state="FINISH") == [("print", "finished")]
    assert feed.last[0].data == {"job_name": "benchy", "duration": 90}
    assert feed.report(101.0, gcode_state="IDLE") == []


def test_cancelled_and_failed() -> None:
    """A stop by the user is "cancelled"; any other FAILED is "failed" with its error."""
    feed = Feed()
    feed.report(0.0, gcode_state="RUNNING", subtask_name="a")
    assert feed.report(5.0, gcode_state="FAILED", print_error=0x0300400C) == [
        ("print", "cancelled")
    ]
    feed.report(6.0, gcode_state="RUNNING", print_error=0)
    assert feed.report(9.0, gcode_state="FAILED", print_error=0x07008011) == [("print", "failed")]
    assert feed.last[0].data == {"job_name": "a", "duration": 3, "print_error": "0700_8011"}


def test_duration_unknown_when_the_start_was_not_seen() -> None:
    """Home Assistant started mid-print: the finish fires, its duration is unknown."""
    feed = Feed(gcode_state="RUNNING", subtask_name="long")
    assert feed.report(50.0, gcode_state="FINISH") == [("print", "finished")]
    assert feed.last[0].data == {"job_name": "long", "duration": None}


def test_unknown_state_is_no_transition() -> None:
    """An unknown gcode_state (newer firmware) neither fires nor resets the known one."""
    feed = Feed(gcode_state="RUNNING")
    assert feed.report(1.0, gcode_state="WARP_DRIVE") == []
    assert feed.report(2.0, gcode_state="RUNNING") == []


def test_filament_runout() -> None:
    """Entering the run-out stage fires once; staying in it does not fire again."""
    feed = Feed(gcode_state="RUNNING", stg_cur=0, subtask_name="x")
    assert feed.report(1.0, stg_cur=6, gcode_state="PAUSE") == [
        ("print", "paused"),
        ("filament", "runout"),
    ]
    assert feed.last[1].data == {"job_name": "x"}
    assert feed.report(2.0, stg_cur=6, mc_percent=3) == []


def test_hms_appear_and_clear_with_details() -> None:
    """Each code fires once when it appears and once when it has stayed away long enough."""
    feed = Feed()
    assert feed.report(1.0, hms=[HMS_A, HMS_B]) == [("hms", "error_appeared")] * 2
    details = feed.last[0].data
    assert details == {
        "code": "HMS_0300_0200_0001_0001",
        "severity": "fatal",
        "module": "motion_controller",
        "url": "https://e.bambulab.com/index.php?e=0300020000010001&s=device_hms&lang=en",
    }
    assert feed.report(2.0, hms=[HMS_B]) == []  # not cleared yet
    assert feed.tracker.next_flush() == 2.0 + events.HMS_CLEAR_DEBOUNCE
    assert feed.tracker.flush(10.0) == []
    cleared = feed.tracker.flush(2.0 + events.HMS_CLEAR_DEBOUNCE)
    assert cleared == [PrinterEvent("hms", "error_cleared", details)]
    assert feed.tracker.next_flush() is None


def test_hms_flapping_fires_once() -> None:
    """A code that goes and comes back within the debounce never fires again."""
    feed = Feed()
    assert feed.report(1.0, hms=[HMS_A]) == [("hms", "error_appeared")]
    for second in range(2, 12, 2):
        assert feed.report(float(second), hms=[]) == []
        assert feed.report(second + 1.0, hms=[HMS_A]) == []
    assert feed.tracker.next_flush() is None
    assert feed.tracker.flush(1000.0) == []


@pytest.mark.parametrize(("module", "name"), [(0x07, "ams"), (0x12, "0x12")])
def test_module_names(module: int, name: str) -> None:
    """Known modules by name; others by their number (no vendored database)."""
    assert events.hms_module_name(module) == name
