"""Per-channel weight scales for AXE, fitted to the calibration data (pure tensor math).

brevitas's AXE keeps each channel's scale at ``max|w| / max_int`` and meets the accumulator
budget by soft-thresholding the integer weights: every surviving weight shrinks by the same
amount, so where the budget binds the channel's output shrinks with it (TFC's hidden layers at
P=9 came out at half their float gain) and the ratios between its weights change. Two cheap
steps fix most of it, and neither touches the integers' budget:

- before a constrained layer is quantized, each channel's scale is multiplied by the factor,
  out of ``SCALE_FACTORS``, whose AXE starting point (soft-thresholded onto the budget,
  rounded) best reproduces the float channel on the calibration data (``search_scale_factors``);
  a larger scale leaves less to threshold away;
- after the layer is quantized, each channel's scale is refitted by least squares to the float
  channel (``least_squares_gains``): the integers stay as they are, so the exact accumulator
  width does too.

Both read the second moments GPFQ/GPTQ already collect: ``H = X̃ X̃ᵀ`` over the quantized
network's inputs, and ``G = X̃ Xᵀ`` pairing them with the float network's (GPFQ; GPTQ fits the
quantized inputs only, so ``G = H`` there). A channel ``w`` and its dequantized weights ``q̂``
reproduce the float outputs best with gain ``a = q̂ G w / q̂ H q̂``, leaving the error
``|Xᵀw|² - (q̂ G w)² / q̂ H q̂``: the larger ``(q̂ G w)² / q̂ H q̂``, the better.
"""

from __future__ import annotations

import torch
from torch import Tensor

SCALE_FACTORS = tuple(2.0 ** (i / 4) for i in range(13))  # 1 .. 8, four steps per octave
GAIN_RANGE = (1 / 8, 8.0)  # a refitted gain is clamped to this (beyond it, a fit to noise)


def l1_ball_threshold(v: Tensor, radius: float) -> Tensor:
    """Per row of the non-negative ``v``: the ``t >= 0`` with ``sum(relu(v - t)) == radius``
    (0 where the row's sum is already within ``radius``), as in Duchi et al.'s projection
    onto the L1 ball. Shape ``v.shape[:-1]``."""
    u = torch.sort(v, dim=-1, descending=True).values
    excess = torch.cumsum(u, dim=-1) - radius
    k = torch.arange(1, v.shape[-1] + 1, dtype=v.dtype, device=v.device)
    rho = (u * k > excess).sum(dim=-1).clamp_min(1)  # how many stay non-zero
    theta = torch.gather(excess, -1, (rho - 1).unsqueeze(-1)).squeeze(-1) / rho
    return torch.where(v.sum(dim=-1) <= radius, torch.zeros_like(theta), theta.clamp_min(0))


def thresholded_integers(w_int: Tensor, radius: float, max_int: int) -> Tensor:
    """AXE's starting point for weights ``w_int`` in integer units: each row soft-thresholded by
    the L1-ball threshold of its mean-centred magnitudes (as AXE's thresholds are computed),
    rounded and clipped to the weight format."""
    theta = l1_ball_threshold((w_int - w_int.mean(dim=-1, keepdim=True)).abs(), radius)
    shrunk = w_int.sign() * torch.relu(w_int.abs() - theta.unsqueeze(-1))
    return shrunk.round().clamp(-max_int, max_int)


def fit_terms(q_hat: Tensor, w: Tensor, g: Tensor, h: Tensor) -> tuple[Tensor, Tensor]:
    """Per channel (row): ``q̂ G w`` and ``q̂ H q̂``."""
    return ((q_hat @ g) * w).sum(dim=-1), ((q_hat @ h) * q_hat).sum(dim=-1)


def search_scale_factors(w: Tensor, scale: Tensor, g: Tensor, h: Tensor, radius: float,
                         max_int: int, factors: tuple[float, ...] = SCALE_FACTORS) -> Tensor:
    """Per channel, the factor for ``scale`` (one value per row of ``w``) whose thresholded,
    rounded weights explain the most of the float channel, ``(q̂ G w)² / q̂ H q̂``."""
    best = torch.full(scale.shape, -1.0, dtype=w.dtype)
    chosen = torch.ones_like(scale)
    for factor in factors:
        s = scale * factor
        q_hat = thresholded_integers(w / s.unsqueeze(-1), radius, max_int) * s.unsqueeze(-1)
        num, den = fit_terms(q_hat, w, g, h)
        score = torch.where(den > 0, num.clamp_min(0) ** 2 / den.clamp_min(1e-30),
                            torch.zeros_like(den))
        better = score > best
        best = torch.where(better, score, best)
        chosen = torch.where(better, torch.full_like(chosen, factor), chosen)
    return chosen


def least_squares_gains(q_hat: Tensor, w: Tensor, g: Tensor, h: Tensor) -> Tensor:
    """Per channel, the gain ``a`` minimizing ``|Xᵀw - a X̃ᵀq̂|²``, clamped to ``GAIN_RANGE``;
    1 where the channel is all zero or the fit is not a positive gain."""
    num, den = fit_terms(q_hat, w, g, h)
    gain = (num / den.clamp_min(1e-30)).clamp(*GAIN_RANGE)
    return torch.where((den > 0) & (num > 0), gain, torch.ones_like(gain))
