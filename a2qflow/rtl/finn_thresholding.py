"""FINN's own RTL for a thresholding layer: ``Thresholding_rtl`` (finn-rtllib ``thresholding``).

FINN generates the layer (its wrapper and per-stage threshold memories, through ``PrepareIP``);
a2qflow copies the finn-rtllib sources it uses, patched (:mod:`a2qflow.rtl.finn_rtllib`), puts
a2qflow's stream ports around it (``hls/verilog/finn_rtl_adapter.v.j2``), simulates it with
Verilator against FINN's execution of the same layer and synthesizes FINN's wrapper with
Yosys ``read_slang``. The layer comes from a compiled MVAU's fused thresholds
(:func:`from_mvau`): the split FINN's RTL needs, since its MVU cannot fuse them.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from qonnx.core.datatype import DataType
from qonnx.core.modelwrapper import ModelWrapper

from a2qflow.errors import A2QFlowError
from a2qflow.finn_env import finn_session
from a2qflow.graph import integer_array
from a2qflow.rtl.finn_rtllib import copy_sources, rtllib_root
from a2qflow.rtl.generate import environment
from a2qflow.rtl.sim import Group, Port, finn_tensors, simulate
from a2qflow.tools.verilator import Verilator
from a2qflow.tools.yosys import SlangRead, Yosys

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


@dataclass(frozen=True)
class FinnRtl:
    """FINN's RTL for one layer in ``directory``, ready for Verilator and Yosys."""

    directory: Path
    top: str  # a2qflow's stream-port adapter
    finn_top: str  # FINN's generated wrapper
    sources: tuple[str, ...]  # file names in ``directory``, in compile order
    data_files: tuple[str, ...]  # what the sources' $readmemh read, relative to the run
    inp: Port
    out: Port

    def copy_to(self, work: Path, with_adapter: bool = True) -> tuple[str, ...]:
        """Copy sources and data files into ``work``; the source names."""
        work.mkdir(parents=True, exist_ok=True)
        sources = self.sources if with_adapter else self.sources[:-1]
        for name in (*sources, *self.data_files):
            shutil.copyfile(self.directory / name, work / name)
        return sources


def generate(layer: ThresholdingLayer, directory: Path, fpgapart: str,
             clock_ns: float) -> FinnRtl:
    """FINN's code generation for the layer, then the sources copied (patched) into
    ``directory``; FINN's own output stays in ``directory/finn``."""
    from finn.transformation.fpgadataflow.prepare_ip import PrepareIP
    from finn.transformation.fpgadataflow.specialize_layers import SpecializeLayers
    from qonnx.custom_op.registry import getCustomOp

    directory = Path(directory).resolve()
    model = finn_model(layer).transform(SpecializeLayers(fpgapart))
    node = model.graph.node[0]
    if node.op_type != FINN_OP:
        raise A2QFlowError(f"FINN specialized {layer.name} to {node.op_type}, not {FINN_OP}",
                           "FINN's RTL thresholding needs integer inputs and thresholds")
    with finn_session(directory / "finn"):
        model = model.transform(PrepareIP(fpgapart, clock_ns))
        inst = getCustomOp(model.graph.node[0])
        files = [Path(f) for f in inst.get_rtl_file_list(abspath=True)]
    root = rtllib_root().resolve()
    library = [f for f in files if f.resolve().is_relative_to(root)]
    generated = [f for f in files if f not in library]
    copied = copy_sources(library, directory)
    codegen = Path(inst.get_nodeattr("code_gen_dir_ipgen"))
    data = sorted(codegen.glob(f"{node.name}_threshs_*.dat"))
    for f in (*generated, *data):
        shutil.copyfile(f, directory / f.name)
    finn_top = inst.get_verilog_top_module_name()
    idt, odt = DataType[layer.input_type], DataType[layer.output_type]
    inp = Port(layer.pe, idt.bitwidth(), idt.signed(), layer.channels)
    out_bits = int(inst.get_outstream_width()) // layer.pe
    out = Port(layer.pe, out_bits, odt.signed(), layer.channels)
    top = f"a2q_{finn_top.lower()}"
    adapter = environment().get_template("finn_rtl_adapter.v.j2").render(
        module=top, finn_module=finn_top, backend=BACKEND, tie_inputs=TIED_OFF,
        open_outputs=LEFT_OPEN,
        in_port="in0_V", out_port="out0_V", in_width=inp.width,
        in_axi_width=inst.get_instream_width_padded(), out_width=out.width,
        out_axi_width=inst.get_outstream_width_padded())
    (directory / f"{top}.v").write_text(adapter)
    sources = (*(c.name for c in copied), *(f.name for f in generated), f"{top}.v")
    return FinnRtl(directory, top, finn_top, sources, tuple(f.name for f in data), inp, out)


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


def simulate_layer(rtl: FinnRtl, vectors: np.ndarray, expected: np.ndarray, work: Path,
                   verilator: Verilator) -> dict[str, Any]:
    """Verilator, with random input gaps and output back-pressure; mismatches against
    ``expected``."""
    sources = rtl.copy_to(work)
    group = Group(label=rtl.top, module=rtl.top, inp=rtl.inp, out=rtl.out,
                  vectors=np.asarray(vectors, dtype=np.int64),
                  expected=np.asarray(expected, dtype=np.int64), stress=True)
    texts = {name: (work / name).read_text() for name in sources}
    (result,), seconds = simulate([group], texts, work, verilator)
    return {"backend": BACKEND, "outputs": result.outputs, **result.compare(group.expected),
            **seconds}


def synthesize(rtl: FinnRtl, work: Path, yosys: Yosys, family: str = "xc7",
               timeout_s: float | None = None) -> dict[str, Any]:
    """Yosys ``synth_xilinx`` of FINN's wrapper, read through ``read_slang``."""
    sources = rtl.copy_to(work, with_adapter=False)
    result = yosys.synth_slang([SlangRead(sources, top=rtl.finn_top)], rtl.finn_top, family,
                               work, timeout_s=timeout_s)
    return {**result.to_dict(), "backend": BACKEND,
            "label": f"{yosys.label} estimate, {BACKEND}"}
