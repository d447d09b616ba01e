"""The compile stage: QONNX -> FINN HW layers with certified accumulators -> estimates, codegen.

``STEPS`` is the whole flow as one ordered list of named steps; each takes and returns a
``ModelWrapper`` and its result is saved as ``layout.finn_model(name)``. Everything is built in a
staging directory inside the build directory and moved into place only when every step and the
certificate succeeded, so a failed compile leaves earlier artifacts untouched.
"""

from __future__ import annotations

import copy
import shutil
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any

from qonnx.core.modelwrapper import ModelWrapper

from a2qflow import layout
from a2qflow.artifacts import config_hash, replace_dir, write_json
from a2qflow.boards import Board, load_board
from a2qflow.compile import certificate
from a2qflow.config import HardwareConfig, read_folding
from a2qflow.errors import A2QFlowError
from a2qflow.finn_env import finn_session
from a2qflow.graph import hw_matmul_nodes, read_layer_records, transform_dataflow_core


@dataclass
class CompileContext:
    board: Board
    folding: dict[str, Any] | None
    target_fps: float | None
    acc_bits: int | None
    codegen_dir: Path
    certificate: list[dict[str, Any]] = field(default_factory=list)
    estimates: dict[str, Any] = field(default_factory=dict)


Step = Callable[[ModelWrapper, CompileContext], ModelWrapper]


def step_qonnx_to_finn(model: ModelWrapper, ctx: CompileContext) -> ModelWrapper:
    from finn.transformation.qonnx.convert_qonnx_to_finn import ConvertQONNXtoFINN
    from qonnx.util.cleanup import cleanup_model

    return cleanup_model(model).transform(ConvertQONNXtoFINN())


def step_tidy_up(model: ModelWrapper, ctx: CompileContext) -> ModelWrapper:
    from finn.transformation.qonnx.give_unique_node_names_recursive import (
        GiveUniqueNodeNamesRecursive,
    )
    from qonnx.transformation.fold_constants import FoldConstants
    from qonnx.transformation.general import GiveReadableTensorNames, RemoveStaticGraphInputs
    from qonnx.transformation.infer_datatypes import InferDataTypes
    from qonnx.transformation.infer_shapes import InferShapes

    for t in (InferShapes(), FoldConstants(), GiveUniqueNodeNamesRecursive(),
              GiveReadableTensorNames(), InferDataTypes(), RemoveStaticGraphInputs()):
        model = model.transform(t)
    return model


def step_streamline(model: ModelWrapper, ctx: CompileContext) -> ModelWrapper:
    import finn.transformation.streamline.absorb as absorb
    from finn.transformation.streamline import Streamline
    from finn.transformation.streamline.reorder import MakeMaxPoolNHWC
    from qonnx.transformation.general import RemoveUnusedTensors
    from qonnx.transformation.infer_data_layouts import InferDataLayouts
    from qonnx.transformation.lower_convs_to_matmul import LowerConvsToMatMul

    model = model.transform(absorb.AbsorbScalarBiasIntoMultiThreshold())
    model = model.transform(Streamline())
    if model.get_nodes_by_op_type("Conv"):
        for t in (LowerConvsToMatMul(), MakeMaxPoolNHWC(),
                  absorb.AbsorbTransposeIntoMultiThreshold(), MakeMaxPoolNHWC(),
                  absorb.AbsorbConsecutiveTransposes()):
            model = model.transform(t)
    model = model.transform(Streamline())
    model = model.transform(absorb.AbsorbScalarMulAddIntoTopK())
    model = model.transform(InferDataLayouts())
    return model.transform(RemoveUnusedTensors())


