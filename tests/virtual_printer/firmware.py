"""The virtual printer's firmware: a separate process behind the broker.

It logs in on the broker's private plain listener as user `firmware`, subscribes to
`device/<serial>/request` (what clients send) and `virtual/<serial>/control` (test control), and
publishes reports and acknowledgements on `device/<serial>/report` the way the model does.

Control requests are JSON objects `{"op": ..., ...}`. They arrive as lines on stdin (how
`printer.VirtualPrinter` drives it: works while the broker is down, and the process ends when
its parent closes the pipe) or on the control topic (replies on `virtual/<serial>/control/reply`;
handy with `mosquitto_pub` against a printer started by the command line). Each stdin request
`{"id": n, ...}` gets exactly one reply line `{"id": n, "ok": ..., "result" | "error": ...}`; the
line with id 0 says the firmware is connected and subscribed.

Run: `python -m tests.virtual_printer.firmware --serial S --model X1C --port P` with the
firmware password in $VIRTUAL_PRINTER_FIRMWARE_PASSWORD, or without `--serial` to receive the
configuration as the first stdin line (how `printer.py` keeps one process warm in advance).
"""

from __future__ import annotations

import argparse
import base64
from collections.abc import Callable
import copy
import itertools
import json
import logging
import os
import select
import signal
import sys
import time
from typing import Any, Final

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from .models import MODELS, Json, initial_state, spec_for
from .sim import PRINTING, PrinterSim, diff

_LOGGER = logging.getLogger("virtual_printer.firmware")

FIRMWARE_USER: Final = "firmware"
PASSWORD_ENV: Final = "VIRTUAL_PRINTER_FIRMWARE_PASSWORD"
TICK: Final = 0.02  # seconds; bounds the latency of control requests and simulation steps
RECONNECT_DELAY: Final = 0.05
MALFORMED_KINDS: Final = (
    "invalid_json",
    "array",
    "scalar",
    "not_utf8",
    "empty",
    "print_not_object",
    "wrong_types",
    "unknown_enum",
    "huge",
)
HUGE_SIZE: Final = 2 * 1024 * 1024
QUIRKS: Final = frozenset(
    {
        # Full reports (the pushall answer, X1 pushes) carry no `msg` key at all: an H2D from
        # 2025 and two X1C captures.
        "full_without_msg",
        # Nozzle and bed temperatures at the sensor's raw 1/32 °C, jittering by a step or two
        # around the heater's value, so that every push carries them (P1, A1, X1 while printing).
        "raw_temperatures",
    }
)
RAW_STEPS: Final = (-2, -1, 1, 2)
# HMS 0700_2000_0002_0001: AMS slot filament has run out (module 0x07 = AMS).
RUNOUT_HMS: Final = {"attr": 0x07002000, "code": 0x00020001}


