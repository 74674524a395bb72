"""The per-slot limiter: AIMD, buckets, Retry-After, backoff, breaker. No sleeping: a fake clock."""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass
from typing import Any

import pytest

from docmill.llm.limits import (
    BreakerState,
    Decision,
    DecisionKind,
    LimiterConfig,
    Outcome,
    Permit,
    SlotLimiter,
    backoff_s,
)


@dataclass
class FakeClock:
    t: float = 1000.0

    def __call__(self) -> float:
        return self.t

    def advance(self, s: float) -> None:
        self.t += s


def make(clock: FakeClock, **kw: Any) -> SlotLimiter:
    return SlotLimiter(LimiterConfig(**kw), now=clock(), random=random.Random(7).random)


def go(lim: SlotLimiter, clock: FakeClock, est: int = 0) -> Permit:
    d = lim.acquire(clock(), est)
    assert d.kind is DecisionKind.GO, d
    assert d.permit is not None
    return d.permit


# --- AIMD ----------------------------------------------------------------------------


def test_aimd_rises_by_one_per_window_of_fast_successes() -> None:
    clock = FakeClock()
    lim = make(
        clock, initial_concurrency=4, increase_after=5, target_latency_s=2.0, slow_start=False
    )
    assert lim.concurrency_limit == 4
    for round_ in range(3):
        for _ in range(5):
            p = go(lim, clock)
            clock.advance(1.0)
            lim.on_result(p, clock(), Outcome.SUCCESS, latency_s=1.0)
        assert lim.concurrency_limit == 5 + round_


def test_slow_successes_do_not_raise_and_a_very_slow_one_cuts() -> None:
    clock = FakeClock()
    lim = make(
        clock, initial_concurrency=4, increase_after=2, target_latency_s=2.0, ceiling_latency_s=10.0
    )
    for _ in range(6):
        lim.on_result(go(lim, clock), clock(), Outcome.SUCCESS, latency_s=5.0)
    assert lim.concurrency_limit == 4
    lim.on_result(go(lim, clock), clock(), Outcome.SUCCESS, latency_s=11.0)
    assert lim.concurrency_limit == 2


def test_aimd_halves_on_429_and_respects_the_floor() -> None:
    clock = FakeClock()
    lim = make(clock, initial_concurrency=8, min_concurrency=2)
    lim.on_result(go(lim, clock), clock(), Outcome.RATE_LIMITED)
    assert lim.concurrency_limit == 4
    lim.on_result(go(lim, clock), clock(), Outcome.RATE_LIMITED)
    assert lim.concurrency_limit == 2
    lim.on_result(go(lim, clock), clock(), Outcome.SERVER_ERROR)
    assert lim.concurrency_limit == 2


def test_a_burst_of_429s_from_one_window_cuts_once() -> None:
    clock = FakeClock()
    lim = make(clock, initial_concurrency=8)
    permits = [go(lim, clock) for _ in range(8)]
    assert lim.acquire(clock(), 0) == Decision(DecisionKind.WAIT, None, "concurrency")
    for p in permits:
        lim.on_result(p, clock(), Outcome.RATE_LIMITED)
    assert lim.concurrency_limit == 4
    # a request sent after the cut may cut again
    lim.on_result(go(lim, clock), clock(), Outcome.RATE_LIMITED)
    assert lim.concurrency_limit == 2


def test_concurrency_limit_is_enforced_and_freed_by_results() -> None:
    clock = FakeClock()
    lim = make(clock, initial_concurrency=2)
    a, _b = go(lim, clock), go(lim, clock)
    assert lim.acquire(clock(), 0).reason == "concurrency"
    lim.on_result(a, clock(), Outcome.CANCELLED)
    go(lim, clock)
    with pytest.raises(ValueError, match="not in flight"):
        lim.on_result(a, clock(), Outcome.SUCCESS)


# --- buckets -------------------------------------------------------------------------


