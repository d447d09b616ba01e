"""The open Verilog backend: one layer against numpy, the whole network against FINN."""

from __future__ import annotations

import dataclasses
import json
import shutil

import numpy as np
import pytest

from a2qflow import bounds, rtl
from a2qflow.errors import A2QFlowError
from a2qflow.rtl import sim as rtl_sim
from a2qflow.rtl.design import Design, MVAULayer
from a2qflow.rtl.generate import adder_tree, layer_data, pack_words, render_dwc, render_layer
from a2qflow.rtl.sim import Group, Port, simulate
from a2qflow.rtl.stage import MIN_CYCLE_LIMIT, cycle_limit, simulation_cycles
from a2qflow.tools.verilator import Verilator


def small_layer(signed: bool, act_val: int) -> tuple[MVAULayer, np.ndarray]:
    rng = np.random.default_rng(1)
    mw, mh, simd, pe = 12, 6, 4, 2
    w = rng.integers(-7, 8, size=(mh, mw))
    lo_in, hi_in = bounds.input_range(4, signed)
    rng_acc = bounds.exact_accumulator_range(w, lo_in, hi_in)
    acc = rng_acc.bits
    thr = np.sort(rng.integers(rng_acc.lo.min(), rng_acc.hi.max(), size=(mh, 15)), axis=1)
    reg = max(acc, bounds.signed_bits_for_range(thr.min(), thr.max()))
    layer = MVAULayer("MVAU_t", mw, mh, simd, pe, 4, signed, 4, acc, acc, reg, 4,
                      act_val < 0, act_val, w, thr)
    return layer, rng.integers(lo_in, hi_in + 1, size=(40, mw))


def test_adder_tree_and_packing():
    adds, root = adder_tree(5)
    assert root == "3_0" and len(adds) == 6  # 3 + 2 + 1, odd leftovers pass through
    assert pack_words(np.array([[1, -1]]), 4) == ["f1"]
    with pytest.raises(ValueError):
        render_dwc("d", 3, 4, 4)


@pytest.mark.parametrize("signed,act_val,thresholds_in", [(False, 0, "auto"), (True, -8, "auto"),
                                                          (False, 0, "block")])
def test_one_layer_matches_numpy(tmp_path, signed, act_val, thresholds_in):
    """Thresholds as constants (auto) or in a memory read with the result (block, BRAM)."""
    layer, x = small_layer(signed, act_val)
    layer = dataclasses.replace(layer, ram_style_thresholds=thresholds_in)
    accs = x @ layer.weights.T
    ref = (accs[:, :, None] >= layer.thresholds[None]).sum(-1) + act_val
    probe = layer.accumulator_probe(layer.acc_bits)
    src = {"l.v": render_layer(layer, "l_t"), "p.v": render_layer(probe, "l_p")}
    inp = Port(layer.simd, 4, signed, layer.mw)
    groups = [Group("thr", "l_t", inp, Port(layer.pe, 4, act_val < 0, layer.mh), x, ref,
                    stress=True),
              Group("acc", "l_p", inp, Port(layer.pe, layer.acc_bits, True, layer.mh), x, accs)]
    weights = {**layer_data(layer, "l_t"), **layer_data(probe, "l_p")}  # $readmemh-ed
    memory = ["l_t_thresholds.dat"] if thresholds_in == "block" else []
    assert sorted(weights) == sorted(["l_p_weights.dat", "l_t_weights.dat", *memory])
    results, _ = simulate(groups, src, tmp_path, Verilator(), data=weights)
    for g, r in zip(groups, results, strict=True):
        assert r.compare(g.expected)["mismatches"] == 0, g.label
    # full rate: one output beat every SF cycles once the pipeline is full
    assert np.all(np.diff(results[1].cycles) == layer.sf)


