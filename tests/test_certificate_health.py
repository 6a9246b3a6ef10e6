"""Certificate health: the pure evaluation, and every state reached over real TLS.

The live tests run the integration against the virtual printer and change what it presents
(hostile profiles, re-issued and short-lived leaves) while Home Assistant stays connected or keeps
reconnecting; the sensors must say what happened and the matching repair issue must come and go.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
import json
from pathlib import Path
from string import Formatter
from typing import Any
from unittest.mock import patch

from cryptography.x509.oid import NameOID
from homeassistant.config_entries import ConfigEntryState
from homeassistant.const import STATE_UNAVAILABLE, EntityCategory
from homeassistant.core import HomeAssistant
from homeassistant.helpers import entity_registry as er, issue_registry as ir
from homeassistant.util import dt as dt_util
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_fire_time_changed

from custom_components.bambu_lan.const import DOMAIN
from custom_components.bambu_lan.printer.health import (
    CertificateHealth,
    CertificateIssue,
    certificate_issue,
    evaluate_health,
    is_conclusive,
)
from custom_components.bambu_lan.printer.tls import (
    CertificateInfo,
    CertificateReport,
    PrinterTLSError,
    TLSErrorKind,
)
from tests.helpers import async_setup_printer, wait_until
from tests.virtual_printer.pki import ServerIdentity, TestCAs, issue_server
from tests.virtual_printer.printer import VirtualPrinter

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
RECORDED = "ab" * 32
DIAGNOSTIC_KEYS = ("certificate", "certificate_expires", "certificate_issuer")
TRANSLATIONS = Path(__file__).parents[1] / "custom_components/bambu_lan/translations/en.json"
HIDDEN_KEYS = ("certificate_fingerprint", "certificate_tls_version", "certificate_cipher")

# --- helpers shared with test_repairs.py and test_diagnostics.py ----------------------------------


def sensor_id(hass: HomeAssistant, serial: str, key: str) -> str:
    """The entity id of one of the printer's sensors."""
    entity_id = er.async_get(hass).async_get_entity_id("sensor", DOMAIN, f"{serial}_{key}")
    assert entity_id is not None, key
    return entity_id


async def async_serve(printer: VirtualPrinter, identity: ServerIdentity) -> None:
    """Make the printer present another certificate chain (its broker restarts)."""
    printer.serve(identity)


def certificate_state(hass: HomeAssistant, serial: str) -> str:
    """The certificate sensor's state."""
    state = hass.states.get(sensor_id(hass, serial, "certificate"))
    assert state is not None
    return state.state


def open_issues(hass: HomeAssistant, entry: MockConfigEntry) -> dict[str, ir.IssueEntry]:
    """The entry's open repair issues, by translation key."""
    return {
        issue.translation_key: issue
        for (domain, issue_id), issue in ir.async_get(hass).issues.items()
        if domain == DOMAIN and issue_id.endswith(entry.entry_id) and issue.translation_key
    }


def issue_strings() -> dict[str, Any]:
    """The "issues" subtree of translations/en.json."""
    issues: dict[str, Any] = json.loads(TRANSLATIONS.read_text(encoding="utf-8"))["issues"]
    return issues


def placeholder_fields(*texts: str) -> set[str]:
    """The {placeholders} a text uses."""
    return {name for text in texts for _, name, _, _ in Formatter().parse(text) if name}


def assert_issue_text(issue: ir.IssueEntry) -> None:
    """The issue's text exists and every placeholder it uses is provided."""
    text = issue_strings()[issue.translation_key or ""]
    # A fixable issue's text is its fix flow's (filled in by the flow): here only the title.
    used = placeholder_fields(text["title"], text.get("description", ""))
    assert ("description" in text) is not issue.is_fixable, issue.translation_key
    assert used <= set(issue.translation_placeholders or {}), issue.translation_key


def short_lived(
    cas: TestCAs, serial: str, lifetime: timedelta, profile: str = "legacy"
) -> ServerIdentity:
    """A leaf for `serial` that expires `lifetime` from now (the CAs' issuance span is 10 y)."""
    return issue_server(profile, serial, cas, now=datetime.now(UTC) + lifetime - 3650 * DAY)


DAY = timedelta(days=1)
SECOND = timedelta(seconds=1)

# --- the pure evaluation --------------------------------------------------------------------------