def test_rpm_bucket_throttles_exactly() -> None:
    clock = FakeClock()
    # 70 per minute, 10 s of burst: refilled at 70 / (60 + 10) = 1 per second
    lim = make(clock, rpm=70, bucket_s=10, max_concurrency=1000, initial_concurrency=1000)
    for _ in range(10):  # a burst of bucket_s seconds of refill
        go(lim, clock)
    d = lim.acquire(clock(), 0)
    assert (d.kind, d.reason) == (DecisionKind.WAIT, "rpm")
    assert d.until == pytest.approx(clock() + 1.0)
    clock.advance(0.999)
    assert lim.acquire(clock(), 0).kind is DecisionKind.WAIT
    clock.advance(0.001)
    go(lim, clock)
    # steady state: exactly one per second
    sent = 0
    for _ in range(600):
        clock.advance(0.1)
        if lim.acquire(clock(), 0).kind is DecisionKind.GO:
            sent += 1
    assert sent == 60


def test_tpm_bucket_uses_the_estimate_then_the_real_usage() -> None:
    clock = FakeClock()
    lim = make(clock, tpm=12000, bucket_s=60)  # 12000 / 120 = 100 tokens per second, 6000 held
    p = go(lim, clock, est=5000)
    d = lim.acquire(clock(), 2000)
    assert (d.kind, d.reason) == (DecisionKind.WAIT, "tpm")
    assert d.until == pytest.approx(clock() + 10.0)  # 1000 held, 1000 more at 100/s
    # the request really used 3000: 2000 come back, so 3000 are there now
    lim.on_result(p, clock(), Outcome.SUCCESS, latency_s=1.0, tokens_used=3000)
    go(lim, clock, est=2000)
    # it used more than estimated: the bucket goes into debt
    q = go(lim, clock, est=1000)
    lim.on_result(q, clock(), Outcome.SUCCESS, tokens_used=4000)
    d = lim.acquire(clock(), 1)
    assert d.until == pytest.approx(clock() + 30.01)  # level -3000, need 1


def test_a_request_larger_than_the_tpm_bucket_goes_when_it_is_full() -> None:
    clock = FakeClock()
    lim = make(clock, tpm=1200, bucket_s=60)  # 10 per second, 600 held
    go(lim, clock, est=100)
    d = lim.acquire(clock(), 10_000)
    assert d.until == pytest.approx(clock() + 10.0)
    clock.advance(10.0)
    go(lim, clock, est=10_000)


# --- Retry-After -----------------------------------------------------------------------


def test_retry_after_is_honoured() -> None:
    clock = FakeClock()
    lim = make(clock)
    p = go(lim, clock)
    lim.on_result(p, clock(), Outcome.RATE_LIMITED, retry_after_s=7.5)
    deadline = clock() + 7.5
    for _ in range(74):
        clock.advance(0.1)
        d = lim.acquire(clock(), 0)
        assert d == Decision(DecisionKind.WAIT, deadline, "retry_after")
    clock.t = deadline
    go(lim, clock)


def test_a_shorter_retry_after_does_not_shorten_the_block() -> None:
    clock = FakeClock()
    lim = make(clock)
    a, b = go(lim, clock), go(lim, clock)
    lim.on_result(a, clock(), Outcome.RATE_LIMITED, retry_after_s=30)
    lim.on_result(b, clock(), Outcome.RATE_LIMITED, retry_after_s=1)
    assert lim.blocked_until == clock() + 30


# --- backoff -------------------------------------------------------------------------


def test_backoff_is_within_bounds_and_grows() -> None:
    rng = random.Random(1)
    means = []
    for attempt in range(1, 12):
        ceiling = min(60.0, 2.0 ** (attempt - 1))
        draws = [backoff_s(attempt, 1.0, 60.0, rng.random()) for _ in range(400)]
        assert all(0.0 <= d < ceiling for d in draws) or ceiling == 0
        assert max(draws) > 0.9 * ceiling  # full jitter reaches the top of the range
        means.append(sum(draws) / len(draws))
    assert all(b > a for a, b in itertools.pairwise(means[:7]))  # grows until capped
    assert all(m < 60.0 for m in means)
    assert backoff_s(10_000, 1.0, 60.0, 0.5) == 30.0  # huge attempts do not overflow
    with pytest.raises(ValueError):
        backoff_s(0, 1.0, 60.0, 0.5)


def test_limiter_backoff_is_deterministic_with_a_seeded_source() -> None:
    clock = FakeClock()
    a = [make(clock).backoff(n) for n in range(1, 8)]
    b = [make(clock).backoff(n) for n in range(1, 8)]
    assert a == b
    assert all(0 <= x < min(60.0, 2.0 ** (n - 1)) for n, x in enumerate(a, start=1))


