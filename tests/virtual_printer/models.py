"""What differs between the simulated printer models, and their initial report state.

Field names, types and units follow docs/protocol.md: numbers that printers send as strings
(fan speeds, AMS values, humidity index) are strings here too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from .ams import initial_ams, modules as ams_modules

MODELS = ("X1C", "P1S", "A1", "A1MINI", "H2D")

DOOR_BIT = 0x00800000  # X1 `home_flag` / H2 `stat`: door open
SDCARD_BIT = 0x100  # `home_flag`: card present
AUTO_RECOVERY_BIT = 0x10  # `home_flag`: resume after a step loss
PROMPT_SOUND_BIT = 0x20000  # `home_flag`: prompt sounds allowed
PROMPT_SOUND_SUPPORTED_BIT = 0x40000
SIGNED_COMMANDS_BIT = 0x20000000  # `fun`: the firmware wants signed commands
LOOPBACK_IP_LE = 0x0100007F  # 127.0.0.1 as the little-endian uint32 printers put in net.info
AMBIENT = 25.0

type Json = dict[str, Any]


@dataclass(frozen=True, kw_only=True)
class ModelSpec:
    """One printer model's protocol personality."""

    code: str
    product_name: str
    serial_prefix: str
    full_reports: bool  # X1: the whole `print` object every push; others: deltas
    door: Literal["home_flag", "stat"] | None
    lights: tuple[str, ...]
    idle_stage: int  # stg_cur when idle: -1 on X1, 255 on P1, 0 (sic) on the A1 mini
    chamber_sensor: bool
    dual_nozzle: bool
    sw_ver: str
    modules: tuple[Json, ...]  # get_version modules besides `ota`
    gcode_file: str
    project_name: str = ""
    xcam: tuple[str, ...] = ()  # AI detections the model reports in `xcam`
    prompt_sound: bool = False


SPECS: dict[str, ModelSpec] = {
    "X1C": ModelSpec(
        code="X1C",
        product_name="Bambu Lab X1 Carbon",
        serial_prefix="00M",
        full_reports=True,
        door="home_flag",
        lights=("chamber_light", "work_light"),
        idle_stage=-1,
        chamber_sensor=True,
        dual_nozzle=False,
        sw_ver="01.09.00.00",
        modules=(
            {"name": "rv1126", "hw_ver": "AP05", "sw_ver": "00.00.33.26"},
            {"name": "mc", "hw_ver": "MC07", "sw_ver": "00.00.29.58"},
            {"name": "th", "hw_ver": "TH09", "sw_ver": "00.00.05.81"},
        ),
        gcode_file="/data/Metadata/plate_1.gcode",
        xcam=(
            "spaghetti_detector",
            "printing_monitor",
            "buildplate_marker_detector",
            "first_layer_inspector",
        ),
    ),
    "P1S": ModelSpec(
        code="P1S",
        product_name="Bambu Lab P1S",
        serial_prefix="01P",
        full_reports=False,
        door=None,
        lights=("chamber_light",),
        idle_stage=255,
        chamber_sensor=False,
        dual_nozzle=False,
        sw_ver="01.08.01.00",
        modules=(
            {"name": "esp32", "hw_ver": "AP04", "sw_ver": "01.11.32.14"},
            {"name": "mc", "hw_ver": "MC02", "sw_ver": "00.00.38.47"},
            {"name": "th", "hw_ver": "TH09", "sw_ver": "00.00.05.81"},
        ),
        gcode_file="demo.gcode.3mf",
        project_name="C12",
        xcam=("spaghetti_detector",),
    ),
    "A1": ModelSpec(
        code="A1",
        product_name="Bambu Lab A1",
        serial_prefix="039",
        full_reports=False,
        door=None,
        lights=("chamber_light",),
        idle_stage=255,
        chamber_sensor=False,
        dual_nozzle=False,
        sw_ver="01.04.00.00",
        modules=(
            {"name": "esp32", "hw_ver": "AP05", "sw_ver": "01.12.03.28"},
            {"name": "mc", "hw_ver": "MC04", "sw_ver": "00.00.23.44"},
        ),
        gcode_file="demo.gcode.3mf",
        project_name="N2S",
    ),
    "A1MINI": ModelSpec(
        code="A1MINI",
        product_name="Bambu Lab A1 mini",
        serial_prefix="030",
        full_reports=False,
        door=None,
        lights=("chamber_light",),
        idle_stage=0,  # a real idle A1 mini: stg_cur 0 ("printing") with gcode_state IDLE
        chamber_sensor=False,
        dual_nozzle=False,
        sw_ver="01.04.00.00",
        modules=(
            {"name": "esp32", "hw_ver": "AP05", "sw_ver": "01.12.03.28"},
            {"name": "mc", "hw_ver": "MC04", "sw_ver": "00.00.23.44"},
        ),
        gcode_file="demo.gcode.3mf",
        project_name="N1",
        prompt_sound=True,
    ),
    "H2D": ModelSpec(
        code="H2D",
        product_name="Bambu Lab H2D",
        serial_prefix="094",
        full_reports=False,
        door="stat",
        lights=("chamber_light", "chamber_light2"),
        idle_stage=-1,
        chamber_sensor=True,
        dual_nozzle=True,
        sw_ver="01.02.00.00",
        modules=(
            {"name": "ap", "hw_ver": "AP05", "sw_ver": "00.00.40.11"},
            {"name": "mc", "hw_ver": "MC08", "sw_ver": "00.00.31.52"},
            {"name": "th", "hw_ver": "TH10", "sw_ver": "00.00.07.21"},
            {"name": "ahb", "hw_ver": "AHB00", "sw_ver": "00.00.00.42"},
        ),
        gcode_file="/data/Metadata/plate_1.gcode",
        xcam=("spaghetti_detector", "printing_monitor", "buildplate_marker_detector"),
        prompt_sound=True,
    ),
}


