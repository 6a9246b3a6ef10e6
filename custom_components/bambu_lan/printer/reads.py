"""Which report keys the state's accessors read, and values derived once per report.

Entities record the keys their refresh read (`PrinterState.record_reads`), so that a report
reaches only the entities that read something it changed. Some derived values (the H2D's
nozzle list) are read by a dozen entities after one report: they are computed once per applied
report and their reads are replayed to every recorder that asks for them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final, Protocol

from .values import dig

SHARED_BLOCKS: Final = frozenset({"device", "ams"})
"""Top-level objects that many unrelated entities read parts of.

Reads and changes inside them are named one level down (`device.bed`, `ams.tray_now`), so that a
change to one part wakes only the entities that read that part.
"""


class Readable(Protocol):
    """What accessors read from: the `print` dict, or a recorder of the keys read."""

    def get(self, key: str, default: Any = None, /) -> Any: ...


class ReadRecorder:
    """Reads through to the print object and remembers which keys were read.

    Top-level keys are recorded as they are; a part of a shared block as `block.part`.
    """

    __slots__ = ("data", "keys")

    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data
        self.keys: set[str] = set()

    def get(self, key: str, default: Any = None, /) -> Any:
        self.keys.add(key)
        return self.data.get(key, default)

    def part(self, key: str, sub: str) -> Any:
        self.keys.add(f"{key}.{sub}")
        return dig(self.data.get(key), sub)


class RecordedReads:
    """The reading side of `PrinterState`: the view accessors read through, and the memo."""

    _print: dict[str, Any]
    _view: Readable
    _memo: dict[str, tuple[Any, set[str]]]
    """Derived values of the current report with the keys computing them read."""

    def _part(self, key: str, sub: str) -> Any:
        """`print[key][sub]` of a shared block (see `SHARED_BLOCKS`), recorded at that depth."""
        view = self._view
        if type(view) is ReadRecorder:
            return view.part(key, sub)
        return dig(view.get(key), sub)

    def _per_report[T](self, name: str, compute: Callable[[], T]) -> T:
        """`compute()` at most once per applied report (the memo is cleared by `apply`).

        The keys it read are replayed to the recorder of whoever asks, so a value served from
        the memo is recorded exactly as if it had been computed.
        """
        view = self._view
        hit = self._memo.get(name)
        if hit is None:
            recorder = ReadRecorder(self._print)
            self._view = recorder
            try:
                value = compute()
            finally:
                self._view = view
            hit = self._memo[name] = (value, recorder.keys)
        if type(view) is ReadRecorder:
            view.keys |= hit[1]
        value_: T = hit[0]
        return value_

    def record_reads(self) -> None:
        """Start recording which `print` keys the accessors read (see `SHARED_BLOCKS`)."""
        self._view = ReadRecorder(self._print)

    def recorded_reads(self) -> frozenset[str]:
        """Stop recording; the keys read since `record_reads`.

        An entity that read none of `changed_keys` after a report shows what it showed before,
        so it need not be evaluated again (the coordinator's fan-out stays small).
        """
        return frozenset(self.stop_recording())

    def stop_recording(self) -> set[str]:
        """Stop recording; the keys read since `record_reads` (the caller's to keep)."""
        view, self._view = self._view, self._print
        return view.keys if type(view) is ReadRecorder else set()
