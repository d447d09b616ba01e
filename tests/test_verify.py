"""verify on compiled TFC models: the bit-exact chain, worst cases and the negative control."""

from __future__ import annotations

import json

import numpy as np
import pytest
from fixtures_build import compiled_build, mvau_model  # noqa: F401  (fixture)
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.custom_op.registry import getCustomOp

from a2qflow import layout, synth, verify
from a2qflow.compile.passes import SetCertifiedAccumulatorWidth
from a2qflow.errors import A2QFlowError
from a2qflow.graph import (
    CERTIFIED_KEY,
    activation_trace,
    hw_matmul_nodes,
    read_certified,
    tie_divergence,
)


@pytest.mark.slow
@pytest.mark.parametrize("quant", ["a2q", "a2q+"])
def test_verify_bit_exact_and_worst_cases(compiled_build, quant):  # noqa: F811
    build = compiled_build(quant, 12)
    result = verify.run(build)
    assert result["ok"]
    assert json.loads((build / "verify.json").read_text())["ok"]
    chain = result["chain"]
    assert chain["samples"] > 0
    for pair in ("brevitas_vs_finn", "qonnx_vs_finn"):
        assert chain[pair]["compared"] == chain["samples"] * 10
        assert chain[pair]["mismatches"] == 0 and chain[pair]["first_mismatch"] is None
    assert chain["argmax_agreement"] == 1.0
    for layer in result["worst_case"]:
        assert layer["executed_by"] == "FINN python exec"
        assert layer["finn_equals_int64"] and layer["extremes_reached"]
        assert layer["contained"] and layer["overflows"] == 0
        assert layer["observed_range"] == layer["exact_range"]
        control = layer["negative_control"]
        assert control["detected"] and control["overflows"] > 0
        first = control["first_overflow"]
        assert first["wraps_to"] != first["value"]


def test_only_a_one_lsb_divergence_on_a_rounding_boundary_is_a_tie():
    integers = [np.array([[3.0, 7.0]]), np.array([[1.0, 2.0, 5.0]])]
    inputs = [np.array([[3.1, 6.5000001]]), np.array([[1.2, 2.5, 4.9]])]

    def other(first: list[float], second: list[float]) -> list[np.ndarray]:
        return [np.array([first]), np.array([second])]

    # the first activation matches; the second parts at its tie (2.5), then anything may differ
    assert tie_divergence(integers, inputs, other([3, 7], [1, 3, 5])) == {
        "activation": 1, "elements": 1}
    assert tie_divergence(integers, inputs, other([3, 6], [9, 9, 9])) == {
        "activation": 0, "elements": 1}
    assert tie_divergence(integers, inputs, other([4, 7], [1, 2, 5])) is None  # 3.1: no tie
    assert tie_divergence(integers, inputs, other([3, 5], [1, 2, 5])) is None  # two LSBs
    assert tie_divergence(integers, inputs, other([3, 7], [1, 2, 5])) is None  # no divergence
    assert tie_divergence(integers, inputs, [integers[0]]) is None  # unpaired traces


@pytest.mark.slow
def test_finn_s_activations_pair_with_qonnx_s_and_a_wrong_weight_is_no_tie(
        compiled_build):  # noqa: F811
    build = compiled_build("a2q+", 12)
    hw = layout.load_onnx(build, layout.HW_MODEL)
    qonnx_model = layout.load_onnx(build, layout.QONNX_MODEL)
    x = layout.load_samples(build)["x"][:4]
    integers, _ = activation_trace(qonnx_model, x[:1])
    finn = verify.finn_activation_trace(hw, x[:1], integers)
    assert finn is not None and len(finn) == len(integers) > 1
    assert all(np.array_equal(a, b) for a, b in zip(integers, finn, strict=True))

    node = hw_matmul_nodes(hw)[1]  # a hidden layer with its weights negated: an export bug
    hw.set_initializer(node.input[1], -hw.get_initializer(node.input[1]))
    finn_int, _ = verify.finn_outputs(hw, x)
    qonnx_int, _ = verify.integers_from_scaled(verify.qonnx_outputs(qonnx_model, x),
                                               verify.output_scale(hw))
    assert (finn_int != qonnx_int).any()
    ties, unexplained = verify.explain_mismatches(hw, qonnx_model, None, x,
                                                  {"qonnx_vs_finn": (qonnx_int, finn_int)})
    assert unexplained and not ties


