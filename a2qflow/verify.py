"""Stage `verify`: the compiled design computes what was trained, and no accumulator overflows.

1. **Bit-exact chain** on the test samples: the integer accumulators of the last layer as
   brevitas computes them (rebuilt from ``checkpoint.pt``), as FINN's Python execution of the
   generic HW-layer graph (``layout.HW_MODEL``) computes them, and as the
   QONNX graph computes them (its float output divided by the output scale FINN streamlined
   out, which must land on an integer) agree exactly; counts and the first mismatch are kept.
   A sample passes with a mismatch only when a rounding tie explains it (``rounding_ties``):
   the two executions first part at one activation, by one LSB, in elements whose input sits
   on a rounding boundary (float summation order; FINN's thresholds round a tie up, QONNX's
   Quant to even). A large convnet has such ties on some images; at least one sample must
   match everywhere.
   Specialized HLS/RTL layers cannot run here: cppsim needs finn-hlslib, rtlsim needs Vivado.
2. **Worst cases**, per MVAU: ``bounds.worst_case_inputs`` gives, for each channel, the input
   vectors that drive its accumulator to its exact maximum and minimum. They are executed
   through the MVAU with FINN (thresholds removed, so the node returns its accumulator).
   FINN's Python execution of an MVAU is a float ``np.matmul``: it does **not** model the
   accumulator register (no wrap, no saturation). So containment is checked explicitly: every
   value FINN returns must equal our int64 matmul and lie in the signed range of the layer's
   ``accDataType`` (and of the HLS register type). The **negative control** runs the same check
   with the accumulator one bit narrower: the same vectors must then leave the range (and wrap
   to other values), showing the check can fail.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from qonnx.core.datatype import DataType
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.custom_op.registry import getCustomOp

from a2qflow import bounds, layout
from a2qflow.artifacts import write_json
from a2qflow.errors import A2QFlowError
from a2qflow.graph import (
    accumulator_extremes,
    activation_trace,
    execute_mvau,
    execute_qonnx,
    hw_matmul_nodes,
    integer_weights,
    read_certified,
    tie_divergence,
)

MAX_SAMPLES = 100
INTEGER_TOLERANCE = 1e-3  # |QONNX output / scale - nearest integer|
FAILED_REPORT = "verify.failed.json"


def run(build_dir: Path, max_samples: int = MAX_SAMPLES) -> dict[str, Any]:
    """Verify the compiled design in ``build_dir``; writes and returns ``verify.json``.

    A failed verification writes its report to ``verify.failed.json`` and leaves an earlier
    ``verify.json`` as it was (later stages see it is older than its inputs and refuse it).
    """
    build_dir = Path(build_dir)
    t0 = time.perf_counter()
    files = layout.stage_files("verify")
    inputs = layout.input_hashes(build_dir, files.present_inputs(build_dir))
    cert = layout.read_artifact(build_dir, layout.CERTIFICATE)
    hw = layout.load_onnx(build_dir, layout.HW_MODEL)
    qonnx_model = layout.load_onnx(build_dir, layout.QONNX_MODEL)
    imported = layout.IMPORT_JSON in inputs and layout.CHECKPOINT not in inputs
    trained = None if imported else layout.load_checkpoint(build_dir / layout.CHECKPOINT)
    samples = layout.load_samples(build_dir)
    x = samples["x"][:max_samples]

    consistency = certificate_consistency(cert, hw)
    if consistency:  # refuse before the expensive checks: no record of the width can be trusted
        _refuse({"stage": "verify", "ok": False, "inputs": inputs,
                 "certificate_consistency": consistency}, build_dir, consistency)
    finn_int, finn_out = finn_outputs(hw, x)
    qonnx_out = qonnx_outputs(qonnx_model, x)
    qonnx_int, off_grid = integers_from_scaled(qonnx_out, output_scale(hw))
    brevitas = None if imported else brevitas_int_outputs(trained.model, x)
    chain = {
        "samples": len(x),
        "reference": ("an imported model: no torch model, QONNX execution is the reference"
                      if imported else "brevitas integers from checkpoint.pt"),
        "brevitas_vs_finn": None if imported else compare(brevitas, finn_int),
        "qonnx_vs_finn": compare(qonnx_int, finn_int),
        "qonnx_max_distance_to_integer": off_grid,
        "float_max_abs_diff_qonnx_vs_finn": float(np.abs(qonnx_out - finn_out).max()),
        "argmax_agreement": float((qonnx_out.argmax(1) == finn_out.argmax(1)).mean()),
    }
    chain["rounding_ties"], unexplained = explain_mismatches(
        hw, qonnx_model, None if imported else trained.model, x,
        {"qonnx_vs_finn": (qonnx_int, finn_int),
         **({} if imported else {"brevitas_vs_finn": (brevitas, finn_int)})})
    worst = worst_case_checks(hw)
    if "y" in samples:
        chain["accuracy"] = float((finn_out.argmax(1) == samples["y"][:len(x)]).mean())
    ok = (not unexplained
          and off_grid <= INTEGER_TOLERANCE
          and all(w["contained"] and w["negative_control"]["detected"] for w in worst))
    result = {"stage": "verify", "ok": ok, "inputs": inputs,
              "certificate_consistency": "certificate.json, accDataType, the a2qflow.certified "
              "metadata and the exact widths of the weights agree",
              "chain": chain, "worst_case": worst,
              "finn_exec": "python (generic HW layers; no register-width modelling)",
              "seconds": round(time.perf_counter() - t0, 3)}
    if not ok:
        _refuse(result, build_dir, unexplained)
    (build_dir / FAILED_REPORT).unlink(missing_ok=True)
    write_json(build_dir / layout.VERIFY_JSON, result)
    return result


def _refuse(report: dict[str, Any], build_dir: Path, problems: list[str]) -> None:
    """Write the failed report beside (never over) ``verify.json`` and stop."""
    failed = build_dir / FAILED_REPORT
    write_json(failed, report)
    why = "; ".join(problems[:3]) if problems else "see the report"
    raise A2QFlowError(f"verification failed ({why}); report in {failed}",
                       "do not deploy this design; re-run `a2qflow compile` (a certificate that "
                       "disagrees with the weights was edited or is stale) and report the build")


def certificate_consistency(cert: dict[str, Any], hw: ModelWrapper) -> list[str]:
    """Every way the three records of each accumulator width can disagree with each other or
    with the weights: certificate.json, the node's ``accDataType``, the ``a2qflow.certified``
    metadata, and the exact width recomputed here from the integer weights (the only record
    that cannot be edited to agree). Empty when all agree and the width holds."""
    nodes = hw_matmul_nodes(hw)
    certified = read_certified(hw)
    entries = cert.get("layers", []) if isinstance(cert, dict) else []
    if not (len(nodes) == len(certified) == len(entries)):
        return [f"{len(nodes)} MVAU/VVAU layers, {len(certified)} certified in the graph, "
                f"{len(entries)} in certificate.json"]
    problems = []
    for node, meta, entry in zip(nodes, certified, entries, strict=True):
        acc = getCustomOp(node).get_nodeattr("accDataType")
        exact = accumulator_extremes(hw, node).bits
        records = {"accDataType": acc, "a2qflow.certified": meta.get("acc"),
                   "certificate.json": entry.get("acc_datatype")}
        if len(set(records.values())) != 1:
            problems.append(f"{node.name}: widths disagree ("
                            + ", ".join(f"{k} {v}" for k, v in records.items()) + ")")
            continue
        if entry.get("node") != node.name:
            problems.append(f"{node.name}: certificate.json entry is for {entry.get('node')}")
        width = DataType[acc].bitwidth()
        if width < exact:
            problems.append(f"{node.name}: certified {acc} but its weights need {exact} bits")
        if entry.get("exact_bits") != exact or meta.get("exact_bits") != exact:
            problems.append(f"{node.name}: recorded exact width {entry.get('exact_bits')} but "
                            f"the weights give {exact}")
    return problems


# --- the bit-exact chain --------------------------------------------------------------------


@torch.no_grad()
def brevitas_int_outputs(model: torch.nn.Module, x: np.ndarray) -> np.ndarray:
    """Last layer's integer accumulators ``x_int @ q.T`` from brevitas' own quant tensors."""
    from a2qflow.models import weight_layers

    _, last = weight_layers(model)[-1]
    captured: dict[str, Any] = {}
    hook = last.register_forward_pre_hook(lambda _m, args: captured.__setitem__("x", args[0]))
    try:
        model.eval()(torch.from_numpy(x))
    finally:
        hook.remove()
    quant_in = captured["x"]
    if not hasattr(quant_in, "int") or not isinstance(last, torch.nn.Linear):
        raise A2QFlowError("the last layer is not a quantized linear layer",
                           "verify supports TFC/CNV models with a quantized classifier")
    q = last.quant_weight(quant_input=quant_in).int().to(torch.int64)
    return (quant_in.int().to(torch.int64).flatten(1) @ q.T).numpy()


def finn_outputs(hw: ModelWrapper, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """FINN Python execution: the last MVAU's accumulators and the graph's float output."""
    from finn.core.onnx_exec import execute_onnx

    last = hw_matmul_nodes(hw)[-1]
    iname, oname = hw.graph.input[0].name, hw.graph.output[0].name
    ints, outs = [], []
    for i in range(len(x)):
        ctx = execute_onnx(hw, {iname: x[i:i + 1]}, return_full_exec_context=True)
        ints.append(ctx[last.output[0]].reshape(1, -1))
        outs.append(ctx[oname].reshape(1, -1))
    acc = np.concatenate(ints)
    if not np.array_equal(acc, np.round(acc)):
        raise AssertionError("FINN returned non-integer accumulators")
    return acc.astype(np.int64), np.concatenate(outs)


def finn_activation_trace(hw: ModelWrapper, x: np.ndarray, like: list[np.ndarray]
                          ) -> list[np.ndarray] | None:
    """One sample through FINN's graph: the integers of each activation (the input
    ``MultiThreshold``, then every MVAU with thresholds), in ``like``'s layouts (NHWC tensors
    transposed to NCHW); None when they do not pair with ``like``."""
    from finn.core.onnx_exec import execute_onnx

    nodes = [n for n in hw.graph.node if n.op_type == "MultiThreshold"
             or (n.op_type.startswith("MVAU")
                 and getCustomOp(n).get_nodeattr("noActivation") == 0)]
    if len(nodes) != len(like):
        return None
    context = execute_onnx(hw, {hw.graph.input[0].name: x}, return_full_exec_context=True)
    trace = []
    for node, ref in zip(nodes, like, strict=True):
        t = context[node.output[0]]
        if t.shape != ref.shape and t.ndim == 4:
            t = t.transpose(0, 3, 1, 2)
        if t.shape != ref.shape:
            return None
        trace.append(t)
    return trace


def explain_mismatches(hw: ModelWrapper, qonnx_model: ModelWrapper,
                       torch_model: torch.nn.Module | None, x: np.ndarray,
                       compared: dict[str, tuple[np.ndarray, np.ndarray]]
                       ) -> tuple[list[dict], list[str]]:
    """For every sample where a comparison (name -> reference and FINN integers) fails: the
    rounding tie that explains it (``graph.tie_divergence``, the reference's activation
    inputs as the evidence), or the comparison and sample it leaves unexplained."""
    ties: list[dict] = []
    unexplained = [f"{name}: shapes differ" for name, (a, b) in compared.items()
                   if a.shape != b.shape]
    if unexplained:
        return ties, unexplained
    bad = {name: np.flatnonzero((a != b).reshape(len(x), -1).any(axis=1))
           for name, (a, b) in compared.items()}
    if not any(len(b) for b in bad.values()):
        return ties, unexplained
    torch_trace = None
    if torch_model is not None and len(bad.get("brevitas_vs_finn", [])):
        from a2qflow.models.inspect import forward_with_activation_integers

        # the whole batch, as brevitas_int_outputs ran it: float rounding depends on the batch
        _, t_int, t_pre = forward_with_activation_integers(torch_model, torch.from_numpy(x))
        torch_trace = (t_int, t_pre)
    for name, samples in bad.items():
        for i in samples:
            if name == "qonnx_vs_finn":
                integers, inputs = activation_trace(qonnx_model, x[i:i + 1])
            else:
                integers = [t[i:i + 1] for t in torch_trace[0]]
                inputs = [t[i:i + 1] for t in torch_trace[1]]
            finn = finn_activation_trace(hw, x[i:i + 1], integers)
            tie = None if finn is None else tie_divergence(integers, inputs, finn)
            if tie is None:
                unexplained.append(f"{name} on sample {i}")
            else:
                ties.append({"comparison": name, "sample": int(i), **tie})
    matched = np.setdiff1d(np.arange(len(x)), np.concatenate(list(bad.values())))
    if not matched.size:
        unexplained.append(f"no sample matches everywhere ({len(x)} compared)")
    return ties, unexplained


def qonnx_outputs(model: ModelWrapper, x: np.ndarray) -> np.ndarray:
    return execute_qonnx(model, x).reshape(len(x), -1)


def output_scale(hw: ModelWrapper) -> np.ndarray:
    """The per-channel scale FINN's streamlining moved behind the last MVAU (1 if none)."""
    last = hw_matmul_nodes(hw)[-1]
    scale = np.ones(1, dtype=np.float64)
    node = hw.find_consumer(last.output[0])
    while node is not None:
        if node.op_type != "Mul" or hw.get_initializer(node.input[1]) is None:
            raise A2QFlowError(f"unexpected {node.op_type} after the last MVAU",
                               "verify expects only scaling after the classifier")
        scale = scale * hw.get_initializer(node.input[1]).astype(np.float64).reshape(-1)
        node = hw.find_consumer(node.output[0])
    return scale


