"""Stage `pnr`: rtl's Verilog placed and routed on a Lattice ECP5 board with open tools.

For each variant (the certified widths and, on request, the comparison width rtl rendered into
``rtl/acc<N>/``) the design is wrapped in the P&R harness (``hls/verilog/pnr_harness.v.j2``:
the AXI-Stream ports cannot all be pins, so an on-chip LFSR drives the input stream and the
output stream is XOR-folded onto the board's LEDs; nothing can be optimized away), synthesized
with Yosys ``synth_ecp5``, placed and routed by nextpnr-ecp5 at the board's clock with a
recorded seed, and packed into a bitstream by ecppack. ``pnr.json`` holds the routed cells,
utilization, Fmax per clock and whether the board's clock is met (a design that misses it is
reported as failing, with its Fmax), the critical path's endpoints, the harness's own cost,
the seed and the tool versions; ``design.bit`` is the certified variant's bitstream.

Every variant is cached by content (sources, harness, constraints, board, clock, seed, options
and tool versions) in ``.cache/pnr/``; the cache entry keeps the Yosys and nextpnr logs and
the report. The Verilog is read back from ``rtl/``, never re-rendered.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import tempfile
import time
from importlib.metadata import version
from pathlib import Path
from typing import Any

import jinja2

from a2qflow import layout
from a2qflow.artifacts import atomic_path, file_sha256, read_json, replace_dir, write_json
from a2qflow.boards import Board, board_names, load_board
from a2qflow.errors import A2QFlowError
from a2qflow.tools import ecp5
from a2qflow.tools.nextpnr import Nextpnr
from a2qflow.tools.yosys import Yosys

PNR_JSON = layout.PNR_JSON
BITSTREAM = layout.BITSTREAM
RTL_DIR = layout.RTL_DIR
RTL_DESIGN = layout.RTL_DESIGN
HARNESS_TOP = "a2q_pnr_top"
HARNESS_TEMPLATE = "pnr_harness.v.j2"
TEMPLATE_DIR = Path(__file__).resolve().parents[1] / "hls" / "verilog"
DEFAULT_CACHE_DIR = Path(__file__).resolve().parents[1] / ".cache" / "pnr"
LFSR_SEED = 0xACE1ACE1
GOLDEN = 0x9E3779B9  # spreads the LFSR seeds
HARNESS_NOTE = ("P&R harness (hls/verilog/pnr_harness.v.j2): 32-bit LFSRs drive the input "
                "stream (tdata, tvalid), a free-running LFSR drives the output tready, and every "
                "output beat is XOR-folded into registers on the board's LEDs; a 4-bit power-on "
                "counter makes the reset. Its cells are included in the routed figures and "
                "measured alone under harness.")


def run(build_dir: Path, seed: int = 1, compare_acc_bits: int | None = None,
        board: str | None = None, clock_mhz: float | None = None, dsp: bool | None = None,
        timeout_s: float | None = None, cache_dir: Path | None = None) -> dict[str, Any]:
    """Place and route the build's design on an ECP5 board; writes ``pnr.json`` and ``design.bit``.

    ``board`` defaults to the compile's board and must be of the ECP5 family; ``clock_mhz``
    defaults to the board's clock. ``compare_acc_bits`` also places and routes the variant rtl
    rendered at that width (``rtl/acc<N>/``). ``dsp`` lets Yosys map products to MULT18X18D
    (default: when any layer's resType asks for DSPs, as synth does). Returns the document.
    """
    build_dir = Path(build_dir)
    t0 = time.perf_counter()
    inputs = layout.input_hashes(build_dir, layout.stage_files("pnr").reads)
    brd = ecp5_board(board or _compile_board(build_dir))
    layout.require_simulated_rtl(build_dir)  # only a verified, simulated design is placed
    variants = rtl_variants(build_dir, compare_acc_bits)
    nextpnr = Nextpnr(**({"timeout_s": timeout_s} if timeout_s else {}))
    yosys = Yosys()
    results = {}
    for name, v in variants.items():
        use_dsp = dsp if dsp is not None else bool(v.get("products_in_dsp"))
        res = place_and_route(v["sources"], v["top"], brd, seed=seed, clock_mhz=clock_mhz,
                              dsp=use_dsp, nextpnr=nextpnr, yosys=yosys, cache_dir=cache_dir,
                              data=v["data"])
        res["acc_bits"] = v["acc_bits"]
        res["simulated"] = v["simulated"]
        results[name] = res
    certified = results["certified"]
    bit_src = Path(certified.pop("bitstream_path"))
    for r in results.values():
        r.pop("bitstream_path", None)
    certified["bitstream"] = BITSTREAM
    certified["bitstream_sha256"] = file_sha256(bit_src)
    doc = document(results, brd, nextpnr, yosys, seed, compare_acc_bits)
    doc["inputs"] = inputs
    doc["seconds"] = round(time.perf_counter() - t0, 3)
    # both staged before either is renamed into place (pnr.json first, then design.bit)
    with atomic_path(build_dir / BITSTREAM) as bit_tmp, \
            atomic_path(build_dir / PNR_JSON) as json_tmp:
        shutil.copyfile(bit_src, bit_tmp)
        json_tmp.write_text(json.dumps(doc, indent=2) + "\n")
    return doc


def document(results: dict[str, dict[str, Any]], brd: Board, nextpnr: Nextpnr, yosys: Yosys,
             seed: int, compare_acc_bits: int | None) -> dict[str, Any]:
    """``pnr.json`` from the per-variant results (see the module docstring for the fields)."""
    certified = results["certified"]
    tgt = brd.ecp5
    assert tgt is not None
    doc: dict[str, Any] = {
        "stage": "pnr", "tool": nextpnr.label, "synth_tool": yosys.label,
        "label": f"{nextpnr.label} placed and routed, {brd.name} ({brd.part})",
        "flow": certified["flow"],
        "board": brd.name, "part": brd.part, "device": tgt.device, "package": tgt.package,
        "speed_grade": tgt.speed_grade, "board_clock_mhz": round(brd.clock_mhz, 3),
        "target_mhz": certified["target_mhz"], "seed": seed,
        "fmax_mhz": certified["fmax_mhz"], "timing_met": certified["timing_met"],
        "harness": {"module": HARNESS_TOP, "template": f"hls/verilog/{HARNESS_TEMPLATE}",
                    "note": HARNESS_NOTE},
        "variants": results,
    }
    if compare_acc_bits is not None:
        wide = results[f"acc{compare_acc_bits}"]
        doc["compare_acc_bits"] = compare_acc_bits
        for key in ("LUT4", "FF", "EBR", "MULT18"):
            base = certified["routed"][key]
            doc[f"{key.lower()}_ratio"] = round(wide["routed"][key] / base, 4) if base else None
        if certified["fmax_mhz"] and wide["fmax_mhz"]:
            doc["fmax_ratio"] = round(wide["fmax_mhz"] / certified["fmax_mhz"], 4)
    return doc


def ecp5_board(name: str) -> Board:
    brd = load_board(name)
    if not brd.is_ecp5:
        ecp5_names = [n for n in board_names() if load_board(n).is_ecp5]
        raise A2QFlowError(f"board {name!r} is not an ECP5 board: place and route here is "
                           "nextpnr-ecp5 (Lattice ECP5) only",
                           f"pass an ECP5 board: {', '.join(ecp5_names)}")
    return brd


def _compile_board(build_dir: Path) -> str:
    return layout.read_artifact(build_dir, layout.COMPILE_JSON)["board"]


def rtl_variants(build_dir: Path, compare_acc_bits: int | None = None) -> dict[str, Any]:
    """The variants to place and route, as the rtl stage wrote them.

    From ``rtl/design.json``: its ``certified`` variant and, with ``compare_acc_bits``, its
    ``acc<N>`` variant (an error when rtl did not render it).
    """
    build_dir = Path(build_dir)
    described = layout.require(build_dir, RTL_DESIGN)
    data = read_json(described, "rtl design description", "a2qflow rtl")
    wanted = ["certified"] + ([f"acc{compare_acc_bits}"] if compare_acc_bits is not None else [])
    out = {}
    for name in wanted:
        if name not in data.get("variants", {}):
            raise A2QFlowError(f"{described} has no variant {name!r} "
                               f"(it has {', '.join(data.get('variants', {})) or 'none'})",
                               f"re-run `a2qflow rtl --compare-acc-bits {compare_acc_bits}`")
        v = data["variants"][name]
        src = build_dir / v["dir"]
        top = v.get("top", data["top"])
        finn_sv = [m["node"] for m in v["modules"] if m.get("reads")]
        if finn_sv:
            raise A2QFlowError(
                f"the design has FINN SystemVerilog blocks ({', '.join(finn_sv)}), which the "
                "ECP5 flow (Yosys synth_ecp5 + nextpnr) does not read",
                "place and route designs of a2qflow's own Verilog (MLPs); synthesize convnets "
                "for a Xilinx board with `a2qflow synth`")
        files = [f for m in v["modules"] for f in m.get("files", [m.get("file")])] + [
            f"{top}.v"]
        sources = [src / f for f in dict.fromkeys(files)]
        memory = [src / f for f in dict.fromkeys(f for m in v["modules"]
                                                 for f in m.get("data", []))]
        missing = [str(p) for p in sources + memory if not p.is_file()]
        if missing:
            raise A2QFlowError(f"{', '.join(missing)} listed in {described} but missing",
                               "re-run `a2qflow rtl`")
        out[name] = {"sources": sources, "data": memory, "top": top,
                     "acc_bits": v.get("acc_bits"),
                     "simulated": v.get("simulated", name == "certified"),
                     "products_in_dsp": any(m.get("products_in_dsp") for m in v["modules"])}
    return out


def port_widths(verilog: str, top: str) -> tuple[int, int]:
    """``s_axis_tdata`` and ``m_axis_tdata`` widths of module ``top`` in ``verilog``."""
    m = re.search(rf"\bmodule\s+{re.escape(top)}\b(.*?)\bendmodule\b", verilog, re.S)
    if m is None:
        raise A2QFlowError(f"module {top} not found in its source", "re-run `a2qflow rtl`")
    widths = []
    for port in ("s_axis_tdata", "m_axis_tdata"):
        w = re.search(rf"\[\s*(\d+)\s*:\s*0\s*\]\s*{port}\b", m.group(1))
        if w is None:
            raise A2QFlowError(f"module {top} has no {port}[N:0] port",
                               "the P&R harness wraps an AXI-Stream core (ap_clk, ap_rst_n, "
                               "s_axis_*, m_axis_*) like rtl's a2q_top")
        widths.append(int(w.group(1)) + 1)
    return widths[0], widths[1]


def render_harness(core: str, in_width: int, out_width: int, n_out: int,
                   module: str = HARNESS_TOP) -> str:
    """The harness Verilog around ``core`` (see the template's header for what it adds)."""
    n_out = max(1, min(n_out, out_width))
    n_gen = (in_width + 2 + 31) // 32  # data bits + two for tvalid
    seeds = [f"{(LFSR_SEED ^ (k * GOLDEN)) & 0xFFFFFFFF or 1:08x}" for k in range(n_gen)]
    fold = [list(range(k, out_width, n_out)) for k in range(n_out)]
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATE_DIR)),
                             undefined=jinja2.StrictUndefined, trim_blocks=True,
                             lstrip_blocks=True, keep_trailing_newline=True, autoescape=False)
    return env.get_template(HARNESS_TEMPLATE).render(
        module=module, core=core, in_width=in_width, out_width=out_width, n_out=n_out,
        seeds=seeds, sink_seed=f"{(LFSR_SEED * 3) & 0xFFFFFFFF:08x}", fold=fold,
        version=version("a2qflow"))


