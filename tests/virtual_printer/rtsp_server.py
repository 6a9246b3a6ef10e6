"""The RTSPS endpoint of the virtual X1/H2 printers (port 322), run inside `camera_server.py`.

A small RTSP server over TLS with the printer's certificate that, like the printers' live555
server, answers every request without valid credentials with 401 and a challenge (Digest by
default; `auth="basic"` for Basic). After PLAY it sends a real H.264 stream (RTP interleaved on
the TCP connection) recorded once from ffmpeg's test source, so an ffmpeg client can decode it.

Odd or hostile variants: `auth="none"` asks for no credentials, `auth="sha256"` challenges only
with a Digest algorithm the relay does not speak, and `hangup` names methods on which the server
closes the connection instead of answering.

The DESCRIBE answer names the printer by another address than the one the client used (real
printers report a wrong IP at times), with an absolute control URL, so a relay must rewrite both.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import os
from pathlib import Path
import re
import secrets
import socket
import ssl
import struct
import subprocess
import tempfile
from typing import Any

REALM = "LIVE555 Streaming Media"
# Where the "printer" says it lives in its URLs (not where the client connected).
ADVERTISED = "rtsps://192.0.2.7:322/streaming/live/1"
_CACHE = Path(tempfile.gettempdir()) / "bambu_lan-virtual-rtsp-v1"


class RtspProtocolError(Exception):
    """Not RTSP."""


class RtspMessage:
    """A request or response (written independently of the integration's parser)."""

    def __init__(self, start: str, headers: list[tuple[str, str]], body: bytes = b"") -> None:
        self.start, self.headers, self.body = start, headers, body

    def get(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k.lower() == name.lower()), None)

    def set(self, name: str, value: str) -> None:
        self.headers = [(k, v) for k, v in self.headers if k.lower() != name.lower()]
        self.headers.append((name, value))

    def encode(self) -> bytes:
        headers = list(self.headers)
        if self.body:
            headers.append(("Content-Length", str(len(self.body))))
        head = "".join(f"{k}: {v}\r\n" for k, v in headers)
        return f"{self.start}\r\n{head}\r\n".encode() + self.body


async def read_message(reader: asyncio.StreamReader, first: bytes) -> RtspMessage | None:
    try:
        head = first + await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError:
        return None
    lines = head.decode().split("\r\n")
    headers = []
    for line in lines[1:]:
        if line:
            key, sep, value = line.partition(":")
            if not sep:
                raise RtspProtocolError(line)
            headers.append((key.strip(), value.strip()))
    message = RtspMessage(lines[0], headers)
    if length := int(message.get("Content-Length") or 0):
        message.body = await reader.readexactly(length)
    return message


def parse_challenge(value: str) -> tuple[str, dict[str, str]]:
    scheme, _, rest = value.partition(" ")
    pairs = re.findall(r'(\w+)=(?:"([^"]*)"|([^,\s]*))', rest)
    return scheme.lower(), {key: quoted or bare for key, quoted, bare in pairs}


def _md5(text: str) -> str:
    return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()


def recorded_stream() -> tuple[str, list[bytes]]:
    """(SDP, RTP packets) of a short H.264 test clip, recorded once per machine by ffmpeg."""
    sdp_path, packets_path = _CACHE / "clip.sdp", _CACHE / "clip.rtp"
    if not packets_path.exists():
        _record(sdp_path, packets_path)
    data = packets_path.read_bytes()
    packets, offset = [], 0
    while offset < len(data):
        (length,) = struct.unpack_from(">H", data, offset)
        packets.append(data[offset + 2 : offset + 2 + length])
        offset += 2 + length
    return sdp_path.read_text(), packets