def _report(*, not_after: datetime = NOW + 400 * DAY, sha256: str = RECORDED) -> CertificateReport:
    leaf = CertificateInfo(
        subject="CN=01P00A000000001",
        issuer="CN=BBL CA",
        not_before=NOW - DAY,
        not_after=not_after,
        key_type="RSA",
        key_size=2048,
        sha256=sha256,
    )
    return CertificateReport(
        subject_cn="01P00A000000001",
        issuer_cn="BBL CA",
        chain=(leaf,),
        not_before=leaf.not_before,
        not_after=not_after,
        days_left=(not_after - NOW) // DAY,
        sha256=sha256,
        key_type="RSA",
        key_size=2048,
        tls_version="TLSv1.2",
        cipher="ECDHE-RSA-AES256-GCM-SHA384",
        checked_at=NOW,
        anchor="BBL CA",
        issuer_path="BBL CA",
    )


@pytest.mark.parametrize(
    ("left", "expected"),
    [
        (400 * DAY, CertificateHealth.VALID),
        (30 * DAY, CertificateHealth.VALID),
        (30 * DAY - timedelta(seconds=1), CertificateHealth.EXPIRING_SOON),
        (timedelta(seconds=1), CertificateHealth.EXPIRING_SOON),
        (timedelta(0), CertificateHealth.EXPIRED),
        (-DAY, CertificateHealth.EXPIRED),
    ],
)
def test_expiry_countdown(left: timedelta, expected: CertificateHealth) -> None:
    """Fewer than 30 whole days left is expiring soon; the end itself is expired."""
    assert evaluate_health(_report(not_after=NOW + left), RECORDED, None, NOW) is expected


def test_changed_fingerprint_and_precedence() -> None:
    """A different leaf that still verifies is reported, but expiry outranks it."""
    other = "cd" * 32
    assert evaluate_health(_report(sha256=other), RECORDED, None, NOW) is CertificateHealth.CHANGED
    assert evaluate_health(_report(), RECORDED.upper(), None, NOW) is CertificateHealth.VALID
    # Entries without a recorded fingerprint cannot tell a change.
    assert evaluate_health(_report(sha256=other), None, None, NOW) is CertificateHealth.VALID
    soon = _report(sha256=other, not_after=NOW + 3 * DAY)
    assert evaluate_health(soon, RECORDED, None, NOW) is CertificateHealth.CHANGED
    gone = _report(sha256=other, not_after=NOW - DAY)
    assert evaluate_health(gone, RECORDED, None, NOW) is CertificateHealth.EXPIRED


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        (TLSErrorKind.UNTRUSTED_ISSUER, CertificateHealth.UNTRUSTED),
        (TLSErrorKind.SERIAL_MISMATCH, CertificateHealth.SERIAL_MISMATCH),
        (TLSErrorKind.EXPIRED, CertificateHealth.EXPIRED),
        (TLSErrorKind.NOT_YET_VALID, CertificateHealth.NOT_YET_VALID),
        (TLSErrorKind.PROTOCOL, CertificateHealth.UNREACHABLE),
        (TLSErrorKind.UNREACHABLE, CertificateHealth.UNREACHABLE),
    ],
)
def test_failures_outrank_the_last_report(kind: TLSErrorKind, expected: CertificateHealth) -> None:
    """The last failure describes the present; the report is from before it."""
    error = PrinterTLSError(kind, host="192.0.2.1", port=8883)
    assert evaluate_health(_report(), RECORDED, error, NOW) is expected
    assert evaluate_health(None, None, error, NOW) is expected


def test_disconnected_and_unknown() -> None:
    """No link and no failure: unreachable; nothing seen yet: no state at all."""
    health = evaluate_health(_report(), RECORDED, None, NOW, connected=False)
    assert health is CertificateHealth.UNREACHABLE
    assert evaluate_health(None, RECORDED, None, NOW) is None


def _error(kind: TLSErrorKind, **details: Any) -> PrinterTLSError:
    return PrinterTLSError(kind, host="192.0.2.1", port=8883, **details)


