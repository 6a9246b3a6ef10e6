"""Verified TLS to one Bambu Lab printer: the only place that builds printer TLS contexts.

What a context from this module guarantees, for MQTT (paho), FTPS (ftplib) and asyncio streams:

* Trust anchors are exactly the bundled Bambu Lab CA certificates in `CERTS_DIR` (plus, only if
  the user explicitly pinned it, one printer certificate). The system store, certifi and the
  SSL_CERT_FILE / SSL_CERT_DIR environment variables play no part.
* The context is bound to one serial number: whatever server name a consumer passes (paho passes
  the IP address), SNI and the hostname check use the serial, and the printer's certificate must
  have CN = serial.
* A rejected certificate raises `PrinterTLSError` from inside the handshake, so no application
  byte (the access code travels in the first MQTT packet) can ever reach a wrong peer.

There is deliberately no way to switch verification off.
"""

from __future__ import annotations

import asyncio
import contextlib
from functools import partial
import ipaddress
from pathlib import Path
import re
import socket
import ssl
from typing import TYPE_CHECKING, Any, override

from cryptography import x509

from .chain import (
    CertificateInfo,
    CertificateReport,
    _cn,
    _der,
    _kind_for_code,
    _leaf_details,
    _parse_der_chain,
    _sha256,
    _verification_failure,
    classify_ssl_error,
    report_from_ssl,
)
from .tls_connect import async_open_tls
from .tls_errors import PrinterTLSError, TLSErrorKind, _HandshakeRejected

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer, StrOrBytesPath

__all__ = [
    "CERTS_DIR",
    "CertificateInfo",
    "CertificateReport",
    "PrinterTLSError",
    "TLSErrorKind",
    "async_create_printer_context",
    "async_open_tls",
    "async_probe_printer",
    "classify_ssl_error",
    "create_printer_context",
    "report_from_ssl",
]

# The bundled Bambu Lab CA certificates; every *.pem file here is a trust anchor.
CERTS_DIR: Path = Path(__file__).parent / "certs"

_SERIAL_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


# --- The printer context ----------------------------------------------------------------------


def _reject_unverified(
    obj: ssl.SSLSocket | ssl.SSLObject, err: ssl.SSLCertVerificationError
) -> _HandshakeRejected:
    # OpenSSL keeps the peer's chain after a failed verification: classify from it, offline.
    context = obj.context
    printer = context if isinstance(context, _PrinterContext) else None
    details = _verification_failure(
        kind := _kind_for_code(err.verify_code),
        _parse_der_chain(obj.get_unverified_chain()),
        context=context,
        serial=printer.serial if printer else None,
        openssl_code=err.verify_code,
        openssl_message=err.verify_message,
    )
    if kind is TLSErrorKind.UNTRUSTED_ISSUER and printer and printer.pin_sha256:
        details["pinned_fingerprint"] = printer.pin_sha256
    return _HandshakeRejected(kind, **details)


def _reject_unpinned(obj: ssl.SSLSocket | ssl.SSLObject) -> _HandshakeRejected | None:
    """The error to raise if a pinned context sees any certificate but the pinned one."""
    context = obj.context
    if not isinstance(context, _PrinterContext) or context.pin_sha256 is None:
        return None
    der = obj.getpeercert(binary_form=True)
    leaf = x509.load_der_x509_certificate(der) if der else None
    if leaf is not None and _sha256(leaf) == context.pin_sha256:
        return None
    details = _leaf_details(leaf, context.serial)
    return _HandshakeRejected(
        TLSErrorKind.UNTRUSTED_ISSUER,
        serial=context.serial,
        pinned_fingerprint=context.pin_sha256,
        **details,
    )


class _PrinterSSLSocket(ssl.SSLSocket):
    """Raises classified errors from the handshake and enforces the pin before any data."""

    @override
    def do_handshake(self, block: bool = False) -> None:
        try:
            super().do_handshake(block)
        except ssl.SSLWantReadError, ssl.SSLWantWriteError:
            raise  # non-blocking socket: not a failure
        except ssl.SSLCertVerificationError as err:
            rejected = _reject_unverified(self, err)
            self._close_rejected(rejected)
            raise rejected from err
        except OSError:
            # A failed handshake cannot be resumed; paho would leave the socket open.
            self.close()
            raise
        if (unpinned := _reject_unpinned(self)) is not None:
            self._close_rejected(unpinned)
            raise unpinned

    def _close_rejected(self, rejected: PrinterTLSError) -> None:
        """Name the peer in the error, then make sure nothing more can be sent to it."""
        with contextlib.suppress(OSError):
            rejected.host, rejected.port, *_ = self.getpeername()
        self.close()


