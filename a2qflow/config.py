"""Typed configuration for every stage, validated on construction.

One place for the knobs; the CLI only fills these dataclasses. Validation errors name the
field and the allowed values.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

from a2qflow.bounds import MAX_ACC_BITS
from a2qflow.errors import A2QFlowError
from a2qflow.validate import enum_value, int_in_range, positive_number


class QuantMethod(str, Enum):
    """How a network's weights are quantized."""

    FLOAT = "float"  # no quantization (the pre-training model)
    BASELINE = "baseline"  # QAT, per-channel weights, no accumulator constraint
    A2Q = "a2q"  # accumulator-aware (Colbert et al. 2023)
    A2Q_PLUS = "a2q+"  # zero-centred accumulator-aware (Colbert et al. 2024)

    @property
    def accumulator_aware(self) -> bool:
        return self in (QuantMethod.A2Q, QuantMethod.A2Q_PLUS)


class TrainMethod(str, Enum):
    """How the train stage obtains the quantized weights from the float model."""

    QAT = "qat"  # quantization-aware training (the model spec's quantizers)
    AXE_GPFQ = "axe-gpfq"  # accumulator-aware PTQ (AXE, Colbert et al. 2024), GPFQ flavour
    AXE_GPTQ = "axe-gptq"  # AXE, GPTQ flavour

    @property
    def post_training(self) -> bool:
        return self is not TrainMethod.QAT


class AxeScales(str, Enum):
    """Where AXE's per-channel weight scales come from (``a2qflow.axe_scales``)."""

    FITTED = "fitted"  # searched before, refitted by least squares after each layer
    MAX = "max"  # brevitas's AXE as shipped: max|w| / max_int, fixed


class Arch(str, Enum):
    TFC = "tfc"  # FINN's MLP: 3 hidden layers of 64 (width configurable)
    CNV = "cnv"  # FINN's CIFAR-10 CNN: 6 conv + 3 FC


class DatasetName(str, Enum):
    DIGITS = "digits"
    MNIST = "mnist"
    FASHION_MNIST = "fashion-mnist"
    CIFAR10 = "cifar10"


class RtlBackend(str, Enum):
    """Who builds a layer the open flow implements (FINN's split of a generic op from its
    backends): a2qflow's Verilog wherever a2qflow has the block (``own``), FINN's own RTL
    wherever finn-rtllib has it (``finn-rtl``), or per layer the one that measured smaller
    (``auto``: FINN's MVU where FINN specialized the layer to ``MVAU_rtl`` and the part has the
    DSPs it instantiates, a2qflow's Verilog elsewhere and for the glue). Sliding windows are
    FINN's and max-pools a2qflow's either way."""

    OWN = "own"
    FINN_RTL = "finn-rtl"
    AUTO = "auto"