def integers_from_scaled(out: np.ndarray, scale: np.ndarray) -> tuple[np.ndarray, float]:
    scaled = out.astype(np.float64) / scale
    ints = np.round(scaled)
    return ints.astype(np.int64), float(np.abs(scaled - ints).max())


def compare(expected: np.ndarray, actual: np.ndarray) -> dict[str, Any]:
    """Exact comparison with the first mismatch as (sample, channel, expected, actual)."""
    if expected.shape != actual.shape:
        return {"compared": 0, "mismatches": -1,
                "first_mismatch": f"shapes differ: {expected.shape} vs {actual.shape}"}
    bad = np.argwhere(expected != actual)
    first = None
    if len(bad):
        s, c = (int(v) for v in bad[0])
        first = {"sample": s, "channel": c, "expected": int(expected[s, c]),
                 "actual": int(actual[s, c])}
    return {"compared": int(expected.size), "mismatches": int(len(bad)), "first_mismatch": first}


# --- worst cases -----------------------------------------------------------------------------


def worst_case_checks(hw: ModelWrapper) -> list[dict[str, Any]]:
    certified = read_certified(hw)
    nodes = hw_matmul_nodes(hw)
    if len(certified) != len(nodes):
        raise A2QFlowError("the HW model carries no accumulator certificate", "re-run compile")
    return [worst_case_check(hw, node, cert) for node, cert in zip(nodes, certified, strict=True)]