def core_stub(core: str, in_width: int, out_width: int) -> str:
    """A black box with the core's ports: synthesizing the harness alone measures its cost."""
    return (f"(* blackbox *)\nmodule {core} (input wire ap_clk, input wire ap_rst_n,\n"
            f"  input wire [{in_width - 1}:0] s_axis_tdata, input wire s_axis_tvalid,\n"
            f"  output wire s_axis_tready, output wire [{out_width - 1}:0] m_axis_tdata,\n"
            f"  output wire m_axis_tvalid, input wire m_axis_tready);\nendmodule\n")


def harness_lpf(brd: Board, n_out: int, freq_mhz: float) -> str:
    """Pin constraints: the board's oscillator as ``clk`` and ``n_out`` of its LEDs as ``out``."""
    tgt = brd.ecp5
    assert tgt is not None
    lines = [f"# {brd.name}: pins of the a2qflow P&R harness (from boards/{brd.name}.yaml)",
             f'LOCATE COMP "clk" SITE "{tgt.clock_pin}";',
             f'IOBUF PORT "clk" IO_TYPE={tgt.clock_io};',
             f'FREQUENCY PORT "clk" {freq_mhz:.6g} MHZ;']
    for i, pin in enumerate(tgt.output_pins[:n_out]):
        lines += [f'LOCATE COMP "out[{i}]" SITE "{pin}";',
                  f'IOBUF PORT "out[{i}]" IO_TYPE={tgt.outputs_io};']
    return "\n".join(lines) + "\n"


