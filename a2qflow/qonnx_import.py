"""Stage `import`: bring a QONNX model a2qflow did not train into a build directory.

The file is checked (ONNX, QONNX with integer weight quantizers, only ops FINN can map),
cleaned with qonnx and written as the build's ``model.qonnx.onnx`` with the same per-layer
records a2qflow's own export writes: K, input format and weight bits read from the graph, the
exact accumulator width computed from the integer weights by ``bounds`` (the same code as for
trained models), and the trained P where the user gives one (``--trained-p LAYER=P``; unknown
otherwise, and the certificate says no training target was checked). ``samples.npz`` comes
from ``--samples`` or is generated on the input quantizer's grid with a fixed seed.
``import.json`` records where the model came from. From here compile, verify, rtl and synth
run as on a trained build; verify, with no torch model, compares QONNX with FINN.
"""

from __future__ import annotations

import json
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from qonnx.core.modelwrapper import ModelWrapper

from a2qflow import bounds, layout
from a2qflow.artifacts import atomic_path, file_sha256, write_json
from a2qflow.errors import A2QFlowError
from a2qflow.graph import (
    LAYERS_KEY,
    execute_qonnx,
    quant_attrs,
    requantized_integers,
    set_proof_metadata,
    weight_nodes,
)

# Ops FINN's QONNX -> FINN conversion, streamlining and HW-layer inference map (or remove).
FINN_MAPPABLE = {
    "Quant", "BipolarQuant", "Trunc", "MatMul", "Gemm", "Conv", "Relu", "Add", "Sub", "Mul",
    "Div", "BatchNormalization", "Reshape", "Flatten", "Transpose", "MaxPool", "AveragePool",
    "GlobalAveragePool", "Identity", "Constant", "Squeeze", "Unsqueeze", "Pad", "Concat",
    "Shape", "Gather", "Slice", "Cast", "Dropout",
}
SHAPE_OPS = ("Reshape", "Flatten", "Transpose", "Squeeze", "Unsqueeze", "Identity")
N_GENERATED = 32
SAMPLE_SEED = 0


def parse_trained_p(pairs: tuple[str, ...] | list[str] | dict[str, int]) -> dict[str, int]:
    """``("fc2=12", ...)`` -> ``{"fc2": 12}``; a dict passes through (validated)."""
    if isinstance(pairs, dict):
        items = list(pairs.items())
    else:
        items = []
        for pair in pairs:
            name, sep, value = str(pair).partition("=")
            if not sep or not name:
                raise A2QFlowError(f"--trained-p {pair!r} is not LAYER=P",
                                   "write e.g. --trained-p fc2=12")
            items.append((name, value))
    out = {}
    for name, value in items:
        try:
            p = int(value)
        except (TypeError, ValueError):
            raise A2QFlowError(f"--trained-p {name}={value!r}: P is not an integer",
                               "write e.g. --trained-p fc2=12") from None
        if not 2 <= p <= bounds.MAX_ACC_BITS:
            raise A2QFlowError(f"--trained-p {name}={p} is not valid",
                               f"use a width from 2 to {bounds.MAX_ACC_BITS}")
        out[name] = p
    return out


def load_foreign(path: Path) -> ModelWrapper:
    """The file as a cleaned QONNX model, or one clear error naming what is wrong with it."""
    from qonnx.util.cleanup import cleanup_model

    path = Path(path)
    if not path.is_file():
        raise A2QFlowError(f"model file {path} not found", "give the path of a QONNX .onnx file")
    try:
        proto = onnx.load(str(path))
    except Exception as exc:  # DecodeError for truncated files, others for non-ONNX files
        raise A2QFlowError(f"{path} is not a readable ONNX model ({type(exc).__name__}; "
                           "truncated or not ONNX?)", "export it again (brevitas: "
                           "export_qonnx; qonnx: ModelWrapper.save)") from exc
    if not proto.graph.node:
        raise A2QFlowError(f"{path} holds no graph", "export the model again")
    ops = {n.op_type for n in proto.graph.node}
    if not ops & {"Quant", "BipolarQuant"}:
        raise A2QFlowError(f"{path} is a float ONNX model: it has no QONNX Quant nodes",
                           "quantize it first (brevitas QAT/PTQ and export_qonnx, or qonnx's "
                           "tooling); a2qflow certifies integer accumulators only")
    unmappable = [f"{n.name or '(unnamed)'} ({n.op_type})" for n in proto.graph.node
                  if n.op_type not in FINN_MAPPABLE]
    if unmappable:
        raise A2QFlowError(f"FINN cannot map {', '.join(unmappable[:5])}"
                           + (f" and {len(unmappable) - 5} more" if len(unmappable) > 5 else ""),
                           "remove or replace those ops (they must run on the host, outside "
                           "the accelerator) and export again")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return cleanup_model(ModelWrapper(proto))
        except Exception as exc:  # qonnx's shape inference on a broken graph
            raise A2QFlowError(f"qonnx cannot clean up {path} ({type(exc).__name__}: {exc})",
                               "check that the model runs in onnxruntime/qonnx and export "
                               "again") from exc


