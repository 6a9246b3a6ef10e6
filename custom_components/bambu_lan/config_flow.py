"""Config flow: add a printer (by hand or discovered), reauthenticate, reconfigure.

Nothing is stored before it is proven: every step opens a verified TLS connection bound to the
serial, logs in with the access code, asks the printer for its version and checks that the
printer's own serial is the one entered. That validation connection is closed before the entry's
own connection opens, because printers accept only a few clients at a time.

A new printer whose certificate names its serial but was issued by a CA we do not ship can be
added only through an explicit, narrow trust decision: the form then offers to review that one
certificate, and confirming pins exactly it (by its PEM, still bound to the serial).
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
import ipaddress
import logging
import re
from typing import Any, Final, Self, override

from cryptography import x509
from cryptography.x509.oid import NameOID
from homeassistant.config_entries import (
    ConfigEntry,
    ConfigEntryState,
    ConfigFlow,
    ConfigFlowResult,
    OptionsFlow,
)
from homeassistant.const import CONF_PORT
from homeassistant.core import callback
from homeassistant.data_entry_flow import AbortFlow
from homeassistant.helpers.selector import (
    BooleanSelector,
    TextSelector,
    TextSelectorConfig,
    TextSelectorType,
)
from homeassistant.helpers.typing import DiscoveryInfoType
import probatio

from . import const
from .const import (
    CONF_ACCESS_CODE,
    CONF_CA_VERIFIED,
    CONF_CERT_FINGERPRINT,
    CONF_HOST,
    CONF_PINNED_CERT,
    CONF_SERIAL,
    DOMAIN,
    MANUFACTURER,
    is_ca_verified,
)
from .discovery import CONF_MODEL, CONF_NAME, async_get_announcement
from .issues import display_text
from .options_flow import BambuOptionsFlow
from .printer.announce import SERIAL_RE
from .printer.hosts import normalize_host
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
    CertificateInfo,
    CertificateReport,
    PrinterTLSError,
    TLSErrorKind,
    async_probe_printer,
)

_LOGGER = logging.getLogger(__name__)

# The printer's MQTT port. A module global so that tests can reach a broker on another port; an
# entry stores a port only when it differs from the standard one.
MQTT_PORT: int = const.MQTT_PORT
# How long the printer may take to answer get_version once logged in.
VALIDATION_TIMEOUT: float = 10.0

ACCESS_CODE_RE: Final = re.compile(r"[0-9A-Za-z]{8}")

# Reconfigure field, shown only while a certificate is pinned: go back to the bundled CAs.
CONF_REMOVE_PIN: Final = "remove_pin"
# Add-printer field, shown only after an untrusted certificate for the serial: review it.
CONF_TRUST_CERTIFICATE: Final = "trust_certificate"

# Text from the network (certificate names, announcements) shown in descriptions, which the
# frontend renders as markdown: no markup characters, one line, short.

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
_TRUST_FIELD: Final = {probatio.Optional(CONF_TRUST_CERTIFICATE, default=False): BooleanSelector()}


class FlowError(Exception):
    """A validation failure: a translation key under config.error plus its placeholders."""

    def __init__(self, key: str, **placeholders: str) -> None:
        """Remember what the form shows."""
        super().__init__(key)
        self.key = key
        self.placeholders = placeholders
        # The presented certificate, when the user may choose to pin it.
        self.pinnable: PinnableCertificate | None = None


@dataclass(frozen=True, slots=True)
class PinnableCertificate:
    """An untrusted leaf whose CN is the serial: exactly what the user may pin."""

    pem: str
    cert: x509.Certificate
    info: CertificateInfo

    @classmethod
    def from_error(cls, err: PrinterTLSError) -> Self | None:
        """The leaf the error describes, if tls.py offers it (and it is the one described)."""
        if err.leaf_pem is None:
            return None
        try:
            cert = x509.load_pem_x509_certificate(err.leaf_pem.encode())
        except ValueError:
            return None
        info = CertificateInfo.from_cert(cert)
        return cls(err.leaf_pem, cert, info) if info.sha256 == err.fingerprint else None


@dataclass(frozen=True, slots=True)
class PinOffer:
    """What confirming the pin step validates: this certificate, for this printer."""

    host: str
    serial: str
    access_code: str
    certificate: PinnableCertificate
    origin: str  # the step that offered it, and that shows a failure

    def placeholders(self) -> dict[str, str]:
        """The facts the user decides on; names from the certificate are untrusted text."""
        info = self.certificate.info
        return {
            "host": self.host,
            "serial": self.serial,
            "subject": display_text(_name_text(self.certificate.cert.subject)),
            "issuer": display_text(_name_text(self.certificate.cert.issuer)),
            "not_before": _when(info.not_before),
            "not_after": _when(info.not_after),
            "key": f"{info.key_type} {info.key_size}",
            "fingerprint": info.sha256,
        }


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


def _name_text(name: x509.Name) -> str:
    """A distinguished name with its CN first, so that the display cap keeps the CN."""
    attributes = sorted(name, key=lambda attribute: attribute.oid != NameOID.COMMON_NAME)
    return ", ".join(attribute.rfc4514_string() for attribute in attributes)


def _when(moment: datetime | None) -> str:
    return "unknown" if moment is None else moment.strftime("%Y-%m-%d %H:%M UTC")


def _unreachable(entry: ConfigEntry) -> bool:
    """Whether the entry's printer cannot be reached at its configured address right now."""
    if entry.state is ConfigEntryState.SETUP_RETRY:
        return True
    if entry.state is ConfigEntryState.LOADED:
        unreachable: bool = entry.runtime_data.unreachable
        return unreachable
    return False


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
        raise FlowError("serial_mismatch", presented_serial=display_text(reported), **where)
    model = state.model  # from get_version, else the serial's prefix
    return PrinterIdentity(
        serial=serial,
        model=model_label(model) if model else (state.product_name or "Bambu Lab"),
        certificate=certificate,
    )


