"""Training recipes for narrow accumulators, composed on top of the standard QAT loop.

- progressive tightening: train at a loose width first and step down to the target P, warm
  starting each step from the last (without its stored width) and re-projecting (EP-init) onto
  the tighter L1 ball, so no step has to jump from float weights straight to a tiny ball;
- knowledge distillation from the float model (Hinton et al. 2015): the soft targets keep the
  information that the hard labels and a heavily clamped student lose;
- re-projection: every N optimizer steps, project the weights so that their round-toward-zero
  integers spend the layer's L1 budget (projected gradient descent onto what the quantizer can
  represent). Without it, long rows at narrow P drift dense, truncate to all zeros and the
  network collapses (CNV at P=10).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from a2qflow.bounds import MAX_ACC_BITS
from a2qflow.config import ModelSpec, TrainConfig
from a2qflow.models.ep_init import apply_ep_init

DEFAULT_PROGRESSIVE_SPAN = 6

LossFn = Callable[[Tensor, Tensor, Tensor], Tensor]  # (logits, inputs, labels) -> loss


def width_schedule(target: int, start: int | None, step: int) -> list[int]:
    """Widths from ``start`` down to ``target`` in ``step``s, always ending at ``target``."""
    start = min(MAX_ACC_BITS, target + DEFAULT_PROGRESSIVE_SPAN if start is None else start)
    if start <= target:
        return [target]
    widths = list(range(start, target, -step))
    return widths + [target]


def shifted_spec(spec: ModelSpec, offset: int) -> ModelSpec:
    """The spec with every constrained layer's P raised by ``offset`` (capped at MAX_ACC_BITS)."""

    def shift(p: int | None) -> int | None:
        return None if p is None else min(MAX_ACC_BITS, p + offset)

    return dataclasses.replace(spec, acc_bits=shift(spec.acc_bits),
                               first_acc_bits=shift(spec.first_acc_bits),
                               last_acc_bits=shift(spec.last_acc_bits))


def qat_stages(spec: ModelSpec, cfg: TrainConfig) -> list[tuple[ModelSpec, int]]:
    """(spec, epochs) per QAT stage; one stage at the target for the standard recipe."""
    if not (cfg.progressive and spec.quant.accumulator_aware):
        return [(spec, cfg.qat_epochs)]
    widths = width_schedule(spec.acc_bits, cfg.progressive_start, cfg.progressive_step)
    n = len(widths)
    # the target width gets the remainder: it is the model we keep
    epochs = [cfg.qat_epochs // n] * (n - 1) + [cfg.qat_epochs - (cfg.qat_epochs // n) * (n - 1)]
    return [(shifted_spec(spec, w - spec.acc_bits), e) for w, e in zip(widths, epochs, strict=True)]


def cross_entropy() -> LossFn:
    return lambda logits, _x, y: F.cross_entropy(logits, y)


def distillation(teacher: nn.Module, alpha: float, temperature: float) -> LossFn:
    """``(1 - a) * CE(y) + a * T^2 * KL(teacher_T || student_T)``."""
    teacher.eval()

    def loss(logits: Tensor, x: Tensor, y: Tensor) -> Tensor:
        with torch.no_grad():
            soft = F.softmax(teacher(x) / temperature, dim=1)
        kl = F.kl_div(F.log_softmax(logits / temperature, dim=1), soft, reduction="batchmean")
        return (1 - alpha) * F.cross_entropy(logits, y) + alpha * temperature**2 * kl

    return loss


def reprojection(model: nn.Module, sample: Tensor, zero_centre: bool,
                 every: int, until: int) -> Callable[[int], None]:
    """A step hook that re-projects ``model`` onto its integer L1 budgets every ``every`` steps
    up to step ``until``; the steps after it let batch-norm statistics and weights settle on
    what the quantizer keeps (a projection at the very last step leaves the running statistics
    describing weights that are no longer there)."""
    def after_step(step: int) -> None:
        if step % every == 0 and step <= until:
            apply_ep_init(model, sample, zero_centre, integer_budget=True)
    return after_step


def reprojection_until(epochs: int, steps_per_epoch: int, settle_epochs: int) -> int:
    """The last step that may re-project: all but the final ``settle_epochs``, and never less
    than the first epoch (a settle phase as long as the stage would switch the recipe off)."""
    return max(1, epochs - settle_epochs) * steps_per_epoch if epochs else 0
