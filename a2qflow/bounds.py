"""Accumulator bounds: pure functions, no I/O.

Train, compile and verify all import these, so they cannot disagree about what a width proves.

Notation: a dot product ``acc = sum_i q_i * x_i`` of K integer weights ``q`` with integer inputs
``x`` of N bits (unsigned: ``[0, 2^N - 1]``; signed: ``[-2^(N-1), 2^(N-1) - 1]``), accumulated in a
signed P-bit register ``[-2^(P-1), 2^(P-1) - 1]``. Weight matrices are ``(channels, K)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

MAX_ACC_BITS = 32  # the widest accumulator a2qflow trains for, builds or searches (FINN: INT32)


def input_range(bits: int, signed: bool) -> tuple[int, int]:
    """Integer range of an N-bit input."""
    if bits < 1:
        raise ValueError(f"input bits must be >= 1, got {bits}")
    if signed:
        return -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    return 0, (1 << bits) - 1


def signed_range(bits: int) -> tuple[int, int]:
    """Range of a signed two's-complement register of ``bits`` bits."""
    return -(1 << (bits - 1)), (1 << (bits - 1)) - 1


def signed_bits_for_range(lo: int, hi: int) -> int:
    """Smallest signed width whose range holds every integer in ``[lo, hi]`` (at least 1)."""
    lo, hi = int(lo), int(hi)
    if lo > hi:
        raise ValueError(f"empty range [{lo}, {hi}]")
    # a signed b-bit register holds [-2^(b-1), 2^(b-1)-1]
    need_hi = hi.bit_length() + 1 if hi > 0 else 1
    need_lo = (-lo - 1).bit_length() + 1 if lo < 0 else 1
    return max(need_hi, need_lo)


# --- A2Q and A2Q+ limits on the L1 norm of one channel's integer weights -------------------


def a2q_l1_limit(acc_bits: int, input_bits: int, input_signed: bool) -> float:
    """A2Q: ``||q||_1 <= (2^(P-1) - 1) * 2^(1_s - N)`` guarantees no overflow for any input.

    Colbert, Pappalardo, Petri-Koenig, "A2Q: Accumulator-Aware Quantization with Guaranteed
    Overflow Avoidance", ICCV 2023, eq. (13).
    """
    return ((1 << (acc_bits - 1)) - 1) * 2.0 ** (int(input_signed) - input_bits)


def a2q_plus_l1_limit(acc_bits: int, input_bits: int) -> float:
    """A2Q+: ``||q||_1 <= (2^P - 2) / (2^N - 1)`` for zero-centred weights (``sum(q) == 0``).

    Colbert et al., "A2Q+: Improving Accumulator-Aware Weight Quantization", ICML 2024. With
    ``sum(q) == 0`` the positive and negative halves each carry ``||q||_1 / 2``, and an input
    range of width ``2^N - 1`` moves the accumulator by at most that times the half-norm, for
    signed and unsigned inputs alike. Without zero-centring it proves nothing.
    """
    return ((1 << acc_bits) - 2) / ((1 << input_bits) - 1)


def max_channel_l1(weights: np.ndarray) -> int:
    """Largest L1 norm over output channels of an integer ``(channels, K)`` matrix."""
    w = _as_int_matrix(weights)
    return int(np.abs(w).sum(axis=1).max()) if w.size else 0


def is_zero_centred(weights: np.ndarray) -> bool:
    """True when every channel's integer weights sum to zero (A2Q+'s premise)."""
    w = _as_int_matrix(weights)
    return bool((w.sum(axis=1) == 0).all())


def a2q_min_acc_bits(l1_norm: int, input_bits: int, input_signed: bool) -> int:
    """Smallest P whose A2Q limit admits a channel of the given L1 norm."""
    for p in range(2, MAX_ACC_BITS + 1):
        if l1_norm <= a2q_l1_limit(p, input_bits, input_signed):
            return p
    raise ValueError(f"no accumulator up to {MAX_ACC_BITS} bits admits L1 norm {l1_norm}")


def a2q_plus_min_acc_bits(l1_norm: int, input_bits: int) -> int:
    """Smallest P whose A2Q+ limit admits a (zero-centred) channel of the given L1 norm."""
    for p in range(2, MAX_ACC_BITS + 1):
        if l1_norm <= a2q_plus_l1_limit(p, input_bits):
            return p
    raise ValueError(f"no accumulator up to {MAX_ACC_BITS} bits admits L1 norm {l1_norm}")