def _record(sdp_path: Path, packets_path: Path) -> None:
    _CACHE.mkdir(parents=True, exist_ok=True)
    rtp, rtcp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM), None
    for _ in range(20):  # an even port for RTP with the next one free for RTCP
        rtp.bind(("127.0.0.1", 0))
        port = rtp.getsockname()[1]
        if port % 2 == 0:
            rtcp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                rtcp.bind(("127.0.0.1", port + 1))
                break
            except OSError:
                rtcp.close()
                rtcp = None
        rtp.close()
        rtp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    assert rtcp is not None
    rtp.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    tmp_sdp = sdp_path.with_name(f"sdp.{os.getpid()}.tmp")
    subprocess.run(
        [
            "ffmpeg", "-hide_banner", "-loglevel", "error", "-y",
            "-f", "lavfi", "-i", "testsrc=size=320x180:rate=10",
            "-frames:v", "20", "-c:v", "libx264", "-preset", "ultrafast", "-g", "10",
            "-bf", "0", "-pix_fmt", "yuv420p", "-payload_type", "96",
            "-f", "rtp", f"rtp://127.0.0.1:{port}?pkt_size=1200", "-sdp_file", str(tmp_sdp),
        ],
        check=True,
        timeout=60,
    )  # fmt: skip
    rtp.setblocking(False)
    out = bytearray()
    with contextlib.suppress(BlockingIOError):
        while True:
            packet = rtp.recv(65536)
            out += struct.pack(">H", len(packet)) + packet
    rtp.close()
    rtcp.close()
    tmp_rtp = packets_path.with_name(f"rtp.{os.getpid()}.tmp")
    tmp_rtp.write_bytes(bytes(out))
    tmp_sdp.replace(sdp_path)
    tmp_rtp.replace(packets_path)


def _sdp(recorded: str) -> bytes:
    lines = []
    for line in recorded.splitlines():
        if line.startswith(("a=tool", "s=")):
            continue
        if line.startswith("c="):
            lines.append("c=IN IP4 0.0.0.0")
        elif line.startswith("m=video"):
            lines.append("m=video 0 RTP/AVP 96")
        else:
            lines.append(line)
    lines.insert(2, "s=Bambu Streaming Session")
    lines.append(f"a=control:{ADVERTISED}/track1")
    return ("\r\n".join(lines) + "\r\n").encode()