def test_worst_case_check_fails_on_an_undersized_accumulator():
    rng = np.random.default_rng(3)
    w = rng.integers(-8, 8, size=(5, 24))
    model = mvau_model(w, None).transform(SetCertifiedAccumulatorWidth())
    node = model.graph.node[0]
    (cert,) = read_certified(model)
    good = verify.worst_case_check(model, node, cert)
    assert good["contained"] and good["negative_control"]["detected"]
    narrow = dict(cert, acc=f"INT{cert['exact_bits'] - 1}", register=f"INT{cert['exact_bits'] - 1}")
    bad = verify.worst_case_check(model, node, narrow)
    assert not bad["contained"] and bad["overflows"] > 0


def test_containment_counts_and_wraps():
    acc = np.array([[127, -128], [128, -129]])
    assert verify.containment(acc, 8)["overflows"] == 2
    first = verify.containment(acc, 8)["first_overflow"]
    assert first == {"vector": 1, "channel": 0, "value": 128, "wraps_to": -128}
    assert verify.containment(acc, 9)["overflows"] == 0


def test_verify_needs_a_compiled_build(trained_build, copy_build):
    build = copy_build(trained_build(quant="a2q+", acc_bits=12, hidden=16))
    with pytest.raises(A2QFlowError, match="run `a2qflow compile` first"):
        verify.run(build)
    assert not (build / "verify.json").exists()


def test_compare_reports_the_first_mismatch():
    a = np.array([[1, 2], [3, 4]])
    b = np.array([[1, 2], [3, 5]])
    assert verify.compare(a, b) == {"compared": 4, "mismatches": 1, "first_mismatch": {
        "sample": 1, "channel": 1, "expected": 4, "actual": 5}}


def narrower_lie(build, layers: tuple[str, ...] = ("graph", "metadata", "certificate")) -> str:
    """Edit the first MVAU's recorded accumulator to one bit below its exact width, in the
    records named by ``layers``; returns the node name."""
    hw_path = build / layout.HW_MODEL
    hw = ModelWrapper(str(hw_path))
    node = hw_matmul_nodes(hw)[0]
    cert = json.loads((build / layout.CERTIFICATE).read_text())
    narrow = f"INT{cert['layers'][0]['exact_bits'] - 1}"
    if "graph" in layers:
        getCustomOp(node).set_nodeattr("accDataType", narrow)
    if "metadata" in layers:
        certified = read_certified(hw)
        certified[0]["acc"] = narrow
        hw.set_metadata_prop(CERTIFIED_KEY, json.dumps(certified))
    hw.save(str(hw_path))
    if "certificate" in layers:
        cert["layers"][0].update(acc_datatype=narrow, chosen=narrow)
        (build / layout.CERTIFICATE).write_text(json.dumps(cert))
    return node.name


@pytest.mark.slow
def test_a_consistent_lie_is_refused_and_nothing_downstream_reports(simulated_small, copy_build):
    build = copy_build(simulated_small)
    (build / layout.SYNTH_JSON).unlink(missing_ok=True)
    good = (build / layout.VERIFY_JSON).read_bytes()
    node = narrower_lie(build)
    with pytest.raises(A2QFlowError, match=f"{node}: certified INT\\d+ but its weights need"):
        verify.run(build)
    assert (build / layout.VERIFY_JSON).read_bytes() == good  # the old result stays as it was
    assert json.loads((build / verify.FAILED_REPORT).read_text())["ok"] is False
    with pytest.raises(A2QFlowError, match="verify.json is out of date"):
        synth.run(build)
    assert not (build / layout.SYNTH_JSON).exists()


@pytest.mark.slow
@pytest.mark.parametrize("edited", [("certificate",), ("graph",), ("metadata",),
                                    ("graph", "metadata")])
def test_any_one_edited_width_record_is_refused(simulated_small, copy_build, edited):
    build = copy_build(simulated_small)
    narrower_lie(build, edited)
    with pytest.raises(A2QFlowError, match="verification failed"):
        verify.run(build)
