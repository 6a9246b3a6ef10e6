"""Typed read access to the merged `print` object: job, temperatures, fans, health.

The AMS accessors are in `ams_fields`.
"""

from __future__ import annotations

from typing import Any, Final

from .ams_fields import AmsFields
from .codes import (
    AUTO_RECOVERY_BIT,
    DOOR_OPEN_BIT,
    GCODE_STATES,
    JOB_OVER_STATES,
    PROMPT_SOUND_BIT,
    SDCARD_PRESENT_BIT,
    SDCARD_STATES,
    SIGNED_COMMANDS_BIT,
    SPEED_LEVELS,
    STAGE_NAMES,
)
from .models import STAT_DOOR_MODELS, X1_FAMILY
from .nozzle import NozzleKind, parse_nozzle_type
from .values import (
    ID_RANGE,
    HmsEntry,
    Nozzle,
    bounded,
    dig,
    parse_hms_entry,
    steps_to_percent,
    to_float,
    to_hex,
    to_int,
    to_str,
    unpack_temp,
    whole_degrees,
)

_MISSING: Final = object()

NOZZLE_TARGET_KEY: Final = "device.nozzle_target"
"""A key no report carries: `PrinterState` puts it in `changed_keys` when the active nozzle's
packed target changed (or appeared or went), and `nozzle_target` records it instead of
`device.extruder`, whose packed value moves with every reading of the nozzle's temperature."""

# Clamps for what a report can mean; beyond them a value is broken or forged and reads as unknown.
MAX_REMAINING_MINUTES: Final = 60 * 24 * 60  # 60 days
MAX_LAYERS: Final = 100_000
MAX_SPEED_PERCENT: Final = 1000
NOZZLE_DIAMETER_RANGE: Final = (0.1, 2.0)  # mm; printers ship 0.2 to 0.8


