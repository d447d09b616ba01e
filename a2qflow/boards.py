"""Board catalogue: one YAML file per board in ``boards/``, loaded into a typed, validated record.

Resource totals are the device totals from the public data sheets (BRAM counted in 18 Kb
halves, as FINN's estimates count them); they are what ``estimates.json`` and the synthesis
reports compute utilization against.

Lattice ECP5 boards (family ``ecp5``) are targets of the open place-and-route flow
(``a2qflow.pnr``, nextpnr-ecp5), not of FINN's shells: their files give the resources in the
ECP5's own names (LUT4, FF, EBR, MULT18), the nextpnr device, package and speed grade, and the
board pins the P&R harness uses (the oscillator and a few LEDs). The record also carries the
totals under the common keys (LUT = LUT4, BRAM18 = EBR, an 18 Kb block like a BRAM18,
DSP = MULT18X18D, URAM = 0) so that every board lists and computes utilization alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

import yaml

from a2qflow.errors import A2QFlowError
from a2qflow.validate import enum_value

BOARDS_DIR = Path(__file__).resolve().parent.parent / "boards"
RESOURCE_KEYS = ("LUT", "FF", "BRAM18", "URAM", "DSP")
# ECP5 resource names -> the common keys (URAM: none on ECP5)
ECP5_RESOURCES = {"LUT4": "LUT", "FF": "FF", "EBR": "BRAM18", "MULT18": "DSP"}


class Family(str, Enum):
    ZYNQ7000 = "zynq7000"
    ZYNQ_ULTRASCALE_PLUS = "zynq_ultrascale+"
    ALVEO = "alveo"
    ECP5 = "ecp5"  # Lattice ECP5: open flow only (Yosys synth_ecp5, nextpnr-ecp5)


class YosysFamily(str, Enum):
    """``synth_xilinx -family`` value of the open flow (``ecp5``: ``synth_ecp5``)."""

    XC7 = "xc7"
    XCUP = "xcup"
    ECP5 = "ecp5"


class ShellFlow(str, Enum):
    """FINN's shell: a Zynq block design (PYNQ), a Vitis platform (Alveo), or none (ECP5)."""

    VIVADO_ZYNQ = "vivado_zynq"
    VITIS_ALVEO = "vitis_alveo"
    NONE = "none"  # no FINN shell: the open flow's P&R harness (hls/verilog/pnr_harness.v.j2)


_FIELDS = ("name", "finn_board", "part", "family", "yosys_family", "shell_flow", "resources",
           "clock_ns")
# ECP5 boards: no finn_board (FINN has no Lattice boards); these instead
_ECP5_FIELDS = ("name", "part", "family", "yosys_family", "shell_flow", "resources", "clock_ns",
                "nextpnr_device", "package", "speed_grade", "pins")
_PIN_FIELDS = ("clock", "clock_io", "outputs", "outputs_io")


@dataclass(frozen=True)
class Ecp5Target:
    """What nextpnr-ecp5 needs to know about an ECP5 board."""

    device: str  # nextpnr's device flag without the dashes: 25k, 85k, um5g-85k, ...
    package: str  # e.g. CABGA381
    speed_grade: int  # 6, 7 or 8
    clock_pin: str  # the oscillator's ball
    clock_io: str  # its IO standard, e.g. LVCMOS33
    output_pins: tuple[str, ...]  # LEDs (or any free outputs) the harness drives
    outputs_io: str

    def to_dict(self) -> dict[str, Any]:
        return {"nextpnr_device": self.device, "package": self.package,
                "speed_grade": self.speed_grade,
                "pins": {"clock": self.clock_pin, "clock_io": self.clock_io,
                         "outputs": list(self.output_pins), "outputs_io": self.outputs_io}}


@dataclass(frozen=True)
class Board:
    name: str
    finn_board: str | None  # FINN's board name (``finn.util.basic.part_map`` key); None: ECP5
    part: str
    family: Family
    yosys_family: YosysFamily
    shell_flow: ShellFlow
    resources: dict[str, int]  # LUT, FF, BRAM18, URAM, DSP totals
    clock_ns: float  # default target clock period (ECP5: the board oscillator's)
    ecp5: Ecp5Target | None = None  # set for (and only for) the ECP5 family

    @property
    def is_ecp5(self) -> bool:
        return self.family is Family.ECP5

    @property
    def clock_mhz(self) -> float:
        return 1e3 / self.clock_ns

    @property
    def native_resources(self) -> dict[str, int]:
        """The totals in the family's own names (ECP5: LUT4, FF, EBR, MULT18)."""
        if self.is_ecp5:
            return {k: self.resources[v] for k, v in ECP5_RESOURCES.items()}
        return dict(self.resources)

    def utilization(self, used: dict[str, float]) -> dict[str, float | None]:
        """Fraction of each board resource that ``used`` takes (None where the board has none).

        Resources missing from ``used`` count as 0."""
        out: dict[str, float | None] = {}
        for key in RESOURCE_KEYS:
            total = self.resources[key]
            out[key] = (float(used.get(key, 0)) / total) if total else None
        return out

    def to_dict(self) -> dict[str, Any]:
        out = {
            "name": self.name, "finn_board": self.finn_board, "part": self.part,
            "family": self.family.value, "yosys_family": self.yosys_family.value,
            "shell_flow": self.shell_flow.value, "resources": dict(self.resources),
            "clock_ns": self.clock_ns,
        }
        if self.ecp5 is not None:
            out.update(native_resources=self.native_resources, **self.ecp5.to_dict())
        return out