@pytest.mark.slow
def test_network_bit_exact_with_negative_control(simulated_small):
    saved = json.loads((simulated_small / "sim.json").read_text())
    assert saved["ok"]
    assert saved["network"]["outputs"]["mismatches"] == 0
    assert saved["network"]["outputs"]["compared"] == 16 * 10
    for layer in saved["layers"]:
        wc = layer["worst_case"]
        assert wc["layer_output"]["mismatches"] == 0
        assert wc["accumulator"]["mismatches"] == 0
        assert wc["negative_control"]["detected"], layer["node"]
        assert wc["negative_control"]["acc_bits"] == layer["acc_bits"] - 1
        assert layer["acc_bits"] < 32
    assert saved["network"]["cycles_per_image"] == saved["network"]["finn_cycle_estimate"]
    assert "verilator" in saved["simulator"].lower() or "rev" in saved["simulator"].lower()
    files = {p.name for p in (simulated_small / "rtl").glob("*.v")}
    assert "a2q_top.v" in files and len(files) >= 4
    design = json.loads((simulated_small / "rtl" / "design.json").read_text())
    assert set(design["variants"]) == {"certified", "acc32"}
    assert all(b == 32 for b in design["variants"]["acc32"]["acc_bits"])
    for variant in design["variants"].values():
        for module in variant["modules"]:
            assert (simulated_small / variant["dir"] / module["file"]).is_file()


def test_rtl_needs_a_compiled_build(trained_build, copy_build):
    build = copy_build(trained_build(quant="a2q+", acc_bits=12, hidden=16))
    with pytest.raises(A2QFlowError, match="compile"):
        rtl.run(build)
    assert not (build / "sim.json").exists()


@pytest.mark.slow
def test_rtl_runs_in_a_path_with_spaces(compiled_small, tmp_path):
    build = tmp_path / "my builds" / "tfc small"
    shutil.copytree(compiled_small, build)
    report = rtl.run(build, max_images=2)
    assert report["ok"] and (build / "rtl" / "design.json").is_file()


@pytest.mark.slow
def test_a_failed_simulation_leaves_the_previous_rtl_untouched(simulated_small, copy_build,
                                                               monkeypatch):
    build = copy_build(simulated_small)
    before = {p: p.read_bytes() for p in (build / "rtl").rglob("*") if p.is_file()}
    sim_json = (build / "sim.json").read_bytes()

    def broken_build(*args, **kwargs):
        raise A2QFlowError("verilator build failed (exit 1)", "see the log")

    monkeypatch.setattr(rtl_sim, "simulate", broken_build)
    with pytest.raises(A2QFlowError, match=r"verilator build failed(?s:.*)rtl\.failed"):
        rtl.run(build, max_images=2)
    assert {p: p.read_bytes() for p in (build / "rtl").rglob("*") if p.is_file()} == before
    assert (build / "sim.json").read_bytes() == sim_json
    assert (build / "rtl.failed").is_dir()


@pytest.mark.parametrize(("finn_op", "preferred", "backend", "dsp48e1", "chosen"), [
    ("MVAU_rtl", "", "own", True, "own"),
    ("MVAU_rtl", "", "finn-rtl", True, "finn-rtl"),
    ("MVAU_rtl", "hls", "finn-rtl", True, "own"),  # the layer's preferred_impl_style wins
    ("MVAU_rtl", "rtl", "own", True, "finn-rtl"),
    ("MVAU_hls", "", "finn-rtl", True, "own"),  # FINN's RTL MVU cannot fuse thresholds
    ("MVAU_rtl", "", "auto", True, "finn-rtl"),  # FINN chose its RTL MVU and the part fits
    ("MVAU_rtl", "", "auto", False, "own"),  # no DSP48E1/E2 (Versal): a2qflow's Verilog
    ("MVAU_hls", "", "auto", True, "own"),
    ("MVAU_rtl", "hls", "auto", True, "own"),
])
def test_each_mvau_gets_the_backend_its_layer_and_the_build_ask_for(finn_op, preferred, backend,
                                                                  dsp48e1, chosen, tmp_path):
    layer, _ = small_layer(signed=True, act_val=0)
    layer = dataclasses.replace(layer, finn_op=finn_op, preferred=preferred)
    design = Design(layers=[layer], in_tensor="x", out_tensor="y", host_before=[],
                    host_after=[], folded_model=tmp_path, hw_model=tmp_path)
    chosen_design = design.with_backend(backend, finn_mvu_part=dsp48e1)
    assert chosen_design.layers[0].backend == chosen
    assert chosen_design.blocks == chosen_design.layers
    # auto keeps a2qflow's FIFOs and converters (FINN's FIFO measured larger under Yosys)
    assert chosen_design.glue_backend == ("finn-rtl" if backend == "finn-rtl" else "own")


