"""Yosys synthesis of generated layers: figures labelled and growing with the accumulator."""

from __future__ import annotations

import dataclasses
import json
import shutil
import time

import numpy as np
import pytest

from a2qflow import synth
from a2qflow.errors import A2QFlowError
from a2qflow.rtl.design import MVAULayer
from a2qflow.rtl.generate import layer_data, render_layer
from a2qflow.tools.yosys import SynthesisTimeout, Yosys


def tiny_layer(acc_bits: int) -> MVAULayer:
    rng = np.random.default_rng(2)
    w = rng.integers(-7, 8, size=(4, 16))
    thr = np.sort(rng.integers(-300, 300, size=(4, 15)), axis=1)
    layer = MVAULayer("MVAU_s", 16, 4, 4, 2, 4, False, 4, 11, 11, 11, 4, False, 0, w, thr)
    return layer.at_width(acc_bits)


def layer_files(layer: MVAULayer, module: str) -> dict[str, str]:
    """One MVAU module as synth reads it: ``in.v`` and the weight file it ``$readmemh``-s."""
    return {"in.v": render_layer(layer, module), **layer_data(layer, module)}


@pytest.mark.slow
def test_cells_grow_with_accumulator_width():
    yosys = Yosys()
    figures = []
    for bits in (11, 16, 32):
        layer = tiny_layer(bits)
        res = synth.synth_cached(layer_files(layer, "mvau_s"), "mvau_s", "xc7", yosys, True)
        assert res["tool"].startswith("Yosys 0.70")
        figures.append(res["resources"])
    for key in ("LUT", "FF"):
        values = [f[key] for f in figures]
        assert values[0] < values[1] < values[2], (key, values)


@pytest.mark.slow
def test_synth_reports_ratios_against_32_bits(simulated_small, tmp_path):
    lines: list[str] = []
    result = synth.run(simulated_small, cache_dir=tmp_path / "cache", echo=lines.append)
    modules = sum(len(v["layers"]) + len(v["glue"]) for v in result["variants"].values())
    assert len(lines) == 1 + modules  # a header, then one line per module as it finishes
    assert lines[-1].startswith(f"  [{modules}/{modules}] ")
    assert result["tool"].startswith("Yosys 0.70")
    assert result["family"] == "xc7"
    assert result["lut_ratio"] > 1.0 and result["ff_ratio"] > 1.0
    cert = result["variants"]["certified"]
    assert max(cert["acc_bits"]) < 32
    assert cert["total"]["LUT"] == sum(m["resources"]["LUT"]
                                       for m in cert["layers"] + cert["glue"])
    assert 0 < cert["utilization"]["LUT"] < 1
    assert cert["simulated"] and not result["variants"]["acc32"]["simulated"]
    again = synth.run(simulated_small, cache_dir=tmp_path / "cache")  # all from the cache
    assert again["variants"]["certified"]["cached"] == len(cert["layers"] + cert["glue"])
    assert "| certified |" in synth.resource_table(result)


@pytest.mark.slow
def test_products_follow_finns_res_type():
    """resType from the folding file decides LUT or DSP48 products, as it does in FINN."""
    per_type = {}
    for res_type in ("lut", "dsp"):
        layer = dataclasses.replace(tiny_layer(11), res_type=res_type)
        mvau = synth.synth_cached(layer_files(layer, "mvau_s"), "mvau_s", "xc7", Yosys(),
                                  nodsp=not layer.products_in_dsp)
        per_type[res_type] = mvau["resources"]
    assert per_type["lut"]["DSP"] == 0
    assert per_type["dsp"]["DSP"] == 8  # SIMD 4 x PE 2 products
    assert per_type["dsp"]["LUT"] < per_type["lut"]["LUT"]
    assert tiny_layer(11).products_in_dsp is False  # "auto": 4-bit operands stay in LUTs


