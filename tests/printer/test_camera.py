"""The port-6000 camera client against the virtual printer's camera process (real TLS)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
import logging
from pathlib import Path
import struct
from typing import Any

import pytest

from custom_components.bambu_lan.printer import camera as camera_module
from custom_components.bambu_lan.printer.camera import (
    CameraAuthError,
    CameraConnectionError,
    FrameParser,
    JpegCamera,
    auth_packet,
)
from custom_components.bambu_lan.printer.tls import PrinterTLSError, TLSErrorKind
from tests.virtual_printer.camera import CameraProcess
from tests.virtual_printer.camera_server import make_frames
from tests.virtual_printer.pki import TestCAs, issue_server
from tests.virtual_printer.plain import plain_server

SERIAL = "01P00A391800001"
CODE = "Zq7Kx2Lm"
HEADER = struct.Struct("<IIII")


def framed(jpeg: bytes) -> bytes:
    return HEADER.pack(len(jpeg), 0, 1, 0) + jpeg


@pytest.fixture
def camera_server(
    socket_enabled: None, test_cas: TestCAs, trust_test_cas: Path, tmp_path: Path
) -> Iterator[Any]:
    """Start camera processes presenting `profile`'s chain for SERIAL; all closed afterwards."""
    started: list[CameraProcess] = []

    def start(profile: str = "legacy", **options: Any) -> CameraProcess:
        identity = issue_server(profile, SERIAL, test_cas)
        process = CameraProcess(identity, CODE, tmp_path / str(len(started)), **options)
        started.append(process)
        return process

    yield start
    for process in started:
        process.close()


def client(server: CameraProcess, code: str = CODE, **kwargs: Any) -> JpegCamera:
    return JpegCamera("127.0.0.1", SERIAL, code, port=server.port, **kwargs)


# --- bytes ----------------------------------------------------------------------------------------


def test_auth_packet_bytes() -> None:
    packet = auth_packet("12345678")
    assert len(packet) == 80
    assert packet[:16] == bytes.fromhex("40000000003000000000000000000000")
    assert packet[16:48] == b"bblp" + b"\0" * 28
    assert packet[48:80] == b"12345678" + b"\0" * 24
    with pytest.raises(ValueError):
        auth_packet("x" * 33)


def test_parser_split_chunks() -> None:
    frames = make_frames(3)
    stream = b"".join(framed(jpeg) for jpeg in frames)
    parser = FrameParser()
    got: list[bytes] = []
    for size in (1, 7, 16, 4096):
        parser = FrameParser()
        got = []
        for start in range(0, len(stream), size):
            got += parser.feed(stream[start : start + size])
        assert got == frames
    assert parser.discarded == 0


def test_parser_resynchronises_on_garbage() -> None:
    frames = make_frames(3)
    junk_header = HEADER.pack(2000, 0, 1, 0) + b"\x00" * 40  # plausible header, no JPEG
    stream = (
        b"\x13\x37garbage"
        + framed(frames[0])
        + junk_header
        + b"\xff" * 100
        + framed(frames[1])
        + HEADER.pack(10**9, 0, 1, 0)  # larger than any frame
        + framed(frames[2])
    )
    parser = FrameParser()
    got: list[bytes] = []
    for start in range(0, len(stream), 333):
        got += parser.feed(stream[start : start + 333])
    assert got == frames
    assert parser.discarded > 100


def test_parser_stays_bounded() -> None:
    parser = FrameParser(max_frame=1000)
    for _ in range(100):
        assert parser.feed(b"\xab" * 4096) == []
    assert len(parser._buffer) < 32
    assert parser.feed(framed(b"\xff\xd8" + b"x" * 100 + b"\xff\xd9")) == [
        b"\xff\xd8" + b"x" * 100 + b"\xff\xd9"
    ]
    # A frame larger than the bound is dropped, the next one still parsed.
    big = framed(b"\xff\xd8" + b"y" * 2000 + b"\xff\xd9")
    small = framed(b"\xff\xd8z\xff\xd9")
    assert parser.feed(big + small) == [b"\xff\xd8z\xff\xd9"]


# --- real TLS ------------------------------------------------------------------------------------


