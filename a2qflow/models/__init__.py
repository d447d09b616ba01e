"""Network definitions (TFC, CNV) in float, baseline-QAT, A2Q and A2Q+ forms."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.hooks import RemovableHandle

from a2qflow.config import Arch, ModelSpec
from a2qflow.models.cnv import CNV
from a2qflow.models.tfc import TFC


def build_model(spec: ModelSpec) -> nn.Module:
    """A fresh model for ``spec`` (float or quantized, per ``spec.quant``)."""
    if spec.arch is Arch.TFC:
        return TFC(spec)
    if spec.arch is Arch.CNV:
        return CNV(spec)
    raise AssertionError(f"unhandled arch {spec.arch}")


@torch.no_grad()
def hooked_forward(model: nn.Module, sample: Tensor, handles: list[RemovableHandle]) -> Any:
    """One eval-mode forward pass that the given hooks observe, returning the model's output;
    the hooks are removed afterwards and the model's train/eval mode is restored."""
    was_training = model.training
    model.eval()
    try:
        return model(sample)
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)


def weight_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Linear and conv layers in forward order (the order of MatMul/Conv nodes in the export)."""
    return [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Linear | nn.Conv2d)]


__all__ = ["build_model", "hooked_forward", "weight_layers"]
