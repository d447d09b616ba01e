"""Yosys synthesis of generated layers: figures labelled and growing with the accumulator."""

from __future__ import annotations

import numpy as np
import pytest

from a2qflow import synth
from a2qflow.rtl.generate import render_layer
from a2qflow.rtl.layers import MVAULayer
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
def test_synth_reports_ratios_against_32_bits(compiled_small):
    result = synth.run(compiled_small, compare_acc_bits=32)
    assert result["tool"].startswith("Yosys 0.70")
    assert result["family"] == "xc7"
    assert result["lut_ratio"] > 1.0 and result["ff_ratio"] > 1.0
    cert = result["variants"]["certified"]
    assert max(cert["acc_bits"]) < 32
    assert cert["total"]["LUT"] == sum(m["resources"]["LUT"]
                                       for m in cert["layers"] + cert["glue"])
    assert 0 < cert["utilization"]["LUT"] < 1
    again = synth.run(compiled_small, compare_acc_bits=32)  # all from the cache
    assert again["variants"]["certified"]["cached"] == len(cert["layers"] + cert["glue"])
    assert "| certified |" in synth.resource_table(result)
