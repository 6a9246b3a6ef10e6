"""Which entities a report concerns, and how often they may be told about reports.

A printer reports about once a second (X1: its whole state; P1/A1/H2: the few fields that moved)
and most reports change one or two values that one or two of its ~40 entities show. Calling every
entity's handler for every report would cost more than the report itself, so entities register
the report keys they read (`PrinterState.recorded_reads`) in an index and only the readers of a
changed key are called; what may concern every entity (connection, availability, get_version,
certificate) reaches every member. The fan-out is the entities' only registration: they are no
coordinator listeners (a listener each would cost more memory than the index). A printer that
floods reports (a firmware bug, a replayed stream) has every report merged, but its entities
are told at most `RATE` times a second; the last state is always delivered.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
import contextlib
from typing import Final

RATE: Final = 5.0
"""Deliveries per second a printer's reports may cause, at most, over a sustained flood."""
BURST: Final = 5
"""Deliveries allowed back to back before `RATE` applies (ordinary traffic never waits)."""

MAX_SHARED_READS: Final = 512
"""Distinct key sets kept for sharing (a printer's entities read a few dozen)."""

type Listener = Callable[[], None]
type Deliver = Callable[[frozenset[str] | None], None]


class ReportFanout:
    """Index of report key → listeners, and a token bucket in front of the delivery."""

    def __init__(self, loop: asyncio.AbstractEventLoop, deliver: Deliver) -> None:
        """`deliver(changed)` tells the entities (None: all of them) about `changed` keys."""
        self._loop = loop
        self._deliver = deliver
        # Tuples, not dicts or sets, throughout: a printer has ~76 entities and reads change
        # rarely, so the index is rebuilt per key on a change and small the rest of the time.
        self._readers: dict[str, tuple[Listener, ...]] = {}
        self._members: list[Listener] = []
        self._shared: dict[tuple[str, ...], tuple[str, ...]] = {}
        self._tokens = float(BURST)
        self._tokens_at = loop.time()
        self._pending: frozenset[str] | None = frozenset()
        self._flush: asyncio.TimerHandle | None = None

    # --- the members --------------------------------------------------------------------------

    def add_member(self, listener: Listener) -> None:
        """`listener` is told about everything that may concern every entity (`members`)."""
        self._members.append(listener)

    def remove_member(self, listener: Listener, reads: Iterable[str]) -> None:
        """Forget `listener`, a member that last read `reads`."""
        with contextlib.suppress(ValueError):
            self._members.remove(listener)
        self.index(listener, reads, ())

    def members(self) -> list[Listener]:
        """Every member, in the order they joined (a copy: members join and leave meanwhile)."""
        return list(self._members)

    # --- the index ---------------------------------------------------------------------------

    def shared(self, keys: Iterable[str]) -> tuple[str, ...]:
        """`keys`, sorted, as a tuple shared by every listener that reads the same keys (most
        of a printer's entities read one to three keys: a tuple of two takes 56 bytes, a
        frozenset 216)."""
        ordered = tuple(sorted(keys))
        if len(self._shared) >= MAX_SHARED_READS:
            self._shared.clear()  # only a cache: tuples already handed out stay valid
        return self._shared.setdefault(ordered, ordered)

    def index(self, listener: Listener, old: Iterable[str], new: Iterable[str]) -> None:
        """Move `listener` from the keys it read before (`old`) to the ones it reads now."""
        old_keys, new_keys = set(old), set(new)
        for key in old_keys - new_keys:
            if (readers := self._readers.get(key)) is not None:
                if kept := tuple(reader for reader in readers if reader != listener):
                    self._readers[key] = kept
                else:
                    del self._readers[key]
        for key in new_keys - old_keys:
            readers = self._readers.get(key, ())
            if listener not in readers:
                self._readers[key] = (*readers, listener)

    def readers(self, changed: Iterable[str]) -> list[Listener]:
        """The listeners that read any of `changed`, each once, in registration order."""
        found: dict[Listener, None] = {}
        for key in changed:
            if (readers := self._readers.get(key)) is not None:
                found.update(dict.fromkeys(readers))
        # A copy: listeners re-register their reads while they are called.
        return list(found)

    @property
    def indexed_keys(self) -> frozenset[str]:
        """Keys at least one listener reads (for tests and diagnostics)."""
        return frozenset(self._readers)

    # --- the throttle ------------------------------------------------------------------------

    def notify(self, changed: frozenset[str] | None) -> None:
        """A report changed `changed` (None: anything may have): deliver now or soon."""
        if self._flush is not None:  # already waiting: this report joins the next delivery
            self._pending = self._join(self._pending, changed)
            return
        now = self._loop.time()
        self._tokens = min(float(BURST), self._tokens + (now - self._tokens_at) * RATE)
        self._tokens_at = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            self._deliver(changed)
            return
        self._pending = changed
        self._flush = self._loop.call_at(now + (1.0 - self._tokens) / RATE, self._deliver_pending)

    def delivered_all(self) -> None:
        """Every entity was just refreshed by other means: nothing is pending any more."""
        self.cancel()

    def cancel(self) -> None:
        """Drop a pending delivery (unload, or everything was refreshed anyway)."""
        if self._flush is not None:
            self._flush.cancel()
            self._flush = None
        self._pending = frozenset()

    def _deliver_pending(self) -> None:
        self._flush = None
        changed, self._pending = self._pending, frozenset()
        now = self._loop.time()
        self._tokens = min(float(BURST), self._tokens + (now - self._tokens_at) * RATE) - 1.0
        self._tokens_at = now
        self._deliver(changed)

    @staticmethod
    def _join(
        pending: frozenset[str] | None, changed: frozenset[str] | None
    ) -> frozenset[str] | None:
        if pending is None or changed is None:
            return None
        return pending | changed
