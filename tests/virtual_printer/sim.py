"""The simulated printer: report state, heaters, a print job, and command handling.

Pure logic, no network: the firmware process (`firmware.py`) feeds it requests and clock ticks
and publishes what it returns. The report state is kept exactly as the protocol carries it (the
`print` object), so tests can patch any field with `merge`; only temperatures have float
shadows (`Heater`), because H2D packs whole degrees and a ramp must not stall on rounding.
"""

from __future__ import annotations

from collections.abc import Mapping
import copy
from dataclasses import dataclass, field
import math
import re
from typing import Any, TypeGuard

from .ams import AmsSim
from .models import (
    AMBIENT,
    AUTO_RECOVERY_BIT,
    DOOR_BIT,
    PROMPT_SOUND_BIT,
    SIGNED_COMMANDS_BIT,
    Json,
    ModelSpec,
    pack_temp,
    unpack_temp,
    version_modules,
)

PRINTING = frozenset({"PREPARE", "RUNNING"})
ACTIVE_JOB = frozenset({"PREPARE", "RUNNING", "PAUSE"})
CANCELLED_BY_USER = 0x0300400C  # print_error after `stop`
PREPARE_STAGES = (2, 13, 1, 7)  # heatbed preheating, homing, bed leveling, heating hotend
STAGE_PRINTING = 0
STAGE_PAUSED_BY_USER = 16
SPEED_MAGNITUDES = {1: 50, 2: 100, 3: 124, 4: 166}
# What signed-command firmware answers to an unsigned command.
SIGNATURE_REASON = "mqtt message verify failed"
SIGNATURE_ERR_CODE = 84033543
_GCODE_ARG = re.compile(r"([A-Z])(-?\d+(?:\.\d+)?)")


def deep_merge(target: Json, patch: Mapping[str, Any]) -> None:
    """Merge `patch` into `target` in place; lists of `{"id": ...}` dicts merge by id."""
    for key, value in patch.items():
        current = target.get(key)
        if isinstance(value, Mapping) and isinstance(current, dict):
            deep_merge(current, value)
        elif _by_id(value) and _by_id(current):
            _merge_by_id(current, value)
        else:
            target[key] = copy.deepcopy(value)


def _by_id(value: object) -> TypeGuard[list[Json]]:
    return (
        isinstance(value, list)
        and bool(value)
        and all(isinstance(item, dict) and "id" in item for item in value)
    )


def _merge_by_id(current: list[Json], patch: list[Json]) -> None:
    index = {item["id"]: item for item in current}
    for item in patch:
        if item["id"] in index and not _is_empty_slot(item):
            deep_merge(index[item["id"]], item)
        elif item["id"] in index:  # an emptied slot replaces the old tray entirely
            position = current.index(index[item["id"]])
            current[position] = copy.deepcopy(item)
        else:
            current.append(copy.deepcopy(item))


def _is_empty_slot(item: Json) -> bool:
    return set(item) <= {"id", "state"}


def diff(old: Json, new: Json) -> Json:
    """The delta report that turns `old` into `new` (changed fields only, lists by id)."""
    delta: Json = {}
    for key, value in new.items():
        if key in old and old[key] == value:
            continue
        before = old.get(key)
        if isinstance(value, dict) and isinstance(before, dict):
            nested = diff(before, value)
            if nested:
                delta[key] = nested
        elif _by_id(value) and _by_id(before):
            entries = _diff_by_id(before, value)
            if entries:
                delta[key] = entries
        else:  # scalars, and lists such as hms / lights_report that are sent whole
            delta[key] = copy.deepcopy(value)
    return delta


def _diff_by_id(old: list[Json], new: list[Json]) -> list[Json]:
    index = {item["id"]: item for item in old}
    entries = []
    for item in new:
        before = index.get(item["id"])
        if before is None or _is_empty_slot(item):
            if before != item:
                entries.append(copy.deepcopy(item))
            continue
        changed = diff(before, item)
        if changed:
            entries.append({"id": item["id"], **changed})
    return entries


@dataclass
class Heater:
    """First-order thermal model: moves towards target (or ambient when off)."""

    current: float = AMBIENT
    target: float = 0.0
    tau: float = 10.0  # simulated seconds to close ~63 % of the gap

    def step(self, dt: float, passive_target: float = AMBIENT) -> None:
        goal = self.target if self.target > 0 else passive_target
        gap = goal - self.current
        if abs(gap) < 0.3:
            self.current = goal
        else:
            self.current += gap * (1 - math.exp(-dt / self.tau))