async def test_frames_over_tls_share_one_connection(camera_server: Any) -> None:
    server = camera_server(fps=20)
    camera = client(server)
    try:
        first = await camera.async_get_frame()
        assert first.startswith(b"\xff\xd8")
        assert first.endswith(b"\xff\xd9")
        assert first in make_frames()
        # A snapshot soon after is the newest frame already received, without waiting.
        assert await camera.async_get_frame() is camera.frame
        seen: list[bytes] = []

        async def view() -> None:
            async for frame in camera.frames():
                seen.append(frame)
                if len(seen) == 5:
                    return

        snapshots = await asyncio.gather(view(), camera.async_get_frame(max_age=0))
        assert len(seen) == 5
        assert snapshots[1].startswith(b"\xff\xd8")
        assert camera.connections == 1
        stats = server.stats()
        assert stats["connections"] == 1
        assert stats["auth_ok"] == 1
        assert stats["received"] == [80]
    finally:
        await camera.async_close()
    assert not camera.connected


async def test_idle_close_and_reopen(camera_server: Any) -> None:
    server = camera_server(fps=20)
    camera = client(server, idle_timeout=0.2)
    try:
        await camera.async_get_frame()
        assert camera.connected
        async with asyncio.timeout(5):
            while camera.connected or server.stats()["active"]:
                await asyncio.sleep(0.05)
        # Opened on demand again.
        await camera.async_get_frame()
        assert camera.connections == 2
    finally:
        await camera.async_close()


async def test_viewer_keeps_stream_open_past_idle(camera_server: Any) -> None:
    """Frames 0.2 s apart, idle after 0.05 s: a waiting viewer keeps the upstream open."""
    server = camera_server(fps=5)
    camera = client(server, idle_timeout=0.05)
    try:
        count = 0
        async for _frame in camera.frames():
            count += 1
            if count == 4:  # ~0.6 s: many idle periods
                break
        assert camera.connections == 1
        async with asyncio.timeout(5):
            while server.stats()["active"]:
                await asyncio.sleep(0.05)
        assert not camera.connected
    finally:
        await camera.async_close()


async def test_garbage_frames(camera_server: Any) -> None:
    server = camera_server(fps=30, garbage=True)
    camera = client(server)
    try:
        frames = []
        async for frame in camera.frames():
            frames.append(frame)
            if len(frames) == 6:
                break
        assert all(frame in make_frames() for frame in frames)
    finally:
        await camera.async_close()