class BambuLanConfigFlow(ConfigFlow, domain=DOMAIN):
    """Add, reauthenticate and reconfigure Bambu Lab printers."""

    VERSION = 1
    # 1.2: entries record whether a bundled CA has verified the printer (CONF_CA_VERIFIED).
    MINOR_VERSION = 2

    @staticmethod
    @callback
    def async_get_options_flow(config_entry: ConfigEntry) -> OptionsFlow:
        """Filament prices (see options_flow.py)."""
        return BambuOptionsFlow()

    def __init__(self) -> None:
        """Start with nothing discovered and no certificate on offer."""
        self._discovered: dict[str, str] = {}
        # Set while the form on screen offers to pin the certificate the last attempt saw.
        self._offer: PinOffer | None = None
        self._checks: set[asyncio.Task[Any]] = set()

    async def _async_check[T](self, check: Coroutine[Any, Any, T]) -> T:
        """Run a network check that removing the flow (the dialog was closed) stops at once.

        Home Assistant does not cancel a step that is still running when its flow is removed:
        against an address that never answers, the check would hold its connection until its
        own timeout.
        """
        task = self.hass.async_create_task(check, f"{DOMAIN} flow check", eager_start=True)
        self._checks.add(task)
        try:
            return await task
        except asyncio.CancelledError:
            step = asyncio.current_task()
            if step is not None and step.cancelling():  # the step itself is being cancelled
                raise
            raise AbortFlow("flow_closed") from None
        finally:
            self._checks.discard(task)

    @callback
    @override
    def async_remove(self) -> None:
        """The flow was closed or finished: stop any check still connecting."""
        for check in self._checks:
            check.cancel()

    # --- adding a printer ------------------------------------------------------------------------

    @override
    async def async_step_user(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """Host, serial and access code typed in by the user."""
        errors: dict[str, str] = {}
        placeholders: dict[str, str] = {}
        offer, self._offer = self._offer, None
        if user_input is not None:
            host = normalize_host(user_input[CONF_HOST]) or ""
            serial = user_input[CONF_SERIAL].strip().upper()
            access_code = user_input[CONF_ACCESS_CODE].strip()
            if host:
                user_input = {**user_input, CONF_HOST: host}
            else:
                errors[CONF_HOST] = "invalid_host"
            user_input = {**user_input, CONF_SERIAL: serial}
            if not SERIAL_RE.fullmatch(serial):
                errors[CONF_SERIAL] = "invalid_serial"
            if not ACCESS_CODE_RE.fullmatch(access_code):
                errors[CONF_ACCESS_CODE] = "invalid_access_code_format"
            if not errors:
                # A discovered flow for the same printer may be open: the user may finish here.
                await self.async_set_unique_id(serial, raise_on_progress=False)
                self._abort_if_unique_id_configured()
                # The offer holds only for the printer it was made for.
                if (
                    user_input.get(CONF_TRUST_CERTIFICATE)
                    and offer is not None
                    and (offer.host, offer.serial) == (host, serial)
                ):
                    self._offer = replace(offer, access_code=access_code)
                    return await self.async_step_pin_certificate()
                try:
                    return await self._async_create_printer(host, serial, access_code)
                except FlowError as err:
                    errors["base"] = err.key
                    placeholders = err.placeholders
                    self._offer = _offer(err, host, serial, access_code, "user")
        return self._async_show_user_form(user_input, errors, placeholders)

    def _async_show_user_form(
        self,
        user_input: dict[str, Any] | None,
        errors: dict[str, str],
        placeholders: dict[str, str],
    ) -> ConfigFlowResult:
        schema = USER_SCHEMA.extend(_TRUST_FIELD) if self._offer else USER_SCHEMA
        return self.async_show_form(
            step_id="user",
            data_schema=self.add_suggested_values_to_schema(
                schema, _keep_typed(user_input, errors)
            ),
            errors=errors,
            description_placeholders=self._with_offer(placeholders),
        )

    def _with_offer(self, placeholders: dict[str, str]) -> dict[str, str]:
        """The offered certificate's fingerprint, for the trust field's description."""
        if self._offer is None:
            return placeholders
        return placeholders | {"fingerprint": self._offer.certificate.info.sha256}

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
        # Anyone on the network can announce any name: shown only as plain text.
        self._discovered = {
            CONF_HOST: host,
            CONF_SERIAL: serial,
            CONF_MODEL: display_text(discovery_info.get(CONF_MODEL) or "") or "Bambu Lab",
            CONF_NAME: display_text(discovery_info.get(CONF_NAME) or "") or serial,
        }
        self.context["title_placeholders"] = {
            "name": f"{self._discovered[CONF_MODEL]} {self._discovered[CONF_NAME]}",
            "host": host,
        }
        return await self.async_step_discovery_confirm()

    async def _async_follow_address(self, entry: ConfigEntry, host: str) -> None:
        """Move a configured printer to its announced address (aborts the flow if it did).

        Only an entry configured by IP address follows: a host name tracks the printer by
        itself. Only a printer that cannot be reached where it is follows (its session is down
        and the last reconnect failed, or its setup is retrying). An announcement proves
        nothing, so the printer must first pass a verified TLS handshake at the new address (no
        access code is sent for that).
        """
        current = entry.data.get(CONF_HOST)
        if current is None or current == host or not _is_address(current):
            return
        if not _unreachable(entry):
            # A printer that answers where it is stays there: otherwise a forged announcement
            # could move it behind a relay that forwards to it and cuts it off at will.
            _LOGGER.debug("Not moving %s to %s: it answers at %s", entry.title, host, current)
            return
        port = entry.data.get(CONF_PORT, MQTT_PORT)
        try:
            await self._async_check(
                async_probe_printer(
                    host,
                    port,
                    entry.data[CONF_SERIAL],
                    pinned_cert=entry.options.get(CONF_PINNED_CERT),
                )
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
        offer, self._offer = self._offer, None
        if user_input is not None:
            access_code = user_input[CONF_ACCESS_CODE].strip()
            host, serial = self._discovered[CONF_HOST], self._discovered[CONF_SERIAL]
            if not ACCESS_CODE_RE.fullmatch(access_code):
                errors[CONF_ACCESS_CODE] = "invalid_access_code_format"
            elif user_input.get(CONF_TRUST_CERTIFICATE) and offer is not None:
                self._offer = replace(offer, access_code=access_code)
                return await self.async_step_pin_certificate()
            else:
                try:
                    return await self._async_create_printer(host, serial, access_code)
                except FlowError as err:
                    errors["base"] = err.key
                    placeholders = err.placeholders
                    self._offer = _offer(err, host, serial, access_code, "discovery_confirm")
        return self._async_show_discovery_form(user_input, errors, placeholders)

    def _async_show_discovery_form(
        self,
        user_input: dict[str, Any] | None,
        errors: dict[str, str],
        placeholders: dict[str, str],
    ) -> ConfigFlowResult:
        schema = ACCESS_CODE_SCHEMA.extend(_TRUST_FIELD) if self._offer else ACCESS_CODE_SCHEMA
        return self.async_show_form(
            step_id="discovery_confirm",
            data_schema=self.add_suggested_values_to_schema(
                schema, _keep_typed(user_input, errors)
            ),
            errors=errors,
            description_placeholders=self._with_offer({**self._discovered, **placeholders}),
        )

    async def async_step_pin_certificate(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Show the one certificate on offer; on confirmation add the printer with it pinned.

        The validation connection trusts exactly this certificate (tls.py still requires its
        CN to be the serial), so a printer presenting any other one is refused before the
        access code is sent; the form it came from then explains the new failure.
        """
        offer = self._offer
        assert offer is not None  # reachable only from a form that made an offer
        if user_input is None:
            return self.async_show_form(
                step_id="pin_certificate",
                data_schema=probatio.Schema({}),
                description_placeholders=offer.placeholders(),
            )
        self._offer = None
        try:
            return await self._async_create_printer(
                offer.host, offer.serial, offer.access_code, offer.certificate.pem
            )
        except FlowError as err:
            self._offer = _offer(err, offer.host, offer.serial, offer.access_code, offer.origin)
            errors = {"base": err.key}
            if offer.origin == "user":
                typed = {
                    CONF_HOST: offer.host,
                    CONF_SERIAL: offer.serial,
                    CONF_ACCESS_CODE: offer.access_code,
                }
                return self._async_show_user_form(typed, errors, err.placeholders)
            typed = {CONF_ACCESS_CODE: offer.access_code}
            return self._async_show_discovery_form(typed, errors, err.placeholders)

    async def _async_create_printer(
        self, host: str, serial: str, access_code: str, pinned_cert: str | None = None
    ) -> ConfigFlowResult:
        """Validate, then create the entry (raises FlowError)."""
        identity = await self._async_check(
            async_validate_printer(host, MQTT_PORT, serial, access_code, pinned_cert)
        )
        # Another flow may have added the printer while this one was connecting.
        self._abort_if_unique_id_configured()
        name = self._discovered.get(CONF_NAME)
        if name == serial:
            name = None  # the serial stood in for a missing name in the discovery dialog
        if name is None and (announcement := async_get_announcement(self.hass, serial)):
            name = display_text(announcement.name) or None
        data: dict[str, Any] = {
            CONF_HOST: host,
            CONF_SERIAL: serial,
            CONF_ACCESS_CODE: access_code,
            CONF_CERT_FINGERPRINT: identity.certificate.sha256,
            CONF_CA_VERIFIED: pinned_cert is None,
        }
        if MQTT_PORT != const.MQTT_PORT:
            data[CONF_PORT] = MQTT_PORT
        return self.async_create_entry(
            title=name or self._default_title(identity),
            data=data,
            options={CONF_PINNED_CERT: pinned_cert} if pinned_cert else None,
        )

    def _default_title(self, identity: PrinterIdentity) -> str:
        """ "Bambu Lab <model>"; a short serial suffix only if another printer has that name.

        The full serial is on the device page; the entry title is the device's name.
        """
        model = identity.model
        title = model if model.startswith(MANUFACTURER) else f"{MANUFACTURER} {model}"
        taken = {entry.title for entry in self._async_current_entries(include_ignore=False)}
        return f"{title} {identity.serial[-4:]}" if title in taken else title

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
                    await self._async_check(
                        _async_validate_entry(entry, entry.data[CONF_HOST], access_code)
                    )
                except FlowError as err:
                    errors["base"] = err.key
                    placeholders |= err.placeholders
                else:
                    # The recorded fingerprint stays: a changed certificate that still verifies
                    # is reported by the certificate-changed repair, not accepted in passing.
                    return self.async_update_reload_and_abort(
                        entry, data_updates={CONF_ACCESS_CODE: access_code}
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
        """Change the address and/or the access code of a configured printer, or its pin.

        A printer that a bundled CA never verified (it is pinned) may get another certificate,
        e.g. after a factory reset: the form then offers to review it, and pinning it needs the
        access code typed again. A printer a bundled CA has verified is never offered a pin.
        """
        entry = self._get_reconfigure_entry()
        pinned = bool(entry.options.get(CONF_PINNED_CERT))
        errors: dict[str, str] = {}
        placeholders: dict[str, str] = {}
        offer, self._offer = self._offer, None
        if user_input is not None:
            host = normalize_host(user_input[CONF_HOST]) or ""
            typed_code = user_input.get(CONF_ACCESS_CODE, "").strip()
            access_code = typed_code or entry.data.get(CONF_ACCESS_CODE, "")
            if host:
                user_input = {**user_input, CONF_HOST: host}
            remove_pin = pinned and bool(user_input.get(CONF_REMOVE_PIN))
            if not host:
                errors[CONF_HOST] = "invalid_host"
            elif not ACCESS_CODE_RE.fullmatch(access_code):
                errors[CONF_ACCESS_CODE] = "invalid_access_code_format"
            elif user_input.get(CONF_TRUST_CERTIFICATE) and offer and offer.host == host:
                if not typed_code:
                    # Trusting another certificate is a new decision: it needs the code again.
                    errors[CONF_ACCESS_CODE] = "access_code_required"
                    self._offer = offer
                else:
                    self._offer = replace(offer, access_code=typed_code)
                    return await self.async_step_reconfigure_pin()
            else:
                try:
                    identity = await self._async_check(
                        _async_validate_entry(entry, host, access_code, remove_pin=remove_pin)
                    )
                except FlowError as err:
                    if presented := err.placeholders.get("presented_serial"):
                        await self.async_set_unique_id(presented)
                        self._abort_if_unique_id_mismatch(
                            reason="wrong_printer", description_placeholders=err.placeholders
                        )
                    errors["base"] = err.key
                    placeholders = err.placeholders
                    if not is_ca_verified(entry.data, entry.options):
                        serial = entry.data[CONF_SERIAL]
                        self._offer = _offer(err, host, serial, access_code, "reconfigure")
                else:
                    updates = {CONF_HOST: host, CONF_ACCESS_CODE: access_code}
                    if remove_pin:
                        # The user changed the trust decision: the leaf that just verified
                        # against the bundled CAs becomes the expected one, and the printer is
                        # proven for good. Otherwise the recorded fingerprint stays (see reauth).
                        updates[CONF_CERT_FINGERPRINT] = identity.certificate.sha256
                        updates[CONF_CA_VERIFIED] = True
                    return self.async_update_reload_and_abort(
                        entry,
                        data_updates=updates,
                        options=_without_pin(entry.options) if remove_pin else entry.options,
                    )
        return self._async_show_reconfigure_form(entry, user_input, errors, placeholders)

    def _async_show_reconfigure_form(
        self,
        entry: ConfigEntry,
        user_input: dict[str, Any] | None,
        errors: dict[str, str],
        placeholders: dict[str, str],
    ) -> ConfigFlowResult:
        suggested = _keep_typed(user_input, errors) or {CONF_HOST: entry.data[CONF_HOST]}
        pinned = bool(entry.options.get(CONF_PINNED_CERT))
        schema = RECONFIGURE_PINNED_SCHEMA if pinned else RECONFIGURE_SCHEMA
        if self._offer is not None:
            schema = schema.extend(_TRUST_FIELD)
        return self.async_show_form(
            step_id="reconfigure",
            data_schema=self.add_suggested_values_to_schema(schema, suggested),
            errors=errors,
            description_placeholders=self._with_offer(
                {"title": entry.title, CONF_SERIAL: entry.data[CONF_SERIAL], **placeholders}
            ),
        )

    async def async_step_reconfigure_pin(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Show the new certificate next to the pinned one; on confirmation pin the new one.

        The access code goes only to a printer presenting exactly the certificate shown.
        """
        entry = self._get_reconfigure_entry()
        offer = self._offer
        assert offer is not None  # reachable only from a reconfigure form that made an offer
        if user_input is None:
            return self.async_show_form(
                step_id="reconfigure_pin",
                data_schema=probatio.Schema({}),
                description_placeholders=offer.placeholders()
                | {
                    "title": entry.title,
                    "pinned_fingerprint": entry.data.get(CONF_CERT_FINGERPRINT) or "-",
                },
            )
        self._offer = None
        try:
            identity = await self._async_check(
                async_validate_printer(
                    offer.host,
                    entry.data.get(CONF_PORT, MQTT_PORT),
                    offer.serial,
                    offer.access_code,
                    offer.certificate.pem,
                )
            )
        except FlowError as err:
            self._offer = _offer(err, offer.host, offer.serial, offer.access_code, offer.origin)
            typed = {CONF_HOST: offer.host, CONF_ACCESS_CODE: offer.access_code}
            return self._async_show_reconfigure_form(
                entry, typed, {"base": err.key}, err.placeholders
            )
        return self.async_update_reload_and_abort(
            entry,
            data_updates={
                CONF_HOST: offer.host,
                CONF_ACCESS_CODE: offer.access_code,
                CONF_CERT_FINGERPRINT: identity.certificate.sha256,
                CONF_CA_VERIFIED: False,
            },
            options={**entry.options, CONF_PINNED_CERT: offer.certificate.pem},
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


def _offer(
    err: FlowError, host: str, serial: str, access_code: str, origin: str
) -> PinOffer | None:
    """The pin to offer after a failed attempt, if its certificate may be pinned."""
    if err.pinnable is None:
        return None
    return PinOffer(host, serial, access_code, err.pinnable, origin)


def _keep_typed(
    user_input: dict[str, Any] | None, errors: Mapping[str, str]
) -> dict[str, Any] | None:
    """What the form shows again: what was typed, minus an access code the printer rejected.

    Trusting a certificate is never pre-ticked: each offer is a new decision.
    """
    if user_input is None:
        return None
    dropped = {CONF_TRUST_CERTIFICATE}
    if errors.get("base") == "invalid_auth":
        dropped.add(CONF_ACCESS_CODE)
    return {key: value for key, value in user_input.items() if key not in dropped}
