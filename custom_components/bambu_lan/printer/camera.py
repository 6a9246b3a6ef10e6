"""The port-6000 camera of P1, A1 and A2L printers: JPEG frames over verified TLS.

One `JpegCamera` per printer holds at most one upstream connection, shared by every viewer and
snapshot: printers accept few clients. It opens when someone needs a frame and closes after
`idle_timeout` seconds without a viewer or a snapshot request. Everything runs on the event loop
(asyncio streams); no thread.

Protocol (docs: protocol.md §5): after the TLS handshake the client sends one 80-byte auth packet
(four little-endian uint32: 0x40, 0x3000, 0, 0; then "bblp" and the access code, each NUL-padded
to 32 bytes). The printer answers with frames: a 16-byte header (payload size, 0, 1, 0) and a
JPEG. A wrong access code shows up as the socket closing before a single byte arrives.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
import contextlib
import logging
import struct
from typing import Final

from .tls import PrinterTLSError
from .tls_stream import async_open_printer_stream

_LOGGER = logging.getLogger(__name__)

CAMERA_PORT: Final = 6000
USERNAME: Final = b"bblp"
IDLE_TIMEOUT: Final = 30.0
CONNECT_TIMEOUT: Final = 10.0
# A P1 sends a frame every 1-2 s; an upstream silent for this long is dead.
FRAME_TIMEOUT: Final = 12.0
# 1280x720 JPEGs are 50-200 KiB; anything near this bound is not a frame.
MAX_FRAME: Final = 4 * 1024 * 1024
READ_SIZE: Final = 64 * 1024
# How long a snapshot waits for a frame (connect + first frame).
FRAME_WAIT: Final = 15.0
RETRY_INITIAL: Final = 1.0
RETRY_MAX: Final = 30.0


_HEADER: Final = struct.Struct("<IIII")
# Bytes 4..15 of every frame header: itrack 0, flags 1, reserved 0.
_HEADER_TAIL: Final = _HEADER.pack(0, 0, 1, 0)[4:]
_SOI: Final = b"\xff\xd8"
_EOI: Final = b"\xff\xd9"


class CameraError(Exception):
    """The camera could not deliver a frame (English message, never the access code)."""


class CameraAuthError(CameraError):
    """The printer hung up right after the auth packet: wrong access code."""


class CameraConnectionError(CameraError):
    """The camera port could not be reached, or the stream broke off."""


def auth_packet(access_code: str) -> bytes:
    """The 80-byte packet that opens the stream."""
    code = access_code.encode()
    if len(code) > 32:
        raise ValueError("an access code is at most 32 bytes")
    return _HEADER.pack(0x40, 0x3000, 0, 0) + USERNAME.ljust(32, b"\0") + code.ljust(32, b"\0")


class FrameParser:
    """Turns the byte stream into JPEG frames; bounded, and resynchronises on garbage.

    The buffer never holds more than one maximal frame plus one read. All searching is done by
    `bytes.find` (C), never byte by byte in Python.
    """

    def __init__(self, max_frame: int = MAX_FRAME) -> None:
        """`max_frame`: the largest payload accepted as a frame."""
        self._buffer = bytearray()
        self._max_frame = max_frame
        self.discarded = 0  # bytes thrown away while resynchronising (for diagnostics)

    def feed(self, data: bytes) -> list[bytes]:
        """Add received bytes; return the complete frames they finished, oldest first."""
        buffer = self._buffer
        buffer += data
        frames: list[bytes] = []
        while len(buffer) >= _HEADER.size:
            size, *_ = _HEADER.unpack_from(buffer)
            if buffer[4:16] != _HEADER_TAIL or not 4 <= size <= self._max_frame:
                self._resync()
                continue
            end = _HEADER.size + size
            if len(buffer) < end:
                break  # wait for the rest of the payload
            if buffer.startswith(_SOI, _HEADER.size) and buffer.endswith(_EOI, 0, end):
                frames.append(bytes(buffer[_HEADER.size : end]))
                del buffer[:end]
            else:
                self._resync()  # a plausible header with no JPEG behind it
        return frames

    def _resync(self) -> None:
        """Drop bytes up to the next position that could start a header."""
        buffer = self._buffer
        found = buffer.find(_HEADER_TAIL, 5)  # a header at offset >= 1 has its tail at >= 5
        drop = found - 4 if found != -1 else max(1, len(buffer) - (len(_HEADER_TAIL) + 3))
        self.discarded += drop
        del buffer[:drop]


class JpegCamera:
    """The shared, on-demand upstream to one printer's port-6000 camera."""

    def __init__(
        self,
        host: str,
        serial: str,
        access_code: str,
        *,
        port: int = CAMERA_PORT,
        pinned_cert: str | None = None,
        idle_timeout: float = IDLE_TIMEOUT,
    ) -> None:
        """Nothing connects until a frame is wanted."""
        self.host = host
        self.port = port
        self.serial = serial
        self._access_code = access_code
        self._pinned_cert = pinned_cert
        self.idle_timeout = idle_timeout
        self.frame: bytes | None = None
        self.frame_time: float | None = None  # loop time of `frame`
        self.error: CameraError | PrinterTLSError | None = None
        self.connections = 0  # upstream connections opened so far
        self._viewers = 0
        self._task: asyncio.Task[None] | None = None
        self._idle_handle: asyncio.TimerHandle | None = None
        self._waiters: set[asyncio.Future[bytes]] = set()
        self._closed = False

    def __repr__(self) -> str:  # the access code stays out of reprs
        return f"JpegCamera(host={self.host!r}, port={self.port}, serial={self.serial!r})"

    @property
    def connected(self) -> bool:
        """Whether an upstream connection is open (or opening)."""
        return self._task is not None

    # --- consumers ----------------------------------------------------------------------------

    async def async_get_frame(self, *, max_age: float = 5.0) -> bytes:
        """The newest frame, if younger than `max_age` seconds; otherwise wait for the next.

        Waits at most `FRAME_WAIT` seconds. Raises `CameraError` or `PrinterTLSError` when no
        frame can be had.
        """
        loop = asyncio.get_running_loop()
        if (
            self.frame is not None
            and self.frame_time is not None
            and self._task is not None
            and loop.time() - self.frame_time <= max_age
        ):
            self._touch()
            return self.frame
        try:
            async with asyncio.timeout(FRAME_WAIT):
                return await self._next_frame()
        except TimeoutError as err:
            raise CameraConnectionError("no frame from the camera") from err

    async def frames(self) -> AsyncGenerator[bytes]:
        """Every frame from now on (the newest first, if any), for as long as the caller reads.

        A viewer keeps the upstream open; when the last one leaves, the idle timer starts. A
        dropped stream is reopened with back-off; a refused one (access code, certificate) ends
        the iteration with its error.
        """
        self._viewers += 1
        delay = RETRY_INITIAL
        try:
            if self.frame is not None and self._task is not None:
                yield self.frame
            while True:
                try:
                    frame = await self._next_frame()
                except CameraAuthError:
                    raise
                except CameraConnectionError:
                    if self._closed:
                        raise
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, RETRY_MAX)
                    continue
                delay = RETRY_INITIAL
                yield frame
        finally:
            self._viewers -= 1
            if not self._closed:
                self._touch()

    async def async_close(self) -> None:
        """Close the upstream and refuse further use (config entry unload)."""
        self._closed = True
        await self._stop()
        self._fail_waiters(CameraConnectionError("camera closed"))

    # --- connection management ----------------------------------------------------------------

    def _next_frame(self) -> asyncio.Future[bytes]:
        if self._closed:
            raise CameraConnectionError("camera closed")
        waiter: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._waiters.add(waiter)
        waiter.add_done_callback(self._waiters.discard)
        self._ensure_running()
        return waiter

    def _ensure_running(self) -> None:
        self._touch()
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name=f"bambu_lan camera {self.serial}"
            )

    def _touch(self) -> None:
        """Someone used the camera: (re)start the idle countdown."""
        if self._idle_handle is not None:
            self._idle_handle.cancel()
        self._idle_handle = asyncio.get_running_loop().call_later(self.idle_timeout, self._on_idle)

    def _on_idle(self) -> None:
        self._idle_handle = None
        if self._viewers or self._waiters:
            self._touch()
            return
        if self._task is not None:
            _LOGGER.debug("Closing the idle camera connection to %s", self.host)
            self._task.cancel()
            self._task = None

    async def _stop(self) -> None:
        if self._idle_handle is not None:
            self._idle_handle.cancel()
            self._idle_handle = None
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        """One upstream connection: read frames until it ends, then fail whoever still waits."""
        try:
            await self._stream()
            error: CameraError | PrinterTLSError = CameraConnectionError(
                "the camera closed the stream"
            )
        except (CameraError, PrinterTLSError) as err:
            error = err
        finally:
            if self._task is asyncio.current_task():
                self._task = None
        _LOGGER.debug("Camera stream from %s ended: %s", self.host, error)
        self.error = error
        self._fail_waiters(error)

    async def _stream(self) -> None:
        try:
            reader, writer = await async_open_printer_stream(
                self.host,
                self.port,
                self.serial,
                pinned_cert=self._pinned_cert,
                connect_timeout=CONNECT_TIMEOUT,
            )
        except PrinterTLSError:
            raise  # also an OSError when the handshake refused the certificate
        except OSError as err:
            raise CameraConnectionError(
                f"cannot reach the camera at {self.host}:{self.port}: {err.strerror or err}"
            ) from err
        self.connections += 1
        try:
            # Only after a verified handshake: an impostor never sees the packet.
            writer.write(auth_packet(self._access_code))
            await writer.drain()
            await self._read_frames(reader)
        except OSError as err:  # ssl.SSLError included
            raise CameraConnectionError(f"camera stream broke: {err}") from err
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    async def _read_frames(self, reader: asyncio.StreamReader) -> None:
        """Publish frames until the printer ends the stream; no byte at all: a refused code."""
        parser = FrameParser()
        received = 0
        while True:
            try:
                async with asyncio.timeout(FRAME_TIMEOUT):
                    data = await reader.read(READ_SIZE)
            except TimeoutError as err:
                raise CameraConnectionError("no frame from the camera") from err
            if not data:
                if received == 0:
                    raise CameraAuthError("the printer refused the access code")
                return
            received += len(data)
            for frame in parser.feed(data):
                self._publish(frame)

    def _publish(self, frame: bytes) -> None:
        self.frame = frame
        self.frame_time = asyncio.get_running_loop().time()
        self.error = None
        waiters, self._waiters = self._waiters, set()
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(frame)

    def _fail_waiters(self, error: Exception) -> None:
        waiters, self._waiters = self._waiters, set()
        for waiter in waiters:
            if not waiter.done():
                waiter.set_exception(error)