class _PrinterSSLObject(ssl.SSLObject):
    """The same for memory-BIO connections (asyncio); asyncio closes the transport itself."""

    @override
    def do_handshake(self) -> None:
        try:
            super().do_handshake()
        except ssl.SSLCertVerificationError as err:
            raise _reject_unverified(self, err) from err
        if (unpinned := _reject_unpinned(self)) is not None:
            raise unpinned


# What a built context may no longer change: it is cached and shared, and e.g. paho's
# tls_insecure_set() would otherwise switch the name check off for every connection.
_SEALED_ATTRIBUTES = frozenset(
    {
        "_sealed",
        "anchors",
        "check_hostname",
        "hostname_checks_common_name",
        "keylog_filename",
        "maximum_version",
        "minimum_version",
        "options",
        "pin_sha256",
        "serial",
        "sslobject_class",
        "sslsocket_class",
        "verify_flags",
        "verify_mode",
    }
)


class _PrinterContext(ssl.SSLContext):
    """A client context bound to one printer serial: SNI and the name check use the serial.

    Once built it is sealed: its verification settings and trust anchors cannot be changed.
    """

    serial: str
    pin_sha256: str | None
    anchors: tuple[x509.Certificate, ...]
    _sealed = False

    sslsocket_class = _PrinterSSLSocket
    sslobject_class = _PrinterSSLObject

    def seal(self) -> None:
        """Freeze the verification settings and the trust anchors."""
        self._sealed = True

    @override
    def __setattr__(self, name: str, value: Any) -> None:
        if self._sealed and name in _SEALED_ATTRIBUTES:
            raise AttributeError(f"a printer TLS context cannot change {name}")
        super().__setattr__(name, value)

    @override
    def load_verify_locations(
        self,
        cafile: StrOrBytesPath | None = None,
        capath: StrOrBytesPath | None = None,
        cadata: str | ReadableBuffer | None = None,
    ) -> None:
        if self._sealed:
            raise AttributeError("a printer TLS context cannot trust more certificates")
        super().load_verify_locations(cafile, capath, cadata)

    @override
    def load_default_certs(self, purpose: ssl.Purpose = ssl.Purpose.SERVER_AUTH) -> None:
        raise AttributeError("a printer TLS context never trusts the system store")

    @override
    def set_default_verify_paths(self) -> None:
        raise AttributeError("a printer TLS context never trusts the system store")

    @override
    def set_ciphers(self, cipherlist: str, /) -> None:
        if self._sealed:
            raise AttributeError("a printer TLS context cannot change its ciphers")
        super().set_ciphers(cipherlist)

    @override
    def wrap_socket(
        self,
        sock: socket.socket,
        server_side: bool = False,
        do_handshake_on_connect: bool = True,
        suppress_ragged_eofs: bool = True,
        server_hostname: str | bytes | None = None,
        session: ssl.SSLSession | None = None,
    ) -> ssl.SSLSocket:
        # paho and ftplib pass the IP address: the printer's identity is its serial instead.
        return super().wrap_socket(
            sock,
            server_side=server_side,
            do_handshake_on_connect=do_handshake_on_connect,
            suppress_ragged_eofs=suppress_ragged_eofs,
            server_hostname=self.serial,
            session=session,
        )

    @override
    def wrap_bio(
        self,
        incoming: ssl.MemoryBIO,
        outgoing: ssl.MemoryBIO,
        server_side: bool = False,
        server_hostname: str | bytes | None = None,
        session: ssl.SSLSession | None = None,
    ) -> ssl.SSLObject:
        return super().wrap_bio(
            incoming,
            outgoing,
            server_side=server_side,
            server_hostname=self.serial,
            session=session,
        )


