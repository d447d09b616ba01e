"""verify on compiled TFC models: the bit-exact chain, worst cases and the negative control."""

from __future__ import annotations

import json

import numpy as np
import pytest
from fixtures_build import compiled_build, mvau_model  # noqa: F401  (fixture)

from a2qflow import verify
from a2qflow.compile.passes import SetCertifiedAccumulatorWidth
from a2qflow.compile.passes.set_certified_accumulator_width import read_certified
from a2qflow.errors import A2QFlowError


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


def test_verify_needs_a_compiled_build(tmp_path):
    with pytest.raises(A2QFlowError, match="run `a2qflow compile` first"):
        verify.run(tmp_path)


def test_compare_reports_the_first_mismatch():
    a = np.array([[1, 2], [3, 4]])
    b = np.array([[1, 2], [3, 5]])
    assert verify.compare(a, b) == {"compared": 4, "mismatches": 1, "first_mismatch": {
        "sample": 1, "channel": 1, "expected": 4, "actual": 5}}