class Firmware:
    """One printer's MQTT side: requests in, reports and acks out, faults on demand."""

    def __init__(
        self,
        sim: PrinterSim,
        *,
        port: int,
        password: str,
        push_interval: float = 1.0,
        host: str = "127.0.0.1",
        quirks: frozenset[str] = frozenset(),
    ) -> None:
        """`quirks`: firmware oddities seen on real printers (see `QUIRKS`)."""
        if unknown := quirks - QUIRKS:
            raise ValueError(f"unknown quirks {sorted(unknown)}; known: {sorted(QUIRKS)}")
        self.sim = sim
        self.quirks = quirks
        serial = sim.serial
        self.report_topic = f"device/{serial}/report"
        self.request_topic = f"device/{serial}/request"
        self.control_topic = f"virtual/{serial}/control"
        self.push_interval = push_interval
        self.connected = False  # subscribed and able to serve
        self.silent = False
        self.refuse_next: str | None = None
        self.ignore_next = False
        self.commands: list[Json] = []
        self.pushes = 0
        self.stopping = False
        self._published: Json = sim.full_report_body()  # what the clients' merged view holds
        self._last_push = 0.0
        self._sequence = itertools.count(2000)
        self._next_attempt = 0.0
        self._subscribe_mid: int | None = None
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"virtual-firmware-{serial}-{os.getpid()}",
            protocol=MQTTProtocolVersion.MQTTv311,
        )
        self.client.username_pw_set(FIRMWARE_USER, password)
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self.client.connect_async(host, port, keepalive=30)

    # -- MQTT -------------------------------------------------------------------------------------

    def _on_connect(
        self,
        client: mqtt.Client,
        _userdata: Any,
        _flags: mqtt.ConnectFlags,
        reason: ReasonCode,
        _properties: Properties | None,
    ) -> None:
        if reason.is_failure:
            _LOGGER.error("broker refused the firmware: %s", reason)
            return
        _result, self._subscribe_mid = client.subscribe(
            [(self.request_topic, 1), (self.control_topic, 1)]
        )

    def _on_subscribe(
        self,
        _client: mqtt.Client,
        _userdata: Any,
        mid: int,
        reasons: list[ReasonCode],
        _properties: Properties | None,
    ) -> None:
        if mid == self._subscribe_mid and not any(reason.is_failure for reason in reasons):
            self.connected = True
            _LOGGER.debug("firmware connected and subscribed")

    def _on_disconnect(
        self,
        _client: mqtt.Client,
        _userdata: Any,
        _flags: mqtt.DisconnectFlags,
        reason: ReasonCode,
        _properties: Properties | None,
    ) -> None:
        self.connected = False
        _LOGGER.debug("firmware disconnected: %s", reason)

    def _on_message(self, _client: mqtt.Client, _userdata: Any, msg: mqtt.MQTTMessage) -> None:
        if msg.topic == self.request_topic:
            self._on_request(msg.payload)
        elif msg.topic == self.control_topic:
            try:
                request = json.loads(msg.payload)
            except ValueError:
                return
            reply = self.dispatch(request if isinstance(request, dict) else {})
            self.client.publish(f"{self.control_topic}/reply", json.dumps(reply))

    def network_step(self, now: float) -> None:
        """Run paho for up to one tick; reconnect (quickly) when the broker went away."""
        if self.client.socket() is not None:
            if self.client.loop(timeout=TICK) == mqtt.MQTT_ERR_SUCCESS:
                return
            self.connected = False
        if now < self._next_attempt:
            time.sleep(TICK)
            return
        self._next_attempt = now + RECONNECT_DELAY
        try:
            self.client.reconnect()
        except OSError as err:
            _LOGGER.debug("broker not reachable yet: %s", err)
            time.sleep(TICK)
            return
        sock = self.client.socket()
        if sock is not None and sock.getsockname() == sock.getpeername():
            # TCP simultaneous open: dialling a port nobody listens on (the broker restarting)
            # connected us to ourselves, holding the port the broker must bind. Let go at once.
            self.client.disconnect()
            self.client.loop(timeout=0)

    def publish(self, payload: Json | bytes, topic: str | None = None) -> None:
        """Publish on the report topic (QoS 0, never retained, like printers)."""
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.client.publish(topic or self.report_topic, data)

    # -- reports ----------------------------------------------------------------------------------

    def _report(self, body: Json, *, full: bool) -> Json:
        envelope: Json = {"command": "push_status", "sequence_id": str(next(self._sequence))}
        if not (full and "full_without_msg" in self.quirks):
            envelope["msg"] = 0 if full else 1
        return {"print": {**body, **envelope}}

    def push_full(self) -> None:
        """Publish the whole `print` object (what pushall gets)."""
        if self.silent or not self.connected:
            return
        self.publish(self._report(self.sim.full_report_body(), full=True))
        self._mark_published()

    def push(self, now: float, *, force: bool = False) -> None:
        """Publish what changed, at most once per push interval unless forced."""
        if self.silent or not self.connected:
            return
        if not force and now - self._last_push < self.push_interval:
            return
        state = self.sim.state
        if "raw_temperatures" in self.quirks:
            for key in ("nozzle_temper", "bed_temper"):
                if isinstance(value := state.get(key), int | float):
                    state[key] = (round(value * 32) + RAW_STEPS[self.pushes % 4]) / 32
        if self.sim.spec.full_reports:
            # X1: whole object, every interval while printing, otherwise on change
            if state == self._published and state.get("gcode_state") not in PRINTING:
                return
            self.publish(self._report(self.sim.full_report_body(), full=True))
        else:
            delta = diff(self._published, state)
            if not delta:
                return
            self.publish(self._report(delta, full=False))
        self._mark_published(now)

    def _mark_published(self, now: float | None = None) -> None:
        self._published = self.sim.full_report_body()
        self._last_push = time.monotonic() if now is None else now
        self.pushes += 1

    # -- requests ---------------------------------------------------------------------------------

    def _on_request(self, payload: bytes) -> None:
        try:
            request = json.loads(payload)
        except ValueError:
            _LOGGER.debug("ignored a request that is not JSON")
            return
        if not isinstance(request, dict):
            return
        self.commands.append(request)
        if self.silent:
            return
        if _is_command(request) and self._apply_one_shot_fault(request):
            return
        outcome = self.sim.handle_request(request)
        for message in outcome.messages:
            self.publish(message)
        if outcome.full_report:
            self.push_full()
        elif outcome.changed:
            self.push(time.monotonic(), force=True)

    def _apply_one_shot_fault(self, request: Json) -> bool:
        """Ignore or refuse this command if a test asked for it; True when handled."""
        if self.ignore_next:
            self.ignore_next = False
            return True
        if self.refuse_next is not None:
            reason, self.refuse_next = self.refuse_next, None
            for kind, body in request.items():
                if isinstance(body, dict):
                    self.publish({kind: {**body, "result": "failed", "reason": reason}})
            return True
        return False

    # -- control ----------------------------------------------------------------------------------

    def dispatch(self, request: Json) -> Json:
        """Run one control request; never raises (errors go into the reply)."""
        reply: Json = {"id": request.get("id")}
        try:
            reply["result"] = self._control(str(request.get("op")), request)
            reply["ok"] = True
        except Exception as err:
            reply.update(ok=False, error=f"{type(err).__name__}: {err}")
        return reply

    def _control(self, op: str, args: Json) -> Any:
        sim = self.sim
        match op:
            case "status":
                return {
                    "connected": self.connected,
                    "silent": self.silent,
                    "gcode_state": sim.state.get("gcode_state"),
                    "pushes": self.pushes,
                    "signed_commands": sim.signed_commands,
                }
            case "state":
                return sim.full_report_body()
            case "set_state":
                sim.merge(args["patch"])
            case "push":
                if args.get("full", True):
                    self.push_full()
                else:
                    self.push(time.monotonic(), force=True)
                return None
            case "fault":
                self._fault(str(args["name"]), args)
                return None
            case "publish_raw":
                self.publish(base64.b64decode(args["data"]), args.get("topic"))
                return None
            case "start_job":
                sim.start_job(**args.get("job", {}))
            case "commands":
                return copy.deepcopy(self.commands)
            case "clear_commands":
                self.commands.clear()
                return None
            case "time_scale":
                sim.time_scale = float(args["value"])
                return None
            case "door":
                sim.set_door(bool(args["open"]))
            case "hms":
                sim.state["hms"] = [*sim.state.get("hms", []), _hms(args)]
            case "clear_hms":
                sim.state["hms"] = []
            case "print_error":
                sim.state["print_error"] = int(args["code"])
            case "add_ams":
                sim.ams.add_unit(int(args["unit"]), str(args["type"]), int(args.get("extruder", 0)))
            case "remove_ams":
                sim.ams.remove_unit(int(args["unit"]))
            case "runout":
                sim.ams.runout(int(args["unit"]), int(args["slot"]))
                if sim.state.get("gcode_state") in PRINTING:
                    sim.state["gcode_state"] = "PAUSE"
                    sim.state["hms"] = [*sim.state.get("hms", []), _hms(RUNOUT_HMS)]
            case "shutdown":
                self.stopping = True
                return None
            case _:
                raise ValueError(f"unknown op {op!r}")
        self.push(time.monotonic(), force=True)  # a state change: tell clients right away
        return None

    def _fault(self, name: str, args: Json) -> None:
        match name:
            case "silent":
                self.silent = True
            case "resume":
                self.silent = False
                self.push(time.monotonic(), force=True)
            case "malformed":
                self.publish(self._malformed(str(args.get("kind", "invalid_json"))))
            case "refuse_next":
                self.refuse_next = str(args.get("reason") or "refused by test")
            case "ignore_next":
                self.ignore_next = True
            case "signed_commands":
                self.sim.set_signed_commands(bool(args.get("required", True)))
                self.push(time.monotonic(), force=True)
            case "flood":
                # `count` reports back to back, each moving one field: the Wi-Fi signal
                # ("-<30 + i % 60>dBm") or a numeric field given as `field` (i).
                field = str(args.get("field", "wifi_signal"))
                for i in range(int(args.get("count", 1000))):
                    wifi = field == "wifi_signal"
                    self.sim.state[field] = f"-{30 + i % 60}dBm" if wifi else i
                    self.push(time.monotonic(), force=True)
            case _:
                raise ValueError(f"unknown fault {name!r}")

    def _malformed(self, kind: str) -> bytes:
        """A broken report of the given kind (see MALFORMED_KINDS)."""
        fixed: dict[str, bytes] = {
            "invalid_json": b'{"print": {"command": "push_status", "gcode_state": "RUNN',
            "array": b'[{"print": {"command": "push_status", "msg": 0}}]',
            "scalar": b"42",
            "not_utf8": b'\xff\xfe{"print": \x00}',
            "empty": b"",
        }
        if kind in fixed:
            return fixed[kind]
        full = self.sim.spec.full_reports
        body = self.sim.full_report_body() if full else {}
        match kind:
            case "print_not_object":
                return json.dumps({"print": "RUNNING"}).encode()
            case "wrong_types":
                body.update(_WRONG_TYPES)
            case "unknown_enum":
                body.update(_UNKNOWN_ENUMS)
            case "huge":
                body["subtask_name"] = "x" * HUGE_SIZE
            case _:
                raise ValueError(f"unknown malformed kind {kind!r}; one of {MALFORMED_KINDS}")
        return json.dumps(self._report(body, full=full)).encode()

    # -- main loop --------------------------------------------------------------------------------

    def run(self, stop_requested: Callable[[], bool], control: StdioControl | None) -> None:
        """Serve until asked to stop (or until the controlling parent goes away)."""
        announced = False
        last = time.monotonic()
        while not (stop_requested() or self.stopping):
            now = time.monotonic()
            self.network_step(now)
            if control is not None:
                if self.connected and not announced:
                    control.reply({"id": 0, "ok": True, "result": "ready"})
                    announced = True
                requests = control.poll()
                if requests is None:
                    break  # parent closed the pipe
                for request in requests:
                    control.reply(self.dispatch(request))
            now = time.monotonic()
            self.sim.step(now - last)
            last = now
            self.push(now)
        self.client.disconnect()
        self.client.loop(timeout=0.05)


