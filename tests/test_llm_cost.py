"""Prices, the hard budget (randomized: never over the cap) and the cost estimator."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from docmill.llm.cost import (
    DEFAULT_PRICES,
    Budget,
    Price,
    PriceTable,
    TokenStats,
    UnknownModelError,
    estimate,
)


def test_cost_uses_defaults_and_overrides_win() -> None:
    table = PriceTable()
    assert table.cost("gpt-4o-mini", 1_000_000, 0) == pytest.approx(0.15)
    assert table.cost("gpt-4o-mini", 2_000, 500) == pytest.approx((2_000 * 0.15 + 500 * 0.60) / 1e6)
    over = PriceTable({"gpt-4o-mini": {"input": 1.0, "output": 2.0}, "local-llama": Price(0, 0)})
    assert over.cost("gpt-4o-mini", 1_000_000, 1_000_000) == pytest.approx(3.0)
    assert over.cost("local-llama", 10**9, 10**9) == 0.0
    assert "gpt-4o" in DEFAULT_PRICES  # the defaults are untouched
    assert DEFAULT_PRICES["gpt-4o-mini"].input_per_mtok == 0.15


def test_dated_model_names_match_the_longest_prefix() -> None:
    table = PriceTable()
    assert table.price("gpt-4o-2024-08-06") == DEFAULT_PRICES["gpt-4o"]
    assert table.price("gpt-4o-mini-2024-07-18") == DEFAULT_PRICES["gpt-4o-mini"]
    with pytest.raises(UnknownModelError, match="known: "):
        table.price("gpt-4")  # not a dated variant of a known model


def test_bad_overrides_are_refused() -> None:
    with pytest.raises(ValueError, match="'input' and 'output'"):
        PriceTable({"m": {"input": 1.0}})
    with pytest.raises(ValueError, match="finite"):
        PriceTable({"m": {"input": -1.0, "output": 1.0}})


def test_budget_refuses_what_would_cross_the_cap() -> None:
    b = Budget(1.0)
    r1 = b.reserve(0.6)
    assert r1 is not None
    assert b.reserve(0.5) is None  # 0.6 reserved + 0.5 > 1.0
    r2 = b.reserve(0.4)
    assert r2 is not None and b.remaining_usd == 0.0
    b.settle(r1, 0.1)  # cost less than reserved: 0.5 comes back
    assert b.spent_usd == pytest.approx(0.1) and b.remaining_usd == pytest.approx(0.5)
    b.settle(r2, 0.4)
    assert b.reserve(0.5) is not None
    assert b.reserve(1e-9) is None
    with pytest.raises(ValueError, match="not open"):
        b.settle(r1, 0.0)


def test_an_overrun_is_recorded_and_blocks_new_calls() -> None:
    b = Budget(1.0)
    r = b.reserve(0.5)
    assert r is not None
    b.settle(r, 1.2)
    assert b.spent_usd == pytest.approx(1.2)
    assert b.overrun_usd == pytest.approx(0.7)
    assert b.reserve(0.0) is None
    assert b.remaining_usd == 0.0


ops = st.lists(
    st.tuples(
        st.floats(min_value=0, max_value=3.0, allow_nan=False),  # max cost
        st.floats(min_value=0, max_value=1.0),  # actual as a fraction of it
        st.integers(min_value=0, max_value=3),  # how many open reservations to settle now
    ),
    max_size=200,
)


@settings(max_examples=300, deadline=None)
@given(cap=st.floats(min_value=0, max_value=10.0, allow_nan=False), steps=ops)
def test_budget_never_exceeds_the_cap(cap: float, steps: list[tuple[float, float, int]]) -> None:
    b = Budget(cap)
    open_ = []
    for max_cost, fraction, settle_n in steps:
        r = b.reserve(max_cost)
        if r is not None:
            open_.append((r, max_cost * fraction))
        for _ in range(min(settle_n, len(open_))):
            res, actual = open_.pop(0)
            b.settle(res, actual)
        assert b.spent_usd <= cap
        assert b.spent_usd + b.reserved_usd <= cap
    for res, actual in open_:
        b.settle(res, actual)
    assert b.spent_usd <= cap and b.overrun_usd == 0.0 and b.in_flight == 0


@settings(max_examples=200, deadline=None)
@given(
    cap=st.floats(min_value=0, max_value=10.0, allow_nan=False),
    steps=st.lists(
        st.tuples(
            st.floats(min_value=0, max_value=3.0, allow_nan=False),
            st.floats(min_value=0, max_value=3.0),  # actual may exceed the reservation
        ),
        max_size=100,
    ),
)
def test_overrun_is_bounded_by_the_recorded_excess(
    cap: float, steps: list[tuple[float, float]]
) -> None:
    b = Budget(cap)
    for max_cost, factor in steps:
        r = b.reserve(max_cost)
        if r is not None:
            b.settle(r, max_cost * factor)
        assert b.spent_usd <= cap + b.overrun_usd + 1e-9


def test_estimate_range_contains_expected_and_is_deterministic() -> None:
    samples = [800, 1200, 950, 4000, 700, 1100, 1500, 900, 1000, 2600]
    e = estimate(samples, 10_000, "gpt-4o-mini", 300)
    mean = sum(samples) / len(samples)
    exact = 10_000 * (mean * 0.15 + 300 * 0.60) / 1e6
    assert e.expected == pytest.approx(exact)
    assert e.low < e.expected < e.high
    assert e == estimate(samples, 10_000, "gpt-4o-mini", 300)
    assert e != estimate(samples, 10_000, "gpt-4o-mini", 300, seed=1)
    # a wider spread gives a wider range; more samples of the same spread a narrower one
    tight = estimate([1500] * 10, 10_000, "gpt-4o-mini", 300)
    assert tight.low == tight.expected == tight.high
    many = estimate(samples * 10, 10_000, "gpt-4o-mini", 300)
    assert many.high - many.low < e.high - e.low
    # floor: output cost alone
    assert e.low >= 10_000 * 300 * 0.60 / 1e6


def test_estimate_uses_the_given_price_table() -> None:
    table = PriceTable({"mine": {"input": 1.0, "output": 0.0}})
    e = estimate([1_000_000], 3, "mine", 0, prices=table)
    assert (e.low, e.expected, e.high) == pytest.approx((3.0, 3.0, 3.0))
    with pytest.raises(ValueError):
        estimate([], 3, "mine", 0, prices=table)


def test_pledges_admit_documents_by_expected_cost_and_leave_a_margin() -> None:
    b = Budget(1.0)
    first = b.pledge(0.4, margin_usd=0.1)
    second = b.pledge(0.4, margin_usd=0.1)
    assert first is not None and second is not None
    assert b.pledge(0.2, margin_usd=0.1) is None  # 0.8 pledged + 0.2 + 0.1 > 1.0
    assert b.pledge(0.1, margin_usd=0.1) is not None
    # pledges never block a request: the hard cap counts reservations only
    assert b.reserve(0.9) is not None
    b.repledge(first, 0.0)  # its document needs nothing more
    assert b.pledged_usd == pytest.approx(0.5)
    b.release(second)
    b.release(second)  # twice is harmless
    assert b.pledges == 2


def test_spent_money_counts_against_pledges() -> None:
    b = Budget(1.0)
    p = b.pledge(0.5)
    assert p is not None
    r = b.reserve(0.6)
    assert r is not None
    b.settle(r, 0.45)
    b.repledge(p, 0.0)
    assert b.pledge(0.5) is not None  # 0.45 spent + 0 + 0.5 <= 1
    assert b.pledge(0.1) is None


def test_output_tokens_within_a_sum() -> None:
    table = PriceTable({"m": {"input": 1.0, "output": 2.0}})
    n = table.output_tokens_within("m", 1000, 0.003)  # 0.001 for the input, 0.002 left
    assert 990 <= n < 1000
    assert table.cost("m", 1000, n) <= 0.003
    assert table.output_tokens_within("m", 4000, 0.003) == 0


def test_token_stats_learn_per_role_and_model() -> None:
    stats = TokenStats()
    assert stats.expected("classify", "m", 100, 12) == (100, 12)  # the prior
    assert stats.output_need("classify", "m", 12) == 24
    assert stats.input_ceiling("classify", "m", 100) == 166  # +50 % + 16 before learning
    for out in (10, 20, 30):
        stats.observe("classify", "m", 100, 110, out)
    assert stats.expected("classify", "m", 200, 12) == (220, 20)
    assert stats.output_need("classify", "m", 12) == 60  # twice the longest seen
    assert stats.input_ceiling("classify", "m", 100) == 137  # 1.1 x the largest ratio + 16
    assert stats.expected("extract", "m", 100, 40) == (100, 40)  # another role: its prior
