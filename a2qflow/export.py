"""Stage `export`: checkpoint -> ``model.qonnx.onnx`` + ``export.json``, checked against torch.

brevitas 0.13.4's QONNX export of A2Q/A2Q+ layers writes float weights that its own ``Quant``
node (ROUND) maps to other integers than the layer's round-to-zero quantizer produced, so the
graph does not reproduce the trained model (brevitas 0.13.4; seen here: max |diff| 1.6 on digits).
We therefore write the trained integer weights back: each weight ``Quant`` node's input becomes
``q * scale`` with the node's own scale, so it re-quantizes to exactly ``q``. The result is then
executed with qonnx on test samples and compared with torch; a mismatch fails the export and
leaves any previous ``model.qonnx.onnx`` untouched.

The proof travels with the model as ONNX metadata: ``a2qflow.spec`` (the ModelSpec) and
``a2qflow.layers`` (one record per MatMul/Conv in graph order: trained P, input format, K, ...).
"""

from __future__ import annotations

import importlib.metadata as md
import json
import time
import warnings
from pathlib import Path
from typing import Any

import brevitas
import numpy as np
import onnx
import torch
from brevitas.export import export_qonnx
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.util.cleanup import cleanup_model

import a2qflow
from a2qflow import layout
from a2qflow.artifacts import atomic_path, write_json
from a2qflow.errors import A2QFlowError
from a2qflow.graph import (
    LAYERS_KEY,
    SPEC_KEY,
    activation_quant_nodes,
    activation_trace,
    execute_qonnx,
    requantized_integers,
    set_proof_metadata,
    tie_divergence,
    weight_nodes,
)
from a2qflow.layout import load_checkpoint, load_samples
from a2qflow.models.inspect import (
    LayerReport,
    forward_with_activation_integers,
    layer_reports,
)

LAYER_FIELDS = ("name", "op", "quant", "acc_bits", "input_bits", "input_signed", "weight_bits",
                "k", "channels", "max_l1", "exact_bits")


def _to_onnx_layout(q: np.ndarray, report: LayerReport, onnx_shape: tuple[int, ...]) -> np.ndarray:
    """Torch (channels, K...) integer weights in the initializer's layout (MatMul: (K, C))."""
    if report.op == "conv":
        return q.reshape(onnx_shape)
    if onnx_shape == (report.channels, report.k) and onnx_shape != (report.k, report.channels):
        return q
    return q.T


def restore_trained_weights(model: ModelWrapper, reports: list[LayerReport]) -> list[dict]:
    """Make every weight Quant node emit the trained integers; returns what changed per layer."""
    pairs = weight_nodes(model)
    quantized = [r for r in reports if r.int_weights is not None]
    if len(pairs) != len(quantized):
        raise A2QFlowError(
            f"exported graph has {len(pairs)} quantized MatMul/Conv nodes, the model "
            f"{len(quantized)} quantized layers",
            "this architecture is not supported by the exporter; report it as a bug",
        )
    changes = []
    for (node, qnode), rep in zip(pairs, quantized, strict=True):
        w_name, s_name = qnode.input[0], qnode.input[1]
        onnx_w = model.get_initializer(w_name)
        scale = model.get_initializer(s_name)
        before = requantized_integers(model, qnode)
        target = _to_onnx_layout(rep.int_weights, rep, tuple(onnx_w.shape))
        model.set_initializer(w_name, (target * scale).astype(np.float32))
        after = requantized_integers(model, qnode)
        if not np.array_equal(after, target):
            raise A2QFlowError(
                f"could not write the trained integer weights of {rep.name} into {node.name}",
                "report this as a bug with the checkpoint attached",
            )
        changes.append({"layer": rep.name, "onnx_node": node.name,
                        "weights_rewritten": int((before != target).sum())})
    return changes


def layer_metadata(reports: list[LayerReport]) -> list[dict[str, Any]]:
    return [{k: getattr(r, k) for k in LAYER_FIELDS} for r in reports]


