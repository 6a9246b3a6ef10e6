"""Config flow: add a printer (by hand or discovered), reauthenticate, reconfigure.

Nothing is stored before it is proven: every step opens a verified TLS connection bound to the
serial, logs in with the access code, asks the printer for its version and checks that the
printer's own serial is the one entered. That validation connection is closed before the entry's
own connection opens, because printers accept only a few clients at a time.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
import ipaddress
import logging
import re
from typing import Any, Final, override

from homeassistant.config_entries import ConfigEntry, ConfigFlow, ConfigFlowResult
from homeassistant.const import CONF_PORT
from homeassistant.helpers.selector import (
    BooleanSelector,
    TextSelector,
    TextSelectorConfig,
    TextSelectorType,
)
from homeassistant.helpers.typing import DiscoveryInfoType
import probatio

from . import const
from .client import CannotConnect, CommandError, ConnectTimeout, InvalidAuth, PrinterSession
from .const import (
    CONF_ACCESS_CODE,
    CONF_CERT_FINGERPRINT,
    CONF_HOST,
    CONF_PINNED_CERT,
    CONF_SERIAL,
    DOMAIN,
)
from .discovery import CONF_MODEL, CONF_NAME, SERIAL_RE, async_get_announcement, model_label
from .model import PrinterState
from .tls import CertificateReport, PrinterTLSError, TLSErrorKind, async_probe_printer

_LOGGER = logging.getLogger(__name__)

# The printer's MQTT port. A module global so that tests can reach a broker on another port; an
# entry stores a port only when it differs from the standard one.
MQTT_PORT: int = const.MQTT_PORT
# How long the printer may take to answer get_version once logged in.
VALIDATION_TIMEOUT: float = 10.0

ACCESS_CODE_RE: Final = re.compile(r"[0-9A-Za-z]{8}")

# Reconfigure field, shown only while a certificate is pinned: go back to the bundled CAs.
CONF_REMOVE_PIN: Final = "remove_pin"

_PASSWORD: Final = TextSelector(TextSelectorConfig(type=TextSelectorType.PASSWORD))

USER_SCHEMA: Final = probatio.Schema(
    {
        probatio.Required(CONF_HOST): TextSelector(),
        probatio.Required(CONF_SERIAL): TextSelector(),
        probatio.Required(CONF_ACCESS_CODE): _PASSWORD,
    }
)
ACCESS_CODE_SCHEMA: Final = probatio.Schema({probatio.Required(CONF_ACCESS_CODE): _PASSWORD})
RECONFIGURE_SCHEMA: Final = probatio.Schema(
    {
        probatio.Required(CONF_HOST): TextSelector(),
        # Empty keeps the current code, so that a new address does not need it typed again.
        probatio.Optional(CONF_ACCESS_CODE): _PASSWORD,
    }
)
RECONFIGURE_PINNED_SCHEMA: Final = RECONFIGURE_SCHEMA.extend(
    {probatio.Optional(CONF_REMOVE_PIN, default=False): BooleanSelector()}
)


class FlowError(Exception):
    """A validation failure: a translation key under config.error plus its placeholders."""

    def __init__(self, key: str, **placeholders: str) -> None:
        """Remember what the form shows."""
        super().__init__(key)
        self.key = key
        self.placeholders = placeholders


@dataclass(frozen=True, slots=True)
class PrinterIdentity:
    """What a successful validation proved about the printer."""

    serial: str
    model: str
    certificate: CertificateReport


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


def _when(moment: datetime | None) -> str:
    return "unknown" if moment is None else moment.strftime("%Y-%m-%d %H:%M UTC")


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


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
            return FlowError("serial_mismatch", presented_serial=err.presented_serial, **where)
        case TLSErrorKind.SERIAL_MISMATCH:
            return FlowError("wrong_device", **where)
        case TLSErrorKind.UNTRUSTED_ISSUER:
            return FlowError(
                "untrusted_certificate",
                issuer=err.issuer or "unknown",
                fingerprint=err.fingerprint or "unknown",
                **where,
            )
        case TLSErrorKind.EXPIRED | TLSErrorKind.NOT_YET_VALID:
            return FlowError(
                f"certificate_{err.kind}",
                not_before=_when(err.not_before),
                not_after=_when(err.not_after),
                now=_when(datetime.now(UTC)),
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
        raise FlowError("serial_mismatch", presented_serial=reported, **where)
    model = state.model  # from get_version, else the serial's prefix
    return PrinterIdentity(
        serial=serial,
        model=model_label(model) if model else (state.product_name or "Bambu Lab"),
        certificate=certificate,
    )


class BambuLanConfigFlow(ConfigFlow, domain=DOMAIN):
    """Add, reauthenticate and reconfigure Bambu Lab printers."""

    VERSION = 1

    def __init__(self) -> None:
        """Start with nothing discovered."""
        self._discovered: dict[str, str] = {}

    # --- adding a printer ------------------------------------------------------------------------

    @override
    async def async_step_user(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """Host, serial and access code typed in by the user."""
        errors: dict[str, str] = {}
        placeholders: dict[str, str] = {}
        if user_input is not None:
            host = user_input[CONF_HOST].strip()
            serial = user_input[CONF_SERIAL].strip().upper()
            access_code = user_input[CONF_ACCESS_CODE].strip()
            user_input = {**user_input, CONF_HOST: host, CONF_SERIAL: serial}
            if not SERIAL_RE.fullmatch(serial):
                errors[CONF_SERIAL] = "invalid_serial"
            if not ACCESS_CODE_RE.fullmatch(access_code):
                errors[CONF_ACCESS_CODE] = "invalid_access_code_format"
            if not errors:
                # A discovered flow for the same printer may be open: the user may finish here.
                await self.async_set_unique_id(serial, raise_on_progress=False)
                self._abort_if_unique_id_configured()
                try:
                    return await self._async_create_printer(host, serial, access_code)
                except FlowError as err:
                    errors["base"] = err.key
                    placeholders = err.placeholders
        return self.async_show_form(
            step_id="user",
            data_schema=self.add_suggested_values_to_schema(
                USER_SCHEMA, _keep_typed(user_input, errors)
            ),
            errors=errors,
            description_placeholders=placeholders,
        )

    @override
    async def async_step_integration_discovery(
        self, discovery_info: DiscoveryInfoType
    ) -> ConfigFlowResult:
        """A printer announced itself on the network (see discovery.py)."""
        host: str = discovery_info[CONF_HOST]
        serial: str = discovery_info[CONF_SERIAL]
        entry = await self.async_set_unique_id(serial)
        if entry is not None:
            await self._async_follow_address(entry, host)
            self._abort_if_unique_id_configured()
        self._discovered = {
            CONF_HOST: host,
            CONF_SERIAL: serial,
            CONF_MODEL: discovery_info.get(CONF_MODEL) or "Bambu Lab",
            CONF_NAME: discovery_info.get(CONF_NAME) or serial,
        }
        self.context["title_placeholders"] = {
            "name": f"{self._discovered[CONF_MODEL]} {self._discovered[CONF_NAME]}",
            "host": host,
        }
        return await self.async_step_discovery_confirm()

    async def _async_follow_address(self, entry: ConfigEntry, host: str) -> None:
        """Move a configured printer to its announced address (aborts the flow if it did).

        Only an entry configured by IP address follows: a host name tracks the printer by
        itself. An announcement proves nothing, so the printer must first pass a verified TLS
        handshake at the new address (no access code is sent for that).
        """
        current = entry.data.get(CONF_HOST)
        if current is None or current == host or not _is_address(current):
            return
        port = entry.data.get(CONF_PORT, MQTT_PORT)
        try:
            await async_probe_printer(
                host, port, entry.data[CONF_SERIAL], pinned_cert=entry.options.get(CONF_PINNED_CERT)
            )
        except PrinterTLSError as err:
            _LOGGER.debug("Not moving %s to %s: %s", entry.title, host, err)
            return
        _LOGGER.info("The printer %s moved from %s to %s", entry.title, current, host)
        self._abort_if_unique_id_configured(updates={CONF_HOST: host})

    async def async_step_discovery_confirm(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Confirm a discovered printer: only its access code is needed."""
        errors: dict[str, str] = {}
        placeholders: dict[str, str] = {}
        if user_input is not None:
            access_code = user_input[CONF_ACCESS_CODE].strip()
            if not ACCESS_CODE_RE.fullmatch(access_code):
                errors[CONF_ACCESS_CODE] = "invalid_access_code_format"
            else:
                try:
                    return await self._async_create_printer(
                        self._discovered[CONF_HOST], self._discovered[CONF_SERIAL], access_code
                    )
                except FlowError as err:
                    errors["base"] = err.key
                    placeholders = err.placeholders
        return self.async_show_form(
            step_id="discovery_confirm",
            data_schema=self.add_suggested_values_to_schema(
                ACCESS_CODE_SCHEMA, _keep_typed(user_input, errors)
            ),
            errors=errors,
            description_placeholders={**self._discovered, **placeholders},
        )

    async def _async_create_printer(
        self, host: str, serial: str, access_code: str
    ) -> ConfigFlowResult:
        """Validate, then create the entry (raises FlowError)."""
        identity = await async_validate_printer(host, MQTT_PORT, serial, access_code)
        # Another flow may have added the printer while this one was connecting.
        self._abort_if_unique_id_configured()
        name = self._discovered.get(CONF_NAME)
        if name is None and (announcement := async_get_announcement(self.hass, serial)):
            name = announcement.name
        data: dict[str, Any] = {
            CONF_HOST: host,
            CONF_SERIAL: serial,
            CONF_ACCESS_CODE: access_code,
            CONF_CERT_FINGERPRINT: identity.certificate.sha256,
        }
        if MQTT_PORT != const.MQTT_PORT:
            data[CONF_PORT] = MQTT_PORT
        return self.async_create_entry(title=f"{identity.model} {name or serial}", data=data)

    # --- existing printers -----------------------------------------------------------------------

    async def async_step_reauth(self, entry_data: Mapping[str, Any]) -> ConfigFlowResult:
        """The printer rejected the access code (it changes whenever LAN mode is toggled)."""
        return await self.async_step_reauth_confirm()

    async def async_step_reauth_confirm(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Ask for the new access code, prove it, reload the entry."""
        entry = self._get_reauth_entry()
        errors: dict[str, str] = {}
        placeholders = {CONF_HOST: entry.data[CONF_HOST]}
        if user_input is not None:
            access_code = user_input[CONF_ACCESS_CODE].strip()
            if not ACCESS_CODE_RE.fullmatch(access_code):
                errors[CONF_ACCESS_CODE] = "invalid_access_code_format"
            else:
                try:
                    identity = await _async_validate_entry(
                        entry, entry.data[CONF_HOST], access_code
                    )
                except FlowError as err:
                    errors["base"] = err.key
                    placeholders |= err.placeholders
                else:
                    # The printer was just proven again: its current leaf is the expected one.
                    return self.async_update_reload_and_abort(
                        entry,
                        data_updates={
                            CONF_ACCESS_CODE: access_code,
                            CONF_CERT_FINGERPRINT: identity.certificate.sha256,
                        },
                    )
        return self.async_show_form(
            step_id="reauth_confirm",
            data_schema=self.add_suggested_values_to_schema(
                ACCESS_CODE_SCHEMA, _keep_typed(user_input, errors)
            ),
            errors=errors,
            description_placeholders=placeholders,
        )

    async def async_step_reconfigure(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Change the address and/or the access code of a configured printer, or drop its pin."""
        entry = self._get_reconfigure_entry()
        pinned = bool(entry.options.get(CONF_PINNED_CERT))
        errors: dict[str, str] = {}
        placeholders = {"title": entry.title, CONF_SERIAL: entry.data[CONF_SERIAL]}
        if user_input is not None:
            host = user_input[CONF_HOST].strip()
            access_code = user_input.get(CONF_ACCESS_CODE, "").strip() or entry.data.get(
                CONF_ACCESS_CODE, ""
            )
            user_input = {**user_input, CONF_HOST: host}
            remove_pin = pinned and bool(user_input.get(CONF_REMOVE_PIN))
            if not ACCESS_CODE_RE.fullmatch(access_code):
                errors[CONF_ACCESS_CODE] = "invalid_access_code_format"
            else:
                try:
                    identity = await _async_validate_entry(
                        entry, host, access_code, remove_pin=remove_pin
                    )
                except FlowError as err:
                    if presented := err.placeholders.get("presented_serial"):
                        await self.async_set_unique_id(presented)
                        self._abort_if_unique_id_mismatch(
                            reason="wrong_printer", description_placeholders=err.placeholders
                        )
                    errors["base"] = err.key
                    placeholders |= err.placeholders
                else:
                    return self.async_update_reload_and_abort(
                        entry,
                        data_updates={
                            CONF_HOST: host,
                            CONF_ACCESS_CODE: access_code,
                            CONF_CERT_FINGERPRINT: identity.certificate.sha256,
                        },
                        options=_without_pin(entry.options) if remove_pin else entry.options,
                    )
        suggested = _keep_typed(user_input, errors) or {CONF_HOST: entry.data[CONF_HOST]}
        schema = RECONFIGURE_PINNED_SCHEMA if pinned else RECONFIGURE_SCHEMA
        return self.async_show_form(
            step_id="reconfigure",
            data_schema=self.add_suggested_values_to_schema(schema, suggested),
            errors=errors,
            description_placeholders=placeholders,
        )


async def _async_validate_entry(
    entry: ConfigEntry, host: str, access_code: str, *, remove_pin: bool = False
) -> PrinterIdentity:
    """Validate new settings of a configured printer (its serial and port stay).

    Its pin stays too unless it is being removed: then the printer must verify against the
    bundled CAs alone, so that removing the pin cannot strand a printer they do not cover.
    """
    return await async_validate_printer(
        host,
        entry.data.get(CONF_PORT, MQTT_PORT),
        entry.data[CONF_SERIAL],
        access_code,
        None if remove_pin else entry.options.get(CONF_PINNED_CERT),
    )


def _without_pin(options: Mapping[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in options.items() if key != CONF_PINNED_CERT}


def _keep_typed(
    user_input: dict[str, Any] | None, errors: Mapping[str, str]
) -> dict[str, Any] | None:
    """What the form shows again: what was typed, minus an access code the printer rejected."""
    if user_input is None or errors.get("base") != "invalid_auth":
        return user_input
    return {key: value for key, value in user_input.items() if key != CONF_ACCESS_CODE}
