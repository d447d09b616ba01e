"""Graph facts every stage shares: layer records, MVAU weights, accumulator ranges, execution.

One piece of code computes each fact (the certificate, the compile passes, verify and rtl all
call it), so the proof cannot be computed two ways. No I/O: models in, facts out.

The bridge between FINN's HW layers and the trained layers recorded at export:

The export writes one record per MatMul/Conv node, in graph order, to the model's
``a2qflow.layers`` metadata. FINN keeps that order through streamlining and conversion (a conv
is lowered to Im2Col + MatMul in place), so the k-th MVAU/VVAU is the k-th record; matching also
checks each record's K and channel count against the layer's weight matrix, so a mismatch
fails loudly instead of certifying the wrong layer.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.custom_op.registry import getCustomOp

from a2qflow import bounds
from a2qflow.errors import A2QFlowError

WEIGHT_OPS = ("MatMul", "Gemm", "Conv")
LAYERS_KEY = "a2qflow.layers"
SPEC_KEY = "a2qflow.spec"
HW_MATMUL_PREFIXES = ("MVAU", "VVAU")
_RECORD_FIELDS = ("name", "op", "quant", "acc_bits", "input_bits", "input_signed",
                  "weight_bits", "k", "channels")


@dataclass(frozen=True)
class LayerRecord:
    """What the export says about one trained layer."""

    name: str
    op: str
    quant: str
    acc_bits: int | None  # trained P, None when unconstrained
    input_bits: int
    input_signed: bool
    weight_bits: int
    k: int
    channels: int

    @classmethod
    def from_dict(cls, data: Any, index: int) -> LayerRecord:
        if not isinstance(data, dict) or any(f not in data for f in _RECORD_FIELDS):
            raise A2QFlowError(
                f"layer record {index} in the model metadata is malformed: {data!r}",
                "re-run `a2qflow export`",
            )
        return cls(**{f: data[f] for f in _RECORD_FIELDS})


def read_layer_records(model: ModelWrapper) -> list[LayerRecord]:
    raw = model.get_metadata_prop(LAYERS_KEY)
    if raw is None:
        raise A2QFlowError(
            f"the model has no {LAYERS_KEY!r} metadata (not exported by a2qflow?)",
            "export it with `a2qflow export`",
        )
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise A2QFlowError(f"{LAYERS_KEY!r} metadata is not JSON ({exc})",
                           "re-run `a2qflow export`") from exc
    if not isinstance(data, list):
        raise A2QFlowError(f"{LAYERS_KEY!r} metadata is not a list", "re-run `a2qflow export`")
    return [LayerRecord.from_dict(d, i) for i, d in enumerate(data)]


def hw_matmul_nodes(model: ModelWrapper) -> list[Any]:
    """MVAU/VVAU nodes (generic or specialized) in graph order."""
    return [n for n in model.graph.node if n.op_type.startswith(HW_MATMUL_PREFIXES)]


def integer_weights(model: ModelWrapper, node: Any) -> np.ndarray:
    """The layer's integer weights as ``(channels, K)``, straight from the initializer.

    An MVAU stores ``(MW, MH)`` = ``(K, channels)``; a VVAU stores ``(channels, 1, k, k)``.
    """
    w = model.get_initializer(node.input[1])
    if w is None:
        raise A2QFlowError(f"{node.name} has no constant weights", "weights must be constant")
    w = np.asarray(w)
    if not np.array_equal(w, np.round(w)):
        raise A2QFlowError(
            f"{node.name} has non-integer weights after streamlining",
            "export with integer weight quantizers (QONNX Quant nodes on the weights)",
        )
    if node.op_type.startswith("MVAU"):
        return w.astype(np.int64).T
    return w.astype(np.int64).reshape(w.shape[0], -1)


def match_layers(model: ModelWrapper, records: list[LayerRecord]) -> list[tuple[Any, LayerRecord]]:
    """Pair each MVAU/VVAU with its trained layer, checking shapes."""
    nodes = hw_matmul_nodes(model)
    if len(nodes) != len(records):
        raise A2QFlowError(
            f"FINN made {len(nodes)} MVAU/VVAU layers from a model whose metadata lists "
            f"{len(records)} weight layers",
            "every MatMul/Conv must become an MVAU/VVAU; check the export and the streamlining",
        )
    pairs = []
    for node, rec in zip(nodes, records, strict=True):
        q = integer_weights(model, node)
        if q.shape != (rec.channels, rec.k):
            raise A2QFlowError(
                f"{node.name} has a {q.shape[0]}x{q.shape[1]} weight matrix but layer "
                f"{rec.name} was exported as {rec.channels}x{rec.k}",
                "re-run `a2qflow export`",
            )
        pairs.append((node, rec))
    return pairs


def input_datatype(node: Any) -> Any:
    """The FINN DataType of the layer's activation input (what the accumulator sums)."""
    return getCustomOp(node).get_input_datatype(0)


