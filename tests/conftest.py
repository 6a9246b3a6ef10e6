"""Shared fixtures.

The integration is imported at module level on purpose: otherwise the harness mounts its own
`testing_config/custom_components` package first and the `hass` fixture cannot find ours.
"""

from __future__ import annotations

from collections.abc import Iterator
from unittest.mock import AsyncMock

import pytest

import custom_components.bambu_lan  # noqa: F401
from tests.translation_check import check_translations  # noqa: F401
from tests.virtual_printer.fixtures import *  # noqa: F403


@pytest.fixture(autouse=True)
def no_deprecated_api(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Fail the test in which our code calls an API Home Assistant reports as deprecated (it
    reports each once per process, as a warning only, for custom integrations)."""
    yield
    reported = [
        record.getMessage()
        for when in ("setup", "call")
        for record in caplog.get_records(when)
        if record.name == "homeassistant.helpers.frame"
        and "integration 'bambu_lan'" in record.getMessage()
    ]
    assert not reported, reported


@pytest.fixture(autouse=True)
def auto_enable_custom_integrations(enable_custom_integrations: None) -> None:
    """Let every test load custom integrations."""


@pytest.fixture
def fast_reconnect(monkeypatch: pytest.MonkeyPatch) -> None:
    """Reconnect (and watch for silence) on a test's time scale, not production's back-off."""
    from custom_components.bambu_lan.printer import session as client

    monkeypatch.setattr(client, "BACKOFF_INITIAL", 0.05)
    monkeypatch.setattr(client, "BACKOFF_MAX", 0.2)
    monkeypatch.setattr(client, "WATCHDOG_INTERVAL", 0.1)


@pytest.fixture(autouse=True)
def discovery_on_loopback(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Discovery binds 127.0.0.1 on a free port in tests, and only where sockets are enabled."""
    from custom_components.bambu_lan import discovery

    monkeypatch.setattr(discovery, "DISCOVERY_ADDRESS", "127.0.0.1")
    monkeypatch.setattr(discovery, "DISCOVERY_PORT", 0)
    if "socket_enabled" not in request.fixturenames:
        monkeypatch.setattr(discovery, "async_start_discovery", AsyncMock(return_value=None))