class RtspServer:
    """Port-322 behaviour of an X1/H2 printer."""

    def __init__(self, config: dict[str, Any], context: ssl.SSLContext) -> None:
        self.access_code: str = config["access_code"]
        self.auth: str = config.get("auth", "digest")
        self.qop = bool(config.get("qop", False))
        self.fps = float(config.get("fps", 10.0))
        self.hangup: set[str] = set(config.get("hangup", ()))
        self.context = context
        sdp, self.packets = recorded_stream()
        self.sdp = _sdp(sdp)
        self.stats: dict[str, Any] = {
            "connections": 0,
            "handshakes": 0,
            "handshake_failures": 0,
            "received": [],  # bytes received per connection, after the handshake
            "auth_ok": 0,
            "auth_failed": 0,
            "schemes": [],  # the scheme of every Authorization header seen
            "requests": [],  # "METHOD URI" of every request
            "active": 0,
            "playing": 0,
            "packets_sent": 0,
            "rtcp": 0,  # interleaved frames from the client
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
            self.stats["active"] += 1
            self._writers.add(writer)
            try:
                await self._session(reader, writer, index)
            finally:
                self.stats["active"] -= 1
                self._writers.discard(writer)
        except RtspProtocolError, OSError, asyncio.IncompleteReadError, ssl.SSLError:
            pass
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), 1)

    async def _session(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, index: int
    ) -> None:
        nonce = secrets.token_hex(16)
        media: asyncio.Task[None] | None = None
        try:
            while True:
                first = await reader.read(1)
                if not first:
                    return
                self.stats["received"][index] += 1
                if first == b"$":  # RTCP from the client
                    self.stats["rtcp"] += 1
                    header = await reader.readexactly(3)
                    await reader.readexactly(int.from_bytes(header[1:3]))
                    self.stats["received"][index] += 3 + int.from_bytes(header[1:3])
                    continue
                request = await read_message(reader, first)
                if request is None:
                    return
                self.stats["received"][index] += len(request.encode())
                method, uri, _ = request.start.split(" ", 2)
                self.stats["requests"].append(f"{method} {uri}")
                if method in self.hangup:
                    return
                cseq = request.get("CSeq") or "0"
                if not self._authorised(request, method, uri, nonce):
                    self.stats["auth_failed"] += 1
                    writer.write(self._challenge(cseq, nonce))
                    await writer.drain()
                    continue
                self.stats["auth_ok"] += 1
                response = self._answer(method, cseq)
                writer.write(response.encode())
                await writer.drain()
                if method == "PLAY" and media is None:
                    media = asyncio.ensure_future(self._play(writer))
                if method == "TEARDOWN":
                    return
        finally:
            if media is not None:
                media.cancel()
                with contextlib.suppress(asyncio.CancelledError, OSError):
                    await media

    def _authorised(self, request: RtspMessage, method: str, uri: str, nonce: str) -> bool:
        header = request.get("Authorization")
        if self.auth == "none":
            if header is not None:
                self.stats["schemes"].append(parse_challenge(header)[0])
            return True
        if header is None:
            return False
        scheme, params = parse_challenge(header)
        self.stats["schemes"].append(scheme)
        if self.auth == "basic":
            expected = base64.b64encode(f"bblp:{self.access_code}".encode()).decode()
            return scheme == "basic" and header.split(" ", 1)[1].strip() == expected
        if scheme != "digest" or params.get("nonce") != nonce or params.get("uri") != uri:
            return False
        if params.get("username") != "bblp" or params.get("realm") != REALM:
            return False
        ha1 = _md5(f"bblp:{REALM}:{self.access_code}")
        ha2 = _md5(f"{method}:{uri}")
        if self.qop:
            if params.get("qop") != "auth":
                return False
            expected = _md5(f"{ha1}:{nonce}:{params['nc']}:{params['cnonce']}:auth:{ha2}")
        else:
            expected = _md5(f"{ha1}:{nonce}:{ha2}")
        return params.get("response") == expected

    def _challenge(self, cseq: str, nonce: str) -> bytes:
        if self.auth == "basic":
            value = f'Basic realm="{REALM}"'
        elif self.auth == "sha256":
            value = f'Digest realm="{REALM}", nonce="{nonce}", algorithm=SHA-256'
        else:
            qop = ', qop="auth"' if self.qop else ""
            value = f'Digest realm="{REALM}", nonce="{nonce}"{qop}'
        return (
            f"RTSP/1.0 401 Unauthorized\r\nCSeq: {cseq}\r\nWWW-Authenticate: {value}\r\n\r\n"
        ).encode()

    def _answer(self, method: str, cseq: str) -> RtspMessage:
        response = RtspMessage("RTSP/1.0 200 OK", [("CSeq", cseq)])
        match method:
            case "OPTIONS":
                response.set("Public", "OPTIONS, DESCRIBE, SETUP, PLAY, TEARDOWN, GET_PARAMETER")
            case "DESCRIBE":
                response.set("Content-Base", f"{ADVERTISED}/")
                response.set("Content-Type", "application/sdp")
                response.body = self.sdp
            case "SETUP":
                response.set("Transport", "RTP/AVP/TCP;unicast;interleaved=0-1")
                response.set("Session", "5A1E55;timeout=65")
            case "PLAY":
                response.set("Session", "5A1E55")
                response.set("RTP-Info", f"url={ADVERTISED}/track1;seq=0;rtptime=0")
        return response

    async def _play(self, writer: asyncio.StreamWriter) -> None:
        self.stats["playing"] += 1
        try:
            loop_number = 0
            first_ts = struct.unpack_from(">I", self.packets[0], 4)[0]
            last_ts = struct.unpack_from(">I", self.packets[-1], 4)[0]
            span = (last_ts - first_ts) + 9000  # one frame at 10 fps in 90 kHz units
            count = len(self.packets)
            while True:
                for number, packet in enumerate(self.packets):
                    rewritten = bytearray(packet)
                    seq = (struct.unpack_from(">H", packet, 2)[0] + loop_number * count) & 0xFFFF
                    ts = (struct.unpack_from(">I", packet, 4)[0] + loop_number * span) & 0xFFFFFFFF
                    struct.pack_into(">HI", rewritten, 2, seq, ts)
                    writer.write(b"$\x00" + struct.pack(">H", len(rewritten)) + rewritten)
                    self.stats["packets_sent"] += 1
                    if packet[1] & 0x80 or number == count - 1:  # marker: end of a frame
                        await writer.drain()
                        await asyncio.sleep(1 / self.fps)
                loop_number += 1
        finally:
            self.stats["playing"] -= 1

    def drop(self, *, reset: bool = False) -> None:
        drop_clients(self._writers, reset=reset)


def drop_clients(writers: set[asyncio.StreamWriter], *, reset: bool = False) -> None:
    """Cut every client off: without a TLS close_notify, or (`reset`) with a TCP reset."""
    for writer in list(writers):
        if reset:
            sock = writer.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()
