"""What a trained model's integer weights prove: one report per weight layer.

The exact accumulator width is computed from the integer weights the quantizer really emits,
and the input format from the QuantTensor the layer really receives (captured in a forward
pass), never from the configuration: a checkpoint can carry a different width than its spec
says (seen with brevitas 0.13.4), so only the trained weights are evidence.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from brevitas.nn.quant_layer import QuantWeightBiasInputOutputLayer
from torch import nn

from a2qflow import bounds
from a2qflow.config import ModelSpec, QuantMethod
from a2qflow.errors import A2QFlowError
from a2qflow.models import hooked_forward, weight_layers
from a2qflow.models.layers import layer_acc_bits

ACC_BITS_KEY = "pre_scaling_impl.accumulator_bit_width.bit_width"


@dataclass
class LayerReport:
    name: str
    op: str  # "linear" | "conv"
    quant: str  # the layer's quantizer: float / baseline / a2q / a2q+
    acc_bits: int | None  # trained target P, None when unconstrained
    input_bits: int | None
    input_signed: bool | None
    weight_bits: int | None
    k: int
    channels: int
    max_l1: int | None = None
    l1_limit: float | None = None  # the layer's own bound at its P (A2Q or A2Q+)
    zero_centred: bool | None = None
    exact_bits: int | None = None
    sparsity: float | None = None
    dead_channels: int | None = None  # output channels whose integer weights are all zero
    int_weights: np.ndarray | None = field(default=None, repr=False)
    weight_scale: np.ndarray | None = field(default=None, repr=False)

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("int_weights")
        d.pop("weight_scale")
        return d

    @property
    def within_target(self) -> bool:
        return self.acc_bits is None or self.exact_bits is None or self.exact_bits <= self.acc_bits


def layer_quant_method(spec: ModelSpec, acc_bits: int | None) -> QuantMethod:
    if spec.quant is QuantMethod.FLOAT:
        return QuantMethod.FLOAT
    return spec.quant if acc_bits is not None else QuantMethod.BASELINE


def l1_limit(method: QuantMethod, acc_bits: int, input_bits: int, input_signed: bool) -> float:
    if method is QuantMethod.A2Q:
        return bounds.a2q_l1_limit(acc_bits, input_bits, input_signed)
    return bounds.a2q_plus_l1_limit(acc_bits, input_bits)


@torch.no_grad()
def layer_reports(model: nn.Module, spec: ModelSpec, sample: torch.Tensor) -> list[LayerReport]:
    """Analyse every weight layer of ``model`` after one eval-mode forward pass on ``sample``."""
    named = weight_layers(model)
    captured: dict[str, Any] = {}
    hooked_forward(model, sample, [
        m.register_forward_pre_hook(lambda _m, args, name=n: captured.__setitem__(name, args[0]))
        for n, m in named
    ])

    reports = []
    for index, (name, layer) in enumerate(named):
        acc_bits = layer_acc_bits(spec, index, len(named))
        method = layer_quant_method(spec, acc_bits)
        weight = layer.weight
        rep = LayerReport(
            name=name,
            op="conv" if isinstance(layer, nn.Conv2d) else "linear",
            quant=method.value,
            acc_bits=acc_bits,
            input_bits=None,
            input_signed=None,
            weight_bits=None,
            k=int(weight[0].numel()),
            channels=int(weight.shape[0]),
        )
        if isinstance(layer, QuantWeightBiasInputOutputLayer):
            _fill_quantized(rep, layer, captured[name], method)
        reports.append(rep)
    return reports


def _fill_quantized(rep: LayerReport, layer: nn.Module, quant_input: Any,
                    method: QuantMethod) -> None:
    qw = layer.quant_weight(quant_input=quant_input)
    q = qw.int().detach().cpu().numpy().astype(np.int64).reshape(rep.channels, -1)
    rep.int_weights = q
    rep.weight_scale = qw.scale.detach().cpu().numpy()
    rep.weight_bits = int(qw.bit_width)
    rep.input_bits = int(quant_input.bit_width)
    rep.input_signed = bool(quant_input.signed)
    rep.max_l1 = bounds.max_channel_l1(q)
    rep.zero_centred = bounds.is_zero_centred(q)
    rep.exact_bits = bounds.exact_accumulator_bits(q, rep.input_bits, rep.input_signed)
    rep.sparsity = float((q == 0).mean())
    rep.dead_channels = int((~q.any(axis=1)).sum())
    trained_p = stored_accumulator_bits(layer)
    if trained_p is not None:
        # the state dict, not the spec, is what the quantizer enforces: report what it holds
        rep.acc_bits = trained_p
    if rep.acc_bits is not None and method.accumulator_aware:
        rep.l1_limit = l1_limit(method, rep.acc_bits, rep.input_bits, rep.input_signed)


def stored_accumulator_bits(layer: nn.Module) -> int | None:
    """The accumulator width brevitas holds in the layer's state (None if not A2Q)."""
    for key, value in layer.state_dict().items():
        if key.endswith(ACC_BITS_KEY):
            return int(round(float(value)))
    return None


def dead_channel_warnings(reports: list[LayerReport]) -> list[str]:
    """Layers that kept some weights but lost whole output channels (constant outputs)."""
    return [f"{r.name}: {r.dead_channels} of {r.channels} output channels have only zero "
            f"weights (P={r.acc_bits}); consider a larger P for this layer"
            for r in reports if r.dead_channels and r.dead_channels < r.channels]


def collapsed_layers(reports: list[LayerReport]) -> list[LayerReport]:
    """Quantized layers whose integer weights are all zero."""
    return [r for r in reports if r.int_weights is not None and not r.int_weights.any()]


def check_stored_widths(model: nn.Module, spec: ModelSpec) -> None:
    """The width brevitas enforces (state dict) must be the width the spec asks for."""
    named = weight_layers(model)
    for index, (name, layer) in enumerate(named):
        stored = stored_accumulator_bits(layer)
        wanted = layer_acc_bits(spec, index, len(named))
        if stored is not None and stored != wanted:
            raise A2QFlowError(
                f"layer {name} enforces P={stored} but the model spec asks for P={wanted}",
                "the checkpoint was trained at another width; warm-start with --init-from, "
                "which drops the stored width, instead of loading it as is",
            )


def forward_with_activation_integers(model: nn.Module, x: torch.Tensor
                                     ) -> tuple[np.ndarray, list[np.ndarray], list[np.ndarray]]:
    """The eval-mode output for ``x`` and, from the same pass, the integers every activation
    quantizer (QuantIdentity, QuantReLU) emits and its input in LSBs, in call order, which is
    the order of the activation ``Quant`` nodes in the export: what the export and verify
    checks compare a diverging sample against. One pass, because float rounding depends on the
    batch torch computes."""
    from brevitas.nn import QuantIdentity, QuantReLU

    seen: list[np.ndarray] = []
    inputs: list[np.ndarray] = []

    def record(_module: nn.Module, inp: Any, out: Any) -> None:
        pre = getattr(inp[0], "value", inp[0]) / out.scale + out.zero_point
        seen.append(np.rint((out.value / out.scale + out.zero_point).detach().numpy()))
        inputs.append(pre.detach().numpy())

    handles = [m.register_forward_hook(record) for m in model.modules()
               if isinstance(m, QuantIdentity | QuantReLU)]
    out = hooked_forward(model, x, handles)  # eval mode, no grad
    return np.asarray(getattr(out, "value", out)), seen, inputs
