"""The FTPS client (`printer/ftps.py`) against the virtual printer's implicit-FTPS server."""

from __future__ import annotations

import asyncio
import contextlib
import ftplib
import hashlib
from pathlib import Path
import ssl
import time
import traceback
import tracemalloc

import pytest

from custom_components.bambu_lan.printer import ftps as ftps_module
from custom_components.bambu_lan.printer.ftps import (
    FtpsError,
    FtpsErrorKind,
    PrinterFtps,
    RemoteFile,
)
from custom_components.bambu_lan.printer.tls import TLSErrorKind, async_create_printer_context
from tests.virtual_printer.ftps import REUSE_REQUIRED
from tests.virtual_printer.printer import PrinterFactory, VirtualPrinter


def _client(printer: VirtualPrinter, **kwargs: float) -> PrinterFtps:
    return PrinterFtps(
        printer.host, printer.serial, printer.access_code, port=printer.ftps_port, **kwargs
    )


@contextlib.asynccontextmanager
async def _open(printer: VirtualPrinter, **kwargs: float) -> contextlib.AsyncIterator[PrinterFtps]:
    client = _client(printer, **kwargs)
    try:
        yield client
    finally:
        await client.async_close()


def _verbs(printer: VirtualPrinter, verb: str) -> list[str]:
    return [event["arg"] for event in printer.ftps_log() if event["verb"] == verb]


async def _logged(printer: VirtualPrinter, verb: str, count: int = 1) -> list[str]:
    """The server's log entries for `verb`, once it has `count` of them (it is another
    process: it may write a moment after the client is done)."""
    for _ in range(250):
        if len(found := _verbs(printer, verb)) >= count:
            return found
        await asyncio.sleep(0.02)
    return _verbs(printer, verb)


def _secret_free(err: BaseException, secret: str) -> None:
    text = "".join(traceback.format_exception(err)) + repr(err)
    assert secret not in text


@pytest.mark.parametrize(("model", "ext"), [("X1C", "mp4"), ("P1S", "avi")])
async def test_round_trip(
    virtual_printer: PrinterFactory, trust_test_cas: Path, tmp_path: Path, model: str, ext: str
) -> None:
    """List (full paths on X1, bare names on P1: the same result), read, upload, delete."""
    printer = virtual_printer(model, ftps=True)
    first = printer.add_timelapse("video_2026-01-02_10-00-00", b"first")
    printer.add_timelapse("video_2026-01-01_09-00-00", b"second")
    local = tmp_path / "cube.gcode.3mf"
    local.write_bytes(b"PK" + bytes(300_000))
    progress: list[tuple[int, int]] = []

    async with _open(printer) as client:
        listing = await client.async_list("/timelapse")
        assert listing == [
            RemoteFile(f"/timelapse/video_2026-01-01_09-00-00.{ext}"),
            RemoteFile(f"/timelapse/video_2026-01-02_10-00-00.{ext}"),
        ]
        assert listing[0].name == f"video_2026-01-01_09-00-00.{ext}"
        assert await client.async_size(first) == 5
        assert await client.async_download(first, 100) == b"first"

        sent = await client.async_upload(
            local, "/cube.gcode.3mf", lambda done, total: progress.append((done, total))
        )
        assert sent == 300_002
        assert (printer.sdcard / "cube.gcode.3mf").read_bytes() == local.read_bytes()
        assert progress[-1] == (300_002, 300_002)
        assert len(progress) == 2  # one call per 256 KiB chunk

        # A second upload and a listing right after it (each needs a resumable session).
        await client.async_upload(local, "/cube2.gcode.3mf")
        assert len(await client.async_list("/")) == 4  # cache, cube, cube2, timelapse
        await client.async_delete("/cube2.gcode.3mf")
        await client.async_delete("/cube.gcode.3mf")
        assert not (printer.sdcard / "cube.gcode.3mf").exists()
        with pytest.raises(FtpsError) as caught:
            await client.async_delete("/cube.gcode.3mf")
        assert caught.value.kind is FtpsErrorKind.NOT_FOUND
        # A refused command leaves the connection usable.
        assert await client.async_list("/no/such/folder") == []
        assert client.connected

    # One login per upload, and every data connection resumed the control session.
    assert await _logged(printer, "QUIT", 3) == ["", "", ""]
    assert _verbs(printer, "PASS") == ["right"] * 3
    assert _verbs(printer, "PROT") == ["P"] * 3
    data = _verbs(printer, "DATA")
    assert data
    assert set(data) == {"resumed"}


