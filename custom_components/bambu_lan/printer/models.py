"""Printer models: detection from serial prefix, model code and product name; capabilities."""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Final

# --- models ------------------------------------------------------------------------------------


class PrinterModel(StrEnum):
    """Printer models (values are Bambu's short names, without spaces)."""

    X1C = "X1C"
    X1 = "X1"
    X1E = "X1E"
    P1P = "P1P"
    P1S = "P1S"
    P2S = "P2S"
    A1 = "A1"
    A1MINI = "A1MINI"
    A2L = "A2L"
    H2D = "H2D"
    H2DPRO = "H2DPRO"
    H2S = "H2S"
    H2C = "H2C"
    X2D = "X2D"


X1_FAMILY: Final = frozenset({PrinterModel.X1C, PrinterModel.X1, PrinterModel.X1E})
# Newer series report the door in `stat`; the X1 family in `home_flag`.
STAT_DOOR_MODELS: Final = frozenset(
    {
        PrinterModel.P2S,
        PrinterModel.H2D,
        PrinterModel.H2DPRO,
        PrinterModel.H2S,
        PrinterModel.H2C,
        PrinterModel.X2D,
    }
)
# The A series feed from an AMS lite; its units report no type on older firmware.
AMS_LITE_MODELS: Final = frozenset({PrinterModel.A1, PrinterModel.A1MINI, PrinterModel.A2L})
_CHAMBER_SENSOR_MODELS: Final = X1_FAMILY | STAT_DOOR_MODELS
_DUAL_NOZZLE_MODELS: Final = frozenset(
    {PrinterModel.H2D, PrinterModel.H2DPRO, PrinterModel.H2C, PrinterModel.X2D}
)


class CameraKind(StrEnum):
    """How a model serves its camera on the LAN."""

    JPEG = "jpeg"  # TLS socket on port 6000, JPEG frames
    RTSP = "rtsp"  # RTSPS on port 322


_JPEG_CAMERA_MODELS: Final = frozenset(
    {PrinterModel.P1P, PrinterModel.P1S, PrinterModel.A1, PrinterModel.A1MINI, PrinterModel.A2L}
)
# On these, port 6000 carries the file tunnel instead of the camera.
_RTSP_CAMERA_MODELS: Final = X1_FAMILY | STAT_DOOR_MODELS


def camera_kind(model: PrinterModel | None) -> CameraKind | None:
    """The model's camera protocol (None: unknown model, no camera entity)."""
    if model in _JPEG_CAMERA_MODELS:
        return CameraKind.JPEG
    if model in _RTSP_CAMERA_MODELS:
        return CameraKind.RTSP
    return None


def has_chamber_sensor(model: PrinterModel | None) -> bool:
    """Whether `chamber_temper` is a real reading (P1 and A1 report junk such as 5)."""
    return model in _CHAMBER_SENSOR_MODELS


def has_door_sensor(model: PrinterModel | None) -> bool:
    """Whether the printer reports its door (P1P, P1S and the A series do not)."""
    return model in _CHAMBER_SENSOR_MODELS


def is_dual_nozzle_model(model: PrinterModel | None) -> bool:
    """Whether the model has two nozzles (the data itself decides: `PrinterState.nozzles`)."""
    return model in _DUAL_NOZZLE_MODELS


def reports_full(model: PrinterModel | None) -> bool:
    """Whether the model sends its whole state on every push (the X1 family)."""
    return model in X1_FAMILY


_SERIAL_PREFIXES: Final[Mapping[str, PrinterModel]] = {
    "00M": PrinterModel.X1C,  # X1 and X1C share it; the X1C is far more common
    "00W": PrinterModel.X1,
    "03W": PrinterModel.X1E,
    "01S": PrinterModel.P1P,
    "01P": PrinterModel.P1S,
    "22E": PrinterModel.P2S,
    "030": PrinterModel.A1MINI,
    "039": PrinterModel.A1,
    "093": PrinterModel.H2S,
    "094": PrinterModel.H2D,
    "239": PrinterModel.H2DPRO,
    "31B": PrinterModel.H2C,
    "20P": PrinterModel.X2D,
    "26A": PrinterModel.A2L,
}

_MODEL_CODES: Final[Mapping[str, PrinterModel]] = {
    "BL-P001": PrinterModel.X1C,
    "3DPRINTER-X1-CARBON": PrinterModel.X1C,
    "BL-P002": PrinterModel.X1,
    "3DPRINTER-X1": PrinterModel.X1,
    "C13": PrinterModel.X1E,
    "C11": PrinterModel.P1P,
    "C12": PrinterModel.P1S,
    "N7": PrinterModel.P2S,
    "N1": PrinterModel.A1MINI,
    "N2S": PrinterModel.A1,
    "N9": PrinterModel.A2L,
    "O1D": PrinterModel.H2D,
    "O1E": PrinterModel.H2DPRO,
    "O1S": PrinterModel.H2S,
    "O1C": PrinterModel.H2C,
    "O1C2": PrinterModel.H2C,
    "N6": PrinterModel.X2D,
}