def step_convert_to_hw(model: ModelWrapper, ctx: CompileContext) -> ModelWrapper:
    import finn.transformation.streamline.absorb as absorb
    from finn.transformation.fpgadataflow.convert_to_hw.conv_inp_gen import InferConvInpGen
    from finn.transformation.fpgadataflow.convert_to_hw.pool import InferPool
    from finn.transformation.fpgadataflow.convert_to_hw.quantized_matrix_vector_activation import (
        InferQuantizedMatrixVectorActivation,
    )
    from finn.transformation.fpgadataflow.convert_to_hw.vector_vector_activation import (
        InferVectorVectorActivation,
    )
    from finn.transformation.move_reshape import RemoveCNVtoFCFlatten
    from finn.transformation.qonnx.give_unique_node_names_recursive import (
        GiveUniqueNodeNamesRecursive,
    )
    from qonnx.transformation.infer_data_layouts import InferDataLayouts
    from qonnx.transformation.infer_datatypes import InferDataTypes
    from qonnx.transformation.infer_shapes import InferShapes

    from a2qflow.compile.passes import InferIntegerThresholdingLayer

    for t in (InferQuantizedMatrixVectorActivation(), InferVectorVectorActivation(),
              InferIntegerThresholdingLayer(), InferPool(), InferConvInpGen(),
              absorb.AbsorbConsecutiveTransposes(), RemoveCNVtoFCFlatten(),
              GiveUniqueNodeNamesRecursive(), InferDataLayouts(), InferDataTypes(),
              InferShapes()):
        model = model.transform(t)
    leftover = [n.name for n in model.graph.node if n.op_type in ("MatMul", "Conv")]
    if leftover:
        raise A2QFlowError(f"FINN could not map {', '.join(leftover)} to MVAU/VVAU layers",
                           "the layer's input and weights must be integer-quantized")
    return model


def step_certify_accumulators(model: ModelWrapper, ctx: CompileContext) -> ModelWrapper:
    from qonnx.transformation.infer_datatypes import InferDataTypes

    from a2qflow.compile.passes import (
        ClipThresholdsToAccumulatorRange,
        SetCertifiedAccumulatorWidth,
    )

    ctx.certificate = certificate.certificate_entries(model, ctx.acc_bits)
    error = certificate.refusal_error(ctx.certificate, ctx.acc_bits)
    if error is not None:
        raise error
    model = model.transform(SetCertifiedAccumulatorWidth(ctx.acc_bits))
    model = model.transform(ClipThresholdsToAccumulatorRange())
    model = model.transform(InferDataTypes())
    certificate.attach_hardware_widths(ctx.certificate, model)
    return model


def step_specialize_layers(model: ModelWrapper, ctx: CompileContext) -> ModelWrapper:
    from finn.transformation.fpgadataflow.specialize_layers import SpecializeLayers
    from finn.transformation.qonnx.give_unique_node_names_recursive import (
        GiveUniqueNodeNamesRecursive,
    )
    from qonnx.transformation.infer_datatypes import InferDataTypes
    from qonnx.transformation.infer_shapes import InferShapes

    for t in (SpecializeLayers(ctx.board.part), GiveUniqueNodeNamesRecursive(), InferShapes(),
              InferDataTypes()):
        model = model.transform(t)
    return model


def step_folding(model: ModelWrapper, ctx: CompileContext) -> ModelWrapper:
    from finn.transformation.fpgadataflow.set_folding import SetFolding
    from finn.transformation.general import ApplyConfig
    from qonnx.custom_op.registry import getCustomOp

    if ctx.target_fps is not None:
        cycles = max(1, int(1e9 / ctx.board.clock_ns / ctx.target_fps))
        model = transform_dataflow_core(model, SetFolding(cycles))
    if ctx.folding is not None:  # after SetFolding, as in FINN's builder: the file has the say
        names = {n.name for n in model.graph.node}
        unknown = sorted(set(ctx.folding) - names - {"Defaults"})
        if unknown:
            raise A2QFlowError(f"folding file names unknown layers: {', '.join(unknown)}",
                               f"layers of this design: {', '.join(sorted(names))}")
        model = model.transform(ApplyConfig(copy.deepcopy(ctx.folding)))
    for node in hw_matmul_nodes(model):
        inst = getCustomOp(node)
        mw, mh = inst.get_nodeattr("MW"), inst.get_nodeattr("MH")
        simd, pe = inst.get_nodeattr("SIMD"), inst.get_nodeattr("PE")
        if simd < 1 or pe < 1 or mw % simd or mh % pe:
            raise A2QFlowError(f"{node.name}: SIMD={simd} must divide MW={mw} and PE={pe} "
                               f"must divide MH={mh}", "fix the folding file")
    return model


def step_estimates(model: ModelWrapper, ctx: CompileContext) -> ModelWrapper:
    from a2qflow.compile.estimates import finn_estimates

    model, ctx.estimates = finn_estimates(model, ctx.board)
    return model


