"""The virtual printer's camera, in a process of its own.

Run as `python -m tests.virtual_printer.camera_server` (by `camera.CameraProcess`).

- `rtsp` (X1/H2 profiles): the RTSPS endpoint on port 322, see `rtsp_server.py`.
- `jpeg` (P1/A1 profiles): a TLS server like port 6000. It reads the 80-byte auth packet, closes
  the connection without a byte when the code is wrong, and otherwise streams generated JPEG
  frames (16-byte header + JPEG). With `garbage` on it also sends junk between frames and splits
  frames across odd-sized writes. With `silent` on it accepts the code and then sends nothing.

It presents the printer's certificate chain; `serve` swaps it (hostile profiles: an impostor on
the camera port). It records what every client sent before and after the handshake, so that a
test can prove an impostor received zero bytes of credentials.

Control: the first stdin line is the JSON configuration; the process answers `{"port": N}` on
stdout once it listens. Every further line is a request `{"id", "op", ...}` answered by
`{"id", "ok", "result"|"error"}`. Closing stdin ends the process.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import ssl
import struct
import sys
from typing import Any

from PIL import Image, ImageDraw  # imported before the configuration arrives (prewarm)

from .rtsp_server import RtspServer, drop_clients

HOST = "127.0.0.1"
_HEADER = struct.Struct("<IIII")


def make_frames(
    count: int = 4, size: tuple[int, int] = (160, 90), *, noise: bool = False
) -> list[bytes]:
    """Distinct JPEGs (Pillow): a colour and a frame number; `noise` makes them as large as a
    camera picture (a flat colour compresses to almost nothing)."""
    frames = []
    for index in range(count):
        image = Image.new("RGB", size, ((index * 70) % 256, 80, 160))
        if noise:
            grain = Image.effect_noise(size, 40).convert("RGB")
            image = Image.blend(image, grain, 0.3)
        ImageDraw.Draw(image).text((4, 4), f"frame {index}", fill=(255, 255, 255))
        out = io.BytesIO()
        image.save(out, "JPEG", quality=80)
        frames.append(out.getvalue())
    return frames


def server_context(chain: str, key: str) -> ssl.SSLContext:
    """The printer side of the TLS handshake (a test server, not a client)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(chain, key)
    return context


class JpegServer:
    """Port-6000 behaviour of a P1/A1 printer."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.access_code: str = config["access_code"]
        self.interval = 1.0 / float(config.get("fps", 10.0))
        self.garbage = bool(config.get("garbage", False))
        self.silent = bool(config.get("silent", False))
        self.context = server_context(config["chain"], config["key"])
        size = tuple(config.get("size", (160, 90)))
        self.frames = make_frames(
            size=(int(size[0]), int(size[1])), noise=bool(config.get("noise", False))
        )
        self.stats: dict[str, Any] = {
            "connections": 0,
            "handshakes": 0,
            "handshake_failures": 0,
            "received": [],  # bytes received per connection, after the handshake
            "auth_ok": 0,
            "auth_failed": 0,
            "active": 0,
            "frames_sent": 0,
        }
        self._writers: set[asyncio.StreamWriter] = set()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        index = self.stats["connections"]
        self.stats["connections"] += 1
        self.stats["received"].append(0)
        try:
            try:
                await writer.start_tls(self.context)
            except ssl.SSLError, OSError:
                self.stats["handshake_failures"] += 1
                return
            self.stats["handshakes"] += 1
            try:
                packet = await asyncio.wait_for(reader.readexactly(80), 10)
            except (asyncio.IncompleteReadError, TimeoutError, OSError) as err:
                partial = getattr(err, "partial", b"")
                self.stats["received"][index] += len(partial)
                return
            self.stats["received"][index] += len(packet)
            if not self._auth_ok(packet):
                self.stats["auth_failed"] += 1
                return  # a real printer hangs up without a byte
            self.stats["auth_ok"] += 1
            self.stats["active"] += 1
            self._writers.add(writer)
            try:
                await self._stream(writer)
            finally:
                self.stats["active"] -= 1
                self._writers.discard(writer)
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), 1)

    def _auth_ok(self, packet: bytes) -> bool:
        length, kind, flags, reserved = _HEADER.unpack_from(packet)
        user = packet[16:48].rstrip(b"\0")
        code = packet[48:80].rstrip(b"\0")
        return (length, kind, flags, reserved) == (0x40, 0x3000, 0, 0) and (
            user,
            code,
        ) == (b"bblp", self.access_code.encode())

    async def _stream(self, writer: asyncio.StreamWriter) -> None:
        number = 0
        while True:
            if self.silent:
                await asyncio.sleep(self.interval)
                continue
            jpeg = self.frames[number % len(self.frames)]
            data = _HEADER.pack(len(jpeg), 0, 1, 0) + jpeg
            if self.garbage:
                junk = os.urandom(37) + _HEADER.pack(999, 0, 1, 0) + b"\x00" * 11
                data = junk + data
                for start in range(0, len(data), 1361):  # frames split across odd writes
                    writer.write(data[start : start + 1361])
                    await writer.drain()
            else:
                writer.write(data)
                await writer.drain()
            self.stats["frames_sent"] += 1
            number += 1
            await asyncio.sleep(self.interval)

    def drop(self, *, reset: bool = False) -> None:
        drop_clients(self._writers, reset=reset)


async def _control(server: JpegServer | RtspServer, listener: asyncio.Server) -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while line := await reader.readline():
        request = json.loads(line)
        try:
            result = _apply(server, request)
            reply = {"id": request.get("id"), "ok": True, "result": result}
        except Exception as err:  # reported to the test, which fails with it
            reply = {"id": request.get("id"), "ok": False, "error": repr(err)}
        sys.stdout.write(json.dumps(reply) + "\n")
        sys.stdout.flush()
    listener.close()
    server.drop()  # the listener's wait_closed() would wait for the clients


def _apply(server: JpegServer | RtspServer, request: dict[str, Any]) -> Any:
    match request["op"]:
        case "stats":
            return server.stats
        case "serve":
            server.context = server_context(request["chain"], request["key"])
        case "access_code":
            server.access_code = request["value"]
        case "garbage":
            assert isinstance(server, JpegServer)
            server.garbage = bool(request["on"])
        case "silent":
            assert isinstance(server, JpegServer)
            server.silent = bool(request["on"])
        case "fps":
            assert isinstance(server, JpegServer)
            server.interval = 1.0 / float(request["value"])
        case "drop":
            server.drop(reset=bool(request.get("reset", False)))
        case op:
            raise ValueError(f"unknown op {op!r}")
    return None


async def main() -> None:
    """Serve until stdin closes."""
    line = sys.stdin.buffer.readline()
    if not line:
        return  # a spare process that was never used
    config = json.loads(line)
    server: JpegServer | RtspServer
    if config.get("kind", "jpeg") == "rtsp":
        server = RtspServer(config, server_context(config["chain"], config["key"]))
    else:
        server = JpegServer(config)
    listener = await asyncio.start_server(server.handle, HOST, int(config.get("port", 0)))
    port = listener.sockets[0].getsockname()[1]
    sys.stdout.write(json.dumps({"port": port}) + "\n")
    sys.stdout.flush()
    async with listener:
        await _control(server, listener)


if __name__ == "__main__":
    asyncio.run(main())
