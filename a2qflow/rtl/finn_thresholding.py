"""FINN's own RTL for a thresholding layer: ``Thresholding_rtl`` (finn-rtllib ``thresholding``).

FINN generates the wrapper and per-stage threshold memories (:mod:`a2qflow.rtl.finn_rtl`
for what follows); synthesis measures FINN's wrapper. The layer comes from a compiled MVAU's
fused thresholds (:func:`from_mvau`): the split FINN's RTL needs, since its MVU cannot fuse
them.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from qonnx.core.datatype import DataType
from qonnx.core.modelwrapper import ModelWrapper

from a2qflow.errors import A2QFlowError
from a2qflow.graph import integer_array
from a2qflow.rtl.finn_rtl import FinnRtl, finn_codegen, render_adapter
from a2qflow.rtl.finn_rtllib import copy_sources
from a2qflow.rtl.sim import Port, finn_tensors
from a2qflow.tools.yosys import SlangRead

BACKEND = "FINN RTL Thresholding"
FINN_OP = "Thresholding_rtl"
# the wrapper's ports a2qflow does not use: run-time threshold writes, threshold sets
TIED_OFF = ("s_axilite_AWVALID", "s_axilite_AWADDR", "s_axilite_WVALID", "s_axilite_WDATA",
            "s_axilite_WSTRB", "s_axilite_BREADY", "s_axilite_ARVALID", "s_axilite_ARADDR",
            "s_axilite_RREADY", "in1_V_TVALID", "in1_V_TDATA")
LEFT_OPEN = ("s_axilite_AWREADY", "s_axilite_WREADY", "s_axilite_BVALID", "s_axilite_BRESP",
             "s_axilite_ARREADY", "s_axilite_RVALID", "s_axilite_RDATA", "s_axilite_RRESP",
             "in1_V_TREADY")


@dataclass(frozen=True)
class ThresholdingLayer:
    """A multi-threshold activation: ``out[c] = act_val + #{t in thresholds[c] : x[c] >= t}``."""

    name: str
    thresholds: np.ndarray  # (channels, steps) integers
    input_type: str  # FINN DataType names
    threshold_type: str
    output_type: str
    act_val: int
    pe: int

    @property
    def channels(self) -> int:
        return int(self.thresholds.shape[0])

    def reference(self, x: np.ndarray) -> np.ndarray:
        """numpy: the count of thresholds each input reaches, plus ``act_val``."""
        x = np.asarray(x, dtype=np.int64)[:, :, None]
        return (x >= self.thresholds.astype(np.int64)[None]).sum(axis=2) + self.act_val


def from_mvau(model: ModelWrapper, node_name: str, pe: int | None = None) -> ThresholdingLayer:
    """The fused thresholds of a compiled MVAU as a layer of their own, on its accumulator
    (its certified ``accDataType``); ``pe`` defaults to the MVAU's own."""
    from qonnx.custom_op.registry import getCustomOp

    node = model.get_node_from_name(node_name)
    if node is None or not node.op_type.startswith("MVAU") or len(node.input) < 3:
        raise A2QFlowError(f"{node_name} is not an MVAU with thresholds in this model",
                           "pick an MVAU whose activation FINN fused (noActivation=0)")
    inst = getCustomOp(node)
    thresholds = integer_array(model.get_initializer(node.input[2]), f"{node_name} thresholds")
    pe = int(inst.get_nodeattr("PE")) if pe is None else pe
    if thresholds.shape[0] % pe:
        raise A2QFlowError(f"PE={pe} does not divide {node_name}'s {thresholds.shape[0]} "
                           "channels", "choose a PE that divides the channel count")
    return ThresholdingLayer(
        name=f"{node_name}_thresholds", thresholds=thresholds,
        input_type=inst.get_nodeattr("accDataType"),
        threshold_type=model.get_tensor_datatype(node.input[2]).name,
        output_type=inst.get_nodeattr("outputDataType"),
        act_val=int(inst.get_nodeattr("ActVal")), pe=pe)


