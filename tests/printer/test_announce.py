"""Parsing and validating the NOTIFY packets printers broadcast on UDP 2021."""

from __future__ import annotations

import pytest

from custom_components.bambu_lan.printer import announce

SERIAL = "01P09A000000042"


def notify(
    serial: str = SERIAL,
    host: str = "127.0.0.1",
    *,
    model: str = "C12",
    name: str = "Workshop",
    extra: str = "",
) -> bytes:
    """A NOTIFY packet shaped like a P1S's (header names as printers spell them)."""
    return (
        "NOTIFY * HTTP/1.1\r\n"
        "HOST: 239.255.255.250:1990\r\n"
        "Server: UPnP/1.0\r\n"
        f"Location: {host}\r\n"
        "NT: urn:bambulab-com:device:3dprinter:1\r\n"
        f"USN: {serial}\r\n"
        "Cache-Control: max-age=1800\r\n"
        f"DevModel.bambu.com: {model}\r\n"
        f"DevName.bambu.com: {name}\r\n"
        "DevSignal.bambu.com: -44\r\n"
        "DevConnect.bambu.com: lan\r\n"
        "DevBind.bambu.com: free\r\n"
        "Devseclink.bambu.com: secure\r\n"
        "DevVersion.bambu.com: 01.08.02.00\r\n"
        "DevCap.bambu.com: 1\r\n"
        f"{extra}"
        "\r\n"
    ).encode()


# --- parsing -------------------------------------------------------------------------------------


def test_parse_notify() -> None:
    """Every field the flow needs, from a real-shaped packet."""
    announcement = announce.parse_notify(notify())

    assert announcement == announce.Announcement(
        host="127.0.0.1", serial=SERIAL, model="P1S", name="Workshop", firmware="01.08.02.00"
    )
    assert announcement.flow_data() == {
        "host": "127.0.0.1",
        "serial": SERIAL,
        "model": "P1S",
        "name": "Workshop",
    }


def test_parse_notify_is_lenient_where_printers_differ() -> None:
    """Header case, LF-only lines, a lower-case serial, a URL location, legacy model names."""
    packet = (
        b"notify * HTTP/1.1\n"
        b"location: http://192.168.1.20/\n"
        b"nt: URN:bambulab-com:device:3dprinter:1\n"
        b"nts: ssdp:alive\n"
        b"usn: 00m09a000000001\n"
        b"DEVMODEL.BAMBU.COM: 3DPrinter-X1-Carbon\n"
    )

    announcement = announce.parse_notify(packet)

    assert announcement is not None
    assert announcement.host == "192.168.1.20"
    assert announcement.serial == "00M09A000000001"
    assert announcement.model == "X1 Carbon"
    assert announcement.name is None
    assert announcement.flow_data() == {
        "host": "192.168.1.20",
        "serial": "00M09A000000001",
        "model": "X1 Carbon",
    }


@pytest.mark.parametrize(
    ("code", "model"),
    [("N2S", "A1"), ("N1", "A1 mini"), ("O1E", "H2D Pro"), ("N8", "N8"), ("", None)],
)
def test_model_labels(code: str, model: str | None) -> None:
    """Known codes become model names; an unknown code is kept as it is."""
    announcement = announce.parse_notify(notify(model=code))

    assert announcement is not None
    assert announcement.model == model
    assert announcement.flow_data().get("model") == model


def test_display_values_are_sanitised() -> None:
    """Names come from the network: control characters go, length is bounded."""
    announcement = announce.parse_notify(notify(name="Lab\x1b[31m\x07" + "x" * 100))

    assert announcement is not None
    assert announcement.name == "Lab[31m" + "x" * 57


@pytest.mark.parametrize(
    "packet",
    [
        b"",
        b"\xff\xfe\x00\x01",
        notify().replace(b"NOTIFY *", b"M-SEARCH *"),
        notify().replace(b"NT: urn:bambulab-com:device:3dprinter:1\r\n", b""),
        notify().replace(b"urn:bambulab-com:device:3dprinter:1", b"upnp:rootdevice"),
        notify().replace(f"USN: {SERIAL}\r\n".encode(), b""),
        notify(serial="01P09A00000004"),
        notify(serial="01P09A00000004-"),
        notify(serial="uuid:01P09A000000042"),
        notify(host="printer.local"),
        notify(host="0.0.0.0"),
        notify(host="239.255.255.250"),
        notify(extra="X-Padding: " + "x" * 2048 + "\r\n"),
        b"NOTIFY * HTTP/1.1\r\nno header separators here\r\n",
    ],
)
def test_malformed_packets_are_ignored(packet: bytes) -> None:
    """Anything that is not a well-formed printer announcement yields nothing."""
    assert announce.parse_notify(packet) is None
