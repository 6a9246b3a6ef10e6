"""Verified TLS to printers (`tls.py`), against real TLS servers on 127.0.0.1.

Each server is an asyncio TLS listener on a loopback port that presents a generated printer
identity (`tests/virtual_printer/pki.py`) and records, per connection, the SNI it saw, whether
its handshake completed and every application byte it received. Blocking clients (probe, paho,
ftplib) run in the loop's executor, so no thread outlives a test.
"""

from __future__ import annotations

import ast
import asyncio
from collections.abc import AsyncIterator, Callable
import contextlib
from dataclasses import dataclass, field
import datetime as dt
import ftplib
from pathlib import Path
import socket
import ssl
import threading
import traceback
from typing import Any, cast
import warnings

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import Encoding
from homeassistant.core import HomeAssistant
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
import pytest

from custom_components.bambu_lan.printer import tls
from custom_components.bambu_lan.printer.tls import (
    CertificateReport,
    PrinterTLSError,
    TLSErrorKind,
    async_create_printer_context,
    async_probe_printer,
    classify_ssl_error,
    create_printer_context,
    report_from_ssl,
)
from tests.virtual_printer import pki

SERIAL = "01P00A451200123"
ACCESS_CODE = "Zq81xK3w"  # what must never reach a wrong server, nor any message
TLS_PY = Path(tls.__file__)
COMPONENT = TLS_PY.parent.parent


# --- A recording TLS server ---------------------------------------------------------------------


@dataclass
class Connection:
    """What one client connection did."""

    handshake_ok: bool = False
    handshake_error: str | None = None
    received: bytearray = field(default_factory=bytearray)
    done: asyncio.Event = field(default_factory=asyncio.Event)


class PrinterServer:
    """A TLS server presenting one printer identity, recording what clients send."""

    def __init__(self, identity: pki.ServerIdentity, directory: Path, *, ftp: bool = False) -> None:
        chain, key = identity.write_server_files(directory)
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(chain, key)
        if identity.tls_max == "TLSv1":
            with warnings.catch_warnings(action="ignore", category=DeprecationWarning):
                self.context.set_ciphers("DEFAULT:@SECLEVEL=0")
                self.context.minimum_version = ssl.TLSVersion.TLSv1
                self.context.maximum_version = ssl.TLSVersion.TLSv1
        # Otherwise up to TLS 1.3 is offered: the client must still choose 1.2.
        self.context.sni_callback = self._record_sni
        self.ftp = ftp
        self.sni: list[str | None] = []
        self.connections: list[Connection] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None
        self._accepted = asyncio.Event()
        self.port = 0

    def _record_sni(self, _obj: ssl.SSLObject, name: str | None, _ctx: ssl.SSLContext) -> None:
        self.sni.append(name)

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        self._server.close_clients()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        conn = Connection()
        self.connections.append(conn)
        self._accepted.set()
        try:
            if self.ftp:  # explicit FTPS: greet, accept AUTH TLS, then upgrade
                writer.write(b"220 printer\r\n")
                assert (await reader.readline()).startswith(b"AUTH TLS")
                writer.write(b"234 go ahead\r\n")
                await writer.drain()
            try:
                await writer.start_tls(self.context)
            except (ssl.SSLError, OSError) as err:
                conn.handshake_error = repr(err)
                return
            conn.handshake_ok = True
            with contextlib.suppress(OSError, ssl.SSLError):
                while data := await reader.read(4096):
                    conn.received += data
        finally:
            conn.done.set()
            # No wait_closed(): after a failed start_tls it never completes; stop() aborts.
            writer.close()

    async def finished(self, index: int = -1) -> Connection:
        """Wait until a connection is over (the client hung up or failed its handshake)."""
        async with asyncio.timeout(5):
            await self._accepted.wait()
            conn = self.connections[index]
            await conn.done.wait()
        return conn


@pytest.fixture(scope="session")
def cas() -> pki.TestCAs:
    """The generated "Bambu" CAs, once per session."""
    return pki.generate_cas()


@pytest.fixture(scope="session")
def anchor_dir(tmp_path_factory: pytest.TempPathFactory, cas: pki.TestCAs) -> Path:
    """A certs directory holding the test CAs."""
    directory = tmp_path_factory.mktemp("anchors")
    cas.write_anchors(directory)
    return directory


@pytest.fixture
def trust_test_cas(monkeypatch: pytest.MonkeyPatch, anchor_dir: Path) -> Path:
    """Make tls.py trust the test CAs instead of the bundled Bambu CAs."""
    monkeypatch.setattr(tls, "CERTS_DIR", anchor_dir)
    return anchor_dir