# --- circuit breaker -----------------------------------------------------------------


def test_breaker_opens_half_opens_and_closes() -> None:
    clock = FakeClock()
    lim = make(clock, breaker_failures=3, breaker_cooldown_s=30, min_concurrency=1)
    for outcome in (Outcome.SERVER_ERROR, Outcome.TIMEOUT):
        lim.on_result(go(lim, clock), clock(), outcome)
    assert lim.breaker is BreakerState.CLOSED
    lim.on_result(go(lim, clock), clock(), Outcome.CONNECTION_ERROR)
    assert lim.breaker is BreakerState.OPEN
    opened = clock()
    d = lim.acquire(clock(), 0)
    assert d == Decision(DecisionKind.REJECTED, opened + 30, "breaker_open")
    clock.advance(29.9)
    assert lim.acquire(clock(), 0).kind is DecisionKind.REJECTED
    clock.advance(0.1)
    probe = go(lim, clock)
    assert probe.probe and lim.breaker is BreakerState.HALF_OPEN
    assert lim.acquire(clock(), 0) == Decision(DecisionKind.REJECTED, None, "probe_in_flight")
    lim.on_result(probe, clock(), Outcome.SUCCESS, latency_s=1.0)
    assert lim.breaker is BreakerState.CLOSED
    assert not go(lim, clock).probe


def test_a_failed_probe_reopens_with_a_longer_cooldown() -> None:
    clock = FakeClock()
    lim = make(
        clock,
        breaker_failures=1,
        breaker_cooldown_s=10,
        breaker_cooldown_factor=3,
        breaker_cooldown_max_s=50,
    )
    lim.on_result(go(lim, clock), clock(), Outcome.SERVER_ERROR)
    pauses = []
    for _ in range(3):
        d = lim.acquire(clock(), 0)
        assert d.kind is DecisionKind.REJECTED and d.until is not None
        pauses.append(d.until - clock())
        clock.t = d.until
        lim.on_result(go(lim, clock), clock(), Outcome.TIMEOUT)
    assert pauses == [10, 30, 50]
    clock.advance(50)
    lim.on_result(go(lim, clock), clock(), Outcome.SUCCESS)
    assert lim.breaker is BreakerState.CLOSED
    # closing resets the cool-down
    lim.on_result(go(lim, clock), clock(), Outcome.SERVER_ERROR)
    assert lim.acquire(clock(), 0).until == clock() + 10


def test_successes_and_client_errors_reset_the_failure_count_429_does_not() -> None:
    clock = FakeClock()
    lim = make(clock, breaker_failures=2, initial_concurrency=64, max_concurrency=64)
    for between in (Outcome.SUCCESS, Outcome.CLIENT_ERROR):
        lim.on_result(go(lim, clock), clock(), Outcome.SERVER_ERROR)
        lim.on_result(go(lim, clock), clock(), between)
    assert lim.breaker is BreakerState.CLOSED
    lim.on_result(go(lim, clock), clock(), Outcome.SERVER_ERROR)
    lim.on_result(go(lim, clock), clock(), Outcome.RATE_LIMITED)
    lim.on_result(go(lim, clock), clock(), Outcome.SERVER_ERROR)
    assert lim.breaker is BreakerState.OPEN


def test_late_results_of_old_requests_do_not_move_an_open_breaker() -> None:
    clock = FakeClock()
    lim = make(clock, breaker_failures=1, breaker_cooldown_s=5)
    old = go(lim, clock)
    lim.on_result(go(lim, clock), clock(), Outcome.SERVER_ERROR)
    lim.on_result(old, clock(), Outcome.SUCCESS)
    assert lim.breaker is BreakerState.OPEN


def test_config_is_validated() -> None:
    with pytest.raises(ValueError, match="min_concurrency"):
        LimiterConfig(initial_concurrency=0)
    with pytest.raises(ValueError, match="decrease_factor"):
        LimiterConfig(decrease_factor=1.0)