@pytest.mark.slow
def test_weights_follow_finns_ram_style():
    """ram_style from the folding file decides BRAM or LUT RAM for the weights, as in FINN."""
    per_style = {}
    for style in ("block", "distributed"):
        layer = dataclasses.replace(tiny_layer(11), ram_style=style)
        per_style[style] = synth.synth_cached(layer_files(layer, "mvau_s"), "mvau_s", "xc7",
                                              Yosys(), nodsp=True)["resources"]
    assert per_style["block"]["BRAM18"] >= 1
    assert per_style["distributed"]["BRAM18"] == 0  # a ROM in LUTs
    assert per_style["distributed"]["LUT"] > per_style["block"]["LUT"]


@pytest.mark.slow
def test_thresholds_follow_finns_ram_style_thresholds():
    """ram_style_thresholds decides BRAM or logic for the thresholds of a layer with many
    neuron folds (here 64 channels at PE 1), as FINN's ram_style_thresholds does."""
    rng = np.random.default_rng(3)
    w = rng.integers(-7, 8, size=(64, 16))
    thr = np.sort(rng.integers(-300, 300, size=(64, 15)), axis=1)
    deep = MVAULayer("MVAU_t", 16, 64, 16, 1, 4, False, 4, 11, 11, 11, 4, False, 0, w, thr)
    per_style = {}
    for style in ("block", "distributed"):
        layer = dataclasses.replace(deep, ram_style="distributed", ram_style_thresholds=style)
        files = layer_files(layer, "mvau_t")
        assert ("mvau_t_thresholds.dat" in files) == (style == "block")  # BRAM: a file
        per_style[style] = synth.synth_cached(files, "mvau_t", "xc7", Yosys(),
                                              nodsp=True)["resources"]
    assert per_style["block"]["BRAM18"] >= 1
    assert per_style["distributed"]["BRAM18"] == 0
    assert per_style["distributed"]["LUT"] > per_style["block"]["LUT"] + 100


@pytest.mark.slow
def test_a_module_past_its_limit_fails_and_a_rerun_does_not_spend_the_limit_again(tmp_path):
    text, cache = layer_files(tiny_layer(11), "mvau_s"), tmp_path / "cache"
    with pytest.raises(SynthesisTimeout) as first:
        synth.synth_cached(text, "mvau_s", "xc7", Yosys(), True, cache, limit_s=0.05)
    assert "mvau_s ran past its limit of 0.05 s" in first.value.problem
    assert "--synth-layer-limit-s" in first.value.fix
    (remembered,) = cache.glob("*.timeout.json")
    assert json.loads(remembered.read_text())["limit_s"] == 0.05
    t0 = time.perf_counter()
    with pytest.raises(SynthesisTimeout) as again:  # same limit: refused without running
        synth.synth_cached(text, "mvau_s", "xc7", Yosys(), True, cache, limit_s=0.05)
    assert time.perf_counter() - t0 < 0.05 and "already ran past 0.05 s" in again.value.fix
    res = synth.synth_cached(text, "mvau_s", "xc7", Yosys(), True, cache, limit_s=600)
    assert res["resources"]["LUT"] > 0 and not remembered.exists()


def test_finn_systemverilog_for_an_ecp5_board_is_refused_before_any_yosys_run(
        simulated_small, tmp_path):
    from a2qflow import layout
    from a2qflow.artifacts import write_json

    build = tmp_path / "b"
    shutil.copytree(simulated_small, build)
    described = json.loads((build / "rtl" / "design.json").read_text())
    described["variants"]["certified"]["modules"].append(
        {"module": "a2q_swg", "kind": "window", "node": "ConvolutionInputGenerator_rtl_0",
         "files": ["swg_pkg.sv"], "reads": [{"sources": ["swg_pkg.sv"]}]})
    write_json(build / "rtl" / "design.json", described)
    sim = json.loads((build / "sim.json").read_text())
    write_json(build / "sim.json", {**sim, "rtl_sources": layout.content_hash(build / "rtl")})
    with pytest.raises(A2QFlowError, match="a2q_swg") as err:
        synth.run(build, board="ulx3s-85f", cache_dir=tmp_path / "cache")
    assert "Xilinx board" in err.value.fix
    assert not list((tmp_path / "cache").glob("*.json"))  # nothing was synthesized