def spec_for(model: str) -> ModelSpec:
    """The spec of `model` (case-insensitive), or ValueError."""
    try:
        return SPECS[model.upper()]
    except KeyError:
        raise ValueError(f"unknown model {model!r}; expected one of {MODELS}") from None


def default_serial(model: str, index: int = 1) -> str:
    """A well-formed 15-character serial with the model's usual prefix."""
    return f"{spec_for(model).serial_prefix}09A{index:09d}"


def pack_temp(current: float, target: float) -> int:
    """H2D packing: low 16 bits = current, high 16 bits = target (whole degrees)."""
    return (max(0, round(target)) & 0xFFFF) << 16 | (max(0, round(current)) & 0xFFFF)


def unpack_temp(packed: int) -> tuple[int, int]:
    """(current, target) from an H2D packed temperature."""
    return packed & 0xFFFF, packed >> 16 & 0xFFFF


def version_modules(spec: ModelSpec, serial: str, *, ams: bool = True) -> list[Json]:
    """`info.module[]` as get_version returns it."""
    ota: Json = {
        "name": "ota",
        "hw_ver": "OTA",
        "sw_ver": spec.sw_ver,
        "sn": serial,
        "product_name": spec.product_name,
        "loader_ver": "00.00.00.00",
        "visible": True,
        "flag": 0,
    }
    if spec.project_name:
        ota["project_name"] = spec.project_name
    others = [{"sn": serial, "loader_ver": "00.00.00.00", **module} for module in spec.modules]
    units = [
        {"loader_ver": "00.00.00.00", **module}
        for module in ams_modules(spec.code, serial, enabled=ams)
    ]
    return [ota, *others, *units]


def _external_spool(tray_id: str) -> Json:
    return {
        "id": tray_id,
        "tray_type": "PLA",
        "tray_sub_brands": "",
        "tray_color": "00AE42FF",
        "tray_info_idx": "GFL99",
        "nozzle_temp_min": "190",
        "nozzle_temp_max": "240",
        "remain": -1,
        "k": 0.02,
        "tag_uid": "0000000000000000",
    }


