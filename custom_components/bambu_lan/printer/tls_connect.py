"""A verified TLS connection to a printer, driven by the event loop (no thread, no blocking).

No Home Assistant imports; part of the printer library. The context comes from `tls.py` (the only
place that builds one); this module only connects with it. Used by the MQTT session (paho then
takes over the verified socket) and by the probes.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
from typing import Any

from .chain import _os_detail, _ssl_detail, classify_ssl_error
from .tls_errors import PrinterTLSError, TLSErrorKind


async def async_open_tls(
    context: ssl.SSLContext, host: str, port: int, step_timeout: float
) -> ssl.SSLSocket:
    """TCP connect and a verified handshake, both driven by the event loop.

    No thread and no blocking call: a peer that accepts TCP and then never answers holds
    nothing the loop cannot take back. Cancelling the caller closes the socket at once. Each
    step (connect, handshake) gets `step_timeout`. Returns the non-blocking socket once the
    certificate is verified (and the pin checked); raises `PrinterTLSError`.
    """
    serial: str | None = getattr(context, "serial", None)
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(step_timeout):
            sock: socket.socket = await _async_tcp_connect(loop, host, port)
    except OSError as err:
        raise PrinterTLSError(
            TLSErrorKind.UNREACHABLE, host=host, port=port, serial=serial, detail=_os_detail(err)
        ) from err
    try:
        # The TLS socket takes over the descriptor: from here on it is the one to close.
        sock = context.wrap_socket(sock, do_handshake_on_connect=False)
        async with asyncio.timeout(step_timeout):
            await _async_handshake(loop, sock)
    except BaseException as err:
        sock.close()
        if isinstance(err, PrinterTLSError):
            err.host, err.port = host, port  # as configured, not as resolved
            raise classify_ssl_error(err, host=host, port=port, serial=serial) from None
        if isinstance(err, ssl.SSLError):
            detail = _ssl_detail(err)
        elif isinstance(err, OSError):
            # TCP is up but the TLS server stalled or hung up: not a TLS peer we can talk to.
            detail = _os_detail(err)
        else:
            raise
        raise PrinterTLSError(
            TLSErrorKind.PROTOCOL, host=host, port=port, serial=serial, detail=detail
        ) from err
    assert isinstance(sock, ssl.SSLSocket)
    return sock


async def _async_tcp_connect(
    loop: asyncio.AbstractEventLoop, host: str, port: int
) -> socket.socket:
    """A connected non-blocking TCP socket to the first address of `host` that answers."""
    targets: list[tuple[socket.AddressFamily, Any]]
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        targets = [(family, sockaddr) for family, _, _, _, sockaddr in infos]
    else:  # no resolver (and so no executor job) for an address
        family = socket.AF_INET6 if address.version == 6 else socket.AF_INET
        targets = [(family, (host, port))]
    error = OSError(f"no address for {host}")
    for family, sockaddr in targets:
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setblocking(False)
            await loop.sock_connect(sock, sockaddr)
        except BaseException as err:
            sock.close()  # also when cancelled: nothing is left half open
            if not isinstance(err, OSError):
                raise
            error = err
            continue
        return sock
    raise error


async def _async_handshake(loop: asyncio.AbstractEventLoop, tls: ssl.SSLSocket) -> None:
    """Run the handshake of a non-blocking TLS socket, waiting for readiness on the loop."""
    fd = tls.fileno()
    while True:
        try:
            tls.do_handshake()
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError) as want:
            ready: asyncio.Future[None] = loop.create_future()
            write = isinstance(want, ssl.SSLWantWriteError)
            (loop.add_writer if write else loop.add_reader)(fd, _set_ready, ready)
            try:
                await ready
            finally:
                (loop.remove_writer if write else loop.remove_reader)(fd)
        else:
            return


def _set_ready(ready: asyncio.Future[None]) -> None:
    if not ready.done():
        ready.set_result(None)