_WRONG_TYPES: Final[Json] = {
    "mc_percent": "lots",
    "nozzle_temper": "hot",
    "bed_temper": None,
    "layer_num": [1],
    "gcode_state": 7,
    "hms": "none",
    "lights_report": {"node": "chamber_light"},
    "ams": "x",
    "wifi_signal": -53,
    "spd_lvl": "fast",
    "print_error": "E",
    "fun": "xyz",
    "cooling_fan_speed": 99,
    "mc_remaining_time": {"minutes": 3},
}
_UNKNOWN_ENUMS: Final[Json] = {
    "gcode_state": "WARP_DRIVE",
    "stg_cur": 999,
    "spd_lvl": 9,
    "print_type": "teleport",
    "lights_report": [{"node": "plasma_light", "mode": "strobe"}],
    "hms": [{"attr": 0x7F000000, "code": 0x0009FFFF}],
}


def _is_command(request: Json) -> bool:
    """Commands are what one-shot faults act on; pushall and get_version are not."""
    for kind, body in request.items():
        command = body.get("command") if isinstance(body, dict) else None
        if kind != "pushing" and not (kind == "info" and command == "get_version"):
            return True
    return False


def _hms(args: Json) -> Json:
    return {"attr": int(args["attr"]), "code": int(args["code"])}


