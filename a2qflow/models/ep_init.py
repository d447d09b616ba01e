"""EP-init (A2Q+ paper, section 4): start QAT from the float weights projected onto the L1 ball
that the accumulator bound allows, instead of letting the clamp zero most of them at once.

The projection is the sort-based Euclidean projection onto the L1 ball (Duchi et al., ICML 2008),
vectorised over output channels.
"""

from __future__ import annotations

import torch
from brevitas.core.scaling import AccumulatorAwareParameterPreScaling
from torch import Tensor, nn

from a2qflow.models import hooked_forward, weight_layers


def project_rows_onto_l1_ball(w: Tensor, radius: Tensor) -> Tensor:
    """Closest (Euclidean) rows with ``||row||_1 <= radius``; rows already inside are unchanged."""
    mag = w.abs()
    radius = radius.reshape(-1, 1).to(w.dtype)
    sorted_mag, _ = mag.sort(dim=1, descending=True)
    cumsum = sorted_mag.cumsum(dim=1)
    j = torch.arange(1, w.shape[1] + 1, dtype=w.dtype, device=w.device)
    active = sorted_mag * j > (cumsum - radius)  # prefix of True values
    rho = active.sum(dim=1, keepdim=True).clamp(min=1)
    theta = (cumsum.gather(1, rho - 1) - radius) / rho.to(w.dtype)
    projected = w.sign() * (mag - theta.clamp(min=0)).clamp(min=0)
    inside = mag.sum(dim=1, keepdim=True) <= radius
    return torch.where(inside, w, projected)


def project_rows_onto_integer_budget(w: Tensor, scale: Tensor, budget: Tensor) -> Tensor:
    """Rows whose round-toward-zero integers spend the L1 budget; rows already inside unchanged.

    A2Q quantizers round toward zero, so after the Euclidean projection of a long row most
    entries sit below one quantization step and truncate to 0: the budget goes unspent and, at
    narrow P, whole layers go dark. Here magnitudes (in steps) are lowered by the smallest shift
    whose truncated survivors, each placed half a step above its integer (so small updates do not
    change it), fit the budget ``T``: ``sum(q + 1/2) <= T`` over the survivors ``q >= 1``.
    """
    steps = w.abs() / scale.reshape(-1, 1)
    budget = budget.reshape(-1, 1).to(w.dtype)

    def kept(shift: Tensor) -> Tensor:
        q = torch.floor((steps - shift).clamp(min=0))
        return torch.where(q >= 1, q + 0.5, torch.zeros_like(q))

    lo = torch.zeros_like(budget)
    hi = steps.max(dim=1, keepdim=True).values
    for _ in range(40):  # bisection on the shift; the spend falls as the shift grows
        mid = (lo + hi) / 2
        over = kept(mid).sum(dim=1, keepdim=True) > budget
        lo, hi = torch.where(over, mid, lo), torch.where(over, hi, mid)
    projected = w.sign() * kept(hi) * scale.reshape(-1, 1)
    inside = steps.sum(dim=1, keepdim=True) <= budget
    return torch.where(inside, w, projected)


def _pre_scaling(layer: nn.Module) -> AccumulatorAwareParameterPreScaling | None:
    for m in layer.modules():
        if isinstance(m, AccumulatorAwareParameterPreScaling):
            return m
    return None


@torch.no_grad()
def apply_ep_init(model: nn.Module, sample: Tensor, zero_centre: bool,
                  integer_budget: bool = False) -> int:
    """Project every accumulator-aware layer's weights onto its L1 ball; returns layers touched.

    The radius is ``s * T`` per channel (scale times the bound in integer units), read from the
    quantizer itself during one forward pass, so the input bit width is the one the layer sees.
    ``integer_budget`` uses :func:`project_rows_onto_integer_budget` instead of the Euclidean
    projection (the re-projection recipe).
    """
    targets = {n: (layer, pre) for n, layer in weight_layers(model)
               if (pre := _pre_scaling(layer)) is not None}
    scales: dict[str, Tensor] = {}
    budgets: dict[str, Tensor] = {}

    def capture(name: str, pre: AccumulatorAwareParameterPreScaling):
        def hook(_m, args, _out):
            weights, input_bits, input_signed = args
            scale = pre.scaling_impl(weights).reshape(weights.shape[0], -1)[:, :1].flatten()
            scales[name] = scale
            budgets[name] = pre.calc_max_l1_norm(input_bits, input_signed) * torch.ones_like(scale)
        return hook

    hooked_forward(model, sample,
                   [pre.register_forward_hook(capture(n, pre)) for n, (_l, pre) in targets.items()])

    for name, (layer, pre) in targets.items():
        w = layer.weight.reshape(layer.weight.shape[0], -1)
        if zero_centre:
            w = w - w.mean(dim=1, keepdim=True)
        if integer_budget:
            projected = project_rows_onto_integer_budget(w, scales[name], budgets[name])
        else:
            projected = project_rows_onto_l1_ball(w, scales[name] * budgets[name])
        layer.weight.copy_(projected.reshape(layer.weight.shape))
        # the learned norm g starts at the projected weights' norm (inside the bound)
        norm = projected.abs().sum(dim=1).clamp(min=1e-8).reshape(pre.value.shape)
        restrict = pre.restrict_clamp_scaling.restrict_value_impl
        pre.value.copy_(restrict.restrict_init_tensor(norm))
    return len(targets)