def dataflow_core(model: ModelWrapper) -> ModelWrapper:
    """A copy holding only the HW layers (what FINN's dataflow partition would hold).

    After conversion, only reshapes before and scalar ops after the accelerator stay outside
    it; a non-HW node between HW layers means FINN could not map part of the network.
    """
    import copy

    from onnx import helper

    nodes = list(model.graph.node)
    hw = [i for i, n in enumerate(nodes) if n.domain.startswith("finn.custom_op.fpgadataflow")]
    if not hw:
        raise A2QFlowError("the model has no FINN HW layers", "check the export")
    inner = [nodes[i].name for i in range(hw[0], hw[-1] + 1) if i not in hw]
    if inner:
        raise A2QFlowError(f"FINN left {', '.join(inner)} between HW layers",
                           "only layers FINN can map to hardware may sit inside the network")
    core = ModelWrapper(copy.deepcopy(model.model))
    first_in, last_out = nodes[hw[0]].input[0], nodes[hw[-1]].output[0]
    for i in sorted(set(range(len(nodes))) - set(hw), reverse=True):
        core.graph.node.remove(core.graph.node[i])
    for seq, name in ((core.graph.input, first_in), (core.graph.output, last_out)):
        del seq[:]
        seq.append(helper.make_tensor_value_info(name, 1, core.get_tensor_shape(name)))
    return core


def transform_dataflow_core(model: ModelWrapper, transformation: Any) -> ModelWrapper:
    """Apply a FINN transformation that analyses the dataflow graph (e.g. SetFolding) to the
    HW layers only, then copy the changed HW nodes back into the whole model."""
    core = dataflow_core(model).transform(transformation)
    changed = {n.name: n for n in core.graph.node}
    for node in model.graph.node:
        if node.name in changed:
            node.CopyFrom(changed[node.name])
    return model


def execute_mvau(hw: ModelWrapper, node: Any, vectors: np.ndarray,
                 activation: bool = True) -> np.ndarray:
    """FINN Python execution of one MVAU on ``vectors`` (n, MW); without activation it
    returns the accumulators."""
    from finn.core.onnx_exec import execute_onnx

    single = copy.deepcopy(node)
    inst = getCustomOp(single)
    if not activation:
        del single.input[2:]
        inst.set_nodeattr("noActivation", 1)
        inst.set_nodeattr("outputDataType", inst.get_nodeattr("accDataType"))
    inst.set_nodeattr("numInputVectors", [len(vectors)])
    k, c = vectors.shape[1], inst.get_nodeattr("MH")
    graph = helper.make_graph(
        [single], "one_mvau",
        [helper.make_tensor_value_info(single.input[0], TensorProto.FLOAT, [len(vectors), k])],
        [helper.make_tensor_value_info(single.output[0], TensorProto.FLOAT, [len(vectors), c])],
    )
    model = ModelWrapper(helper.make_model(graph))
    for name in single.input[1:]:
        model.set_initializer(name, hw.get_initializer(name))
        model.set_tensor_datatype(name, hw.get_tensor_datatype(name))
    model.set_tensor_datatype(single.input[0], inst.get_input_datatype(0))
    out = execute_onnx(model, {single.input[0]: vectors.astype(np.float32)})[single.output[0]]
    return integer_array(np.asarray(out), node.name)


def integer_array(a: np.ndarray, what: str) -> np.ndarray:
    """``a`` as int64, refusing values that are not integers (FINN must produce integers)."""
    r = np.round(a.astype(np.float64))
    if not np.array_equal(r, a):
        raise AssertionError(f"FINN returned non-integer values for {what}")
    return r.astype(np.int64)


CERTIFIED_KEY = "a2qflow.certified"  # metadata: one record per MVAU/VVAU, in graph order


def accumulator_extremes(model: ModelWrapper, node: Any) -> bounds.ExactRange:
    """Per-channel reachable accumulator range of a layer: its weights against its input type."""
    idt = input_datatype(node)
    if not idt.is_integer():
        raise A2QFlowError(
            f"{node.name} takes {idt.name} inputs; only integer inputs have a finite accumulator",
            "quantize the layer's input (return_quant_tensor=True upstream)",
        )
    if getCustomOp(node).get_nodeattr("binaryXnorMode"):
        raise A2QFlowError(f"{node.name} is a binary XNOR layer", "a2qflow sizes integer layers")
    return bounds.exact_accumulator_range(integer_weights(model, node), int(idt.min()),
                                          int(idt.max()))


