"""FINN's own RTL MVU (MVAU_rtl, DSP-based) fed by FINN's weight memstream, from a compiled
a2qflow build: Verilator bit-exact at the certified width, the one-bit-narrower control
mismatching, Yosys through read_slang with the part's DSP slice (DSP48E1 on 7-series, DSP48E2
on UltraScale+) kept as cells."""

from __future__ import annotations

import numpy as np
import pytest
from qonnx.custom_op.registry import getCustomOp

from a2qflow import layout
from a2qflow.boards import load_board
from a2qflow.errors import A2QFlowError
from a2qflow.rtl import finn_mvau as fm
from a2qflow.rtl import finn_rtl
from a2qflow.tools.yosys import Yosys

pytestmark = pytest.mark.slow
BOARD = load_board("pynq-z1")


@pytest.fixture(scope="module")
def mvau_rtl(compiled_small):
    """The compiled build's MVAU_rtl node (FINN specialized the last layer to its RTL MVU)."""
    model = layout.load_onnx(compiled_small, layout.CODEGEN_MODEL)
    node = next(n for n in model.graph.node if n.op_type == "MVAU_rtl")
    inst = getCustomOp(node)
    weights = fm.weights_of(model, node.name)
    x = fm.test_vectors(weights, inst.get_nodeattr("inputDataType"))
    return model, node.name, inst, x, x @ weights


def test_certified_width_is_bit_exact_and_one_bit_narrower_is_not(mvau_rtl, tmp_path):
    model, name, inst, x, expected = mvau_rtl
    certified = inst.get_nodeattr("accDataType")
    assert certified.startswith("INT")
    bits = int(certified[3:])

    rtl = fm.generate(model, name, tmp_path / "src", BOARD.part, BOARD.clock_ns)
    assert rtl.out.bits == bits and rtl.out.signed
    exact = finn_rtl.simulate_layer(rtl, x, expected, tmp_path / "sim")
    narrow = fm.generate(model, name, tmp_path / "src_narrow", BOARD.part, BOARD.clock_ns,
                         acc_bits=bits - 1)
    control = finn_rtl.simulate_layer(narrow, x, expected, tmp_path / "sim_narrow")

    assert exact["compared"] == expected.size > 0
    assert exact["mismatches"] == 0, exact["first_mismatch"]
    assert control["mismatches"] > 0, "one bit narrower than certified must overflow"
    assert "behavioural" in exact["simulation_note"] and "DSP48E1" in exact["simulation_note"]


def test_folded_mvu_is_bit_exact_and_synthesizes_to_dsp48s_labelled_finn_rtl(mvau_rtl,
                                                                            tmp_path):
    model, name, inst, x, expected = mvau_rtl
    mw, mh = inst.get_nodeattr("MW"), inst.get_nodeattr("MH")
    simd = max(d for d in (8, 4, 2) if mw % d == 0)  # several addends: add_multi's tree
    pe = next(d for d in (2, 5, 1) if mh % d == 0)
    rtl = fm.generate(model, name, tmp_path / "src", BOARD.part, BOARD.clock_ns,
                      folding=(simd, pe))
    assert rtl.inp.elems == simd and rtl.out.elems == pe

    sim = finn_rtl.simulate_layer(rtl, x, expected, tmp_path / "sim")
    yosys = Yosys()
    result = finn_rtl.synthesize(rtl, tmp_path / "synth", yosys, "xc7", timeout_s=600)

    assert sim["mismatches"] == 0, sim["first_mismatch"]
    assert result["resources"]["DSP"] > 0 and result["cells"].get("DSP48E1", 0) > 0
    assert result["resources"]["LUT"] > 0 and result["resources"]["FF"] > 0
    assert result["label"] == f"{yosys.label} estimate, FINN RTL MVAU"
    assert result["module"] == rtl.top  # the MVU with its weight memstream


def test_on_ultrascale_plus_the_mvu_is_bit_exact_and_synthesizes_to_dsp48e2(mvau_rtl,
                                                                           tmp_path):
    model, name, _, x, expected = mvau_rtl
    zcu104 = load_board("zcu104")
    rtl = fm.generate(model, name, tmp_path / "src", zcu104.part, zcu104.clock_ns)
    sim = finn_rtl.simulate_layer(rtl, x, expected, tmp_path / "sim")
    result = finn_rtl.synthesize(rtl, tmp_path / "synth", Yosys(), "xcup", timeout_s=600)

    assert sim["mismatches"] == 0, sim["first_mismatch"]
    assert "DSP48E2" in sim["simulation_note"]
    assert result["cells"].get("DSP48E2", 0) > 0 and "DSP48E1" not in result["cells"]


def test_what_finn_s_rtl_mvu_cannot_take_is_refused(mvau_rtl, tmp_path):
    model, name, inst, _, _ = mvau_rtl
    hls = next(n for n in model.graph.node if n.op_type == "MVAU_hls")
    with pytest.raises(A2QFlowError, match="is not an MVAU_rtl node"):
        fm.one_node_model(model, hls.name)
    with pytest.raises(A2QFlowError, match="must divide"):
        fm.one_node_model(model, name, folding=(inst.get_nodeattr("MW") + 1, 1))
    versal = "xcvc1902-vsva2197-2MP-e-S"  # DSP58: not a slice a2qflow builds FINN's MVU for
    assert not fm.builds_for_part(versal)
    with pytest.raises(A2QFlowError, match="uses DSP58"):
        fm.generate(model, name, tmp_path, versal, 5.0)
    assert np.array_equal(fm.weights_of(model, name), model.get_initializer(
        next(n for n in model.graph.node if n.name == name).input[1]))