_PRODUCT_NAMES: Final[Mapping[str, PrinterModel]] = {
    **{model.value: model for model in PrinterModel},
    "X1CARBON": PrinterModel.X1C,
}


def model_from_serial(serial: str | None) -> PrinterModel | None:
    """Guess the model from the serial's first three characters (a hint, not a rule)."""
    if not isinstance(serial, str):
        return None
    return _SERIAL_PREFIXES.get(serial.strip().upper()[:3])


def model_from_code(code: str | None) -> PrinterModel | None:
    """Model from a model code: SSDP `DevModel.bambu.com` or get_version `project_name`."""
    if not isinstance(code, str):
        return None
    return _MODEL_CODES.get(code.strip().upper())


def model_from_product_name(name: str | None) -> PrinterModel | None:
    """Model from get_version's `product_name`, e.g. "Bambu Lab X1-Carbon", "Bambu Lab A1 mini"."""
    if not isinstance(name, str):
        return None
    key = name.strip().upper()
    key = key.removeprefix("BAMBU LAB")
    for char in " -_":
        key = key.replace(char, "")
    return _PRODUCT_NAMES.get(key)


_MODEL_LABELS: Final[dict[PrinterModel, str]] = {
    PrinterModel.X1C: "X1 Carbon",
    PrinterModel.A1MINI: "A1 mini",
    PrinterModel.H2DPRO: "H2D Pro",
}


def model_label(model: PrinterModel) -> str:
    """The name Bambu Lab uses for a model, e.g. "A1 mini"."""
    return _MODEL_LABELS.get(model, model.value)


# --- controls (per model; Bambu Lab's spec sheets and the slicer's printer profiles) ----------

_H2_FAMILY: Final = frozenset(
    {PrinterModel.H2D, PrinterModel.H2DPRO, PrinterModel.H2S, PrinterModel.H2C}
)
# A1, A1 mini and A2L have only the part cooling fan; the P1P's auxiliary and chamber fans are
# optional add-ons it does not report reliably.
_AUX_FAN_MODELS: Final = (
    X1_FAMILY | _H2_FAMILY | {PrinterModel.P1S, PrinterModel.P2S, PrinterModel.X2D}
)
_CHAMBER_HEATER_MODELS: Final = _H2_FAMILY | {PrinterModel.X1E}
_AIRDUCT_MODELS: Final = _H2_FAMILY | {PrinterModel.P2S}
_PROMPT_SOUND_MODELS: Final = frozenset(
    {PrinterModel.A1, PrinterModel.A1MINI, PrinterModel.H2D, PrinterModel.H2DPRO}
)
_HEATBED_LIGHT_MODELS: Final = frozenset({PrinterModel.H2D, PrinterModel.H2DPRO})
_BUZZER_MODELS: Final = frozenset({PrinterModel.H2D, PrinterModel.H2DPRO})


def has_aux_fan(model: PrinterModel | None) -> bool:
    """Whether the model has an auxiliary (side) part-cooling fan (`M106 P2`)."""
    return model in _AUX_FAN_MODELS


def has_chamber_fan(model: PrinterModel | None) -> bool:
    """Whether the model has a chamber (exhaust) fan (`M106 P3`)."""
    return model in _AUX_FAN_MODELS


def has_chamber_heater(model: PrinterModel | None) -> bool:
    """Whether the chamber target can be set (`M141`): X1E and the H2 family."""
    return model in _CHAMBER_HEATER_MODELS


def has_airduct(model: PrinterModel | None) -> bool:
    """Whether the model switches its air duct between cooling and heating (`set_airduct`)."""
    return model in _AIRDUCT_MODELS


def has_prompt_sound(model: PrinterModel | None) -> bool:
    """Whether the model plays prompt sounds that `print_option sound_enable` switches."""
    return model in _PROMPT_SOUND_MODELS


def has_heatbed_light(model: PrinterModel | None) -> bool:
    """Whether the model has a heatbed light (`ledctrl heatbed_light`; never reported back)."""
    return model in _HEATBED_LIGHT_MODELS


def has_buzzer(model: PrinterModel | None) -> bool:
    """Whether the model has an alarm buzzer that `buzzer_ctrl` can silence."""
    return model in _BUZZER_MODELS