@pytest.mark.parametrize(
    ("health", "error", "issue"),
    [
        (CertificateHealth.VALID, None, None),
        (CertificateHealth.CHANGED, None, CertificateIssue.CHANGED),
        (CertificateHealth.EXPIRING_SOON, None, CertificateIssue.EXPIRING_SOON),
        (CertificateHealth.EXPIRED, None, CertificateIssue.EXPIRED),
        (
            CertificateHealth.UNTRUSTED,
            _error(TLSErrorKind.UNTRUSTED_ISSUER, leaf_pem="PEM"),
            CertificateIssue.UNTRUSTED,
        ),
        (
            CertificateHealth.UNTRUSTED,
            _error(TLSErrorKind.UNTRUSTED_ISSUER),
            CertificateIssue.UNTRUSTED_UNPINNABLE,
        ),
        (
            CertificateHealth.UNTRUSTED,
            _error(TLSErrorKind.UNTRUSTED_ISSUER, leaf_pem="PEM", pinned_fingerprint="ab"),
            CertificateIssue.PIN_MISMATCH,
        ),
        (
            CertificateHealth.SERIAL_MISMATCH,
            _error(TLSErrorKind.SERIAL_MISMATCH),
            CertificateIssue.SERIAL_MISMATCH,
        ),
        (
            CertificateHealth.NOT_YET_VALID,
            _error(TLSErrorKind.NOT_YET_VALID),
            CertificateIssue.NOT_YET_VALID,
        ),
        (
            CertificateHealth.UNREACHABLE,
            _error(TLSErrorKind.PROTOCOL),
            CertificateIssue.HANDSHAKE_FAILED,
        ),
    ],
)
def test_issue_for_each_state(
    health: CertificateHealth, error: PrinterTLSError | None, issue: CertificateIssue | None
) -> None:
    """Each conclusive state maps to exactly one repair issue (or none when healthy)."""
    assert is_conclusive(health, error)
    assert certificate_issue(health, error) is issue


def test_unreachable_keeps_issues() -> None:
    """Nothing answering says nothing about the certificate: open issues stay."""
    assert not is_conclusive(CertificateHealth.UNREACHABLE, None)
    assert not is_conclusive(CertificateHealth.UNREACHABLE, _error(TLSErrorKind.UNREACHABLE))
    assert not is_conclusive(None, None)


# --- live: the sensors ----------------------------------------------------------------------------


@pytest.fixture
def enable_all_entities() -> Iterator[None]:
    """Create disabled-by-default entities enabled, like core's fixture of the same purpose."""
    with patch(
        "homeassistant.helpers.entity.Entity.entity_registry_enabled_default",
        return_value=True,
    ):
        yield


async def test_valid_connection_sensors(
    hass: HomeAssistant,
    virtual_printer: Callable[..., VirtualPrinter],
    trust_test_cas: object,
    entity_registry: er.EntityRegistry,
) -> None:
    """A V2 chain (leaf only, device intermediate as anchor): every fact on the device."""
    printer = virtual_printer("P1S", "v2", time_scale=0)
    entry = await async_setup_printer(hass, printer)
    assert entry.state is ConfigEntryState.LOADED
    serial = printer.serial
    leaf = printer.identity.leaf.cert

    state = hass.states.get(sensor_id(hass, serial, "certificate"))
    assert state is not None
    assert state.state == "valid"
    assert state.attributes["issuer"] == "Test BBL CA2 RSA via Test BBL Device CA N7-V2"
    assert state.attributes["subject"] == serial
    assert state.attributes["fingerprint"] == printer.fingerprint
    assert state.attributes["tls_version"] == "TLSv1.2"
    assert state.attributes["days_left"] in (3648, 3649)
    assert state.attributes["not_after"] == leaf.not_valid_after_utc.isoformat()
    assert "failure" not in state.attributes

    expires = hass.states.get(sensor_id(hass, serial, "certificate_expires"))
    assert expires is not None
    assert dt_util.parse_datetime(expires.state) == leaf.not_valid_after_utc
    issuer = hass.states.get(sensor_id(hass, serial, "certificate_issuer"))
    assert issuer is not None
    assert issuer.state == "Test BBL CA2 RSA via Test BBL Device CA N7-V2"

    for key in (*DIAGNOSTIC_KEYS, *HIDDEN_KEYS):
        registered = entity_registry.async_get(sensor_id(hass, serial, key))
        assert registered is not None
        assert registered.entity_category is EntityCategory.DIAGNOSTIC
        hidden = registered.disabled_by is er.RegistryEntryDisabler.INTEGRATION
        assert hidden is (key in HIDDEN_KEYS), key
    assert open_issues(hass, entry) == {}


