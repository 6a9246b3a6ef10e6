"""The verified TLS socket as paho sees it, read in whole records and split into MQTT packets.

paho reads a packet with three or four `recv` calls (the type byte, each length byte, the rest),
each a TLS read, and then builds a message object with a lock for every PUBLISH. A printer
pushes about one report a second, and a farm of them made that paho's share the largest part of
the integration's CPU. Here the socket is read once per readiness (as much as TLS has decrypted),
PUBLISH packets at QoS 0 (all the printer sends: the session subscribes at QoS 0) go straight
to the session, and every other packet (CONNACK, SUBACK, PINGRESP, a PUBLISH at another QoS) is
handed to paho whole, through `recv`, so that paho never holds half a packet.

The buffer holds at most one packet being received plus one read's worth. A packet larger than
`MAX_PACKET` is skipped as it arrives (never buffered whole) and reported; a length field longer
than MQTT allows, or a PUBLISH whose topic runs past its end, ends the connection.
"""

from __future__ import annotations

from collections.abc import Callable
import ssl
from typing import Final

from .ssl_errors import clear_error_queue
from .values import MAX_PAYLOAD_BYTES

MAX_PACKET: Final = MAX_PAYLOAD_BYTES + 1024
"""Largest MQTT packet kept: the largest payload decoded, its topic and header."""
_READ_SIZE: Final = 16 * 1024  # a TLS record's most; one read returns one record at most
_QOS0_PUBLISH: Final = 0x30  # type 3; the DUP and RETAIN flags are ignored, QoS must be 0
_TYPE_AND_QOS: Final = 0xF6

type PublishHandler = Callable[[bytes, bytes], None]
"""Called with (topic, payload) of every QoS 0 PUBLISH, in the order they arrived."""
type SkipHandler = Callable[[int], None]
"""Called with the size of every packet skipped for being larger than `MAX_PACKET`."""


class ProtocolError(OSError):
    """The peer sent bytes that are not MQTT; paho sees it as a lost connection."""


