"""FINN's own RTL for a thresholding layer (Thresholding_rtl), built from a compiled a2qflow
build's certified thresholds: Verilator against FINN's execution, Yosys through read_slang."""

from __future__ import annotations

import numpy as np
import pytest
from qonnx.core.datatype import DataType

from a2qflow import layout
from a2qflow.boards import load_board
from a2qflow.errors import A2QFlowError
from a2qflow.rtl import finn_rtl
from a2qflow.rtl import finn_thresholding as ft
from a2qflow.tools.yosys import Yosys

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def finn_layer(compiled_small, tmp_path_factory):
    """The first thresholded MVAU's thresholds of the compiled build, as FINN's RTL."""
    model = layout.load_onnx(compiled_small, layout.CODEGEN_MODEL)
    node = next(n for n in model.graph.node if n.op_type.startswith("MVAU") and len(n.input) > 2)
    layer = ft.from_mvau(model, node.name)
    board = load_board("pynq-z1")
    rtl = ft.generate(layer, tmp_path_factory.mktemp("finn_thr") / "src", board.part,
                      board.clock_ns)
    return model, node, layer, rtl


def test_the_layer_is_the_mvau_s_certified_thresholds(finn_layer):
    from qonnx.custom_op.registry import getCustomOp

    model, node, layer, rtl = finn_layer
    inst = getCustomOp(node)
    assert layer.input_type == inst.get_nodeattr("accDataType")  # the certified width
    assert layer.output_type == inst.get_nodeattr("outputDataType")
    assert layer.pe == inst.get_nodeattr("PE")
    assert np.array_equal(layer.thresholds, model.get_initializer(node.input[2]))
    idt = DataType[layer.input_type]
    assert idt.min() <= layer.thresholds.min() and layer.thresholds.max() <= idt.max()
    assert rtl.inp.bits == DataType[layer.input_type].bitwidth()
    assert any(name == "thresholding.sv" for name in rtl.sources) and rtl.data_files


def test_finn_rtl_thresholding_is_bit_exact_at_every_threshold_edge(finn_layer, tmp_path):
    _, _, layer, rtl = finn_layer
    x = ft.edge_vectors(layer)
    idt = DataType[layer.input_type]
    assert x.min() == idt.min() and x.max() == idt.max()
    expected = ft.finn_reference(layer, x)
    assert np.array_equal(expected, layer.reference(x))  # FINN's execution == numpy
    for shift in (-1, 1):  # the vectors tell every threshold from its neighbours
        moved = ft.ThresholdingLayer(**{**layer.__dict__,
                                        "thresholds": layer.thresholds + shift})
        differs = (moved.reference(x) != expected).any(axis=0)
        assert differs.all(), f"thresholds {shift:+d}: channels {np.flatnonzero(~differs)}"

    result = finn_rtl.simulate_layer(rtl, x, expected, tmp_path)

    assert result["compared"] == x.size > 0
    assert result["mismatches"] == 0, result["first_mismatch"]
    assert result["backend"] == "FINN RTL Thresholding"


def test_finn_rtl_thresholding_synthesizes_to_luts_labelled_finn_rtl(finn_layer, tmp_path):
    _, _, _, rtl = finn_layer
    yosys = Yosys()

    result = finn_rtl.synthesize(rtl, tmp_path, yosys, "xc7", timeout_s=600)

    assert result["resources"]["LUT"] > 0 and result["resources"]["FF"] > 0
    assert result["resources"]["DSP"] == 0
    assert result["module"] == rtl.finn_top
    assert result["backend"] == "FINN RTL Thresholding"
    assert result["label"] == f"{yosys.label} estimate, FINN RTL Thresholding"
    assert result["label"].startswith("Yosys 0.70 ")


def test_an_mvau_without_thresholds_is_refused(compiled_small):
    model = layout.load_onnx(compiled_small, layout.CODEGEN_MODEL)
    node = next(n for n in model.graph.node if n.op_type.startswith("MVAU") and len(n.input) == 2)
    with pytest.raises(A2QFlowError, match="not an MVAU with thresholds"):
        ft.from_mvau(model, node.name)
