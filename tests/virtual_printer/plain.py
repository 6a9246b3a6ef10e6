"""TCP endpoints on 127.0.0.1 that are no printer at all, for the failure paths of TLS clients.

`reply=None`: accepts and never says a word (a handshake that times out). `reply=b"..."`: answers
the ClientHello with those bytes and closes (not TLS: the handshake fails). Either way it keeps
every byte the client sent, so a test can show that no credentials left the client.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
import contextlib
from dataclasses import dataclass, field

HOST = "127.0.0.1"


@dataclass
class PlainServer:
    """Where it listens and what it received."""

    port: int
    received: bytearray = field(default_factory=bytearray)
    connections: int = 0


@contextlib.asynccontextmanager
async def plain_server(reply: bytes | None = None) -> AsyncIterator[PlainServer]:
    """Serve on an ephemeral port for the duration of the block."""
    writers: set[asyncio.StreamWriter] = set()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        server.connections += 1
        writers.add(writer)
        try:
            server.received += await reader.read(4096)
            if reply is not None:
                writer.write(reply)
                await writer.drain()
                return
            while data := await reader.read(4096):
                server.received += data
        except OSError:
            pass
        finally:
            writers.discard(writer)
            writer.close()

    listener = await asyncio.start_server(handle, HOST, 0)
    server = PlainServer(listener.sockets[0].getsockname()[1])
    try:
        yield server
    finally:
        listener.close()
        for writer in list(writers):
            writer.transport.abort()
        await listener.wait_closed()