@pytest.fixture
def serve(
    socket_enabled: None, tmp_path: Path, cas: pki.TestCAs
) -> Callable[..., contextlib.AbstractAsyncContextManager[PrinterServer]]:
    """`async with serve("legacy") as server:` a printer on 127.0.0.1."""

    @contextlib.asynccontextmanager
    async def _serve(
        profile: str | pki.ServerIdentity, *, ftp: bool = False
    ) -> AsyncIterator[PrinterServer]:
        identity = profile if isinstance(profile, pki.ServerIdentity) else _issue(profile, cas)
        server = PrinterServer(identity, tmp_path, ftp=ftp)
        server.identity = identity  # type: ignore[attr-defined]
        await server.start()
        try:
            yield server
        finally:
            await server.stop()

    return _serve


def _issue(profile: str, cas: pki.TestCAs) -> pki.ServerIdentity:
    return pki.issue_server(profile, SERIAL, cas)


async def _in_executor[T](func: Callable[..., T], *args: Any) -> T:
    return await asyncio.get_running_loop().run_in_executor(None, func, *args)


def _assert_secret_free(err: BaseException) -> None:
    text = "".join(traceback.format_exception(err)) + str(err) + repr(err)
    assert ACCESS_CODE not in text


def _paho_connect(port: int, context: ssl.SSLContext) -> mqtt.Client:
    """What the MQTT client does: paho with bblp + access code, connecting by IP address."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="test", protocol=mqtt.MQTTv311)
    client.username_pw_set("bblp", ACCESS_CODE)
    client.tls_set_context(context)
    client.connect("127.0.0.1", port, keepalive=5)  # sends CONNECT once the handshake is done
    return client


def _paho_disconnect(client: mqtt.Client) -> None:
    client.disconnect()
    if (sock := client.socket()) is not None:
        sock.close()


async def _paho_rejected(port: int, context: ssl.SSLContext) -> PrinterTLSError:
    with pytest.raises(PrinterTLSError) as caught:
        await _in_executor(_paho_connect, port, context)
    _assert_secret_free(caught.value)
    return caught.value


# --- Chains that must verify --------------------------------------------------------------------


async def test_legacy_chain_connects(serve: Any, trust_test_cas: Path, cas: pki.TestCAs) -> None:
    """X1/P1/A1 shape: leaf + legacy root without keyUsage (needs VERIFY_X509_STRICT cleared)."""
    async with serve("legacy") as server:
        report = await async_probe_printer("127.0.0.1", server.port, SERIAL)
        conn = await server.finished()
    leaf = server.identity.leaf
    assert report.subject_cn == SERIAL
    assert report.issuer_cn == report.anchor == report.issuer_path == "Test BBL CA"
    assert report.sha256 == leaf.sha256
    assert [info.sha256 for info in report.chain] == [leaf.sha256, cas.legacy_root.sha256]
    assert (report.key_type, report.key_size) == ("RSA", 2048)
    assert report.tls_version == "TLSv1.2"  # the server offered TLS 1.3
    assert report.not_after == leaf.cert.not_valid_after_utc
    assert 3645 <= report.days_left <= 3649
    # A probe is a handshake only: the printer receives no application data.
    assert conn.handshake_ok
    assert conn.received == b""
    assert server.sni == [SERIAL]


@pytest.mark.parametrize(
    ("profile", "key_type", "anchor", "path"),
    [
        ("v2", "RSA", "Test BBL Device CA N7-V2", "Test BBL CA2 RSA via Test BBL Device CA N7-V2"),
        (
            "v2-ec",
            "EC",
            "Test BBL Device CA N7-V2 EC",
            "Test BBL CA2 ECC via Test BBL Device CA N7-V2 EC",
        ),
    ],
)
async def test_v2_leaf_only_connects(
    serve: Any, trust_test_cas: Path, profile: str, key_type: str, anchor: str, path: str
) -> None:
    """P2S/H2 shape: the server sends only its leaf; a bundled intermediate anchors it."""
    async with serve(profile) as server:
        assert len(server.identity.chain) == 1
        report = await async_probe_printer("127.0.0.1", server.port, SERIAL)
    assert report.key_type == key_type
    assert report.anchor == anchor
    assert report.issuer_path == path
    assert report.chain[0].sha256 == server.identity.leaf.sha256
    assert len(report.chain) == 2
    assert report.as_dict()["chain"][1]["subject"].endswith("CN=" + anchor)


async def test_connect_by_ip_sends_and_checks_the_serial(serve: Any, trust_test_cas: Path) -> None:
    """Whatever name a consumer passes (paho: the IP), SNI and the name check use the serial."""
    context = await async_create_printer_context(SERIAL)

    def connect(port: int, name: str) -> str | None:
        with (
            socket.create_connection(("127.0.0.1", port), timeout=5) as sock,
            context.wrap_socket(sock, server_hostname=name) as conn,
        ):
            return conn.server_hostname

    async with serve("legacy") as server:
        assert await _in_executor(connect, server.port, "127.0.0.1") == SERIAL
        assert await _in_executor(connect, server.port, "evil.example") == SERIAL
    assert server.sni == [SERIAL, SERIAL]


# --- Chains that must fail, and how -------------------------------------------------------------


async def test_other_serial_is_a_confirmed_mismatch(serve: Any, trust_test_cas: Path) -> None:
    """A genuine device with another serial: the probe confirms and names that serial."""
    async with serve("other_serial") as server:
        other = pki.issue_server("other_serial", SERIAL, pki.generate_cas()).leaf
        presented = other.cert.subject.rfc4514_string().split(",")[-1].removeprefix("CN=")
        with pytest.raises(PrinterTLSError) as caught:
            await async_probe_printer("127.0.0.1", server.port, SERIAL)
        # Inside the handshake (no extra connection allowed) the name is only a claim.
        rejected = await _paho_rejected(server.port, await async_create_printer_context(SERIAL))
    err = caught.value
    assert err.kind is TLSErrorKind.SERIAL_MISMATCH
    assert err.presented_serial == err.presented_cn == presented != SERIAL
    assert (err.host, err.port, err.serial) == ("127.0.0.1", server.port, SERIAL)
    assert f"has serial '{presented}', not '{SERIAL}'" in str(err)
    assert err.leaf_pem is None
    assert rejected.kind is TLSErrorKind.SERIAL_MISMATCH
    assert rejected.presented_cn == presented
    assert rejected.presented_serial is None
    assert "Hostname mismatch" in (rejected.openssl_message or "")
    assert all(conn.received == b"" for conn in server.connections)


def _forged_leaf(common_name: str, cas: pki.TestCAs) -> pki.ServerIdentity:
    """A leaf naming the trusted legacy root as issuer, signed by some other key."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, common_name)]))
        .issuer_name(cas.legacy_root.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    leaf = pki.Issued(cert=cert, key=key)
    return pki.ServerIdentity("forged", SERIAL, [leaf, cas.legacy_root])


async def test_forged_other_serial_is_not_named(
    serve: Any, trust_test_cas: Path, cas: pki.TestCAs
) -> None:
    """OpenSSL checks the name before signatures: a forged chain must not pass as a device."""
    async with serve(_forged_leaf("01P00A451200999", cas)) as server:
        with pytest.raises(PrinterTLSError) as caught:
            await async_probe_printer("127.0.0.1", server.port, SERIAL)
    err = caught.value
    assert err.kind is TLSErrorKind.UNTRUSTED_ISSUER
    assert err.serial == SERIAL
    assert err.presented_serial is None
    assert err.leaf_pem is None  # not for this serial: nothing to offer to pin
    assert len(server.connections) == 2  # the mismatch, then the confirming handshake


@pytest.mark.parametrize(
    ("profile", "issuer"),
    [("self_signed", SERIAL), ("unknown_ca", "Untrusted Test CA")],
)
async def test_untrusted_issuer_gets_no_secret(
    serve: Any, trust_test_cas: Path, profile: str, issuer: str
) -> None:
    """paho with the access code: the handshake fails before a single byte is sent."""
    context = await async_create_printer_context(SERIAL)
    async with serve(profile) as server:
        err = await _paho_rejected(server.port, context)
        conn = await server.finished()
    leaf = server.identity.leaf
    assert err.kind is TLSErrorKind.UNTRUSTED_ISSUER
    assert isinstance(err, ssl.SSLCertVerificationError)
    assert (err.issuer, err.fingerprint, err.presented_cn) == (issuer, leaf.sha256, SERIAL)
    assert err.leaf_pem == leaf.pem.decode()
    assert (err.host, err.port) == ("127.0.0.1", server.port)
    assert issuer in str(err)
    assert leaf.sha256 in str(err)
    assert not conn.handshake_ok
    assert conn.received == b""


async def test_trusted_printer_does_get_the_secret(serve: Any, trust_test_cas: Path) -> None:
    """Control for the test above: the recorder does see the access code when it is sent."""
    context = await async_create_printer_context(SERIAL)
    async with serve("legacy") as server:
        client = await _in_executor(_paho_connect, server.port, context)
        await _in_executor(_paho_disconnect, client)
        conn = await server.finished()
    assert conn.handshake_ok
    assert b"bblp" in conn.received
    assert ACCESS_CODE.encode() in conn.received


async def test_report_from_live_paho_connection(
    serve: Any, trust_test_cas: Path, cas: pki.TestCAs
) -> None:
    """The health report comes from the MQTT connection itself, not an extra one."""
    context = await async_create_printer_context(SERIAL)
    now = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
    async with serve("legacy") as server:
        client = await _in_executor(_paho_connect, server.port, context)
        sock = client.socket()
        assert isinstance(sock, ssl.SSLSocket)
        report = report_from_ssl(sock, now=now)
        await _in_executor(_paho_disconnect, client)
    leaf = server.identity.leaf
    assert report.sha256 == leaf.sha256
    assert report.anchor == "Test BBL CA"
    assert [info.subject for info in report.chain] == [
        leaf.cert.subject.rfc4514_string(),
        cas.legacy_root.cert.subject.rfc4514_string(),
    ]
    assert report.checked_at == now
    assert report.days_left == (leaf.cert.not_valid_after_utc - now).days
    assert len(server.connections) == 1


async def test_system_store_and_env_are_not_trusted(
    serve: Any,
    trust_test_cas: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A CA placed in SSL_CERT_FILE / SSL_CERT_DIR is trusted by default contexts, not by ours."""
    identity = _issue("unknown_ca", pki.generate_cas())
    ca_pem = identity.chain[1].pem
    (tmp_path / "env-ca.pem").write_bytes(ca_pem)
    cert_dir = tmp_path / "env-certs"
    cert_dir.mkdir()
    hashing = await asyncio.create_subprocess_exec(
        "openssl",
        "x509",
        "-hash",
        "-noout",
        "-in",
        str(tmp_path / "env-ca.pem"),
        stdout=asyncio.subprocess.PIPE,
    )
    name_hash = (await hashing.communicate())[0].decode().strip()
    (cert_dir / f"{name_hash}.0").write_bytes(ca_pem)

    def default_context_handshake(port: int) -> bytes:
        control = ssl.create_default_context()  # reads SSL_CERT_FILE / SSL_CERT_DIR
        with (
            socket.create_connection(("127.0.0.1", port), timeout=5) as sock,
            control.wrap_socket(sock, server_hostname=SERIAL) as conn,
        ):
            return conn.get_verified_chain()[-1]

    for variable, value in (("SSL_CERT_FILE", tmp_path / "env-ca.pem"), ("SSL_CERT_DIR", cert_dir)):
        with monkeypatch.context() as env:
            env.setenv(variable, str(value))
            env.delenv("SSL_CERT_DIR" if variable == "SSL_CERT_FILE" else "SSL_CERT_FILE", False)
            async with serve(identity) as server:
                anchor = await _in_executor(default_context_handshake, server.port)
                assert anchor == identity.chain[1].cert.public_bytes(Encoding.DER)  # env works
                with pytest.raises(PrinterTLSError) as caught:
                    await async_probe_printer("127.0.0.1", server.port, SERIAL)
            assert caught.value.kind is TLSErrorKind.UNTRUSTED_ISSUER
            context = await _in_executor(create_printer_context, SERIAL)
            anchors = {ca["subject"] for ca in context.get_ca_certs()}
            assert len(anchors) == 5
            assert (("commonName", "Untrusted Test CA"),) not in anchors


@pytest.mark.parametrize(
    ("profile", "kind", "words"),
    [
        ("expired", TLSErrorKind.EXPIRED, "expired on"),
        ("not_yet_valid", TLSErrorKind.NOT_YET_VALID, "is not valid before"),
    ],
)
async def test_validity_window(
    serve: Any, trust_test_cas: Path, profile: str, kind: TLSErrorKind, words: str
) -> None:
    """Expired / not-yet-valid leaves are named with their dates."""
    async with serve(profile) as server:
        with pytest.raises(PrinterTLSError) as caught:
            await async_probe_printer("127.0.0.1", server.port, SERIAL)
    err = caught.value
    leaf = server.identity.leaf.cert
    assert err.kind is kind
    assert err.certificate_cn == SERIAL
    assert (err.not_before, err.not_after) == (leaf.not_valid_before_utc, leaf.not_valid_after_utc)
    moment = err.not_after if kind is TLSErrorKind.EXPIRED else err.not_before
    assert moment is not None
    assert f"{words} {moment:%Y-%m-%d %H:%M} UTC" in str(err)
    assert err.leaf_pem is None


async def test_tls10_only_server_is_a_protocol_error(serve: Any, trust_test_cas: Path) -> None:
    """A server that cannot do TLS 1.2 is refused (probe, and paho via classify_ssl_error)."""
    async with serve("tls1_0_only") as server:
        with pytest.raises(PrinterTLSError) as caught:
            await async_probe_printer("127.0.0.1", server.port, SERIAL)
        context = await async_create_printer_context(SERIAL)
        with pytest.raises(ssl.SSLError) as raw:
            await _in_executor(_paho_connect, server.port, context)
    assert caught.value.kind is TLSErrorKind.PROTOCOL
    assert "unsupported protocol" in str(caught.value)
    classified = classify_ssl_error(raw.value, host="127.0.0.1", port=server.port, serial=SERIAL)
    assert classified.kind is TLSErrorKind.PROTOCOL
    assert f"127.0.0.1:{server.port}" in str(classified)
    _assert_secret_free(classified)


async def test_refused_port_is_unreachable(socket_enabled: None, trust_test_cas: Path) -> None:
    """Nothing listening: unreachable, with address and port."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(PrinterTLSError) as caught:
        await async_probe_printer("127.0.0.1", port, SERIAL, 2.0)
    err = caught.value
    assert err.kind is TLSErrorKind.UNREACHABLE
    assert str(err) == f"Cannot connect to 127.0.0.1:{port}: connection refused."


# --- Pinning ------------------------------------------------------------------------------------


async def test_pin_accepts_exactly_the_pinned_certificate(
    serve: Any, trust_test_cas: Path, cas: pki.TestCAs
) -> None:
    """A pinned self-signed printer connects; a re-issued certificate for it does not."""
    pinned = _issue("self_signed", cas)
    reissued = _issue("self_signed", cas)
    pin = pinned.leaf.pem.decode()
    async with serve(pinned) as server:
        report = await async_probe_printer("127.0.0.1", server.port, SERIAL, pinned_cert=pin)
    assert report.sha256 == pinned.leaf.sha256
    assert report.anchor == SERIAL
    assert report.issuer_path == f"pinned certificate (issued by {SERIAL})"
    assert len(report.chain) == 1

    context = await async_create_printer_context(SERIAL, pinned_cert=pin)
    async with serve(reissued) as server:
        err = await _paho_rejected(server.port, context)
        conn = await server.finished()
    assert err.kind is TLSErrorKind.UNTRUSTED_ISSUER
    assert err.pinned_fingerprint == pinned.leaf.sha256
    assert err.fingerprint == reissued.leaf.sha256
    assert "not the pinned certificate" in str(err)
    assert conn.received == b""  # handshake completed, but the access code never followed


async def test_pin_rejects_even_a_trusted_chain(serve: Any, trust_test_cas: Path) -> None:
    """A pinned context connects only while the printer presents that certificate."""
    pin = _issue("self_signed", pki.generate_cas()).leaf.pem.decode()
    async with serve("legacy") as server:
        with pytest.raises(PrinterTLSError) as caught:
            await async_probe_printer("127.0.0.1", server.port, SERIAL, pinned_cert=pin)
    assert caught.value.pinned_fingerprint is not None
    assert server.connections[0].received == b""


def test_pin_must_be_one_certificate_for_this_serial(
    trust_test_cas: Path, cas: pki.TestCAs
) -> None:
    """A pin is narrow: one certificate, with CN = the serial."""
    other = pki.issue_server("other_serial", SERIAL, cas).leaf.pem.decode()
    mine = pki.issue_server("self_signed", SERIAL, cas).leaf.pem.decode()
    for bad in (other, mine + mine, "not a certificate", ""):
        with pytest.raises(ValueError, match="certificate"):
            create_printer_context(SERIAL, pinned_cert=bad)
    context = create_printer_context(SERIAL, pinned_cert=mine)
    assert context.get_ca_certs(binary_form=True) == create_printer_context(SERIAL).get_ca_certs(
        binary_form=True
    )  # a pinned leaf is an extra anchor, never a CA


# --- asyncio and ftplib consumers ---------------------------------------------------------------


async def test_asyncio_streams(serve: Any, trust_test_cas: Path) -> None:
    """asyncio.open_connection: verified by serial, and a rejection surfaces as our error."""
    context = await async_create_printer_context(SERIAL)
    async with serve("v2") as server:
        _reader, writer = await asyncio.open_connection("127.0.0.1", server.port, ssl=context)
        report = report_from_ssl(writer.get_extra_info("ssl_object"))
        writer.close()
        await writer.wait_closed()
    assert report.sha256 == server.identity.leaf.sha256
    assert server.sni == [SERIAL]

    async with serve("unknown_ca") as server:
        with pytest.raises(PrinterTLSError) as caught:
            await asyncio.open_connection("127.0.0.1", server.port, ssl=context)
        await server.finished()
    assert caught.value.kind is TLSErrorKind.UNTRUSTED_ISSUER
    assert caught.value.issuer == "Untrusted Test CA"
    assert caught.value.leaf_pem is not None

    pin = _issue("self_signed", pki.generate_cas()).leaf.pem.decode()
    pinned = await async_create_printer_context(SERIAL, pinned_cert=pin)
    async with serve("self_signed") as server:  # same serial, another certificate
        with pytest.raises(PrinterTLSError) as caught:
            await asyncio.open_connection("127.0.0.1", server.port, ssl=pinned)
        conn = await server.finished()
    assert caught.value.pinned_fingerprint is not None
    assert conn.received == b""


async def test_ftplib(serve: Any, trust_test_cas: Path) -> None:
    """ftplib's AUTH TLS wraps with server_hostname=host; the context still checks the serial."""
    context = await async_create_printer_context(SERIAL)

    def login(port: int) -> str:
        ftp = ftplib.FTP_TLS(context=context, timeout=5)
        ftp.connect("127.0.0.1", port)
        try:
            ftp.auth()
            assert isinstance(ftp.sock, ssl.SSLSocket)
            return report_from_ssl(ftp.sock).sha256
        finally:
            ftp.close()

    async with serve("legacy", ftp=True) as server:
        assert await _in_executor(login, server.port) == server.identity.leaf.sha256
    async with serve("other_serial", ftp=True) as server:
        with pytest.raises(PrinterTLSError) as caught:
            await _in_executor(login, server.port)
    assert caught.value.kind is TLSErrorKind.SERIAL_MISMATCH


# --- Building contexts --------------------------------------------------------------------------


def test_context_settings(trust_test_cas: Path) -> None:
    """CERT_REQUIRED, name check on CN, TLS 1.2 only, strict off, partial chain on."""
    context = create_printer_context(SERIAL)
    assert context.verify_mode is ssl.CERT_REQUIRED
    assert context.check_hostname
    assert context.hostname_checks_common_name
    assert context.minimum_version is ssl.TLSVersion.TLSv1_2
    assert context.maximum_version is ssl.TLSVersion.TLSv1_2
    assert not context.verify_flags & ssl.VERIFY_X509_STRICT
    assert context.verify_flags & ssl.VERIFY_X509_PARTIAL_CHAIN
    assert len(context.get_ca_certs()) == 5


def test_context_is_sealed(trust_test_cas: Path) -> None:
    """A built (shared, cached) context cannot be loosened afterwards, not even through paho."""
    context = create_printer_context(SERIAL)
    loosen: list[Callable[[], object]] = [
        lambda: setattr(context, "check_hostname", False),
        lambda: setattr(context, "verify_mode", ssl.CERT_NONE),
        lambda: setattr(context, "verify_flags", ssl.VERIFY_X509_STRICT),
        lambda: setattr(context, "minimum_version", ssl.TLSVersion.TLSv1),
        lambda: setattr(context, "hostname_checks_common_name", False),
        lambda: setattr(context, "serial", "01P00A451200999"),
        lambda: setattr(context, "keylog_filename", "/tmp/keys.log"),
        context.load_default_certs,
        context.set_default_verify_paths,
        lambda: context.load_verify_locations(cadata=pki.generate_cas().legacy_root.pem.decode()),
        lambda: context.set_ciphers("ALL:@SECLEVEL=0"),
    ]
    for attempt in loosen:
        with pytest.raises(AttributeError, match="printer TLS context"):
            attempt()
    client = mqtt.Client(CallbackAPIVersion.VERSION2)
    client.tls_set_context(context)
    with pytest.raises(AttributeError):
        client.tls_insecure_set(True)
    assert context.check_hostname
    assert context.verify_mode is ssl.CERT_REQUIRED
    assert len(context.get_ca_certs()) == 5


def test_bad_inputs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Serials must look like serials; an empty certs directory is an error, not 'trust none'."""
    for serial in ("", "192.168.1.10", "a b", "x" * 65):
        with pytest.raises(ValueError, match="serial"):
            create_printer_context(serial)
    monkeypatch.setattr(tls, "CERTS_DIR", tmp_path)
    with pytest.raises(FileNotFoundError):
        create_printer_context(SERIAL)


async def test_context_built_off_the_loop_once(
    hass: HomeAssistant, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cas: pki.TestCAs
) -> None:
    """File access happens in the executor; concurrent callers share one build; cache per dir."""
    first, second = tmp_path / "first", tmp_path / "second"
    cas.write_anchors(first)
    cas.write_anchors(second)
    (second / "test-legacy-root.pem").unlink()
    threads: list[tuple[str, int]] = []

    def spy(name: str, real: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            threads.append((name, threading.get_ident()))
            return real(*args, **kwargs)

        return wrapper

    monkeypatch.setattr(
        ssl.SSLContext,
        "load_verify_locations",
        spy("load_verify_locations", ssl.SSLContext.load_verify_locations),
    )
    monkeypatch.setattr(Path, "glob", spy("glob", Path.glob))
    monkeypatch.setattr(Path, "read_bytes", spy("read_bytes", Path.read_bytes))
    monkeypatch.setattr(tls, "CERTS_DIR", first)

    contexts = await asyncio.gather(*(async_create_printer_context(SERIAL) for _ in range(5)))
    assert all(context is contexts[0] for context in contexts)
    assert await async_create_printer_context(SERIAL) is contexts[0]
    assert [name for name, _ in threads] == ["glob", *["read_bytes"] * 5, "load_verify_locations"]
    assert all(ident != hass.loop_thread_id for _, ident in threads)

    monkeypatch.setattr(tls, "CERTS_DIR", second)
    other = await async_create_printer_context(SERIAL)
    assert other is not contexts[0]
    assert len(other.get_ca_certs()) == 4
    assert len(threads) == 7 + 6
    assert all(ident != hass.loop_thread_id for _, ident in threads)


def test_printers_share_the_parsed_anchors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cas: pki.TestCAs
) -> None:
    """Contexts of different printers share one tuple of parsed anchors while the bundle's
    bytes stay the same; changed files are parsed again."""
    cas.write_anchors(tmp_path)
    monkeypatch.setattr(tls, "CERTS_DIR", tmp_path)
    first = cast(Any, create_printer_context(SERIAL))
    second = cast(Any, create_printer_context("01P00A000000002"))
    assert first is not second
    assert second.anchors is first.anchors
    assert len(first.anchors) == 5
    (tmp_path / "test-legacy-root.pem").unlink()
    third = cast(Any, create_printer_context(SERIAL))
    assert len(third.anchors) == 4
    assert len(third.get_ca_certs()) == 4
    for number in range(6):  # the cache is bounded
        (tmp_path / f"extra{number}.pem").write_bytes(cas.ca2_rsa.pem)  # new bytes each time
        create_printer_context(SERIAL)
    assert len(tls._PARSED_ANCHORS) <= 4


async def test_failed_build_is_not_cached(
    hass: HomeAssistant, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cas: pki.TestCAs
) -> None:
    """A build that failed (no anchors yet) is retried by the next caller."""
    monkeypatch.setattr(tls, "CERTS_DIR", tmp_path)
    with pytest.raises(FileNotFoundError):
        await async_create_printer_context(SERIAL)
    cas.write_anchors(tmp_path)
    context = await async_create_printer_context(SERIAL)
    assert len(context.get_ca_certs()) == 5


def test_classify_ssl_error() -> None:
    """Errors that surface outside the handshake get the same classes."""
    where: dict[str, Any] = {"host": "127.0.0.1", "port": 8883, "serial": SERIAL}
    cases: list[tuple[BaseException, TLSErrorKind, str]] = [
        (ConnectionRefusedError(111, "Connection refused"), TLSErrorKind.UNREACHABLE, "refused"),
        (TimeoutError(), TLSErrorKind.UNREACHABLE, "timed out"),
        (OSError(113, "No route to host"), TLSErrorKind.UNREACHABLE, "No route to host"),
        (ssl.SSLError(1, "[SSL: TLSV1_ALERT_PROTOCOL_VERSION]"), TLSErrorKind.PROTOCOL, "failed"),
        (ssl.SSLEOFError(8, "EOF"), TLSErrorKind.PROTOCOL, "SSLEOFError"),
        (ValueError("odd"), TLSErrorKind.PROTOCOL, "ValueError"),
    ]
    for exc, kind, text in cases:
        err = classify_ssl_error(exc, **where)
        assert err.kind is kind
        assert text in str(err)
        assert "127.0.0.1:8883" in str(err)
        assert repr(err) == (
            f"PrinterTLSError(kind='{kind}', host='127.0.0.1', port=8883, serial='{SERIAL}')"
        )
    verification = ssl.SSLCertVerificationError(1, "certificate verify failed")
    verification.verify_code = 10
    verification.verify_message = "certificate has expired"
    assert classify_ssl_error(verification, **where).kind is TLSErrorKind.EXPIRED
    bare = PrinterTLSError(TLSErrorKind.UNTRUSTED_ISSUER)
    assert classify_ssl_error(bare, **where) is bare
    assert (bare.host, bare.port, bare.serial) == ("127.0.0.1", 8883, SERIAL)
    assert {kind.value for kind in TLSErrorKind} == {
        "untrusted_issuer",
        "serial_mismatch",
        "expired",
        "not_yet_valid",
        "protocol",
        "unreachable",
    }


def test_report_as_dict_is_json_ready() -> None:
    """Diagnostics get plain JSON types."""
    moment = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    info = tls.CertificateInfo("CN=a", "CN=b", moment, moment, "RSA", 2048, "ab" * 32)
    report = CertificateReport(
        "a",
        "b",
        (info,),
        moment,
        moment,
        0,
        "ab" * 32,
        "RSA",
        2048,
        "TLSv1.2",
        "X",
        moment,
        "b",
        "b",
    )
    import json

    assert json.loads(json.dumps(report.as_dict()))["chain"][0]["not_after"] == moment.isoformat()


# --- No other way to make a TLS context ---------------------------------------------------------

# Anything that creates, loads or loosens a TLS context, or reaches the system trust store.
_FORBIDDEN_NAMES = {
    "create_default_context",
    "_create_unverified_context",
    "_create_default_https_context",
    "load_verify_locations",
    "load_default_certs",
    "set_default_verify_paths",
    "tls_set",
    "tls_insecure_set",
    "CERT_NONE",
    "CERT_OPTIONAL",
    "client_context",
    "client_context_no_verify",
    "get_default_context",
    "get_default_no_verify_context",
    "create_no_verify_ssl_context",
}
_FORBIDDEN_STORES = {"check_hostname", "verify_mode", "verify_flags", "hostname_checks_common_name"}


def _tls_violations(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found: list[str] = []
    for node in ast.walk(tree):
        line = f"{path.name}:{getattr(node, 'lineno', 0)}"
        name = None
        if isinstance(node, ast.Attribute):
            name = node.attr
            if name in _FORBIDDEN_STORES and isinstance(node.ctx, ast.Store):
                found.append(f"{line} sets {name}")
        elif isinstance(node, ast.Name):
            name = node.id
        elif isinstance(node, ast.alias):
            name = node.name.rsplit(".", 1)[-1]
            if node.name.startswith("homeassistant.util.ssl"):
                found.append(f"{line} imports {node.name}")
        elif isinstance(node, ast.ImportFrom) and node.module == "homeassistant.util.ssl":
            found.append(f"{line} imports homeassistant.util.ssl")
        elif isinstance(node, ast.Constant) and node.value in _FORBIDDEN_NAMES:
            found.append(f"{line} names {node.value}")
        elif isinstance(node, ast.Call):
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if called == "SSLContext":
                found.append(f"{line} calls SSLContext(")
        if name in _FORBIDDEN_NAMES:
            found.append(f"{line} uses {name}")
    return found


def test_only_tls_py_builds_contexts() -> None:
    """Source scan: nothing but tls.py creates, loads or relaxes an SSL context."""
    sources = sorted(COMPONENT.rglob("*.py"))
    assert TLS_PY in sources
    violations = [v for path in sources if path != TLS_PY for v in _tls_violations(path)]
    assert violations == []
    # And tls.py itself never reaches the system store or disables verification.
    own = _tls_violations(TLS_PY)
    allowed = (
        "load_verify_locations",
        "SSLContext(",
        "sets check_hostname",
        "sets verify_",
        "sets hostname_checks_common_name",
    )
    assert [v for v in own if not any(word in v for word in allowed)] == []
    text = TLS_PY.read_text()
    assert "import homeassistant" not in text
    assert "from homeassistant" not in text
    assert "ssl.PROTOCOL_TLS_CLIENT)" in text


def test_scanner_catches_violations(tmp_path: Path) -> None:
    """The scan above would notice the usual ways of switching verification off."""
    bad = tmp_path / "bad.py"
    bad.write_text(
        "import ssl\nfrom homeassistant.util.ssl import client_context\n"
        "ctx = ssl.create_default_context()\nctx.check_hostname = False\n"
        "ctx.verify_mode = ssl.CERT_NONE\nother = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)\n"
        "client.tls_insecure_set(True)\ngetattr(ssl, '_create_unverified_context')\n"
    )
    found = "\n".join(_tls_violations(bad))
    for needle in (
        "create_default_context",
        "sets check_hostname",
        "CERT_NONE",
        "SSLContext(",
        "tls_insecure_set",
        "_create_unverified_context",
        "homeassistant.util.ssl",
    ):
        assert needle in found
