"""A local RTSP relay to a printer's RTSPS server (port 322), over verified TLS.

Home Assistant's stream component (ffmpeg) and go2rtc do not verify a printer's certificate, and
they would need the access code inside an `rtsps://bblp:<code>@...` URL. Instead they get
`rtsp://127.0.0.1:<port>/<token>/streaming/live/1`:

* the relay listens on 127.0.0.1 only, on an ephemeral port, and serves only requests whose
  path starts with the entry's random token;
* for each accepted connection it opens one TLS connection to the printer with the context from
  `tls.py` (trust = Bambu CAs, CN = serial); no upstream opens for a rejected client;
* it authenticates to the printer itself: it answers the printer's 401 challenge (Digest or
  Basic) for every request, so the access code never leaves this process except to the printer;
* it rewrites the URLs of the control messages (request lines; Content-Base, RTP-Info and SDP of
  the responses) between the two address spaces. Control messages are parsed until PLAY; after
  that the media bytes are copied in chunks, never looked at, with bounded buffers: a slow
  viewer stops the reads from the printer (backpressure), it does not grow memory.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
import hmac
import ipaddress
import logging
import re
import secrets
import ssl
from typing import Final

from .rtsp_auth import Credentials, RtspMessage, RtspProtocolError, read_message
from .tls import PrinterTLSError
from .tls_stream import async_open_printer_stream

_LOGGER = logging.getLogger(__name__)

RTSP_PORT: Final = 322
STREAM_PATH: Final = "/streaming/live/1"
USERNAME: Final = "bblp"
LISTEN_HOST: Final = "127.0.0.1"
CONNECT_TIMEOUT: Final = 10.0
REQUEST_TIMEOUT: Final = 15.0
CHUNK: Final = 64 * 1024
# Stream buffers: reading pauses above this, so memory per session stays bounded.
BUFFER_LIMIT: Final = 256 * 1024

_URL: Final = re.compile(rb"rtsps?://[^/\s\"';]+")


@dataclass
class _Session:
    """One viewer's connection and its upstream."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    up_reader: asyncio.StreamReader
    up_writer: asyncio.StreamWriter
    credentials: Credentials


