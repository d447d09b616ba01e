"""The certified-accumulator passes on a hand-built FINN MVAU: widths, refusals, equal outputs."""

from __future__ import annotations

import numpy as np
import pytest
from finn.core.onnx_exec import execute_onnx
from fixtures_build import mvau_model
from qonnx.core.datatype import DataType
from qonnx.custom_op.registry import getCustomOp

from a2qflow.compile import certificate
from a2qflow.compile.passes import ClipThresholdsToAccumulatorRange, SetCertifiedAccumulatorWidth
from a2qflow.errors import A2QFlowError

RNG = np.random.default_rng(7)
K, CHANNELS = 32, 6


def brute_force_bits(weights: np.ndarray, x_lo: int, x_hi: int) -> int:
    """Exact width by enumerating each weight's two extreme products (independent of bounds)."""
    hi = max(sum(max(w * x_lo, w * x_hi) for w in row) for row in weights.tolist())
    lo = min(sum(min(w * x_lo, w * x_hi) for w in row) for row in weights.tolist())
    bits = 1
    while not (-(2 ** (bits - 1)) <= lo and hi <= 2 ** (bits - 1) - 1):
        bits += 1
    return bits


def weights_and_thresholds() -> tuple[np.ndarray, np.ndarray]:
    w = RNG.integers(-8, 8, size=(CHANNELS, K))
    w[0] = 7  # one channel at the positive extreme
    thresholds = np.sort(RNG.uniform(-400, 400, size=(CHANNELS, 3)), axis=1)
    thresholds[1] = [-1e6, 0.5, 1e6]  # out-of-range thresholds must be clipped
    return w, thresholds


def run_model(model, x: np.ndarray) -> np.ndarray:
    return np.concatenate([execute_onnx(model, {"inp": x[i:i + 1]})["out"] for i in range(len(x))])


def test_sets_exact_width_and_keeps_outputs():
    w, t = weights_and_thresholds()
    model = mvau_model(w, t, trained_p=None, quant="baseline")
    x = RNG.integers(0, 16, size=(64, K)).astype(np.float32)
    x[0], x[1] = 15 * (w[0] > 0), 15 * (w[0] < 0)  # drive channel 0 to its extremes
    before = run_model(model, x)
    out = model.transform(SetCertifiedAccumulatorWidth()).transform(
        ClipThresholdsToAccumulatorRange())
    inst = getCustomOp(out.graph.node[0])
    exact = brute_force_bits(w, 0, 15)
    assert inst.get_nodeattr("accDataType") == f"INT{exact}"
    thr = out.get_initializer("T")
    assert np.array_equal(thr, np.round(thr))
    assert DataType[f"INT{exact}"].min() <= thr.min()
    assert out.get_tensor_datatype("T").bitwidth() in (exact, exact + 1)
    assert np.array_equal(run_model(out, x), before)
    certificate.check_widths_hold(out)


def test_no_activation_layer_outputs_the_accumulator():
    w, _ = weights_and_thresholds()
    out = mvau_model(w, None).transform(SetCertifiedAccumulatorWidth())
    inst = getCustomOp(out.graph.node[0])
    exact = brute_force_bits(w, 0, 15)
    assert inst.get_nodeattr("outputDataType") == inst.get_nodeattr("accDataType") == f"INT{exact}"
    assert out.get_tensor_datatype("out") == DataType[f"INT{exact}"]


def test_signed_inputs_use_the_signed_range():
    w, _ = weights_and_thresholds()
    out = mvau_model(w, None, idt="INT4").transform(SetCertifiedAccumulatorWidth())
    exact = brute_force_bits(w, -8, 7)
    assert getCustomOp(out.graph.node[0]).get_nodeattr("accDataType") == f"INT{exact}"


def test_refuses_when_weights_exceed_the_trained_p():
    w, t = weights_and_thresholds()
    exact = brute_force_bits(w, 0, 15)
    with pytest.raises(A2QFlowError) as err:
        mvau_model(w, t, trained_p=exact - 1).transform(SetCertifiedAccumulatorWidth())
    msg = str(err.value)
    assert "fc1" in msg and f"P={exact - 1}" in msg and f"need {exact} bits" in msg


def test_refuses_a_forced_width_below_exact():
    w, t = weights_and_thresholds()
    exact = brute_force_bits(w, 0, 15)
    with pytest.raises(A2QFlowError, match=f"--acc-bits {exact - 1} is too narrow.*fc1.*"
                                           f"needs {exact} bits"):
        mvau_model(w, t).transform(SetCertifiedAccumulatorWidth(acc_bits=exact - 1))


def test_forced_wider_width_is_used():
    w, t = weights_and_thresholds()
    out = mvau_model(w, t).transform(SetCertifiedAccumulatorWidth(acc_bits=32))
    assert getCustomOp(out.graph.node[0]).get_nodeattr("accDataType") == "INT32"


def test_certificate_entries_and_verdicts():
    w, t = weights_and_thresholds()
    exact = brute_force_bits(w, 0, 15)
    model = mvau_model(w, t, trained_p=exact)
    (entry,) = certificate.certificate_entries(model)
    assert entry["exact_bits"] == exact and entry["chosen_bits"] == exact
    assert entry["verdict"] == "proven" and "exact" in entry["proven_by"]
    assert entry["finn_default"] == "INT32"
    assert entry["finn_minimized"] in (f"INT{exact}", f"UINT{exact - 1}")
    assert entry["max_l1"] == int(np.abs(w).sum(axis=1).max())
    assert entry["datatype_bound"]["classic"] == 4 + 4 + 5
    (refused,) = certificate.certificate_entries(model, acc_bits=exact - 1)
    assert refused["verdict"] == "refused" and refused["proven_by"] == []
    assert "--acc-bits" in str(certificate.refusal_error([refused], exact - 1))


def test_invariant_check_catches_a_reset_width():
    w, t = weights_and_thresholds()
    out = mvau_model(w, t).transform(SetCertifiedAccumulatorWidth())
    getCustomOp(out.graph.node[0]).set_nodeattr("accDataType", "INT32")
    with pytest.raises(AssertionError, match="certified"):
        certificate.check_widths_hold(out)


def test_metadata_mismatch_is_refused():
    w, t = weights_and_thresholds()
    model = mvau_model(w, t)
    model.set_metadata_prop("a2qflow.layers", "[]")
    with pytest.raises(A2QFlowError, match="1 MVAU/VVAU layers"):
        model.transform(SetCertifiedAccumulatorWidth())
