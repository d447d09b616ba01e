"""FINN's own RTL FIFO: ``StreamingFIFO_rtl`` (finn-rtllib ``fifo``), for the streams between
layers. FINN generates its wrapper for a depth, a stream geometry and a ``ram_style``
(``distributed`` for deep FIFOs: with ``auto`` FINN writes a shift register that Yosys does not
map to SRLs). See :mod:`a2qflow.rtl.finn_rtl` for the shared steps.
"""

from __future__ import annotations

from pathlib import Path

from qonnx.core.datatype import DataType
from qonnx.core.modelwrapper import ModelWrapper

from a2qflow.errors import A2QFlowError
from a2qflow.rtl.finn_rtl import FinnRtl, finn_codegen, render_adapter
from a2qflow.rtl.finn_rtllib import copy_sources
from a2qflow.rtl.sim import Port
from a2qflow.tools.yosys import SlangRead

BACKEND = "FINN RTL FIFO"
FINN_OP = "StreamingFIFO_rtl"
LEFT_OPEN = ("count", "maxcount")  # occupancy monitors (FIFO sizing)


def fifo_model(channels: int, pe: int, datatype: str, depth: int,
               ram_style: str = "distributed") -> ModelWrapper:
    """FINN's generic ``StreamingFIFO`` for a stream of ``channels`` values, ``pe`` per beat."""
    from onnx import TensorProto, helper

    if pe < 1 or channels % pe:
        raise A2QFlowError(f"PE={pe} does not divide {channels} channels",
                           "choose a PE that divides the channel count")
    node = helper.make_node(
        "StreamingFIFO", ["inp"], ["out"], name="StreamingFIFO_0",
        domain="finn.custom_op.fpgadataflow", backend="fpgadataflow", depth=depth,
        folded_shape=[1, channels // pe, pe], normal_shape=[1, channels], dataType=datatype,
        ram_style=ram_style, preferred_impl_style="rtl")
    graph = helper.make_graph(
        [node], "fifo", [helper.make_tensor_value_info("inp", TensorProto.FLOAT, [1, channels])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, channels])])
    model = ModelWrapper(helper.make_model(graph))
    for name in ("inp", "out"):
        model.set_tensor_datatype(name, DataType[datatype])
    return model


def generate(model: ModelWrapper, directory: Path, fpgapart: str, clock_ns: float) -> FinnRtl:
    """FINN's code generation for the one-node FIFO ``model``, sources copied (patched) into
    ``directory``."""
    from finn.transformation.fpgadataflow.specialize_layers import SpecializeLayers

    directory = Path(directory).resolve()
    model = model.transform(SpecializeLayers(fpgapart))
    if model.graph.node[0].op_type != FINN_OP:
        raise A2QFlowError(f"FINN specialized the FIFO to {model.graph.node[0].op_type}",
                           f"FINN's RTL FIFO is {FINN_OP} (preferred_impl_style rtl)")
    made = finn_codegen(model, directory, fpgapart, clock_ns)
    inst = made.inst
    library = [c.name for c in copy_sources(made.library, directory)]
    (wrapper,) = made.generated
    (directory / wrapper.name).write_bytes(wrapper.read_bytes())
    dt = DataType[inst.get_nodeattr("dataType")]
    channels = inst.get_nodeattr("normal_shape")[-1]
    pe = inst.get_nodeattr("folded_shape")[-1]
    port = Port(pe, dt.bitwidth(), dt.signed(), channels)
    finn_top = inst.get_verilog_top_module_name()
    top = f"a2q_{finn_top.lower()}"
    (directory / f"{top}.v").write_text(render_adapter(
        top, finn_top, BACKEND, port, port, inst.get_instream_width_padded(),
        inst.get_outstream_width_padded(), open_outputs=LEFT_OPEN))
    finn_sources = (*library, wrapper.name)
    return FinnRtl(directory=directory, backend=BACKEND, top=top, finn_top=finn_top,
                   sources=(*finn_sources, f"{top}.v"), data_files=(),
                   reads=(SlangRead(finn_sources, top=finn_top),), synth_top=finn_top,
                   inp=port, out=port)
