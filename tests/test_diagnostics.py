"""Downloadable diagnostics: the certificate report, redacted, and no access code anywhere."""

from __future__ import annotations

from collections.abc import Callable
import json
import logging
from typing import Any

from homeassistant.config_entries import SOURCE_REAUTH, ConfigEntryState
from homeassistant.core import HomeAssistant
from homeassistant.helpers import device_registry as dr
import pytest
from pytest_homeassistant_custom_component.components.diagnostics import (
    _get_diagnostics_for_config_entry,
    get_diagnostics_for_config_entry,
    get_diagnostics_for_device,
)
from pytest_homeassistant_custom_component.syrupy import HomeAssistantSnapshotExtension
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator
from syrupy.assertion import SnapshotAssertion

from custom_components.bambu_lan import diagnostics
from custom_components.bambu_lan.const import CONF_PINNED_CERT, DOMAIN
from tests.test_certificate_health import (
    async_serve,
    async_setup_printer,
    certificate_state,
    wait_until,
)
from tests.virtual_printer.pki import TestCAs, issue_server
from tests.virtual_printer.printer import VirtualPrinter

REDACTED = "**REDACTED**"
# Values that differ between runs (generated keys, dates, ports, timing).
VOLATILE = frozenset(
    {
        "at",
        "cert_fingerprint",
        "checked_at",
        "connected_for_s",
        "current_fingerprint",
        "fingerprint",
        "last_message_age_s",
        "messages",
        "not_after",
        "not_before",
        "port",
        "recorded_fingerprint",
        "sha256",
        "state",  # the printer's own report: checked for redaction below, owned by model.py
    }
)


class _SnapshotExtension(HomeAssistantSnapshotExtension):
    """Snapshots live in tests/snapshots/ (syrupy 6 reads this attribute, not `dirname`)."""

    snapshot_dirname = "snapshots"


@pytest.fixture
def snapshot(snapshot: SnapshotAssertion) -> SnapshotAssertion:
    """Home Assistant's snapshot serializer, stored in tests/snapshots/."""
    return snapshot.use_extension(_SnapshotExtension)


