"""Stage `synth`: Yosys ``synth_xilinx`` of the Verilog ``rtl`` wrote, per layer and in total.

It reads ``rtl/design.json`` and the sources beside it (never a re-rendering), and only after
``verify.json`` and ``sim.json`` passed on the current artifacts. Each module (MVAU, FIFO,
width converter) is synthesized on its own, for the board's family, and cached by the hash of
its Verilog, the family, the options and the Yosys version, so a re-run or a second build with
the same layers costs nothing. Every module runs under a wall-clock limit (fully unrolled
layers can take Yosys many minutes); a module that ran past it fails the stage with a message
saying which, and that outcome is cached too, so a re-run under the same limit fails at once
instead of spending the limit again. Each module's result is reported as it finishes.
When rtl also wrote the
network at a comparison width (``rtl/acc<N>/``: same folding, same thresholds, every
accumulator at N bits), synth reports the ratios, figure at that width / figure certified.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from a2qflow import layout
from a2qflow.artifacts import write_json
from a2qflow.boards import load_board
from a2qflow.config import DEFAULT_SYNTH_LAYER_LIMIT_S
from a2qflow.errors import A2QFlowError
from a2qflow.tools import ecp5
from a2qflow.tools.yosys import SlangRead, SynthesisTimeout, Yosys

DEFAULT_CACHE_DIR = Path(__file__).resolve().parents[1] / ".cache" / "synth"
SUMMED = ("LUT", "LUT_logic", "LUT_memory", "FF", "CARRY", "DSP", "BRAM18", "MUXF")
ECP5 = "ecp5"  # the board family whose figures come from synth_ecp5 (LUT = LUT4 sites)


def run(build_dir: Path, board: str | None = None, jobs: int = 2,
        cache_dir: Path | None = None, layer_limit_s: float = DEFAULT_SYNTH_LAYER_LIMIT_S,
        echo: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Synthesize the Verilog the rtl stage wrote; writes and returns ``synth.json``.

    Refuses a design whose verification or simulation failed, or whose ``verify.json`` /
    ``sim.json`` is older than the artifacts it was computed from: a resource figure is only
    reported for the design that was proven and simulated.
    """
    build_dir = Path(build_dir)
    t0 = time.perf_counter()
    inputs = layout.input_hashes(build_dir, layout.stage_files("synth").reads)
    described = layout.require_simulated_rtl(build_dir)
    compiled = layout.read_artifact(build_dir, layout.COMPILE_JSON)
    brd = load_board(board or compiled["board"])
    yosys = Yosys()
    family = brd.yosys_family.value
    finn_sv = sorted({m["module"] for v in described["variants"].values()
                      for m in v["modules"] if m.get("reads")})
    if finn_sv and family == ECP5:
        raise A2QFlowError(
            f"the design has FINN SystemVerilog blocks ({', '.join(finn_sv)}), which a2qflow "
            f"synthesizes for Xilinx families only (read_slang + synth_xilinx), not {brd.name}",
            "synthesize designs with FINN RTL blocks for a Xilinx board (--board)")
    cache = ensure_cache(Path(cache_dir) if cache_dir is not None else DEFAULT_CACHE_DIR)
    progress = Progress(echo, sum(len(v["modules"]) for v in described["variants"].values()))
    if echo is not None:
        echo(f"synth: {progress.total} modules, {max(1, jobs)} at a time, "
             f"at most {layer_limit_s:g} s each ({yosys.label})")
    variants = {name: synth_variant(build_dir, v, yosys, family, cache, jobs, layer_limit_s,
                                    progress.prefixed(name))
                for name, v in described["variants"].items()}
    for v in variants.values():
        used = {"LUT": v["total"]["LUT"], "FF": v["total"]["FF"],
                "BRAM18": v["total"]["BRAM18"], "DSP": v["total"]["DSP"]}
        v["utilization"] = brd.utilization(used)
    flow = "synth_ecp5" if family == ECP5 else f"synth_xilinx -family {family}"
    result: dict[str, Any] = {
        "stage": "synth", "tool": yosys.label, "flow": flow,
        "board": brd.name, "part": brd.part, "family": family,
        "label": f"{yosys.label} estimate ({flow}), {brd.name} ({family})",
        "inputs": inputs, "variants": variants,
    }
    compared = [n for n in variants if n != "certified"]
    if compared:
        name = compared[0]
        base, wide = variants["certified"]["total"], variants[name]["total"]
        result["compare_acc_bits"] = int(name.removeprefix("acc"))
        for key, ratio in (("LUT", "lut_ratio"), ("FF", "ff_ratio"), ("DSP", "dsp_ratio"),
                           ("CARRY", "carry_ratio")):
            result[ratio] = round(wide[key] / base[key], 4) if base[key] else None
    result["seconds"] = round(time.perf_counter() - t0, 3)
    write_json(build_dir / layout.SYNTH_JSON, result)
    return result