@dataclass(frozen=True)
class ModelSpec:
    """A network and its quantization: everything needed to rebuild it from a checkpoint.

    ``acc_bits`` is the target accumulator width P of the hidden layers. The first and last
    layers are unconstrained unless ``first_acc_bits`` / ``last_acc_bits`` are set.
    """

    arch: Arch = Arch.TFC
    quant: QuantMethod = QuantMethod.A2Q_PLUS
    weight_bits: int = 4
    act_bits: int = 4
    input_bits: int = 8
    acc_bits: int = 16
    first_acc_bits: int | None = None
    last_acc_bits: int | None = None
    hidden: int = 64  # TFC hidden width
    in_features: int = 64  # flattened input size (TFC); set from the data set
    in_channels: int = 3  # CNV input channels
    num_classes: int = 10

    def __post_init__(self) -> None:
        object.__setattr__(self, "arch", enum_value(Arch, self.arch, "arch"))
        object.__setattr__(self, "quant", enum_value(QuantMethod, self.quant, "quant"))
        int_in_range(self.weight_bits, "weight_bits", 2, 8)
        int_in_range(self.act_bits, "act_bits", 1, 8)
        int_in_range(self.input_bits, "input_bits", 1, 8)
        int_in_range(self.acc_bits, "acc_bits", 2, MAX_ACC_BITS)
        for name in ("first_acc_bits", "last_acc_bits"):
            if getattr(self, name) is not None:
                int_in_range(getattr(self, name), name, 2, MAX_ACC_BITS)
        int_in_range(self.hidden, "hidden", 1, 4096)
        int_in_range(self.in_features, "in_features", 1, 1 << 20)
        int_in_range(self.num_classes, "num_classes", 2, 1000)

    def to_dict(self) -> dict[str, Any]:
        return {k: (v.value if isinstance(v, Enum) else v) for k, v in
                dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelSpec:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise A2QFlowError(
                f"unknown model field(s): {', '.join(unknown)}",
                f"allowed fields: {', '.join(sorted(known))}",
            )
        return cls(**data)


@dataclass(frozen=True)
class TrainConfig:
    """Training schedule: float pre-training, then QAT warm-started from it."""

    dataset: DatasetName = DatasetName.DIGITS
    data_dir: str | None = None
    float_epochs: int = 10
    qat_epochs: int = 10
    batch_size: int = 64
    lr: float = 1e-3
    qat_lr: float = 5e-4
    seed: int = 0
    ep_init: bool = True
    max_train_samples: int | None = None  # subsample for quick runs and tests
    num_threads: int | None = None
    # recipes (issue: accuracy at narrow accumulators); all off = the standard recipe
    progressive: bool = False  # tighten P in steps from a loose width, re-projecting each time
    progressive_start: int | None = None  # first width of the schedule (default: target + 6)
    progressive_step: int = 2
    distill: bool = False  # knowledge distillation from the float model
    distill_alpha: float = 0.5  # weight of the distillation term
    distill_temperature: float = 4.0
    reproject_every: int = 0  # re-project onto the integer L1 budget every N steps (0: off)
    reproject_settle_epochs: int = 0  # final epochs of a stage without re-projection
    # post-training quantization (issue #15): AXE instead of QAT, at the same per-layer P
    method: TrainMethod = TrainMethod.QAT
    calibration_samples: int = 512  # AXE: training images for calibration and GPFQ/GPTQ
    ptq_finetune_epochs: int = 0  # AXE: QAT epochs at the same P after AXE (0: none)
    axe_scales: AxeScales = AxeScales.FITTED  # AXE: per-channel weight scales

    def __post_init__(self) -> None:
        object.__setattr__(self, "dataset", enum_value(DatasetName, self.dataset, "dataset"))
        object.__setattr__(self, "method", enum_value(TrainMethod, self.method, "method"))
        object.__setattr__(self, "axe_scales",
                           enum_value(AxeScales, self.axe_scales, "axe_scales"))
        int_in_range(self.calibration_samples, "calibration_samples", 1, 1 << 20)
        int_in_range(self.ptq_finetune_epochs, "ptq_finetune_epochs", 0, 10_000)
        if self.ptq_finetune_epochs and not self.method.post_training:
            raise A2QFlowError(
                f"ptq_finetune_epochs={self.ptq_finetune_epochs} needs a post-training method",
                "use method axe-gpfq or axe-gptq, or set the QAT epochs with qat_epochs")
        int_in_range(self.float_epochs, "float_epochs", 0, 10_000)
        int_in_range(self.qat_epochs, "qat_epochs", 0, 10_000)
        int_in_range(self.batch_size, "batch_size", 1, 1 << 16)
        int_in_range(self.progressive_step, "progressive_step", 1, 16)
        int_in_range(self.reproject_every, "reproject_every", 0, 1 << 20)
        int_in_range(self.reproject_settle_epochs, "reproject_settle_epochs", 0, 10_000)
        if self.progressive_start is not None:
            int_in_range(self.progressive_start, "progressive_start", 2, MAX_ACC_BITS)
        alpha = self.distill_alpha
        if isinstance(alpha, bool) or not isinstance(alpha, int | float) or not 0 <= alpha <= 1:
            raise A2QFlowError(f"distill_alpha={self.distill_alpha!r} is not valid",
                               "use a number from 0 to 1")
        for name in ("lr", "qat_lr", "distill_temperature"):
            v = getattr(self, name)
            if not isinstance(v, int | float) or v <= 0:
                raise A2QFlowError(f"{name}={v!r} is not valid", "use a positive number")

    def to_dict(self) -> dict[str, Any]:
        return {k: (v.value if isinstance(v, Enum) else v) for k, v in
                dataclasses.asdict(self).items()}

    @property
    def recipe_name(self) -> str:
        parts = [p for p, on in (("progressive", self.progressive), ("distill", self.distill),
                                 ("reproject", self.reproject_every > 0)) if on]
        return "+".join(parts) or "standard"


# --- hardware and whole builds -----------------------------------------------------------------

DEFAULT_BOARD = "pynq-z2"
DEFAULT_COMPARE_ACC_BITS = 32
DEFAULT_SYNTH_LAYER_LIMIT_S = 1800.0  # Yosys per module: folded layers take seconds
UNROLLED_GENERATORS = ("a2qflow", "da4ml")  # own pruned adder tree / da4ml's CMVM graph


def read_folding(path: str | Path) -> dict[str, Any]:
    """A FINN folding JSON (``{"<layer>": {"PE": 4, "SIMD": 8}, ...}``), checked for shape."""
    path = Path(path)
    if not path.is_file():
        raise A2QFlowError(f"folding file {path} not found",
                           "give a FINN folding JSON (see configs/folding/)")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise A2QFlowError(f"folding file {path} is not valid JSON ({exc})",
                           "give a FINN folding JSON (see configs/folding/)") from exc
    if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
        raise A2QFlowError(f"folding file {path} is not a FINN folding config",
                           'use {"<layer name>": {"PE": 4, "SIMD": 8}, ...}')
    return data


@dataclass(frozen=True)
class HardwareConfig:
    """The board and the folding to compile for, validated before any stage runs."""

    board: str = DEFAULT_BOARD
    folding: str | None = None  # FINN folding JSON
    # let FINN fold for this throughput (SetFolding); with a folding file too, the file is
    # applied on top, as FINN's builder applies folding_config_file after target_fps
    target_fps: float | None = None
    acc_bits: int | None = None  # force every accumulator to this width (refused if too narrow)
    compare_acc_bits: int | None = DEFAULT_COMPARE_ACC_BITS  # rtl/synth: also at this width
    pnr_seed: int = 1  # ECP5 boards: nextpnr's placement seed (recorded in pnr.json)
    unrolled_generator: str = "a2qflow"  # unrolled layers (SIMD=MW, PE=MH): a2qflow or da4ml
    synth_layer_limit_s: float = DEFAULT_SYNTH_LAYER_LIMIT_S  # synth: Yosys time per module
    backend: RtlBackend = RtlBackend.OWN  # rtl: a2qflow's Verilog or FINN's RTL per layer

    def __post_init__(self) -> None:
        from a2qflow.boards import load_board

        if not isinstance(self.board, str):
            raise A2QFlowError(f"board={self.board!r} is not valid",
                               "give a board name (a2qflow boards)")
        board = load_board(self.board)
        if self.folding is not None:
            read_folding(self.folding)
        if self.target_fps is not None:
            object.__setattr__(self, "target_fps", positive_number(
                self.target_fps, "target_fps", max_fps(board.clock_ns),
                f" fps: one image per clock cycle at {board.name}'s {board.clock_ns:g} ns"))
        for name in ("acc_bits", "compare_acc_bits"):
            if getattr(self, name) is not None:
                int_in_range(getattr(self, name), name, 2, MAX_ACC_BITS)
        int_in_range(self.pnr_seed, "pnr_seed", 0, 2**31 - 1)
        object.__setattr__(self, "synth_layer_limit_s", positive_number(
            self.synth_layer_limit_s, "synth_layer_limit_s", 7 * 24 * 3600.0, " s (a week)"))
        object.__setattr__(self, "backend", enum_value(RtlBackend, self.backend, "backend"))
        if self.unrolled_generator not in UNROLLED_GENERATORS:
            raise A2QFlowError(f"unrolled_generator={self.unrolled_generator!r} is not valid",
                               f"use one of {', '.join(map(repr, UNROLLED_GENERATORS))}")

    @property
    def placed_and_routed(self) -> bool:
        """ECP5 boards get a pnr stage (nextpnr): routed cells, Fmax, a bitstream."""
        from a2qflow.boards import load_board

        return load_board(self.board).is_ecp5

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def max_fps(clock_ns: float) -> float:
    """The highest throughput a dataflow design can have: one image every clock cycle."""
    return 1e9 / clock_ns


STAGE_ORDER = ("train", "export", "import", "compile", "verify", "rtl", "synth", "pnr")
TRAINED_STAGES = ("train", "export", "compile", "verify", "rtl", "synth", "pnr")
IMPORTED_STAGES = ("import", "compile", "verify", "rtl", "synth", "pnr")


@dataclass(frozen=True)
class ImportConfig:
    """A QONNX model a2qflow did not train (``a2qflow import``): the file, test inputs, and
    the P each layer was trained for where the user knows it."""

    model: str
    samples: str | None = None  # .npz with x (and optionally labels y); else generated
    trained_p: dict[str, int] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.model, str) or not self.model:
            raise A2QFlowError(f"model={self.model!r} is not valid", "give a QONNX .onnx path")
        if not Path(self.model).is_file():
            raise A2QFlowError(f"model file {self.model} not found",
                               "give the path of a QONNX .onnx file")
        if self.samples is not None and not Path(self.samples).is_file():
            raise A2QFlowError(f"samples file {self.samples} not found",
                               "give an .npz with an array 'x' (and optionally labels 'y')")
        if not isinstance(self.trained_p, dict):
            raise A2QFlowError("trained_p must be a mapping of layer name to P",
                               "write trained_p: {fc2: 12}")
        for name, p in self.trained_p.items():
            int_in_range(p, f"trained_p.{name}", 2, MAX_ACC_BITS)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class BuildConfig:
    """One build: a model, how to train it, and the hardware to compile it for."""

    name: str = "build"
    model: ModelSpec = dataclasses.field(default_factory=ModelSpec)
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)
    hardware: HardwareConfig = dataclasses.field(default_factory=HardwareConfig)
    stages: tuple[str, ...] | None = None  # default: every stage of this kind of build
    imported: ImportConfig | None = None  # set: the model comes from a QONNX file

    def __post_init__(self) -> None:
        kind = IMPORTED_STAGES if self.imported is not None else TRAINED_STAGES
        if self.stages is None:
            placed = self.hardware.placed_and_routed
            object.__setattr__(self, "stages", tuple(s for s in kind if s != "pnr" or placed))
        if "pnr" in self.stages and not self.hardware.placed_and_routed:
            raise A2QFlowError(f"stages: pnr needs an ECP5 board (board is {self.hardware.board})",
                               "pick an ECP5 board (a2qflow boards: ulx3s-85f, orangecrab-25f, "
                               "ecp5-evn) or drop pnr")
        clash = [s for s in self.stages if s in STAGE_ORDER and s not in kind]
        if clash:
            raise A2QFlowError(
                f"stages: {clash[0]!r} does not belong in "
                + ("an imported build" if self.imported else "a trained build"),
                f"use stages from {', '.join(kind)}")
        if not isinstance(self.name, str) or not self.name.strip():
            raise A2QFlowError(f"name={self.name!r} is not valid", "use a non-empty build name")
        bad = [s for s in self.stages if s not in STAGE_ORDER]
        if bad:
            raise A2QFlowError(f"stages: unknown stage {bad[0]!r}",
                               f"use stages from {', '.join(STAGE_ORDER)}")
        if not self.stages:
            raise A2QFlowError("stages is empty", f"use stages from {', '.join(STAGE_ORDER)}")

    def to_dict(self) -> dict[str, Any]:
        out = {"name": self.name, "model": self.model.to_dict(), "train": self.train.to_dict(),
               "hardware": self.hardware.to_dict(), "stages": list(self.stages)}
        if self.imported is not None:
            out["import"] = self.imported.to_dict()
        return out

    @classmethod
    def from_dict(cls, data: Any, where: str = "config",
                  relative_to: Path | None = None) -> BuildConfig:
        """Validate a whole build config; paths in it are relative to ``relative_to``."""
        if not isinstance(data, dict):
            raise A2QFlowError(f"{where}: expected a mapping", "see configs/*.yaml for examples")
        _no_unknown(data, {"name", "model", "train", "hardware", "stages", "import"}, where)
        train = dict(_section(data, "train", where))
        hardware = dict(_section(data, "hardware", where))
        imported = dict(_section(data, "import", where)) if "import" in data else None
        if relative_to is not None:
            for section, key in ((train, "data_dir"), (hardware, "folding"),
                                 (imported or {}, "model"), (imported or {}, "samples")):
                value = section.get(key)
                if isinstance(value, str) and value and not Path(value).is_absolute():
                    section[key] = str((relative_to / value).resolve())
        stages = data.get("stages")
        if stages is not None and (isinstance(stages, str) or not isinstance(stages, list | tuple)):
            raise A2QFlowError(f"{where}: stages must be a list",
                               f"e.g. stages: [{', '.join(STAGE_ORDER[:2])}]")
        try:
            return cls(name=data.get("name", "build"),
                       model=_typed(ModelSpec, _section(data, "model", where), f"{where}: model"),
                       train=_typed(TrainConfig, train, f"{where}: train"),
                       hardware=_typed(HardwareConfig, hardware, f"{where}: hardware"),
                       stages=None if stages is None else tuple(stages),
                       imported=None if imported is None else
                       _typed(ImportConfig, imported, f"{where}: import"))
        except A2QFlowError as exc:
            if exc.problem.startswith(where):
                raise
            raise A2QFlowError(f"{where}: {exc.problem}", exc.fix) from None


