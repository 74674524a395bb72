"""The key limiter: AIMD, buckets, Retry-After, backoff, breaker; the key's limit shared by models
and lanes, what providers say, other clients' share, storms. No sleeping: a fake clock."""

from __future__ import annotations

import itertools
import math
import random
from collections import Counter
from dataclasses import dataclass
from typing import Any

import pytest

from docmill.llm.limits import (
    BreakerState,
    Decision,
    DecisionKind,
    KeyLimiter,
    LimiterConfig,
    Outcome,
    Permit,
    backoff_s,
)
from docmill.llm.rate_signals import Allowance, RateSignals, Refusal


@dataclass
class FakeClock:
    t: float = 1000.0

    def __call__(self) -> float:
        return self.t

    def advance(self, s: float) -> None:
        self.t += s


def make(clock: FakeClock, **kw: Any) -> KeyLimiter:
    return KeyLimiter(LimiterConfig(**kw), now=clock(), random=random.Random(7).random)


def go(lim: KeyLimiter, clock: FakeClock, est: int = 0) -> Permit:
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
    lim: KeyLimiter,
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


# --- issue 15: the key's limit, shared by models and lanes; what providers say ---------


class KeyProvider:
    """A provider model counting ``rpm`` per sliding minute per key, shared by all models
    (``per_model``: per model instead). A 429 carries the exact Retry-After and, with
    ``figures``, OpenAI's message (``Limit``, ``Used``; the model named when ``per_model``);
    with ``headers`` every answer carries ``x-ratelimit-*-requests`` as counted when the
    request arrived. ``others(t)`` admits another client's request at ``t`` on the key.
    Latency: log-normal around ``median_s``; ``fail`` is a share of 5xx answers."""

    def __init__(
        self,
        rpm: int,
        *,
        seed: int = 1,
        median_s: float = 1.5,
        figures: bool = False,
        headers: bool = False,
        per_model: bool = False,
        fail: float = 0.0,
    ) -> None:
        self.rpm = rpm
        self.rng = random.Random(seed)
        self.median_s = median_s
        self.figures = figures
        self.headers = headers
        self.per_model = per_model
        self.fail = fail
        self.windows: dict[str, list[float]] = {}

    def _window(self, model: str, now: float) -> list[float]:
        window = self.windows.setdefault(model if self.per_model else "*", [])
        window[:] = [t for t in window if t > now - 60.0]
        return window

    def others(self, now: float, model: str = "other") -> bool:
        window = self._window(model, now)
        if len(window) >= self.rpm:
            return False
        window.append(now)
        return True

    def send(self, now: float, model: str) -> tuple[Outcome, float, float | None, RateSignals | None]:
        window = self._window(model, now)
        if len(window) >= self.rpm:
            retry = max(0.001, window[0] + 60.0 - now)
            refusal = Refusal(
                kind="requests",
                figure=float(self.rpm) if self.figures else None,
                used=float(len(window)) if self.figures else None,
                target=model if self.per_model else None,
            )
            allowance = Allowance(self.rpm, 0, retry) if self.headers else None
            return Outcome.RATE_LIMITED, 0.05, retry, RateSignals(allowance, None, refusal)
        window.append(now)
        signals = (
            RateSignals(Allowance(self.rpm, self.rpm - len(window), 60.0)) if self.headers else None
        )
        latency = min(30.0, self.rng.lognormvariate(math.log(self.median_s), 0.5))
        if self.rng.random() < self.fail:
            return Outcome.SERVER_ERROR, latency, None, signals
        return Outcome.SUCCESS, latency, None, signals


@dataclass
class Trace:
    admitted: dict[str, list[float]]  # lane -> times the provider admitted one
    refused: list[float]
    failed: int = 0


