"""An asyncio stream to a printer port over verified TLS (camera 6000, RTSPS 322).

The MQTT session and the probes need a plain socket (paho takes it over): `tls_connect.py`.

The context comes from `tls.py` (Bambu Lab CAs or the pinned certificate; the serial as SNI and
as the name the certificate must carry). Failures come out classified: a `PrinterTLSError` for
anything about the handshake (refused certificate, timeout, not TLS at all), a plain `OSError`
when the port cannot be reached.
"""

from __future__ import annotations

import asyncio
import ssl

from .tls import PrinterTLSError, TLSErrorKind, async_create_printer_context


async def async_open_printer_stream(
    host: str,
    port: int,
    serial: str,
    *,
    pinned_cert: str | None = None,
    connect_timeout: float,
    limit: int = 2**16,
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Connect and complete a verified handshake within `connect_timeout` seconds."""
    context = await async_create_printer_context(serial, pinned_cert=pinned_cert)
    try:
        async with asyncio.timeout(connect_timeout):
            return await asyncio.open_connection(
                host,
                port,
                ssl=context,
                server_hostname=serial,
                ssl_handshake_timeout=connect_timeout,
                limit=limit,
            )
    except PrinterTLSError as err:
        err.host, err.port = host, port
        raise
    except TimeoutError as err:
        raise PrinterTLSError(
            TLSErrorKind.UNREACHABLE, host=host, port=port, detail="timed out"
        ) from err
    except ssl.SSLError as err:  # not TLS, or a handshake the printer broke off
        raise PrinterTLSError(
            TLSErrorKind.PROTOCOL, host=host, port=port, detail=err.reason
        ) from err