def load_config(path: Path) -> BuildConfig:
    """A build config file (YAML), validated whole before anything runs."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise A2QFlowError(f"build config not found: {path}", "see configs/ for examples")
    try:
        data = yaml.safe_load(path.read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise A2QFlowError(f"{path} is not valid YAML ({exc})", "fix the syntax") from exc
    return BuildConfig.from_dict(data, str(path), relative_to=path.parent)


def _section(data: dict, key: str, where: str) -> dict[str, Any]:
    value = data.get(key) or {}
    if not isinstance(value, dict):
        raise A2QFlowError(f"{where}: {key} must be a mapping", f"write {key}: {{field: value}}")
    return value


def _no_unknown(data: dict, allowed: set[str], where: str) -> None:
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise A2QFlowError(f"{where}: unknown field {unknown[0]!r}",
                           f"allowed fields: {', '.join(sorted(allowed))}")


def _typed(cls: type, data: dict[str, Any], where: str) -> Any:
    _no_unknown(data, {f.name for f in dataclasses.fields(cls)}, where)
    try:
        return cls(**data)
    except A2QFlowError as exc:
        raise A2QFlowError(f"{where}: {exc.problem}", exc.fix) from None
    except TypeError as exc:
        raise A2QFlowError(f"{where}: {exc}", "check the field types") from exc