@pytest.mark.parametrize(("preferred", "backend"), [("", "finn-rtl"), ("rtl", "own")])
def test_asking_for_finn_s_mvu_on_a_part_without_dsp48_is_refused_before_any_work(
        preferred, backend, tmp_path):
    layer, _ = small_layer(signed=True, act_val=0)
    layer = dataclasses.replace(layer, finn_op="MVAU_rtl", preferred=preferred)
    design = Design(layers=[layer], in_tensor="x", out_tensor="y", host_before=[],
                    host_after=[], folded_model=tmp_path, hw_model=tmp_path)
    with pytest.raises(A2QFlowError, match="DSP48E1 and DSP48E2 parts") as err:
        design.with_backend(backend, finn_mvu_part=False)
    assert "backend auto or own" in err.value.fix


def test_asking_for_finn_s_mvu_where_it_cannot_build_the_layer_is_refused(tmp_path):
    layer, _ = small_layer(signed=True, act_val=0)
    design = Design(layers=[dataclasses.replace(layer, finn_op="MVAU_hls", preferred="rtl")],
                    in_tensor="x", out_tensor="y", host_before=[], host_after=[],
                    folded_model=tmp_path, hw_model=tmp_path)
    with pytest.raises(A2QFlowError, match="MVAU_t has preferred_impl_style rtl") as err:
        design.with_backend("own")
    assert "folding file" in err.value.fix
    with pytest.raises(A2QFlowError, match="backend='dsp' is not valid"):
        design.with_backend("dsp")


def test_the_harness_cycle_limit_grows_with_a_serial_layer_s_worst_cases(tmp_path):
    layer, _ = small_layer(signed=True, act_val=0)  # SF x NF cycles per worst-case vector
    design = Design(layers=[layer], in_tensor="x", out_tensor="y", host_before=[],
                    host_after=[], folded_model=tmp_path, hw_model=tmp_path)
    needed = 2 * layer.mh * layer.sf * layer.nf
    assert simulation_cycles(design, 4, {layer.name: 10}) == {"network": 40, layer.name: needed}
    assert cycle_limit(design, 4, {layer.name: 10}) == MIN_CYCLE_LIMIT  # small: the floor
    big = {layer.name: 10**6}  # a slow layer: the limit follows its lower bound
    assert cycle_limit(design, 4, big) == 4 * (4 * 10**6 + 4 * 10**6)


def test_an_mvau_ram_style_the_open_flow_does_not_build_is_refused_by_name():
    from onnx import helper
    from qonnx.custom_op.registry import getCustomOp

    from a2qflow.rtl.design import ram_style_of

    node = helper.make_node("MVAU_hls", ["x", "w"], ["y"], name="MVAU_hls_9", ram_style="ultra",
                            domain="finn.custom_op.fpgadataflow.hls", MW=4, MH=4, SIMD=1, PE=1)
    inst = getCustomOp(node)
    with pytest.raises(A2QFlowError, match="MVAU_hls_9 has ram_style 'ultra'") as err:
        ram_style_of(node.name, inst)
    assert "auto, block, distributed" in err.value.fix
    next(a for a in node.attribute if a.name == "ram_style").s = b"block"
    assert ram_style_of(node.name, getCustomOp(node)) == "block"