class Progress:
    """One line per finished module, numbered across every variant ("[3/12] ..."), thread-safe."""

    def __init__(self, echo: Callable[[str], None] | None, total: int):
        self.echo, self.total, self.done = echo, total, 0
        self._lock = threading.Lock()

    def prefixed(self, variant: str) -> Callable[[dict[str, Any]], None]:
        def report(res: dict[str, Any]) -> None:
            with self._lock:
                self.done += 1
                if self.echo is not None:
                    r = res["resources"]
                    how = "cached" if res["cached"] else f"{res['seconds']:.1f} s"
                    self.echo(f"  [{self.done}/{self.total}] {variant} {res['module']}: "
                              f"{r['LUT']:,} LUT, {r['FF']:,} FF, {r['DSP']} DSP, "
                              f"{r['BRAM18']} BRAM18 ({how})")
        return report


def synth_variant(build_dir: Path, variant: dict[str, Any], yosys: Yosys, family: str,
                  cache: Path, jobs: int = 2, limit_s: float = DEFAULT_SYNTH_LAYER_LIMIT_S,
                  finished: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Every module rtl wrote for one variant through Yosys (cached); per-module and total."""
    src = Path(build_dir) / variant["dir"]

    def one(record: dict[str, Any]) -> dict[str, Any]:
        names = record.get("files", [record.get("file")])
        missing = [n for n in [*names, *record.get("data", [])] if not (src / n).is_file()]
        if missing:
            raise A2QFlowError(f"{src / missing[0]} is listed in {layout.RTL_DESIGN} but "
                               "missing", "re-run `a2qflow rtl`")
        mvau = record["kind"] == "mvau"
        nodsp = mvau and not record["products_in_dsp"]
        if record.get("reads"):  # FINN's SystemVerilog: its files, read by read_slang
            # the adapter is measured only where it is the top (it wires FINN's memstream)
            with_adapter = record["top"] == record["module"]
            files = {n: (src / n).read_text() for n in [*names, *record.get("data", [])]
                     if with_adapter or n != record["adapter"]}
            reads = [SlangRead(**{k: tuple(v) if isinstance(v, list) else v
                                  for k, v in r.items()}) for r in record["reads"]]
            res = synth_cached(files, record["top"], family, yosys, nodsp, cache, limit_s,
                               reads, verilog=(record["adapter"],) if with_adapter else ())
        else:  # a2qflow's Verilog, with the memory files it $readmemh-s (weights)
            (name,) = names
            text = (src / name).read_text()
            data = {n: (src / n).read_text() for n in record.get("data", [])}
            if record.get("partitions"):
                res = synth_partitions(text, record["module"], record["partitions"], family,
                                       yosys, nodsp, cache, limit_s)
            else:
                res = synth_cached({"in.v": text, **data} if data else text,
                                   record.get("top", record["module"]), family, yosys, nodsp,
                                   cache, limit_s)
        if finished is not None:
            finished(res)
        res["kind"] = record["kind"]
        res["backend"] = record.get("backend", "a2qflow Verilog")
        if mvau:  # what rtl recorded about the layer (node, widths, folding, style, ...)
            res.update({k: v for k, v in record.items()
                        if k not in ("module", "file", "files", "data", "reads", "adapter",
                                     "top", "kind", "products_in_dsp", "partitions")})
            res["products"] = "LUT" if nodsp else "DSP48 where Yosys maps"
        elif "nodes" in record:
            res.update(node=record["node"], nodes=record["nodes"])
        return res

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        modules = list(pool.map(one, variant["modules"]))
    total = {k: sum(m["resources"].get(k, 0) for m in modules) for k in SUMMED}
    return {
        "acc_bits": variant["acc_bits"], "dir": variant["dir"],
        "simulated": variant["simulated"],
        "layers": [m for m in modules if m["kind"] == "mvau"],
        "blocks": [m for m in modules if m["kind"] not in ("mvau", "glue")],
        "glue": [m for m in modules if m["kind"] == "glue"],
        "total": total,
        "logic_levels": max(m["logic_levels"] for m in modules),
        "cached": sum(1 for m in modules if m["cached"]),
    }


def ensure_cache(cache: Path) -> Path:
    """The cache directory, created; a clear error where it cannot be."""
    try:
        cache.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise A2QFlowError(f"cannot create the synthesis cache {cache} ({exc.strerror})",
                           "give a writable --cache-dir") from None
    return cache


def synth_cached(text: str | dict[str, str], module: str, family: str, yosys: Yosys,
                 nodsp: bool, cache: Path = DEFAULT_CACHE_DIR,
                 limit_s: float = DEFAULT_SYNTH_LAYER_LIMIT_S,
                 reads: list[SlangRead] | None = None,
                 verilog: tuple[str, ...] = ()) -> dict[str, Any]:
    """One module through Yosys, cached by the hash of its text, options and Yosys version.

    ``text`` is one Verilog file, or files by name: ``in.v`` and the memory files it
    ``$readmemh``-s, or (with ``reads``) FINN's SystemVerilog files, read by those
    ``read_slang`` commands (then ``verilog``, a top over them). Raises
    :class:`SynthesisTimeout` past ``limit_s``; the timeout is remembered beside the cache
    entry, and a later call with a limit no longer than that raises it without running."""
    if reads:
        flow = yosys.slang_script(reads, module, family, nodsp, verilog)
    elif family == ECP5:
        flow = ecp5.script(["in.v"], module, nodsp, True)
    else:
        flow = yosys.script("design.v", module, family, nodsp)
    key = hashlib.sha256(json.dumps([text, module, family, nodsp, yosys.version, flow])
                         .encode()).hexdigest()[:24]
    entry = cache / f"{key}.json"
    if entry.is_file():
        try:
            return {**json.loads(entry.read_text()), "cached": True}
        except json.JSONDecodeError:
            pass
    timed_out = cache / f"{key}.timeout.json"
    if timed_out.is_file():
        before = json.loads(timed_out.read_text()).get("limit_s", 0)
        if limit_s <= before:
            raise SynthesisTimeout(module, limit_s, f"it already ran past {before:g} s in an "
                                   f"earlier run (remembered in {timed_out}); ")
    ensure_cache(cache)
    with tempfile.TemporaryDirectory(prefix=f"{module}-", dir=cache) as tmp:
        work = Path(tmp)
        files = text if isinstance(text, dict) else {"in.v": text}
        for name, body in files.items():
            (work / name).write_text(body)
        try:
            if reads:
                result = yosys.synth_slang(list(reads), module, family, work, nodsp=nodsp,
                                           verilog=verilog, timeout_s=limit_s).to_dict()
            elif family == ECP5:  # Lattice: synth_ecp5, ECP5 cell names beside the common keys
                result = ecp5.synth_ecp5([work / "in.v"], module, work, nodsp=nodsp,
                                         yosys=yosys, levels=True, timeout_s=limit_s).to_dict()
                result["ecp5_resources"] = result["resources"]
                result["resources"] = ecp5.common_resources(result["resources"])
            else:
                result = yosys.synth(work / "in.v", module, family, work, nodsp=nodsp,
                                     timeout_s=limit_s).to_dict()
        except SynthesisTimeout:
            write_json(timed_out, {"module": module, "limit_s": limit_s, "tool": yosys.label})
            raise
    timed_out.unlink(missing_ok=True)
    write_json(entry, result)
    return {**result, "cached": False}


def synth_partitions(text: str, module: str, parts: list[str], family: str, yosys: Yosys,
                     nodsp: bool, cache: Path = DEFAULT_CACHE_DIR,
                     limit_s: float = DEFAULT_SYNTH_LAYER_LIMIT_S) -> dict[str, Any]:
    """A module whose top only wires ``parts`` (an unrolled layer: its shared nodes, then its
    channel groups), each synthesized out of context and cached on its own; the cells summed.

    Yosys's LUT mapping grows faster than linearly with a flat layer's size (a dense 64x64
    unrolled layer ran past an hour), while its partitions map in seconds each; every node is
    in exactly one partition, so nothing is counted twice. ``limit_s`` holds per partition."""
    results = [synth_cached(text, part, family, yosys, nodsp, cache, limit_s) for part in parts]
    cells: dict[str, int] = {}
    for r in results:
        for cell, n in r["cells"].items():
            cells[cell] = cells.get(cell, 0) + n
    summed = {key: {k: sum(r[key].get(k, 0) for r in results) for k in results[0][key]}
              for key in ("resources", "ecp5_resources") if key in results[0]}
    return {**results[0], **summed, "module": module, "cells": cells,
            # the shared nodes feed every group: the deepest path runs through both
            "logic_levels": results[0]["logic_levels"] + max(
                (r["logic_levels"] for r in results[1:]), default=0),
            "seconds": round(sum(r["seconds"] for r in results), 3),
            "cached": all(r["cached"] for r in results),
            "partitions": [{"module": p, "resources": r["resources"], "seconds": r["seconds"]}
                           for p, r in zip(parts, results, strict=True)]}


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
