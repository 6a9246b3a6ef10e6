"""The RTSP relay: ffmpeg through the relay to the virtual printer's RTSPS endpoint (real TLS)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
import shutil
import socket
from typing import Any

import pytest

from custom_components.bambu_lan.printer import rtsp_auth, rtsp_relay
from custom_components.bambu_lan.printer.rtsp_auth import Credentials, RtspMessage, parse_challenge
from custom_components.bambu_lan.printer.rtsp_relay import RtspRelay
from custom_components.bambu_lan.printer.tls import PrinterTLSError, TLSErrorKind
from tests.virtual_printer.camera import CameraProcess
from tests.virtual_printer.pki import TestCAs, issue_server
from tests.virtual_printer.plain import plain_server

SERIAL = "00M09A350100001"
CODE = "Zq7Kx2Lm"

needs_ffmpeg = pytest.mark.skipif(
    shutil.which("ffmpeg") is None, reason="scripts/setup installs ffmpeg"
)


# --- authentication -------------------------------------------------------------------------------


def test_digest_rfc2617_example(monkeypatch: pytest.MonkeyPatch) -> None:
    """The worked example of RFC 2617 §3.5 (qop=auth), computed for an RTSP-style request."""
    monkeypatch.setattr(rtsp_auth.secrets, "token_hex", lambda _n: "0a4f113b")
    credentials = Credentials("Mufasa", "Circle Of Life")
    assert credentials.authorization("GET", "/dir/index.html") is None
    assert credentials.accept_challenge(
        [
            'Basic realm="testrealm@host.com"',
            'Digest realm="testrealm@host.com", qop="auth,auth-int", '
            'nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", '
            'opaque="5ccc069c403ebaf9f0171e9517f40e41"',
        ]
    )
    assert credentials.scheme == "digest"
    header = credentials.authorization("GET", "/dir/index.html")
    assert header is not None
    _, params = parse_challenge(header)
    assert params["response"] == "6629fae49393a05397450978507c4ef1"
    assert params["nc"] == "00000001"
    assert params["opaque"] == "5ccc069c403ebaf9f0171e9517f40e41"
    second = credentials.authorization("GET", "/dir/index.html")
    assert second is not None
    assert parse_challenge(second)[1]["nc"] == "00000002"
    assert "Circle Of Life" not in repr(credentials)


def test_digest_without_qop_md5_sess_and_basic(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rtsp_auth.secrets, "token_hex", lambda _n: "c0ffee")
    credentials = Credentials("bblp", "12345678")
    assert credentials.accept_challenge(['Digest realm="r", nonce="n"'])
    header = credentials.authorization("DESCRIBE", "rtsps://h:322/x")
    assert header is not None
    md5 = rtsp_auth._md5
    expected = md5(f"{md5('bblp:r:12345678')}:n:{md5('DESCRIBE:rtsps://h:322/x')}")
    assert parse_challenge(header)[1]["response"] == expected
    assert "qop" not in parse_challenge(header)[1]

    assert credentials.accept_challenge(['Digest realm="r", nonce="n", algorithm=MD5-sess'])
    header = credentials.authorization("PLAY", "u")
    assert header is not None
    ha1 = md5(f"{md5('bblp:r:12345678')}:n:c0ffee")
    params = parse_challenge(header)[1]
    assert params["response"] == md5(f"{ha1}:n:{md5('PLAY:u')}")
    assert params["algorithm"] == "MD5-sess"

    assert credentials.accept_challenge(['Basic realm="x"'])
    assert credentials.authorization("PLAY", "u") == "Basic YmJscDoxMjM0NTY3OA=="
    # Unsupported schemes and algorithms are refused, not answered.
    assert not credentials.accept_challenge(['Digest realm="r", nonce="n", algorithm=SHA-256'])
    assert not credentials.accept_challenge(['Digest realm="r"', "Negotiate abc"])


# --- end to end ---------------------------------------------------------------------------------


@pytest.fixture
def rtsp_server(
    socket_enabled: None, test_cas: TestCAs, trust_test_cas: Path, tmp_path: Path
) -> Iterator[Any]:
    started: list[CameraProcess] = []

    def start(profile: str = "legacy", **options: Any) -> CameraProcess:
        identity = issue_server(profile, SERIAL, test_cas)
        process = CameraProcess(
            identity, CODE, tmp_path / str(len(started)), kind="rtsp", **options
        )
        started.append(process)
        return process

    yield start
    for process in started:
        process.close()


@pytest.fixture
async def relays() -> Any:
    started: list[RtspRelay] = []

    async def start(server: CameraProcess, code: str = CODE, **kwargs: Any) -> RtspRelay:
        relay = RtspRelay("127.0.0.1", SERIAL, code, port=server.port, **kwargs)
        await relay.async_start()
        started.append(relay)
        return relay

    yield start
    for relay in started:
        await relay.async_stop()


async def ffmpeg_frame(url: str) -> tuple[int, bytes, str]:
    """One JPEG frame from `url` (what Home Assistant's ffmpeg snapshot does)."""
    process = await asyncio.create_subprocess_exec(
        "ffmpeg", "-hide_banner", "-loglevel", "error", "-rtsp_transport", "tcp",
        "-timeout", "10000000", "-i", url, "-frames:v", "1", "-f", "image2", "-c:v", "mjpeg", "-",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    async with asyncio.timeout(30):
        out, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out, err.decode(errors="replace")


async def wait_for(condition: Any) -> None:
    async with asyncio.timeout(10):
        while not condition():
            await asyncio.sleep(0.05)


@needs_ffmpeg
@pytest.mark.parametrize(
    ("auth", "qop", "scheme"),
    [("digest", False, "digest"), ("digest", True, "digest"), ("basic", False, "basic")],
)
async def test_ffmpeg_through_the_relay(
    rtsp_server: Any, relays: Any, auth: str, qop: bool, scheme: str
) -> None:
    server = rtsp_server(auth=auth, qop=qop)
    authenticated: list[bool] = []
    relay = await relays(server, on_authenticated=lambda: authenticated.append(True))
    assert relay.url.startswith(f"rtsp://127.0.0.1:{relay.local_port}/{relay.token}/")
    assert CODE not in relay.url
    assert CODE not in repr(relay)

    code, jpeg, errors = await ffmpeg_frame(relay.url)
    assert code == 0, errors
    assert jpeg.startswith(b"\xff\xd8")
    stats = server.stats()
    assert stats["auth_ok"] >= 4  # OPTIONS/DESCRIBE, SETUP, PLAY (each authorised)
    assert set(stats["schemes"]) == {scheme}
    # Every request reached the printer under its own address, none under the relay's or the
    # address the printer advertised.
    prefix = f"rtsps://127.0.0.1:{server.port}/streaming/live/1"
    assert all(line.split(" ")[1].startswith(prefix) for line in stats["requests"])
    assert authenticated
    # ffmpeg left: the relay closed the upstream.
    await wait_for(lambda: relay.sessions == 0 and not server.stats()["active"])
    assert relay.upstreams == 1


@needs_ffmpeg
async def test_token_is_required(rtsp_server: Any, relays: Any) -> None:
    server = rtsp_server()
    relay = await relays(server)
    wrong = relay.url.replace(relay.token, "x" * len(relay.token))
    for url in (wrong, f"rtsp://127.0.0.1:{relay.local_port}/streaming/live/1"):
        code, _, errors = await ffmpeg_frame(url)
        assert code != 0
        assert "404" in errors
    assert server.stats()["connections"] == 0  # no upstream for a client without the token
    assert relay.upstreams == 0


async def raw_request(relay: RtspRelay, text: str) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", relay.local_port)
    writer.write(text.encode())
    await writer.drain()
    async with asyncio.timeout(10):
        data = await reader.read(4096)
    writer.close()
    await writer.wait_closed()
    return data


async def test_wrong_code_reports_and_hides_the_challenge(rtsp_server: Any, relays: Any) -> None:
    server = rtsp_server()
    failures: list[bool] = []
    relay = await relays(server, code="WRONG000", on_auth_failed=lambda: failures.append(True))
    reply = await raw_request(relay, f"DESCRIBE {relay.url} RTSP/1.0\r\nCSeq: 2\r\n\r\n")
    assert reply.startswith(b"RTSP/1.0 401")
    assert b"CSeq: 2" in reply
    assert b"WWW-Authenticate" not in reply  # the viewer cannot answer it anyway
    assert failures == [True]
    assert server.stats()["auth_failed"] == 2  # the bare request, then our one answer


async def test_rewrites_urls_and_refuses_garbage(rtsp_server: Any, relays: Any) -> None:
    server = rtsp_server()
    relay = await relays(server)
    reply = await raw_request(
        relay, f"DESCRIBE {relay.url} RTSP/1.0\r\nCSeq: 3\r\nAuthorization: Basic eDp5\r\n\r\n"
    )
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"RTSP/1.0 200")
    local = f"rtsp://127.0.0.1:{relay.local_port}/{relay.token}/streaming/live/1".encode()
    assert b"Content-Base: " + local + b"/" in head
    assert b"a=control:" + local + b"/track1" in body
    assert b"192.0.2.7" not in reply
    assert f"Content-Length: {len(body)}".encode() in head
    assert set(server.stats()["schemes"]) == {"digest"}  # the viewer's header was dropped

    # Not RTSP at all, or too large: refused without an upstream.
    before = relay.upstreams
    reply = await raw_request(relay, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert reply.startswith(b"RTSP/1.0 404")
    assert await raw_request(relay, "OPTIONS * RTSP/1.0\r\nX: " + "a" * 300_000) == b""
    assert relay.upstreams == before


@pytest.mark.parametrize("profile", ["self_signed", "other_serial"])
async def test_impostor_gets_no_credentials(rtsp_server: Any, relays: Any, profile: str) -> None:
    server = rtsp_server(profile)
    relay = await relays(server)
    reply = await raw_request(relay, f"OPTIONS {relay.url} RTSP/1.0\r\nCSeq: 1\r\n\r\n")
    assert reply.startswith(b"RTSP/1.0 503")
    assert isinstance(relay.error, PrinterTLSError)
    assert relay.error.kind in {TLSErrorKind.UNTRUSTED_ISSUER, TLSErrorKind.SERIAL_MISMATCH}
    stats = server.stats()
    assert stats["handshakes"] == 0
    assert stats["received"] == [0]


async def open_play(
    relay: RtspRelay, url: str | None = None
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A viewer's DESCRIBE, SETUP and PLAY over the relay, as ffmpeg sends them."""
    url = url or relay.url
    reader, writer = await asyncio.open_connection("127.0.0.1", relay.local_port)
    for cseq, (method, extra) in enumerate(
        [
            ("DESCRIBE", ""),
            ("SETUP", "Transport: RTP/AVP/TCP;unicast;interleaved=0-1\r\n"),
            ("PLAY", "Session: 5A1E55\r\n"),
        ],
        start=1,
    ):
        writer.write(f"{method} {url} RTSP/1.0\r\nCSeq: {cseq}\r\n{extra}\r\n".encode())
        await writer.drain()
        async with asyncio.timeout(10):
            head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"RTSP/1.0 200"), head
        if method == "DESCRIBE":
            length = int(head.split(b"Content-Length: ")[1].split(b"\r\n")[0])
            await reader.readexactly(length)
    async with asyncio.timeout(10):
        media = await reader.readexactly(4)
    assert media[:2] == b"$\x00"  # interleaved RTP flows
    return reader, writer


async def test_stop_ends_sessions(rtsp_server: Any, relays: Any) -> None:
    server = rtsp_server()
    relay = await relays(server)
    assert relay.listening
    port = relay.local_port
    await relay.async_start()  # already listening: the same port, the same URL
    assert relay.local_port == port
    _reader, writer = await open_play(relay)
    # A keep-alive after PLAY is authorised by the relay too.
    writer.write(
        f"GET_PARAMETER {relay.url} RTSP/1.0\r\nCSeq: 9\r\nSession: 5A1E55\r\n\r\n".encode()
    )
    await writer.drain()
    await wait_for(lambda: "GET_PARAMETER" in str(server.stats()["requests"]))
    assert server.stats()["auth_failed"] == 1  # only the very first request was challenged
    assert relay.sessions == 1
    assert relay.bytes_relayed > 0
    await relay.async_stop()
    assert not relay.listening
    await wait_for(lambda: not server.stats()["active"])
    assert relay.sessions == 0
    with pytest.raises(OSError):
        await asyncio.open_connection("127.0.0.1", relay.local_port)
    writer.close()


async def test_viewer_leaving_closes_the_upstream(rtsp_server: Any, relays: Any) -> None:
    """After PLAY: the viewer's RTCP reaches the printer, and when the viewer goes the relay
    closes its connection to the printer at once (no idle upstream left behind)."""
    server = rtsp_server()
    relay = await relays(server)
    _reader, writer = await open_play(relay)
    writer.write(b"$\x01\x00\x04RTCP")  # an interleaved receiver report on channel 1
    await writer.drain()
    await wait_for(lambda: server.stats()["rtcp"] == 1)
    assert server.stats()["active"] == 1
    writer.close()
    await wait_for(lambda: relay.sessions == 0 and not server.stats()["active"])
    assert relay.upstreams == 1


async def test_printer_ending_the_stream_ends_the_viewer(rtsp_server: Any, relays: Any) -> None:
    server = rtsp_server()
    relay = await relays(server)
    reader, writer = await open_play(relay)
    server.call("drop")
    async with asyncio.timeout(10):
        while await reader.read(65536):
            pass  # the media until the end
    await wait_for(lambda: relay.sessions == 0)
    writer.close()


async def test_request_without_token_after_play_ends_the_session(
    rtsp_server: Any, relays: Any
) -> None:
    server = rtsp_server()
    relay = await relays(server)
    _reader, writer = await open_play(relay)
    elsewhere = relay.url.replace(relay.token, "x" * len(relay.token))
    writer.write(f"GET_PARAMETER {elsewhere} RTSP/1.0\r\nCSeq: 9\r\n\r\n".encode())
    await writer.drain()
    await wait_for(lambda: relay.sessions == 0 and not server.stats()["active"])
    assert "GET_PARAMETER" not in str(server.stats()["requests"])  # never forwarded
    writer.close()


async def exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: str
) -> bytes:
    """Send one request, read one response head (b"" if the relay hung up)."""
    writer.write(request.encode())
    await writer.drain()
    async with asyncio.timeout(10):
        try:
            return await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError as err:
            return err.partial


async def test_requests_before_play(rtsp_server: Any, relays: Any) -> None:
    """`OPTIONS *` passes; TEARDOWN ends the session; a later request without the token ends it
    without reaching the printer."""
    server = rtsp_server()
    relay = await relays(server)
    for last, expected in (("TEARDOWN", b"RTSP/1.0 200"), ("SETUP", b"")):
        reader, writer = await asyncio.open_connection("127.0.0.1", relay.local_port)
        head = await exchange(reader, writer, f"OPTIONS {relay.url} RTSP/1.0\r\nCSeq: 1\r\n\r\n")
        assert head.startswith(b"RTSP/1.0 200")
        head = await exchange(reader, writer, "OPTIONS * RTSP/1.0\r\nCSeq: 2\r\n\r\n")
        assert head.startswith(b"RTSP/1.0 200")
        url = relay.url if last == "TEARDOWN" else relay.url.replace(relay.token, "y" * 32)
        head = await exchange(reader, writer, f"{last} {url} RTSP/1.0\r\nCSeq: 3\r\n\r\n")
        assert head.startswith(expected)
        async with asyncio.timeout(10):
            assert await reader.read() == b""  # the relay hung up
        writer.close()
        await wait_for(lambda: relay.sessions == 0 and not server.stats()["active"])
    requests = server.stats()["requests"]
    assert f"OPTIONS rtsps://127.0.0.1:{server.port}/streaming/live/1" in requests
    assert "OPTIONS *" in requests
    assert "TEARDOWN" in str(requests)
    assert "SETUP" not in str(requests)


async def test_printer_without_authentication_gets_no_credentials(
    rtsp_server: Any, relays: Any
) -> None:
    """Credentials go only in answer to a challenge: a server that asks for none sees none."""
    server = rtsp_server(auth="none")
    accepted: list[bool] = []
    relay = await relays(server, on_authenticated=lambda: accepted.append(True))
    _reader, writer = await open_play(relay)
    writer.write(f"GET_PARAMETER {relay.url} RTSP/1.0\r\nCSeq: 9\r\n\r\n".encode())
    await writer.drain()
    await wait_for(lambda: "GET_PARAMETER" in str(server.stats()["requests"]))
    assert server.stats()["schemes"] == []  # not one Authorization header
    assert server.stats()["auth_failed"] == 0
    assert accepted
    writer.close()


async def test_unanswerable_challenge_gets_no_credentials(rtsp_server: Any, relays: Any) -> None:
    server = rtsp_server(auth="sha256")
    failures: list[bool] = []
    relay = await relays(server, on_auth_failed=lambda: failures.append(True))
    reply = await raw_request(relay, f"DESCRIBE {relay.url} RTSP/1.0\r\nCSeq: 4\r\n\r\n")
    assert reply.startswith(b"RTSP/1.0 401")
    assert b"WWW-Authenticate" not in reply
    assert server.stats()["schemes"] == []
    assert server.stats()["received"][0] > 0  # the bare request went, nothing else
    assert failures == [True]
    assert relay.refused


async def test_printer_hanging_up(rtsp_server: Any, relays: Any) -> None:
    server = rtsp_server(hangup=["DESCRIBE"])
    relay = await relays(server)
    reply = await raw_request(relay, f"DESCRIBE {relay.url} RTSP/1.0\r\nCSeq: 1\r\n\r\n")
    assert reply == b""
    await wait_for(lambda: relay.sessions == 0)
    assert relay.upstreams == 1
    assert not relay.refused


@pytest.mark.parametrize("reply", [None, b"RTSP/1.0 200 OK\r\n\r\n"])
async def test_upstream_not_tls(
    socket_enabled: None,
    trust_test_cas: Path,
    monkeypatch: pytest.MonkeyPatch,
    reply: bytes | None,
) -> None:
    """A port 322 that never finishes a handshake, or speaks plain RTSP: the viewer gets 503,
    the relay remembers why, and the endpoint gets a ClientHello and nothing else."""
    monkeypatch.setattr(rtsp_relay, "CONNECT_TIMEOUT", 0.5)
    async with plain_server(reply) as server:
        relay = RtspRelay("127.0.0.1", SERIAL, CODE, port=server.port)
        await relay.async_start()
        try:
            answer = await raw_request(relay, f"OPTIONS {relay.url} RTSP/1.0\r\nCSeq: 5\r\n\r\n")
        finally:
            await relay.async_stop()
    assert answer.startswith(b"RTSP/1.0 503")
    assert b"CSeq: 5" in answer
    assert isinstance(relay.error, PrinterTLSError)
    expected = TLSErrorKind.UNREACHABLE if reply is None else TLSErrorKind.PROTOCOL
    assert relay.error.kind is expected
    assert server.received.startswith(b"\x16\x03")
    assert CODE.encode() not in server.received


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"",  # connects and leaves
        b"OPTIONS rtsp://x RTSP/1.0\r\nno colon here\r\n\r\n",
        b"OPTIONS rtsp://x RTSP/1.0\r\nContent-Length: lots\r\n\r\n",
        b"OPTIONS rtsp://x RTSP/1.0\r\nContent-Length: 999999\r\n\r\n",
        b"OPTIONS rtsp://x RTSP/1.0\r\nX: " + b"a" * 20_000 + b"\r\n\r\n",
        b"OPTIONS rtsp://x RTSP/1.0\r\nCSeq: 1\r\n",  # ends inside the message
        b"GARBAGE\r\n\r\n",
    ],
    ids=["empty", "header", "length", "body", "head", "truncated", "start"],
)
async def test_malformed_requests_open_no_upstream(
    rtsp_server: Any, relays: Any, request_bytes: bytes
) -> None:
    server = rtsp_server()
    relay = await relays(server)
    reader, writer = await asyncio.open_connection("127.0.0.1", relay.local_port)
    writer.write(request_bytes)
    writer.write_eof()
    async with asyncio.timeout(10):
        reply = await reader.read()
    writer.close()
    assert reply in (b"", b"RTSP/1.0 404 Not Found\r\nCSeq: 0\r\n\r\n")
    await wait_for(lambda: relay.sessions == 0)
    assert relay.upstreams == 0
    assert server.stats()["connections"] == 0