def run_lanes(
    lim: KeyLimiter,
    provider: KeyProvider,
    clock: FakeClock,
    seconds: float,
    work: dict[str, tuple[str, int]],
    others: Any = None,
) -> Trace:
    """Requests waiting in lanes (lane -> (model, how many)) go as ``dispatch`` allows; a
    refused or failed one waits again in its lane. ``others(t)``: whether another client
    sends at ``t``. Runs ``seconds`` or until every request is admitted and answered."""
    for lane, (model, n) in work.items():
        for _ in range(n):
            lim.enqueue(lane, model)
    trace = Trace({lane: [] for lane in work}, [])
    pending: list[tuple[float, Permit, Outcome, float, float | None, RateSignals | None]] = []
    end = clock() + seconds
    while clock() < end and (lim.waiting() or pending):
        clock.advance(0.05)
        if others is not None and others(clock()):
            provider.others(clock())
        for item in [p for p in pending if p[0] <= clock()]:
            pending.remove(item)
            _, permit, outcome, latency, retry, signals = item
            lim.on_result(permit, clock(), outcome, latency, None, retry, signals)
            if outcome is not Outcome.SUCCESS:
                lim.enqueue(permit.lane, permit.model)
                trace.failed += outcome is not Outcome.RATE_LIMITED
        for _ticket, permit in lim.dispatch(clock()).grants:
            outcome, latency, retry, signals = provider.send(clock(), permit.model)
            if outcome is Outcome.RATE_LIMITED:
                trace.refused.append(clock())
            else:
                trace.admitted[permit.lane].append(clock())
            pending.append((clock() + latency, permit, outcome, latency, retry, signals))
    return trace


def per_minute(times: list[float], start: float, end: float) -> float:
    return sum(1 for t in times if start <= t < end) / (end - start) * 60.0


def learning(clock: FakeClock, **kw: Any) -> KeyLimiter:
    kw = {"learn_rpm": True, "max_concurrency": 64, "min_concurrency": 4, **kw}
    return make(clock, **kw)


@pytest.mark.parametrize("figures", [False, True], ids=["learned", "stated_in_429"])
def test_two_models_share_the_key_and_the_fields_get_it_all_once_classification_ends(
    figures: bool,
) -> None:
    """Issue 15: the key's 90/min was split 66/24 by who met a 429 first and stayed split
    after classification ended. One key budget: both roles fill it together, and the
    extraction lane alone gets all of it."""
    clock = FakeClock()
    start = clock()
    lim = learning(clock)
    provider = KeyProvider(90, seed=2, figures=figures)
    trace = run_lanes(
        lim, provider, clock, 480.0, {"classify": ("small", 240), "extract": ("large", 100_000)}
    )
    classify_end = max(trace.admitted["classify"])
    assert classify_end < start + 300.0, "classification never finished"
    both = trace.admitted["classify"] + trace.admitted["extract"]
    assert per_minute(both, start + 60.0, classify_end) >= 0.95 * 90
    # once classification is over, fields get the key's whole budget
    alone = per_minute(trace.admitted["extract"], classify_end + 5.0, clock())
    assert alone >= 0.95 * 90, (alone, lim.limits_of("large"))
    late = [t for t in trace.refused if t > start + 60.0]
    assert len(late) <= 0.02 * len(both) + 1
    assert lim.scope_of("small") == lim.scope_of("large") == "key"


def test_lanes_share_the_key_in_proportion_to_the_requests_waiting() -> None:
    clock = FakeClock()
    lim = make(clock, rpm=60, initial_concurrency=64, max_concurrency=64)
    for _ in range(300):
        lim.enqueue("classify", "small")
    for _ in range(100):
        lim.enqueue("extract", "large")
    granted: Counter[str] = Counter()
    for _ in range(120 * 20):  # two minutes, one dispatch every 50 ms
        clock.advance(0.05)
        for _ticket, permit in lim.dispatch(clock()).grants:
            granted[permit.lane] += 1
            lim.on_result(permit, clock(), Outcome.SUCCESS, 0.01)
            lim.enqueue(permit.lane, permit.model)  # the queues stay 300 and 100 long
    assert sum(granted.values()) >= 0.95 * 120
    assert granted["classify"] / granted["extract"] == pytest.approx(3.0, rel=0.1)
    # a lane alone gets everything, whatever its share was
    assert lim.waiting("extract") == 100
    for ticket in list(lim._lanes["classify"].queue):
        lim.withdraw(ticket)
    assert lim.waiting() == 100
    alone = 0
    for _ in range(60 * 20):
        clock.advance(0.05)
        for _ticket, permit in lim.dispatch(clock()).grants:
            alone += 1
            lim.on_result(permit, clock(), Outcome.SUCCESS, 0.01)
    assert alone >= 0.95 * 60