async def test_wrong_code(camera_server: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    server = camera_server()
    camera = client(server, code="WRONG000", idle_timeout=0.05)
    try:
        with pytest.raises(CameraAuthError) as caught:
            await camera.async_get_frame()
        assert isinstance(camera.error, CameraAuthError)
        with pytest.raises(CameraAuthError):  # a viewer gets the refusal too
            async for _frame in camera.frames():
                pass
        assert not camera.connected
        await asyncio.sleep(0.2)  # the idle timer runs out with nothing left to close
        assert not camera.connected
    finally:
        await camera.async_close()
    assert server.stats()["auth_failed"] == 2
    assert "WRONG000" not in str(caught.value)
    assert "WRONG000" not in caplog.text
    assert "WRONG000" not in repr(camera)


@pytest.mark.parametrize("profile", ["self_signed", "other_serial", "unknown_ca"])
async def test_impostor_gets_no_credentials(camera_server: Any, profile: str) -> None:
    server = camera_server(profile)
    camera = client(server)
    try:
        with pytest.raises(PrinterTLSError) as caught:
            await camera.async_get_frame()
    finally:
        await camera.async_close()
    assert caught.value.port == server.port
    stats = server.stats()
    assert stats["handshakes"] == 0
    assert stats["handshake_failures"] == 1
    assert stats["received"] == [0]
    assert CODE not in str(caught.value)


async def test_swapped_certificate_is_refused(camera_server: Any, test_cas: TestCAs) -> None:
    """A genuine camera later replaced by an impostor: the impostor still gets nothing."""
    server = camera_server(fps=20)
    camera = client(server, idle_timeout=0.1)
    try:
        await camera.async_get_frame()
        server.serve(issue_server("self_signed", SERIAL, test_cas))
        server.call("drop")
        async with asyncio.timeout(5):
            while camera.connected:
                await asyncio.sleep(0.02)
        with pytest.raises(PrinterTLSError) as caught:
            await camera.async_get_frame(max_age=0)
        assert caught.value.kind is TLSErrorKind.UNTRUSTED_ISSUER
    finally:
        await camera.async_close()
    assert server.stats()["received"][1:] == [0]


async def test_unreachable_and_closed(socket_enabled: None, trust_test_cas: Path) -> None:
    from tests.virtual_printer.broker import free_port

    camera = JpegCamera("127.0.0.1", SERIAL, CODE, port=free_port())
    with pytest.raises(CameraConnectionError) as caught:
        await camera.async_get_frame()
    assert "127.0.0.1" in str(caught.value)
    await camera.async_close()
    with pytest.raises(CameraConnectionError):
        await camera.async_get_frame()


async def test_viewer_survives_a_dropped_stream(
    camera_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(camera_module, "RETRY_INITIAL", 0.05)
    server = camera_server(fps=20)
    camera = client(server)
    try:
        count = 0
        async for _frame in camera.frames():
            count += 1
            if count == 2:
                server.call("drop")
            if count == 6:
                break
        assert camera.connections == 2
    finally:
        await camera.async_close()


@pytest.mark.parametrize(
    ("frame_wait", "frame_timeout"), [(0.3, 10.0), (10.0, 0.3)], ids=["snapshot", "upstream"]
)
async def test_silent_camera(
    camera_server: Any, monkeypatch: pytest.MonkeyPatch, frame_wait: float, frame_timeout: float
) -> None:
    """The code is accepted but no frame comes: the snapshot gives up, and so does the
    upstream (a camera silent this long is dead), whichever waits less."""
    monkeypatch.setattr(camera_module, "FRAME_WAIT", frame_wait)
    monkeypatch.setattr(camera_module, "FRAME_TIMEOUT", frame_timeout)
    server = camera_server(silent=True)
    camera = client(server)
    try:
        with pytest.raises(CameraConnectionError, match="no frame from the camera"):
            await camera.async_get_frame()
        assert server.stats()["auth_ok"] == 1
        if frame_timeout < frame_wait:
            assert not camera.connected
            assert isinstance(camera.error, CameraConnectionError)
        else:
            assert camera.connected  # the upstream stays for the next request (or idle)
    finally:
        await camera.async_close()


async def test_reset_stream_is_reported_then_reopened(camera_server: Any) -> None:
    server = camera_server(fps=20)
    camera = client(server)
    try:
        await camera.async_get_frame()
        server.call("drop", reset=True)  # TCP reset, no TLS close_notify
        async with asyncio.timeout(5):
            while camera.connected:
                await asyncio.sleep(0.02)
        assert isinstance(camera.error, CameraConnectionError)
        assert "broke" in str(camera.error) or "closed" in str(camera.error)
        frame = await camera.async_get_frame()
        assert frame in make_frames()
        assert camera.error is None
        assert camera.connections == 2
    finally:
        await camera.async_close()


async def test_close_ends_viewers(camera_server: Any) -> None:
    """Unloading the entry ends every MJPEG viewer instead of leaving it retrying."""
    server = camera_server(fps=20)
    camera = client(server)
    seen: list[bytes] = []

    async def view() -> None:
        async for frame in camera.frames():
            seen.append(frame)

    viewer = asyncio.ensure_future(view())
    try:
        async with asyncio.timeout(5):
            while len(seen) < 2:
                await asyncio.sleep(0.02)
    finally:
        await camera.async_close()
    with pytest.raises(CameraConnectionError, match="closed"):
        async with asyncio.timeout(5):
            await viewer
    assert not camera.connected
    async with asyncio.timeout(5):
        while server.stats()["active"]:
            await asyncio.sleep(0.02)


@pytest.mark.parametrize("reply", [None, b"HTTP/1.1 400 Bad Request\r\n\r\n"])
async def test_not_a_tls_server(
    socket_enabled: None,
    trust_test_cas: Path,
    monkeypatch: pytest.MonkeyPatch,
    reply: bytes | None,
) -> None:
    """Something on port 6000 that never finishes a handshake, or does not speak TLS: a TLS
    error, and not one byte of the auth packet."""
    monkeypatch.setattr(camera_module, "CONNECT_TIMEOUT", 0.5)
    async with plain_server(reply) as server:
        camera = JpegCamera("127.0.0.1", SERIAL, CODE, port=server.port)
        try:
            with pytest.raises(PrinterTLSError) as caught:
                await camera.async_get_frame()
        finally:
            await camera.async_close()
    expected = TLSErrorKind.UNREACHABLE if reply is None else TLSErrorKind.PROTOCOL
    assert caught.value.kind is expected
    assert caught.value.port == server.port
    assert server.connections == 1
    assert server.received.startswith(b"\x16\x03")  # a ClientHello, nothing after it
    assert CODE.encode() not in server.received
    assert b"bblp" not in server.received
