"""Config flow: add a printer (by hand or discovered), reauthenticate, reconfigure.

Nothing is stored before it is proven (flow_validation.py): every step opens a verified TLS
connection bound to the serial, logs in with the access code, asks the printer for its version
and checks that the printer's own serial is the one entered. That validation connection is closed
before the entry's own connection opens, because printers accept only a few clients at a time.

A new printer whose certificate names its serial but was issued by a CA we do not ship can be
added only through an explicit, narrow trust decision: the form then offers to review that one
certificate, and confirming pins exactly it (by its PEM, still bound to the serial; see
flow_pin.py). The forms are in flow_schemas.py, the cancellation of a closed flow's checks in
flow_checks.py.
"""

from __future__ import annotations

from collections.abc import Coroutine, Mapping
from dataclasses import replace
import logging
from typing import Any, override

from homeassistant.config_entries import (
    ConfigEntry,
    ConfigFlow,
    ConfigFlowResult,
    OptionsFlow,
)
from homeassistant.const import CONF_PORT
from homeassistant.core import callback
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
    is_ca_verified,
)
from .discovery import CONF_MODEL, CONF_NAME, async_get_announcement
from .flow_address import may_follow
from .flow_checks import FlowChecks
from .flow_pin import PinOffer, unpinned_data, without_pin
from .flow_schemas import (
    ACCESS_CODE_RE,
    ACCESS_CODE_SCHEMA,
    CONF_REMOVE_PIN,
    CONF_TRUST_CERTIFICATE,
    RECONFIGURE_PINNED_SCHEMA,
    RECONFIGURE_SCHEMA,
    TRUST_FIELD,
    USER_SCHEMA,
    TypedPrinter,
    discovered_fields,
    keep_typed,
)
from .flow_validation import FlowError, async_validate_entry, async_validate_printer
from .issues import display_text
from .options_flow import BambuOptionsFlow
from .printer.hosts import normalize_host
from .printer.tls import PrinterTLSError, async_probe_printer

_LOGGER = logging.getLogger(__name__)

# The printer's MQTT port. A module global so that tests can reach a broker on another port; an
# entry stores a port only when it differs from the standard one.
MQTT_PORT: int = const.MQTT_PORT


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
        self._checks = FlowChecks()

    async def _async_check[T](self, check: Coroutine[Any, Any, T]) -> T:
        """Run a network check that removing the flow (the dialog was closed) stops at once."""
        return await self._checks.async_run(self.hass, check)

    @callback
    @override
    def async_remove(self) -> None:
        """The flow was closed or finished: stop any check still connecting."""
        self._checks.cancel_all()

    # --- adding a printer ------------------------------------------------------------------------

    @override
    async def async_step_user(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """Host, serial and access code typed in by the user."""
        errors: dict[str, str] = {}
        placeholders: dict[str, str] = {}
        offer, self._offer = self._offer, None
        if user_input is not None:
            typed = TypedPrinter.read(user_input)
            host, serial, access_code = typed.host, typed.serial, typed.access_code
            user_input, errors = typed.shown, typed.errors
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
                    self._offer = err.offer(host, serial, access_code, "user")
        return self._async_show_user_form(user_input, errors, placeholders)

    def _async_show_user_form(
        self,
        user_input: dict[str, Any] | None,
        errors: dict[str, str],
        placeholders: dict[str, str],
    ) -> ConfigFlowResult:
        schema = USER_SCHEMA.extend(TRUST_FIELD) if self._offer else USER_SCHEMA
        return self.async_show_form(
            step_id="user",
            data_schema=self.add_suggested_values_to_schema(schema, keep_typed(user_input, errors)),
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
        self._discovered = discovered_fields(discovery_info)
        self.context["title_placeholders"] = {
            "name": f"{self._discovered[CONF_MODEL]} {self._discovered[CONF_NAME]}",
            "host": host,
        }
        return await self.async_step_discovery_confirm()

    async def _async_follow_address(self, entry: ConfigEntry, host: str) -> None:
        """Move a configured printer to its announced address (aborts the flow if it did).

        See flow_address.py for when it may; it must first pass a verified TLS handshake at
        the new address (no access code is sent for that).
        """
        if not may_follow(entry, host):
            return
        current = entry.data[CONF_HOST]
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
                    self._offer = err.offer(host, serial, access_code, "discovery_confirm")
        return self._async_show_discovery_form(user_input, errors, placeholders)

    def _async_show_discovery_form(
        self,
        user_input: dict[str, Any] | None,
        errors: dict[str, str],
        placeholders: dict[str, str],
    ) -> ConfigFlowResult:
        schema = ACCESS_CODE_SCHEMA.extend(TRUST_FIELD) if self._offer else ACCESS_CODE_SCHEMA
        return self.async_show_form(
            step_id="discovery_confirm",
            data_schema=self.add_suggested_values_to_schema(schema, keep_typed(user_input, errors)),
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
            self._offer = err.offer(offer.host, offer.serial, offer.access_code, offer.origin)
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
            title=name or identity.title(self._taken_titles()),
            data=data,
            options={CONF_PINNED_CERT: pinned_cert} if pinned_cert else None,
        )

    def _taken_titles(self) -> set[str]:
        return {entry.title for entry in self._async_current_entries(include_ignore=False)}

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
                        async_validate_entry(entry, entry.data[CONF_HOST], access_code, MQTT_PORT)
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
                ACCESS_CODE_SCHEMA, keep_typed(user_input, errors)
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
                        async_validate_entry(
                            entry, host, access_code, MQTT_PORT, remove_pin=remove_pin
                        )
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
                        self._offer = err.offer(host, serial, access_code, "reconfigure")
                else:
                    updates = {CONF_HOST: host, CONF_ACCESS_CODE: access_code}
                    if remove_pin:  # otherwise the recorded fingerprint stays (see reauth)
                        updates |= unpinned_data(identity.certificate.sha256)
                    return self.async_update_reload_and_abort(
                        entry,
                        data_updates=updates,
                        options=without_pin(entry.options) if remove_pin else entry.options,
                    )
        return self._async_show_reconfigure_form(entry, user_input, errors, placeholders)

    def _async_show_reconfigure_form(
        self,
        entry: ConfigEntry,
        user_input: dict[str, Any] | None,
        errors: dict[str, str],
        placeholders: dict[str, str],
    ) -> ConfigFlowResult:
        suggested = keep_typed(user_input, errors) or {CONF_HOST: entry.data[CONF_HOST]}
        pinned = bool(entry.options.get(CONF_PINNED_CERT))
        schema = RECONFIGURE_PINNED_SCHEMA if pinned else RECONFIGURE_SCHEMA
        if self._offer is not None:
            schema = schema.extend(TRUST_FIELD)
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
            self._offer = err.offer(offer.host, offer.serial, offer.access_code, offer.origin)
            typed = {CONF_HOST: offer.host, CONF_ACCESS_CODE: offer.access_code}
            return self._async_show_reconfigure_form(
                entry, typed, {"base": err.key}, err.placeholders
            )
        return self.async_update_reload_and_abort(
            entry,
            data_updates=offer.pinned_data(identity.certificate.sha256),
            options={**entry.options, CONF_PINNED_CERT: offer.certificate.pem},
        )
