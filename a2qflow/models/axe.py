"""The network an AXE (post-training) checkpoint holds: the spec's model with AXE's weight
quantizers. Shared by the train stage (which builds it) and the checkpoint reader (which
rebuilds it), so neither imports the other."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import brevitas.nn as qnn
from brevitas.core.scaling import ParameterFromStatsFromParameterScaling
from brevitas.quant.scaled_int import Int8WeightPerChannelFloat
from torch import nn

from a2qflow.config import ModelSpec, QuantMethod, TrainConfig, TrainMethod
from a2qflow.models import build_model, weight_layers


class AXEWeightQuant(Int8WeightPerChannelFloat):
    """Per-channel narrow-range weights, round to nearest, scale a parameter initialised once
    from the float weights' max |w| (brevitas's PTQ examples use the same scaling for GPxQ)."""

    scaling_impl = ParameterFromStatsFromParameterScaling


# --- the model a post-training checkpoint holds ---------------------------------------------


def _parent(model: nn.Module, name: str) -> tuple[nn.Module, str]:
    path, _, leaf = name.rpartition(".")
    return (model.get_submodule(path) if path else model), leaf


def build_axe_model(spec: ModelSpec) -> nn.Module:
    """``spec``'s network with quantized inputs and activations and AXE's weight quantizers
    on every weight layer (module names as in the float and QAT models)."""
    model = build_model(dataclasses.replace(spec, quant=QuantMethod.BASELINE))
    for name, layer in weight_layers(model):
        kwargs = {"bias": False, "weight_quant": AXEWeightQuant,
                  "weight_bit_width": spec.weight_bits}
        if isinstance(layer, nn.Conv2d):
            new: nn.Module = qnn.QuantConv2d(
                layer.in_channels, layer.out_channels, layer.kernel_size, stride=layer.stride,
                padding=layer.padding, dilation=layer.dilation, groups=layer.groups, **kwargs)
        else:
            new = qnn.QuantLinear(layer.in_features, layer.out_features, **kwargs)
        parent, leaf = _parent(model, name)
        setattr(parent, leaf, new)
    return model


def holds_axe_model(train_config: Mapping[str, Any] | TrainConfig | None) -> bool:
    """Whether a checkpoint written with this training config holds AXE's quantizers (an AXE
    run without fine-tuning); with a QAT fine-tune it holds the spec's own QAT model."""
    if train_config is None:
        return False
    if isinstance(train_config, TrainConfig):
        train_config = train_config.to_dict()
    method = TrainMethod(train_config.get("method", TrainMethod.QAT.value))
    return method.post_training and not train_config.get("ptq_finetune_epochs", 0)


def model_for_checkpoint(spec: ModelSpec,
                         train_config: Mapping[str, Any] | TrainConfig | None) -> nn.Module:
    """A fresh model with the module tree a checkpoint of ``spec`` and ``train_config`` holds."""
    return build_axe_model(spec) if holds_axe_model(train_config) else build_model(spec)
