"""pytest fixtures for the virtual printer (pulled into tests/conftest.py).

- `test_cas` (session): the generated "Bambu" CAs (`pki.TestCAs`).
- `test_ca_dir` (session): a directory holding those CAs as PEM files.
- `trust_test_cas`: points `custom_components.bambu_lan.tls.CERTS_DIR` at `test_ca_dir`, so the
  integration trusts the test CAs (and only them) for this test; returns the directory.
- `virtual_printer`: a factory; `virtual_printer(model="X1C", profile="legacy", serial=None,
  access_code=DEFAULT_ACCESS_CODE, **options)` starts a printer and returns its
  `printer.VirtualPrinter` handle. Every printer it started is closed after the test (which
  fails if a firmware process crashed). Requests `socket_enabled`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .models import default_serial, spec_for
from .pki import TestCAs, generate_cas
from .printer import PrinterFactory, VirtualPrinter

__all__ = ["test_ca_dir", "test_cas", "trust_test_cas", "virtual_printer"]

# Distinctive on purpose: a leak of this string into a log or repr is easy to search for.
DEFAULT_ACCESS_CODE = "Zq7Kx2Lm"


@pytest.fixture(scope="session")
def test_cas() -> TestCAs:
    """The test CAs, generated once per test session."""
    return generate_cas()


@pytest.fixture(scope="session")
def test_ca_dir(test_cas: TestCAs, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The test CAs as PEM files (the same directory for the whole session)."""
    directory = tmp_path_factory.mktemp("test-cas")
    test_cas.write_anchors(directory)
    return directory


@pytest.fixture
def trust_test_cas(test_ca_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Make the integration trust exactly the test CAs; returns their directory."""
    from custom_components.bambu_lan.printer import tls

    monkeypatch.setattr(tls, "CERTS_DIR", test_ca_dir)
    return test_ca_dir


@pytest.fixture
def virtual_printer(
    socket_enabled: None, test_cas: TestCAs, test_ca_dir: Path
) -> Iterator[PrinterFactory]:
    """Start virtual printers; all are stopped (and their files removed) after the test."""
    printers: list[VirtualPrinter] = []

    def start(
        model: str = "X1C",
        profile: str = "legacy",
        *,
        serial: str | None = None,
        access_code: str = DEFAULT_ACCESS_CODE,
        **options: Any,
    ) -> VirtualPrinter:
        spec_for(model)  # fail fast on an unknown model
        options.setdefault("prewarm", True)
        printer = VirtualPrinter(
            test_cas,
            serial=serial or default_serial(model, len(printers) + 1),
            access_code=access_code,
            model=model,
            profile=profile,
            ca_dir=test_ca_dir,
            **options,
        )
        printers.append(printer)
        return printer.start()

    yield start
    errors = []
    for printer in printers:
        try:
            printer.close()
        except Exception as err:
            errors.append(err)
    if errors:
        raise errors[0]