def test_a_request_never_sent_gives_its_tokens_back() -> None:
    clock = FakeClock()
    lim = make(clock, tpm=600)
    p = go(lim, clock, est=600)
    assert lim.acquire(clock(), 600).reason == "tpm"
    lim.on_result(p, clock(), Outcome.CANCELLED, tokens_used=0)
    go(lim, clock, est=600)


# --- slow start, the sliding window, the learned RPM -------------------------------------


def test_slow_start_raises_by_one_per_fast_success_until_congestion() -> None:
    clock = FakeClock()
    lim = make(clock, initial_concurrency=4, increase_after=5, target_latency_s=2.0)
    for expected in (5, 6, 7, 8):
        lim.on_result(go(lim, clock), clock(), Outcome.SUCCESS, latency_s=1.0)
        assert lim.concurrency_limit == expected
    lim.on_result(go(lim, clock), clock(), Outcome.SUCCESS, latency_s=3.0)  # slow: no raise
    assert lim.concurrency_limit == 8
    lim.on_result(go(lim, clock), clock(), Outcome.SERVER_ERROR)
    assert lim.concurrency_limit == 4
    for _ in range(4):  # congestion ended slow start: additive from here
        lim.on_result(go(lim, clock), clock(), Outcome.SUCCESS, latency_s=1.0)
    assert lim.concurrency_limit == 4
    lim.on_result(go(lim, clock), clock(), Outcome.SUCCESS, latency_s=1.0)
    assert lim.concurrency_limit == 5


def test_slow_successes_neither_count_nor_reset_the_count() -> None:
    clock = FakeClock()
    lim = make(clock, initial_concurrency=4, increase_after=3, target_latency_s=2.0, slow_start=False)
    for latency in (1.0, 5.0, 1.0, 5.0, 5.0):
        lim.on_result(go(lim, clock), clock(), Outcome.SUCCESS, latency_s=latency)
    assert lim.concurrency_limit == 4
    lim.on_result(go(lim, clock), clock(), Outcome.SUCCESS, latency_s=1.0)
    assert lim.concurrency_limit == 5


def test_the_rpm_bucket_never_exceeds_rpm_in_any_sliding_minute() -> None:
    clock = FakeClock()
    lim = make(clock, rpm=120, max_concurrency=1000, initial_concurrency=1000)
    sent: list[float] = []
    for _ in range(30_000):  # a greedy sender for 300 s
        clock.advance(0.01)
        d = lim.acquire(clock(), 0)
        if d.kind is DecisionKind.GO:
            sent.append(clock())
    j = 0
    for i, t in enumerate(sent):  # every window (t - 60, t]
        while sent[j] <= t - 60.0:
            j += 1
        assert i - j + 1 <= 120
    assert len(sent) >= 0.98 * 120 * 5


class SlidingWindowProvider:
    """A provider model for the policy tests: ``rpm`` admitted per sliding minute, 429 +
    Retry-After beyond that, latencies uniform in ``latency`` (seeded)."""

    def __init__(self, rpm: int, latency: tuple[float, float], seed: int) -> None:
        self.rpm = rpm
        self.latency = latency
        self.rng = random.Random(seed)
        self.admitted: list[float] = []

    def send(self, now: float) -> tuple[Outcome, float, float | None]:
        """(outcome, latency, retry_after) for a request arriving at ``now``."""
        recent = [t for t in self.admitted[-self.rpm :] if t > now - 60.0]
        if len(recent) >= self.rpm:
            return Outcome.RATE_LIMITED, 0.05, max(0.001, recent[0] + 60.0 - now)
        self.admitted.append(now)
        return Outcome.SUCCESS, self.rng.uniform(*self.latency), None