def _stable(value: Any) -> Any:
    """The diagnostics with run-dependent values replaced by their type."""
    if isinstance(value, dict):
        return {
            key: f"<{type(item).__name__}>"
            if key in VOLATILE and item is not None
            else _stable(item)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [_stable(item) for item in value]
    return value


def _assert_no_secrets(text: str, printer: VirtualPrinter) -> None:
    assert printer.access_code not in text
    assert printer.serial.lower() not in text.lower()
    assert printer.host not in text


async def test_entry_diagnostics(
    hass: HomeAssistant,
    hass_client: ClientSessionGenerator,
    virtual_printer: Callable[..., VirtualPrinter],
    trust_test_cas: object,
    snapshot: SnapshotAssertion,
) -> None:
    """The whole report of a healthy connection; serial, host and code appear nowhere."""
    printer = virtual_printer("X1C", time_scale=0)
    entry = await async_setup_printer(hass, printer)
    data = await get_diagnostics_for_config_entry(hass, hass_client, entry)

    assert _stable(data) == snapshot
    _assert_no_secrets(json.dumps(data), printer)
    certificate = data["certificate"]
    assert isinstance(certificate, dict)
    assert certificate["health"] == "valid"
    assert certificate["current_fingerprint"] == printer.fingerprint
    assert certificate["fingerprint_matches_recorded"] is True
    report = certificate["report"]
    assert report["subject_cn"] == "matches the configured serial"
    assert [link["sha256"] for link in report["chain"]] == [
        issued.sha256 for issued in printer.identity.chain
    ]
    assert report["chain"][0]["subject"].endswith(f"CN={REDACTED}")
    assert data["connection"]["connects"] == 1  # type: ignore[index]
    state = data["state"]
    assert isinstance(state, dict)
    assert state["gcode_state"] == "IDLE"
    assert state["ipcam"]["rtsp_url"] == REDACTED  # type: ignore[index,call-overload]
    assert state["net"]["info"][0]["ip"] == REDACTED  # type: ignore[index,call-overload]

    # The download around it (system info, the domain's issues) leaks nothing either.
    download = await _get_diagnostics_for_config_entry(hass, hass_client, entry)
    text = json.dumps(download)
    assert printer.access_code not in text
    assert printer.serial not in text


async def test_device_diagnostics(
    hass: HomeAssistant,
    hass_client: ClientSessionGenerator,
    device_registry: dr.DeviceRegistry,
    virtual_printer: Callable[..., VirtualPrinter],
    trust_test_cas: object,
) -> None:
    """The printer's device offers the same report as its entry."""
    printer = virtual_printer("P1S", "v2", time_scale=0)
    entry = await async_setup_printer(hass, printer)
    device = device_registry.async_get_device_by_identifier(
        (DOMAIN, printer.serial), entry.entry_id
    )
    assert device is not None
    data = await get_diagnostics_for_device(hass, hass_client, entry, device)
    assert _stable(data) == _stable(
        await get_diagnostics_for_config_entry(hass, hass_client, entry)
    )
    _assert_no_secrets(json.dumps(data), printer)
    issuer_path = data["certificate"]["report"]["issuer_path"]  # type: ignore[index,call-overload]
    assert issuer_path == "Test BBL CA2 RSA via Test BBL Device CA N7-V2"


async def test_pin_and_last_failure(
    hass: HomeAssistant,
    hass_client: ClientSessionGenerator,
    virtual_printer: Callable[..., VirtualPrinter],
    trust_test_cas: object,
    fast_reconnect: None,
) -> None:
    """A pinned printer that presents another certificate: the pin and the failure, scrubbed."""
    printer = virtual_printer("X1C", "unknown_ca", time_scale=0)
    pinned = printer.fingerprint
    entry = await async_setup_printer(
        hass, printer, options={CONF_PINNED_CERT: printer.identity.leaf.pem.decode()}
    )
    assert entry.state is ConfigEntryState.LOADED
    printer.reissue_cert()
    await wait_until(lambda: certificate_state(hass, printer.serial) == "untrusted")

    data = await get_diagnostics_for_config_entry(hass, hass_client, entry)
    text = json.dumps(data)
    _assert_no_secrets(text, printer)
    assert "BEGIN CERTIFICATE" not in text  # pins are listed by fingerprint
    leaf = printer.identity.leaf.cert  # the re-issued one; the pin was its predecessor
    (pin,) = data["entry"]["pinned_certificates"]  # type: ignore[index,misc]
    assert pin["fingerprint"] == pinned
    assert pin["fingerprint"] != printer.fingerprint
    assert pin["issuer"].endswith("CN=Untrusted Test CA")
    assert pin["subject_cn"] == "matches the configured serial"
    assert pin["not_after"][:4] == str(leaf.not_valid_after_utc.year)
    failure = data["last_failure"]
    assert isinstance(failure, dict)
    assert failure["kind"] == "untrusted_issuer"
    assert failure["fingerprint"] == printer.fingerprint
    assert failure["pinned_fingerprint"] == pinned
    assert failure["presented_cn"] == "matches the configured serial"
    assert failure["pinnable"] is True
    assert REDACTED in failure["message"]
    assert data["certificate"]["health"] == "untrusted"  # type: ignore[index]
    assert data["open_issues"] == ["pin_mismatch"]
    assert data["connection"]["connected"] is False  # type: ignore[index]


async def test_entry_that_never_connected(
    hass: HomeAssistant,
    hass_client: ClientSessionGenerator,
    virtual_printer: Callable[..., VirtualPrinter],
    trust_test_cas: object,
) -> None:
    """Setup failed: the entry and its open issues are still there to read."""
    printer = virtual_printer("X1C", "self_signed", time_scale=0)
    entry = await async_setup_printer(hass, printer)
    data = await get_diagnostics_for_config_entry(hass, hass_client, entry)
    assert data["entry"]["state"] == "setup_retry"  # type: ignore[index]
    assert data["open_issues"] == ["untrusted"]
    assert "certificate" not in data
    _assert_no_secrets(json.dumps(data), printer)


async def test_debug_session_never_shows_the_access_code(
    hass: HomeAssistant,
    hass_client: ClientSessionGenerator,
    virtual_printer: Callable[..., VirtualPrinter],
    trust_test_cas: object,
    test_cas: TestCAs,
    fast_reconnect: None,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Connect, lose the printer, meet an untrusted and a re-issued certificate, a rejected
    code and a reauth, all at DEBUG: the code is in no log line, no diagnostics, no repr."""
    caplog.set_level(logging.DEBUG)
    printer = virtual_printer("X1C", time_scale=0)
    code = printer.access_code
    entry = await async_setup_printer(hass, printer)
    good = printer.identity
    coordinator = entry.runtime_data

    printer.stop_broker()
    await wait_until(lambda: certificate_state(hass, printer.serial) == "unreachable")
    printer.start_broker()
    await async_serve(printer, issue_server("unknown_ca", printer.serial, test_cas))
    await wait_until(lambda: certificate_state(hass, printer.serial) == "untrusted")
    untrusted = coordinator.tls_error
    await async_serve(printer, good)
    await wait_until(lambda: certificate_state(hass, printer.serial) == "valid")
    dumps = [json.dumps(await get_diagnostics_for_config_entry(hass, hass_client, entry))]

    printer.set_access_code("Other123")
    await wait_until(
        lambda: any(flow["context"]["source"] == SOURCE_REAUTH for flow in _flows(hass))
    )
    dumps.append(json.dumps(await get_diagnostics_for_config_entry(hass, hass_client, entry)))

    assert "Lost the connection" in caplog.text  # the failures really were logged
    assert any(
        record.levelno == logging.DEBUG and record.name.startswith("custom_components.bambu_lan")
        for record in caplog.records
    )
    assert "invalid access code" in dumps[-1]
    for text in (
        caplog.text,
        *dumps,
        repr(coordinator.session),
        repr(untrusted),
        str(untrusted),
        repr(entry.runtime_data),
    ):
        assert code not in text


def _flows(hass: HomeAssistant) -> list[Any]:
    return list(hass.config_entries.flow.async_progress_by_handler(DOMAIN))


async def test_unreadable_pin_and_a_closed_session(
    hass: HomeAssistant, virtual_printer: Callable[..., VirtualPrinter], trust_test_cas: object
) -> None:
    """Diagnostics describe what is there without failing on what is not."""
    printer = virtual_printer("P1S", time_scale=0)
    assert diagnostics._pins("not a certificate", printer.serial) == [
        {"error": "unreadable pinned certificate"}
    ]
    assert diagnostics._pattern(["", ""]).search("anything") is None
    entry = await async_setup_printer(hass, printer)
    coordinator = entry.runtime_data
    await hass.config_entries.async_unload(entry.entry_id)
    coordinator.certificate = None
    runtime = diagnostics._runtime(coordinator, printer.fingerprint)
    assert runtime["connection"] == {"connected": False}
    assert runtime["certificate"]["report"] is None
    assert runtime["certificate"]["current_fingerprint"] is None
    assert "fingerprint_matches_recorded" not in runtime["certificate"]