def place_and_route(sources: list[Path], top: str, brd: Board, seed: int = 1,
                    clock_mhz: float | None = None, dsp: bool = False,
                    nextpnr: Nextpnr | None = None, yosys: Yosys | None = None,
                    cache_dir: Path | None = None, data: list[Path] | None = None
                    ) -> dict[str, Any]:
    """One design (Verilog ``sources``, top module ``top`` with rtl's AXI-Stream ports; ``data``:
    the memory files they ``$readmemh``, e.g. weights) in the harness, through synth_ecp5,
    nextpnr-ecp5 and ecppack on ``brd``; cached by content.

    Returns the variant's record for ``pnr.json`` plus ``bitstream_path`` (in the cache).
    """
    tgt = brd.ecp5
    if tgt is None:
        raise A2QFlowError(f"board {brd.name!r} is not an ECP5 board", "pass an ECP5 board")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise A2QFlowError(f"seed={seed!r} is not valid", "use a non-negative integer")
    freq = float(clock_mhz) if clock_mhz is not None else brd.clock_mhz
    if not freq > 0:
        raise A2QFlowError(f"clock_mhz={clock_mhz!r} is not valid", "use a positive frequency")
    nextpnr = nextpnr or Nextpnr()
    yosys = yosys or Yosys()
    texts = {Path(p).name: Path(p).read_text() for p in sources}
    memory = {Path(p).name: Path(p).read_text() for p in data or []}
    if f"{top}.v" not in texts and not any(re.search(rf"\bmodule\s+{re.escape(top)}\b", t)
                                           for t in texts.values()):
        raise A2QFlowError(f"top module {top} is in none of the sources", "re-run `a2qflow rtl`")
    top_text = texts.get(f"{top}.v") or next(
        t for t in texts.values() if re.search(rf"\bmodule\s+{re.escape(top)}\b", t))
    in_width, out_width = port_widths(top_text, top)
    n_out = max(1, min(len(tgt.output_pins), out_width))
    harness = render_harness(top, in_width, out_width, n_out)
    lpf = harness_lpf(brd, n_out, freq)
    names = sorted(texts) + [f"{HARNESS_TOP}.v"]
    argv = nextpnr.argv("netlist.json", tgt.device, tgt.package, tgt.speed_grade, freq, seed,
                        "harness.lpf")
    key = hashlib.sha256(json.dumps([
        sorted(texts.items()), sorted(memory.items()), top, harness, lpf, brd.to_dict(), freq,
        seed, dsp, yosys.version, nextpnr.version, ecp5.script(names, HARNESS_TOP, not dsp, True),
        argv[1:]]).encode()).hexdigest()[:24]
    cache = Path(cache_dir) if cache_dir is not None else DEFAULT_CACHE_DIR
    entry = cache / key
    if (entry / "result.json").is_file() and (entry / BITSTREAM).is_file():
        try:
            result = json.loads((entry / "result.json").read_text())
            return {**result, "cached": True, "bitstream_path": str(entry / BITSTREAM)}
        except json.JSONDecodeError:
            pass
    cache.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{key}-", dir=cache))
    try:
        result = _place_and_route(work, texts, memory, top, harness, lpf, brd, freq, seed, dsp,
                                  nextpnr, yosys, in_width, out_width, n_out)
        # large; kept: logs, harness
        for scratch in ["netlist.json", "design.config", *texts, *memory]:
            (work / scratch).unlink(missing_ok=True)
        write_json(work / "result.json", result)
        replace_dir(work, entry)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return {**result, "cached": False, "bitstream_path": str(entry / BITSTREAM)}