def drive(
    lim: SlotLimiter,
    provider: SlidingWindowProvider,
    clock: FakeClock,
    seconds: float,
    backlog: int | None = None,
) -> tuple[list[float], list[float]]:
    """Requests sent as the limiter allows; returns (sent, refused) times. ``backlog=None``:
    a backlog that never empties, for ``seconds``; else that many requests, each refused
    one sent again, until all are admitted (``seconds`` is then a bound)."""
    in_flight: list[tuple[float, Permit, Outcome, float, float | None]] = []
    sent: list[float] = []
    refused: list[float] = []
    end = clock() + seconds
    while clock() < end and (backlog is None or backlog > 0 or in_flight):
        clock.advance(0.05)
        for item in [i for i in in_flight if i[0] <= clock()]:
            in_flight.remove(item)
            _, permit, outcome, latency, retry = item
            lim.on_result(permit, clock(), outcome, latency, None, retry)
            if outcome is Outcome.RATE_LIMITED and backlog is not None:
                backlog += 1
        while backlog is None or backlog > 0:
            d = lim.acquire(clock(), 0)
            if d.kind is not DecisionKind.GO:
                break
            assert d.permit is not None
            if backlog is not None:
                backlog -= 1
            outcome, latency, retry = provider.send(clock())
            (refused if outcome is Outcome.RATE_LIMITED else sent).append(clock())
            in_flight.append((clock() + latency, d.permit, outcome, latency, retry))
    return sent, refused


@pytest.mark.parametrize("known", [True, False], ids=["rpm_known", "rpm_learned"])
def test_a_slow_provider_is_kept_at_its_rpm_with_few_429s(known: bool) -> None:
    clock = FakeClock()
    start = clock()
    lim = make(clock, rpm=120 if known else 0, learn_rpm=True, max_concurrency=64)
    provider = SlidingWindowProvider(120, (2.0, 30.0), seed=3)
    sent, refused = drive(lim, provider, clock, 300.0)
    steady_sent = [t for t in sent if t > start + 60.0]
    steady_refused = [t for t in refused if t > start + 60.0]
    per_minute = len(steady_sent) / 4.0
    share_429 = len(steady_refused) / (len(steady_sent) + len(steady_refused))
    assert per_minute >= 0.95 * 120, (per_minute, share_429, lim.rpm, lim.concurrency_limit)
    assert share_429 <= 0.02, (per_minute, share_429, lim.rpm)


@pytest.mark.parametrize("seed", range(1, 6))
@pytest.mark.parametrize("known", [True, False], ids=["rpm_known", "rpm_learned"])
def test_a_batch_is_sent_at_the_rpm_from_the_second_minute_on(known: bool, seed: int) -> None:
    """bench/llm.py's figure, on the policy: 540 requests at 120/min, latency 2-30 s,
    the rate from minute 1 to the last admitted request. Learned, the first minute the
    provider counts is full before the first 429, and nothing more goes until its requests
    leave it: the default slow start finds the limit soon enough for that pause to fall in
    the first minute (started at 4 requests in flight, it did not for most seeds)."""
    clock = FakeClock()
    lim = make(clock, rpm=120 if known else 0, learn_rpm=True, max_concurrency=64)
    provider = SlidingWindowProvider(120, (2.0, 30.0), seed=seed)
    sent, refused = drive(lim, provider, clock, 600.0, backlog=540)
    assert len(sent) == 540
    first, last = min(sent + refused), sent[-1]
    steady = [t for t in sent if t > first + 60.0]
    late_refused = [t for t in refused if t > first + 60.0]
    ratio = len(steady) / (last - first - 60.0) * 60.0 / 120
    share = len(late_refused) / (len(steady) + len(late_refused))
    assert ratio >= 0.95, (ratio, share, lim.rpm)
    assert share <= 0.02, (ratio, share, lim.rpm)


def test_a_learned_rpm_waits_a_moment_past_the_providers_minute() -> None:
    """The provider's clock runs behind by the request's travel time: a learned window is
    ``bucket_s`` longer than 60 s, so a request does not replace one the instant it leaves
    the provider's minute."""
    clock = FakeClock()
    lim = make(clock, learn_rpm=True, initial_concurrency=8, max_concurrency=8)
    start = clock()
    for _ in range(5):
        lim.on_result(go(lim, clock), clock(), Outcome.SUCCESS, latency_s=1.0)
    clock.advance(1.0)
    lim.on_result(go(lim, clock), clock(), Outcome.RATE_LIMITED, retry_after_s=59.0)
    assert lim.learned_rpm == 5
    clock.t = start + 60.0  # Retry-After is over and the provider's minute has room
    d = lim.acquire(clock(), 0)
    assert (d.kind, d.reason) == (DecisionKind.WAIT, "rpm")
    assert d.until == pytest.approx(start + 61.0)
    clock.t = start + 61.0
    go(lim, clock)
