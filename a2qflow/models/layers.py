"""Layer factories shared by the topologies: float and quantized twins with identical names.

Float and quantized models have the same module tree, so a float checkpoint's weights and
batch-norm statistics load into the quantized model by name (the warm start).
"""

from __future__ import annotations

import brevitas.nn as qnn
from torch import nn

from a2qflow.config import ModelSpec, QuantMethod
from a2qflow.models.quantizers import UnitRangeInputQuant, weight_quant_kwargs


def input_layer(spec: ModelSpec) -> nn.Module:
    if spec.quant is QuantMethod.FLOAT:
        return nn.Identity()
    return qnn.QuantIdentity(
        act_quant=UnitRangeInputQuant, bit_width=spec.input_bits, return_quant_tensor=True
    )


def activation(spec: ModelSpec) -> nn.Module:
    if spec.quant is QuantMethod.FLOAT:
        return nn.ReLU()
    return qnn.QuantReLU(bit_width=spec.act_bits, return_quant_tensor=True)


def linear(spec: ModelSpec, in_f: int, out_f: int, acc_bits: int | None) -> nn.Module:
    # no bias: FINN folds biases into thresholds, so the accumulator sees only q . x
    if spec.quant is QuantMethod.FLOAT:
        return nn.Linear(in_f, out_f, bias=False)
    return qnn.QuantLinear(
        in_f, out_f, bias=False, **weight_quant_kwargs(spec.quant, spec.weight_bits, acc_bits)
    )


def conv(spec: ModelSpec, in_c: int, out_c: int, acc_bits: int | None) -> nn.Module:
    if spec.quant is QuantMethod.FLOAT:
        return nn.Conv2d(in_c, out_c, 3, bias=False)
    return qnn.QuantConv2d(
        in_c, out_c, 3, bias=False, **weight_quant_kwargs(spec.quant, spec.weight_bits, acc_bits)
    )


def layer_acc_bits(spec: ModelSpec, index: int, count: int) -> int | None:
    """The accumulator policy: hidden layers at P, first and last as configured (None = free)."""
    if not spec.quant.accumulator_aware:
        return None
    if index == 0:
        return spec.first_acc_bits
    if index == count - 1:
        return spec.last_acc_bits
    return spec.acc_bits