def step_codegen(model: ModelWrapper, ctx: CompileContext) -> ModelWrapper:
    from finn.transformation.fpgadataflow.prepare_ip import PrepareIP

    with finn_session(ctx.codegen_dir):
        return model.transform(PrepareIP(ctx.board.part, ctx.board.clock_ns))


STEPS: list[tuple[str, Step]] = [
    ("qonnx_to_finn", step_qonnx_to_finn),
    ("tidy_up", step_tidy_up),
    ("streamline", step_streamline),
    ("convert_to_hw", step_convert_to_hw),
    ("certify_accumulators", step_certify_accumulators),
    ("specialize_layers", step_specialize_layers),
    ("folding", step_folding),
    ("estimates", step_estimates),
    ("codegen", step_codegen),
]
_CERTIFIED_FROM = [name for name, _ in STEPS].index("certify_accumulators")
assert tuple(name for name, _ in STEPS) == layout.COMPILE_STEPS, "layout.COMPILE_STEPS is stale"


def run(build_dir: Path, board: str, folding: Path | None = None,
        target_fps: float | None = None, acc_bits: int | None = None) -> dict[str, Any]:
    """Compile ``build_dir/model.qonnx.onnx``; write finn/, certificate.json, estimates.json."""
    build_dir = Path(build_dir).resolve()
    hw_config = HardwareConfig(board=board, folding=str(folding) if folding else None,
                               target_fps=target_fps, acc_bits=acc_bits)
    brd = load_board(hw_config.board)
    ctx = CompileContext(board=brd,
                         folding=read_folding(folding) if folding is not None else None,
                         target_fps=hw_config.target_fps, acc_bits=acc_bits,
                         codegen_dir=build_dir / layout.CODEGEN_DIR)
    inputs = layout.input_hashes(build_dir, layout.stage_files("compile").reads)
    model = layout.load_onnx(build_dir, layout.QONNX_MODEL)
    read_layer_records(model)  # fail early on missing metadata
    started = time.perf_counter()
    staging = Path(tempfile.mkdtemp(prefix=".compile-", dir=build_dir))
    try:
        stage_finn = staging / layout.FINN_DIR
        stage_finn.mkdir()
        final_codegen = ctx.codegen_dir
        ctx.codegen_dir = staging / layout.CODEGEN_DIR
        timings = {}
        with finn_session(staging / "finn_tmp"), warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=UserWarning, module="qonnx")
            for index, (name, step) in enumerate(STEPS):
                t0 = time.perf_counter()
                model = step(model, ctx)
                if index >= _CERTIFIED_FROM:
                    certificate.check_widths_hold(model)
                timings[name] = round(time.perf_counter() - t0, 3)
                if name == "codegen":
                    model = _relocate(model, ctx.codegen_dir, final_codegen)
                model.save(str(staging / layout.finn_model(name)))
        versions = tool_versions()
        cert = certificate.certificate_document(ctx.certificate, brd.name, brd.part, versions)
        config = {"board": brd.name, "acc_bits": acc_bits, "target_fps": target_fps,
                  "folding": ctx.folding}
        summary = {"stage": "compile", "board": brd.name, "part": brd.part,
                   "acc_bits_forced": acc_bits, "target_fps": target_fps,
                   "folding": str(folding) if folding else None, "tools": versions,
                   "config_hash": config_hash(config), "inputs": inputs,
                   "step_seconds": timings,
                   "seconds": round(time.perf_counter() - started, 3),
                   "hw_model": layout.HW_MODEL,
                   "warnings": ctx.estimates.get("warnings", [])}
        replace_dir(stage_finn, build_dir / layout.FINN_DIR)
        write_json(build_dir / layout.ESTIMATES, ctx.estimates)
        write_json(build_dir / layout.CERTIFICATE, cert)
        write_json(build_dir / layout.COMPILE_JSON, summary)
        return {"certificate": cert, "estimates": ctx.estimates, "summary": summary}
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def tool_versions() -> dict[str, str]:
    return {pkg: version(pkg) for pkg in ("finn-plus", "qonnx", "brevitas")}


def _relocate(model: ModelWrapper, old: Path, new: Path) -> ModelWrapper:
    from a2qflow.compile.passes import RelocateCodegenDirs

    return model.transform(RelocateCodegenDirs(old, new))


__all__ = ["STEPS", "run"]
