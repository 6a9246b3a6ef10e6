"""`VirtualPrinter`: one printer (broker + firmware process) and the handle tests drive it with.

Every method is synchronous and returns within milliseconds (broker restarts: ~0.1-0.3 s), so
the same handle serves plain tests and Home Assistant's async tests: nothing here needs the
event loop, and no thread is started in the calling process.
"""

from __future__ import annotations

import asyncio
import atexit
import base64
from collections.abc import Callable, Iterable, Mapping
from functools import cache
import json
import os
from pathlib import Path
import select
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Any, Final, Self

from .broker import HOST, Broker, check_secret, die_with_parent
from .camera import CameraProcess
from .ftps import FULL_PATH_MODELS
from .models import Json, spec_for
from .pki import PROFILES, ServerIdentity, TestCAs, issue_server

REPO_ROOT: Final = Path(__file__).resolve().parents[2]
JPEG_CAMERA_MODELS: Final = frozenset({"P1S", "A1MINI"})
READY_TIMEOUT: Final = 15.0
CONTROL_TIMEOUT: Final = 10.0


class FirmwareError(RuntimeError):
    """The firmware process failed, or refused a control request."""


class VirtualPrinter:
    """A Bambu-like printer on 127.0.0.1: real mosquitto over the printer's TLS chain, plus a
    firmware process that answers like the chosen model.

    Connection facts for a client: `host`, `port`, `serial`, `access_code` (user `bblp`), and
    `ca_dir` (the PEM anchors to trust). The TLS leaf's CN is `serial` (except for the hostile
    profiles) and `fingerprint` is its SHA-256.
    """

    def __init__(
        self,
        cas: TestCAs,
        *,
        serial: str,
        access_code: str,
        model: str = "X1C",
        profile: str = "legacy",
        port: int | None = None,
        ca_dir: Path | None = None,
        time_scale: float = 1.0,
        push_interval: float = 1.0,
        demo_print: bool = False,
        prewarm: bool = False,
        quirks: Iterable[str] = (),
        camera: dict[str, Any] | bool = False,
        ams: bool = True,
        ftps: bool = False,
    ) -> None:
        """`prewarm`: take an already started firmware process and start the next one for
        whoever comes after (saves the ~0.5 s Python needs to import paho). `quirks`: firmware
        oddities of real printers to imitate (`firmware.QUIRKS`).

        `camera`: also run the model's camera, port-6000 JPEG (P1S, A1MINI) or RTSPS (X1C,
        H2D): True, or options for it such as `fps`, `garbage`, `auth`; see
        `camera_server.py`.

        `ftps`: also serve the storage over implicit FTPS (see `start_ftps`)."""
        if profile not in PROFILES:
            raise ValueError(f"unknown profile {profile!r}; one of {PROFILES}")
        check_secret(access_code)
        self.model = spec_for(model).code
        self.profile = profile
        self.serial = serial
        self.host = HOST
        self._cas = cas
        _sweep_stale_workdirs()
        self._workdir = Path(tempfile.mkdtemp(prefix=f"{_WORKDIR_PREFIX}{os.getpid()}-{serial}-"))
        self.ca_dir = ca_dir or self._workdir / "ca"
        if ca_dir is None:
            cas.write_anchors(self.ca_dir)
        self.identity: ServerIdentity  # issued by start()
        self.broker = Broker(None, serial, access_code, port=port, workdir=self._workdir / "broker")
        self._access_code = access_code
        self._firmware_config = {
            "model": self.model,
            "time_scale": time_scale,
            "push_interval": push_interval,
            "demo_print": demo_print,
            "quirks": sorted(quirks),
            "ams": ams,
        }
        self._prewarm = prewarm
        self._camera_options = {} if camera is True else camera or None
        self.camera: CameraProcess | None = None
        self._firmware: subprocess.Popen[bytes] | None = None
        self._buffer = b""
        self._next_id = 1
        self._want_ftps = ftps
        self._ftps: subprocess.Popen[bytes] | None = None
        self.ftps_port = 0
        # The printer's storage, served by the FTPS server: tests may write into it directly.
        self.sdcard = self._workdir / "sdcard"
        for folder in ("timelapse", "cache"):
            (self.sdcard / folder).mkdir(parents=True)

    def __repr__(self) -> str:  # the access code stays out of reprs
        return (
            f"VirtualPrinter(model={self.model!r}, profile={self.profile!r}, "
            f"serial={self.serial!r}, port={self.port})"
        )

    # -- facts ------------------------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The printer's MQTT/TLS port on 127.0.0.1."""
        return self.broker.port

    @property
    def camera_port(self) -> int:
        """The camera's port on 127.0.0.1 (the printer's 6000 or 322; needs `camera=`)."""
        if self.camera is None:
            raise FirmwareError("this virtual printer runs no camera")
        return self.camera.port

    @property
    def access_code(self) -> str:
        """The current `bblp` password."""
        return self._access_code

    @property
    def fingerprint(self) -> str:
        """SHA-256 (lowercase hex) of the leaf certificate currently served."""
        return self.identity.leaf.sha256

    @property
    def anchors(self) -> list[Path]:
        """The CA files in `ca_dir`."""
        return sorted(self.ca_dir.glob("*.pem"))

    # -- lifecycle --------------------------------------------------------------------------------

    def start(self) -> Self:
        """Start the broker and the firmware; return once the printer serves requests."""
        try:
            # The firmware process takes longest to boot (importing paho): launch it first, but
            # tell it its port only once the broker listens there. A client dialling a port that
            # nobody listens on can connect to itself (TCP simultaneous open), and then holds the
            # very port mosquitto is about to bind.
            self._launch_firmware()
            self.identity = issue_server(self.profile, self.serial, self._cas)
            self.broker.set_identity(self.identity)
            self.broker.start()
            self._configure_firmware()
            if self._camera_options is not None:
                self.camera = CameraProcess(
                    self.identity,
                    self._access_code,
                    self._workdir,
                    kind="jpeg" if self.model in JPEG_CAMERA_MODELS else "rtsp",
                    **self._camera_options,
                )
            if self._want_ftps:
                self.start_ftps()
            self._await_ready()
        except BaseException:
            self.close()
            raise
        return self

    def _await_ready(self) -> None:
        """Wait for the firmware's "ready"; a firmware stuck at boot gets one fresh successor.

        A CI run once saw a (pooled) firmware process never report ready, with nothing in its log.
        The broker is up at this point, so a second process tells a stuck process (start over)
        from a broken setup (fail, with both logs).
        """
        try:
            self._await_reply(0, READY_TIMEOUT)
        except FirmwareError as err:
            if "timed out" not in str(err):
                raise
            first = f"{err}\nbroker log:\n{self.broker.log_tail()}"
            stuck, self._firmware = self._firmware, None
            if stuck is not None:
                stuck.kill()
                self._end_firmware(stuck)
            self._buffer = b""
            self._launch_firmware(fresh=True)
            self._configure_firmware()
            try:
                self._await_reply(0, READY_TIMEOUT)
            except FirmwareError as again:
                raise FirmwareError(f"{again}\nbefore that, {first}") from err

    def _launch_firmware(self, *, fresh: bool = False) -> None:
        pooled = self._prewarm and not fresh
        self._firmware = _POOL.take() if pooled else _spawn_firmware_process()
        if pooled:
            _POOL.refill()

    def _configure_firmware(self) -> None:
        process = self._require_firmware()
        assert process.stdin is not None
        config = {
            **self._firmware_config,
            "serial": self.serial,
            "port": self.broker.firmware_port,
            "password": self.broker.firmware_password,
            "log": str(self._workdir / "firmware.log"),
        }
        process.stdin.write(json.dumps(config).encode() + b"\n")
        process.stdin.flush()

    def close(self) -> None:
        """Stop everything and delete the temporary files. Raises if the firmware crashed."""
        crashed = None
        process, self._firmware = self._firmware, None
        if process is not None:
            if process.poll() is not None and process.returncode != 0:
                crashed = f"firmware exited with {process.returncode}:\n{self.firmware_log()}"
            assert process.stdin is not None
            process.stdin.close()  # the firmware starts exiting while the broker stops
        self.stop_ftps()
        self.broker.close()
        camera, self.camera = self.camera, None
        if camera is not None:
            camera.close()
        if process is not None:
            self._end_firmware(process)
        shutil.rmtree(self._workdir, ignore_errors=True)
        if crashed:
            raise FirmwareError(crashed)

    @staticmethod
    def _end_firmware(process: subprocess.Popen[bytes]) -> None:
        assert process.stdin is not None
        assert process.stdout is not None
        try:
            if not process.stdin.closed:
                process.stdin.close()  # the firmware exits when its control pipe closes
            process.wait(timeout=3)
        except subprocess.TimeoutExpired, OSError:
            process.kill()
            process.wait()
        process.stdout.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def firmware_log(self, lines: int = 30) -> str:
        """The end of the firmware's stderr (it logs at WARNING, DEBUG with -v)."""
        try:
            text = (self._workdir / "firmware.log").read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def broker_log(self, lines: int = 30) -> str:
        """The end of mosquitto's log (connections, auth and TLS failures)."""
        return self.broker.log_tail(lines)

    def logins(self) -> int:
        """MQTT logins as `bblp` this printer's broker received so far (see `Broker.logins`)."""
        return self.broker.logins()

    # -- broker faults ----------------------------------------------------------------------------

    def stop_broker(self) -> None:
        """Take the printer off the network: connections drop, the port refuses."""
        self.broker.stop()

    def start_broker(self) -> None:
        """Bring the broker back on the same port; returns once the firmware is back too."""
        self.broker.start()
        self._wait_firmware_connected()

    def restart_broker(self) -> None:
        """Drop every client (stop + start on the same port)."""
        self.broker.restart()
        self._wait_firmware_connected()

    drop_clients = restart_broker

    def set_access_code(self, access_code: str) -> None:
        """Change the access code (the broker restarts, so clients must log in again)."""
        self.broker.set_access_code(access_code)
        self._access_code = access_code
        if self.camera is not None:
            self.camera.call("access_code", value=access_code)
        if self.broker.running:
            self._wait_firmware_connected()

    def reissue_cert(self) -> str:
        """Serve a freshly issued leaf (same serial and profile, new key): returns its SHA-256."""
        return self.serve(issue_server(self.profile, self.serial, self._cas))

    def serve(self, identity: ServerIdentity) -> str:
        """Present another certificate chain (the broker restarts): returns the leaf SHA-256."""
        self.identity = identity
        self.broker.set_identity(identity)
        if self.camera is not None:
            self.camera.serve(identity)
        if self.broker.running:
            self._wait_firmware_connected()
        return self.fingerprint

    # -- storage over FTPS ------------------------------------------------------------------------

    @property
    def timelapse_extension(self) -> str:
        """X1 and H2 record mp4, P1 and A1 avi."""
        return "mp4" if self.model in FULL_PATH_MODELS else "avi"

    def add_file(self, remote_path: str, data: bytes = b"", *, size: int | None = None) -> Path:
        """Put a file on the printer's storage. With `size`, the content is `data` (or a
        pattern) repeated to that many bytes, written without holding it in memory."""
        path = self.sdcard / remote_path.lstrip("/")
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as out:
            if size is None:
                out.write(data)
            else:
                block = (data or bytes(range(256))) * max(1, (1 << 20) // max(1, len(data) or 256))
                written = 0
                while written < size:
                    piece = block[: size - written]
                    out.write(piece)
                    written += len(piece)
        return path

    def add_timelapse(self, stem: str, data: bytes = b"", *, size: int | None = None) -> str:
        """Add a timelapse in this model's format; returns its remote path."""
        remote = f"/timelapse/{stem}.{self.timelapse_extension}"
        self.add_file(remote, data, size=size)
        return remote

    def start_ftps(self, profile: str | None = None, *, delay: float = 0.0) -> int:
        """Serve the storage over implicit FTPS (restarting it if it runs); returns the port.

        `profile` presents another identity (e.g. `unknown_ca`: an impostor), `delay` makes a
        very slow server (seconds before every reply and every data chunk)."""
        self.stop_ftps()
        identity = self.identity
        if profile is not None:
            identity = issue_server(profile, self.serial, self._cas)
        chain, key = identity.write_server_files(self._workdir / "ftps")
        with (self._workdir / "ftps.err").open("ab") as errors:
            process = subprocess.Popen(
                [sys.executable, "-m", "tests.virtual_printer.ftps"],
                cwd=REPO_ROOT,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=errors,
                process_group=0,
                preexec_fn=die_with_parent,  # noqa: PLW1509 - calls one async-signal-safe syscall
            )
        self._ftps = process
        assert process.stdin is not None
        assert process.stdout is not None
        config = {
            "root": str(self.sdcard),
            "chain": str(chain),
            "key": str(key),
            "access_code": self._access_code,
            "model": self.model,
            "port": self.ftps_port,
            "delay": delay,
            "log": str(self._workdir / "ftps.log"),
        }
        process.stdin.write(json.dumps(config).encode() + b"\n")
        process.stdin.flush()
        ready, _, _ = select.select([process.stdout], [], [], READY_TIMEOUT)
        line = process.stdout.readline() if ready else b""
        if not line:
            self.stop_ftps()
            err = (self._workdir / "ftps.err").read_text(errors="replace")
            raise FirmwareError(f"the FTPS server did not start:\n{err[-2000:]}")
        self.ftps_port = json.loads(line)["port"]
        return self.ftps_port

    def stop_ftps(self) -> None:
        """Stop serving FTPS (the port is kept for a restart)."""
        process, self._ftps = self._ftps, None
        if process is None:
            return
        assert process.stdin is not None
        assert process.stdout is not None
        process.stdin.close()
        try:
            process.wait(timeout=3)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        process.stdout.close()

    def ftps_log(self) -> list[Json]:
        """What the FTPS server saw: {"verb", "arg"} per command (PASS arg: "right"/"wrong"),
        plus "TLS" (handshakes) and "DATA" (data connections: "resumed" or "new session")."""
        try:
            text = (self._workdir / "ftps.log").read_text()
        except OSError:
            return []
        return [json.loads(line) for line in text.splitlines() if line]

    def _wait_firmware_connected(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT
        while not self.status()["connected"]:
            if time.monotonic() > deadline:
                raise FirmwareError(f"firmware did not reconnect:\n{self.firmware_log()}")
            time.sleep(0.02)

    # -- firmware control -----------------------------------------------------------------------

    def fault(self, name: str, **params: Any) -> None:
        """Firmware faults: "silent" (stay connected, publish nothing, ignore requests) and
        "resume"; "malformed" with kind= one of firmware.MALFORMED_KINDS; "refuse_next"
        (optional reason=: the next command gets result "failed"); "ignore_next" (no ack);
        "signed_commands" (required=True/False: set `print.fun` bit 0x20000000 and refuse every
        command but ledctrl); "flood" (count=N reports back to back, each moving one field:
        field="wifi_signal" (the default) says -<30 + i % 60>dBm, another numeric field gets
        i)."""
        self._call("fault", name=name, **params)

    def publish_raw(self, data: bytes, topic: str | None = None) -> None:
        """Publish exactly these bytes on the report topic (or `topic`)."""
        self._call("publish_raw", data=base64.b64encode(data).decode(), topic=topic)

    def set_state(self, patch: Mapping[str, Any]) -> None:
        """Deep-merge a raw `print` patch (protocol field names) and push the change."""
        self._call("set_state", patch=dict(patch))

    def state(self) -> Json:
        """The firmware's whole `print` object as it stands."""
        result: Json = self._call("state")
        return result

    def status(self) -> Json:
        """{"connected", "silent", "gcode_state", "pushes", "signed_commands"}."""
        result: Json = self._call("status")
        return result

    def push(self, *, full: bool = True) -> None:
        """Publish now: the full state (msg 0), or the pending delta."""
        self._call("push", full=full)

    def start_job(
        self,
        name: str = "demo",
        *,
        layers: int = 50,
        minutes: float = 30.0,
        prepare_minutes: float = 2.0,
    ) -> None:
        """Start a print (PREPARE, RUNNING, FINISH) that lasts `minutes` of simulated time."""
        job = {"name": name, "layers": layers, "minutes": minutes}
        self._call("start_job", job={**job, "prepare_minutes": prepare_minutes})

    def set_time_scale(self, scale: float) -> None:
        """Simulated seconds per real second."""
        self._call("time_scale", value=scale)

    def set_door(self, is_open: bool) -> None:
        """Open or close the door (X1C and H2D only)."""
        self._call("door", open=is_open)

    def raise_hms(self, attr: int, code: int) -> None:
        """Add an HMS entry."""
        self._call("hms", attr=attr, code=code)

    def clear_hms(self) -> None:
        """Remove every HMS entry."""
        self._call("clear_hms")

    def set_print_error(self, code: int) -> None:
        """Set `print_error` (0 clears it)."""
        self._call("print_error", code=code)

    def add_ams(self, unit: int, kind: str, extruder: int = 0) -> None:
        """Plug in an AMS unit ("ams", "ams_lite", "n3f" = AMS 2 Pro, "n3s" = AMS HT)."""
        self._call("add_ams", unit=unit, type=kind, extruder=extruder)

    def remove_ams(self, unit: int) -> None:
        """Unplug an AMS unit."""
        self._call("remove_ams", unit=unit)

    def runout(self, unit: int, slot: int) -> None:
        """The spool in this AMS slot runs out (a running print pauses with an HMS code)."""
        self._call("runout", unit=unit, slot=slot)

    def received_commands(self) -> list[Json]:
        """Every JSON object received on the request topic, oldest first."""
        result: list[Json] = self._call("commands")
        return result

    def clear_commands(self) -> None:
        """Forget the requests received so far."""
        self._call("clear_commands")

    def wait_for_command(self, command: str, within: float = 5.0) -> Json:
        """Block until a request whose `command` is `command` arrived; return it."""
        deadline = time.monotonic() + within
        while (found := self._find_command(command)) is None:
            if time.monotonic() > deadline:
                raise TimeoutError(f"no {command!r} request within {within} s")
            time.sleep(0.02)
        return found

    async def async_wait_for_command(self, command: str, within: float = 5.0) -> Json:
        """Like `wait_for_command`, but lets the event loop run while waiting."""
        deadline = time.monotonic() + within
        while (found := self._find_command(command)) is None:
            if time.monotonic() > deadline:
                raise TimeoutError(f"no {command!r} request within {within} s")
            await asyncio.sleep(0.02)  # the firmware is another process: polling is the way
        return found

    def _find_command(self, command: str) -> Json | None:
        for request in self.received_commands():
            for body in request.values():
                if isinstance(body, dict) and body.get("command") == command:
                    return request
        return None

    # -- control pipe ---------------------------------------------------------------------------

    def _call(self, op: str, **args: Any) -> Any:
        process = self._require_firmware()
        assert process.stdin is not None
        request_id, self._next_id = self._next_id, self._next_id + 1
        try:
            process.stdin.write(json.dumps({"id": request_id, "op": op, **args}).encode() + b"\n")
            process.stdin.flush()
        except BrokenPipeError:
            raise FirmwareError(f"firmware is gone:\n{self.firmware_log()}") from None
        reply = self._await_reply(request_id, CONTROL_TIMEOUT)
        if not reply.get("ok"):
            raise FirmwareError(f"{op}: {reply.get('error')}")
        return reply.get("result")

    def _require_firmware(self) -> subprocess.Popen[bytes]:
        if self._firmware is None:
            raise FirmwareError("the virtual printer is not running")
        return self._firmware

    def _await_reply(self, request_id: int, timeout: float) -> Json:
        process = self._require_firmware()
        assert process.stdout is not None
        fd = process.stdout.fileno()
        deadline = time.monotonic() + timeout
        while True:
            while b"\n" in self._buffer:
                line, self._buffer = self._buffer.split(b"\n", 1)
                reply: Json = json.loads(line)
                if reply.get("id") == request_id:
                    return reply
            remaining = deadline - time.monotonic()
            readable, _, _ = select.select([fd], [], [], max(0.0, remaining))
            chunk = os.read(fd, 1 << 20) if readable else b""
            if not chunk:
                why = "timed out" if not readable else "exited"
                raise FirmwareError(
                    f"firmware {why} (request {request_id}):\n{self.firmware_log()}"
                )
            self._buffer += chunk


_WORKDIR_PREFIX: Final = "virtual-printer-"


@cache
def _sweep_stale_workdirs() -> None:
    """Once per process: delete work dirs whose owner died without cleaning up (killed runs)."""
    for path in Path(tempfile.gettempdir()).glob(f"{_WORKDIR_PREFIX}*"):
        owner = path.name.removeprefix(_WORKDIR_PREFIX).split("-", 1)[0]
        if owner.isdigit() and not Path(f"/proc/{owner}").exists():
            shutil.rmtree(path, ignore_errors=True)


def _spawn_firmware_process() -> subprocess.Popen[bytes]:
    """A firmware process that waits for its configuration on stdin."""
    return subprocess.Popen(
        [sys.executable, "-m", "tests.virtual_printer.firmware"],
        cwd=REPO_ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,  # until it is told its log file
        # own process group: a terminal's Ctrl-C reaches only us, and we stop it
        process_group=0,
        preexec_fn=die_with_parent,  # noqa: PLW1509 - calls one async-signal-safe syscall
    )


class _FirmwarePool:
    """One spare firmware process, started ahead of the printer that will use it."""

    def __init__(self) -> None:
        self._spare: subprocess.Popen[bytes] | None = None

    def take(self) -> subprocess.Popen[bytes]:
        spare, self._spare = self._spare, None
        if spare is None or spare.poll() is not None:
            return _spawn_firmware_process()
        return spare

    def refill(self) -> None:
        if self._spare is None:
            self._spare = _spawn_firmware_process()

    def close(self) -> None:
        spare, self._spare = self._spare, None
        if spare is not None:
            VirtualPrinter._end_firmware(spare)


_POOL = _FirmwarePool()
atexit.register(_POOL.close)


type PrinterFactory = Callable[..., VirtualPrinter]