class RtspRelay:
    """The relay for one printer; start it once per config entry."""

    def __init__(
        self,
        host: str,
        serial: str,
        access_code: str,
        *,
        port: int = RTSP_PORT,
        pinned_cert: str | None = None,
        on_auth_failed: Callable[[], None] = lambda: None,
        on_authenticated: Callable[[], None] = lambda: None,
    ) -> None:
        """Nothing listens until `async_start`."""
        self.host = host
        self.port = port
        self.serial = serial
        self._access_code = access_code
        self._pinned_cert = pinned_cert
        self._on_auth_failed = on_auth_failed
        self._on_authenticated = on_authenticated
        self.token = secrets.token_urlsafe(24)
        self.local_port = 0
        self.sessions = 0  # currently relayed connections (each has one upstream)
        self.upstreams = 0  # upstream connections opened so far
        self.bytes_relayed = 0  # media bytes copied to viewers
        self.error: PrinterTLSError | OSError | None = None
        self.refused = False  # the printer refused the access code last time
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def __repr__(self) -> str:  # neither the access code nor the token
        return f"RtspRelay(host={self.host!r}, port={self.port}, local_port={self.local_port})"

    @property
    def url(self) -> str:
        """What Home Assistant's stream component opens (no credentials in it)."""
        return f"rtsp://{LISTEN_HOST}:{self.local_port}/{self.token}{STREAM_PATH}"

    @property
    def listening(self) -> bool:
        """Whether the relay accepts viewers (between `async_start` and `async_stop`)."""
        return self._server is not None

    @property
    def _local_base(self) -> bytes:
        return f"rtsp://{LISTEN_HOST}:{self.local_port}/{self.token}".encode()

    @property
    def _upstream_base(self) -> str:
        return f"rtsps://{self.host}:{self.port}"

    async def async_start(self) -> None:
        """Listen on 127.0.0.1, on a port the system picks."""
        if self._server is not None:
            return
        self._server = await asyncio.start_server(self._handle, LISTEN_HOST, 0, limit=BUFFER_LIMIT)
        self.local_port = self._server.sockets[0].getsockname()[1]

    async def async_stop(self) -> None:
        """Stop listening and end every relayed session (and so its upstream)."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if server is not None:
            server.close_clients()
            await server.wait_closed()

    # --- one viewer ---------------------------------------------------------------------------

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await self._serve(reader, writer)
        except (RtspProtocolError, OSError, ssl.SSLError, TimeoutError) as err:
            _LOGGER.debug("Relayed RTSP session to %s ended: %s", self.host, err)
        finally:
            self._tasks.discard(task)
            writer.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        if not peer or not ipaddress.ip_address(peer[0]).is_loopback:
            return  # cannot happen on a 127.0.0.1 listener; checked anyway
        async with asyncio.timeout(REQUEST_TIMEOUT):
            request = await read_message(reader)
        if request is None:
            return
        if not self._authorised(request):
            writer.write(_reply(request, "404 Not Found"))
            await writer.drain()
            return  # no upstream for a client without the token
        # What this session finds explains the viewer's success or failure from now on.
        self.error, self.refused = None, False
        try:
            up_reader, up_writer = await self._open()
        except (PrinterTLSError, OSError) as err:
            self.error = err
            _LOGGER.debug("No connection to the camera at %s: %s", self.host, err)
            writer.write(_reply(request, "503 Service Unavailable"))
            await writer.drain()
            return
        self.sessions += 1
        try:
            session = _Session(
                reader, writer, up_reader, up_writer, Credentials(USERNAME, self._access_code)
            )
            if await self._setup(request, session):
                await self._relay(session)
        finally:
            self.sessions -= 1
            up_writer.close()

    def _authorised(self, request: RtspMessage) -> bool:
        """The request names this relay's token as the first path segment."""
        parts = request.start.split(" ")
        if len(parts) != 3:
            return False
        prefix = self._local_base.decode()
        uri = parts[1]
        if uri != prefix and not uri.startswith(prefix + "/"):
            return False
        return hmac.compare_digest(uri[: len(prefix)], prefix)

    async def _open(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        streams = await async_open_printer_stream(
            self.host,
            self.port,
            self.serial,
            pinned_cert=self._pinned_cert,
            connect_timeout=CONNECT_TIMEOUT,
            limit=BUFFER_LIMIT,
        )
        self.upstreams += 1
        return streams

    async def _setup(
        self,
        request: RtspMessage | None,
        session: _Session,
    ) -> bool:
        """Request by request until PLAY succeeded; True if the media phase starts."""
        writer = session.writer
        while request is not None:
            method = request.start.split(" ", 1)[0]
            async with asyncio.timeout(REQUEST_TIMEOUT):
                response = await self._exchange(request, session)
            if response is None:
                return False
            if response.status == 401:
                # Refused even with our answer (or a challenge we cannot answer): the viewer gets
                # the refusal without the challenge, which it could not answer either.
                self.refused = True
                self._on_auth_failed()
                writer.write(self._to_local(response).encode())
                await writer.drain()
                return False
            self.refused = False
            self._on_authenticated()
            writer.write(self._to_local(response).encode())
            await writer.drain()
            if method == "PLAY" and response.status == 200:
                return True
            if method == "TEARDOWN":
                return False
            async with asyncio.timeout(REQUEST_TIMEOUT):
                request = await read_message(session.reader)
            if request is not None and not self._authorised_or_star(request):
                return False
        return False

    async def _exchange(
        self,
        request: RtspMessage,
        session: _Session,
    ) -> RtspMessage | None:
        """Send one request upstream; answer a 401 once with the credentials."""
        credentials, up_writer = session.credentials, session.up_writer
        upstream = self._to_upstream(request)
        for attempt in range(2):
            method, uri, _ = upstream.start.split(" ", 2)
            if (authorization := credentials.authorization(method, uri)) is not None:
                upstream.set("Authorization", authorization)
            up_writer.write(upstream.encode())
            await up_writer.drain()
            response = await read_message(session.up_reader)
            if response is None or response.status != 401 or attempt:
                return response
            if not credentials.accept_challenge(response.get_all("WWW-Authenticate")):
                return response
        return None  # pragma: no cover - the loop always returns

    def _authorised_or_star(self, request: RtspMessage) -> bool:
        parts = request.start.split(" ")
        return (len(parts) == 3 and parts[1] == "*") or self._authorised(request)

    def _to_upstream(self, request: RtspMessage) -> RtspMessage:
        method, uri, version = request.start.split(" ", 2)
        if uri != "*":
            uri = self._upstream_base + uri[len(self._local_base) :]
        upstream = RtspMessage(f"{method} {uri} {version}", list(request.headers), request.body)
        upstream.remove("Authorization")  # the client has no credentials; ours go in
        return upstream

    def _to_local(self, response: RtspMessage) -> RtspMessage:
        """Point every URL the printer reports (with whatever address) at the relay."""
        base = self._local_base
        headers = []
        for key, value in response.headers:
            if key.casefold() == "www-authenticate":
                continue
            headers.append((key, _URL.sub(base, value.encode()).decode()))
        return RtspMessage(response.start, headers, _URL.sub(base, response.body))

    async def _relay(self, session: _Session) -> None:
        """Media phase: copy the printer's bytes; keep authorising the viewer's requests."""
        tasks = [
            asyncio.ensure_future(self._copy(session.up_reader, session.writer)),
            asyncio.ensure_future(self._requests(session)),
        ]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _copy(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Copy chunks until the end of the stream; drain() pauses us while the viewer is slow."""
        while data := await reader.read(CHUNK):
            writer.write(data)
            self.bytes_relayed += len(data)
            await writer.drain()

    async def _requests(self, session: _Session) -> None:
        """The viewer's side after PLAY: RTCP frames pass; requests are rewritten."""
        reader, up_writer, credentials = session.reader, session.up_writer, session.credentials
        while first := await reader.read(1):
            if first == b"$":  # interleaved binary frame: channel, 16-bit length, data
                header = await reader.readexactly(3)
                data = await reader.readexactly(int.from_bytes(header[1:3]))
                up_writer.write(first + header + data)
            else:
                request = await read_message(reader, first)
                if request is None or not self._authorised_or_star(request):
                    return
                upstream = self._to_upstream(request)
                method, uri, _ = upstream.start.split(" ", 2)
                if (authorization := credentials.authorization(method, uri)) is not None:
                    upstream.set("Authorization", authorization)
                up_writer.write(upstream.encode())
            await up_writer.drain()


def _reply(request: RtspMessage, status: str) -> bytes:
    cseq = request.get("CSeq") or "0"
    return f"RTSP/1.0 {status}\r\nCSeq: {cseq}\r\n\r\n".encode()