async def test_server_refuses_data_without_session_reuse(
    virtual_printer: PrinterFactory, trust_test_cas: Path
) -> None:
    """The virtual printer enforces session reuse, like the printers' vsftpd (522)."""
    printer = virtual_printer("P1S", ftps=True)
    printer.add_timelapse("a", b"data")
    context = await async_create_printer_context(printer.serial)

    class NoReuse(ftps_module.ImplicitFTPS):
        def ntransfercmd(
            self, cmd: str, rest: int | str | None = None
        ) -> tuple[ftplib.socket.socket, int]:
            conn, size = ftplib.FTP.ntransfercmd(self, cmd, rest)
            return self.context.wrap_socket(conn), size  # a fresh TLS session

    def naive() -> str:
        ftp = NoReuse(context=context, timeout=5)
        ftp.connect(printer.host, printer.ftps_port, 5)
        try:
            ftp.login("bblp", printer.access_code)
            ftp.prot_p()
            with contextlib.suppress(OSError, ssl.SSLError):
                conn = ftp.transfercmd("NLST /timelapse")
                conn.recv(100)
                conn.close()
            return ftp.getresp()
        except ftplib.Error as err:
            return str(err)
        finally:
            ftp.close()

    reply = await asyncio.get_running_loop().run_in_executor(None, naive)
    assert reply == REUSE_REQUIRED
    assert await _logged(printer, "DATA") == ["new session"]


@pytest.mark.parametrize("profile", ["unknown_ca", "self_signed", "other_serial"])
async def test_impostor_gets_no_credentials(
    virtual_printer: PrinterFactory, trust_test_cas: Path, profile: str
) -> None:
    """A server without this printer's certificate sees a failed handshake and nothing else."""
    printer = virtual_printer("X1C")
    printer.start_ftps(profile)
    async with _open(printer) as client:
        with pytest.raises(FtpsError) as caught:
            await client.async_list("/timelapse")
    assert caught.value.kind is FtpsErrorKind.TLS
    assert caught.value.tls_error is not None
    expected = TLSErrorKind.SERIAL_MISMATCH if profile == "other_serial" else None
    assert caught.value.tls_error.kind is (expected or TLSErrorKind.UNTRUSTED_ISSUER)
    assert caught.value.tls_error.port == printer.ftps_port
    _secret_free(caught.value, printer.access_code)
    handshakes = await _logged(printer, "TLS")
    assert len(handshakes) == 1
    assert handshakes[0].startswith("handshake failed")
    assert [event["verb"] for event in printer.ftps_log()] == ["TLS"]  # no USER, no PASS
    assert not client.connected


async def test_wrong_access_code(virtual_printer: PrinterFactory, trust_test_cas: Path) -> None:
    """A refused login is AUTH, with no trace of the code tried."""
    printer = virtual_printer("X1C", ftps=True)
    client = PrinterFtps(printer.host, printer.serial, "Wr0ngC0d", port=printer.ftps_port)
    try:
        with pytest.raises(FtpsError) as caught:
            await client.async_list("/timelapse")
    finally:
        await client.async_close()
    assert caught.value.kind is FtpsErrorKind.AUTH
    _secret_free(caught.value, "Wr0ngC0d")
    assert "Wr0ngC0d" not in repr(client)
    assert await _logged(printer, "PASS") == ["wrong"]


