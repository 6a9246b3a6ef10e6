"""paho-mqtt over a socket we verified, driven by the asyncio event loop (no thread).

paho would open its socket itself, blocking in the TCP connect and the TLS handshake; that had to
run in the executor, where a peer that accepts TCP and never answers held a thread (and the
socket) that closing the session could not take back. Here paho is handed the finished socket
(`VerifiedClient`), and `LoopDriver` feeds it from the loop: reads when `coalesce.py` says the
socket is readable (at once, or in one pass with the loop's other MQTT connections), writes
from `loop.add_writer`, and paho's `loop_misc` on a timer. Reads go through
`mqtt_frames.FramedSocket`: reports bypass paho's packet reader, every other packet still goes
through paho.
"""

from __future__ import annotations

import asyncio
from typing import Any, Final, override

import paho.mqtt.client as mqtt

from . import coalesce
from .mqtt_frames import FramedSocket, PublishHandler, SkipHandler

KEEPALIVE: Final = 30  # seconds idle before paho pings; an unanswered ping drops the link


class VerifiedClient(mqtt.Client):
    """A paho client that logs in over a socket we connected and verified on the event loop."""

    _verified: FramedSocket | None = None

    def connect_over(self, sock: FramedSocket, host: str, port: int) -> None:
        """Send CONNECT over `sock` (the CONNACK arrives through the loop's reader)."""
        self._verified = sock
        try:
            self.connect(host, port, KEEPALIVE)
        except BaseException:
            sock.close()
            raise

    @override
    def _create_socket(self) -> FramedSocket:
        sock, self._verified = self._verified, None
        if sock is None:  # paho never opens a connection of its own
            raise ConnectionError("no verified connection to log in over")
        return sock


class LoopDriver:
    """Runs the I/O of the session's current paho client on the event loop.

    paho's socket callbacks register its socket with the loop. Callbacks of any client but the
    attached one (a client the session already gave up on) touch nothing.
    """

    def __init__(
        self, loop: asyncio.AbstractEventLoop, on_publish: PublishHandler, on_skip: SkipHandler
    ) -> None:
        """Drive nothing until `attach`; QoS 0 PUBLISH packets go to `on_publish`, the sizes of
        packets too large to keep to `on_skip`."""
        self._loop = loop
        self._coalescer: coalesce.ReadCoalescer | None = None
        self._on_publish = on_publish
        self._on_skip = on_skip
        self._misc_interval = 0.0
        self._client: mqtt.Client | None = None
        self._fileno: int | None = None
        self._misc_timer: asyncio.TimerHandle | None = None

    def attach(self, client: mqtt.Client, misc_interval: float) -> None:
        """Drive `client` from now on (before it connects: its socket opens in `connect`).

        `misc_interval` is the tick of paho's `loop_misc` (keepalive pings, their timeouts).
        """
        self._client = client
        self._misc_interval = misc_interval
        client.on_socket_open = self._on_socket_open
        client.on_socket_close = self._on_socket_close
        client.on_socket_register_write = self._on_socket_register_write
        client.on_socket_unregister_write = self._on_socket_unregister_write

    def detach(self) -> None:
        """Stop driving the client: no reader, writer or timer is left on the loop."""
        if self._misc_timer is not None:
            self._misc_timer.cancel()
            self._misc_timer = None
        if self._client is not None:
            self._forget_socket(self._client)
            self._client = None

    def _on_socket_open(self, client: mqtt.Client, _userdata: Any, sock: Any) -> None:
        # Register by descriptor number: by the time paho reports a close the socket object
        # already says -1, and the loop would no longer find it.
        self._fileno = fileno = sock.fileno()

        def read() -> None:
            if client is self._client:
                sock.pump(self._on_publish, self._on_skip, self._paho_read)

        # Looked up per connection: a loop's coalescer goes when its last connection closes.
        self._coalescer = coalesce.for_loop(self._loop)
        self._coalescer.add(fileno, read)
        self._misc_timer = self._loop.call_later(self._misc_interval, self._misc, client)

    def _on_socket_close(self, client: mqtt.Client, _userdata: Any, _sock: Any) -> None:
        self._forget_socket(client)

    def _forget_socket(self, client: mqtt.Client) -> None:
        if client is not self._client or self._fileno is None:
            return
        if self._coalescer is not None:
            self._coalescer.remove(self._fileno)
        self._loop.remove_writer(self._fileno)
        self._fileno = None

    def _on_socket_register_write(self, client: mqtt.Client, _userdata: Any, _sock: Any) -> None:
        if client is self._client and self._fileno is not None:
            self._loop.add_writer(self._fileno, self._write, client)

    def _on_socket_unregister_write(self, client: mqtt.Client, _userdata: Any, _sock: Any) -> None:
        if client is self._client and self._fileno is not None:
            self._loop.remove_writer(self._fileno)

    def _paho_read(self) -> bool:
        """Let paho read the packet the socket hands it; False once the connection is gone."""
        client = self._client
        return (
            client is not None
            and client.loop_read() == mqtt.MQTT_ERR_SUCCESS
            and client is self._client
        )

    def _write(self, client: mqtt.Client) -> None:
        client.loop_write()

    def _misc(self, client: mqtt.Client) -> None:
        if client is not self._client:
            return
        client.loop_misc()
        if client is self._client:
            self._misc_timer = self._loop.call_later(self._misc_interval, self._misc, client)
