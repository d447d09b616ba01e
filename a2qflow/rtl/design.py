"""Read the folded FINN HW graph into small typed layer records the Verilog generator renders.

The open backend starts at the first HW layer with integer inputs: FINN's leading
float-input Thresholding (the input quantizer) and any reshapes before it, and the scaling
after the last MVAU, stay on the host, exactly as they stay outside FINN's dataflow partition.
Widths come from the folded graph and are checked against ``certificate.json``, so the
hardware uses the certified accumulator, not FINN's default 32 bits.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from qonnx.core.datatype import DataType
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.custom_op.registry import getCustomOp

from a2qflow import bounds, layout
from a2qflow.config import RtlBackend
from a2qflow.errors import A2QFlowError
from a2qflow.validate import enum_value

LUT_PRODUCT_BITS = 4  # resType "auto": products with an operand this narrow go to LUTs
HW_DOMAIN = "finn.custom_op.fpgadataflow"


@dataclass(frozen=True)
class MVAULayer:
    """One matrix-vector-activation unit, folded: SIMD inputs x PE outputs per cycle.

    ``weights`` is ``(MH, MW)`` (channel, input); ``thresholds`` is ``(MH, steps)`` or None
    for a layer that outputs its accumulator. ``acc_bits`` is the accumulator and adder-tree
    width; ``register_bits`` the comparator width (thresholds clipped to the reachable range
    can need one bit more than the accumulator).
    """

    name: str
    mw: int
    mh: int
    simd: int
    pe: int
    input_bits: int
    input_signed: bool
    weight_bits: int
    acc_bits: int
    exact_bits: int
    register_bits: int
    output_bits: int
    output_signed: bool
    act_val: int
    weights: np.ndarray = dataclasses.field(repr=False, compare=False)
    thresholds: np.ndarray | None = dataclasses.field(repr=False, compare=False)
    in_tensor: str = ""
    out_tensor: str = ""
    res_type: str = "auto"  # FINN's resType for the products: "lut", "dsp" or "auto"
    ram_style: str = "auto"  # FINN's ram_style for the weights: "auto", "block", "distributed"
    ram_style_thresholds: str = "auto"  # FINN's ram_style_thresholds: the same three values
    # unrolled layers (SIMD = MW, PE = MH) only: who builds the adder graph, how wide its
    # nodes are ("exact" per node, or "uniform" at acc_bits), and by how many bits every
    # channel's root is narrowed (the negative control)
    generator: str = "a2qflow"
    widths: str = "exact"
    root_trim: int = 0
    finn_op: str = ""  # the op FINN specialized the node to (MVAU_hls, MVAU_rtl)
    preferred: str = ""  # the node's preferred_impl_style (folding JSON): "rtl", "hls" or ""
    backend: str = "own"  # "own": a2qflow's Verilog; "finn-rtl": FINN's RTL MVU + memstream

    @property
    def style(self) -> str:
        """``unrolled`` when FINN's folding asks for a whole vector per clock, else ``folded``."""
        return "unrolled" if self.simd == self.mw and self.pe == self.mh else "folded"

    @property
    def channel_bits(self) -> list[int]:
        """Each output channel's exact accumulator width (the layer's is their maximum)."""
        return bounds.channel_exact_bits(self.weights, self.input_bits, self.input_signed)

    @property
    def sf(self) -> int:
        """Synapse folds: input beats per vector."""
        return self.mw // self.simd

    @property
    def nf(self) -> int:
        """Neuron folds: output beats per vector."""
        return self.mh // self.pe

    @property
    def in_width(self) -> int:
        return self.simd * self.input_bits

    @property
    def out_width(self) -> int:
        return self.pe * self.output_bits

    # the stream geometry every block of the chain shares (see StreamBlock)
    kind = "mvau"

    @property
    def in_elems(self) -> int:
        return self.simd

    @property
    def out_elems(self) -> int:
        return self.pe

    @property
    def in_bits(self) -> int:
        return self.input_bits

    @property
    def out_bits(self) -> int:
        return self.output_bits

    @property
    def in_signed(self) -> bool:
        return self.input_signed

    @property
    def out_signed(self) -> bool:
        return self.output_signed

    @property
    def products_in_dsp(self) -> bool:
        """DSP48 products where FINN's resType asks for them; "auto" keeps narrow ones in LUTs."""
        if self.res_type == "auto":
            return min(self.input_bits, self.weight_bits) > LUT_PRODUCT_BITS
        return self.res_type == "dsp"

    @property
    def cycles(self) -> int:
        """Cycles per input vector at full rate (one SIMD x PE step per cycle)."""
        return self.sf * self.nf

    def at_width(self, bits: int) -> MVAULayer:
        """The same layer with a ``bits``-wide accumulator (e.g. 32 for the comparison).

        Thresholds keep their values; comparators get ``bits`` or what the thresholds need.
        """
        register = bits
        if self.thresholds is not None:
            register = max(bits, bounds.signed_bits_for_range(int(self.thresholds.min()),
                                                              int(self.thresholds.max())))
        out_bits = self.output_bits if self.thresholds is not None else bits
        return dataclasses.replace(self, acc_bits=bits, register_bits=register,
                                   output_bits=out_bits, widths="uniform")

    def accumulator_probe(self, bits: int) -> MVAULayer:
        """The layer without its activation, outputting its ``bits``-wide accumulator.

        Used to drive the worst-case vectors through the accumulator itself (and, one bit
        narrower than certified, as the negative control)."""
        return dataclasses.replace(self, thresholds=None, acc_bits=bits, register_bits=bits,
                                   output_bits=bits, output_signed=True, act_val=0)


