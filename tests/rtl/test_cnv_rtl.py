"""A small CNV through the open hardware flow: FINN's RTL sliding windows, a2qflow's MVAUs and
max-pools, stitched into one network, bit-exact in Verilator against FINN's execution of the
same graph, then every block synthesized by Yosys."""

from __future__ import annotations

import json
import shutil

import pytest

from a2qflow import compile as compile_stage
from a2qflow import export, synth, train, verify
from a2qflow import rtl as rtl_stage
from a2qflow.config import ModelSpec
from a2qflow.errors import A2QFlowError
from a2qflow.rtl import finn_stream
from a2qflow.rtl.design import chain_blocks, read_design
from tests.conftest import SHARED_DATA, quick_config

CIFAR = SHARED_DATA / "cifar10"


def test_a_layer_the_open_backend_does_not_build_is_refused_by_name():
    model = finn_stream.dwc_model(channels=8, in_elems=2, out_elems=4, datatype="UINT4")
    with pytest.raises(A2QFlowError, match=r"does not implement StreamingDataWidthConverter_0"):
        chain_blocks(model, list(model.graph.node))


@pytest.mark.slow
@pytest.mark.data
@pytest.mark.skipif(not CIFAR.is_dir(), reason=f"CIFAR-10 subset not found at {CIFAR}")
def test_small_cnv_is_bit_exact_in_verilator_and_synthesizes_per_block(tmp_path):
    build = tmp_path / "cnv"
    spec = ModelSpec(arch="cnv", quant="a2q+", acc_bits=12, hidden=4)
    cfg = quick_config(dataset="cifar10", data_dir=str(CIFAR), max_train_samples=256,
                       float_epochs=1, qat_epochs=1)
    train.run(spec, cfg, build, progress=False)
    export.run(build, max_samples=8)
    compile_stage.run(build, board="pynq-z2", target_fps=2000)
    assert verify.run(build, max_samples=8)["ok"]
    design = read_design(build)
    kinds = [b.kind for b in design.blocks]
    assert kinds.count("window") == 6 and kinds.count("maxpool") == 2
    assert kinds.count("mvau") == 9

    report = rtl_stage.run(build, max_images=3, compare_acc_bits=None)
    assert report["ok"]
    net = report["network"]
    assert net["outputs"]["mismatches"] == 0 and net["outputs"]["compared"] == 3 * 10
    for layer in report["layers"]:  # conv and FC MVAUs alike
        control = layer["worst_case"]["negative_control"]
        assert layer["worst_case"]["accumulator"]["mismatches"] == 0
        assert control["detected"] and control["mismatches"] > 0, layer["node"]
    backends = {b["kind"]: b["backend"] for b in report["blocks"]}
    assert backends == {"window": "FINN RTL SWG", "maxpool": "a2qflow max-pool"}
    described = json.loads((build / "rtl" / "design.json").read_text())
    windows = [m for m in described["variants"]["certified"]["modules"]
               if m["kind"] == "window"]
    assert windows and all(m["reads"] and (build / "rtl" / m["files"][0]).is_file()
                           for m in windows)

    result = synth.run(build, cache_dir=tmp_path / "cache")
    certified = result["variants"]["certified"]
    by_backend = {m["backend"]: m for m in certified["blocks"] + certified["layers"]}
    assert {"FINN RTL SWG", "a2qflow max-pool", "a2qflow Verilog"} <= set(by_backend)
    assert all(m["resources"]["LUT"] > 0 for m in by_backend.values())
    assert certified["total"]["LUT"] == sum(
        m["resources"]["LUT"] for m in certified["blocks"] + certified["layers"]
        + certified["glue"])

    # the same network with FINN's RTL wherever finn-rtllib has the layer: FINN's MVU for the
    # layer FINN specialized to MVAU_rtl (its narrower control is FINN's MVU one bit narrower),
    # FINN's FIFOs and width converters
    finn = tmp_path / "cnv-finn"
    shutil.copytree(build, finn, ignore=shutil.ignore_patterns("rtl", "sim.json", "synth.json"))
    report = rtl_stage.run(finn, max_images=2, compare_acc_bits=None, backend="finn-rtl")
    assert report["ok"] and report["backend"] == "finn-rtl"
    assert report["network"]["outputs"]["mismatches"] == 0
    by_node = {lay["node"]: lay for lay in report["layers"]}
    finn_mvus = [n for n, lay in by_node.items() if lay["backend"] == "FINN RTL MVAU"]
    assert finn_mvus == [n for n in by_node if n.startswith("MVAU_rtl")] and finn_mvus
    assert all(by_node[n]["worst_case"]["negative_control"]["detected"] for n in finn_mvus)
    assert all("DSP48" in by_node[n]["simulation_note"] for n in finn_mvus)
    result = synth.run(finn, cache_dir=tmp_path / "cache")
    certified = result["variants"]["certified"]
    glue = {m["backend"] for m in certified["glue"]}
    assert glue == {"FINN RTL FIFO", "FINN RTL DWC"}
    mvu = [m for m in certified["layers"] if m["backend"] == "FINN RTL MVAU"]
    assert mvu and all(m["resources"]["DSP"] >= 1 for m in mvu)

    # auto: FINN's MVU where FINN chose MVAU_rtl (a DSP48E1 part here), a2qflow's Verilog for
    # every other MVAU and for the glue, stitched into one network that is still bit-exact
    auto = tmp_path / "cnv-auto"
    shutil.copytree(build, auto, ignore=shutil.ignore_patterns("rtl", "sim.json", "synth.json"))
    report = rtl_stage.run(auto, max_images=2, compare_acc_bits=None, backend="auto")
    assert report["ok"] and report["backend"] == "auto"
    assert report["network"]["outputs"]["mismatches"] == 0
    assert {lay["node"]: lay["backend"] for lay in report["layers"]} == {
        n: lay["backend"] for n, lay in by_node.items()}
    result = synth.run(auto, cache_dir=tmp_path / "cache")
    certified = result["variants"]["certified"]
    assert {m["backend"] for m in certified["glue"]} == {"a2qflow Verilog"}
    mvu = [m for m in certified["layers"] if m["backend"] == "FINN RTL MVAU"]
    assert len(mvu) == len(finn_mvus) and all(m["resources"]["DSP"] >= 1 for m in mvu)