def worst_case_check(hw: ModelWrapper, node: Any, cert: dict[str, Any]) -> dict[str, Any]:
    q = integer_weights(hw, node)
    idt = getCustomOp(node).get_input_datatype(0)
    lo_in, hi_in = int(idt.min()), int(idt.max())
    x_max, x_min = bounds.worst_case_inputs(q, lo_in, hi_in)
    vectors = np.concatenate([x_max, x_min])
    acc = execute_accumulator(hw, node, vectors)
    reference = vectors @ q.T
    rng = bounds.exact_accumulator_range(q, lo_in, hi_in)
    channels = np.arange(q.shape[0])
    reached = (np.array_equal(acc[channels, channels], rng.hi)
               and np.array_equal(acc[len(channels) + channels, channels], rng.lo))
    width = DataType[cert["acc"]].bitwidth()
    register = DataType[cert["register"]].bitwidth()
    inside = containment(acc, min(width, register))
    narrower = containment(acc, width - 1)
    return {
        "layer": cert["layer"],
        "node": node.name,
        "vectors": int(len(vectors)),
        "executed_by": "FINN python exec" if node.op_type.startswith("MVAU") else "numpy int64",
        "finn_equals_int64": bool(np.array_equal(acc, reference)),
        "extremes_reached": bool(reached),
        "exact_range": [int(rng.lo.min()), int(rng.hi.max())],
        "observed_range": [int(acc.min()), int(acc.max())],
        "acc_datatype": cert["acc"],
        "register_datatype": cert["register"],
        "overflows": inside["overflows"],
        "contained": bool(inside["overflows"] == 0 and reached
                          and np.array_equal(acc, reference)),
        "negative_control": {"acc_datatype": f"INT{width - 1}", **narrower,
                             "detected": narrower["overflows"] > 0},
    }


def containment(acc: np.ndarray, bits: int) -> dict[str, Any]:
    """How many accumulator values leave a signed ``bits``-bit register, and what they wrap to."""
    lo, hi = bounds.signed_range(bits)
    bad = np.argwhere((acc < lo) | (acc > hi))
    first = None
    if len(bad):
        v, c = (int(i) for i in bad[0])
        value = int(acc[v, c])
        wrapped = ((value - lo) % (1 << bits)) + lo
        first = {"vector": v, "channel": c, "value": value, "wraps_to": wrapped}
    return {"bits": bits, "overflows": int(len(bad)), "first_overflow": first}


def execute_accumulator(hw: ModelWrapper, node: Any, vectors: np.ndarray) -> np.ndarray:
    """Run ``vectors`` (n, K) through a copy of the layer with its thresholds removed."""
    if not node.op_type.startswith("MVAU"):
        return vectors @ integer_weights(hw, node).T
    return execute_mvau(hw, node, vectors, activation=False)
