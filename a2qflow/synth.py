"""Stage `synth`: Yosys ``synth_xilinx`` of the generated design, per layer and in total.

Each module (MVAU, FIFO, width converter) is synthesized on its own, for the board's family,
and cached by the hash of its Verilog, the family, the options and the Yosys version, so a
re-run or a second build with the same layers costs nothing. ``compare_acc_bits`` also
synthesizes the same network (same folding, same thresholds) with every accumulator forced to
that width and reports the ratios, figure at that width / figure at the certified widths.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from a2qflow.artifacts import read_json, write_json
from a2qflow.boards import load_board
from a2qflow.rtl.generate import render_design
from a2qflow.rtl.layers import Design, MVAULayer, read_design
from a2qflow.tools.yosys import Yosys

CACHE_DIR = Path(__file__).resolve().parents[1] / ".cache" / "synth"
SUMMED = ("LUT", "LUT_logic", "LUT_memory", "FF", "CARRY", "DSP", "BRAM18", "MUXF")


def run(build_dir: Path, compare_acc_bits: int | None = None, board: str | None = None,
        jobs: int = 2) -> dict[str, Any]:
    """Synthesize the build's design; writes and returns ``synth.json``."""
    build_dir = Path(build_dir)
    t0 = time.perf_counter()
    compiled = read_json(build_dir / "compile.json", "compile summary", "a2qflow compile")
    brd = load_board(board or compiled["board"])
    design = read_design(build_dir)
    yosys = Yosys()
    family = brd.yosys_family.value
    variants = {"certified": synth_design(design, yosys, family, jobs)}
    if compare_acc_bits is not None:
        variants[f"acc{compare_acc_bits}"] = synth_design(design.at_width(compare_acc_bits),
                                                          yosys, family, jobs)
    for v in variants.values():
        used = {"LUT": v["total"]["LUT"], "FF": v["total"]["FF"],
                "BRAM18": v["total"]["BRAM18"], "DSP": v["total"]["DSP"]}
        v["utilization"] = brd.utilization(used)
    result: dict[str, Any] = {
        "stage": "synth", "tool": yosys.label, "flow": f"synth_xilinx -family {family}",
        "board": brd.name, "part": brd.part, "family": family,
        "label": f"{yosys.label} estimate, {brd.name} ({family})",
        "variants": variants,
    }
    if compare_acc_bits is not None:
        base, wide = variants["certified"]["total"], variants[f"acc{compare_acc_bits}"]["total"]
        result["compare_acc_bits"] = compare_acc_bits
        for key, name in (("LUT", "lut_ratio"), ("FF", "ff_ratio"), ("DSP", "dsp_ratio"),
                          ("CARRY", "carry_ratio")):
            result[name] = round(wide[key] / base[key], 4) if base[key] else None
    result["seconds"] = round(time.perf_counter() - t0, 3)
    write_json(build_dir / "synth.json", result)
    return result


def synth_design(design: Design, yosys: Yosys, family: str, jobs: int = 2) -> dict[str, Any]:
    """Every module of the design through Yosys (cached); per-module figures and the total."""
    rendered = render_design(design)
    jobs_list = [(m, lay) for m, lay in zip(rendered.layer_modules, design.layers, strict=True)]
    jobs_list += [(m, None) for m in rendered.glue_modules]

    def one(item: tuple[str, MVAULayer | None]) -> dict[str, Any]:
        module, layer = item
        nodsp = layer is not None and not layer.products_in_dsp
        res = synth_cached(rendered.module_text(module), module, family, yosys, nodsp)
        res["kind"] = "mvau" if layer is not None else "glue"
        if layer is not None:
            res.update({"node": layer.name, "acc_bits": layer.acc_bits,
                        "register_bits": layer.register_bits, "simd": layer.simd,
                        "pe": layer.pe, "res_type": layer.res_type,
                        "products": "LUT" if nodsp else "DSP48 where Yosys maps"})
        return res

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        modules = list(pool.map(one, jobs_list))
    total = {k: sum(m["resources"].get(k, 0) for m in modules) for k in SUMMED}
    return {
        "acc_bits": [lay.acc_bits for lay in design.layers],
        "layers": [m for m in modules if m["kind"] == "mvau"],
        "glue": [m for m in modules if m["kind"] == "glue"],
        "total": total,
        "logic_levels": max(m["logic_levels"] for m in modules),
        "cached": sum(1 for m in modules if m["cached"]),
    }


def synth_cached(text: str, module: str, family: str, yosys: Yosys,
                 nodsp: bool) -> dict[str, Any]:
    key = hashlib.sha256(json.dumps([text, module, family, nodsp, yosys.version,
                                     yosys.script("design.v", module, family, nodsp)])
                         .encode()).hexdigest()[:24]
    entry = CACHE_DIR / f"{key}.json"
    if entry.is_file():
        try:
            return {**json.loads(entry.read_text()), "cached": True}
        except json.JSONDecodeError:
            pass
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f"{module}-", dir=CACHE_DIR) as tmp:
        work = Path(tmp)
        (work / "in.v").write_text(text)
        result = yosys.synth(work / "in.v", module, family, work, nodsp=nodsp).to_dict()
    write_json(entry, result)
    return {**result, "cached": False}


def resource_table(result: dict[str, Any]) -> str:
    """Markdown table of the totals per variant (CLI, demo and bench)."""
    lines = [f"Resources ({result['label']})", "",
             "| variant | acc bits | LUT | FF | CARRY | DSP | BRAM18 | logic levels |",
             "|---|---|---|---|---|---|---|---|"]
    for name, v in result["variants"].items():
        t = v["total"]
        widths = ",".join(str(b) for b in v["acc_bits"])
        lines.append(f"| {name} | {widths} | {t['LUT']} | {t['FF']} | {t['CARRY']} | "
                     f"{t['DSP']} | {t['BRAM18']} | {v['logic_levels']} |")
    if "lut_ratio" in result:
        ratios = ", ".join(f"{k} {result[f'{k.lower()}_ratio']:.2f}x"
                           if result[f"{k.lower()}_ratio"] is not None else f"{k} n/a (none used)"
                           for k in ("LUT", "FF", "CARRY", "DSP"))
        lines += ["", f"at {result['compare_acc_bits']} bits / certified: {ratios}"]
    return "\n".join(lines)
