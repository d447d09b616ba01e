"""FINN's own RTL for the weightless stream layers: ``StreamingFIFO_rtl`` (finn-rtllib ``fifo``),
``StreamingDataWidthConverter_rtl`` (``dwc``) and the sliding-window generator
``ConvolutionInputGenerator_rtl`` (``swg``, im2col order). FINN generates each from a one-node
model; a FIFO's ``ram_style`` picks its memory (``distributed`` for deep FIFOs: with ``auto``
FINN writes a shift register that Yosys does not map to SRLs). See :mod:`a2qflow.rtl.finn_rtl`
for the shared steps.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from qonnx.core.datatype import DataType
from qonnx.core.modelwrapper import ModelWrapper

from a2qflow.errors import A2QFlowError
from a2qflow.rtl.finn_rtl import FinnRtl, finn_codegen, render_adapter
from a2qflow.rtl.finn_rtllib import copy_sources
from a2qflow.rtl.sim import Port
from a2qflow.tools.yosys import SLANG_USE_BEFORE_DECLARE, SlangRead

BACKENDS = {"StreamingFIFO_rtl": "FINN RTL FIFO", "StreamingDataWidthConverter_rtl": "FINN RTL DWC",
            "ConvolutionInputGenerator_rtl": "FINN RTL SWG"}
LEFT_OPEN = {"StreamingFIFO_rtl": ("count", "maxcount")}  # occupancy monitors (FIFO sizing)
# the SWG wrapper uses its parameters in its port list before declaring them
SLANG_OPTIONS = {"ConvolutionInputGenerator_rtl": SLANG_USE_BEFORE_DECLARE}


def _one_node(op: str, channels: int, datatype: str, in_shape: list[int] | None = None,
              out_shape: list[int] | None = None, name: str | None = None,
              **attrs) -> ModelWrapper:
    """``name`` names the node and so FINN's generated modules (unique within a design)."""
    from onnx import TensorProto, helper

    node = helper.make_node(op, ["inp"], ["out"], name=name or f"{op}_0",
                            domain="finn.custom_op.fpgadataflow", backend="fpgadataflow",
                            preferred_impl_style="rtl", **attrs)
    graph = helper.make_graph(
        [node], op,
        [helper.make_tensor_value_info("inp", TensorProto.FLOAT, in_shape or [1, channels])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, out_shape or [1, channels])])
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
               ram_style: str = "distributed", name: str | None = None) -> ModelWrapper:
    """FINN's generic ``StreamingFIFO`` for ``channels`` values, ``pe`` per beat."""
    return _one_node("StreamingFIFO", channels, datatype, name=name, depth=depth,
                     folded_shape=[1, _beats(channels, pe), pe], normal_shape=[1, channels],
                     dataType=datatype, ram_style=ram_style)


def dwc_model(channels: int, in_elems: int, out_elems: int, datatype: str,
              name: str | None = None) -> ModelWrapper:
    """FINN's generic ``StreamingDataWidthConverter`` from ``in_elems`` to ``out_elems`` values
    per beat."""
    for elems in (in_elems, out_elems):
        _beats(channels, elems)
    bits = DataType[datatype].bitwidth()
    return _one_node("StreamingDataWidthConverter", channels, datatype, name=name,
                     inShape=[1, channels],
                     outShape=[1, channels], inWidth=in_elems * bits,
                     outWidth=out_elems * bits, dataType=datatype)


def swg_model(channels: int, image: int, kernel: int, stride: int, simd: int,
              datatype: str) -> ModelWrapper:
    """FINN's generic ``ConvolutionInputGenerator`` (a sliding window, im2col order) over a
    square ``image`` x ``image`` x ``channels`` input, ``simd`` channels per beat."""
    _beats(channels, simd)
    if kernel > image or (image - kernel) % stride:
        raise A2QFlowError(f"a {kernel}x{kernel} window at stride {stride} does not tile a "
                           f"{image}x{image} image", "choose kernel, stride and image that fit")
    out = (image - kernel) // stride + 1
    return _one_node("ConvolutionInputGenerator", channels, datatype,
                     in_shape=[1, image, image, channels],
                     out_shape=[1, out, out, kernel * kernel * channels],
                     ConvKernelDim=[kernel, kernel], IFMChannels=channels, IFMDim=[image, image],
                     OFMDim=[out, out], SIMD=simd, Stride=[stride, stride], Dilation=[1, 1],
                     inputDataType=datatype, outputDataType=datatype, depthwise=0)


def generate(model: ModelWrapper, directory: Path, fpgapart: str, clock_ns: float) -> FinnRtl:
    """FINN's code generation for the one-node stream ``model`` (FIFO or DWC), sources copied
    (patched) into ``directory``."""
    from finn.transformation.fpgadataflow.specialize_layers import SpecializeLayers

    directory = Path(directory).resolve()
    name = model.graph.node[0].name
    model = model.transform(SpecializeLayers(fpgapart))
    model.graph.node[0].name = name  # SpecializeLayers renames nodes; FINN's modules take it
    op = model.graph.node[0].op_type
    if op not in BACKENDS:
        raise A2QFlowError(f"FINN specialized the stream layer to {op}, not its RTL",
                           f"FINN's RTL stream layers: {', '.join(BACKENDS)}")
    made = finn_codegen(model, directory, fpgapart, clock_ns)
    inst = made.inst
    library = [c.name for c in copy_sources(made.library, directory)]
    for f in made.generated:
        (directory / f.name).write_bytes(f.read_bytes())
    dt = inst.get_input_datatype()
    node = model.graph.node[0]
    inp = Port(inst.get_folded_input_shape()[-1], dt.bitwidth(), dt.signed(),
               int(np.prod(model.get_tensor_shape(node.input[0])[1:])))
    out = Port(inst.get_folded_output_shape()[-1], dt.bitwidth(), dt.signed(),
               int(np.prod(model.get_tensor_shape(node.output[0])[1:])))
    finn_top = inst.get_verilog_top_module_name()
    top = f"a2q_{finn_top.lower()}"
    (directory / f"{top}.v").write_text(render_adapter(
        top, finn_top, BACKENDS[op], inp, out, inst.get_instream_width_padded(),
        inst.get_outstream_width_padded(), open_outputs=LEFT_OPEN.get(op, ())))
    finn_sources = (*library, *(f.name for f in made.generated))
    return FinnRtl(directory=directory, backend=BACKENDS[op], top=top, finn_top=finn_top,
                   sources=(*finn_sources, f"{top}.v"), data_files=(),
                   reads=(SlangRead(finn_sources, SLANG_OPTIONS.get(op, ()), finn_top),),
                   synth_top=finn_top, inp=inp, out=out)
