"""Self-checks of the virtual printer, seen from a plain paho client over real TLS.

Only these tests build a TLS context by hand (the integration's own context lives in
`tls.py`): trust the test CAs, clear VERIFY_X509_STRICT for the keyUsage-less legacy root, and
send the serial as server name. paho is driven by explicit `loop()` calls: no network thread.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
import hashlib
import json
import os
from pathlib import Path
import re
import signal
import socket
import ssl
import subprocess
import sys
import time
from typing import Any
import uuid

from cryptography import x509
from cryptography.x509.oid import NameOID
from homeassistant.core import HomeAssistant
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.reasoncodes import ReasonCode
import pytest

from tests.virtual_printer.broker import free_port, port_open
from tests.virtual_printer.firmware import HUGE_SIZE
from tests.virtual_printer.models import DOOR_BIT, SIGNED_COMMANDS_BIT, unpack_temp
from tests.virtual_printer.printer import PrinterFactory, VirtualPrinter
from tests.virtual_printer.sim import CANCELLED_BY_USER

ROOT = Path(__file__).resolve().parent.parent
type Json = dict[str, Any]


class _SerialContext(ssl.SSLContext):
    """Sends (and checks) the printer's serial as server name, whatever host paho dials."""

    server_name: str

    def wrap_socket(self, sock: Any, *args: Any, **kwargs: Any) -> ssl.SSLSocket:
        kwargs["server_hostname"] = self.server_name
        return super().wrap_socket(sock, *args, **kwargs)


def _context(anchors: list[Path], server_name: str) -> _SerialContext:
    context = _SerialContext(ssl.PROTOCOL_TLS_CLIENT)
    for anchor in anchors:
        context.load_verify_locations(anchor)
    context.verify_flags &= ~ssl.VERIFY_X509_STRICT  # the legacy root has no keyUsage
    context.server_name = server_name
    return context


