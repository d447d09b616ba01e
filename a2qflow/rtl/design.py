"""Read the folded FINN HW graph into small typed layer records the Verilog generator renders.

The open backend starts at the first HW layer with integer inputs: FINN's leading
float-input Thresholding (the input quantizer) and any reshapes before it, and the scaling
after the last MVAU, stay on the host, exactly as they stay outside FINN's dataflow partition.
Widths come from the folded graph and are checked against ``certificate.json``, so the
hardware uses the certified accumulator, not FINN's default 32 bits.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from qonnx.core.datatype import DataType
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.custom_op.registry import getCustomOp

from a2qflow import bounds, layout
from a2qflow.errors import A2QFlowError

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
    # unrolled layers (SIMD = MW, PE = MH) only: who builds the adder graph, how wide its
    # nodes are ("exact" per node, or "uniform" at acc_bits), and by how many bits every
    # channel's root is narrowed (the negative control)
    generator: str = "a2qflow"
    widths: str = "exact"
    root_trim: int = 0

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
class Design:
    """The dataflow chain the open backend implements, plus what stays on the host."""

    layers: list[MVAULayer]
    in_tensor: str
    out_tensor: str
    host_before: list[str]  # node names executed before the accelerator
    host_after: list[str]
    folded_model: Path
    hw_model: Path

    @property
    def in_width(self) -> int:
        return self.layers[0].in_width

    @property
    def out_width(self) -> int:
        return self.layers[-1].out_width

    def at_width(self, bits: int | None) -> Design:
        if bits is None:
            return self
        return dataclasses.replace(self, layers=[lay.at_width(bits) for lay in self.layers])

    def with_generator(self, generator: str) -> Design:
        """Unrolled layers built by ``generator`` (``a2qflow`` or ``da4ml``)."""
        return dataclasses.replace(self, layers=[dataclasses.replace(lay, generator=generator)
                                                 for lay in self.layers])


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
    inside = [n for n in nodes[first:last + 1]]
    unsupported = [f"{n.name} ({n.op_type})" for n in inside if not n.op_type.startswith("MVAU")]
    if unsupported:
        raise A2QFlowError(
            f"the open Verilog backend does not implement {', '.join(unsupported)}",
            "it supports MLP dataflow graphs (MVAU chains, e.g. TFC); use FINN's Vivado flow "
            "for convolutional networks",
        )
    if len(inside) != len(cert_layers):
        raise A2QFlowError(f"{len(inside)} MVAUs in the folded graph but {len(cert_layers)} "
                           "layers in certificate.json", "re-run `a2qflow compile`")
    layers = [_mvau(model, n, c) for n, c in zip(inside, cert_layers, strict=True)]
    for a, b in zip(layers, layers[1:], strict=False):
        if a.output_bits != b.input_bits:
            raise A2QFlowError(f"{a.name} outputs {a.output_bits}-bit values but {b.name} reads "
                               f"{b.input_bits}-bit ones", "re-run `a2qflow compile`")
    return Design(layers=layers, in_tensor=inside[0].input[0], out_tensor=inside[-1].output[0],
                  host_before=[n.name for n in nodes[:first]],
                  host_after=[n.name for n in nodes[last + 1:]], folded_model=folded, hw_model=hw)


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
        in_tensor=node.input[0], out_tensor=node.output[0], res_type=_res_type(inst),
    )


def _res_type(inst: Any) -> str:
    """The node's resType (set by a folding file, as in FINN); "auto" where it has none."""
    try:
        return str(inst.get_nodeattr("resType"))
    except AttributeError:
        return "auto"
