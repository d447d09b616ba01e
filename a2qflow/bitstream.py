"""Stage `bitstream`: the Vivado path (FINN's remaining builder steps) and its report parser.

With Vivado and Vitis HLS installed, FINN's own builder takes the compiled, certified model
(``layout.CODEGEN_MODEL``), once ``verify`` passed on it, through HLS synthesis, FIFO sizing,
stitched IP, out-of-context synthesis, the bitfile and the PYNQ driver; Vivado's
post-synthesis utilization report is then parsed into the ``synth.json`` schema the open flow
writes too. Without the tools it stops before touching anything and says what is missing and
what the open flow offers.

The tool-present branch cannot run on machines without Vivado (this project's CI); it uses
FINN's documented builder API and is marked ``vivado`` in the tests.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from a2qflow import layout
from a2qflow.artifacts import write_json
from a2qflow.boards import ShellFlow, load_board
from a2qflow.errors import A2QFlowError
from a2qflow.finn_env import VivadoStatus, finn_session, vivado_status

VIVADO_DIR = "vivado"
FINN_STEPS = [
    "step_create_dataflow_partition",
    "step_generate_hardware",
    "step_create_stitched_ip",
    "step_out_of_context_synthesis",
    "step_prepare_synthesis",
    "step_synthesize_bitfile",
    "step_make_driver",
    "step_deployment_package",
]
OPEN_FLOW = (
    "the open flow, which needs no Xilinx tools: `a2qflow rtl` emits a2qflow's own Verilog "
    "and checks it bit-exact with Verilator, `a2qflow synth` reports LUT/FF/DSP/BRAM from "
    "Yosys synth_xilinx; FINN's HLS/RTL sources are already in finn/codegen/ for a machine "
    "with Vivado"
)


def missing_tools_error(status: VivadoStatus) -> A2QFlowError:
    return A2QFlowError(
        "the Vivado flow needs Xilinx tools that are not installed: " + "; ".join(status.missing),
        "install Vivado and Vitis HLS and source their settings64.sh, then re-run; or use "
        + OPEN_FLOW + ". Nothing was written.",
    )


def run(build_dir: Path, board: str | None = None) -> dict[str, Any]:
    """Run FINN's hardware steps and parse Vivado's utilization into ``synth.json``."""
    compiled = Path(build_dir) / layout.COMPILE_JSON
    name = board or (layout.read_artifact(build_dir, layout.COMPILE_JSON)["board"]
                     if compiled.is_file() else None)
    if name is not None and load_board(name).is_ecp5:
        raise A2QFlowError(f"{name} is a Lattice ECP5 board: the Vivado flow builds Xilinx "
                           "parts only", f"use `a2qflow pnr {build_dir}` (nextpnr-ecp5 places, "
                           "routes and writes design.bit)")
    status = vivado_status()
    if not status.available:
        raise missing_tools_error(status)
    build_dir = Path(build_dir).resolve()
    summary = layout.read_artifact(build_dir, layout.COMPILE_JSON)
    brd = load_board(board or summary["board"])
    model = layout.require(build_dir, layout.CODEGEN_MODEL)
    layout.require_passed(build_dir, layout.VERIFY_JSON)  # never build a refuted design
    out_dir = build_dir / VIVADO_DIR
    with finn_session(out_dir / "finn_tmp"):
        from finn.builder.build_dataflow import build_dataflow_cfg
        from finn.builder.build_dataflow_config import (
            DataflowBuildConfig,
            DataflowOutputType,
            ShellFlowType,
        )

        flow = (ShellFlowType.VIVADO_ZYNQ if brd.shell_flow is ShellFlow.VIVADO_ZYNQ
                else ShellFlowType.VITIS_ALVEO)
        cfg = DataflowBuildConfig(
            output_dir=str(out_dir), synth_clk_period_ns=brd.clock_ns, board=brd.finn_board,
            fpga_part=brd.part, shell_flow_type=flow, steps=list(FINN_STEPS),
            minimize_bit_width=False,  # the certified widths stay as they are
            generate_outputs=[DataflowOutputType.STITCHED_IP, DataflowOutputType.OOC_SYNTH,
                              DataflowOutputType.BITFILE, DataflowOutputType.PYNQ_DRIVER,
                              DataflowOutputType.DEPLOYMENT_PACKAGE],
        )
        if build_dataflow_cfg(str(model), cfg) != 0:
            raise A2QFlowError(f"FINN's Vivado build failed; see {out_dir}/build_dataflow.log",
                               "read the log; the open flow still works meanwhile")
    reports = sorted(out_dir.rglob("*utilization*synth*.rpt")) or sorted(
        out_dir.rglob("*synth*utilization*.rpt"))
    if not reports:
        raise A2QFlowError(f"no Vivado post-synthesis utilization report under {out_dir}",
                           "check the Vivado logs in that directory")
    synth = synth_document([parse_utilization_report(p.read_text()) for p in reports], brd.name)
    write_json(build_dir / "synth.json", synth)
    return synth


# --- Vivado report_utilization parser -------------------------------------------------------

_ROW_NAMES = {
    "LUT": ("Slice LUTs", "CLB LUTs"),
    "FF": ("Slice Registers", "CLB Registers"),
    "BRAM36": ("Block RAM Tile",),
    "URAM": ("URAM",),
    "DSP": ("DSPs",),
}
_HEADER = re.compile(r"^\|\s*([A-Za-z ]+?)\s*:\s*(.*?)\s*$")
_VERSION = re.compile(r"Vivado v\.?(\d{4}\.\d+(?:\.\d+)?)")


def parse_utilization_report(text: str) -> dict[str, Any]:
    """Parse a ``report_utilization`` text report (7-series or UltraScale+ table names).

    Block RAM is reported in 36 Kb tiles (halves for a lone RAMB18); ``BRAM18`` counts 18 Kb
    halves, the unit of the board catalogue and FINN's estimates.
    """
    header: dict[str, str] = {}
    for line in text.splitlines()[:40]:
        m = _HEADER.match(line)
        if m:
            header[m.group(1).strip()] = m.group(2)
    version = _VERSION.search(header.get("Tool Version", ""))
    if not version or "Design" not in header:
        raise A2QFlowError("not a Vivado utilization report (no Tool Version / Design header)",
                           "pass the text written by `report_utilization -file ...`")
    used: dict[str, float] = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 2 or not line.lstrip().startswith("|"):
            continue
        name = cells[0].rstrip("*").strip()
        for key, names in _ROW_NAMES.items():
            if key not in used and name in names:
                used[key] = _number(cells[1], name)
    missing = [k for k in ("LUT", "FF", "BRAM36", "DSP") if k not in used]
    if missing:
        raise A2QFlowError(f"utilization report lacks {', '.join(missing)}",
                           "pass a complete post-synthesis `report_utilization` report")
    return {
        "design": header["Design"],
        "device": header.get("Device"),
        "tool": f"Vivado {version.group(1)}",
        "state": header.get("Design State"),
        "LUT": int(used["LUT"]),
        "FF": int(used["FF"]),
        "BRAM36": used["BRAM36"],
        "BRAM18": int(round(used["BRAM36"] * 2)),
        "URAM": int(used.get("URAM", 0)),
        "DSP": int(used["DSP"]),
    }


def synth_document(designs: list[dict[str, Any]], board: str) -> dict[str, Any]:
    """The open flow's synth.json schema (one ``certified`` variant), filled from Vivado."""
    from a2qflow.boards import load_board

    tools = ", ".join(sorted({d["tool"] for d in designs}))
    total: dict[str, Any] = {k: sum(d[k] for d in designs)
                             for k in ("LUT", "FF", "BRAM18", "URAM", "DSP")}
    total["CARRY"] = None  # not in Vivado's summary table
    certified = {"total": total, "utilization": load_board(board).utilization(total),
                 "designs": {d["design"]: d for d in designs}}
    return {"stage": "synth", "flow": "vivado", "board": board, "tool": tools,
            "label": f"{tools}, {board}", "variants": {"certified": certified},
            "designs": certified["designs"]}


def _number(cell: str, row: str) -> float:
    try:
        return float(cell)
    except ValueError:
        raise A2QFlowError(f"utilization report row {row!r} has no number ({cell!r})",
                           "pass an unmodified Vivado report") from None