class StateFields(AmsFields):
    """The accessors of `PrinterState`; reads go through `_view` so they can be recorded.

    The AMS and filament accessors are `AmsFields`'.
    """

    _nozzle_target: float | None
    """The active nozzle's packed target, kept current by `PrinterState` (see
    `NOZZLE_TARGET_KEY`)."""

    # --- job ----------------------------------------------------------------------------------

    @property
    def gcode_state(self) -> str | None:
        """IDLE, PREPARE, RUNNING, PAUSE, FINISH, FAILED, SLICING or INIT; None if unknown."""
        value = self.gcode_state_raw
        return value if value in GCODE_STATES else None

    @property
    def gcode_state_raw(self) -> str | None:
        """The reported gcode_state, upper-cased, even if unknown (for logging it once)."""
        value = self._view.get("gcode_state")
        return value.strip().upper() if type(value) is str else None

    @property
    def stage(self) -> int | None:
        """The current stage id (`stg_cur`)."""
        return bounded(to_int(self._view.get("stg_cur")), -1, 0xFFFF)

    @property
    def stage_name(self) -> str | None:
        """Snake-case name of the current stage (`STAGE_NAMES`); None for unknown ids.

        The stage agrees with the job: an idle A1 mini reports `stg_cur` 0 ("printing") with
        `gcode_state` IDLE, so outside a job "printing" reads as idle.
        """
        stage = self.stage
        name = None if stage is None else STAGE_NAMES.get(stage)
        if name == "printing" and self.gcode_state in JOB_OVER_STATES:
            return "idle"
        return name

    @property
    def progress(self) -> int | None:
        """Print progress in percent."""
        value = to_int(self._view.get("mc_percent"))
        return value if value is not None and 0 <= value <= 100 else None

    @property
    def remaining_minutes(self) -> int | None:
        """Estimated minutes left."""
        return bounded(to_int(self._view.get("mc_remaining_time")), 0, MAX_REMAINING_MINUTES)

    @property
    def layer(self) -> int | None:
        """Current layer."""
        return bounded(to_int(self._view.get("layer_num")), 0, MAX_LAYERS)

    @property
    def total_layers(self) -> int | None:
        """Layers in the job."""
        return bounded(to_int(self._view.get("total_layer_num")), 0, MAX_LAYERS)

    @property
    def job_name(self) -> str | None:
        """The job's name (`subtask_name`)."""
        return to_str(self._view.get("subtask_name"))

    @property
    def file_name(self) -> str | None:
        """The printed file (`gcode_file`)."""
        return to_str(self._view.get("gcode_file"))

    @property
    def print_error(self) -> int | None:
        """The raw print error (0 = none)."""
        value = to_int(self._view.get("print_error"))
        return None if value is None else value & 0xFFFFFFFF

    @property
    def print_error_code(self) -> str | None:
        """Print error as "AAAA_BBBB" (e.g. "0300_400C", cancelled by the user); None if none."""
        value = self.print_error
        if not value:
            return None
        return f"{value >> 16:04X}_{value & 0xFFFF:04X}"

    # --- temperatures -------------------------------------------------------------------------

    # Temperatures are whole degrees. P1/A1/X1 send the raw ADC reading (219.96875 °C, 1/32 °C
    # steps) that jitters by a few steps every second around a steady setpoint; the printer's
    # screen, the slicer and the packed H2 fields (whole degrees by construction) all show whole
    # degrees, and the thermistors are not accurate to better than about ±1 °C. Rounding here
    # keeps a steady heater from writing a recorder row every second.

    @property
    def nozzle_temp(self) -> float | None:
        """Active nozzle temperature (°C); H2-style packed values win over the legacy field."""
        packed = self._active_nozzle_temps()
        return packed[0] if packed else whole_degrees(self._view.get("nozzle_temper"))

    @property
    def nozzle_target(self) -> float | None:
        """Active nozzle target (°C)."""
        self._view.get(NOZZLE_TARGET_KEY)  # recorded in place of `device.extruder`
        target = self._nozzle_target
        if target is not None:
            return target
        return whole_degrees(self._view.get("nozzle_target_temper"))

    @property
    def bed_temp(self) -> float | None:
        """Bed temperature (°C)."""
        packed = unpack_temp(dig(self._part("device", "bed"), "info", "temp"))
        return packed[0] if packed else whole_degrees(self._view.get("bed_temper"))

    @property
    def bed_target(self) -> float | None:
        """Bed target (°C)."""
        packed = unpack_temp(dig(self._part("device", "bed"), "info", "temp"))
        return packed[1] if packed else whole_degrees(self._view.get("bed_target_temper"))

    @property
    def chamber_temp(self) -> float | None:
        """Chamber temperature as reported; junk on models without a sensor (gate on model)."""
        packed = unpack_temp(dig(self._part("device", "ctc"), "info", "temp"))
        return packed[0] if packed else whole_degrees(self._view.get("chamber_temper"))

    @property
    def chamber_target(self) -> float | None:
        """Chamber target (°C); only H2-style printers report it."""
        packed = unpack_temp(dig(self._part("device", "ctc"), "info", "temp"))
        return packed[1] if packed else None

    def _active_nozzle_temps(self) -> tuple[float, float] | None:
        return self._per_report("active_nozzle_temps", self._read_active_nozzle_temps)

    def _read_active_nozzle_temps(self) -> tuple[float, float] | None:
        active = self.active_nozzle or 0
        for nozzle in self._extruder_infos():
            if to_int(nozzle.get("id")) == active:
                return unpack_temp(nozzle.get("temp"))
        return None

    def _extruder_infos(self) -> list[dict[str, Any]]:
        infos = dig(self._part("device", "extruder"), "info")
        return [item for item in infos if type(item) is dict] if type(infos) is list else []

    # --- nozzles (H2D dual nozzle) ------------------------------------------------------------

    @property
    def nozzles(self) -> list[Nozzle]:
        """Every nozzle the printer reports in `device.extruder.info`, ordered by id."""
        # A dozen entities of a dual-nozzle printer read this after every temperature report.
        return list(self._per_report("nozzles", self._read_nozzles))

    def _read_nozzles(self) -> list[Nozzle]:
        details: dict[int | None, dict[str, Any]] = {}
        infos = dig(self._part("device", "nozzle"), "info")
        if type(infos) is list:
            details = {to_int(item.get("id")): item for item in infos if type(item) is dict}
        nozzles = []
        for item in self._extruder_infos():
            nozzle_id = bounded(to_int(item.get("id")), *ID_RANGE)
            if nozzle_id is None:
                continue
            temps = unpack_temp(item.get("temp"))
            detail = details.get(nozzle_id, {})
            nozzles.append(
                Nozzle(
                    id=nozzle_id,
                    temp=temps[0] if temps else None,
                    target=temps[1] if temps else None,
                    diameter=bounded(to_float(detail.get("diameter")), *NOZZLE_DIAMETER_RANGE),
                    kind=parse_nozzle_type(detail.get("type")),
                )
            )
        return sorted(nozzles, key=lambda nozzle: nozzle.id)

    @property
    def is_dual_nozzle(self) -> bool:
        """Two nozzles: from `device.extruder.state` (low 4 bits = count), else the list."""
        state = to_int(dig(self._part("device", "extruder"), "state"))
        if state is not None:
            return state & 0xF >= 2
        return len(self._extruder_infos()) >= 2

    @property
    def active_nozzle(self) -> int | None:
        """Id of the active nozzle (bits 4-7 of `device.extruder.state`): 0 right, 1 left."""
        state = to_int(dig(self._part("device", "extruder"), "state"))
        return None if state is None else (state >> 4) & 0xF

    @property
    def nozzle_diameter(self) -> float | None:
        """Nozzle diameter (mm)."""
        return bounded(to_float(self._view.get("nozzle_diameter")), *NOZZLE_DIAMETER_RANGE)

    @property
    def nozzle_type(self) -> NozzleKind | None:
        """Material and flow type of a single-nozzle printer's nozzle.

        From `nozzle_type` (a word on older firmware, a code such as "HH01" on newer); parts it
        leaves open (a word has no flow type) come from `device.nozzle.info[0]` where reported.
        On dual-nozzle printers read `nozzles` instead: the top-level field can be stale there.
        """
        top = parse_nozzle_type(self._view.get("nozzle_type"))
        infos = dig(self._part("device", "nozzle"), "info")
        first = infos[0] if type(infos) is list and infos and type(infos[0]) is dict else {}
        detail = parse_nozzle_type(first.get("type"))
        if top is None or detail is None:
            return top or detail
        return NozzleKind(
            material=top.material or detail.material, flow=top.flow or detail.flow, raw=top.raw
        )

    # --- fans and speed -----------------------------------------------------------------------

    @property
    def part_fan_percent(self) -> int | None:
        """Part cooling fan (%); from the 0-15 step field, else from `fan_gear` byte 0."""
        return self._fan_percent("cooling_fan_speed", 0)

    @property
    def aux_fan_percent(self) -> int | None:
        """Auxiliary fan (%); from the 0-15 step field, else from `fan_gear` byte 1."""
        return self._fan_percent("big_fan1_speed", 1)

    @property
    def chamber_fan_percent(self) -> int | None:
        """Chamber fan (%); from the 0-15 step field, else from `fan_gear` byte 2."""
        return self._fan_percent("big_fan2_speed", 2)

    @property
    def heatbreak_fan_percent(self) -> int | None:
        """Heatbreak (hotend) fan (%)."""
        return steps_to_percent(self._view.get("heatbreak_fan_speed"))

    def _fan_percent(self, key: str, gear_byte: int) -> int | None:
        # The step fields exist on every model; fan_gear only on newer firmware.
        value = self._view.get(key, _MISSING)
        if value is not _MISSING:
            return steps_to_percent(value)
        gear = to_int(self._view.get("fan_gear"))
        if gear is None or gear < 0:
            return None
        level = (gear >> (8 * gear_byte)) & 0xFF
        return (level * 200 + 255) // 510  # round(level * 100 / 255)

    @property
    def speed_level(self) -> int | None:
        """Speed profile: 1 silent, 2 standard, 3 sport, 4 ludicrous (`SPEED_LEVELS`)."""
        value = to_int(self._view.get("spd_lvl"))
        return value if value in SPEED_LEVELS else None

    @property
    def speed_percent(self) -> int | None:
        """Speed in percent of standard (`spd_mag`)."""
        return bounded(to_int(self._view.get("spd_mag")), 0, MAX_SPEED_PERCENT)

    # --- health -------------------------------------------------------------------------------

    @property
    def hms(self) -> list[HmsEntry]:
        """Active HMS notifications."""
        raw = self._view.get("hms")
        if type(raw) is not list:
            return []
        return [entry for entry in map(parse_hms_entry, raw) if entry is not None]

    @property
    def hms_codes(self) -> list[str]:
        """Active HMS codes, "HMS_XXXX_XXXX_XXXX_XXXX"."""
        return [entry.code for entry in self.hms]

    @property
    def signed_commands_required(self) -> bool | None:
        """Whether the firmware rejects unsigned commands (`fun` bit 0x20000000)."""
        fun = to_hex(self._view.get("fun"))
        return None if fun is None else bool(fun & SIGNED_COMMANDS_BIT)

    @property
    def update_available(self) -> bool | None:
        """Whether a firmware update is offered (`upgrade_state.new_version_state` == 1)."""
        state = to_int(dig(self._view.get("upgrade_state"), "new_version_state"))
        return None if state is None else state == 1

    @property
    def firmware_offered(self) -> str | None:
        """The firmware version the printer offers: the `ota` entry of `new_ver_list` (P1, A1),
        else `ota_new_version_number` (X1)."""
        upgrade = self._view.get("upgrade_state")
        entries = dig(upgrade, "new_ver_list")
        if type(entries) is list:
            for entry in entries:
                version = to_str(entry.get("new_ver")) if type(entry) is dict else None
                if version and entry.get("name") == "ota":
                    return version
        return to_str(dig(upgrade, "ota_new_version_number"))

    # --- print options ------------------------------------------------------------------------

    def xcam_option(self, module: str) -> bool | None:
        """A camera (AI) detection's switch, e.g. `xcam.spaghetti_detector`; None if unreported."""
        value = dig(self._view.get("xcam"), module)
        return value if type(value) is bool else None

    @property
    def auto_recovery(self) -> bool | None:
        """Resume after a step loss (`home_flag` bit 0x10)."""
        return self._home_flag_bit(AUTO_RECOVERY_BIT)

    @property
    def prompt_sound(self) -> bool | None:
        """Prompt sounds allowed (`home_flag` bit 0x20000)."""
        return self._home_flag_bit(PROMPT_SOUND_BIT)

    def _home_flag_bit(self, bit: int) -> bool | None:
        flags = to_int(self._view.get("home_flag"))
        return None if flags is None else bool(flags & bit)

    # --- hardware state -----------------------------------------------------------------------

    @property
    def lights(self) -> dict[str, str]:
        """Light node -> mode ("on", "off" or "flashing")."""
        raw = self._view.get("lights_report")
        if type(raw) is not list:
            return {}
        return {
            item["node"]: item["mode"]
            for item in raw
            if type(item) is dict and to_str(item.get("node")) and to_str(item.get("mode"))
        }

    @property
    def chamber_light_on(self) -> bool | None:
        """Whether the chamber light is on (flashing counts as on)."""
        mode = self.lights.get("chamber_light")
        return None if mode is None else mode.lower() in ("on", "flashing")

    @property
    def door_open(self) -> bool | None:
        """Door state where the model reports it (X1 in `home_flag`; H2/P2S/X2D in `stat`)."""
        model = self._model
        if model in X1_FAMILY:
            bits = to_int(self._view.get("home_flag"))
        elif model in STAT_DOOR_MODELS:
            bits = to_hex(self._view.get("stat"))
        else:
            return None
        return None if bits is None else bool(bits & DOOR_OPEN_BIT)

    @property
    def sdcard(self) -> bool | None:
        """Whether an SD card is present (`sdcard`, else `home_flag` bit 0x100)."""
        value = self._view.get("sdcard")
        if type(value) is bool or type(value) is int:
            return bool(value)
        flags = to_int(self._view.get("home_flag"))
        return None if flags is None else bool(flags & SDCARD_PRESENT_BIT)

    @property
    def sdcard_state(self) -> str | None:
        """absent, present, abnormal or read_only (`home_flag` bits 8-9), else from `sdcard`."""
        flags = to_int(self._view.get("home_flag"))
        if flags is not None:
            return SDCARD_STATES[(flags >> 8) & 0x3]
        present = self.sdcard
        return None if present is None else ("present" if present else "absent")

    @property
    def print_type(self) -> str | None:
        """Where the job came from: cloud, local, idle or system (lower case, as reported)."""
        value = to_str(self._view.get("print_type"))
        return value.lower() if value else None

    @property
    def wifi_dbm(self) -> int | None:
        """Wi-Fi signal in dBm, from e.g. "-53dBm"."""
        value = self._view.get("wifi_signal")
        if type(value) is str:
            value = value.strip().removesuffix("dBm").removesuffix("dbm")
        return bounded(to_int(value), -150, 30)

    @property
    def ip_address(self) -> str | None:
        """The printer's IPv4 address from `net.info[0].ip` (a little-endian uint32)."""
        infos = dig(self._view.get("net"), "info")
        if type(infos) is not list or not infos:
            return None
        ip = to_int(dig(infos[0], "ip"))
        if not ip or not 0 < ip <= 0xFFFFFFFF:
            return None
        return ".".join(str(part) for part in ip.to_bytes(4, "little"))

    @property
    def airduct_mode(self) -> int | None:
        """The air duct's current mode id (`device.airduct.modeCur`; H2, P2S)."""
        return to_int(dig(self._view.get("device"), "airduct", "modeCur"))

    @property
    def airduct_modes(self) -> list[int]:
        """The mode ids the air duct offers (`device.airduct.modeList[].modeId`)."""
        modes = dig(self._view.get("device"), "airduct", "modeList")
        if type(modes) is not list:
            return []
        ids = (to_int(dig(mode, "modeId")) for mode in modes)
        return [mode for mode in ids if mode is not None]

    @property
    def rtsp_url(self) -> str | None:
        """The camera URL the printer reports; None while LAN live view is disabled."""
        url = to_str(dig(self._view.get("ipcam"), "rtsp_url"))
        return None if url is None or url == "disable" else url

    @property
    def liveview_disabled(self) -> bool:
        """Whether "LAN Mode Liveview" is off (`ipcam.rtsp_url` reads "disable")."""
        return to_str(dig(self._view.get("ipcam"), "rtsp_url")) == "disable"
