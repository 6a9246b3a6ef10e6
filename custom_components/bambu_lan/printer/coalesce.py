"""Read the connections of many printers in passes, so that a farm wakes the loop less often.

On a host that idles between reports, every wake-up of the event loop is expensive: the
interpreter's code and data have left the CPU's caches. Measured on a 2 vCPU VM, one report costs
29 us back to back, 364 us after a 10 ms pause and 441 us after 100 ms. A farm of printers that
each push once a second, at random phases, would pay that on every report.

So the MQTT connections of one event loop are watched through one selector of their own (an
epoll set on Linux), and the loop watches only that selector. When it turns readable after
a quiet `WINDOW`, the ready connections are read at once: a single printer never waits. When it
turns readable within `WINDOW` of the last pass, the loop stops watching it until the window
ends, and one pass then reads every connection that became ready meanwhile. Under load, the loop
wakes about twice per window instead of once per report, and a report waits at most `WINDOW`.
A pass reads a connection again while it stays ready; one still ready after `ROUNDS` reads is
busy (a flood, a large packet), and the next pass runs as soon as anything is ready.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
import selectors
from typing import Final

WINDOW: Final = 0.1
"""Seconds a read may be held back to join a pass (only while another pass just ran)."""
ROUNDS: Final = 8
"""Reads per connection in one pass while it stays ready (one read takes one TLS record); a
connection still ready after them is busy (a flood, a large packet), and the next pass runs as
soon as it is ready again, not at the end of a window."""

type Reader = Callable[[], None]


class ReadCoalescer:
    """One per event loop (`for_loop`): watches every MQTT connection on it, reads in passes."""

    __slots__ = ("_loop", "_open_until", "_selector", "_timer", "_watching")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        """Watch nothing yet (the selector opens with the first connection)."""
        self._loop = loop
        self._selector: selectors.DefaultSelector | None = None
        self._watching = False  # the loop watches the selector
        self._open_until = 0.0
        self._timer: asyncio.TimerHandle | None = None

    def add(self, fileno: int, read: Reader) -> None:
        """Call `read()` whenever `fileno` has something to read."""
        selector = self._selector
        if selector is None:
            selector = self._selector = selectors.DefaultSelector()
        try:
            selector.register(fileno, selectors.EVENT_READ, read)
        except KeyError:  # the number of a socket that closed unnoticed: the new one replaces it
            selector.unregister(fileno)
            selector.register(fileno, selectors.EVENT_READ, read)
        self._watch()

    def remove(self, fileno: int) -> None:
        """Stop watching `fileno` (before it closes); the selector closes with the last one."""
        selector = self._selector
        if selector is None:
            return
        try:
            selector.unregister(fileno)
        except KeyError:
            return
        if not selector.get_map():
            self._unwatch()
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            selector.close()
            self._selector = None
            # Forget this loop: the next connection on it starts afresh (and the coalescer,
            # which holds the loop, does not keep a closed loop alive).
            if _COALESCERS.get(self._loop) is self:
                del _COALESCERS[self._loop]

    def _watch(self) -> None:
        if not self._watching and self._selector is not None and self._timer is None:
            self._loop.add_reader(self._selector.fileno(), self._readable)
            self._watching = True

    def _unwatch(self) -> None:
        if self._watching and self._selector is not None:
            self._loop.remove_reader(self._selector.fileno())
            self._watching = False

    def _readable(self) -> None:
        if self._loop.time() >= self._open_until:
            self._pass()
            return
        # Within the window: let the connections that are ready now, and those that become
        # ready until the window ends, wait for one pass.
        self._unwatch()
        self._timer = self._loop.call_at(self._open_until, self._window_end)

    def _window_end(self) -> None:
        self._timer = None
        self._pass()
        self._watch()

    def _pass(self) -> None:
        """Read every ready connection, each again while it stays ready (at most `ROUNDS`)."""
        selector = self._selector
        for _round in range(ROUNDS):
            if selector is None or self._selector is not selector:
                return
            ready = selector.select(0)
            if not ready:
                self._open_until = self._loop.time() + WINDOW
                return
            for key, _events in ready:
                # A read may close connections (its own, or others' through callbacks).
                if self._selector is selector and selector.get_map().get(key.fd) is key:
                    key.data()
        self._open_until = 0.0  # busy: read again as soon as it is ready


_COALESCERS: dict[asyncio.AbstractEventLoop, ReadCoalescer] = {}


def for_loop(loop: asyncio.AbstractEventLoop) -> ReadCoalescer:
    """The coalescer every MQTT connection on `loop` shares."""
    coalescer = _COALESCERS.get(loop)
    if coalescer is None:
        coalescer = _COALESCERS[loop] = ReadCoalescer(loop)
    return coalescer