async def test_unreachable(socket_enabled: None, trust_test_cas: Path) -> None:
    """Nothing listening: UNREACHABLE."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = PrinterFtps("127.0.0.1", "00M09A350100001", "12345678", port=port)
    with pytest.raises(FtpsError) as caught:
        await client.async_size("/x")
    await client.async_close()
    assert caught.value.kind is FtpsErrorKind.UNREACHABLE


async def test_slow_server_times_out_without_blocking_the_loop(
    virtual_printer: PrinterFactory, trust_test_cas: Path
) -> None:
    """A very slow printer: the operation times out; the event loop keeps running meanwhile."""
    printer = virtual_printer("X1C")
    printer.start_ftps(delay=2.0)
    gaps: list[float] = []

    async def ticker() -> None:
        last = time.monotonic()
        while True:
            await asyncio.sleep(0.01)
            now = time.monotonic()
            gaps.append(now - last)
            last = now

    task = asyncio.create_task(ticker())
    started = time.monotonic()
    try:
        async with _open(printer, timeout=0.5) as client:
            with pytest.raises(FtpsError) as caught:
                await client.async_list("/timelapse")
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    elapsed = time.monotonic() - started
    assert caught.value.kind is FtpsErrorKind.TIMEOUT
    assert 0.5 <= elapsed < 3.0
    # The loop ran all along: never stalled for anything like the 0.5 s socket timeout.
    assert max(gaps) < 0.3


async def test_one_connection_closed_when_idle(
    virtual_printer: PrinterFactory, trust_test_cas: Path
) -> None:
    """Concurrent users share one control connection; it closes after the idle period."""
    printer = virtual_printer("P1S", ftps=True)
    printer.add_timelapse("a", b"a")
    async with _open(printer, idle_timeout=0.3) as client:
        results = await asyncio.gather(*(client.async_list("/timelapse") for _ in range(5)))
        assert all(len(result) == 1 for result in results)
        assert client.connected
        await asyncio.sleep(0.1)
        await client.async_size("/timelapse/a.avi")  # use resets the idle timer
        await asyncio.sleep(0.2)
        assert client.connected
        for _ in range(100):
            if not client.connected:
                break
            await asyncio.sleep(0.02)
        assert not client.connected
        assert await _logged(printer, "QUIT") == [""]
        # Used again: a new connection opens on demand.
        assert await client.async_size("/timelapse/a.avi") == 1
    assert await _logged(printer, "QUIT", 2) == ["", ""]
    assert _verbs(printer, "TLS") == ["handshake ok", "handshake ok"]


async def test_ranges_and_early_stop(virtual_printer: PrinterFactory, trust_test_cas: Path) -> None:
    """REST + a length give exact ranges; stopping early drops the connection cleanly."""
    printer = virtual_printer("X1C", ftps=True)
    payload = bytes(range(256)) * 4096  # 1 MiB
    remote = printer.add_timelapse("range", payload)
    async with _open(printer) as client:
        chunks = [
            chunk
            async for chunk in client.async_read(remote, offset=1000, length=5000, chunk_size=4096)
        ]
        assert [len(chunk) for chunk in chunks] == [4096, 904]
        assert b"".join(chunks) == payload[1000:6000]
        assert not client.connected  # the rest was not read: the connection was dropped

        async with contextlib.aclosing(client.async_read(remote, chunk_size=65536)) as stream:
            async for _first in stream:
                break
        assert not client.connected
        whole = b"".join([chunk async for chunk in client.async_read(remote, offset=10)])
        assert whole == payload[10:]
        assert client.connected  # read to the end: the connection stays for the next user

        with pytest.raises(FtpsError) as caught:
            await client.async_download(remote, 1000)
        assert caught.value.kind is FtpsErrorKind.TOO_LARGE
        with pytest.raises(FtpsError) as missing:
            await client.async_size("/timelapse/none.mp4")
        assert missing.value.kind is FtpsErrorKind.NOT_FOUND
        with pytest.raises(FtpsError) as no_source:
            await client.async_upload(printer.sdcard / "nope", "/nope")
        assert no_source.value.kind is FtpsErrorKind.NOT_FOUND


async def test_cancelled_operation_drops_the_connection(
    virtual_printer: PrinterFactory, trust_test_cas: Path
) -> None:
    """A caller that gives up does not leave a half-read reply for the next one."""
    printer = virtual_printer("X1C")
    printer.add_timelapse("a", b"a")
    printer.start_ftps(delay=0.2)
    async with _open(printer) as client:
        task = asyncio.create_task(client.async_list("/timelapse"))
        await _logged(printer, "NLST")  # logged in by now, waiting for the listing
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert not client.connected
        assert await client.async_size("/timelapse/a.mp4") == 1


async def test_listing_500_files_within_a_second(
    virtual_printer: PrinterFactory, trust_test_cas: Path
) -> None:
    """Measured: listing 500 timelapses (fresh connection included) takes at most 1 s."""
    printer = virtual_printer("P1S", ftps=True)
    for index in range(500):
        printer.add_timelapse(f"video_{index:04}", b"x")
    async with _open(printer) as client:
        started = time.perf_counter()
        listing = await client.async_list("/timelapse")
        elapsed = time.perf_counter() - started
    assert len(listing) == 500
    print(f"\nftps: listed 500 files in {elapsed * 1000:.0f} ms (with login)")
    assert elapsed <= 1.0


async def test_listing_is_bounded(
    virtual_printer: PrinterFactory, trust_test_cas: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A listing larger than any real card's is refused rather than held in memory."""
    printer = virtual_printer("X1C", ftps=True)
    for index in range(50):
        printer.add_timelapse(f"video_{index:04}", b"x")
    monkeypatch.setattr(ftps_module, "MAX_LISTING_BYTES", 1000)
    async with _open(printer) as client:
        with pytest.raises(FtpsError) as caught:
            await client.async_list("/timelapse")
        assert caught.value.kind is FtpsErrorKind.TOO_LARGE
        assert not client.connected


