"""a2qflow's own Verilog for FINN's max-pool, the one CNV layer FINN ships no RTL for.

finn-plus 1.6.1 has no ``StreamingMaxPool``: ``InferPool`` turns a ``MaxPoolNHWC`` into a
depthwise ``ConvolutionInputGenerator`` (a sliding window; FINN has RTL for it) feeding a
``Pool`` with ``Function=MaxPool`` (HLS only, ``Pool_hls``). :class:`MaxPoolParams` is that
pair read back (:meth:`MaxPoolParams.from_finn`), refusing what the block does not do;
``hls/verilog/maxpool.v.j2`` is one streaming block for both nodes on the NHWC image: a line
buffer of one output row's partial maxima, ``PE`` channels per beat. It comes as a
:class:`~a2qflow.rtl.finn_rtl.FinnRtl` so :func:`a2qflow.rtl.finn_rtl.simulate_layer` and
:func:`~a2qflow.rtl.finn_rtl.synthesize` (``read_verilog``) run it like FINN's RTL layers.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from qonnx.core.datatype import DataType
from qonnx.core.modelwrapper import ModelWrapper

from a2qflow.errors import A2QFlowError
from a2qflow.rtl.finn_rtl import FinnRtl
from a2qflow.rtl.generate import _bits_for, environment, module_name
from a2qflow.rtl.sim import Port

BACKEND = "a2qflow max-pool"
WINDOW_OPS = ("ConvolutionInputGenerator", "ConvolutionInputGenerator_rtl", "Im2Col")


@dataclass(frozen=True)
class MaxPoolParams:
    """A ``kernel``-strided ``kernel`` max-pool over an NHWC ``image`` of ``channels``."""

    name: str
    image: tuple[int, int]  # input rows, columns
    kernel: tuple[int, int]  # window rows, columns (= stride)
    channels: int
    pe: int
    datatype: str  # FINN DataType name, integer

    def __post_init__(self) -> None:
        dt = DataType[self.datatype]
        if not dt.is_integer():
            raise A2QFlowError(f"{self.name}: InputDataType {self.datatype} is not an integer "
                               "type", "quantize the max-pool's input to integers")
        if self.pe < 1 or self.channels % self.pe:
            raise A2QFlowError(f"{self.name}: PE={self.pe} does not divide Channels="
                               f"{self.channels}", "choose a PE that divides the channel count")
        for axis, size, k in zip(("rows", "columns"), self.image, self.kernel, strict=True):
            if k < 1 or size % k:
                raise A2QFlowError(f"{self.name}: KernelSize {k} does not divide the image's "
                                   f"{size} {axis}", "choose a pool size that tiles the image "
                                   "(a2qflow's max-pool has no padding and no partial windows)")

    @property
    def out_image(self) -> tuple[int, int]:
        return (self.image[0] // self.kernel[0], self.image[1] // self.kernel[1])

    @classmethod
    def from_finn(cls, model: ModelWrapper, pool_node: str) -> MaxPoolParams:
        """FINN's ``Pool`` node ``pool_node`` (``Function=MaxPool``) and the sliding window that
        feeds it, as the block's parameters; what the block does not support is refused."""
        from qonnx.custom_op.registry import getCustomOp

        node = model.get_node_from_name(pool_node)
        if node is None or not node.op_type.startswith("Pool"):
            raise A2QFlowError(f"{pool_node}: not a FINN Pool node",
                               "name the Pool node FINN's InferPool made from the max-pool")
        pool = getCustomOp(node)
        if pool.get_nodeattr("Function") != "MaxPool":
            raise A2QFlowError(f"{pool_node}: Function={pool.get_nodeattr('Function')}",
                               "a2qflow's block is Function=MaxPool only; keep FINN's Pool_hls")
        window = model.find_producer(node.input[0])
        if window is None or window.op_type not in WINDOW_OPS:
            raise A2QFlowError(f"{pool_node}: its input comes from "
                               f"{window.op_type if window else 'the graph input'}, not a sliding "
                               "window", "feed the Pool from FINN's depthwise "
                               "ConvolutionInputGenerator (InferPool, InferConvInpGen)")
        swg = getCustomOp(window)
        kernel = tuple(int(k) for k in pool.get_nodeattr("KernelSize"))
        if window.op_type == "Im2Col":
            stride = tuple(int(s) for s in swg.get_nodeattr("stride"))
            pads = [int(p) for p in swg.get_nodeattr("pad_amount")]
            dilation = (1, 1)
            image = tuple(int(d) for d in model.get_tensor_shape(window.input[0])[1:3])
        else:
            stride = tuple(int(s) for s in swg.get_nodeattr("Stride"))
            pads = [0]
            dilation = tuple(int(d) for d in swg.get_nodeattr("Dilation"))
            image = tuple(int(d) for d in swg.get_nodeattr("IFMDim"))
            if not swg.get_nodeattr("depthwise"):
                raise A2QFlowError(f"{window.name}: depthwise=0",
                                   "a max-pool's sliding window is depthwise (InferPool sets it)")
        checks = (("Stride", stride, kernel, "a2qflow's max-pool windows do not overlap: use "
                   "stride = kernel, or keep FINN's Pool_hls"),
                  ("Dilation", dilation, (1, 1), "use dilation 1"),
                  ("pad_amount", pads, [0] * len(pads), "pad the image before the max-pool"))
        for attr, value, wanted, fix in checks:
            if value != wanted:
                raise A2QFlowError(f"{window.name}: {attr}={list(value)} (kernel "
                                   f"{list(kernel)})", fix)
        dims = [int(d) for d in pool.get_nodeattr("OutImgDims")]
        if dims != [i // k for i, k in zip(image, kernel, strict=True)]:
            raise A2QFlowError(f"{pool_node}: OutImgDims={dims} is not image {list(image)} / "
                               f"kernel {list(kernel)}",
                               "let FINN's InferPool set the Pool's attributes")
        return cls(name=pool_node, image=image, kernel=kernel,
                   channels=int(pool.get_nodeattr("Channels")), pe=int(pool.get_nodeattr("PE")),
                   datatype=pool.get_input_datatype().name)


def maxpool_model(channels: int, image: int, kernel: int, pe: int, datatype: str) -> ModelWrapper:
    """FINN's HW layers for a ``kernel`` x ``kernel`` max-pool at stride ``kernel`` over an
    ``image`` x ``image`` NHWC input: a one-node ``MaxPoolNHWC`` through FINN's ``InferPool``
    and ``InferConvInpGen`` (as the compile step does), ``pe`` channels per beat."""
    from finn.transformation.fpgadataflow.convert_to_hw.conv_inp_gen import InferConvInpGen
    from finn.transformation.fpgadataflow.convert_to_hw.pool import InferPool
    from onnx import TensorProto, helper
    from qonnx.custom_op.registry import getCustomOp
    from qonnx.transformation.general import GiveUniqueNodeNames
    from qonnx.transformation.infer_shapes import InferShapes

    out = image // kernel
    node = helper.make_node("MaxPoolNHWC", ["inp"], ["out"], domain="qonnx.custom_op.general",
                            kernel_shape=[kernel, kernel], strides=[kernel, kernel],
                            pads=[0, 0, 0, 0], name="MaxPoolNHWC_0")
    graph = helper.make_graph(
        [node], "maxpool",
        [helper.make_tensor_value_info("inp", TensorProto.FLOAT, [1, image, image, channels])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, out, out, channels])])
    model = ModelWrapper(helper.make_model(graph))
    model.set_tensor_datatype("inp", DataType[datatype])
    model.set_tensor_datatype("out", DataType[datatype])
    model = model.transform(InferShapes()).transform(InferPool())
    model = model.transform(InferConvInpGen()).transform(GiveUniqueNodeNames())
    for n in model.graph.node:
        inst = getCustomOp(n)
        inst.set_nodeattr("SIMD" if n.op_type.startswith("ConvolutionInputGenerator") else "PE", pe)
    return model