def _input_quant(model: ModelWrapper, tensor: str) -> Any:
    """The Quant node that produces ``tensor``, looking through shape-only ops."""
    node = model.find_producer(tensor)
    while node is not None and node.op_type in SHAPE_OPS:
        node = model.find_producer(node.input[0])
    return node if node is not None and node.op_type == "Quant" else None


def _quant_format(model: ModelWrapper, qnode: Any, what: str) -> tuple[int, bool]:
    bits = model.get_initializer(qnode.input[3])
    if bits is None:
        raise A2QFlowError(f"{what}: the bit width of {qnode.name} is not a constant",
                           "export with a fixed bit width")
    return int(np.asarray(bits).item()), bool(quant_attrs(qnode).get("signed", 1))


def original_layer_names(raw: onnx.ModelProto) -> list[str]:
    """Each weight layer's name as its author wrote it (brevitas: ``fc2.weight`` -> ``fc2``),
    in graph order, read before qonnx's cleanup renames the tensors."""
    model = ModelWrapper(raw)
    inits = {i.name for i in raw.graph.initializer}
    names = []
    for node in model.graph.node:
        if node.op_type not in ("MatMul", "Gemm", "Conv"):
            continue
        producer = _input_quant(model, node.input[1])
        if producer is None or producer.input[0] not in inits:
            continue
        w = producer.input[0]
        names.append(w[: -len(".weight")] if w.endswith(".weight") else (node.name or w))
    return names


def layer_records(model: ModelWrapper, trained_p: dict[str, int],
                  original_names: list[str] | None = None) -> list[dict[str, Any]]:
    """One record per weight layer, in graph order, in the format a2qflow's export writes."""
    pairs = weight_nodes(model)
    if not pairs:
        raise A2QFlowError("the model has no MatMul/Gemm/Conv with quantized (Quant) weights",
                           "quantize the weights of every layer")
    names = (original_names if original_names and len(original_names) == len(pairs)
             else [node.name for node, _ in pairs])
    unknown = sorted(set(trained_p) - set(names))
    if unknown:
        raise A2QFlowError(f"--trained-p names unknown layers: {', '.join(unknown)}",
                           f"layers of this model: {', '.join(names)}")
    records = []
    for (node, qnode), name in zip(pairs, names, strict=True):
        what = f"layer {name} ({node.name})"
        inq = _input_quant(model, node.input[0])
        if inq is None:
            raise A2QFlowError(f"{what}: its input is not quantized (no Quant node before it)",
                               "quantize every layer's input (brevitas: QuantIdentity / "
                               "QuantReLU with return_quant_tensor=True)")
        in_bits, in_signed = _quant_format(model, inq, what)
        w_bits, w_signed = _quant_format(model, qnode, what)
        raw = requantized_integers(model, qnode)
        if node.op_type == "Conv":
            q = raw.reshape(raw.shape[0], -1)
        elif node.op_type == "Gemm" and quant_attrs(node).get("transB", 0):
            q = raw
        else:
            q = raw.T
        lo, hi = bounds.input_range(in_bits, in_signed)
        exact = bounds.exact_accumulator_range(q, lo, hi)
        p = trained_p.get(name)
        records.append({
            "name": name, "op": "conv" if node.op_type == "Conv" else "linear",
            "quant": "imported", "acc_bits": p, "input_bits": in_bits,
            "input_signed": in_signed, "weight_bits": w_bits if w_signed else w_bits + 1,
            "k": int(q.shape[1]), "channels": int(q.shape[0]),
            "max_l1": bounds.max_channel_l1(q), "exact_bits": exact.bits,
            "onnx_node": node.name,
            "sparsity": float((q == 0).mean()),
        })
        if p is not None and exact.bits > p:
            raise A2QFlowError(f"{what}: its weights need {exact.bits} accumulator bits, more "
                               f"than the --trained-p {p} given for it",
                               "check the P it was trained for (or drop --trained-p for it)")
    return records