@dataclass(frozen=True)
class StreamBlock:
    """A weightless layer of a convnet's chain, values passed through unchanged in type.

    ``window``: FINN's sliding-window generator (``ConvolutionInputGenerator``, im2col order),
    built from FINN's RTL. ``maxpool``: FINN's depthwise window + ``Pool`` (MaxPool) pair,
    which FINN ships no RTL for, as a2qflow's one max-pool block (:mod:`a2qflow.rtl.maxpool`).
    """

    name: str  # the FINN node that names the block: the window, or the max-pool's Pool
    kind: str  # "window" | "maxpool"
    nodes: tuple[str, ...]  # the FINN nodes it implements, in order
    in_elems: int
    out_elems: int
    bits: int
    signed: bool

    @property
    def in_bits(self) -> int:
        return self.bits

    out_bits = in_bits

    @property
    def in_signed(self) -> bool:
        return self.signed

    out_signed = in_signed

    @property
    def in_width(self) -> int:
        return self.in_elems * self.bits

    @property
    def out_width(self) -> int:
        return self.out_elems * self.bits


Block = MVAULayer | StreamBlock


@dataclass(frozen=True)
class Design:
    """The dataflow chain the open backend implements, plus what stays on the host.

    ``blocks`` is the whole chain in stream order; ``layers`` its MVAUs (an MLP's chain is
    MVAUs only). ``in_length`` / ``out_length``: values per image at the chain's ends."""

    layers: list[MVAULayer]
    in_tensor: str
    out_tensor: str
    host_before: list[str]  # node names executed before the accelerator
    host_after: list[str]
    folded_model: Path
    hw_model: Path
    blocks: list[Block] = dataclasses.field(default_factory=list)
    in_length: int = 0
    out_length: int = 0
    glue_backend: str = "own"  # FIFOs and width converters: "own" or "finn-rtl"

    def __post_init__(self) -> None:
        if not self.blocks:
            object.__setattr__(self, "blocks", list(self.layers))
        if not self.in_length:
            object.__setattr__(self, "in_length", self.layers[0].mw)
        if not self.out_length:
            object.__setattr__(self, "out_length", self.layers[-1].mh)

    @property
    def in_width(self) -> int:
        return self.blocks[0].in_width

    @property
    def out_width(self) -> int:
        return self.blocks[-1].out_width

    @property
    def stream_blocks(self) -> list[StreamBlock]:
        return [b for b in self.blocks if isinstance(b, StreamBlock)]

    def map_layers(self, change: Callable[[MVAULayer], MVAULayer]) -> Design:
        """The same chain with every MVAU replaced by ``change(layer)``."""
        blocks = [change(b) if isinstance(b, MVAULayer) else b for b in self.blocks]
        return dataclasses.replace(self, blocks=blocks,
                                   layers=[b for b in blocks if isinstance(b, MVAULayer)])

    def at_width(self, bits: int | None) -> Design:
        if bits is None:
            return self
        return self.map_layers(lambda lay: lay.at_width(bits))

    def with_backend(self, backend: str | RtlBackend, finn_mvu_part: bool = True) -> Design:
        """``finn-rtl``: FINN's RTL wherever finn-rtllib has the layer at this folding (the
        MVAUs FINN specialized to ``MVAU_rtl``, unless fully unrolled; FIFOs and width
        converters); ``own``: a2qflow's Verilog wherever a2qflow has the block; ``auto``: FINN's
        MVU where ``finn-rtl`` would use it and the part suits it (``finn_mvu_part``: a2qflow
        builds FINN's MVU for DSP48E1 and DSP48E2 parts), a2qflow's Verilog elsewhere and for
        the glue (FINN's FIFO is a shift register Yosys does not map to SRLs). Sliding windows are
        FINN's and max-pools a2qflow's either way. An MVAU's own ``preferred_impl_style`` (set
        per layer in the folding JSON, as in FINN) overrides: ``rtl`` asks for FINN's RTL MVU,
        ``hls`` for a2qflow's Verilog (the open flow's stand-in for FINN's HLS)."""
        backend = enum_value(RtlBackend, backend, "backend").value
        return dataclasses.replace(
            self.map_layers(lambda lay: _choose(lay, backend, finn_mvu_part)),
            glue_backend="finn-rtl" if backend == "finn-rtl" else "own")

    def with_generator(self, generator: str) -> Design:
        """Unrolled layers built by ``generator`` (``a2qflow`` or ``da4ml``)."""
        return self.map_layers(lambda lay: dataclasses.replace(lay, generator=generator))