def finn_model(layer: ThresholdingLayer) -> ModelWrapper:
    """The layer as FINN's generic ``Thresholding`` node, RTL preferred."""
    from onnx import TensorProto, helper

    channels, steps = layer.thresholds.shape
    node = helper.make_node(
        "Thresholding", ["inp", "thresh"], ["out"], name="Thresholding_0",
        domain="finn.custom_op.fpgadataflow", backend="fpgadataflow", NumChannels=channels,
        PE=layer.pe, numSteps=steps, inputDataType=layer.input_type,
        weightDataType=layer.threshold_type, outputDataType=layer.output_type,
        ActVal=layer.act_val, preferred_impl_style="rtl")
    graph = helper.make_graph(
        [node], layer.name,
        [helper.make_tensor_value_info("inp", TensorProto.FLOAT, [1, channels])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, channels])])
    model = ModelWrapper(helper.make_model(graph))
    model.set_initializer("thresh", layer.thresholds.astype(np.float32))
    model.set_tensor_datatype("inp", DataType[layer.input_type])
    model.set_tensor_datatype("thresh", DataType[layer.threshold_type])
    model.set_tensor_datatype("out", DataType[layer.output_type])
    return model


def generate(layer: ThresholdingLayer, directory: Path, fpgapart: str,
             clock_ns: float) -> FinnRtl:
    """FINN's code generation for the layer, then the sources copied (patched) into
    ``directory``; FINN's own output stays in ``directory/finn``."""
    from finn.transformation.fpgadataflow.specialize_layers import SpecializeLayers

    directory = Path(directory).resolve()
    model = finn_model(layer).transform(SpecializeLayers(fpgapart))
    node = model.graph.node[0]
    if node.op_type != FINN_OP:
        raise A2QFlowError(f"FINN specialized {layer.name} to {node.op_type}, not {FINN_OP}",
                           "FINN's RTL thresholding needs integer inputs and thresholds")
    made = finn_codegen(model, directory, fpgapart, clock_ns)
    inst, generated = made.inst, made.generated
    copied = copy_sources(made.library, directory)
    codegen = made.codegen
    data = sorted(codegen.glob(f"{node.name}_threshs_*.dat"))
    for f in (*generated, *data):
        shutil.copyfile(f, directory / f.name)
    finn_top = inst.get_verilog_top_module_name()
    idt, odt = DataType[layer.input_type], DataType[layer.output_type]
    inp = Port(layer.pe, idt.bitwidth(), idt.signed(), layer.channels)
    out = Port(layer.pe, int(inst.get_outstream_width()) // layer.pe, odt.signed(),
               layer.channels)
    top = f"a2q_{finn_top.lower()}"
    (directory / f"{top}.v").write_text(render_adapter(
        top, finn_top, BACKEND, inp, out, inst.get_instream_width_padded(),
        inst.get_outstream_width_padded(), tie_inputs=TIED_OFF, open_outputs=LEFT_OPEN))
    finn_sources = (*(c.name for c in copied), *(f.name for f in generated))
    return FinnRtl(directory=directory, backend=BACKEND, top=top, finn_top=finn_top,
                   sources=(*finn_sources, f"{top}.v"), data_files=tuple(f.name for f in data),
                   reads=(SlangRead(finn_sources, top=finn_top),), synth_top=finn_top,
                   inp=inp, out=out)


def edge_vectors(layer: ThresholdingLayer, n_random: int = 32, seed: int = 0) -> np.ndarray:
    """Inputs at every threshold and one either side (each channel its own), the input
    type's extremes, and random values: ``(n, channels)``."""
    idt = DataType[layer.input_type]
    lo, hi = int(idt.min()), int(idt.max())
    t = layer.thresholds.astype(np.int64)
    edges = [t.T + d for d in (-1, 0, 1)]  # (steps, channels) each
    rows = np.concatenate([np.stack(edges, axis=1).reshape(-1, layer.channels),
                           np.full((1, layer.channels), lo), np.full((1, layer.channels), hi),
                           np.random.default_rng(seed).integers(lo, hi + 1,
                                                                (n_random, layer.channels))])
    return np.clip(rows, lo, hi)


def finn_reference(layer: ThresholdingLayer, x: np.ndarray) -> np.ndarray:
    """FINN's Python execution of the generic Thresholding node."""
    (out,) = finn_tensors(finn_model(layer), np.asarray(x, dtype=np.float32), ["out"])
    return out
