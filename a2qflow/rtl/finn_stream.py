"""FINN's own RTL for the streams between layers: ``StreamingFIFO_rtl`` (finn-rtllib ``fifo``)
and ``StreamingDataWidthConverter_rtl`` (``dwc``). FINN generates each wrapper from a one-node
model; a FIFO's ``ram_style`` picks its memory (``distributed`` for deep FIFOs: with ``auto``
FINN writes a shift register that Yosys does not map to SRLs). See :mod:`a2qflow.rtl.finn_rtl`
for the shared steps.
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

BACKENDS = {"StreamingFIFO_rtl": "FINN RTL FIFO", "StreamingDataWidthConverter_rtl": "FINN RTL DWC"}
LEFT_OPEN = {"StreamingFIFO_rtl": ("count", "maxcount")}  # occupancy monitors (FIFO sizing)


def _one_node(op: str, channels: int, datatype: str, **attrs) -> ModelWrapper:
    from onnx import TensorProto, helper

    node = helper.make_node(op, ["inp"], ["out"], name=f"{op}_0",
                            domain="finn.custom_op.fpgadataflow", backend="fpgadataflow",
                            preferred_impl_style="rtl", **attrs)
    graph = helper.make_graph(
        [node], op, [helper.make_tensor_value_info("inp", TensorProto.FLOAT, [1, channels])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, channels])])
    model = ModelWrapper(helper.make_model(graph))
    for name in ("inp", "out"):
        model.set_tensor_datatype(name, DataType[datatype])
    return model


def _beats(channels: int, elems: int) -> int:
    if elems < 1 or channels % elems:
        raise A2QFlowError(f"{elems} values per beat do not divide {channels} channels",
                           "choose a parallelism that divides the channel count")
    return channels // elems


def fifo_model(channels: int, pe: int, datatype: str, depth: int,
               ram_style: str = "distributed") -> ModelWrapper:
    """FINN's generic ``StreamingFIFO`` for ``channels`` values, ``pe`` per beat."""
    return _one_node("StreamingFIFO", channels, datatype, depth=depth,
                     folded_shape=[1, _beats(channels, pe), pe], normal_shape=[1, channels],
                     dataType=datatype, ram_style=ram_style)


def dwc_model(channels: int, in_elems: int, out_elems: int, datatype: str) -> ModelWrapper:
    """FINN's generic ``StreamingDataWidthConverter`` from ``in_elems`` to ``out_elems`` values
    per beat."""
    for elems in (in_elems, out_elems):
        _beats(channels, elems)
    bits = DataType[datatype].bitwidth()
    return _one_node("StreamingDataWidthConverter", channels, datatype, inShape=[1, channels],
                     outShape=[1, channels], inWidth=in_elems * bits,
                     outWidth=out_elems * bits, dataType=datatype)


def generate(model: ModelWrapper, directory: Path, fpgapart: str, clock_ns: float) -> FinnRtl:
    """FINN's code generation for the one-node stream ``model`` (FIFO or DWC), sources copied
    (patched) into ``directory``."""
    from finn.transformation.fpgadataflow.specialize_layers import SpecializeLayers

    directory = Path(directory).resolve()
    model = model.transform(SpecializeLayers(fpgapart))
    op = model.graph.node[0].op_type
    if op not in BACKENDS:
        raise A2QFlowError(f"FINN specialized the stream layer to {op}, not its RTL",
                           f"FINN's RTL stream layers: {', '.join(BACKENDS)}")
    made = finn_codegen(model, directory, fpgapart, clock_ns)
    inst = made.inst
    library = [c.name for c in copy_sources(made.library, directory)]
    (wrapper,) = made.generated
    (directory / wrapper.name).write_bytes(wrapper.read_bytes())
    dt = inst.get_input_datatype()
    channels = model.get_tensor_shape("inp")[-1]
    inp = Port(inst.get_folded_input_shape()[-1], dt.bitwidth(), dt.signed(), channels)
    out = Port(inst.get_folded_output_shape()[-1], dt.bitwidth(), dt.signed(), channels)
    finn_top = inst.get_verilog_top_module_name()
    top = f"a2q_{finn_top.lower()}"
    (directory / f"{top}.v").write_text(render_adapter(
        top, finn_top, BACKENDS[op], inp, out, inst.get_instream_width_padded(),
        inst.get_outstream_width_padded(), open_outputs=LEFT_OPEN.get(op, ())))
    finn_sources = (*library, wrapper.name)
    return FinnRtl(directory=directory, backend=BACKENDS[op], top=top, finn_top=finn_top,
                   sources=(*finn_sources, f"{top}.v"), data_files=(),
                   reads=(SlangRead(finn_sources, top=finn_top),), synth_top=finn_top,
                   inp=inp, out=out)