async def test_relay_serves_loopback_only(rtsp_server: Any, relays: Any) -> None:
    """It listens on 127.0.0.1, and a connection that is not from a loopback address (here a
    local socket pair, which has no address at all) is closed without an upstream."""
    server = rtsp_server()
    relay = await relays(server)
    assert relay._server is not None
    assert {sock.getsockname()[0] for sock in relay._server.sockets} == {"127.0.0.1"}
    ours, theirs = socket.socketpair()
    reader, writer = await asyncio.open_connection(sock=theirs)
    ours.sendall(f"DESCRIBE {relay.url} RTSP/1.0\r\nCSeq: 1\r\n\r\n".encode())
    await relay._handle(reader, writer)
    ours.setblocking(False)
    async with asyncio.timeout(5):
        try:  # closed unread: a reset rather than an orderly end
            answer = await asyncio.get_running_loop().sock_recv(ours, 4096)
        except ConnectionResetError:
            answer = b""
    assert answer == b""  # not even a 404
    ours.close()
    assert relay.upstreams == 0
    assert server.stats()["connections"] == 0


def test_message_helpers() -> None:
    request = RtspMessage("OPTIONS * RTSP/1.0", [("CSeq", "1")])
    assert request.status is None
    assert RtspMessage("RTSP/1.0 401 Unauthorized").status == 401
    request.set("cseq", "2")
    assert request.get_all("CSeq") == ["2"]
    assert request.encode() == b"OPTIONS * RTSP/1.0\r\ncseq: 2\r\n\r\n"