def _choose(lay: MVAULayer, backend: str, finn_mvu_part: bool) -> MVAULayer:
    """The backend of one MVAU: its ``preferred_impl_style``, else the build's."""
    fits = lay.finn_op == "MVAU_rtl" and lay.style == "folded"
    if lay.preferred == "rtl" and not fits:
        why = ("it is fully unrolled (SIMD = MW, PE = MH), which FINN's MVU does not build"
               if lay.finn_op == "MVAU_rtl" else
               f"FINN's SpecializeLayers made it {lay.finn_op} (FINN's RTL MVU has no "
               "thresholds and no LUT products)")
        raise A2QFlowError(f"{lay.name} has preferred_impl_style rtl, but {why}",
                           f"remove preferred_impl_style from {lay.name} in the folding file, "
                           "or set it to hls (a2qflow's Verilog)")
    wanted = {"rtl": "finn-rtl", "hls": "own"}.get(lay.preferred, backend)
    if wanted == "auto":
        wanted = "finn-rtl" if finn_mvu_part else "own"
    if wanted == "finn-rtl" and fits and not finn_mvu_part:
        asked = ("its preferred_impl_style rtl" if lay.preferred == "rtl"
                 else "backend finn-rtl")
        raise A2QFlowError(f"{lay.name}: {asked} asks for FINN's RTL MVU, which a2qflow "
                           "builds for DSP48E1 and DSP48E2 parts (7-series, UltraScale+) only",
                           "use backend auto or own on this board, or a Zynq-7000, Zynq "
                           "UltraScale+ or Alveo board")
    return dataclasses.replace(lay, backend="finn-rtl" if wanted == "finn-rtl" and fits
                               else "own")


def read_design(build_dir: Path) -> Design:
    """The folded graph of a compiled build as a :class:`Design`, checked against the
    certificate."""
    build_dir = Path(build_dir)
    folded = layout.require(build_dir, layout.FOLDED_MODEL)
    hw = layout.require(build_dir, layout.HW_MODEL)
    cert = layout.read_artifact(build_dir, layout.CERTIFICATE)
    return design_from_model(layout.load_onnx(build_dir, layout.FOLDED_MODEL), cert["layers"],
                             folded, hw)


