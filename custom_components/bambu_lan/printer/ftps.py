"""The printer's storage over implicit FTPS (port 990), verified like every other connection.

No Home Assistant imports; part of the printer library. What it guarantees:

* TLS from the first byte with the context from `tls.py`: only Bambu Lab's CAs, and the
  certificate must name the configured serial. An impostor fails the handshake before `USER`
  and the access code are sent.
* `bblp` + access code, `PBSZ 0` / `PROT P`, binary type, passive mode.
* Every data connection resumes the control connection's TLS session (the printers' vsftpd
  refuses other data connections with 522), and is closed without a TLS shutdown after a
  transfer (the printers do not answer `unwrap()` after an upload, which then times out). An
  upload ends its control connection too: see `async_upload`.
* One control connection per printer at a time (operations queue on a lock), opened on demand
  and closed after `idle_timeout` seconds without use: printers accept few clients.
* ftplib is blocking: every step runs in the loop's executor, a chunk at a time for transfers,
  so the loop never blocks, no thread is kept per printer, and memory stays bounded whatever
  the file size.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
import contextlib
from dataclasses import dataclass
from enum import StrEnum
import ftplib
import logging
from pathlib import Path
import posixpath
import socket
import ssl
from typing import Any, Final

from .ftps_steps import (
    ImplicitFTPS,
    alive,
    connect,
    file_size,
    finish,
    open_source,
    quit_politely,
    recv_upto,
    send_chunk,
)
from .ssl_errors import run_clean
from .tls import PrinterTLSError, async_create_printer_context

_LOGGER = logging.getLogger(__name__)

FTPS_PORT: Final = 990
TIMEOUT: Final = 10.0  # seconds for a connect, a reply or a chunk of data
IDLE_TIMEOUT: Final = 30.0
CHUNK_SIZE: Final = 256 * 1024
MAX_LISTING_BYTES: Final = 4 * 1024 * 1024


class FtpsErrorKind(StrEnum):
    """Why a file operation failed."""

    UNREACHABLE = "unreachable"  # nothing answered on the port
    TLS = "tls"  # the certificate was refused (see `FtpsError.tls_error`)
    AUTH = "auth"  # the access code was refused
    TIMEOUT = "timeout"  # the printer stopped answering
    NOT_FOUND = "not_found"  # no such file or directory
    REFUSED = "refused"  # the printer refused the operation (full card, read-only, ...)
    PROTOCOL = "protocol"  # the conversation broke down
    TOO_LARGE = "too_large"  # bigger than the caller allows


class FtpsError(Exception):
    """A failed file operation; the message never holds the access code."""

    def __init__(
        self, kind: FtpsErrorKind, detail: str = "", *, tls_error: PrinterTLSError | None = None
    ) -> None:
        """`detail` is the printer's reply or the OS error, for logs and messages."""
        super().__init__(f"{kind}{f': {detail}' if detail else ''}")
        self.kind = kind
        self.detail = detail
        self.tls_error = tls_error


@dataclass(frozen=True, slots=True)
class RemoteFile:
    """A file on the printer."""

    path: str  # absolute, e.g. /timelapse/video_2026-01-01.mp4

    @property
    def name(self) -> str:
        """The last part of the path."""
        return posixpath.basename(self.path)


# What a command meets when the printer closed the connection just before it was sent: the
# `alive` probe can pass a moment before the close arrives.
_DROPPED: Final = (EOFError, ConnectionError, ssl.SSLEOFError, ssl.SSLZeroReturnError)


def _translate(err: BaseException) -> FtpsError:
    """One error type for callers, with the printer's reply or the OS error as detail."""
    if isinstance(err, FtpsError):
        return err
    if isinstance(err, PrinterTLSError):
        return FtpsError(FtpsErrorKind.TLS, str(err.kind), tls_error=err)
    if isinstance(err, TimeoutError):
        return FtpsError(FtpsErrorKind.TIMEOUT, "no answer in time")
    if isinstance(err, ConnectionRefusedError | socket.gaierror):
        return FtpsError(FtpsErrorKind.UNREACHABLE, err.strerror or type(err).__name__)
    if isinstance(err, ftplib.error_perm):
        reply = str(err)[:200]
        if reply.startswith("530"):
            return FtpsError(FtpsErrorKind.AUTH, reply)
        if reply.startswith("550"):
            return FtpsError(FtpsErrorKind.NOT_FOUND, reply)
        return FtpsError(FtpsErrorKind.REFUSED, reply)
    if isinstance(err, ftplib.Error):
        return FtpsError(FtpsErrorKind.PROTOCOL, str(err)[:200])
    if isinstance(err, ssl.SSLError):
        return FtpsError(FtpsErrorKind.PROTOCOL, str(err)[:200])
    if isinstance(err, OSError):
        return FtpsError(FtpsErrorKind.PROTOCOL, err.strerror or type(err).__name__)
    return FtpsError(FtpsErrorKind.PROTOCOL, type(err).__name__)


def _keeps_connection(err: BaseException) -> bool:
    """A 5xx reply to a command leaves the control connection usable; nothing else does."""
    return isinstance(err, ftplib.error_perm) and not str(err).startswith("530")


