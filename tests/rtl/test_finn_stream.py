"""FINN's own RTL stream layers: the FIFO (StreamingFIFO_rtl, the patched fifo.sv), the
data-width converter (StreamingDataWidthConverter_rtl, the patched vpc.sv) and the sliding
window (ConvolutionInputGenerator_rtl), bit-exact through random stalls in Verilator against
their input or FINN's execution, synthesized by Yosys through read_slang."""

from __future__ import annotations

import numpy as np
import pytest

from a2qflow.boards import load_board
from a2qflow.errors import A2QFlowError
from a2qflow.rtl import finn_rtl, finn_stream
from a2qflow.rtl.sim import finn_tensors
from a2qflow.tools.yosys import Yosys

pytestmark = pytest.mark.slow
BOARD = load_board("pynq-z1")


def through(model, tmp_path, values, expected=None):
    expected = values if expected is None else expected
    rtl = finn_stream.generate(model, tmp_path / "src", BOARD.part, BOARD.clock_ns)
    sim = finn_rtl.simulate_layer(rtl, values, expected, tmp_path / "sim")
    yosys = Yosys()
    result = finn_rtl.synthesize(rtl, tmp_path / "synth", yosys, "xc7", timeout_s=600)
    assert sim["compared"] == expected.size and sim["mismatches"] == 0, sim["first_mismatch"]
    assert result["resources"]["LUT"] > 0
    assert result["label"] == f"{yosys.label} estimate, {rtl.backend}"
    return rtl, result


@pytest.mark.parametrize(("depth", "ram_style", "memory"), [
    (64, "distributed", "LUT_memory"),  # LUTRAM
    (600, "block", "BRAM18"),  # BRAM: 200 vectors x 4 beats pass through it
])
def test_fifo_is_bit_exact_under_stalls_and_maps_to_its_ram_style(depth, ram_style, memory,
                                                                   tmp_path):
    model = finn_stream.fifo_model(channels=8, pe=2, datatype="INT4", depth=depth,
                                   ram_style=ram_style)
    x = np.random.default_rng(depth).integers(-8, 8, size=(200, 8))
    rtl, result = through(model, tmp_path, x)
    assert rtl.backend == "FINN RTL FIFO" and result["resources"][memory] > 0


@pytest.mark.parametrize(("in_elems", "out_elems"), [(2, 8), (4, 6)])  # 4 -> 6: not a multiple
def test_dwc_is_bit_exact_under_stalls(in_elems, out_elems, tmp_path):
    model = finn_stream.dwc_model(channels=24, in_elems=in_elems, out_elems=out_elems,
                                  datatype="UINT4")
    x = np.random.default_rng(in_elems).integers(0, 16, size=(50, 24))
    rtl, _ = through(model, tmp_path, x)
    assert rtl.backend == "FINN RTL DWC"
    assert (rtl.inp.elems, rtl.out.elems) == (in_elems, out_elems)


@pytest.mark.parametrize(("channels", "image", "kernel", "stride", "simd"),
                         [(4, 6, 3, 1, 2), (2, 8, 2, 2, 1)])
def test_sliding_window_matches_finn_s_execution(channels, image, kernel, stride, simd,
                                                 tmp_path):
    model = finn_stream.swg_model(channels, image, kernel, stride, simd, "UINT4")
    x = np.random.default_rng(image).integers(0, 16, size=(3, image, image, channels))
    (expected,) = finn_tensors(model, x.astype(np.float32), ["out"])  # im2col, NHWC
    out = (image - kernel) // stride + 1
    assert expected.shape == (3, out * out * kernel * kernel * channels)
    rtl, _ = through(model, tmp_path, x.reshape(3, -1), expected)
    assert rtl.backend == "FINN RTL SWG"


def test_a_parallelism_that_does_not_divide_the_channels_is_refused():
    with pytest.raises(A2QFlowError, match="do not divide"):
        finn_stream.fifo_model(channels=10, pe=4, datatype="INT4", depth=8)
    with pytest.raises(A2QFlowError, match="do not divide"):
        finn_stream.dwc_model(channels=24, in_elems=5, out_elems=8, datatype="INT4")
    with pytest.raises(A2QFlowError, match="does not tile"):
        finn_stream.swg_model(channels=2, image=7, kernel=2, stride=2, simd=1, datatype="INT4")