def _h2d_device() -> Json:
    ambient = pack_temp(AMBIENT, 0)
    return {
        "extruder": {
            # id 0 = right nozzle, id 1 = left; snow = (ams_id << 8) | slot, 0xFFFF = none
            "info": [
                {"id": 0, "temp": ambient, "snow": 0xFFFF, "hnow": 0, "stat": 0},
                {"id": 1, "temp": ambient, "snow": 0xFFFF, "hnow": 0, "stat": 0},
            ],
            # low 4 bits = nozzle count, bits 4-7 = active nozzle (0 = right)
            "state": 0x102,
        },
        "bed": {"info": {"temp": ambient}, "state": 0},
        "ctc": {"info": {"temp": ambient}, "state": 0},
        "nozzle": {
            "info": [
                # codes: flow type (S standard, H high flow) + material (01 hardened steel)
                {"id": 0, "diameter": 0.4, "type": "HS01"},
                {"id": 1, "diameter": 0.6, "type": "HH01"},
            ],
            "exist": 3,
            "state": 0,
        },
        "airduct": {"modeCur": 0, "modeList": [{"modeId": 0}, {"modeId": 1}]},
    }


def initial_state(
    spec: ModelSpec, fun: int = 0x3EC1AFFF9CFF & ~SIGNED_COMMANDS_BIT, *, ams: bool = True
) -> Json:
    """The `print` object of an idle printer of this model, as a full push carries it."""
    chamber = AMBIENT if spec.chamber_sensor else 5  # P1/A1 report junk here
    state: Json = {
        "gcode_state": "IDLE",
        "print_type": "idle",
        "subtask_name": "",
        "gcode_file": "",
        "gcode_file_prepare_percent": "0",
        "mc_percent": 0,
        "mc_remaining_time": 0,
        "mc_print_stage": "1",
        "layer_num": 0,
        "total_layer_num": 0,
        "stg": [],
        "stg_cur": spec.idle_stage,
        "print_error": 0,
        "nozzle_temper": AMBIENT,
        "nozzle_target_temper": 0.0,
        "bed_temper": AMBIENT,
        "bed_target_temper": 0.0,
        "chamber_temper": chamber,
        "cooling_fan_speed": "0",
        "big_fan1_speed": "0",
        "big_fan2_speed": "0",
        "heatbreak_fan_speed": "0",
        "spd_lvl": 2,
        "spd_mag": 100,
        "wifi_signal": "-53dBm",
        "hms": [],
        "lights_report": [{"node": node, "mode": "off"} for node in spec.lights],
        "online": {"ahb": spec.dual_nozzle, "rfid": True, "ext": False, "version": 7},
        "sdcard": True,
        "home_flag": SDCARD_BIT
        | AUTO_RECOVERY_BIT
        | (PROMPT_SOUND_BIT | PROMPT_SOUND_SUPPORTED_BIT if spec.prompt_sound else 0),
        "hw_switch_state": 1,
        "nozzle_diameter": "0.4",
        "nozzle_type": "hardened_steel",  # stale on the H2D: `device.nozzle.info` is current
        "fun": f"{fun:X}",
        "upgrade_state": {
            "new_version_state": 2,
            "progress": "0",
            "status": "IDLE",
            "new_ver_list": [],
        },
        "ipcam": {"ipcam_record": "enable", "timelapse": "disable", "resolution": "1080p"},
        "net": {"conf": 0, "info": [{"ip": LOOPBACK_IP_LE, "mask": 0x00FFFFFF}]},
        "ams": initial_ams(spec.code, enabled=ams),
    }
    if spec.xcam:
        state["xcam"] = dict.fromkeys(spec.xcam, True) | {
            "print_halt": True,
            "halt_print_sensitivity": "medium",
        }
    if spec.chamber_sensor:
        # LAN Mode Liveview on (tests switch it off with {"ipcam": {"rtsp_url": "disable"}}).
        state["ipcam"]["rtsp_url"] = "rtsps://127.0.0.1/streaming/live/1"
    if spec.door == "stat":
        state["stat"] = "46258008"  # door closed (bit 0x00800000 clear)
    if spec.dual_nozzle:
        state["device"] = _h2d_device()
        state["remain_time"] = 0
        state["vir_slot"] = [_external_spool("254"), {"id": "255", "state": 0}]
    else:
        state["vt_tray"] = _external_spool("254")
    return state
