"""Wire codes of the printer's report: job states, stages, speed levels, bits."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

DOOR_OPEN_BIT: Final = 0x00800000
"""Door open: bit of `stat` (H2, P2S, X2D) and of `home_flag` (X1 family)."""
SIGNED_COMMANDS_BIT: Final = 0x20000000
"""Bit of `print.fun` set when the firmware only accepts signed commands."""
SDCARD_PRESENT_BIT: Final = 0x100
CANCELLED_BY_USER: Final = 0x0300400C
"""`print_error` after the user stopped the job ("0300_400C")."""

GCODE_STATES: Final = frozenset(
    {"IDLE", "PREPARE", "RUNNING", "PAUSE", "FINISH", "FAILED", "SLICING", "INIT"}
)

JOB_OVER_STATES: Final = frozenset({"IDLE", "FINISH", "FAILED"})
"""Job states in which nothing is being printed."""

STAGE_NAMES: Final[Mapping[int, str]] = {
    -1: "idle",  # X1
    0: "printing",
    1: "auto_bed_leveling",
    2: "heatbed_preheating",
    3: "sweeping_xy_mech_mode",
    4: "changing_filament",
    5: "m400_pause",
    6: "paused_filament_runout",
    7: "heating_hotend",
    8: "calibrating_extrusion",
    9: "scanning_bed_surface",
    10: "inspecting_first_layer",
    11: "identifying_build_plate_type",
    12: "calibrating_micro_lidar",
    13: "homing_toolhead",
    14: "cleaning_nozzle_tip",
    15: "checking_extruder_temperature",
    16: "paused_user",
    17: "paused_front_cover_falling",
    18: "calibrating_micro_lidar",  # the firmware uses both 12 and 18 for this stage
    19: "calibrating_extrusion_flow",
    20: "paused_nozzle_temperature_malfunction",
    21: "paused_heat_bed_temperature_malfunction",
    22: "filament_unloading",
    23: "paused_skipped_step",
    24: "filament_loading",
    25: "calibrating_motor_noise",
    26: "paused_ams_lost",
    27: "paused_low_fan_speed_heat_break",
    28: "paused_chamber_temperature_control_error",
    29: "cooling_chamber",
    30: "paused_user_gcode",
    31: "motor_noise_showoff",
    32: "paused_nozzle_filament_covered_detected",
    33: "paused_cutter_error",
    34: "paused_first_layer_error",
    35: "paused_nozzle_clog",
    255: "idle",  # P1, A1
}

SPEED_LEVELS: Final[Mapping[int, str]] = {1: "silent", 2: "standard", 3: "sport", 4: "ludicrous"}

PRINT_TYPES: Final = ("cloud", "local", "idle", "system")
"""`print_type`: where the current job came from (idle: none)."""

SDCARD_STATES: Final[Mapping[int, str]] = {0: "absent", 1: "present", 2: "abnormal", 3: "read_only"}
"""Bits 8-9 of `home_flag`."""
AUTO_RECOVERY_BIT: Final = 0x10
"""`home_flag`: resume automatically after a step loss."""
PROMPT_SOUND_BIT: Final = 0x20000
"""`home_flag`: the printer may play prompt sounds."""

HMS_SEVERITIES: Final[Mapping[int, str]] = {1: "fatal", 2: "serious", 3: "common", 4: "info"}
