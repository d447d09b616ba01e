"""Yosys synthesis of generated layers: figures labelled and growing with the accumulator."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from a2qflow import synth
from a2qflow.rtl.design import MVAULayer
from a2qflow.rtl.generate import render_layer
from a2qflow.tools.yosys import Yosys


def tiny_layer(acc_bits: int) -> MVAULayer:
    rng = np.random.default_rng(2)
    w = rng.integers(-7, 8, size=(4, 16))
    thr = np.sort(rng.integers(-300, 300, size=(4, 15)), axis=1)
    layer = MVAULayer("MVAU_s", 16, 4, 4, 2, 4, False, 4, 11, 11, 11, 4, False, 0, w, thr)
    return layer.at_width(acc_bits)


@pytest.mark.slow
def test_cells_grow_with_accumulator_width():
    yosys = Yosys()
    figures = []
    for bits in (11, 16, 32):
        layer = tiny_layer(bits)
        res = synth.synth_cached(render_layer(layer, "mvau_s"), "mvau_s", "xc7", yosys, True)
        assert res["tool"].startswith("Yosys 0.70")
        figures.append(res["resources"])
    for key in ("LUT", "FF"):
        values = [f[key] for f in figures]
        assert values[0] < values[1] < values[2], (key, values)


@pytest.mark.slow
def test_synth_reports_ratios_against_32_bits(simulated_small, tmp_path):
    result = synth.run(simulated_small, cache_dir=tmp_path / "cache")
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
        mvau = synth.synth_cached(render_layer(layer, "mvau_s"), "mvau_s", "xc7", Yosys(),
                                  nodsp=not layer.products_in_dsp)
        per_type[res_type] = mvau["resources"]
    assert per_type["lut"]["DSP"] == 0
    assert per_type["dsp"]["DSP"] == 8  # SIMD 4 x PE 2 products
    assert per_type["dsp"]["LUT"] < per_type["lut"]["LUT"]
    assert tiny_layer(11).products_in_dsp is False  # "auto": 4-bit operands stay in LUTs