def design_from_model(model: ModelWrapper, cert_layers: list[dict[str, Any]],
                      folded: Path, hw: Path) -> Design:
    nodes = list(model.graph.node)
    hw_idx = [i for i, n in enumerate(nodes) if _accelerated(model, n)]
    if not hw_idx:
        raise A2QFlowError("the compiled graph has no integer-input HW layers",
                           "check the compile stage output (finn/*.onnx)")
    first, last = hw_idx[0], hw_idx[-1]
    inside = nodes[first:last + 1]
    for a, b in zip(inside, inside[1:], strict=False):
        if b.input[0] != a.output[0]:
            raise A2QFlowError(f"{b.name} does not read {a.name}'s output: the dataflow graph "
                               "is not one chain", "the open backend implements chains of "
                               "layers (no branches, no residual connections)")
    blocks = chain_blocks(model, inside)
    mvaus = [b for b in blocks if isinstance(b, tuple)]
    if len(mvaus) != len(cert_layers):
        raise A2QFlowError(f"{len(mvaus)} MVAUs in the folded graph but {len(cert_layers)} "
                           "layers in certificate.json", "re-run `a2qflow compile`")
    certs = iter(cert_layers)
    blocks = [_mvau(model, b[0], next(certs)) if isinstance(b, tuple) else b for b in blocks]
    for a, b in zip(blocks, blocks[1:], strict=False):
        if (a.out_bits, a.out_signed) != (b.in_bits, b.in_signed):
            raise A2QFlowError(
                f"{a.name} outputs {'' if a.out_signed else 'un'}signed {a.out_bits}-bit values "
                f"but {b.name} reads {'' if b.in_signed else 'un'}signed {b.in_bits}-bit ones",
                "re-run `a2qflow compile`")

    def values(tensor: str) -> int:
        return int(np.prod(model.get_tensor_shape(tensor)[1:]))

    return Design(layers=[b for b in blocks if isinstance(b, MVAULayer)],
                  in_tensor=inside[0].input[0], out_tensor=inside[-1].output[0],
                  host_before=[n.name for n in nodes[:first]],
                  host_after=[n.name for n in nodes[last + 1:]], folded_model=folded, hw_model=hw,
                  blocks=blocks, in_length=values(inside[0].input[0]),
                  out_length=values(inside[-1].output[0]))


WINDOW_OPS = ("ConvolutionInputGenerator_rtl", "ConvolutionInputGenerator_hls")


def chain_blocks(model: ModelWrapper, inside: list[Any]) -> list[tuple[Any] | StreamBlock]:
    """The chain as blocks: ``(node,)`` for an MVAU (read once its certificate entry is
    paired), a :class:`StreamBlock` for a sliding window or a window + max-pool pair."""
    blocks: list[tuple[Any] | StreamBlock] = []
    unsupported, i = [], 0
    while i < len(inside):
        node = inside[i]
        nxt = inside[i + 1] if i + 1 < len(inside) else None
        if node.op_type.startswith("MVAU"):
            blocks.append((node,))
        elif node.op_type in WINDOW_OPS:
            inst = getCustomOp(node)
            dt = inst.get_input_datatype()
            if nxt is not None and nxt.op_type.startswith("Pool"):
                pool = getCustomOp(nxt)
                pe = int(pool.get_nodeattr("PE"))
                blocks.append(StreamBlock(nxt.name, "maxpool", (node.name, nxt.name), pe, pe,
                                          dt.bitwidth(), bool(dt.signed())))
                i += 1
            elif inst.get_nodeattr("depthwise"):
                unsupported.append(f"{node.name} (a depthwise window not feeding a max-pool)")
            else:
                blocks.append(StreamBlock(node.name, "window", (node.name,),
                                          int(inst.get_folded_input_shape()[-1]),
                                          int(inst.get_folded_output_shape()[-1]),
                                          dt.bitwidth(), bool(dt.signed())))
        else:
            unsupported.append(f"{node.name} ({node.op_type})")
        i += 1
    if unsupported:
        raise A2QFlowError(
            f"the open Verilog backend does not implement {', '.join(unsupported)}",
            "it builds chains of MVAUs, sliding windows (FINN's RTL) and window + max-pool "
            "pairs (MLPs like TFC, convnets like CNV); use FINN's Vivado flow for other layers")
    return blocks