def test_a_429_naming_the_model_narrows_the_limit_to_that_model() -> None:
    """Providers that count per model say so: their 429 names it (``Rate limit reached
    for gpt-4o in …``); each model then gets a scope, and the key's budget is not split."""
    clock = FakeClock()
    start = clock()
    lim = learning(clock)
    provider = KeyProvider(60, seed=3, figures=True, per_model=True)
    trace = run_lanes(
        lim, provider, clock, 240.0, {"classify": ("small", 100_000), "extract": ("large", 100_000)}
    )
    assert lim.scope_of("small") == lim.scope_of("large") == "model"
    assert lim.limits_of("small")[0] == lim.limits_of("large")[0] == 60
    for lane in ("classify", "extract"):  # each model at its own 60/min
        assert per_minute(trace.admitted[lane], start + 60.0, clock()) >= 0.95 * 60


def test_a_429_naming_a_limit_group_or_nothing_keeps_the_key_scope() -> None:
    clock = FakeClock()
    lim = learning(clock)
    for target in (None, "10KTPM-200RPM", "gpt-4o-mini", "gpt-4o"):
        clock.advance(2.0)  # past the last Retry-After
        permit = lim.acquire(clock(), model="gpt-4o").permit
        assert permit is not None
        assert lim.scope_of("gpt-4o") == "key", target
        refusal = Refusal(kind="requests", figure=600, used=1, target=target)
        lim.on_result(permit, clock(), Outcome.RATE_LIMITED, 0.1, None, 1.0, RateSignals(refusal=refusal))
    assert lim.scope_of("gpt-4o") == "model"  # only the last named the model


def test_headers_give_the_limit_at_once_and_what_others_hold() -> None:
    """``x-ratelimit-*`` headers: the limit is known from the first answer (no 429 needed),
    and ``limit - remaining`` beyond this client's own requests is another client's share:
    none of it is used until it may have left the minute."""
    clock = FakeClock()
    lim = learning(clock, initial_concurrency=16)
    first = lim.acquire(clock(), model="m").permit
    assert first is not None and lim.rpm == 0
    clock.advance(0.2)
    # counted when it arrived: 90 used of 90, one of them its own
    lim.on_result(first, clock(), Outcome.SUCCESS, 1.0, None, None,
                  RateSignals(Allowance(90, 0, 59.0)))  # fmt: skip
    assert lim.rpm == 90
    d = lim.acquire(clock(), model="m")
    assert (d.kind, d.reason) == (DecisionKind.WAIT, "rpm")  # the bucket alone would let it go
    assert d.until is not None and d.until > clock()
    # the same answer from a provider where the key's window is its own: it goes
    other = learning(FakeClock())
    p = other.acquire(1000.0, model="m").permit
    assert p is not None
    other.on_result(p, 1000.2, Outcome.SUCCESS, 0.2, None, None, RateSignals(Allowance(90, 89, 1.0)))
    assert other.acquire(1000.2, model="m").kind is DecisionKind.GO