class RawClient:
    """A bare MQTT client that logs in as `bblp` (threadless: every wait drives paho)."""

    def __init__(
        self,
        printer: VirtualPrinter,
        *,
        password: str | None = None,
        server_name: str | None = None,
        anchors: list[Path] | None = None,
        port: int | None = None,
    ) -> None:
        self.printer = printer
        self.port = port or printer.port
        self.report_topic = f"device/{printer.serial}/report"
        self.request_topic = f"device/{printer.serial}/request"
        self.connack: ReasonCode | None = None
        self.subacks: dict[int, list[ReasonCode]] = {}
        self.payloads: list[bytes] = []
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"test-{uuid.uuid4().hex[:12]}",
            protocol=MQTTProtocolVersion.MQTTv311,
        )
        self.client.tls_set_context(
            _context(anchors or printer.anchors, server_name or printer.serial)
        )
        self.client.username_pw_set("bblp", printer.access_code if password is None else password)
        self.client.on_connect = lambda _c, _u, _f, reason, _p: setattr(self, "connack", reason)
        self.client.on_subscribe = lambda _c, _u, mid, reasons, _p: self.subacks.update(
            {mid: reasons}
        )
        self.client.on_message = lambda _c, _u, msg: self.payloads.append(msg.payload)

    def connect(self) -> ReasonCode:
        """TCP + TLS (raises on a failed handshake), then wait for CONNACK."""
        self.client.connect("127.0.0.1", self.port, keepalive=30)
        self.loop_until(lambda: self.connack is not None)
        assert self.connack is not None
        return self.connack

    def login(self) -> RawClient:
        """Connect, require success, subscribe to the report topic."""
        assert self.connect() == 0
        assert not self.subscribe(self.report_topic)[0].is_failure
        return self

    def subscribe(self, topic: str) -> list[ReasonCode]:
        _result, mid = self.client.subscribe(topic)
        assert mid is not None
        self.loop_until(lambda: mid in self.subacks)
        return self.subacks[mid]

    def request(self, payload: Json) -> None:
        info = self.client.publish(self.request_topic, json.dumps(payload), qos=1)
        self.loop_until(info.is_published)

    def loop_until(self, condition: Callable[[], bool], timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise TimeoutError("condition not met")
            self.client.loop(timeout=0.02)

    def wait_for(self, predicate: Callable[[Json], bool], timeout: float = 5.0) -> Json:
        """The first (new or buffered) JSON report that satisfies `predicate`; consumes it."""
        found: list[Json] = []

        def scan() -> bool:
            while self.payloads:
                try:
                    message = json.loads(self.payloads.pop(0))
                except ValueError:
                    continue
                if isinstance(message, dict) and predicate(message):
                    found.append(message)
                    return True
            return False

        self.loop_until(scan, timeout)
        return found[0]

    def quiet_for(self, seconds: float) -> list[bytes]:
        """Drive the loop for `seconds`; return everything received meanwhile."""
        self.payloads.clear()
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.client.loop(timeout=0.02)
        return list(self.payloads)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop(timeout=0.02)


@pytest.fixture
def raw_client() -> Iterator[Callable[..., RawClient]]:
    """Factory of RawClients, all closed after the test."""
    clients: list[RawClient] = []

    def make(printer: VirtualPrinter, **kwargs: Any) -> RawClient:
        clients.append(RawClient(printer, **kwargs))
        return clients[-1]

    yield make
    for client in clients:
        client.close()


def _is_ack(command: str, sequence_id: str) -> Callable[[Json], bool]:
    def match(message: Json) -> bool:
        return any(
            isinstance(body, dict)
            and body.get("command") == command
            and body.get("sequence_id") == sequence_id
            for body in message.values()
        )

    return match


def _push(message: Json) -> bool:
    body = message.get("print")
    return isinstance(body, dict) and body.get("command") == "push_status"


def _full_push(message: Json) -> bool:
    return _push(message) and message["print"].get("msg") == 0


def _pushing(key: str, value: Any) -> Callable[[Json], bool]:
    return lambda message: _push(message) and message["print"].get(key) == value


def _pushall(client: RawClient, sequence_id: str = "0") -> Json:
    client.request({"pushing": {"sequence_id": sequence_id, "command": "pushall"}})
    body: Json = client.wait_for(_full_push)["print"]
    return body


# -- login, full state, version, commands ----------------------------------------------------------


def test_x1c_pushall_version_and_tls(
    virtual_printer: PrinterFactory, raw_client: Callable[..., RawClient]
) -> None:
    """Log in over verified TLS 1.2; pushall gives the full X1C state; get_version identifies."""
    printer = virtual_printer("X1C")
    client = raw_client(printer).login()
    sock = client.client.socket()
    assert isinstance(sock, ssl.SSLSocket)
    assert sock.version() == "TLSv1.2"
    chain = sock.get_unverified_chain()
    assert len(chain) == 2  # legacy printers send leaf + BBL CA
    leaf = x509.load_der_x509_certificate(chain[0])
    assert leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == printer.serial

    state = _pushall(client, "7")
    assert state["gcode_state"] == "IDLE"
    assert state["stg_cur"] == -1
    assert state["wifi_signal"] == "-53dBm"
    assert state["cooling_fan_speed"] == "0"
    assert state["lights_report"] == [
        {"node": "chamber_light", "mode": "off"},
        {"node": "work_light", "mode": "off"},
    ]
    assert int(state["fun"], 16) & SIGNED_COMMANDS_BIT == 0
    assert state["home_flag"] & DOOR_BIT == 0
    assert [tray["id"] for tray in state["ams"]["ams"][0]["tray"]] == ["0", "1", "2", "3"]

    client.request({"info": {"sequence_id": "8", "command": "get_version"}})
    reply = client.wait_for(_is_ack("get_version", "8"))["info"]
    ota = next(module for module in reply["module"] if module["name"] == "ota")
    assert ota["product_name"] == "Bambu Lab X1 Carbon"
    assert ota["sn"] == printer.serial
    assert {module["name"] for module in reply["module"]} >= {"ota", "rv1126", "mc", "th"}
    assert printer.received_commands()[:2] == [
        {"pushing": {"sequence_id": "7", "command": "pushall"}},
        {"info": {"sequence_id": "8", "command": "get_version"}},
    ]


def test_pause_resume_stop_are_acknowledged_and_acted_on(
    virtual_printer: PrinterFactory, raw_client: Callable[..., RawClient]
) -> None:
    """Acks echo the request with result; the state follows; invalid commands fail."""
    printer = virtual_printer("X1C", push_interval=0.1)
    client = raw_client(printer).login()
    client.request({"print": {"sequence_id": "40", "command": "pause", "param": ""}})
    refused = client.wait_for(_is_ack("pause", "40"))["print"]
    assert refused["result"] == "failed"
    assert "IDLE" in refused["reason"]

    printer.start_job("benchy", layers=10, minutes=60)
    client.wait_for(_pushing("gcode_state", "PREPARE"))
    client.request({"print": {"sequence_id": "41", "command": "pause", "param": ""}})
    ack = client.wait_for(_is_ack("pause", "41"))["print"]
    assert ack == {"sequence_id": "41", "command": "pause", "param": "", "result": "success"}
    paused = client.wait_for(_pushing("gcode_state", "PAUSE"))["print"]
    assert paused["subtask_name"] == "benchy"
    assert paused["msg"] == 0  # X1: every push is the full object

    client.request({"print": {"sequence_id": "42", "command": "resume"}})
    assert client.wait_for(_is_ack("resume", "42"))["print"]["result"] == "success"
    client.wait_for(_pushing("gcode_state", "PREPARE"))
    client.request({"print": {"sequence_id": "43", "command": "stop"}})
    assert client.wait_for(_is_ack("stop", "43"))["print"]["result"] == "success"
    stopped = client.wait_for(_pushing("gcode_state", "FAILED"))["print"]
    assert stopped["print_error"] == CANCELLED_BY_USER
    assert stopped["nozzle_target_temper"] == 0


def test_light_speed_and_gcode(
    virtual_printer: PrinterFactory, raw_client: Callable[..., RawClient]
) -> None:
    """ledctrl, print_speed and gcode_line change what the printer reports."""
    printer = virtual_printer("X1C")
    client = raw_client(printer).login()
    light: Json = {"command": "ledctrl", "led_node": "chamber_light", "led_mode": "on"}
    light |= {"led_on_time": 500, "led_off_time": 500, "loop_times": 0, "interval_time": 0}
    client.request({"system": {"sequence_id": "1", **light}})
    assert client.wait_for(_is_ack("ledctrl", "1"))["system"]["result"] == "success"
    pushed = client.wait_for(_push)["print"]
    assert {"node": "chamber_light", "mode": "on"} in pushed["lights_report"]

    client.request({"print": {"sequence_id": "2", "command": "print_speed", "param": "3"}})
    assert client.wait_for(_is_ack("print_speed", "2"))["print"]["result"] == "success"
    assert client.wait_for(_push)["print"]["spd_lvl"] == 3
    client.request({"print": {"sequence_id": "3", "command": "print_speed", "param": "9"}})
    assert client.wait_for(_is_ack("print_speed", "3"))["print"]["result"] == "failed"

    gcode = {"command": "gcode_line", "param": "M104 S215\nM140 S65\n"}
    client.request({"print": {"sequence_id": "4", **gcode}})
    assert client.wait_for(_is_ack("gcode_line", "4"))["print"]["result"] == "success"
    pushed = client.wait_for(_push)["print"]
    assert (pushed["nozzle_target_temper"], pushed["bed_target_temper"]) == (215, 65)


# -- authentication and authorisation --------------------------------------------------------------


def test_wrong_access_code_is_not_authorized(
    virtual_printer: PrinterFactory, raw_client: Callable[..., RawClient]
) -> None:
    """A verified handshake with a wrong code gets CONNACK 5 (paho: "Not authorized")."""
    printer = virtual_printer("P1S")
    assert raw_client(printer, password="00000000").connect() == "Not authorized"
    assert printer.received_commands() == []


def _firmware_side_client(printer: VirtualPrinter) -> mqtt.Client:
    """A client on the broker's private listener, as the firmware user (sees every topic)."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=MQTTProtocolVersion.MQTTv311)
    client.username_pw_set("firmware", printer.broker.firmware_password)
    client.connect("127.0.0.1", printer.broker.firmware_port)
    return client


def test_topics_of_another_serial_are_denied(
    virtual_printer: PrinterFactory, raw_client: Callable[..., RawClient]
) -> None:
    """bblp reads only this printer's report topic and writes only its request topic."""
    printer = virtual_printer("X1C")
    other = "00M09A999999999"
    client = raw_client(printer)
    assert client.connect() == 0
    for topic in (f"device/{other}/report", "#", client.report_topic):
        client.subscribe(topic)  # mosquitto grants; the ACL applies on delivery
    seen: list[tuple[str, bytes]] = []
    inside = _firmware_side_client(printer)
    inside.on_message = lambda _c, _u, msg: seen.append((msg.topic, msg.payload))
    inside.subscribe("device/#")
    try:
        inside.publish(f"device/{other}/report", b"{}")
        inside.publish(f"virtual/{printer.serial}/control/reply", b"{}")
        inside.publish(client.report_topic, b'{"marker": 1}')
        client.loop_until(lambda: bool(client.payloads))
        assert client.payloads == [b'{"marker": 1}']  # nothing else came through

        client.client.publish(f"device/{other}/request", b"{}")
        client.client.publish(client.report_topic, b'{"forged": 1}')
        client.request({"pushing": {"sequence_id": "0", "command": "pushall"}})
        deadline = time.monotonic() + 5
        while not any(topic == client.request_topic for topic, _ in seen):
            assert time.monotonic() < deadline
            inside.loop(timeout=0.02)
            client.client.loop(timeout=0.02)
        topics = [topic for topic, _ in seen]
        assert f"device/{other}/request" not in topics
        assert (client.report_topic, b'{"forged": 1}') not in seen
        assert (client.report_topic, b'{"marker": 1}') in seen  # the observer does see reports
    finally:
        inside.disconnect()


def test_control_topic_on_the_firmware_listener(virtual_printer: PrinterFactory) -> None:
    """The firmware also takes control requests over MQTT (for printers run by the CLI)."""
    printer = virtual_printer("A1MINI")
    replies: list[Json] = []
    inside = _firmware_side_client(printer)
    inside.on_message = lambda _c, _u, msg: replies.append(json.loads(msg.payload))
    inside.subscribe(f"virtual/{printer.serial}/control/reply")
    try:
        request = {"id": "m1", "op": "fault", "name": "silent"}
        inside.publish(f"virtual/{printer.serial}/control", json.dumps(request))
        deadline = time.monotonic() + 5
        while not replies and time.monotonic() < deadline:
            inside.loop(timeout=0.02)
    finally:
        inside.disconnect()
    assert replies == [{"id": "m1", "result": None, "ok": True}]
    assert printer.status()["silent"] is True


def test_access_code_change_and_reissued_certificate(
    virtual_printer: PrinterFactory, raw_client: Callable[..., RawClient]
) -> None:
    """A new access code locks the old one out; a re-issued leaf has a new fingerprint."""
    printer = virtual_printer("A1MINI")
    old_code = printer.access_code
    printer.set_access_code("NewCode9")
    assert raw_client(printer, password=old_code).connect() == "Not authorized"
    assert raw_client(printer).connect() == 0

    old_fingerprint = printer.fingerprint
    new_fingerprint = printer.reissue_cert()
    assert new_fingerprint != old_fingerprint
    client = raw_client(printer).login()
    sock = client.client.socket()
    assert isinstance(sock, ssl.SSLSocket)
    der = sock.getpeercert(binary_form=True)
    assert der is not None
    assert hashlib.sha256(der).hexdigest() == new_fingerprint
    assert _pushall(client)["gcode_state"] == "IDLE"  # the firmware came back too


# -- TLS profiles --------------------------------------------------------------------------------


@pytest.mark.parametrize(("profile", "sent"), [("v2", 1), ("v2-ec", 1), ("legacy", 2)])
def test_trusted_profiles_verify(
    virtual_printer: PrinterFactory,
    raw_client: Callable[..., RawClient],
    profile: str,
    sent: int,
) -> None:
    """V2 printers send only their leaf; the test CA set still verifies it."""
    printer = virtual_printer("H2D", profile)
    client = raw_client(printer).login()
    sock = client.client.socket()
    assert isinstance(sock, ssl.SSLSocket)
    assert len(sock.get_unverified_chain()) == sent
    assert _pushall(client)["device"]["extruder"]["state"] == 0x102


@pytest.mark.parametrize(
    ("profile", "error"),
    [
        ("other_serial", "Hostname mismatch, certificate is not valid for '{serial}'"),
        ("self_signed", "self-signed certificate"),
        ("unknown_ca", "self-signed certificate in certificate chain"),
        ("expired", "certificate has expired"),
        ("not_yet_valid", "certificate is not yet valid"),
        ("tls1_0_only", "TLSV1_ALERT_PROTOCOL_VERSION"),
    ],
)
def test_hostile_profiles_fail_the_handshake(
    virtual_printer: PrinterFactory,
    raw_client: Callable[..., RawClient],
    profile: str,
    error: str,
) -> None:
    """Each hostile profile fails before a byte of MQTT, the way docs/tls.md lists it."""
    printer = virtual_printer("X1C", profile)
    with pytest.raises(ssl.SSLError) as failure:
        raw_client(printer).connect()
    assert error.format(serial=printer.serial) in str(failure.value)
    assert printer.received_commands() == []


def test_checking_the_ip_instead_of_the_serial_fails(
    virtual_printer: PrinterFactory, raw_client: Callable[..., RawClient]
) -> None:
    """Why clients must send the serial: the leaf has no IP (nor any SAN)."""
    printer = virtual_printer("X1C")
    with pytest.raises(ssl.SSLCertVerificationError, match="IP address mismatch"):
        raw_client(printer, server_name="127.0.0.1").connect()


# -- delta models ---------------------------------------------------------------------------------


def test_p1s_sends_deltas(
    virtual_printer: PrinterFactory, raw_client: Callable[..., RawClient]
) -> None:
    """P1/A1: pushall is full (msg 0); afterwards only changed fields arrive."""
    printer = virtual_printer("P1S")
    client = raw_client(printer).login()
    full = _pushall(client)
    assert full["stg_cur"] == 255
    assert full["chamber_temper"] == 5  # P1 reports junk here
    assert "home_flag" in full
    assert "stat" not in full
    light = {"command": "ledctrl", "led_node": "chamber_light", "led_mode": "on"}
    client.request({"system": {"sequence_id": "5", **light}})
    client.wait_for(_is_ack("ledctrl", "5"))
    delta = client.wait_for(_push)["print"]
    assert delta["msg"] == 1
    assert set(delta) - {"command", "msg", "sequence_id"} == {"lights_report"}

    printer.set_state({"ams": {"ams": [{"id": "0", "tray": [{"id": "1", "remain": 40}]}]}})
    delta = client.wait_for(_push)["print"]
    assert delta["ams"] == {"ams": [{"id": "0", "tray": [{"id": "1", "remain": 40}]}]}
    printer.raise_hms(0x0300_0100, 0x0001_0001)
    assert client.wait_for(_push)["print"]["hms"] == [{"attr": 0x03000100, "code": 0x00010001}]
    printer.set_print_error(0x0300_400C)
    delta = client.wait_for(_push)["print"]
    assert set(delta) - {"command", "msg", "sequence_id"} == {"print_error"}
    printer.clear_hms()
    assert client.wait_for(_push)["print"]["hms"] == []
    with pytest.raises(Exception, match="no door"):
        printer.set_door(True)


def test_raw_temperatures_quirk_pushes_every_interval(
    virtual_printer: PrinterFactory, raw_client: Callable[..., RawClient]
) -> None:
    """With `raw_temperatures` a steady P1S still pushes every interval: its temperatures in
    raw 1/32 °C steps around the heater's value, as real printers send them."""
    printer = virtual_printer("P1S", push_interval=0.1, quirks=["raw_temperatures"])
    client = raw_client(printer).login()
    full = _pushall(client)
    temps = []
    for _ in range(4):
        delta = client.wait_for(_push)["print"]
        assert delta["msg"] == 1
        temps.append(delta["nozzle_temper"])
        assert delta["nozzle_temper"] * 32 == int(delta["nozzle_temper"] * 32)
        assert abs(delta["bed_temper"] - full["bed_temper"]) <= 2 / 32 + 0.1
    assert len(set(temps)) > 1


def test_h2d_nested_deltas_packed_temperatures_and_door(
    virtual_printer: PrinterFactory, raw_client: Callable[..., RawClient]
) -> None:
    """H2D: device.* deltas by nozzle id, temps packed (low 16 current, high 16 target)."""
    printer = virtual_printer("H2D", time_scale=20, push_interval=0.1)
    client = raw_client(printer).login()
    _pushall(client)
    client.request(
        {"print": {"sequence_id": "1", "command": "gcode_line", "param": "M104 S200 T1"}}
    )
    client.wait_for(_is_ack("gcode_line", "1"))
    delta = client.wait_for(lambda m: _push(m) and "device" in m["print"])["print"]
    entries = delta["device"]["extruder"]["info"]
    assert [entry["id"] for entry in entries] == [1]  # the left nozzle only
    assert set(entries[0]) <= {"id", "temp"}
    assert unpack_temp(entries[0]["temp"])[1] == 200
    heated = client.wait_for(
        lambda m: (
            _push(m)
            and any(
                entry["id"] == 1 and unpack_temp(entry["temp"])[0] > 30
                for entry in m["print"].get("device", {}).get("extruder", {}).get("info", [])
            )
        )
    )
    assert "nozzle_temper" not in heated["print"]  # top level follows the right nozzle

    printer.set_door(True)
    opened = client.wait_for(lambda m: _push(m) and "stat" in m["print"])["print"]
    assert int(opened["stat"], 16) & DOOR_BIT


def test_job_runs_to_finish(
    virtual_printer: PrinterFactory, raw_client: Callable[..., RawClient]
) -> None:
    """PREPARE (stages), RUNNING (progress, layers, minutes left), FINISH; time is scaled."""
    printer = virtual_printer("P1S", time_scale=300, push_interval=0.05)
    client = raw_client(printer).login()
    printer.start_job("cube", layers=20, minutes=5, prepare_minutes=1)
    seen: list[Json] = []

    def finished(message: Json) -> bool:
        if _push(message):
            seen.append(message["print"])
        return _push(message) and message["print"].get("gcode_state") == "FINISH"

    client.wait_for(finished, timeout=10)
    states = [body["gcode_state"] for body in seen if "gcode_state" in body]
    assert states == ["PREPARE", "RUNNING", "FINISH"]  # deltas: only when it changes
    stages = [body["stg_cur"] for body in seen if "stg_cur" in body]
    assert stages[0] == 2
    assert stages[-2:] == [0, 255]  # printing, then idle (P1/A1 style)
    running = [body for body in seen if "mc_percent" in body and body["mc_percent"] < 100]
    assert running
    assert all(0 < body.get("layer_num", 1) <= 20 for body in running)
    assert any(0 < body.get("mc_remaining_time", 0) < 5 for body in running)
    final = printer.state()
    assert (final["mc_percent"], final["layer_num"], final["mc_remaining_time"]) == (100, 20, 0)
    assert final["stg_cur"] == 255


# -- faults ----------------------------------------------------------------------------------------


def test_malformed_payloads_reach_clients(
    virtual_printer: PrinterFactory, raw_client: Callable[..., RawClient]
) -> None:
    """Each malformed kind arrives as such on the report topic."""
    printer = virtual_printer("X1C")
    client = raw_client(printer).login()
    received = []
    for kind in ("invalid_json", "array", "wrong_types", "unknown_enum", "huge"):
        client.payloads.clear()
        printer.fault("malformed", kind=kind)
        client.loop_until(lambda: bool(client.payloads))
        received.append(client.payloads[0])
    invalid, array, wrong, unknown, huge = received
    with pytest.raises(ValueError):
        json.loads(invalid)
    assert isinstance(json.loads(array), list)
    assert json.loads(wrong)["print"]["mc_percent"] == "lots"
    assert json.loads(unknown)["print"]["gcode_state"] == "WARP_DRIVE"
    assert len(huge) > HUGE_SIZE
    printer.publish_raw(b"\x00\x01raw")
    client.loop_until(lambda: b"\x00\x01raw" in client.payloads)
    assert _pushall(client)["gcode_state"] == "IDLE"  # the printer itself is unharmed


def test_silence_then_resume(
    virtual_printer: PrinterFactory, raw_client: Callable[..., RawClient]
) -> None:
    """Silent: connected, nothing published, requests ignored (but recorded)."""
    printer = virtual_printer("X1C")
    client = raw_client(printer).login()
    printer.fault("silent")
    client.request({"pushing": {"sequence_id": "1", "command": "pushall"}})
    client.request({"print": {"sequence_id": "2", "command": "pause"}})
    assert client.quiet_for(0.5) == []
    assert printer.wait_for_command("pause")["print"]["sequence_id"] == "2"
    assert printer.status()["silent"] is True
    printer.fault("resume")
    assert _pushall(client, "3")["gcode_state"] == "IDLE"


def test_refuse_ignore_and_signed_commands(
    virtual_printer: PrinterFactory, raw_client: Callable[..., RawClient]
) -> None:
    """One-shot refusal and silence for commands; signed-command firmware takes only ledctrl."""
    printer = virtual_printer("X1C")
    client = raw_client(printer).login()
    printer.fault("refuse_next", reason="busy")
    client.request({"print": {"sequence_id": "1", "command": "print_speed", "param": "2"}})
    refused = client.wait_for(_is_ack("print_speed", "1"))["print"]
    assert (refused["result"], refused["reason"]) == ("failed", "busy")

    printer.fault("ignore_next")
    client.request({"print": {"sequence_id": "2", "command": "print_speed", "param": "2"}})
    client.request({"print": {"sequence_id": "3", "command": "print_speed", "param": "2"}})
    ack = client.wait_for(lambda m: "print" in m and m["print"].get("command") == "print_speed")
    assert ack["print"]["sequence_id"] == "3"  # 2 got no answer at all

    printer.fault("signed_commands")
    assert int(client.wait_for(_push)["print"]["fun"], 16) & SIGNED_COMMANDS_BIT
    client.request({"print": {"sequence_id": "4", "command": "print_speed", "param": "2"}})
    assert client.wait_for(_is_ack("print_speed", "4"))["print"]["result"] == "failed"
    light = {"command": "ledctrl", "led_node": "chamber_light", "led_mode": "on"}
    client.request({"system": {"sequence_id": "5", **light}})
    assert client.wait_for(_is_ack("ledctrl", "5"))["system"]["result"] == "success"


def test_broker_stop_start_and_drop(
    virtual_printer: PrinterFactory, raw_client: Callable[..., RawClient]
) -> None:
    """Stop: the port refuses; start: same port, the firmware is back; restart drops clients."""
    printer = virtual_printer("X1C")
    port = printer.port
    client = raw_client(printer).login()
    printer.restart_broker()
    client.loop_until(lambda: not client.client.is_connected(), timeout=3)
    printer.stop_broker()
    assert not port_open(port)
    with pytest.raises(ConnectionRefusedError):
        raw_client(printer).connect()
    printer.start_broker()
    assert printer.port == port
    assert _pushall(raw_client(printer).login())["gcode_state"] == "IDLE"


# -- command line ----------------------------------------------------------------------------------


def _children(pid: int) -> list[int]:
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            children.append(int(stat.parent.name))
    return children


def test_cli_ready_line_and_clean_exit(socket_enabled: None, tmp_path: Path) -> None:
    """READY line on stdout; a client trusting --ca-out logs in; SIGTERM leaves nothing."""
    port = free_port()
    command = [sys.executable, "-m", "tests.virtual_printer", "--serial", "01P09A000000042"]
    command += ["--access-code", "Abcd1234", "--port", str(port), "--profile", "v2"]
    command += ["--model", "P1S", "--ca-out", str(tmp_path / "ca"), "--demo-print"]
    process = subprocess.Popen(
        command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line == f"READY 127.0.0.1 {port} 01P09A000000042 Abcd1234\n"
        children = _children(process.pid)
        assert len(children) == 2  # mosquitto and the firmware
        printer = _StubPrinter(port, sorted((tmp_path / "ca").glob("*.pem")))
        client = RawClient(printer)  # type: ignore[arg-type]
        client.login()
        assert _pushall(client)["gcode_state"] in {"PREPARE", "RUNNING"}
        client.close()
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.stdout.read() == ""  # exactly one line on stdout
    assert "Abcd1234" not in process.stderr.read()  # type: ignore[union-attr]
    for pid in children:
        assert not os.path.exists(f"/proc/{pid}")
    assert not port_open(port)


class _StubPrinter:
    """What RawClient needs to know about a printer started by the command line."""

    serial = "01P09A000000042"
    access_code = "Abcd1234"

    def __init__(self, port: int, anchors: list[Path]) -> None:
        self.port = port
        self.anchors = anchors


# -- under the Home Assistant harness --------------------------------------------------------------


async def test_handle_works_in_async_tests(
    hass: HomeAssistant, virtual_printer: PrinterFactory, trust_test_cas: Path
) -> None:
    """The handle needs no thread; the integration's TLS context trusts the test CAs."""
    from custom_components.bambu_lan.printer import tls

    printer = virtual_printer("X1C", "v2")
    assert tls.CERTS_DIR == trust_test_cas == printer.ca_dir
    context = await tls.async_create_printer_context(printer.serial)

    def handshake() -> str | None:
        with (
            socket.create_connection((printer.host, printer.port), timeout=5) as sock,
            context.wrap_socket(sock, server_hostname=printer.serial) as tls_sock,
        ):
            return tls_sock.version()

    assert await hass.async_add_executor_job(handshake) == "TLSv1.2"
    printer.set_state({"wifi_signal": "-70dBm"})
    assert printer.state()["wifi_signal"] == "-70dBm"
    with pytest.raises(TimeoutError):
        await printer.async_wait_for_command("pause", within=0.1)


def test_model_serials_are_well_formed(virtual_printer: PrinterFactory) -> None:
    """Default serials are 15 upper-case alphanumerics with the model's prefix."""
    first, second = virtual_printer("H2D"), virtual_printer("H2D")
    assert first.serial != second.serial
    assert all(re.fullmatch(r"094[0-9A-Z]{12}", p.serial) for p in (first, second))
    assert "Zq7Kx2Lm" not in repr(first) + repr(first.broker)


def test_stuck_firmware_is_replaced_once(
    virtual_printer: PrinterFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A pooled firmware that never reports ready is killed; a fresh one serves the printer."""
    import tests.virtual_printer.printer as printer_module

    stuck = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    monkeypatch.setattr(printer_module._POOL, "take", lambda: stuck)
    monkeypatch.setattr(printer_module, "READY_TIMEOUT", 5.0)  # a fresh boot fits
    printer = virtual_printer("P1S")
    assert stuck.wait(timeout=5) == -signal.SIGKILL
    assert printer.status()["connected"]