# --- Blocking steps (executor) ------------------------------------------------------------------


def _read_listing(conn: socket.socket) -> bytes | None:
    """The whole listing, or None if it is larger than any real card's."""
    data = bytearray()
    while chunk := conn.recv(65536):
        data += chunk
        if len(data) > MAX_LISTING_BYTES:
            return None
    return bytes(data)


def _list(ftp: ImplicitFTPS, directory: str) -> list[str]:
    conn = ftp.transfercmd(f"NLST {directory}")
    try:
        data = _read_listing(conn)
    except BaseException:
        conn.close()
        raise
    if data is None:
        conn.close()
        raise FtpsError(FtpsErrorKind.TOO_LARGE, f"listing of {directory}")
    finish(ftp, conn)
    return data.decode(ftp.encoding, errors="replace").splitlines()


# --- The client ---------------------------------------------------------------------------------


class PrinterFtps:
    """A printer's storage: list, read (streamed), upload and delete files.

    Every method is a coroutine for the event loop; they queue on one control connection.
    """

    def __init__(
        self,
        host: str,
        serial: str,
        access_code: str,
        *,
        port: int = FTPS_PORT,
        pinned_cert: str | None = None,
        timeout: float = TIMEOUT,
        idle_timeout: float = IDLE_TIMEOUT,
    ) -> None:
        """Nothing connects until the first operation."""
        self.host = host
        self.port = port
        self.serial = serial
        self._access_code = access_code
        self._pinned_cert = pinned_cert
        self.timeout = timeout
        self.idle_timeout = idle_timeout
        self._lock = asyncio.Lock()
        self._ftp: ImplicitFTPS | None = None
        self._kept = False  # the connection in use was kept from an earlier operation
        self._idle_handle: asyncio.TimerHandle | None = None
        self._idle_task: asyncio.Task[None] | None = None
        self._closed = False

    def __repr__(self) -> str:  # the access code stays out of reprs
        return f"PrinterFtps(host={self.host!r}, port={self.port}, serial={self.serial!r})"

    @property
    def connected(self) -> bool:
        """Whether a control connection is open right now."""
        return self._ftp is not None

    # -- connection management ---------------------------------------------------------------

    async def _call[T](self, func: Callable[..., T], *args: Any) -> T:
        """Run one blocking step in the executor; hold on to the connection until it is done."""
        future = asyncio.get_running_loop().run_in_executor(None, run_clean, func, *args)
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            # The step goes on in its thread: wait for it (sockets time out) and drop the
            # connection it was using (or just opened), so nobody reads a half-finished reply.
            result: Any = None
            with contextlib.suppress(Exception):
                result = await future
            if isinstance(result, ImplicitFTPS):
                await asyncio.get_running_loop().run_in_executor(None, quit_politely, result)
            await self._drop()
            raise

    async def _drop(self) -> None:
        ftp, self._ftp = self._ftp, None
        if ftp is not None:
            await asyncio.get_running_loop().run_in_executor(None, quit_politely, ftp)

    @contextlib.asynccontextmanager
    async def _session(self) -> AsyncIterator[ImplicitFTPS]:
        """The control connection, exclusively; errors are translated to `FtpsError`."""
        async with self._lock:
            if self._closed:
                raise FtpsError(FtpsErrorKind.PROTOCOL, "closed")
            self._cancel_idle()
            try:
                if self._ftp is not None and not await self._call(alive, self._ftp):
                    # The printer rebooted or dropped us while idle: start afresh.
                    await self._drop()
                self._kept = self._ftp is not None
                if self._ftp is None:
                    self._ftp = await self._open()
                yield self._ftp
            except (Exception, asyncio.CancelledError) as err:
                if not _keeps_connection(err):
                    await self._drop()
                if isinstance(err, asyncio.CancelledError | FtpsError):
                    raise
                raise _translate(err) from err
            finally:
                if self._ftp is not None:
                    self._schedule_idle()

    async def _first[T](
        self, ftp: ImplicitFTPS, func: Callable[..., T], *args: Any
    ) -> tuple[ImplicitFTPS, T]:
        """Inside `_session`: the first command of an idempotent operation, `func(ftp, *args)`.

        A kept connection can pass the `alive` probe a moment before the printer's close
        arrives; the command then meets a dropped connection and is sent again on a fresh one.
        """
        try:
            return ftp, await self._call(func, ftp, *args)
        except _DROPPED:
            if not self._kept:
                raise
        _LOGGER.debug("FTPS to %s was dropped under a command; reconnecting", self.host)
        await self._drop()
        self._kept = False
        self._ftp = ftp = await self._open()
        return ftp, await self._call(func, ftp, *args)

    async def _open(self) -> ImplicitFTPS:
        context = await async_create_printer_context(self.serial, pinned_cert=self._pinned_cert)
        _LOGGER.debug("Opening FTPS to %s:%s", self.host, self.port)
        try:
            return await self._call(
                connect, context, self.host, self.port, self._access_code, self.timeout
            )
        except PrinterTLSError as err:
            err.host, err.port = self.host, self.port
            raise

    def _cancel_idle(self) -> None:
        if self._idle_handle is not None:
            self._idle_handle.cancel()
            self._idle_handle = None

    def _schedule_idle(self) -> None:
        self._cancel_idle()
        loop = asyncio.get_running_loop()
        self._idle_handle = loop.call_later(self.idle_timeout, self._on_idle)

    def _on_idle(self) -> None:
        self._idle_handle = None
        self._idle_task = asyncio.get_running_loop().create_task(self._close_if_idle())

    async def _close_if_idle(self) -> None:
        async with self._lock:
            if self._idle_handle is None:  # nobody used the connection meanwhile
                _LOGGER.debug("Closing idle FTPS to %s", self.host)
                await self._drop()

    async def async_close(self) -> None:
        """Close the connection for good (unload)."""
        self._closed = True
        self._cancel_idle()
        if self._idle_task is not None:
            await self._idle_task
        async with self._lock:
            await self._drop()

    # -- operations --------------------------------------------------------------------------

    async def async_list(self, directory: str) -> list[RemoteFile]:
        """The entries of a directory as absolute paths, sorted; [] if it does not exist.

        X1 firmware answers NLST with full paths, P1/A1 firmware with bare names.
        """
        directory = "/" + directory.strip("/")
        try:
            async with self._session() as ftp:
                _, lines = await self._first(ftp, _list, directory)
        except FtpsError as err:
            if err.kind is FtpsErrorKind.NOT_FOUND:
                return []
            raise
        names = {posixpath.basename(line.strip()) for line in lines}
        return [
            RemoteFile(posixpath.join(directory, name))
            for name in sorted(names)
            if name not in {"", ".", ".."}
        ]

    async def async_size(self, path: str) -> int:
        """The size of a file in bytes."""
        async with self._session() as ftp:
            return (await self._first(ftp, file_size, path))[1]

    async def async_read(
        self,
        path: str,
        *,
        offset: int = 0,
        length: int | None = None,
        chunk_size: int = CHUNK_SIZE,
    ) -> AsyncGenerator[bytes]:
        """Stream a file (from `offset`, at most `length` bytes) in chunks of `chunk_size`.

        Holds the connection until the iteration ends: close the iterator
        (`contextlib.aclosing`) when stopping early. A transfer stopped early closes the
        control connection, since the printer may still be sending.
        """
        async with self._session() as kept:
            ftp, conn = await self._first(
                kept, ImplicitFTPS.transfercmd, f"RETR {path}", offset or None
            )
            complete = False
            try:
                remaining = length
                while remaining is None or remaining > 0:
                    want = chunk_size if remaining is None else min(chunk_size, remaining)
                    chunk = await self._call(recv_upto, conn, want)
                    if remaining is not None:
                        remaining -= len(chunk)
                    if chunk:
                        yield chunk
                    if len(chunk) < want:
                        complete = True
                        break
            finally:
                if complete:
                    await self._call(finish, ftp, conn)
                else:
                    await self._call(conn.close)
                    await self._drop()

    async def async_download(self, path: str, max_bytes: int) -> bytes:
        """A whole (small) file; `FtpsError(TOO_LARGE)` above `max_bytes`."""
        size = await self.async_size(path)
        if size > max_bytes:
            raise FtpsError(FtpsErrorKind.TOO_LARGE, f"{size} bytes")
        data = bytearray()
        # Bounded even if the file grew since SIZE: the rest is not read.
        async with contextlib.aclosing(self.async_read(path, length=max_bytes)) as chunks:
            async for chunk in chunks:
                data += chunk
        return bytes(data)

    async def async_upload(
        self,
        source: Path,
        remote_path: str,
        progress: Callable[[int, int], Awaitable[None] | None] | None = None,
    ) -> int:
        """Upload a local file; `progress(sent, total)` is called on the loop per chunk."""
        loop = asyncio.get_running_loop()
        try:
            handle, total = await loop.run_in_executor(None, open_source, source)
        except OSError as err:
            raise FtpsError(FtpsErrorKind.NOT_FOUND, err.strerror or str(source.name)) from err
        try:
            async with self._session() as ftp:
                conn = await self._call(ftp.transfercmd, f"STOR {remote_path}")
                sent = 0
                try:
                    while count := await self._call(send_chunk, conn, handle, CHUNK_SIZE):
                        sent += count
                        if progress is not None and (pending := progress(sent, total)):
                            await pending
                except BaseException:
                    await self._call(conn.close)
                    raise
                # No unwrap(): the printers never answer a TLS shutdown here.
                await self._call(finish, ftp, conn)
                # Closed without a TLS shutdown of ours, the data connection takes the shared
                # session down with it (OpenSSL marks it not resumable), so the next data
                # connection could not resume it: start the next operation afresh.
                await self._drop()
                return sent
        finally:
            await loop.run_in_executor(None, handle.close)

    async def async_delete(self, path: str) -> None:
        """Delete a file."""
        async with self._session() as ftp:
            await self._call(ftp.delete, path)