def test_a_429_stating_its_limit_is_a_known_limit_not_a_lesson() -> None:
    clock = FakeClock()
    lim = learning(clock)
    permit = lim.acquire(clock(), model="m").permit
    assert permit is not None
    clock.advance(0.1)
    refusal = Refusal(kind="requests", figure=90, used=90)
    lim.on_result(permit, clock(), Outcome.RATE_LIMITED, 0.1, None, 40.0, RateSignals(refusal=refusal))
    assert lim.rpm == 90 and lim.learned_rpm is None
    early = lim.acquire(clock() + 39.9, model="m")  # Retry-After, and 90 others in the window
    assert early.kind is DecisionKind.WAIT and early.until is not None
    assert early.until >= clock() + 40.0
    assert lim.acquire(clock() + 40.5, model="m").kind is DecisionKind.GO


def test_headers_that_count_fewer_than_the_key_sent_narrow_to_the_model() -> None:
    """OpenAI sends headers per model: two models each told ``limit 60`` while the key sent
    both models' requests means the provider counts per model."""
    clock = FakeClock()
    start = clock()
    lim = learning(clock)
    provider = KeyProvider(60, seed=4, headers=True, per_model=True)
    trace = run_lanes(
        lim, provider, clock, 240.0, {"classify": ("small", 100_000), "extract": ("large", 100_000)}
    )
    assert lim.scope_of("small") == lim.scope_of("large") == "model"
    for lane in ("classify", "extract"):
        assert per_minute(trace.admitted[lane], start + 60.0, clock()) >= 0.95 * 60
    assert len([t for t in trace.refused if t > start + 60.0]) <= 2


@pytest.mark.parametrize(
    ("figures", "headers"), [(False, False), (True, False), (True, True)],
    ids=["nothing_said", "figures_in_429", "headers"],
)  # fmt: skip
def test_a_window_full_of_someone_elses_requests_is_waited_out_then_used(
    figures: bool, headers: bool
) -> None:
    """A run started just after another (or resumed after ``kill -9``): the key's minute
    already holds 90 requests when it starts. The first 429s must not teach a tiny limit:
    after the first minute the rate is the key's."""
    clock = FakeClock()
    provider = KeyProvider(90, seed=5, figures=figures, headers=headers)
    for i in range(90):  # the predecessor's last minute, evenly
        provider.others(clock() - 60.0 + (i + 1) * 60.0 / 90)
    start = clock()
    lim = learning(clock)
    trace = run_lanes(lim, provider, clock, 300.0, {"classify": ("small", 100_000)})
    rate = per_minute(trace.admitted["classify"], start + 60.0, clock())
    assert rate >= 0.90 * 90, (rate, lim.rpm, lim.learned_rpm)
    late = [t for t in trace.refused if t > start + 60.0]
    assert len(late) <= 0.02 * len(trace.admitted["classify"]), len(late)


@pytest.mark.parametrize("figures", [False, True], ids=["learned", "stated_in_429"])
def test_the_rate_comes_back_within_two_minutes_of_another_clients_storm(figures: bool) -> None:
    """Another client on the key takes 60/min for two minutes, then stops: this client's
    rate drops meanwhile (429s say so) and is back at the key's limit within two minutes
    (the old probe, 1 %/min from the level learned in the storm, took an hour)."""
    clock = FakeClock()
    start = clock()
    lim = learning(clock)
    provider = KeyProvider(90, seed=6, figures=figures)
    storm = (start + 120.0, start + 240.0)
    tick = {"next": storm[0]}

    def others(t: float) -> bool:
        if storm[0] <= t < storm[1] and t >= tick["next"]:
            tick["next"] += 1.0  # 60/min
            return True
        return False

    trace = run_lanes(lim, provider, clock, 600.0, {"classify": ("small", 100_000)}, others)
    after = per_minute(trace.admitted["classify"], storm[1] + 120.0, storm[1] + 240.0)
    assert after >= 0.90 * 90, (after, lim.rpm, lim.learned_rpm)
    before = per_minute(trace.admitted["classify"], start + 60.0, storm[0])
    assert before >= 0.95 * 90


