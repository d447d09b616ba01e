"""AXE's fitted per-channel scales: the pure math (projection threshold, the AXE starting
point, the scale search and the least-squares gain)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from a2qflow import axe_scales


def _duchi_threshold(v: np.ndarray, radius: float) -> float:
    """Reference: the threshold of Duchi et al.'s L1-ball projection, one row at a time."""
    if v.sum() <= radius:
        return 0.0
    u = np.sort(v)[::-1]
    css = np.cumsum(u)
    rho = np.nonzero(u * np.arange(1, len(u) + 1) > css - radius)[0][-1]
    return float(css[rho] - radius) / (rho + 1)


@pytest.mark.parametrize("radius", [0.5, 3.0, 17.0, 1e6])
def test_l1_ball_threshold_matches_the_projection(radius):
    v = torch.rand(16, 40, generator=torch.Generator().manual_seed(1), dtype=torch.float64) * 7
    theta = axe_scales.l1_ball_threshold(v, radius)
    expected = [_duchi_threshold(row.numpy(), radius) for row in v]
    assert theta.numpy() == pytest.approx(expected, abs=1e-9)
    shrunk = torch.relu(v - theta.unsqueeze(-1)).sum(dim=-1)
    assert torch.all(shrunk <= radius + 1e-9)
    assert torch.all((theta == 0) | (shrunk - radius).abs().lt(1e-9))


def test_thresholded_integers_stay_in_the_weight_format():
    w = torch.randn(8, 100, generator=torch.Generator().manual_seed(0)) * 6
    q = axe_scales.thresholded_integers(w, 30.0, 7)
    assert torch.equal(q, q.round()) and q.abs().max() <= 7
    assert (q == 0).float().mean() > (w.round() == 0).float().mean()  # the budget binds


def _moments(k: int, n: int = 4096, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.rand(k, n, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    h = x @ x.T / n
    return h, h  # quantized inputs equal to the float ones: G = H


def test_least_squares_gain_recovers_a_known_gain():
    h, g = _moments(32)
    w = torch.randn(4, 32, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    q_hat = w / torch.tensor([[2.0], [0.5], [1.0], [3.0]], dtype=torch.float64)
    gains = axe_scales.least_squares_gains(q_hat, w, g, h)
    assert gains.numpy() == pytest.approx([2.0, 0.5, 1.0, 3.0])


def test_least_squares_gain_keeps_zero_and_sign_flipped_channels_and_clamps():
    h, g = _moments(8)
    w = torch.ones(3, 8, dtype=torch.float64)
    q_hat = torch.stack([torch.zeros(8), -torch.ones(8), torch.ones(8) / 100]).double()
    gains = axe_scales.least_squares_gains(q_hat, w, g, h)
    assert gains.tolist() == [1.0, 1.0, axe_scales.GAIN_RANGE[1]]


def _score(w, s, g, h, radius):
    q_hat = axe_scales.thresholded_integers(w / s.unsqueeze(-1), radius, 7) * s.unsqueeze(-1)
    num, den = axe_scales.fit_terms(q_hat, w, g, h)
    return num ** 2 / den


def test_search_grows_the_scale_where_the_budget_binds():
    h, g = _moments(64)
    w = torch.randn(6, 64, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    scale = w.abs().amax(dim=-1) / 7
    tight = axe_scales.search_scale_factors(w, scale, g, h, radius=20.0, max_int=7)
    assert set(tight.tolist()) <= set(axe_scales.SCALE_FACTORS) and torch.all(tight > 1.0)
    assert torch.all(_score(w, scale * tight, g, h, 20.0) > _score(w, scale, g, h, 20.0))
    loose = axe_scales.search_scale_factors(w, scale, g, h, radius=1e6, max_int=7)
    assert loose.mean() < tight.mean()  # rounding alone asks for less
