"""Every bound in a2qflow.bounds checked against brute-force enumeration of all inputs."""

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from a2qflow import bounds


def brute_force_range(q: np.ndarray, bits: int, signed: bool) -> tuple[int, int]:
    """Min and max of q . x over every input vector x of the given format (small K only)."""
    lo, hi = bounds.input_range(bits, signed)
    values = range(lo, hi + 1)
    accs = [int(np.dot(q, x)) for x in itertools.product(values, repeat=len(q))]
    return min(accs), max(accs)


def fits(lo: int, hi: int, acc_bits: int) -> bool:
    r_lo, r_hi = bounds.signed_range(acc_bits)
    return r_lo <= lo and hi <= r_hi


small_weights = st.lists(st.integers(-7, 7), min_size=1, max_size=3)
input_formats = st.tuples(st.integers(1, 3), st.booleans())


@given(q=small_weights, fmt=input_formats)
@settings(max_examples=150, deadline=None)
def test_exact_range_equals_brute_force(q, fmt):
    bits, signed = fmt
    q = np.array(q)
    exact = bounds.exact_accumulator_range(q, *bounds.input_range(bits, signed))
    assert (int(exact.lo[0]), int(exact.hi[0])) == brute_force_range(q, bits, signed)


@given(q=small_weights, fmt=input_formats)
@settings(max_examples=150, deadline=None)
def test_exact_bits_is_smallest_width_that_never_overflows(q, fmt):
    bits, signed = fmt
    q = np.array(q)
    lo, hi = brute_force_range(q, bits, signed)
    p = bounds.exact_accumulator_bits(q, bits, signed)
    assert fits(lo, hi, p)
    assert p == 1 or not fits(lo, hi, p - 1)


@given(q=small_weights, fmt=input_formats, acc_bits=st.integers(2, 10))
@settings(max_examples=300, deadline=None)
def test_a2q_limit_guarantees_no_overflow(q, fmt, acc_bits):
    bits, signed = fmt
    q = np.array(q)
    if bounds.max_channel_l1(q) <= bounds.a2q_l1_limit(acc_bits, bits, signed):
        assert fits(*brute_force_range(q, bits, signed), acc_bits)


@given(
    half=st.lists(st.integers(-7, 7), min_size=1, max_size=2),
    fmt=input_formats,
    acc_bits=st.integers(2, 10),
)
@settings(max_examples=300, deadline=None)
def test_a2q_plus_limit_guarantees_no_overflow_for_zero_centred_weights(half, fmt, acc_bits):
    bits, signed = fmt
    q = np.array(half + [-sum(half)])  # zero-centred by construction
    assert bounds.is_zero_centred(q)
    if bounds.max_channel_l1(q) <= bounds.a2q_plus_l1_limit(acc_bits, bits):
        assert fits(*brute_force_range(q, bits, signed), acc_bits)


def test_a2q_plus_limit_proves_nothing_without_zero_centring():
    # a single positive weight meets the A2Q+ limit at P=5 (||q||_1 = 2 <= 30/15) but its range
    # [0, 30] needs 6 bits: the premise sum(q) == 0 is what makes the bound hold.
    q = np.array([2])
    assert bounds.max_channel_l1(q) <= bounds.a2q_plus_l1_limit(5, 4)
    assert bounds.exact_accumulator_bits(q, 4, False) == 6


def test_a2q_plus_admits_larger_norm_than_a2q():
    for p in range(6, 20):
        for n in range(1, 9):
            assert bounds.a2q_plus_l1_limit(p, n) >= bounds.a2q_l1_limit(p, n, False)


@given(
    k=st.integers(1, 4), n=st.integers(1, 3), m=st.integers(2, 4), signed=st.booleans()
)
@settings(max_examples=200, deadline=None)
def test_datatype_bounds_hold_for_the_worst_weights(k, n, m, signed):
    # the worst weights of an M-bit signed type sit at its extremes; enumerate them all
    w_lo, w_hi = bounds.signed_range(m)
    worst_lo, worst_hi = 0, 0
    for q in itertools.product((w_lo, w_hi), repeat=k):
        lo, hi = brute_force_range(np.array(q), n, signed)
        worst_lo, worst_hi = min(worst_lo, lo), max(worst_hi, hi)
    assert fits(worst_lo, worst_hi, bounds.datatype_bound_classic(k, n, m))
    assert fits(worst_lo, worst_hi, bounds.datatype_bound_tight(k, n, m, signed))


