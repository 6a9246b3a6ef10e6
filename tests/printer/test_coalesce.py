"""Reads in passes (`printer/coalesce.py`), on socket pairs: which reads wait, which do not.

The window is stretched to a second so that "read at once" and "held for the window" are far
apart on a loaded machine. The sessions' use of it runs in every session and entity test.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
import contextlib
import socket
import time

import pytest

from custom_components.bambu_lan.printer import coalesce

WINDOW = 1.0


@pytest.fixture(autouse=True)
def long_window(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(coalesce, "WINDOW", WINDOW)


@pytest.fixture
def pairs() -> Iterator[list[tuple[socket.socket, socket.socket]]]:
    made: list[tuple[socket.socket, socket.socket]] = []
    yield made
    for ours, theirs in made:
        ours.close()
        theirs.close()


class Connection:
    """One end of a socket pair watched by the coalescer; records when each read ran."""

    def __init__(
        self,
        coalescer: coalesce.ReadCoalescer,
        pairs: list[tuple[socket.socket, socket.socket]],
        *,
        chunk: int = 4096,
    ) -> None:
        self.ours, self.theirs = socket.socketpair()
        pairs.append((self.ours, self.theirs))
        self.ours.setblocking(False)
        self.coalescer = coalescer
        self.chunk = chunk
        self.reads: list[float] = []
        self.data = b""
        coalescer.add(self.ours.fileno(), self.read)

    def read(self) -> None:
        self.reads.append(time.monotonic())
        with contextlib.suppress(BlockingIOError):
            self.data += self.ours.recv(self.chunk)

    def remove(self) -> None:
        self.coalescer.remove(self.ours.fileno())


async def until(condition: object, timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():  # type: ignore[operator]
            await asyncio.sleep(0.005)


async def test_after_a_quiet_window_a_read_runs_at_once_and_within_it_reads_wait_together(
    pairs: list[tuple[socket.socket, socket.socket]],
) -> None:
    coalescer = coalesce.ReadCoalescer(asyncio.get_running_loop())
    first, second, third = (Connection(coalescer, pairs) for _ in range(3))
    sent = time.monotonic()
    first.theirs.send(b"a")
    await until(lambda: first.data == b"a")
    assert first.reads[0] - sent < WINDOW / 2  # nothing ran before: no wait

    second.theirs.send(b"b")
    await asyncio.sleep(WINDOW / 5)
    third.theirs.send(b"c")
    await until(lambda: second.data == b"b" and third.data == b"c")
    # Both held until the window that the first read opened had passed, then read in one pass.
    assert second.reads[0] - first.reads[0] >= WINDOW * 0.9
    assert abs(third.reads[0] - second.reads[0]) < WINDOW / 10
    assert len(first.reads) == 1  # a connection with nothing to read is not called

    # A pass that found something keeps the window open; after a quiet one, at once again.
    await asyncio.sleep(WINDOW * 2.2)
    sent = time.monotonic()
    first.theirs.send(b"d")
    await until(lambda: first.data == b"ad")
    assert first.reads[-1] - sent < WINDOW / 2
    for connection in (first, second, third):
        connection.remove()
    assert coalescer._selector is None


async def test_a_busy_connection_is_read_on_without_waiting_for_windows(
    pairs: list[tuple[socket.socket, socket.socket]],
) -> None:
    """One read takes one piece (as one read takes one TLS record): 100 pieces sent at once
    would take 100 / ROUNDS windows if a busy connection waited for each."""
    coalescer = coalesce.ReadCoalescer(asyncio.get_running_loop())
    busy = Connection(coalescer, pairs, chunk=1)
    sent = time.monotonic()
    busy.theirs.send(bytes(100))
    await until(lambda: len(busy.data) == 100)
    assert time.monotonic() - sent < 2 * WINDOW
    assert len(busy.reads) >= 100
    busy.remove()


async def test_a_connection_removed_while_it_waits_is_not_read(
    pairs: list[tuple[socket.socket, socket.socket]],
) -> None:
    coalescer = coalesce.ReadCoalescer(asyncio.get_running_loop())
    opener, waiting, staying = (Connection(coalescer, pairs) for _ in range(3))
    opener.theirs.send(b"x")
    await until(lambda: opener.data == b"x")
    waiting.theirs.send(b"y")
    await asyncio.sleep(WINDOW / 5)
    waiting.remove()
    staying.theirs.send(b"z")
    await until(lambda: staying.data == b"z")
    assert waiting.reads == []
    # The last removal closes the selector and the loop no longer watches it.
    opener.remove()
    staying.remove()
    assert coalescer._selector is None
    assert coalescer._timer is None
    coalescer.remove(opener.ours.fileno())  # again: nothing to do


async def test_a_read_that_closes_another_ready_connection_skips_it(
    pairs: list[tuple[socket.socket, socket.socket]],
) -> None:
    coalescer = coalesce.ReadCoalescer(asyncio.get_running_loop())
    for _ in range(2):
        pairs.append(socket.socketpair())
    calls: list[int] = []

    def read_and_close_both() -> None:
        calls.append(1)
        for ours, _theirs in pairs:
            coalescer.remove(ours.fileno())

    for ours, theirs in pairs:
        coalescer.add(ours.fileno(), read_and_close_both)
        theirs.send(b"!")
    await until(lambda: calls)
    await asyncio.sleep(0.05)
    # Both were ready in the same pass; the first read removed both, the second never ran.
    assert calls == [1]
    assert coalescer._selector is None


async def test_one_coalescer_per_loop_while_it_has_connections(
    pairs: list[tuple[socket.socket, socket.socket]],
) -> None:
    loop = asyncio.get_running_loop()
    coalescer = coalesce.for_loop(loop)
    assert coalesce.for_loop(loop) is coalescer
    pairs.append(socket.socketpair())
    coalescer.add(pairs[0][0].fileno(), lambda: None)
    other = asyncio.new_event_loop()
    try:
        assert coalesce.for_loop(other) is not coalescer
    finally:
        coalesce._COALESCERS.pop(other)
        other.close()
    coalescer.remove(pairs[0][0].fileno())
    assert loop not in coalesce._COALESCERS  # nothing keeps a loop once its connections closed


async def test_closing_the_last_connection_during_a_window_cancels_its_pass(
    pairs: list[tuple[socket.socket, socket.socket]],
) -> None:
    coalescer = coalesce.ReadCoalescer(asyncio.get_running_loop())
    only = Connection(coalescer, pairs)
    only.theirs.send(b"1")
    await until(lambda: only.data == b"1")
    only.theirs.send(b"2")
    await until(lambda: coalescer._timer is not None)  # held for the window's pass
    coalescer.remove(only.theirs.fileno())  # never added: nothing changes
    assert coalescer._timer is not None
    only.remove()
    assert coalescer._timer is None
    assert coalescer._selector is None
    await asyncio.sleep(WINDOW * 1.2)
    assert only.data == b"1"


async def test_a_reused_descriptor_number_reads_for_its_new_socket(
    pairs: list[tuple[socket.socket, socket.socket]],
) -> None:
    """Should a socket close without `remove`, the next one with its number replaces it."""
    coalescer = coalesce.ReadCoalescer(asyncio.get_running_loop())
    connection = Connection(coalescer, pairs)
    stale: list[int] = []
    coalescer.remove(connection.ours.fileno())
    coalescer.add(connection.ours.fileno(), lambda: stale.append(1))
    coalescer.add(connection.ours.fileno(), connection.read)  # the same number again
    connection.theirs.send(b"new")
    await until(lambda: connection.data == b"new")
    assert stale == []
    connection.remove()
