"""a2qflow's own max-pool (hls/verilog/maxpool.v.j2) for FINN's max-pool layer (a depthwise
sliding window + Pool MaxPool, which FINN ships no RTL for): bit-exact in Verilator against
FINN's Python execution of the same nodes under random input gaps and output back-pressure,
several images back to back, signed and unsigned; synthesized by Yosys read_verilog."""

from __future__ import annotations

import numpy as np
import pytest
from qonnx.core.datatype import DataType
from qonnx.custom_op.registry import getCustomOp

from a2qflow.errors import A2QFlowError
from a2qflow.rtl import finn_rtl, maxpool
from a2qflow.rtl.sim import finn_tensors
from a2qflow.tools.yosys import Yosys


def images(datatype: str, n: int, image: int, kernel: int, channels: int,
           seed: int) -> np.ndarray:
    """Random images with the datatype's extremes: image 0 starts with a window of minima
    (whose max is the minimum), every image holds maxima and minima at random places."""
    dt = DataType[datatype]
    lo, hi = int(dt.min()), int(dt.max())
    rng = np.random.default_rng(seed)
    x = rng.integers(lo, hi + 1, size=(n, image, image, channels))
    if dt == DataType["BIPOLAR"]:
        x = np.where(x > 0, 1, -1)
    x[0, :kernel, :kernel, :] = lo
    x[rng.random(x.shape) < 0.1] = hi
    x[rng.random(x.shape) < 0.1] = lo
    return x


def on_the_stream(values: np.ndarray, datatype: str) -> np.ndarray:
    """Values as they travel: as they are, BIPOLAR as FINN encodes it (0 for -1, 1 for +1)."""
    values = np.asarray(values)
    return (values + 1) // 2 if datatype == "BIPOLAR" else values


def simulated(model, x, tmp_path):
    params = maxpool.MaxPoolParams.from_finn(model, maxpool.pool_node(model))
    rtl = maxpool.generate(params, tmp_path / "src")
    (expected,) = finn_tensors(model, x.astype(np.float32), ["out"])
    sim = finn_rtl.simulate_layer(rtl, on_the_stream(x.reshape(len(x), -1), params.datatype),
                                  on_the_stream(expected, params.datatype), tmp_path / "sim")
    return params, rtl, expected, sim


@pytest.mark.slow
@pytest.mark.parametrize(("channels", "image", "kernel", "pe", "datatype"), [
    (4, 8, 2, 1, "INT4"),  # PE=1: four beats a pixel
    (6, 6, 3, 6, "UINT3"),  # PE=channels, 3x3 windows
    (8, 4, 2, 8, "BIPOLAR"),  # -1/+1, as FINN streams it: 0/1
])
def test_maxpool_is_bit_exact_against_finn_under_stalls(channels, image, kernel, pe, datatype,
                                                        tmp_path):
    model = maxpool.maxpool_model(channels, image, kernel, pe, datatype)
    x = images(datatype, 3, image, kernel, channels, seed=channels * image)
    params, rtl, expected, sim = simulated(model, x, tmp_path)
    out = image // kernel
    ref = x.reshape(3, out, kernel, out, kernel, channels).max(axis=(2, 4)).reshape(3, -1)
    assert (expected == ref).all()  # FINN's execution is the pool the block should compute
    assert (rtl.inp.elems, rtl.out.elems) == (pe, pe)
    assert rtl.inp.signed == (datatype == "INT4")  # BIPOLAR's encoding is unsigned
    assert sim["compared"] == expected.size and sim["mismatches"] == 0, sim["first_mismatch"]
    assert {int(DataType[datatype].min()), int(DataType[datatype].max())} <= set(
        np.unique(expected).tolist())


@pytest.mark.slow
def test_maxpool_with_unsigned_compare_mismatches_signed_data(tmp_path):
    """The control: the block rendered unsigned for signed data gets negative maxima wrong."""
    model = maxpool.maxpool_model(4, 4, 2, 2, "INT4")
    pool = getCustomOp(model.get_node_from_name(maxpool.pool_node(model)))
    x = images("INT4", 2, 4, 2, 4, seed=1)
    (expected,) = finn_tensors(model, x.astype(np.float32), ["out"])
    pool.set_nodeattr("InputDataType", "UINT4")
    params = maxpool.MaxPoolParams.from_finn(model, maxpool.pool_node(model))
    rtl = maxpool.generate(params, tmp_path / "src")
    sim = finn_rtl.simulate_layer(rtl, x.reshape(2, -1) & 0xF, expected & 0xF, tmp_path / "sim")
    assert sim["mismatches"] > 0


def test_unsupported_attributes_are_refused():
    model = maxpool.maxpool_model(4, 8, 2, 2, "INT4")
    name = maxpool.pool_node(model)
    pool = getCustomOp(model.get_node_from_name(name))
    swg = getCustomOp(model.find_producer(model.get_node_from_name(name).input[0]))
    pool.set_nodeattr("PE", 3)
    with pytest.raises(A2QFlowError, match="PE=3 does not divide Channels=4"):
        maxpool.MaxPoolParams.from_finn(model, name)
    pool.set_nodeattr("PE", 2)
    swg.set_nodeattr("Stride", [1, 1])
    with pytest.raises(A2QFlowError, match=r"Stride=\[1, 1\].*\n.*stride = kernel"):
        maxpool.MaxPoolParams.from_finn(model, name)
    swg.set_nodeattr("Stride", [2, 2])
    pool.set_nodeattr("Function", "AvgPool")
    with pytest.raises(A2QFlowError, match="Function=AvgPool"):
        maxpool.MaxPoolParams.from_finn(model, name)
    with pytest.raises(A2QFlowError, match="KernelSize 3 does not divide the image's 8 rows"):
        maxpool.MaxPoolParams("p", (8, 9), (3, 3), 4, 1, "INT4")
    with pytest.raises(A2QFlowError, match="FLOAT32 is not an integer"):
        maxpool.MaxPoolParams("p", (8, 8), (2, 2), 4, 1, "FLOAT32")
    pool.set_nodeattr("Function", "MaxPool")
    assert maxpool.MaxPoolParams.from_finn(model, name).out_image == (4, 4)


def test_maxpool_synthesizes_to_luts_and_flip_flops(tmp_path):
    model = maxpool.maxpool_model(16, 16, 2, 4, "INT4")  # a CNV-sized row buffer: 8 x 4 words
    rtl = maxpool.generate(maxpool.MaxPoolParams.from_finn(model, maxpool.pool_node(model)),
                           tmp_path / "src")
    yosys = Yosys()
    result = finn_rtl.synthesize(rtl, tmp_path / "synth", yosys, "xc7", timeout_s=600)
    assert result["label"] == f"{yosys.label} estimate, a2qflow max-pool"
    assert result["label"].startswith("Yosys 0.70")
    assert result["resources"]["LUT"] > 0 and result["resources"]["FF"] > 0
    assert result["resources"]["LUT_memory"] > 0  # the line buffer of partial maxima