class StdioControl:
    """Control requests as JSON lines on stdin, replies as JSON lines on stdout."""

    def __init__(self) -> None:
        self._fd = sys.stdin.fileno()
        self._buffer = b""

    def poll(self, timeout: float = 0) -> list[Json] | None:
        """Requests that arrived (waiting up to `timeout`); None once stdin is closed."""
        readable, _, _ = select.select([self._fd], [], [], timeout)
        if readable:
            chunk = os.read(self._fd, 1 << 20)
            if not chunk:
                return None
            self._buffer += chunk
        *lines, self._buffer = self._buffer.split(b"\n")
        requests = []
        for line in lines:
            if not line.strip():
                continue
            try:
                request = json.loads(line)
            except ValueError:
                request = {"op": "invalid"}
            requests.append(request if isinstance(request, dict) else {"op": "invalid"})
        return requests

    def first_request(self, stop_requested: Callable[[], bool]) -> Json | None:
        """Block until one request arrives (later ones stay queued); None if stdin closes."""
        while not stop_requested():
            requests = self.poll(timeout=0.1)
            if requests is None:
                return None
            if requests:
                rest = b"".join(json.dumps(request).encode() + b"\n" for request in requests[1:])
                self._buffer = rest + self._buffer
                return requests[0]
        return None

    @staticmethod
    def reply(message: Json) -> None:
        sys.stdout.write(json.dumps(message) + "\n")
        sys.stdout.flush()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tests.virtual_printer.firmware",
        description="Without --serial (and with stdio control) the first stdin line is the "
        'configuration: {"serial", "port", "password", "model", "time_scale", '
        '"push_interval", "demo_print", "quirks", "log"}. That lets a process start (and import '
        "paho) "
        "before anyone knows which printer it will be.",
    )
    parser.add_argument("--serial")
    parser.add_argument("--model", choices=MODELS, default="X1C")
    parser.add_argument("--port", type=int, help="the broker's firmware listener")
    parser.add_argument("--time-scale", type=float, default=1.0)
    parser.add_argument("--push-interval", type=float, default=1.0)
    parser.add_argument("--demo-print", action="store_true")
    parser.add_argument("--control", choices=("stdio", "none"), default="stdio")
    parser.add_argument("-v", "--verbose", action="store_true")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the firmware process."""
    args = _parser().parse_args(argv)
    stop = False

    def request_stop(_signum: int, _frame: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    control = StdioControl() if args.control == "stdio" else None
    config: Json = vars(args)
    if args.serial is None:
        first = control.first_request(lambda: stop) if control is not None else None
        if first is None:
            return 0
        config.update(first)
    if config.get("log"):  # a pre-started process learns where to log only now
        with open(config["log"], "ab") as log:
            os.dup2(log.fileno(), sys.stderr.fileno())
    logging.basicConfig(
        level=logging.DEBUG if config.get("verbose") else logging.WARNING,
        format="%(asctime)s firmware %(levelname)s %(message)s",
        stream=sys.stderr,
    )
    spec = spec_for(str(config["model"]))
    ams = bool(config.get("ams", True))
    sim = PrinterSim(
        spec,
        str(config["serial"]),
        initial_state(spec, ams=ams),
        time_scale=float(config["time_scale"]),
        ams=ams,
    )
    if config.get("demo_print"):
        sim.start_job("demo")
    firmware = Firmware(
        sim,
        port=int(config["port"]),
        password=config.get("password") or os.environ.get(PASSWORD_ENV, ""),
        push_interval=float(config["push_interval"]),
        quirks=frozenset(config.get("quirks") or ()),
    )
    firmware.run(lambda: stop, control)
    return 0


if __name__ == "__main__":
    sys.exit(main())