def _check_serial(serial: str) -> str:
    if not _SERIAL_RE.fullmatch(serial):
        raise ValueError("a printer serial is 1-64 letters and digits")
    try:
        ipaddress.ip_address(serial)
    except ValueError:
        return serial
    raise ValueError("a printer serial is not an IP address")


def _parse_pin(pinned_cert: str, serial: str) -> x509.Certificate:
    """The one certificate a user chose to trust for this printer."""
    try:
        certs = x509.load_pem_x509_certificates(pinned_cert.encode())
    except ValueError as err:
        raise ValueError("the pinned certificate is not a PEM certificate") from err
    if len(certs) != 1:
        raise ValueError("exactly one certificate can be pinned")
    if _cn(certs[0].subject).casefold() != serial.casefold():
        raise ValueError("the pinned certificate is not for this serial")
    return certs[0]


# Parsed anchors by the bytes of the files they came from: every printer's context (one per
# serial) shares one tuple of certificates instead of parsing its own.
_PARSED_ANCHORS: dict[bytes, tuple[x509.Certificate, ...]] = {}
_MAX_PARSED_ANCHORS = 4


def _read_anchors(directory: Path) -> tuple[x509.Certificate, ...]:
    """Every certificate in every *.pem file of `directory`, once each (blocking)."""
    files = [path.read_bytes() for path in sorted(directory.glob("*.pem"))]
    content = b"\0".join(files)
    if (known := _PARSED_ANCHORS.get(content)) is not None:
        return known
    anchors: dict[bytes, x509.Certificate] = {}
    for data in files:
        # Raises ValueError for a file without a certificate: a broken bundle must be noticed.
        for cert in x509.load_pem_x509_certificates(data):
            anchors.setdefault(_der(cert), cert)
    if not anchors:
        raise FileNotFoundError(f"no trust anchors (*.pem) in {directory}")
    if len(_PARSED_ANCHORS) >= _MAX_PARSED_ANCHORS:
        _PARSED_ANCHORS.clear()  # only a cache (the bundle does not change while running)
    parsed = _PARSED_ANCHORS[content] = tuple(anchors.values())
    return parsed


def _build_context(directory: Path, serial: str, pinned_cert: str | None) -> _PrinterContext:
    """Build the context (blocking: reads the anchor files)."""
    serial = _check_serial(serial)
    pin = _parse_pin(pinned_cert, serial) if pinned_cert is not None else None
    anchors = _read_anchors(directory)

    # PROTOCOL_TLS_CLIENT loads no default CAs: nothing from the system store, certifi or
    # SSL_CERT_FILE / SSL_CERT_DIR. It starts with CERT_REQUIRED and check_hostname on.
    context = _PrinterContext(ssl.PROTOCOL_TLS_CLIENT)
    context.verify_mode = ssl.CERT_REQUIRED
    context.check_hostname = True
    # Printer leaves carry the serial as CN and have no subjectAltName.
    context.hostname_checks_common_name = True
    # TLS 1.2 only. Floor: nothing older is acceptable. Ceiling: P2S firmware ignores a TLS 1.3
    # ClientHello on 8883 (the handshake hangs until timeout) and H2D FTPS offers only 1.2, so
    # offering 1.3 can only break connections to real printers.
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    # The one relaxation: the legacy root `BBL CA` (X1/P1/A1 chains) has no keyUsage
    # extension, which VERIFY_X509_STRICT (set by default on Python >= 3.13) rejects.
    context.verify_flags &= ~ssl.VERIFY_X509_STRICT
    # Newer printers send only their leaf: a bundled device intermediate must be able to act
    # as the anchor.
    context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
    context.load_verify_locations(cadata=b"".join(_der(cert) for cert in anchors))
    context.anchors = anchors

    context.serial = serial
    context.pin_sha256 = None
    if pin is not None:
        # Partial-chain verification lets the pinned leaf anchor itself; the hostname check
        # still requires CN = serial, and the handshake then requires this exact certificate.
        context.load_verify_locations(cadata=_der(pin))
        context.pin_sha256 = _sha256(pin)
    context.seal()
    return context