def pool_node(model: ModelWrapper) -> str:
    """The name of the one ``Pool`` node in ``model``."""
    (name,) = [n.name for n in model.graph.node if n.op_type.startswith("Pool")]
    return name


def generate(params: MaxPoolParams, directory: Path) -> FinnRtl:
    """Render the block for ``params`` into ``directory``."""
    directory = Path(directory).resolve()
    directory.mkdir(parents=True, exist_ok=True)
    (ih, iw), (kh, kw), (_, ow) = params.image, params.kernel, params.out_image
    fold = params.channels // params.pe
    dt = DataType[params.datatype]
    # BIPOLAR travels as FINN encodes it (0 for -1, 1 for +1): its max is the unsigned one
    signed = dt.signed() and dt != DataType["BIPOLAR"]
    top = f"a2q_maxpool_{module_name(params.name)}"
    (directory / f"{top}.v").write_text(environment().get_template("maxpool.v.j2").render(
        module=top, ih=ih, iw=iw, kh=kh, kw=kw, ow=ow, channels=params.channels, pe=params.pe,
        fold=fold, bits=dt.bitwidth(), signed=signed, fold_bits=_bits_for(fold),
        kw_bits=_bits_for(kw), kh_bits=_bits_for(kh), ow_bits=_bits_for(ow),
        addr_bits=max(1, (ow * fold).bit_length())))
    inp = Port(params.pe, dt.bitwidth(), signed, ih * iw * params.channels)
    out = Port(params.pe, dt.bitwidth(), signed, ow * (ih // kh) * params.channels)
    return FinnRtl(directory=directory, backend=BACKEND, top=top, finn_top=top,
                   sources=(f"{top}.v",), data_files=(), reads=(), synth_top=top,
                   inp=inp, out=out,
                   simulation_note="a2qflow's Verilog for FINN's sliding window + Pool pair")