async def test_hidden_sensors_when_enabled(
    hass: HomeAssistant,
    virtual_printer: Callable[..., VirtualPrinter],
    trust_test_cas: object,
    enable_all_entities: None,
) -> None:
    """Fingerprint, TLS version and cipher come from the live connection."""
    printer = virtual_printer("X1C", time_scale=0)
    await async_setup_printer(hass, printer)
    values = {
        key: hass.states.get(sensor_id(hass, printer.serial, key)).state  # type: ignore[union-attr]
        for key in HIDDEN_KEYS
    }
    assert values["certificate_fingerprint"] == printer.fingerprint
    assert values["certificate_tls_version"] == "TLSv1.2"
    assert "GCM" in values["certificate_cipher"] or "CHACHA" in values["certificate_cipher"]
    issuer = hass.states.get(sensor_id(hass, printer.serial, "certificate_issuer"))
    assert issuer is not None
    assert issuer.state == "Test BBL CA"  # the legacy chain: the leaf sits right under the root


def _hostile(profile: str, printer: VirtualPrinter, cas: TestCAs) -> ServerIdentity:
    if profile == "unknown_ca_other_serial":
        # Neither a known issuer nor this printer's name: nothing that could be pinned.
        return issue_server("unknown_ca", printer.serial[:-1] + "7", cas)
    return issue_server(profile, printer.serial, cas)


@pytest.mark.parametrize(
    ("profile", "health", "issue"),
    [
        ("unknown_ca", "untrusted", "untrusted"),
        ("self_signed", "untrusted", "untrusted"),
        ("unknown_ca_other_serial", "untrusted", "untrusted_unpinnable"),
        ("other_serial", "serial_mismatch", "serial_mismatch"),
        ("expired", "expired", "expired"),
        ("not_yet_valid", "not_yet_valid", "not_yet_valid"),
    ],
)
async def test_failed_reconnect_states(
    hass: HomeAssistant,
    virtual_printer: Callable[..., VirtualPrinter],
    trust_test_cas: object,
    test_cas: TestCAs,
    fast_reconnect: None,
    profile: str,
    health: str,
    issue: str,
) -> None:
    """The printer starts presenting a bad certificate: the state and the issue say which.

    The certificate sensors stay available while every other entity is not; once the printer
    presents its good certificate again, the state and the issue clear by themselves.
    """
    printer = virtual_printer("X1C", time_scale=0)
    entry = await async_setup_printer(hass, printer)
    serial = printer.serial
    good = printer.identity
    other = sensor_id(hass, serial, "print_status")

    hostile = _hostile(profile, printer, test_cas)
    logins = printer.logins()
    assert logins >= 1  # the genuine chain's login is counted
    await async_serve(printer, hostile)
    await wait_until(lambda: certificate_state(hass, serial) == health)
    # The live session reconnected to another chain: the access code never went to it.
    assert printer.logins() == logins
    assert hass.states.get(other).state == STATE_UNAVAILABLE  # type: ignore[union-attr]
    issues = open_issues(hass, entry)
    assert list(issues) == [issue]
    assert issues[issue].severity is ir.IssueSeverity.ERROR
    assert not issues[issue].is_fixable
    assert_issue_text(issues[issue])
    placeholders = issues[issue].translation_placeholders or {}
    assert placeholders["fingerprint"] == hostile.leaf.sha256
    if issue == "serial_mismatch":
        (name,) = hostile.leaf.cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        assert placeholders["presented_cn"] == name.value
        assert placeholders["presented_cn"] != serial
    attributes = hass.states.get(sensor_id(hass, serial, "certificate")).attributes  # type: ignore[union-attr]
    assert attributes["failure"] == _KIND[health]
    assert attributes["fingerprint"] == good.leaf.sha256  # the last verified certificate

    await async_serve(printer, good)
    await wait_until(lambda: certificate_state(hass, serial) == "valid")
    await wait_until(lambda: hass.states.get(other).state != STATE_UNAVAILABLE)  # type: ignore[union-attr]
    assert open_issues(hass, entry) == {}


_KIND = {
    "untrusted": "untrusted_issuer",
    "serial_mismatch": "serial_mismatch",
    "expired": "expired",
    "not_yet_valid": "not_yet_valid",
}