def _place_and_route(work: Path, texts: dict[str, str], memory: dict[str, str], top: str,
                     harness: str, lpf: str, brd: Board, freq: float, seed: int, dsp: bool,
                     nextpnr: Nextpnr, yosys: Yosys, in_width: int, out_width: int, n_out: int
                     ) -> dict[str, Any]:
    tgt = brd.ecp5
    assert tgt is not None
    for name, text in {**texts, **memory}.items():
        (work / name).write_text(text)
    (work / f"{HARNESS_TOP}.v").write_text(harness)
    (work / "harness.lpf").write_text(lpf)
    files = [work / n for n in sorted(texts)] + [work / f"{HARNESS_TOP}.v"]
    synth = ecp5.synth_ecp5(files, HARNESS_TOP, work, nodsp=not dsp, netlist=True, yosys=yosys)
    alone = work / "harness_alone"
    alone.mkdir()
    (alone / "core_stub.v").write_text(core_stub(top, in_width, out_width))
    (alone / f"{HARNESS_TOP}.v").write_text(harness)
    cost = ecp5.synth_ecp5([alone / "core_stub.v", alone / f"{HARNESS_TOP}.v"], HARNESS_TOP,
                           alone, nodsp=True, yosys=yosys)
    cost.cells.pop(top, None)
    pnr = nextpnr.place_and_route(work / "netlist.json", work, tgt.device, tgt.package,
                                  tgt.speed_grade, freq, seed, work / "harness.lpf")
    pack_s = nextpnr.pack(pnr.config, work / BITSTREAM)
    routed = pnr.to_dict()
    flow = (f"synth_ecp5 -top {HARNESS_TOP}{'' if dsp else ' -nodsp'}; nextpnr-ecp5 "
            f"--{tgt.device} --package {tgt.package} --speed {tgt.speed_grade} "
            f"--freq {freq:.6g} --seed {seed}; ecppack --compress")
    return {
        **routed, "flow": flow, "core": top, "in_width": in_width, "out_width": out_width,
        "harness_pins": n_out, "products": "MULT18X18D where Yosys maps" if dsp else "LUT",
        "synth": {"tool": synth.tool, "cells": synth.cells, "resources": synth.resources,
                  "warnings": synth.warnings},
        "harness": {"cells": cost.cells, "resources": ecp5.resources_from_cells(cost.cells),
                    "note": "the harness synthesized alone (the core as a black box)"},
        "seconds": {"synth": synth.seconds, "harness_synth": cost.seconds,
                    "pnr": pnr.seconds, "pack": pack_s},
        "logs": {"yosys": "yosys.log", "nextpnr": "nextpnr.log", "report": "report.json",
                 "ecppack": "ecppack.log"},
    }