def read_certified(model: ModelWrapper) -> list[dict[str, Any]]:
    raw = model.get_metadata_prop(CERTIFIED_KEY)
    return json.loads(raw) if raw else []


def execute_qonnx(model: ModelWrapper, x: np.ndarray) -> np.ndarray:
    """Run samples one at a time through a QONNX graph (the export has batch size 1)."""
    from qonnx.core.onnx_exec import execute_onnx

    iname, oname = model.graph.input[0].name, model.graph.output[0].name
    return np.concatenate([execute_onnx(model, {iname: x[i:i + 1]})[oname] for i in range(len(x))])


def activation_quant_nodes(model: ModelWrapper) -> list[onnx.NodeProto]:
    """The ``Quant`` nodes on activations (their input is computed, not an initializer), in
    graph order."""
    return [n for n in model.graph.node
            if n.op_type == "Quant" and model.get_initializer(n.input[0]) is None]


# How close (in LSBs) to a rounding boundary an activation must sit for float summation order
# (or FINN's thresholds, which round a tie up where QONNX's Quant rounds it to even) alone to
# round it differently in two executions of the same network.
TIE_WINDOW = 1e-3


def activation_trace(model: ModelWrapper, x: np.ndarray
                     ) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """One sample through a QONNX graph: each activation ``Quant``'s integers and its input in
    LSBs (``input / scale + zero_point``), in graph order."""
    from qonnx.core.onnx_exec import execute_onnx

    context = execute_onnx(model, {model.graph.input[0].name: x}, return_full_exec_context=True)
    integers, inputs = [], []
    for node in activation_quant_nodes(model):
        scale = model.get_initializer(node.input[1])
        zero_point = model.get_initializer(node.input[2])
        integers.append(np.rint(context[node.output[0]] / scale + zero_point))
        inputs.append(context[node.input[0]] / scale + zero_point)
    return integers, inputs


def tie_divergence(integers: list[np.ndarray], inputs: list[np.ndarray],
                   other: list[np.ndarray]) -> dict[str, Any] | None:
    """Whether two executions of one sample part only through a rounding tie: at the first
    activation where ``other``'s integers differ from ``integers``, every differing element is
    one LSB apart and its input (``inputs``, in LSBs, from the first execution) sits within
    ``TIE_WINDOW`` of a rounding boundary. Returns that activation's index and the count of
    elements; None when the executions do not diverge so (or have other layouts)."""
    if len(integers) != len(other):
        return None
    for k, (mine, pre, theirs) in enumerate(zip(integers, inputs, other, strict=True)):
        if mine.shape != theirs.shape:
            return None
        differ = mine != theirs
        if not differ.any():
            continue
        one_lsb = np.abs(mine[differ] - theirs[differ]) == 1
        at_tie = np.abs(pre[differ] - np.floor(pre[differ]) - 0.5) < TIE_WINDOW
        if one_lsb.all() and at_tie.all():
            return {"activation": k, "elements": int(differ.sum())}
        return None
    return None


# --- QONNX weight quantizers and the proof metadata -----------------------------------------


def weight_nodes(model: ModelWrapper) -> list[tuple[onnx.NodeProto, onnx.NodeProto]]:
    """(compute node, weight Quant node) pairs in graph order."""
    pairs = []
    for node in model.graph.node:
        if node.op_type in WEIGHT_OPS:
            producer = model.find_producer(node.input[1])
            if producer is not None and producer.op_type == "Quant":
                pairs.append((node, producer))
    return pairs


def quant_attrs(node: onnx.NodeProto) -> dict[str, Any]:
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def requantized_integers(model: ModelWrapper, quant_node: onnx.NodeProto) -> np.ndarray:
    """The integers a weight Quant node produces, in the initializer's layout."""
    w, scale, zero_point, bit_width = (model.get_initializer(i) for i in quant_node.input)
    attrs = quant_attrs(quant_node)
    rounding = attrs.get("rounding_mode", b"ROUND")
    rounding = rounding.decode() if isinstance(rounding, bytes) else rounding
    from qonnx.custom_op.general.quant import quant

    out = quant(w, scale, zero_point, bit_width, signed=attrs.get("signed", 1),
                narrow=attrs.get("narrow", 0), rounding_mode=rounding)
    return np.round(out / scale + zero_point).astype(np.int64)


def set_proof_metadata(model: ModelWrapper, key: str, value: str) -> None:
    """Write a proof record at graph level (what qonnx and FINN carry through their passes) and
    at model level (what onnxruntime's ``custom_metadata_map`` and Netron show)."""
    model.set_metadata_prop(key, value)
    entry = next((p for p in model.model.metadata_props if p.key == key), None)
    if entry is None:
        entry = model.model.metadata_props.add()
        entry.key = key
    entry.value = value
