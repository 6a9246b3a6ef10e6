"""Command acknowledgements: the printer answers a command with the same sequence_id."""

from __future__ import annotations

import asyncio
import itertools
import random
from typing import Any

from .session_api import CommandError


class PendingAcks:
    """Sequence numbers for requests, and the commands still waiting for their answer."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        """Start the sequence somewhere a previous run of ours is unlikely to have used."""
        self._loop = loop
        # (type key, sequence_id) -> (command, future awaiting the acknowledgement)
        self._pending: dict[tuple[str, str], tuple[str, asyncio.Future[dict[str, Any]]]] = {}
        self._sequence = itertools.count(random.randrange(10_000, 20_000))  # noqa: S311 - not a secret

    def __bool__(self) -> bool:
        """Whether any command waits for its acknowledgement."""
        return bool(self._pending)

    def next_seq(self) -> str:
        """The sequence_id of the next request."""
        return str(next(self._sequence))

    def expect(self, kind: str, sequence: str, command: str) -> asyncio.Future[dict[str, Any]]:
        """A future that the acknowledgement of this command completes."""
        future: asyncio.Future[dict[str, Any]] = self._loop.create_future()
        self._pending[(kind, sequence)] = (command, future)
        return future

    def discard(self, kind: str, sequence: str) -> None:
        """Stop waiting for this command (answered, timed out or cancelled)."""
        self._pending.pop((kind, sequence), None)

    def match(self, message: dict[str, Any]) -> None:
        """Complete the command a report acknowledges, if any."""
        for kind, body in message.items():
            if not isinstance(body, dict):
                continue
            pending = self._pending.get((kind, str(body.get("sequence_id"))))
            if pending is None:
                continue
            command, future = pending
            if body.get("command") == command and not future.done():
                future.set_result(body)

    def fail_all(self) -> None:
        """The link is gone: every waiting command fails as not connected."""
        for command, future in self._pending.values():
            if not future.done():
                future.set_exception(CommandError(command, "not_connected"))
        self._pending.clear()