def board_names(boards_dir: Path = BOARDS_DIR) -> list[str]:
    return sorted(p.stem for p in Path(boards_dir).glob("*.yaml"))


def load_board(name: str, boards_dir: Path = BOARDS_DIR) -> Board:
    """Load and validate ``boards/<name>.yaml``; an unknown name lists the known ones."""
    path = Path(boards_dir) / f"{name}.yaml"
    if not path.is_file():
        known = ", ".join(board_names(boards_dir)) or "(none)"
        raise A2QFlowError(f"unknown board {name!r}", f"use one of: {known}")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise A2QFlowError(f"board file {path} is not valid YAML ({exc})", "fix the file") from exc
    return board_from_dict(data, str(path))


def load_boards(boards_dir: Path = BOARDS_DIR) -> list[Board]:
    return [load_board(n, boards_dir) for n in board_names(boards_dir)]


def board_from_dict(data: Any, where: str = "board") -> Board:
    """Validate one board record; every problem names the file and the field."""
    if not isinstance(data, dict):
        raise A2QFlowError(f"{where}: expected a mapping of fields",
                           f"fields: {', '.join(_FIELDS)}")
    family = enum_value(Family, data.get("family"), f"{where}: family")
    ecp5 = family is Family.ECP5
    fields = _ECP5_FIELDS if ecp5 else _FIELDS
    missing = [f for f in fields if f not in data]
    unknown = sorted(set(data) - set(fields))
    if missing or unknown:
        raise A2QFlowError(
            f"{where}: missing field(s) {missing or '-'}, unknown field(s) {unknown or '-'}",
            f"fields{' of an ecp5 board' if ecp5 else ''}: {', '.join(fields)}",
        )
    for key in ("name", "part") if ecp5 else ("name", "finn_board", "part"):
        if not isinstance(data[key], str) or not data[key]:
            raise A2QFlowError(f"{where}: {key} must be a non-empty string", f"set {key}")
    keys = tuple(ECP5_RESOURCES) if ecp5 else RESOURCE_KEYS
    res = data["resources"]
    if not isinstance(res, dict) or set(res) != set(keys):
        raise A2QFlowError(
            f"{where}: resources must give exactly {', '.join(keys)}", "fix resources"
        )
    for key, value in res.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise A2QFlowError(f"{where}: resources.{key}={value!r} is not a count",
                               "use a non-negative integer")
    lut = "LUT4" if ecp5 else "LUT"
    if res[lut] == 0:
        raise A2QFlowError(f"{where}: resources.{lut} is 0", "give the device's LUT total")
    clock = data["clock_ns"]
    if isinstance(clock, bool) or not isinstance(clock, int | float) or clock <= 0:
        raise A2QFlowError(f"{where}: clock_ns={clock!r} is not valid", "use a positive number")
    yosys_family = enum_value(YosysFamily, data["yosys_family"], f"{where}: yosys_family")
    shell_flow = enum_value(ShellFlow, data["shell_flow"], f"{where}: shell_flow")
    if ecp5 != (yosys_family is YosysFamily.ECP5) or ecp5 != (shell_flow is ShellFlow.NONE):
        raise A2QFlowError(
            f"{where}: family {family.value!r} does not go with yosys_family "
            f"{yosys_family.value!r} and shell_flow {shell_flow.value!r}",
            "an ecp5 board has yosys_family: ecp5 and shell_flow: none; a Xilinx board neither")
    if ecp5:
        resources = {k: 0 for k in RESOURCE_KEYS}
        resources.update({ECP5_RESOURCES[k]: int(v) for k, v in res.items()})
    else:
        resources = {k: int(res[k]) for k in RESOURCE_KEYS}
    return Board(
        name=data["name"], finn_board=None if ecp5 else data["finn_board"], part=data["part"],
        family=family, yosys_family=yosys_family, shell_flow=shell_flow,
        resources=resources, clock_ns=float(clock),
        ecp5=_ecp5_target(data, where) if ecp5 else None,
    )


def _ecp5_target(data: dict[str, Any], where: str) -> Ecp5Target:
    for key in ("nextpnr_device", "package"):
        if not isinstance(data[key], str) or not data[key]:
            raise A2QFlowError(f"{where}: {key} must be a non-empty string", f"set {key}")
    speed = data["speed_grade"]
    if speed not in (6, 7, 8) or isinstance(speed, bool):
        raise A2QFlowError(f"{where}: speed_grade={speed!r} is not an ECP5 speed grade",
                           "use 6, 7 or 8 (the digit after the part's density, e.g. -6BG381C)")
    pins = data["pins"]
    if not isinstance(pins, dict) or set(pins) != set(_PIN_FIELDS):
        raise A2QFlowError(f"{where}: pins must give exactly {', '.join(_PIN_FIELDS)}",
                           "fix pins")
    outputs = pins["outputs"]
    if (not isinstance(outputs, list) or not outputs
            or not all(isinstance(p, str) and p for p in outputs)):
        raise A2QFlowError(f"{where}: pins.outputs must list at least one ball name",
                           "give the board's LED balls, e.g. [B2, C2]")
    for key in ("clock", "clock_io", "outputs_io"):
        if not isinstance(pins[key], str) or not pins[key]:
            raise A2QFlowError(f"{where}: pins.{key} must be a non-empty string",
                               f"set pins.{key}")
    return Ecp5Target(device=data["nextpnr_device"], package=data["package"],
                      speed_grade=int(speed), clock_pin=pins["clock"],
                      clock_io=pins["clock_io"], output_pins=tuple(outputs),
                      outputs_io=pins["outputs_io"])
