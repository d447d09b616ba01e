"""Compile of real trained TFC models: artifacts, certificate values, refusals, bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
from fixtures_build import compiled_build  # noqa: F401  (fixture)
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.custom_op.registry import getCustomOp

from a2qflow import compile as a2q_compile
from a2qflow.compile.pipeline import STEPS
from a2qflow.errors import A2QFlowError

pytestmark = pytest.mark.slow


def independent_exact_bits(model: ModelWrapper, node) -> int:
    """Exact width straight from the FINN initializer and input type, without a2qflow.bounds."""
    w = model.get_initializer(node.input[1]).astype(np.int64)  # (K, channels)
    idt = getCustomOp(node).get_input_datatype(0)
    lo_in, hi_in = int(idt.min()), int(idt.max())
    hi = np.maximum(w * hi_in, w * lo_in).sum(axis=0).max()
    lo = np.minimum(w * hi_in, w * lo_in).sum(axis=0).min()
    bits = 1
    while not (-(1 << (bits - 1)) <= lo and hi < (1 << (bits - 1))):
        bits += 1
    return bits


@pytest.mark.parametrize("quant", ["a2q", "a2q+"])
def test_compile_certifies_every_layer(compiled_build, quant):  # noqa: F811
    build = compiled_build(quant, 12)
    onnx_files = sorted(p.name for p in (build / "finn").glob("*.onnx"))
    assert onnx_files == [f"{i + 1:02d}_{name}.onnx" for i, (name, _) in enumerate(STEPS)]
    cert = json.loads((build / "certificate.json").read_text())
    assert cert["all_proven"] and cert["board"] == "pynq-z1"
    hw = ModelWrapper(str(build / "finn" / "05_certify_accumulators.onnx"))
    nodes = [n for n in hw.graph.node if n.op_type.startswith("MVAU")]
    assert len(nodes) == len(cert["layers"]) == 4
    for node, entry in zip(nodes, cert["layers"], strict=True):
        exact = independent_exact_bits(hw, node)
        assert entry["exact_bits"] == exact
        assert getCustomOp(node).get_nodeattr("accDataType") == f"INT{exact}" == entry["chosen"]
        assert entry["acc_datatype"] == f"INT{exact}"
        assert entry["verdict"] == "proven" and "exact" in entry["proven_by"]
        assert entry["finn_default"] == "INT32"
        if entry["trained_p"] is not None:
            assert entry["trained_p"] == 12 and exact <= 12
            assert entry["quant"] == quant
    hidden = cert["layers"][1:3]
    assert all(e["trained_p"] == 12 for e in hidden)


def test_specialized_layers_keep_the_certified_widths(compiled_build):  # noqa: F811
    build = compiled_build("a2q+", 12)
    cert = json.loads((build / "certificate.json").read_text())
    final = ModelWrapper(str(build / "finn" / "09_codegen.onnx"))
    mvaus = [n for n in final.graph.node if n.op_type.startswith("MVAU")]
    assert all(n.op_type in ("MVAU_hls", "MVAU_rtl") for n in mvaus)
    for node, entry in zip(mvaus, cert["layers"], strict=True):
        assert getCustomOp(node).get_nodeattr("accDataType") == entry["acc_datatype"]
        code_dir = getCustomOp(node).get_nodeattr("code_gen_dir_ipgen")
        assert code_dir.startswith(str(build / "finn" / "codegen"))
        assert any(p.suffix in (".cpp", ".v", ".sv") for p in
                   __import__("pathlib").Path(code_dir).iterdir())


def test_estimates_against_the_board(compiled_build):  # noqa: F811
    est = json.loads((compiled_build("a2q+", 12) / "estimates.json").read_text())
    assert est["board"] == "pynq-z1" and "FINN" in est["tool"]
    assert est["total"]["LUT"] == pytest.approx(sum(v["LUT"] for v in est["layers"].values()))
    assert est["utilization"]["LUT"] == pytest.approx(est["total"]["LUT"] / 53200)
    assert est["performance"]["max_cycles"] > 0
    assert "Xilinx" not in est["tool"]


def test_ecp5_estimates_say_they_come_from_finns_xilinx_models(trained_build, copy_build):
    build = copy_build(trained_build(quant="a2q+", acc_bits=12))
    est = a2q_compile.run(build, "orangecrab-25f")["estimates"]
    assert est["part"].startswith("LFE5U") and "FINN" in est["tool"]
    assert "Xilinx LUT/BRAM models" in est["tool"] and "ECP5" in est["tool"]


def test_baseline_forced_to_12_bits_is_refused(trained_build, copy_build):
    build = copy_build(trained_build(quant="baseline", acc_bits=12))
    a2q_compile.run(build, "pynq-z1")
    good = {p: (build / p).read_bytes() for p in ("certificate.json", "estimates.json")}
    with pytest.raises(A2QFlowError) as err:
        a2q_compile.run(build, "pynq-z1", acc_bits=12)
    msg = str(err.value)
    assert "refused: --acc-bits 12 would overflow" in msg
    assert "layer features.1" in msg and "needs 17 bits" in msg  # the 8-bit input layer
    for path, data in good.items():
        assert (build / path).read_bytes() == data
    assert not list(build.glob(".compile-*"))


def test_forced_wide_accumulator_is_accepted(trained_build, copy_build):
    build = copy_build(trained_build(quant="a2q+", acc_bits=12))
    result = a2q_compile.run(build, "zcu104", acc_bits=32)
    assert all(e["chosen"] == "INT32" and e["forced"] for e in result["certificate"]["layers"])
    assert result["estimates"]["part"] == "xczu7ev-ffvc1156-2-e"


def test_folding_file_and_target_fps(trained_build, copy_build, tmp_path):
    build = copy_build(trained_build(quant="a2q+", acc_bits=12))
    folding = tmp_path / "folding.json"
    folding.write_text(json.dumps({"MVAU_hls_1": {"PE": 4, "SIMD": 16}}))
    a2q_compile.run(build, "pynq-z1", folding=folding)
    final = ModelWrapper(str(build / "finn" / "07_folding.onnx"))
    inst = getCustomOp(final.get_node_from_name("MVAU_hls_1"))
    assert (inst.get_nodeattr("PE"), inst.get_nodeattr("SIMD")) == (4, 16)
    slow = a2q_compile.run(build, "pynq-z1")["estimates"]["performance"]["max_cycles"]
    fast = a2q_compile.run(build, "pynq-z1", target_fps=1e6)["estimates"]["performance"]
    assert fast["max_cycles"] < slow


def test_a_folding_file_applies_on_top_of_setfolding(trained_build, copy_build, tmp_path):
    """As in FINN's builder: SetFolding for the throughput, then the file's attributes."""
    build = copy_build(trained_build(quant="a2q+", acc_bits=12))
    a2q_compile.run(build, "pynq-z1", target_fps=1e6)
    folded = ModelWrapper(str(build / "finn" / "07_folding.onnx"))
    names = [n.name for n in folded.graph.node if n.op_type == "MVAU_hls"]
    chosen = {n: (getCustomOp(folded.get_node_from_name(n)).get_nodeattr("PE"),
                  getCustomOp(folded.get_node_from_name(n)).get_nodeattr("SIMD")) for n in names}
    folding = tmp_path / "styles.json"
    folding.write_text(json.dumps({"Defaults": {"ram_style_thresholds": ["block", ["MVAU_hls"]]},
                                   names[0]: {"resType": "dsp"}}))
    a2q_compile.run(build, "pynq-z1", folding=folding, target_fps=1e6)
    final = ModelWrapper(str(build / "finn" / "07_folding.onnx"))
    for n in names:
        inst = getCustomOp(final.get_node_from_name(n))
        assert (inst.get_nodeattr("PE"), inst.get_nodeattr("SIMD")) == chosen[n]
        assert inst.get_nodeattr("ram_style_thresholds") == "block"
    assert getCustomOp(final.get_node_from_name(names[0])).get_nodeattr("resType") == "dsp"


def test_bad_inputs_are_refused(trained_build, copy_build, tmp_path):
    with pytest.raises(A2QFlowError, match="model.qonnx.onnx not found"):
        a2q_compile.run(tmp_path, "pynq-z1")
    build = copy_build(trained_build(quant="a2q+", acc_bits=12))
    with pytest.raises(A2QFlowError, match="unknown board"):
        a2q_compile.run(build, "pynq-z9")
    bad_folding = tmp_path / "f.json"
    bad_folding.write_text("{not json")
    with pytest.raises(A2QFlowError, match="not valid JSON"):
        a2q_compile.run(build, "pynq-z1", folding=bad_folding)
    bad_folding.write_text(json.dumps({"MVAU_hls_9": {"PE": 2}}))
    with pytest.raises(A2QFlowError, match="unknown layers: MVAU_hls_9"):
        a2q_compile.run(build, "pynq-z1", folding=bad_folding)
    bad_folding.write_text(json.dumps({"MVAU_hls_1": {"PE": 3}}))
    with pytest.raises(A2QFlowError, match="PE=3 must divide MH=64"):
        a2q_compile.run(build, "pynq-z1", folding=bad_folding)
    (build / "model.qonnx.onnx").write_bytes(b"garbage")
    with pytest.raises(A2QFlowError, match="not a readable ONNX model"):
        a2q_compile.run(build, "pynq-z1")
    assert not (build / "certificate.json").exists()


def test_weights_beyond_the_trained_p_are_refused(trained_build, copy_build):
    build = copy_build(trained_build(quant="a2q", acc_bits=12))
    model = ModelWrapper(str(build / "model.qonnx.onnx"))
    layers = json.loads(model.get_metadata_prop("a2qflow.layers"))
    layers[1]["acc_bits"] = 8  # claim a P the trained weights cannot meet
    model.set_metadata_prop("a2qflow.layers", json.dumps(layers))
    model.save(str(build / "model.qonnx.onnx"))
    with pytest.raises(A2QFlowError) as err:
        a2q_compile.run(build, "pynq-z1")
    assert f"layer {layers[1]['name']}" in str(err.value) and "trained P=8" in str(err.value)
    assert not (build / "certificate.json").exists() and not (build / "finn").exists()
