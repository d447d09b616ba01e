"""Quantizer recipes: which brevitas quantizer each layer gets, composed from brevitas's own.

A recipe is declared, not coded: a layer's weight quantizer is chosen from the model's
``QuantMethod`` and the layer's accumulator target (None = unconstrained).
"""

from __future__ import annotations

from typing import Any

from brevitas.core.scaling import ScalingImplType
from brevitas.quant.scaled_int import (
    Int8AccumulatorAwareWeightQuant,
    Int8AccumulatorAwareZeroCenterWeightQuant,
    Int8WeightPerChannelFloat,
    Uint8ActPerTensorFloat,
)

from a2qflow.config import QuantMethod


class UnitRangeInputQuant(Uint8ActPerTensorFloat):
    """Unsigned N-bit input on the grid ``k / (2^N - 1)``: data sets deliver pixels in [0, 1]."""

    scaling_impl_type = ScalingImplType.CONST
    max_val = 1.0


class A2QWeightQuant(Int8AccumulatorAwareWeightQuant):
    """A2Q: per-channel L1 norm clamped to ``(2^(P-1) - 1) * 2^(1_s - N)`` (round-to-zero)."""


class A2QPlusWeightQuant(Int8AccumulatorAwareZeroCenterWeightQuant):
    """A2Q+: zero-centred per-channel weights, L1 norm clamped to ``(2^P - 2) / (2^N - 1)``."""


class BaselineWeightQuant(Int8WeightPerChannelFloat):
    """Plain per-channel QAT weights: the reference without an accumulator constraint."""


def weight_quant_kwargs(
    method: QuantMethod, weight_bits: int, acc_bits: int | None
) -> dict[str, Any]:
    """Keyword arguments for a brevitas QuantLinear/QuantConv2d weight quantizer."""
    if method is QuantMethod.FLOAT:
        raise ValueError("float layers take no weight quantizer")
    if acc_bits is None or not method.accumulator_aware:
        return {"weight_quant": BaselineWeightQuant, "weight_bit_width": weight_bits}
    quant = A2QWeightQuant if method is QuantMethod.A2Q else A2QPlusWeightQuant
    return {
        "weight_quant": quant,
        "weight_bit_width": weight_bits,
        "weight_accumulator_bit_width": acc_bits,
    }
