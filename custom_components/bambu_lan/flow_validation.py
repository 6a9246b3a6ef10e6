"""Prove a printer before anything is stored, and explain a failure in the form's words.

Every check opens a verified TLS connection bound to the serial, logs in with the access code,
asks the printer for its version and checks that its own serial is the one entered; the
connection is closed again whatever happens. A TLS failure is classified (`PrinterTLSError`
kinds) into a translated config.error key with its placeholders.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime
import logging
from typing import Any

from homeassistant.config_entries import ConfigEntry
from homeassistant.const import CONF_PORT

from .const import CONF_PINNED_CERT, CONF_SERIAL, MANUFACTURER
from .flow_pin import PinnableCertificate, PinOffer, when
from .issues import display_text
from .printer.models import model_label
from .printer.session import (
    CannotConnect,
    CommandError,
    ConnectTimeout,
    InvalidAuth,
    PrinterSession,
)
from .printer.state import PrinterState
from .printer.tls import (
    CertificateReport,
    PrinterTLSError,
    TLSErrorKind,
    async_probe_printer,
)

_LOGGER = logging.getLogger(__name__)

# How long the printer may take to answer get_version once logged in.
VALIDATION_TIMEOUT: float = 10.0


class FlowError(Exception):
    """A validation failure: a translation key under config.error plus its placeholders."""

    def __init__(self, key: str, **placeholders: str) -> None:
        """Remember what the form shows."""
        super().__init__(key)
        self.key = key
        self.placeholders = placeholders
        # The presented certificate, when the user may choose to pin it.
        self.pinnable: PinnableCertificate | None = None

    def offer(self, host: str, serial: str, access_code: str, origin: str) -> PinOffer | None:
        """The pin to offer after this failed attempt, if its certificate may be pinned."""
        if self.pinnable is None:
            return None
        return PinOffer(host, serial, access_code, self.pinnable, origin)


@dataclass(frozen=True, slots=True)
class PrinterIdentity:
    """What a successful validation proved about the printer."""

    serial: str
    model: str
    certificate: CertificateReport

    def title(self, taken: Collection[str]) -> str:
        """ "Bambu Lab <model>"; a short serial suffix only if another printer has that name.

        The full serial is on the device page; the entry title is the device's name.
        """
        model = self.model
        title = model if model.startswith(MANUFACTURER) else f"{MANUFACTURER} {model}"
        return f"{title} {self.serial[-4:]}" if title in taken else title


class _Quiet:
    """Session listener of the short validation connection: nothing to do with reports."""

    def on_report(self, message: dict[str, Any]) -> None:
        """Ignore status reports."""

    def on_connected(self, certificate: CertificateReport) -> None:
        """Not used: the validation session never reconnects."""

    def on_disconnected(self, error: Exception | None) -> None:
        """Not used: a drop surfaces as the pending command's error."""

    def on_reconnect_failed(self, error: Exception) -> bool:
        """Never retry."""
        return False


async def _async_tls_error(
    err: PrinterTLSError, host: str, port: int, serial: str, pinned_cert: str | None
) -> FlowError:
    """Explain a TLS failure; name another serial only once its chain verified."""
    where = {"host": host, "port": str(port), "serial": serial}
    if err.kind is TLSErrorKind.SERIAL_MISMATCH and err.presented_serial is None:
        try:
            await async_probe_printer(host, port, serial, pinned_cert=pinned_cert)
        except PrinterTLSError as probed:
            err = probed
    match err.kind:
        case TLSErrorKind.SERIAL_MISMATCH if err.presented_serial is not None:
            return FlowError(
                "serial_mismatch", presented_serial=display_text(err.presented_serial), **where
            )
        case TLSErrorKind.SERIAL_MISMATCH:
            return FlowError("wrong_device", **where)
        case TLSErrorKind.UNTRUSTED_ISSUER:
            untrusted = FlowError(
                "untrusted_certificate",
                issuer=display_text(err.issuer or "unknown"),
                fingerprint=err.fingerprint or "unknown",
                **where,
            )
            untrusted.pinnable = PinnableCertificate.from_error(err)
            return untrusted
        case TLSErrorKind.EXPIRED | TLSErrorKind.NOT_YET_VALID:
            return FlowError(
                f"certificate_{err.kind}",
                not_before=when(err.not_before),
                not_after=when(err.not_after),
                now=when(datetime.now(UTC)),
                **where,
            )
        case TLSErrorKind.PROTOCOL:
            return FlowError("tls_failed", error=err.detail or "protocol error", **where)
    return FlowError("cannot_connect", error=err.detail or "no connection", **where)


async def _async_ask_version(
    host: str, port: int, serial: str, access_code: str, pinned_cert: str | None
) -> tuple[CertificateReport, dict[str, Any]]:
    """Log in, ask get_version, and close again whatever happens."""
    session = PrinterSession(
        host, serial, access_code, _Quiet(), port=port, pinned_cert=pinned_cert, request_state=False
    )
    try:
        certificate = await session.async_connect()
        reply = await session.async_command("info", "get_version", ack_timeout=VALIDATION_TIMEOUT)
    finally:
        await session.async_close()
    return certificate, reply


async def async_validate_printer(
    host: str, port: int, serial: str, access_code: str, pinned_cert: str | None = None
) -> PrinterIdentity:
    """Prove that the printer with this serial answers at host:port and takes the code.

    Raises FlowError.
    """
    where = {"host": host, "port": str(port), "serial": serial}
    try:
        certificate, reply = await _async_ask_version(host, port, serial, access_code, pinned_cert)
    except InvalidAuth:
        raise FlowError("invalid_auth", **where) from None
    except PrinterTLSError as err:
        raise await _async_tls_error(err, host, port, serial, pinned_cert) from None
    except ConnectTimeout:
        raise FlowError("timeout", **where) from None
    except CannotConnect as err:
        raise FlowError("cannot_connect", error=str(err), **where) from None
    except CommandError as err:
        if err.kind == "timeout":
            raise FlowError("timeout", **where) from None
        raise FlowError("cannot_connect", error=str(err), **where) from None
    except Exception as err:
        # Never str(user_input) here: only the address goes into the log.
        _LOGGER.exception("Unexpected error while checking the printer at %s:%s", host, port)
        raise FlowError("unknown", **where) from err
    state = PrinterState(serial)
    state.apply({"info": reply})
    reported = (state.reported_serial or "").strip().upper()
    # The certificate already binds the serial; the firmware's own word must not contradict it.
    # (Firmware that does not report it is not turned away: the handshake proved the serial.)
    if reported and reported != serial:
        raise FlowError("serial_mismatch", presented_serial=display_text(reported), **where)
    model = state.model  # from get_version, else the serial's prefix
    return PrinterIdentity(
        serial=serial,
        model=model_label(model) if model else (state.product_name or "Bambu Lab"),
        certificate=certificate,
    )


async def async_validate_entry(
    entry: ConfigEntry,
    host: str,
    access_code: str,
    default_port: int,
    *,
    remove_pin: bool = False,
) -> PrinterIdentity:
    """Validate new settings of a configured printer (its serial and port stay).

    Its pin stays too unless it is being removed: then the printer must verify against the
    bundled CAs alone, so that removing the pin cannot strand a printer they do not cover.
    """
    return await async_validate_printer(
        host,
        entry.data.get(CONF_PORT, default_port),
        entry.data[CONF_SERIAL],
        access_code,
        None if remove_pin else entry.options.get(CONF_PINNED_CERT),
    )
