"""Entropy bounds from top-k logprobs, checked against full distributions."""

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gearterm.backends.topk_entropy import entropy_bounds, is_speculative_draft

LN2 = math.log(2)


def exact_bits(probs):
    return -sum(p * math.log2(p) for p in probs if p > 0)


def top_k_logprobs(probs, k):
    return [math.log(p) for p in sorted(probs, reverse=True)[:k] if p > 0]


distributions = st.lists(st.floats(min_value=1e-6, max_value=1.0), min_size=2, max_size=64).map(
    lambda w: [x / sum(w) for x in w]
)


@settings(max_examples=300, deadline=None)
@given(probs=distributions, data=st.data())
def test_bounds_contain_the_exact_entropy(probs, data):
    k = data.draw(st.integers(1, len(probs)))
    b = entropy_bounds(top_k_logprobs(probs, k), len(probs))
    h = exact_bits(probs)
    assert b.lower_bits <= h + 1e-9
    assert h <= b.upper_bits + 1e-9
    assert b.missing_mass == pytest.approx(sum(sorted(probs, reverse=True)[k:]), abs=1e-12)


@settings(max_examples=100, deadline=None)
@given(probs=distributions)
def test_bounds_are_exact_when_at_most_one_token_is_missing(probs):
    for k in (len(probs), len(probs) - 1):
        b = entropy_bounds(top_k_logprobs(probs, k), len(probs))
        assert b.lower_bits == pytest.approx(exact_bits(probs), abs=1e-9)
        assert b.upper_bits == pytest.approx(exact_bits(probs), abs=1e-9)


@settings(max_examples=100, deadline=None)
@given(
    top=st.lists(st.floats(min_value=0.05, max_value=1.0), min_size=1, max_size=10),
    rest=st.floats(min_value=0.01, max_value=0.5),
    unlisted=st.integers(2, 50),
)
def test_each_bound_is_reached(top, rest, unlisted):
    """Missing mass on one token gives H_lb exactly; spread evenly it gives H_ub exactly."""
    scale = (1 - rest) / sum(top)
    top = [p * scale for p in top]
    logprobs = [math.log(p) for p in top]
    vocab = len(top) + unlisted
    b = entropy_bounds(logprobs, vocab)
    assert b.lower_bits == pytest.approx(exact_bits(top + [rest] + [0.0] * (unlisted - 1)), abs=1e-9)
    assert b.upper_bits == pytest.approx(exact_bits(top + [rest / unlisted] * unlisted), abs=1e-9)


def test_unknown_vocabulary_leaves_the_upper_bound_unknown():
    b = entropy_bounds([math.log(0.5), math.log(0.25)], None)
    assert b.upper_bits is None
    assert b.missing_mass == pytest.approx(0.25)
    assert b.lower_bits == pytest.approx(1.5)  # 0.5*1 + 0.25*2 + (-0.25 log2 0.25)


def test_llama_cpp_log_zero_is_probability_zero():
    b = entropy_bounds([0.0, -3.4028234663852886e38, -3.4e38], 512)
    assert b.listed == 1
    assert b.lower_bits == 0.0 and b.upper_bits == 0.0 and b.missing_mass == 0.0


def test_rounding_past_one_clamps_the_missing_mass():
    b = entropy_bounds([math.log(0.6000001), math.log(0.4000001)], 10)
    assert b.missing_mass == 0.0
    assert b.upper_bits == b.lower_bits
    assert b.exact


def test_a_server_listing_more_than_v_tokens_keeps_the_upper_bound_finite():
    b = entropy_bounds([math.log(0.25)] * 3, 2)
    assert b.upper_bits == b.lower_bits


def test_speculative_draft_is_logprob_zero_without_alternatives():
    assert is_speculative_draft(0.0, [])
    assert is_speculative_draft(0.0, None)
    assert not is_speculative_draft(0.0, [{"token": "a", "logprob": 0.0}])  # a measured certainty
    assert not is_speculative_draft(-0.1, [])
