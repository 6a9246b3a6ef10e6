"""What the host field accepts: IP address literals and RFC 1123 host names, nothing else."""

from __future__ import annotations

import pytest

from custom_components.bambu_lan.printer.hosts import normalize_host


@pytest.mark.parametrize(
    ("typed", "stored"),
    [
        ("192.168.1.50", "192.168.1.50"),
        ("  10.0.0.7\t", "10.0.0.7"),
        ("::1", "::1"),
        ("[2001:DB8::1]", "2001:db8::1"),
        ("fe80::1%eth0", "fe80::1%eth0"),
        ("printer", "printer"),
        ("x1c-workshop.lan.", "x1c-workshop.lan"),
        ("3dprinter.example.com", "3dprinter.example.com"),
        ("a" * 63 + ".lan", "a" * 63 + ".lan"),
        (".".join(["b" * 63] * 3) + "." + "c" * 61, ".".join(["b" * 63] * 3) + "." + "c" * 61),
    ],
)
def test_valid_hosts(typed: str, stored: str) -> None:
    """Addresses are normalised; names are kept as typed (minus one trailing dot)."""
    assert normalize_host(typed) == stored


@pytest.mark.parametrize(
    "typed",
    [
        "",
        " ",
        ".",
        "127.0.0.1\x00evil",
        "printer\x00",
        "a" * 300,
        "b" * 64 + ".lan",
        ".".join(["b" * 63] * 4),  # 255 characters
        "printer_1.lan",
        "-printer.lan",
        "printer-.lan",
        "prin ter",
        "printer..lan",
        "http://192.168.1.50",
        "192.168.1.50:8883",
        "999.1.1.1",
        "192.168.001.050",
        "fe80::1%eth0\x00",
        "fe80::1%a b",
        "drücker.lan",
    ],
)
def test_invalid_hosts(typed: str) -> None:
    """Anything else is refused before any network call."""
    assert normalize_host(typed) is None