def generated_samples(model: ModelWrapper, n: int = N_GENERATED,
                      seed: int = SAMPLE_SEED) -> np.ndarray:
    """Inputs on the input quantizer's grid (every value it can produce, uniformly)."""
    iname = model.graph.input[0].name
    consumers = model.find_consumers(iname) or []
    qnode = next((c for c in consumers if c.op_type == "Quant"), None)
    node = consumers[0] if consumers else None
    while qnode is None and node is not None and node.op_type in SHAPE_OPS:
        nxt = model.find_consumers(node.output[0]) or []
        qnode = next((c for c in nxt if c.op_type == "Quant"), None)
        node = nxt[0] if nxt else None
    if qnode is None:
        raise A2QFlowError("the model's input is not quantized, so no input range is known",
                           "give test inputs with --samples FILE.npz (array 'x')")
    scale = np.asarray(model.get_initializer(qnode.input[1]), dtype=np.float64)
    zero = np.asarray(model.get_initializer(qnode.input[2]), dtype=np.float64)
    bits, signed = _quant_format(model, qnode, "the input quantizer")
    if scale.size != 1 or zero.size != 1:
        raise A2QFlowError("the input quantizer is per-channel; a2qflow generates samples for "
                           "per-tensor input scales only", "give --samples FILE.npz")
    lo, hi = bounds.input_range(bits, signed)
    shape = [d if d > 0 else 1 for d in model.get_tensor_shape(iname)]
    rng = np.random.default_rng(seed)
    ints = rng.integers(lo, hi + 1, size=(n, *shape[1:]))
    return ((ints - zero.item()) * scale.item()).astype(np.float32)


def read_samples(path: Path) -> dict[str, np.ndarray]:
    path = Path(path)
    if not path.is_file():
        raise A2QFlowError(f"samples file {path} not found",
                           "give an .npz with an array 'x' (and optionally labels 'y')")
    try:
        with np.load(path) as data:
            arrays = {k: data[k] for k in data.files}
    except Exception as exc:  # numpy/zipfile raise several types
        raise A2QFlowError(f"samples file {path} is not a readable .npz ({type(exc).__name__})",
                           "save it with numpy.savez(path, x=inputs, y=labels)") from exc
    if "x" not in arrays:
        raise A2QFlowError(f"samples file {path} has no array 'x'",
                           f"it holds {', '.join(arrays) or 'nothing'}; name the inputs 'x'")
    return arrays


def run(model_path: Path, build_dir: Path, samples: Path | None = None,
        trained_p: dict[str, int] | None = None) -> dict[str, Any]:
    """Import ``model_path`` into ``build_dir``; returns the import.json content."""
    build_dir = Path(build_dir)
    t0 = time.time()
    if (build_dir / layout.CHECKPOINT).exists():
        raise A2QFlowError(f"{build_dir} holds a model a2qflow trained (checkpoint.pt); an "
                           "import there would mix two models", "import into a new directory")
    trained_p = parse_trained_p(trained_p or {})
    proto = load_foreign(model_path)
    raw = onnx.load(str(model_path), load_external_data=False)
    records = layer_records(proto, trained_p, original_layer_names(raw))
    if samples is not None:
        given = read_samples(samples)
        x = given["x"].astype(np.float32)
        source = {"kind": "given", "file": str(samples), "sha256": file_sha256(Path(samples))}
    else:
        given = {}
        x = generated_samples(proto)
        source = {"kind": "generated", "seed": SAMPLE_SEED, "count": len(x),
                  "note": "uniform on the input quantizer's integer grid"}
    expected = [d if d > 0 else 1 for d in proto.get_tensor_shape(proto.graph.input[0].name)]
    if list(x.shape[1:]) != expected[1:]:
        raise A2QFlowError(f"samples have shape {list(x.shape[1:])} per input but the model "
                           f"takes {expected[1:]}", "give inputs of the model's shape")
    try:
        out = execute_qonnx(proto, x)
    except Exception as exc:  # qonnx execution of a graph it cannot run
        raise A2QFlowError(f"qonnx cannot execute the model ({type(exc).__name__}: {exc})",
                           "check the model in qonnx (qonnx.core.onnx_exec)") from exc
    set_proof_metadata(proto, LAYERS_KEY, json.dumps(records))
    arrays = {"x": x, "qonnx_out": out}
    if "y" in given:
        arrays["y"] = given["y"]
    with atomic_path(build_dir / layout.QONNX_MODEL) as tmp:
        proto.save(str(tmp))
    layout.save_samples(build_dir, **arrays)
    result = {
        "stage": "import",
        "source": {"path": str(Path(model_path).resolve()),
                   "sha256": file_sha256(Path(model_path)),
                   "producer": {"name": raw.producer_name, "version": raw.producer_version},
                   "opset": [{"domain": o.domain, "version": o.version}
                             for o in raw.opset_import]},
        "samples": source,
        "trained_p": trained_p,
        "training_target": ("given per layer with --trained-p" if trained_p else
                            "unknown: no trained P was given, so only the exact width is "
                            "proven; no training target was checked"),
        "layers": records,
        "seconds": round(time.time() - t0, 2),
    }
    write_json(build_dir / layout.IMPORT_JSON, result)
    return result
