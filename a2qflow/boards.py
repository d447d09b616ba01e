"""Board catalogue: one YAML file per board in ``boards/``, loaded into a typed, validated record.

Resource totals are the device totals from the public data sheets (BRAM counted in 18 Kb
halves, as FINN's estimates count them); they are what ``estimates.json`` and the synthesis
reports compute utilization against.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

import yaml

from a2qflow.errors import A2QFlowError

BOARDS_DIR = Path(__file__).resolve().parent.parent / "boards"
RESOURCE_KEYS = ("LUT", "FF", "BRAM18", "URAM", "DSP")


class Family(str, Enum):
    ZYNQ7000 = "zynq7000"
    ZYNQ_ULTRASCALE_PLUS = "zynq_ultrascale+"
    ALVEO = "alveo"


class YosysFamily(str, Enum):
    """``synth_xilinx -family`` value of the open flow."""

    XC7 = "xc7"
    XCUP = "xcup"


class ShellFlow(str, Enum):
    """FINN's shell: a Zynq block design (PYNQ) or a Vitis platform (Alveo)."""

    VIVADO_ZYNQ = "vivado_zynq"
    VITIS_ALVEO = "vitis_alveo"


_FIELDS = ("name", "finn_board", "part", "family", "yosys_family", "shell_flow", "resources",
           "clock_ns")


@dataclass(frozen=True)
class Board:
    name: str
    finn_board: str  # FINN's board name (``finn.util.basic.part_map`` key)
    part: str
    family: Family
    yosys_family: YosysFamily
    shell_flow: ShellFlow
    resources: dict[str, int]  # LUT, FF, BRAM18, URAM, DSP totals
    clock_ns: float  # default target clock period

    def utilization(self, used: dict[str, float]) -> dict[str, float | None]:
        """Fraction of each board resource that ``used`` takes (None where the board has none).

        Resources missing from ``used`` count as 0."""
        out: dict[str, float | None] = {}
        for key in RESOURCE_KEYS:
            total = self.resources[key]
            out[key] = (float(used.get(key, 0)) / total) if total else None
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "finn_board": self.finn_board, "part": self.part,
            "family": self.family.value, "yosys_family": self.yosys_family.value,
            "shell_flow": self.shell_flow.value, "resources": dict(self.resources),
            "clock_ns": self.clock_ns,
        }


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
    missing = [f for f in _FIELDS if f not in data]
    unknown = sorted(set(data) - set(_FIELDS))
    if missing or unknown:
        raise A2QFlowError(
            f"{where}: missing field(s) {missing or '-'}, unknown field(s) {unknown or '-'}",
            f"fields: {', '.join(_FIELDS)}",
        )
    for key in ("name", "finn_board", "part"):
        if not isinstance(data[key], str) or not data[key]:
            raise A2QFlowError(f"{where}: {key} must be a non-empty string", f"set {key}")
    res = data["resources"]
    if not isinstance(res, dict) or set(res) != set(RESOURCE_KEYS):
        raise A2QFlowError(
            f"{where}: resources must give exactly {', '.join(RESOURCE_KEYS)}", "fix resources"
        )
    for key, value in res.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise A2QFlowError(f"{where}: resources.{key}={value!r} is not a count",
                               "use a non-negative integer")
    if res["LUT"] == 0:
        raise A2QFlowError(f"{where}: resources.LUT is 0", "give the device's LUT total")
    clock = data["clock_ns"]
    if isinstance(clock, bool) or not isinstance(clock, int | float) or clock <= 0:
        raise A2QFlowError(f"{where}: clock_ns={clock!r} is not valid", "use a positive number")
    return Board(
        name=data["name"], finn_board=data["finn_board"], part=data["part"],
        family=_enum(Family, data["family"], where, "family"),
        yosys_family=_enum(YosysFamily, data["yosys_family"], where, "yosys_family"),
        shell_flow=_enum(ShellFlow, data["shell_flow"], where, "shell_flow"),
        resources={k: int(res[k]) for k in RESOURCE_KEYS}, clock_ns=float(clock),
    )


def _enum(cls: type[Enum], value: Any, where: str, field_name: str) -> Any:
    try:
        return cls(value)
    except ValueError:
        allowed = ", ".join(repr(m.value) for m in cls)
        raise A2QFlowError(f"{where}: {field_name}={value!r} is not valid",
                           f"use one of {allowed}") from None
