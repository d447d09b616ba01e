"""Generated Verilog against checked-in golden files.

Any change to the templates or the generator shows up as a reviewable diff: after an intended
change, run `python tests/rtl/test_rtl_golden.py` and commit the files it rewrites.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from a2qflow.rtl.design import MVAULayer
from a2qflow.rtl.generate import layer_data, render_layer

GOLDEN = Path(__file__).parent / "golden"


def golden_layers() -> dict[str, MVAULayer]:
    """Two small layers with fixed integers: thresholded (2 neuron folds) and accumulator-out."""
    w = (np.arange(6 * 8).reshape(6, 8) % 15) - 7  # 6 channels, K=8, 4-bit weights
    thr = np.array([[-20, -4, 0, 9, 30, 41, 77]] * 6) + np.arange(6)[:, None]
    return {
        "mvau_thresholds": MVAULayer("MVAU_g0", 8, 6, 4, 3, 4, False, 4, 10, 10, 10, 3,
                                     False, 0, w, thr),
        "mvau_accumulator": MVAULayer("MVAU_g1", 8, 6, 2, 6, 4, True, 4, 11, 11, 11, 11,
                                      True, 0, w, None),
    }


def rendered_files(name: str, layer: MVAULayer) -> dict[str, str]:
    """The module's Verilog and the weight file it reads."""
    return {f"{name}.v": render_layer(layer, name), **layer_data(layer, name)}


def test_generated_verilog_matches_the_golden_files():
    for name, layer in golden_layers().items():
        for file, text in rendered_files(name, layer).items():
            assert text == (GOLDEN / file).read_text(), f"{file} differs from its golden file"


if __name__ == "__main__":  # regenerate after an intended change, then review the diff
    GOLDEN.mkdir(exist_ok=True)
    for name, layer in golden_layers().items():
        for file, text in rendered_files(name, layer).items():
            (GOLDEN / file).write_text(text)
    sys.exit(0)