def pnr_table(result: dict[str, Any]) -> str:
    """Markdown table of the routed figures and timing per variant (CLI, demo and bench)."""
    lines = [f"Placed and routed ({result['label']}, seed {result['seed']}, target "
             f"{result['target_mhz']:g} MHz)", "",
             "| variant | acc bits | LUT4 | FF | EBR | MULT18 | Fmax MHz | timing | P&R s |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name, v in result["variants"].items():
        r = v["routed"]
        widths = ",".join(str(b) for b in v["acc_bits"]) if v.get("acc_bits") else "-"
        fmax = f"{v['fmax_mhz']:.1f}" if v["fmax_mhz"] is not None else "-"
        met = {True: "met", False: "FAILED", None: "no clocked path"}[v["timing_met"]]
        lines.append(f"| {name} | {widths} | {r['LUT4']} | {r['FF']} | {r['EBR']} | "
                     f"{r['MULT18']} | {fmax} | {met} | {v['seconds']['pnr']:.1f} |")
    if "lut4_ratio" in result:
        ratios = ", ".join(f"{k} {result[f'{k.lower()}_ratio']:.2f}x"
                           if result.get(f"{k.lower()}_ratio") is not None else f"{k} n/a"
                           for k in ("LUT4", "FF", "EBR", "MULT18"))
        lines += ["", f"at {result['compare_acc_bits']} bits / certified: {ratios}"
                  + (f", Fmax {result['fmax_ratio']:.2f}x" if "fmax_ratio" in result else "")]
    lines += ["", "Includes the P&R harness (LFSR input generator, XOR fold of the outputs "
                  "onto the LEDs); see pnr.json harness."]
    return "\n".join(lines)
