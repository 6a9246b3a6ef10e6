"""Shared fixtures.

The integration is imported at module level on purpose: otherwise the harness mounts its own
`testing_config/custom_components` package first and the `hass` fixture cannot find ours.
"""

from __future__ import annotations

import pytest

import custom_components.bambu_lan  # noqa: F401
from tests.virtual_printer.fixtures import *  # noqa: F403


@pytest.fixture(autouse=True)
def auto_enable_custom_integrations(enable_custom_integrations: None) -> None:
    """Let every test load custom integrations."""