@dataclass
class Job:
    """A print in progress, in simulated seconds."""

    name: str
    layers: int
    print_seconds: float
    prepare_seconds: float
    prepared: float = 0.0
    printed: float = 0.0


@dataclass
class Outcome:
    """What a request produced: messages to publish, and whether a full push is wanted."""

    messages: list[Json] = field(default_factory=list)
    full_report: bool = False
    changed: bool = False


class PrinterSim:
    """One printer's behaviour behind its MQTT topics."""

    def __init__(
        self, spec: ModelSpec, serial: str, state: Json, *, time_scale: float, ams: bool = True
    ) -> None:
        self.spec = spec
        self.serial = serial
        self.state = state
        self.time_scale = time_scale
        self.has_ams = ams
        self.ams = AmsSim(state, spec.code)
        self.job: Job | None = None
        self.heaters = {"bed": Heater(tau=40.0), "chamber": Heater(tau=180.0)}
        for nozzle in range(2 if spec.dual_nozzle else 1):
            self.heaters[f"nozzle{nozzle}"] = Heater(tau=8.0)
        self._render_temperatures()

    # -- time ---------------------------------------------------------------------------------

    def step(self, real_dt: float) -> None:
        """Advance the simulation by `real_dt` wall-clock seconds."""
        dt = real_dt * self.time_scale
        if dt <= 0:
            return
        for name, heater in self.heaters.items():
            passive = AMBIENT
            if name == "chamber":  # no chamber heater on most models: the bed warms it
                passive = AMBIENT + (self.heaters["bed"].current - AMBIENT) * 0.25
            heater.step(dt, passive)
        self._advance_job(dt)
        self.ams.step(dt, printing=self.state.get("gcode_state") == "RUNNING")
        self._render_temperatures()

    def _advance_job(self, dt: float) -> None:
        job, state = self.job, self.state
        if job is None:
            return
        if state.get("gcode_state") == "PREPARE":
            job.prepared += dt
            stage_length = job.prepare_seconds / len(PREPARE_STAGES)
            index = min(int(job.prepared / stage_length), len(PREPARE_STAGES) - 1)
            state["stg_cur"] = PREPARE_STAGES[index]
            # the download to the printer is the first thing PREPARE shows progress for
            state["gcode_file_prepare_percent"] = str(
                min(100, int(job.prepared / stage_length * 100))
            )
            if job.prepared >= job.prepare_seconds:
                state.update(gcode_state="RUNNING", stg_cur=STAGE_PRINTING, mc_print_stage="2")
                state["gcode_file_prepare_percent"] = "100"
        elif state.get("gcode_state") == "RUNNING":
            job.printed += dt * self._speed_factor()
            self._render_progress(job)

    def _speed_factor(self) -> float:
        magnitude = self.state.get("spd_mag", 100)
        return magnitude / 100 if isinstance(magnitude, int | float) and magnitude > 0 else 1.0

    def _render_progress(self, job: Job) -> None:
        state = self.state
        fraction = min(1.0, job.printed / job.print_seconds)
        left = max(0.0, job.print_seconds - job.printed) / self._speed_factor()
        state["mc_percent"] = int(fraction * 100)
        state["layer_num"] = min(job.layers, int(fraction * job.layers) + 1)
        state["mc_remaining_time"] = math.ceil(left / 60)
        state["cooling_fan_speed"] = "15" if state["layer_num"] >= 2 else "0"
        state["big_fan1_speed"] = "10"
        if self.spec.chamber_sensor:
            state["big_fan2_speed"] = "6"
        if fraction >= 1.0:
            self._end_job("FINISH")
        self._mirror_remaining_time()

    def _mirror_remaining_time(self) -> None:
        if self.spec.dual_nozzle:  # H2 duplicates the remaining minutes
            self.state["remain_time"] = self.state.get("mc_remaining_time", 0)

    # -- temperatures -------------------------------------------------------------------------

    def _active_nozzle(self) -> int:
        if not self.spec.dual_nozzle:
            return 0
        extruder_state = self.state.get("device", {}).get("extruder", {}).get("state", 0)
        return (extruder_state >> 4) & 0xF if isinstance(extruder_state, int) else 0

    def _render_temperatures(self) -> None:
        state, heaters = self.state, self.heaters
        # The top-level nozzle fields follow nozzle 0 (on the H2D: right, whatever is active).
        nozzle, bed, chamber = heaters["nozzle0"], heaters["bed"], heaters["chamber"]
        state["nozzle_temper"] = round(nozzle.current, 1)
        state["nozzle_target_temper"] = float(round(nozzle.target))
        state["bed_temper"] = round(bed.current, 1)
        state["bed_target_temper"] = float(round(bed.target))
        if self.spec.chamber_sensor:
            state["chamber_temper"] = round(chamber.current, 1)
        hot = nozzle.current > 50 or (self.spec.dual_nozzle and heaters["nozzle1"].current > 50)
        state["heatbreak_fan_speed"] = "15" if hot else "0"
        if not self.spec.dual_nozzle:
            return
        device = state["device"]
        for entry in device["extruder"]["info"]:
            heater = heaters.get(f"nozzle{entry.get('id')}")
            if heater is not None:
                entry["temp"] = pack_temp(heater.current, heater.target)
        device["bed"]["info"]["temp"] = pack_temp(bed.current, bed.target)
        device["ctc"]["info"]["temp"] = pack_temp(chamber.current, chamber.target)

    def _adopt_temperatures(self, patch: Mapping[str, Any]) -> None:
        """Let a test's state patch move the heaters (else the next render would undo it)."""
        fields = {
            "nozzle_temper": ("nozzle0", "current"),
            "nozzle_target_temper": ("nozzle0", "target"),
            "bed_temper": ("bed", "current"),
            "bed_target_temper": ("bed", "target"),
            "chamber_temper": ("chamber", "current"),
        }
        for key, (heater, attribute) in fields.items():
            value = patch.get(key)
            if isinstance(value, int | float) and not isinstance(value, bool):
                setattr(self.heaters[heater], attribute, float(value))
        device = patch.get("device")
        if not (self.spec.dual_nozzle and isinstance(device, Mapping)):
            return
        for entry in device.get("extruder", {}).get("info", []):
            if isinstance(entry, Mapping) and isinstance(entry.get("temp"), int):
                self._adopt_packed(f"nozzle{entry.get('id')}", entry["temp"])
        for part, heater in (("bed", "bed"), ("ctc", "chamber")):
            packed = device.get(part, {}).get("info", {}).get("temp")
            if isinstance(packed, int):
                self._adopt_packed(heater, packed)

    def _adopt_packed(self, name: str, packed: int) -> None:
        heater = self.heaters.get(name)
        if heater is not None:
            current, target = unpack_temp(packed)
            heater.current, heater.target = float(current), float(target)

    # -- state changes driven by tests ----------------------------------------------------------

    def merge(self, patch: Mapping[str, Any]) -> None:
        """Deep-merge a raw `print` patch into the state."""
        deep_merge(self.state, patch)
        self._adopt_temperatures(patch)
        self._render_temperatures()

    def start_job(
        self,
        name: str = "demo",
        *,
        layers: int = 50,
        minutes: float = 30.0,
        prepare_minutes: float = 2.0,
    ) -> None:
        """Start a print: PREPARE (heating, homing, leveling), RUNNING, then FINISH."""
        self.job = Job(name, max(1, layers), max(1.0, minutes * 60), max(0.1, prepare_minutes * 60))
        nozzle = self.heaters[f"nozzle{self._active_nozzle()}"]
        nozzle.target, self.heaters["bed"].target = 220.0, 60.0
        self.state.update(
            gcode_state="PREPARE",
            print_type="local",
            subtask_name=name,
            gcode_file=self.spec.gcode_file.replace("demo", name),
            gcode_file_prepare_percent="0",
            mc_percent=0,
            mc_remaining_time=math.ceil(minutes),
            mc_print_stage="2",
            layer_num=0,
            total_layer_num=self.job.layers,
            stg=list(PREPARE_STAGES),
            stg_cur=PREPARE_STAGES[0],
            print_error=0,
        )
        self._mirror_remaining_time()
        self._render_temperatures()

    def _end_job(self, gcode_state: str) -> None:
        for heater in self.heaters.values():
            heater.target = 0.0
        state = self.state
        state.update(gcode_state=gcode_state, stg_cur=self.spec.idle_stage, stg=[])
        state.update(cooling_fan_speed="0", big_fan1_speed="0", big_fan2_speed="0")
        state["mc_print_stage"] = "1"
        if gcode_state == "FINISH":
            state.update(mc_percent=100, mc_remaining_time=0)
            state["layer_num"] = state.get("total_layer_num", 0)
        else:
            state["print_error"] = CANCELLED_BY_USER
        self._mirror_remaining_time()
        self._render_temperatures()
        self.job = None

    def set_door(self, is_open: bool) -> None:
        """Open or close the door (X1: `home_flag`, H2: `stat`)."""
        if self.spec.door is None:
            raise ValueError(f"{self.spec.code} has no door sensor")
        if self.spec.door == "home_flag":
            flag = self.state["home_flag"]
            self.state["home_flag"] = flag | DOOR_BIT if is_open else flag & ~DOOR_BIT
        else:
            stat = int(self.state["stat"], 16)
            stat = stat | DOOR_BIT if is_open else stat & ~DOOR_BIT
            self.state["stat"] = f"{stat:08X}"

    def set_signed_commands(self, required: bool) -> None:
        """Set or clear the `fun` bit that says commands must be signed."""
        fun = int(self.state.get("fun", "0"), 16)
        fun = fun | SIGNED_COMMANDS_BIT if required else fun & ~SIGNED_COMMANDS_BIT
        self.state["fun"] = f"{fun:X}"

    @property
    def signed_commands(self) -> bool:
        """Whether the printer currently refuses unsigned commands."""
        try:
            return bool(int(self.state.get("fun", "0"), 16) & SIGNED_COMMANDS_BIT)
        except TypeError, ValueError:
            return False

    # -- requests from clients ------------------------------------------------------------------

    def handle_request(self, request: Json) -> Outcome:
        """Act on one request object (`{"<type>": {...}}`) and say what to publish."""
        outcome = Outcome()
        for kind, body in request.items():
            if isinstance(body, dict):
                self._handle(kind, body, outcome)
        return outcome

    def _handle(self, kind: str, body: Json, outcome: Outcome) -> None:
        command = body.get("command")
        if kind == "pushing":
            # pushall (and the watchdog's "start") are answered with the full state, no ack
            outcome.full_report = command in {"pushall", "start"}
            return
        if kind == "info" and command == "get_version":
            modules = version_modules(self.spec, self.serial, ams=self.has_ams)
            outcome.messages.append(_ack(kind, body, "success", module=modules))
            return
        if kind not in {"print", "system", "info", "upgrade", "camera", "xcam"}:
            return  # printers ignore what they do not know
        if self.signed_commands and not (kind == "system" and command == "ledctrl"):
            ack = _ack(kind, body, "failed", reason=SIGNATURE_REASON, err_code=SIGNATURE_ERR_CODE)
            outcome.messages.append(ack)
            return
        before = copy.deepcopy(self.state)
        error = self._act(kind, str(command), body)
        if error:
            outcome.messages.append(_ack(kind, body, "failed", reason=error))
        else:
            outcome.messages.append(_ack(kind, body, "success"))
        outcome.changed = before != self.state

    def _act(self, kind: str, command: str, body: Json) -> str | None:
        """Apply a command; return why it failed, or None."""
        if kind == "system" and command == "ledctrl":
            return self._ledctrl(body)
        if kind == "xcam" and command == "xcam_control_set":
            return self._xcam_control(body)
        if kind != "print":
            return None
        match command:
            case "print_option":
                return self._print_option(body)
            case "set_airduct":
                return self._set_airduct(body.get("modeId"))
            case "buzzer_ctrl":
                return (
                    None if body.get("mode") in (0, 1, 2) else f"invalid mode {body.get('mode')!r}"
                )
            case "pause" | "resume" | "stop":
                return self._job_control(command)
            case "print_speed":
                return self._print_speed(body.get("param"))
            case "gcode_line":
                return self._gcode(body.get("param"))
            case (
                "ams_filament_drying"
                | "ams_filament_setting"
                | "ams_get_rfid"
                | "extrusion_cali_set"
                | "ams_change_filament"
            ):
                return self.ams.handle(command, body)
            case "project_file":
                name = str(body.get("subtask_name") or "project")
                self.start_job(name.removesuffix(".3mf").removesuffix(".gcode"))
        return None

    def _job_control(self, command: str) -> str | None:
        state = self.state
        gcode_state = state.get("gcode_state")
        if command == "pause":
            if gcode_state not in PRINTING:
                return f"cannot pause in state {gcode_state}"
            state.update(gcode_state="PAUSE", stg_cur=STAGE_PAUSED_BY_USER)
        elif command == "resume":
            if gcode_state != "PAUSE":
                return f"cannot resume in state {gcode_state}"
            prepared = self.job is None or self.job.prepared >= self.job.prepare_seconds
            state["gcode_state"] = "RUNNING" if prepared else "PREPARE"
            state["stg_cur"] = STAGE_PRINTING if prepared else PREPARE_STAGES[0]
        else:
            if gcode_state not in ACTIVE_JOB:
                return f"cannot stop in state {gcode_state}"
            self._end_job("FAILED")
        return None

    def _ledctrl(self, body: Json) -> str | None:
        node, mode = body.get("led_node"), body.get("led_mode")
        if mode not in {"on", "off", "flashing"}:
            return f"invalid led_mode {mode!r}"
        if node == "heatbed_light" and self.spec.dual_nozzle:
            return None  # accepted, but H2 never reports this light
        for entry in self.state.get("lights_report", []):
            if entry.get("node") == node:
                entry["mode"] = mode
                return None
        return f"unknown led_node {node!r}"

    def _xcam_control(self, body: Json) -> str | None:
        module, control = body.get("module_name"), body.get("control")
        xcam = self.state.get("xcam", {})
        if module not in xcam or not isinstance(control, bool):
            return f"unsupported detection {module!r}"
        xcam[module] = control
        return None

    def _print_option(self, body: Json) -> str | None:
        bits = {"auto_recovery": AUTO_RECOVERY_BIT, "sound_enable": PROMPT_SOUND_BIT}
        options = {key: value for key, value in body.items() if key in bits}
        if not options or not all(isinstance(value, bool) for value in options.values()):
            return "no option to set"
        if "sound_enable" in options and not self.spec.prompt_sound:
            return "prompt sound not supported"
        flag = self.state["home_flag"]
        for key, value in options.items():
            flag = flag | bits[key] if value else flag & ~bits[key]
        self.state["home_flag"] = flag
        return None

    def _set_airduct(self, mode: object) -> str | None:
        airduct = self.state.get("device", {}).get("airduct")
        modes = [entry.get("modeId") for entry in (airduct or {}).get("modeList", [])]
        if airduct is None or mode not in modes:
            return f"invalid airduct mode {mode!r}"
        airduct["modeCur"] = mode
        return None

    def _print_speed(self, param: object) -> str | None:
        level = int(param) if isinstance(param, str) and param.isdigit() else None
        if level not in SPEED_MAGNITUDES:
            return f"invalid speed level {param!r}"
        self.state.update(spd_lvl=level, spd_mag=SPEED_MAGNITUDES[level])
        return None

    def _gcode(self, param: object) -> str | None:
        if not isinstance(param, str):
            return "param must be G-code text"
        for line in param.splitlines():
            words = line.split(";", 1)[0].strip().upper().split()
            if words:
                self._gcode_line(words[0], dict(_GCODE_ARG.findall(" ".join(words[1:]))))
        self._render_temperatures()
        return None

    def _gcode_line(self, code: str, args: dict[str, str]) -> None:
        value = float(args["S"]) if "S" in args else None
        if value is None:
            return
        match code:
            case "M104" | "M109":
                nozzle = int(float(args["T"])) if "T" in args else self._active_nozzle()
                if f"nozzle{nozzle}" in self.heaters:
                    self.heaters[f"nozzle{nozzle}"].target = value
            case "M140" | "M190":
                self.heaters["bed"].target = value
            case "M141" if self.spec.dual_nozzle:  # only the H2D here has a chamber heater
                self.heaters["chamber"].target = value
            case "M106":
                fan = {"1": "cooling_fan_speed", "2": "big_fan1_speed", "3": "big_fan2_speed"}
                key = fan.get(args.get("P", "1").split(".")[0])
                if key:
                    self.state[key] = str(round(max(0.0, min(255.0, value)) / 255 * 15))

    def full_report_body(self) -> Json:
        """A deep copy of the whole `print` object."""
        return copy.deepcopy(self.state)


def _ack(kind: str, body: Json, result: str, **extra: Any) -> Json:
    """An acknowledgement: the request echoed under its type key, plus the result."""
    return {kind: {**body, "result": result, **extra}}