@given(l1=st.integers(0, 5000), n=st.integers(1, 8), signed=st.booleans())
@settings(max_examples=200, deadline=None)
def test_min_acc_bits_is_smallest_admitting_width(l1, n, signed):
    p = bounds.a2q_min_acc_bits(l1, n, signed)
    assert l1 <= bounds.a2q_l1_limit(p, n, signed)
    assert p == 2 or l1 > bounds.a2q_l1_limit(p - 1, n, signed)
    pp = bounds.a2q_plus_min_acc_bits(l1, n)
    assert l1 <= bounds.a2q_plus_l1_limit(pp, n)
    assert pp == 2 or l1 > bounds.a2q_plus_l1_limit(pp - 1, n)


@given(lo=st.integers(-(2**40), 2**40), span=st.integers(0, 2**40))
def test_signed_bits_for_range_is_tight(lo, span):
    hi = lo + span
    b = bounds.signed_bits_for_range(lo, hi)
    assert fits(lo, hi, b)
    assert b == 1 or not fits(lo, hi, b - 1)


def test_worst_case_inputs_reach_the_exact_extremes():
    rng = np.random.default_rng(0)
    q = rng.integers(-7, 8, size=(5, 20))
    x_lo, x_hi = bounds.input_range(4, False)
    exact = bounds.exact_accumulator_range(q, x_lo, x_hi)
    x_max, x_min = bounds.worst_case_inputs(q, x_lo, x_hi)
    np.testing.assert_array_equal((q * x_max).sum(axis=1), exact.hi)
    np.testing.assert_array_equal((q * x_min).sum(axis=1), exact.lo)


def test_known_values():
    assert bounds.a2q_l1_limit(16, 8, False) == pytest.approx(32767 / 256)
    assert bounds.a2q_l1_limit(16, 8, True) == pytest.approx(32767 / 128)
    assert bounds.a2q_plus_l1_limit(16, 8) == pytest.approx(65534 / 255)
    assert bounds.datatype_bound_classic(784, 8, 4) == 22
    assert bounds.signed_bits_for_range(-128, 127) == 8
    assert bounds.signed_bits_for_range(0, 128) == 9
    assert bounds.signed_bits_for_range(0, 0) == 1


def test_limit_below_one_admits_no_nonzero_weight():
    # 8-bit unsigned inputs: P=9 gives (2^8 - 1) / 2^8 < 1, P=10 gives 511 / 256 >= 1
    assert not bounds.admits_nonzero_weights(bounds.a2q_l1_limit(9, 8, False))
    assert bounds.admits_nonzero_weights(bounds.a2q_l1_limit(10, 8, False))


def test_non_integer_weights_are_rejected():
    with pytest.raises(ValueError, match="integer"):
        bounds.exact_accumulator_bits(np.array([0.5, 1.0]), 4, False)


@given(q=small_weights, fmt=input_formats)
@settings(max_examples=60, deadline=None)
def test_sum_of_term_ranges_is_the_exact_range(q, fmt):
    bits, signed = fmt
    x_lo, x_hi = bounds.input_range(bits, signed)
    lo, hi = bounds.sum_range(*(bounds.term_range(w, x_lo, x_hi) for w in q))
    assert (lo, hi) == brute_force_range(np.array(q), bits, signed)


@given(q=st.lists(small_weights.filter(lambda r: len(r) == 3), min_size=1, max_size=4),
       fmt=input_formats)
@settings(max_examples=60, deadline=None)
def test_channel_exact_bits_per_channel_and_their_maximum(q, fmt):
    bits, signed = fmt
    w = np.array(q)
    per = bounds.channel_exact_bits(w, bits, signed)
    assert len(per) == len(q)
    for row, b in zip(w, per, strict=True):
        assert b == bounds.signed_bits_for_range(*brute_force_range(row, bits, signed))
    assert max(per) == bounds.exact_accumulator_bits(w, bits, signed)
