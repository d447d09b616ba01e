"""Network definitions (TFC, CNV) in float, baseline-QAT, A2Q and A2Q+ forms."""

from __future__ import annotations

from torch import nn

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


def weight_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Linear and conv layers in forward order (the order of MatMul/Conv nodes in the export)."""
    return [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Linear | nn.Conv2d)]


__all__ = ["build_model", "weight_layers"]