async def test_unreachable_keeps_sensors_available(
    hass: HomeAssistant,
    virtual_printer: Callable[..., VirtualPrinter],
    trust_test_cas: object,
    fast_reconnect: None,
) -> None:
    """Printer off: unreachable (still available, still showing the last certificate)."""
    printer = virtual_printer("X1C", time_scale=0)
    entry = await async_setup_printer(hass, printer)
    serial = printer.serial
    printer.stop_broker()
    await wait_until(lambda: certificate_state(hass, serial) == "unreachable")
    issuer = hass.states.get(sensor_id(hass, serial, "certificate_issuer"))
    assert issuer is not None
    assert issuer.state == "Test BBL CA"
    assert open_issues(hass, entry) == {}

    printer.start_broker()
    await wait_until(lambda: certificate_state(hass, serial) == "valid")
    assert entry.runtime_data.session.stats.connects == 2


async def test_changed_certificate(
    hass: HomeAssistant,
    virtual_printer: Callable[..., VirtualPrinter],
    trust_test_cas: object,
) -> None:
    """A re-issued leaf still verifies but differs from the recorded one: changed, not valid."""
    printer = virtual_printer("X1C", time_scale=0)
    entry = await async_setup_printer(hass, printer, fingerprint=RECORDED)
    assert certificate_state(hass, printer.serial) == "changed"
    issue = open_issues(hass, entry)["changed"]
    assert issue.is_fixable
    assert issue.severity is ir.IssueSeverity.WARNING
    assert issue.translation_placeholders is not None
    assert issue.translation_placeholders["old_fingerprint"] == RECORDED
    assert issue.translation_placeholders["fingerprint"] == printer.fingerprint
    assert_issue_text(issue)


async def test_daily_expiry_countdown(
    hass: HomeAssistant,
    virtual_printer: Callable[..., VirtualPrinter],
    trust_test_cas: object,
    test_cas: TestCAs,
) -> None:
    """The daily re-evaluation moves a live connection to expiring soon, then to expired.

    Real clocks only (OpenSSL checks validity against the real time): one printer's leaf has 30
    days and 4 s left, another's 4 s. Once both marks have passed, the daily check must see 29
    days and an expired certificate, while both connections are still up.
    """
    printers = [virtual_printer("X1C", time_scale=0) for _ in range(2)]
    entries = []
    identities = []
    # The short-lived one last, so that its few seconds are not spent setting up the other.
    for printer, lifetime in zip(printers, (30 * DAY + 4 * SECOND, 4 * SECOND), strict=True):
        identities.append(short_lived(test_cas, printer.serial, lifetime))
        await async_serve(printer, identities[-1])
        entries.append(await async_setup_printer(hass, printer, title=printer.serial))
    month, seconds = (printer.serial for printer in printers)
    assert certificate_state(hass, month) == "valid"
    assert certificate_state(hass, seconds) == "expiring_soon"
    assert list(open_issues(hass, entries[1])) == ["expiring_soon"]

    # X.509 keeps whole seconds: wait until both leaves are past their marks.
    end = identities[1].leaf.cert.not_valid_after_utc
    await asyncio.sleep(max(0.0, (end - datetime.now(UTC)).total_seconds()) + 1.1)
    async_fire_time_changed(hass, dt_util.utcnow() + DAY)
    await hass.async_block_till_done()

    assert certificate_state(hass, month) == "expiring_soon"
    assert certificate_state(hass, seconds) == "expired"
    assert all(entry.runtime_data.session.connected for entry in entries)
    soon = open_issues(hass, entries[0])["expiring_soon"]
    assert soon.severity is ir.IssueSeverity.WARNING
    assert soon.translation_placeholders is not None
    assert soon.translation_placeholders["days_left"] == "29"
    assert_issue_text(soon)
    assert_issue_text(open_issues(hass, entries[1])["expired"])
    assert list(open_issues(hass, entries[1])) == ["expired"]
    attributes = hass.states.get(sensor_id(hass, month, "certificate")).attributes  # type: ignore[union-attr]
    assert attributes["days_left"] == 29


async def test_report_replaced_after_reconnect(
    hass: HomeAssistant,
    virtual_printer: Callable[..., VirtualPrinter],
    trust_test_cas: object,
    fast_reconnect: None,
) -> None:
    """Every reconnect refreshes the report from the live connection (no extra connection)."""
    printer = virtual_printer("X1C", time_scale=0)
    entry = await async_setup_printer(hass, printer)
    coordinator = entry.runtime_data
    first = coordinator.certificate
    assert first is not None
    new = printer.reissue_cert()
    await wait_until(lambda: coordinator.certificate is not first and coordinator.session.connected)
    assert coordinator.certificate is not None
    assert coordinator.certificate.sha256 == new
    assert certificate_state(hass, printer.serial) == "changed"
    assert coordinator.session.stats.connects == 2