async def test_cancelled_connect_leaves_no_connection(
    virtual_printer: PrinterFactory, trust_test_cas: Path
) -> None:
    """Giving up while the login is under way closes the connection it was opening."""
    printer = virtual_printer("X1C")
    printer.start_ftps(delay=0.3)
    async with _open(printer) as client:
        task = asyncio.create_task(client.async_list("/timelapse"))
        await _logged(printer, "USER")
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert not client.connected
    # The login finished in its thread, then the connection was closed.
    assert await _logged(printer, "QUIT") == [""]


def test_errors_are_translated() -> None:
    """Every failure becomes one FtpsError kind, with a short detail."""
    import socket

    from custom_components.bambu_lan.printer.tls import PrinterTLSError

    cases = {
        FtpsErrorKind.TLS: PrinterTLSError(TLSErrorKind.EXPIRED),
        FtpsErrorKind.TIMEOUT: TimeoutError(),
        FtpsErrorKind.UNREACHABLE: ConnectionRefusedError(111, "Connection refused"),
        FtpsErrorKind.AUTH: ftplib.error_perm("530 Login incorrect."),
        FtpsErrorKind.NOT_FOUND: ftplib.error_perm("550 No such file."),
        FtpsErrorKind.REFUSED: ftplib.error_perm("553 Could not create file."),
    }
    for kind, err in cases.items():
        assert ftps_module._translate(err).kind is kind
    protocol = [
        ftplib.error_reply("123 odd"),
        ssl.SSLError(1, "bad record"),
        OSError(32, "Broken pipe"),
        ValueError("not a number"),
        socket.gaierror(-2, "Name or service not known"),
    ]
    kinds = [ftps_module._translate(err).kind for err in protocol]
    assert kinds == [FtpsErrorKind.PROTOCOL] * 4 + [FtpsErrorKind.UNREACHABLE]
    same = FtpsError(FtpsErrorKind.REFUSED, "x")
    assert ftps_module._translate(same) is same
    assert str(same) == "refused: x"
    assert ftps_module._keeps_connection(ftplib.error_perm("550 x"))
    assert not ftps_module._keeps_connection(ftplib.error_perm("530 x"))
    assert not ftps_module._keeps_connection(TimeoutError())