def _accelerated(model: ModelWrapper, node: Any) -> bool:
    """HW layers with integer inputs (a float-input Thresholding is the host's input quantizer)."""
    if not node.domain.startswith(HW_DOMAIN):
        return False
    return model.get_tensor_datatype(node.input[0]).is_integer()


def _mvau(model: ModelWrapper, node: Any, cert: dict[str, Any]) -> MVAULayer:
    inst = getCustomOp(node)
    attr = inst.get_nodeattr
    if attr("binaryXnorMode"):
        raise A2QFlowError(f"{node.name} is a binary XNOR layer",
                           "the open backend implements integer MVAUs only")
    idt, wdt = inst.get_input_datatype(0), inst.get_input_datatype(1)
    adt, odt = DataType[attr("accDataType")], DataType[attr("outputDataType")]
    if not (wdt.is_integer() and idt.is_integer()) or wdt.name.startswith("BIPOLAR"):
        raise A2QFlowError(f"{node.name} has {idt.name} inputs and {wdt.name} weights",
                           "the open backend implements integer inputs and weights")
    if adt.name != cert["acc_datatype"]:
        raise A2QFlowError(f"{node.name} accumulates in {adt.name} but the certificate says "
                           f"{cert['acc_datatype']}", "re-run `a2qflow compile`")
    w = model.get_initializer(node.input[1])
    weights = np.asarray(w).astype(np.int64).T  # (MW, MH) -> (MH, MW)
    thresholds = None
    act = not attr("noActivation")
    if act:
        t = np.asarray(model.get_initializer(node.input[2]), dtype=np.float64)
        if not np.array_equal(t, np.round(t)):
            raise A2QFlowError(f"{node.name} has non-integer thresholds",
                               "re-run `a2qflow compile` (thresholds are clipped and rounded)")
        thresholds = np.broadcast_to(t.astype(np.int64), (attr("MH"), t.shape[1])).copy()
    register = DataType[cert["register_datatype"]].bitwidth() if act else adt.bitwidth()
    return MVAULayer(
        name=node.name, mw=attr("MW"), mh=attr("MH"), simd=attr("SIMD"), pe=attr("PE"),
        input_bits=idt.bitwidth(), input_signed=bool(idt.signed()),
        weight_bits=wdt.bitwidth() if wdt.signed() else wdt.bitwidth() + 1,
        acc_bits=adt.bitwidth(), exact_bits=int(cert["exact_bits"]), register_bits=register,
        output_bits=odt.bitwidth(), output_signed=bool(odt.signed()),
        act_val=int(attr("ActVal")) if act else 0, weights=weights, thresholds=thresholds,
        in_tensor=node.input[0], out_tensor=node.output[0],
        res_type=_nodeattr(inst, "resType"), ram_style=ram_style_of(node.name, inst),
        ram_style_thresholds=ram_style_of(node.name, inst, "ram_style_thresholds"),
        finn_op=node.op_type, preferred=str(inst.get_nodeattr("preferred_impl_style")),
    )


def _nodeattr(inst: Any, name: str) -> str:
    """The node's ``name`` attribute (set by a folding file, as in FINN); "auto" where the op
    has none."""
    try:
        return str(inst.get_nodeattr(name))
    except AttributeError:
        return "auto"


RAM_STYLES = ("auto", "block", "distributed")  # FINN's ram_style values the open flow builds


def ram_style_of(name: str, inst: Any, attr: str = "ram_style") -> str:
    """The node's ram_style for its weights (or ``ram_style_thresholds``); one the open flow
    cannot build is refused."""
    style = _nodeattr(inst, attr)
    if style not in RAM_STYLES:
        raise A2QFlowError(f"{name} has {attr} {style!r}, which a2qflow's MVAU does not build "
                           "(UltraRAM is FINN's Vivado flow)",
                           f"set {attr} of {name} in the folding file to one of "
                           f"{', '.join(RAM_STYLES)}")
    return style