def check_reproduces_torch(qmodel: ModelWrapper, x: np.ndarray, torch_out: np.ndarray,
                           torch_integers: list[np.ndarray]) -> dict[str, Any]:
    """The exported graph against torch's output and activation integers on ``x``: every
    sample within tolerance, or differing only through a rounding tie (``graph.tie_divergence``:
    torch and qonnx sum in different orders, and a large convnet has activations on a rounding
    boundary on some images), and at least one sample within."""
    onnx_out = execute_qonnx(qmodel, x)
    tolerance = 1e-4 * max(1.0, float(np.abs(torch_out).max()))
    per_sample = np.abs(onnx_out - torch_out).reshape(len(x), -1).max(axis=1)
    off = np.flatnonzero(per_sample > tolerance)
    tensor_names = [n.output[0] for n in activation_quant_nodes(qmodel)]
    ties = []
    for i in off:
        integers, inputs = activation_trace(qmodel, x[i:i + 1])
        tie = tie_divergence(integers, inputs, [t[i:i + 1] for t in torch_integers])
        if tie is None:
            raise A2QFlowError(
                f"exported QONNX does not reproduce torch on sample {i}: max |diff| "
                f"{per_sample[i]:.3g} (tolerance {tolerance:.2g}), and no activation "
                "rounding tie explains it",
                "nothing was written; report this with the checkpoint attached",
            )
        ties.append({"sample": int(i), "max_abs_diff": float(per_sample[i]),
                     "tensor": tensor_names[tie["activation"]], "elements": tie["elements"]})
    exact = np.setdiff1d(np.arange(len(x)), off)
    if not exact.size:
        raise A2QFlowError(
            f"exported QONNX reproduces torch on none of the {len(x)} samples (each differs "
            "through an activation rounding tie)",
            "nothing was written; report this with the checkpoint attached")
    return {"samples": len(x), "max_abs_diff": float(per_sample[exact].max()),
            "tolerance": tolerance,
            "argmax_agreement": float((onnx_out.argmax(1) == torch_out.argmax(1)).mean()),
            "rounding_ties": ties}


def run(build_dir: Path, max_samples: int | None = None) -> dict[str, Any]:
    """Export the trained model in ``build_dir``; returns the export.json content."""
    build_dir = Path(build_dir)
    t0 = time.time()
    trained = load_checkpoint(build_dir / layout.CHECKPOINT)
    samples = load_samples(build_dir)
    x = samples["x"][:max_samples] if max_samples else samples["x"]
    model = trained.model.eval()
    torch_out, torch_integers, _ = forward_with_activation_integers(model,
                                                                     torch.from_numpy(x))
    reports = layer_reports(model, trained.spec, torch.from_numpy(x[:2]))

    target = build_dir / layout.QONNX_MODEL
    with atomic_path(target) as tmp:
        raw = tmp.with_name(tmp.name + ".raw.onnx")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                # TorchScript exporter: Flatten + MatMul, the graph form FINN's passes expect
                export_qonnx(model, input_t=torch.from_numpy(x[:1]), export_path=str(raw),
                             dynamo=False)
            qmodel = cleanup_model(ModelWrapper(str(raw)))
        finally:
            raw.unlink(missing_ok=True)
        changes = restore_trained_weights(qmodel, reports)
        set_proof_metadata(qmodel, SPEC_KEY, json.dumps(trained.spec.to_dict()))
        set_proof_metadata(qmodel, LAYERS_KEY, json.dumps(layer_metadata(reports)))
        check = check_reproduces_torch(qmodel, x, torch_out, torch_integers)
        qmodel.save(str(tmp))

    result = {
        "stage": "export",
        "model": target.name,
        **check,
        "weights_restored": changes,
        "layers": layer_metadata(reports),
        "seconds": round(time.time() - t0, 2),
        "versions": {"a2qflow": a2qflow.__version__, "brevitas": brevitas.__version__,
                     "qonnx": md.version("qonnx"), "onnx": onnx.__version__,
                     "torch": torch.__version__},
    }
    write_json(build_dir / layout.EXPORT_JSON, result)
    return result