async def test_streaming_50_mb_keeps_memory_bounded(
    virtual_printer: PrinterFactory, trust_test_cas: Path
) -> None:
    """Measured: a 50 MB timelapse streams through in chunks; the peak stays ~ one chunk."""
    size = 50 * 1024 * 1024
    printer = virtual_printer("X1C", ftps=True)
    remote = printer.add_timelapse("big", size=size)
    expected = hashlib.sha256((printer.sdcard / remote.lstrip("/")).read_bytes()).hexdigest()
    digest = hashlib.sha256()
    received = 0
    # In debug mode asyncio records a stack for every callback, and formatting those reads the
    # source files of the frames into linecache: megabytes that are not the transfer's, and how
    # many depends on what ran earlier in the process. Measure the transfer alone.
    asyncio.get_running_loop().set_debug(False)
    async with _open(printer) as client:
        tracemalloc.start()
        started = time.perf_counter()
        try:
            async for chunk in client.async_read(remote):
                if not received:  # the connection is set up: measure the steady state
                    tracemalloc.reset_peak()
                digest.update(chunk)
                received += len(chunk)
            _current, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        elapsed = time.perf_counter() - started
    assert received == size
    assert digest.hexdigest() == expected
    print(f"\nftps: streamed 50 MB in {elapsed:.2f} s, peak traced memory {peak / 1024:.0f} KiB")
    assert peak < 4 * 1024 * 1024  # vs. 50 MiB if it were read whole


async def test_recovers_after_the_printer_dropped_the_connection(
    virtual_printer: PrinterFactory, trust_test_cas: Path
) -> None:
    """A kept connection the printer dropped (reboot) is noticed and replaced, not reported."""
    printer = virtual_printer("P1S", ftps=True)
    printer.add_timelapse("a", b"a")
    async with _open(printer) as client:
        assert len(await client.async_list("/timelapse")) == 1
        assert client.connected
        printer.start_ftps()  # restarts the server on the same port: our connection is dead
        assert len(await client.async_list("/timelapse")) == 1
    # The log spans both servers: the second one saw a fresh login.
    assert _verbs(printer, "TLS") == ["handshake ok", "handshake ok"]
    assert _verbs(printer, "PASS") == ["right", "right"]


async def test_command_on_a_connection_dropped_after_the_probe_is_sent_again(
    virtual_printer: PrinterFactory, trust_test_cas: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The probe can pass a moment before the printer's close arrives: idempotent operations
    (list, size, download) go again on a fresh connection; a delete is not repeated."""
    printer = virtual_printer("P1S", ftps=True)
    remote = printer.add_timelapse("a", b"abc")
    monkeypatch.setattr(ftps_module, "alive", lambda ftp: True)  # the probe "passes"
    async with _open(printer) as client:
        operations = (
            lambda: client.async_list("/timelapse"),
            lambda: client.async_size(remote),
            lambda: client.async_download(remote, 100),
        )
        expected: list[object] = [[RemoteFile(remote)], 3, b"abc"]
        for operation, result in zip(operations, expected, strict=True):
            assert await client.async_list("/timelapse")  # leaves a kept connection
            printer.start_ftps()  # and kills it
            assert await operation() == result
        assert await client.async_list("/timelapse")
        printer.start_ftps()
        with pytest.raises(FtpsError) as caught:
            await client.async_delete(remote)
        assert caught.value.kind is FtpsErrorKind.PROTOCOL
        assert not client.connected
        await client.async_delete(remote)  # the next operation starts afresh
        assert await client.async_list("/timelapse") == []
