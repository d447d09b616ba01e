"""Typed configuration for every stage, validated on construction.

One place for the knobs; the CLI only fills these dataclasses. Validation errors name the
field and the allowed values.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from enum import Enum
from typing import Any

from a2qflow.errors import A2QFlowError


class QuantMethod(str, Enum):
    """How a network's weights are quantized."""

    FLOAT = "float"  # no quantization (the pre-training model)
    BASELINE = "baseline"  # QAT, per-channel weights, no accumulator constraint
    A2Q = "a2q"  # accumulator-aware (Colbert et al. 2023)
    A2Q_PLUS = "a2q+"  # zero-centred accumulator-aware (Colbert et al. 2024)

    @property
    def accumulator_aware(self) -> bool:
        return self in (QuantMethod.A2Q, QuantMethod.A2Q_PLUS)


class Arch(str, Enum):
    TFC = "tfc"  # FINN's MLP: 3 hidden layers of 64 (width configurable)
    CNV = "cnv"  # FINN's CIFAR-10 CNN: 6 conv + 3 FC


class DatasetName(str, Enum):
    DIGITS = "digits"
    MNIST = "mnist"
    FASHION_MNIST = "fashion-mnist"
    CIFAR10 = "cifar10"


def _enum(enum_cls: type[Enum], value: Any, field_name: str) -> Any:
    try:
        return enum_cls(value)
    except ValueError:
        allowed = ", ".join(repr(m.value) for m in enum_cls)
        raise A2QFlowError(
            f"{field_name}={value!r} is not valid", f"use one of {allowed}"
        ) from None


def _int_range(value: Any, field_name: str, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise A2QFlowError(
            f"{field_name}={value!r} is not valid", f"use an integer from {lo} to {hi}"
        )
    return value


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
        object.__setattr__(self, "arch", _enum(Arch, self.arch, "arch"))
        object.__setattr__(self, "quant", _enum(QuantMethod, self.quant, "quant"))
        _int_range(self.weight_bits, "weight_bits", 2, 8)
        _int_range(self.act_bits, "act_bits", 1, 8)
        _int_range(self.input_bits, "input_bits", 1, 8)
        _int_range(self.acc_bits, "acc_bits", 2, 32)
        for name in ("first_acc_bits", "last_acc_bits"):
            if getattr(self, name) is not None:
                _int_range(getattr(self, name), name, 2, 32)
        _int_range(self.hidden, "hidden", 1, 4096)
        _int_range(self.in_features, "in_features", 1, 1 << 20)
        _int_range(self.num_classes, "num_classes", 2, 1000)

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

    def __post_init__(self) -> None:
        object.__setattr__(self, "dataset", _enum(DatasetName, self.dataset, "dataset"))
        _int_range(self.float_epochs, "float_epochs", 0, 10_000)
        _int_range(self.qat_epochs, "qat_epochs", 0, 10_000)
        _int_range(self.batch_size, "batch_size", 1, 1 << 16)
        _int_range(self.progressive_step, "progressive_step", 1, 16)
        _int_range(self.reproject_every, "reproject_every", 0, 1 << 20)
        _int_range(self.reproject_settle_epochs, "reproject_settle_epochs", 0, 10_000)
        if self.progressive_start is not None:
            _int_range(self.progressive_start, "progressive_start", 2, 32)
        if not 0.0 <= self.distill_alpha <= 1.0:
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