def test_a_lone_5xx_or_timeout_does_not_stop_a_model() -> None:
    """Each 5xx or timeout used to halve the concurrency down to 1, so one hung request
    stopped the model for its whole timeout. The floor: what the rate needs at the
    model's latency (twice over), so requests keep flowing while one hangs."""
    clock = FakeClock()
    lim = learning(clock, rpm=90, initial_concurrency=8)
    for _ in range(20):  # a mean latency of 2 s
        p = lim.acquire(clock(), model="m").permit
        assert p is not None
        clock.advance(1.0)
        lim.on_result(p, clock(), Outcome.SUCCESS, 2.0)
    # 90/min at 2 s needs 3 in flight; the floor is twice that
    hung = lim.acquire(clock(), model="m").permit
    assert hung is not None
    for outcome in (Outcome.SERVER_ERROR, Outcome.TIMEOUT, Outcome.SERVER_ERROR, Outcome.TIMEOUT):
        clock.advance(1.0)
        p = lim.acquire(clock(), model="m").permit
        assert p is not None
        clock.advance(1.0)
        lim.on_result(p, clock(), outcome, 2.0)
    assert lim.concurrency_of("m") >= 6
    # requests go while the hung one is still out
    flowing = 0
    for _ in range(30 * 20):
        clock.advance(0.05)
        d = lim.acquire(clock(), model="m")
        if d.kind is DecisionKind.GO:
            assert d.permit is not None
            lim.on_result(d.permit, clock(), Outcome.SUCCESS, 2.0)
            flowing += 1
    assert flowing >= 0.95 * 90 / 2
    lim.on_result(hung, clock(), Outcome.TIMEOUT, 60.0)


def test_requests_out_far_longer_than_the_mean_do_not_hold_a_slot() -> None:
    """With the rate limit holding the rate, hung (or very slow) requests do not count
    against the concurrency: the others keep going while they wait for their timeout."""
    clock = FakeClock()
    lim = learning(clock, rpm=90, initial_concurrency=4, slow_start=False, increase_after=1000)
    for _ in range(20):  # a mean latency of 1 s: the floor is 2 x 1.5/s x 1 s = 3, the limit 4
        clock.advance(1.0)
        p = lim.acquire(clock(), model="m").permit
        assert p is not None
        lim.on_result(p, clock(), Outcome.SUCCESS, 1.0)
    hung = []
    for _ in range(4):
        clock.advance(1.0)
        p = lim.acquire(clock(), model="m").permit
        assert p is not None
        hung.append(p)
    clock.advance(1.0)
    assert lim.acquire(clock(), model="m").reason == "concurrency"  # 4 out, none stuck yet
    clock.advance(4.0)  # the first ones have been out 4 mean latencies: they stop counting
    assert lim.acquire(clock(), model="m").kind is DecisionKind.GO
    # without a rate limit the concurrency limit is all there is: it holds
    bare = learning(FakeClock(), min_concurrency=1, initial_concurrency=2, max_concurrency=2)
    out = [bare.acquire(1000.0 + i, model="m").permit for i in range(2)]
    assert all(out) and bare.acquire(1100.0, model="m").reason == "concurrency"


def test_a_provider_with_5xx_and_hangs_keeps_its_rate() -> None:
    clock = FakeClock()
    start = clock()
    lim = learning(clock)
    provider = KeyProvider(90, seed=7, figures=True, fail=0.04)
    trace = run_lanes(lim, provider, clock, 300.0, {"classify": ("small", 100_000)})
    assert trace.failed > 10
    assert per_minute(trace.admitted["classify"], start + 60.0, clock()) >= 0.95 * 90


def test_a_daily_limit_only_blocks_for_its_retry_after() -> None:
    clock = FakeClock()
    lim = learning(clock)
    p = lim.acquire(clock(), model="m").permit
    assert p is not None
    signals = RateSignals(refusal=Refusal(kind="requests", figure=200, per_minute=False))
    lim.on_result(p, clock(), Outcome.RATE_LIMITED, 0.1, None, 30.0, signals)
    assert lim.rpm == 0 and lim.learned_rpm is None  # no per-minute limit from a daily one
    assert lim.acquire(clock(), model="m").reason == "retry_after"