def create_printer_context(serial: str, *, pinned_cert: str | None = None) -> ssl.SSLContext:
    """A TLS client context that only connects to the printer with this serial (blocking).

    `pinned_cert` is the PEM of one printer certificate the user explicitly chose to trust
    (for a printer whose issuer is not bundled); the context then accepts only that certificate.
    """
    return _build_context(CERTS_DIR, serial, pinned_cert)


type _CacheKey = tuple[Path, str, str | None]

_CONTEXTS: dict[_CacheKey, ssl.SSLContext] = {}
_BUILDS: dict[_CacheKey, asyncio.Future[_PrinterContext]] = {}


def _store_build(key: _CacheKey, build: asyncio.Future[_PrinterContext]) -> None:
    if _BUILDS.get(key) is build:
        del _BUILDS[key]
    if not build.cancelled() and build.exception() is None:
        _CONTEXTS[key] = build.result()


async def async_create_printer_context(
    serial: str, *, pinned_cert: str | None = None
) -> ssl.SSLContext:
    """`create_printer_context` off the event loop, built once and then reused.

    The anchors do not change while Home Assistant runs, so the cache key is the anchor
    directory (as a path: no filesystem access in the event loop), the serial and the pin.
    Concurrent callers share one build.
    """
    directory = CERTS_DIR  # absolute already; resolving it here would touch the filesystem
    key: _CacheKey = (directory, serial, pinned_cert)
    if (context := _CONTEXTS.get(key)) is not None:
        return context
    loop = asyncio.get_running_loop()
    build = _BUILDS.get(key)
    if build is None or build.get_loop() is not loop:
        build = loop.run_in_executor(None, _build_context, directory, serial, pinned_cert)
        _BUILDS[key] = build
        # Also when every caller was cancelled: the finished build still lands in the cache.
        build.add_done_callback(partial(_store_build, key))
    try:
        return await asyncio.shield(build)
    finally:
        # Callback order is not guaranteed: settle the cache before the next caller looks.
        if build.done():
            _store_build(key, build)


# --- Probing --------------------------------------------------------------------------------


async def _async_report(
    context: ssl.SSLContext, host: str, port: int, step_timeout: float
) -> CertificateReport:
    """Connect, complete a verified handshake, report, close: no application data is sent."""
    with await async_open_tls(context, host, port, step_timeout) as tls:
        return report_from_ssl(tls)


async def _async_confirm_presented_serial(
    err: PrinterTLSError, host: str, port: int, step_timeout: float
) -> PrinterTLSError:
    """Check a hostname mismatch with a handshake bound to the presented CN.

    OpenSSL checks the name before the signatures, so a mismatch alone does not prove that the
    device's chain is genuine; only then may the message name the serial it presents.
    """
    presented = err.presented_cn
    if presented is None:
        return err
    loop = asyncio.get_running_loop()
    try:
        # Not cached: the presented name is the peer's choice.
        context = await loop.run_in_executor(None, create_printer_context, presented)
        await _async_report(context, host, port, step_timeout)
    except PrinterTLSError as second:
        if second.kind is TLSErrorKind.UNTRUSTED_ISSUER:
            second.serial = err.serial
            second.leaf_pem = None  # its CN is not the configured serial: nothing to pin
            return second
        return err
    except ValueError:  # the presented CN is not even shaped like a serial
        return err
    err.presented_serial = presented
    return err


async def async_probe_printer(
    host: str,
    port: int,
    serial: str,
    timeout: float = 10.0,  # noqa: ASYNC109 - bounds each step of the loop-driven connection
    *,
    pinned_cert: str | None = None,
) -> CertificateReport:
    """Verify the printer's certificate with one handshake and report it (no data is sent).

    Driven by the event loop like `async_open_tls`: an aborted caller leaves no socket behind.
    Raises `PrinterTLSError` for every failure.
    """
    context = await async_create_printer_context(serial, pinned_cert=pinned_cert)
    try:
        return await _async_report(context, host, port, timeout)
    except PrinterTLSError as err:
        if err.kind is TLSErrorKind.SERIAL_MISMATCH:
            confirmed = await _async_confirm_presented_serial(err, host, port, timeout)
            if confirmed is not err:
                raise confirmed from err
        raise