class FramedSocket:
    """A paho `SocketLike` over a verified SSL socket; `pump` reads and dispatches.

    paho's `recv` is served from the buffer, and only up to the end of the packet `pump` hands
    over (`BlockingIOError` after it), so paho's own reads never cross a packet boundary.
    """

    __slots__ = ("_allowed", "_buffer", "_end", "_failure", "_skip", "_start", "sock")

    def __init__(self, sock: ssl.SSLSocket) -> None:
        """Wrap `sock` (connected, handshake done, non-blocking once paho has it)."""
        self.sock = sock
        self._buffer = bytearray()
        self._start = 0
        self._allowed = 0  # bytes paho may read now
        self._skip = 0  # bytes of an oversized packet still to discard
        self._end = False  # the peer closed its side
        self._failure: OSError | None = None

    # --- what paho calls ------------------------------------------------------------------

    def recv(self, size: int) -> bytes:
        """Up to `size` bytes of the packet handed to paho (b"" once the peer has closed)."""
        if self._failure is not None:
            raise self._failure
        available = min(self._allowed, len(self._buffer) - self._start)
        if available <= 0:
            if self._end and self._start >= len(self._buffer):
                return b""
            raise BlockingIOError
        take = min(size, available)
        start = self._start
        self._start = start + take
        self._allowed -= take
        return bytes(self._buffer[start : start + take])

    def send(self, data: bytes) -> int:
        """paho's writes go straight to TLS."""
        # See ssl_errors: start with an empty queue, and leave none behind for the loop's other
        # TLS connections (Home Assistant's own included) when this one has failed.
        clear_error_queue()
        try:
            return self.sock.send(data)
        except OSError:
            clear_error_queue()
            raise

    def close(self) -> None:
        """Close the TLS socket and drop what is buffered."""
        self._buffer.clear()
        self._start = self._allowed = 0
        self.sock.close()

    def fileno(self) -> int:
        """The descriptor the event loop watches (-1 once closed)."""
        return self.sock.fileno()

    def setblocking(self, flag: bool) -> None:
        """paho makes the socket non-blocking; so it stays."""
        self.sock.setblocking(flag)

    # --- what the loop driver calls -----------------------------------------------------------

    def pump(
        self, on_publish: PublishHandler, on_skip: SkipHandler, to_paho: Callable[[], bool]
    ) -> None:
        """Read what TLS holds and dispatch every complete packet.

        `to_paho()` lets paho read the one packet it is allowed (see `recv`) and returns False
        when the connection is gone. A closed or failed connection is left for paho to notice
        (its next `recv` returns b"" or raises), so it runs its own disconnect path.
        """
        while True:
            more = self._fill()
            if not self._dispatch(on_publish, on_skip, to_paho):
                return
            if self._end or self._failure is not None:
                self._allowed = len(self._buffer) - self._start
                to_paho()
                return
            if not more:
                return

    def _fill(self) -> bool:
        """Append decrypted bytes; True if TLS may hold more than was read (read again)."""
        buffer = self._buffer
        if self._start:
            del buffer[: self._start]
            self._start = 0
        # A partial record reads as "want read", which a stale OpenSSL error left on this
        # thread by another (dropped) connection would turn into a failure: see ssl_errors.
        clear_error_queue()
        try:
            while len(buffer) < MAX_PACKET + _READ_SIZE:
                data = self.sock.recv(_READ_SIZE)
                if not data:
                    self._end = True
                    return False
                buffer += data
                if not self.sock.pending():
                    # The kernel may hold more, but then the socket stays readable.
                    return False
        except ssl.SSLWantReadError, ssl.SSLWantWriteError, BlockingIOError:
            return False
        except OSError as err:
            clear_error_queue()  # leave nothing behind for the loop's other TLS connections
            self._failure = err
            return False
        return True  # stopped at the bound: dispatch, then read on

    def _dispatch(
        self, on_publish: PublishHandler, on_skip: SkipHandler, to_paho: Callable[[], bool]
    ) -> bool:
        """Hand out every complete packet; False once the connection is gone."""
        buffer = self._buffer
        while (size := len(buffer) - self._start) > 0:
            if self._skip:
                dropped = min(self._skip, size)
                self._start += dropped
                self._skip -= dropped
                continue
            if size < 2:
                return True
            start = self._start
            header = buffer[start]
            # The remaining length: 1 to 4 bytes, 7 bits each (MQTT 3.1.1, 2.2.3).
            length = 0
            index = start + 1
            for shift in (0, 7, 14, 21):
                if index >= start + size:
                    return True  # the length is not complete yet
                byte = buffer[index]
                index += 1
                length |= (byte & 0x7F) << shift
                if byte < 0x80:
                    break
            else:
                return self._fail(ProtocolError("MQTT remaining length longer than 4 bytes"))
            end = index + length
            if length > MAX_PACKET:
                self._skip = end - start
                on_skip(length)
                continue
            if end > start + size:
                return True  # the rest of the packet has not arrived
            if header & _TYPE_AND_QOS == _QOS0_PUBLISH:
                if length < 2:
                    return self._fail(ProtocolError("MQTT PUBLISH without a topic"))
                topic_end = index + 2 + (buffer[index] << 8 | buffer[index + 1])
                if topic_end > end:
                    return self._fail(ProtocolError("MQTT PUBLISH topic past the packet's end"))
                topic = bytes(buffer[index + 2 : topic_end])
                payload = bytes(buffer[topic_end:end])
                self._start = end
                on_publish(topic, payload)
            else:
                self._allowed = end - start
                alive = to_paho()
                self._allowed = 0
                if not alive or self._start != end:
                    return False  # paho dropped the connection (or read no packet)
            if self.sock.fileno() == -1:
                return False
        return True

    def _fail(self, error: ProtocolError) -> bool:
        self._failure = error
        return True