def admits_nonzero_weights(l1_limit: float) -> bool:
    """A limit below 1 forces every integer weight of the channel to zero."""
    return l1_limit >= 1.0


# --- data-type bounds: the weights are unknown, only their bit width M ----------------------


def datatype_bound_classic(k: int, input_bits: int, weight_bits: int) -> int:
    """The textbook ``P >= N + M + ceil(log2 K)``."""
    return input_bits + weight_bits + math.ceil(math.log2(k))


def datatype_bound_tight(k: int, input_bits: int, weight_bits: int, input_signed: bool) -> int:
    """``P >= ceil(a + log2(1 + 2^-a) + 1)``, ``a = log2 K + N + M - 1 - 1_s`` (A2Q paper)."""
    a = math.log2(k) + input_bits + weight_bits - 1 - int(input_signed)
    return math.ceil(a + math.log2(1 + 2.0**-a) + 1)


# --- exact range: the weights are known constants --------------------------------------------


@dataclass(frozen=True)
class ExactRange:
    """Per-channel accumulator extremes for constant weights and an input range."""

    lo: np.ndarray  # (channels,) int64
    hi: np.ndarray  # (channels,) int64

    @property
    def bits(self) -> int:
        """Smallest signed width holding every channel's range (the physical limit)."""
        return signed_bits_for_range(int(self.lo.min()), int(self.hi.max()))

    @property
    def channel_bits(self) -> list[int]:
        return [signed_bits_for_range(lo, hi) for lo, hi in zip(self.lo, self.hi, strict=True)]


def exact_accumulator_range(weights: np.ndarray, x_lo: int, x_hi: int) -> ExactRange:
    """``acc_hi = sum(max(q*x_hi, q*x_lo))``, ``acc_lo`` mirrored, per output channel.

    Every input attains its extreme independently, so these are reached, not just bounds.
    """
    w = _as_int_matrix(weights)
    at_hi = w * int(x_hi)
    at_lo = w * int(x_lo)
    return ExactRange(
        lo=np.minimum(at_hi, at_lo).sum(axis=1), hi=np.maximum(at_hi, at_lo).sum(axis=1)
    )


def exact_accumulator_bits(weights: np.ndarray, input_bits: int, input_signed: bool) -> int:
    """Smallest signed accumulator width that no input of the given format can overflow."""
    return exact_accumulator_range(weights, *input_range(input_bits, input_signed)).bits


def worst_case_inputs(
    weights: np.ndarray, x_lo: int, x_hi: int
) -> tuple[np.ndarray, np.ndarray]:
    """Inputs driving each channel to its exact maximum and minimum: ``(channels, K)`` each."""
    w = _as_int_matrix(weights)
    x_max = np.where(w > 0, x_hi, x_lo).astype(np.int64)
    x_min = np.where(w > 0, x_lo, x_hi).astype(np.int64)
    return x_max, x_min


def term_range(q: int, x_lo: int, x_hi: int) -> tuple[int, int]:
    """Range of one product ``q * x`` for ``x`` in ``[x_lo, x_hi]`` (a constant weight)."""
    a, b = int(q) * int(x_lo), int(q) * int(x_hi)
    return min(a, b), max(a, b)


def sum_range(*ranges: tuple[int, int]) -> tuple[int, int]:
    """Range of a sum of independent terms: the sum of their lows and of their highs.

    Exact (attained) when the terms depend on disjoint inputs, as in an adder tree over the
    products of one channel; an upper bound on the range otherwise."""
    return sum(int(r[0]) for r in ranges), sum(int(r[1]) for r in ranges)


def channel_exact_bits(weights: np.ndarray, input_bits: int, input_signed: bool) -> list[int]:
    """Per output channel, the smallest signed width holding its reachable accumulator values.

    Their maximum is :func:`exact_accumulator_bits`; an all-zero channel needs 1 bit."""
    return exact_accumulator_range(weights, *input_range(input_bits, input_signed)).channel_bits


def _as_int_matrix(weights: np.ndarray) -> np.ndarray:
    w = np.asarray(weights)
    if w.ndim == 1:
        w = w[None, :]
    elif w.ndim > 2:
        w = w.reshape(w.shape[0], -1)
    if w.dtype.kind == "f" and not np.array_equal(w, np.round(w)):
        raise ValueError("weights must be integer-valued")
    return w.astype(np.int64)
