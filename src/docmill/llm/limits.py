"""Per-slot request policy for an LLM provider: a pure state machine, no threads, no sleeping.

One :class:`SlotLimiter` exists per (provider, model) slot. The caller owns the clock
(``time.monotonic`` in production, a fake in tests) and passes ``now`` (seconds) to every
call; the limiter never reads time itself and never blocks.

The protocol::

    d = limiter.acquire(now, est_tokens)
    if d.kind is DecisionKind.GO:        # send; d.permit must be reported exactly once
        ...
        limiter.on_result(d.permit, now, outcome, latency_s, tokens_used, retry_after_s)
    elif d.kind is DecisionKind.WAIT:    # ask again at d.until (None: after a result)
    else:                                # REJECTED: breaker open, d.until = re-probe time

What it combines:

* **AIMD concurrency.** The in-flight limit starts at ``initial_concurrency``. Until the
  first congestion signal it is in *slow start* (``slow_start``): every success faster
  than ``target_latency_s`` raises it by 1, so it doubles per round trip, as in TCP.
  After that, ``increase_after`` successes faster than ``target_latency_s`` raise it by
  1 (slower successes neither count nor reset the count: with latencies of 2-30 s a third
  of all answers are "slow" without any congestion); a 429 (unless an RPM bucket is
  active: then the rate is the limit, see below), a 5xx, a timeout or a success slower
  than ``ceiling_latency_s`` multiplies it by ``decrease_factor``. Bounded by
  ``[min_concurrency, max_concurrency]``. Results of requests sent before the last
  decrease do not decrease it again (one cut per burst, as in TCP congestion control).
* **RPM and TPM token buckets** that never admit more than ``rpm`` requests (``tpm``
  tokens) in any 60 s, the sliding window providers count in: the bucket holds
  ``bucket_s`` seconds of refill and refills at ``rpm / (60 + bucket_s)`` per second
  (a burst of the bucket plus 60 s of refill is exactly ``rpm``). A request takes one RPM
  token and its *estimated* tokens at ``acquire``; ``on_result`` corrects the TPM bucket
  by ``tokens_used - est_tokens`` (the bucket may go into debt). A request estimated at
  more than the TPM bucket holds goes when the bucket is full.
* **A learned RPM** (``learn_rpm``). A 429 says the provider's window is full: the
  requests this slot sent in the 60 s before the refused one (less those refused) are
  what the provider admits per minute. That count becomes the RPM bucket's rate (never
  above a configured ``rpm``), and it is probed upward by ``rpm_probe`` (a share per
  minute without a 429) when no ``rpm`` was configured. Only a request sent after the
  last lesson may teach again (one lesson per burst of 429s). A learned window is
  ``bucket_s`` longer than the provider's 60 s, as the known bucket's refill is: the
  provider's clock lags by each request's travel time, so a request sent the instant an
  old one leaves this slot's minute could still find the provider's full. The first lesson
  comes when the provider's minute is already full; until those requests leave it
  nothing more is admitted (its Retry-After says so), which is why slow start begins at 16
  in flight rather than 4: the limit is found, and that pause over, about half a minute
  sooner with slow answers.
* **Retry-After.** After a result with ``retry_after_s``, nothing goes before
  ``now + retry_after_s``.
* **Backoff** for retries: exponential with full jitter (:func:`backoff_s`), the jitter
  from an injected ``random`` callable.
* **Circuit breaker.** ``breaker_failures`` consecutive failures (5xx, timeouts,
  connection errors) open it for ``breaker_cooldown_s``; then it is half-open and lets one
  probe through. The probe's success (any answer that is not such a failure) closes it;
  its failure re-opens it with the cool-down multiplied by ``breaker_cooldown_factor``
  (up to ``breaker_cooldown_max_s``). While open, ``acquire`` answers REJECTED.
"""

from __future__ import annotations

import enum
import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

Clock = Callable[[], float]
"""What a caller reads ``now`` from: seconds on a monotonic scale (``time.monotonic``)."""

_EPS: Final = 1e-9  # float slack when comparing bucket levels and times
WINDOW_S: Final = 60.0
"""The window providers count their per-minute limits in."""


@dataclass(frozen=True)
class LimiterConfig:
    """Everything the limiter does is set here; the defaults suit a paid API tier."""

    initial_concurrency: int = 16
    """Requests in flight at the start. Slow start doubles it per round trip, so with slow
    answers (a 16 s mean) starting at 16 rather than 4 saves two round trips before a
    learned RPM is found (see the module docstring)."""
    min_concurrency: int = 1
    """The AIMD limit never falls below this."""
    max_concurrency: int = 64
    """The AIMD limit never rises above this."""
    increase_after: int = 10
    """Fast successes (after slow start) that raise the limit by one."""
    slow_start: bool = True
    """Raise the limit by one per fast success until the first congestion signal."""
    target_latency_s: float = 20.0
    """A success counts toward an increase only if it took at most this long."""
    ceiling_latency_s: float = 90.0
    """A success slower than this decreases the limit like a 429."""
    decrease_factor: float = 0.5
    """Multiplier applied to the limit on a congestion signal."""
    rpm: float = 0.0
    """Requests per minute; 0 = no RPM bucket."""
    tpm: float = 0.0
    """Tokens per minute (input + output); 0 = no TPM bucket."""
    bucket_s: float = 1.0
    """Bucket capacity, in seconds of refill; it costs the sustained rate a share
    ``bucket_s / (60 + bucket_s)`` (1 s: 1.6 %), so that no 60 s window sees more."""
    learn_rpm: bool = False
    """Learn the provider's requests per minute from 429s (see the module docstring)."""
    rpm_probe: float = 0.01
    """A learned RPM (none configured) rises by this share per minute without a 429."""
    backoff_base_s: float = 1.0
    """Upper bound of the first retry's delay; doubles with each attempt."""
    backoff_max_s: float = 60.0
    """No retry delay exceeds this."""
    breaker_failures: int = 5
    """Consecutive 5xx / timeouts / connection errors that open the breaker."""
    breaker_cooldown_s: float = 30.0
    """First pause once the breaker opens."""
    breaker_cooldown_factor: float = 2.0
    """Each failed probe multiplies the pause by this."""
    breaker_cooldown_max_s: float = 600.0
    """The pause never exceeds this."""

    def __post_init__(self) -> None:
        problems = []
        if not 1 <= self.min_concurrency <= self.initial_concurrency <= self.max_concurrency:
            problems.append("need 1 <= min_concurrency <= initial_concurrency <= max_concurrency")
        if self.increase_after < 1:
            problems.append("increase_after must be >= 1")
        if not 0.0 < self.decrease_factor < 1.0:
            problems.append("decrease_factor must be in (0, 1)")
        if self.rpm < 0 or self.tpm < 0 or self.bucket_s <= 0 or self.rpm_probe < 0:
            problems.append("rpm, tpm and rpm_probe must be >= 0 and bucket_s > 0")
        if self.backoff_base_s < 0 or self.backoff_max_s < self.backoff_base_s:
            problems.append("need 0 <= backoff_base_s <= backoff_max_s")
        if self.breaker_failures < 1:
            problems.append("breaker_failures must be >= 1")
        if not 0 < self.breaker_cooldown_s <= self.breaker_cooldown_max_s:
            problems.append("need 0 < breaker_cooldown_s <= breaker_cooldown_max_s")
        if self.breaker_cooldown_factor < 1.0:
            problems.append("breaker_cooldown_factor must be >= 1")
        if problems:
            raise ValueError("LimiterConfig: " + "; ".join(problems))


class Outcome(enum.StrEnum):
    """How a request ended, as the limiter needs to know it."""

    SUCCESS = "success"
    RATE_LIMITED = "rate_limited"  # 429
    SERVER_ERROR = "server_error"  # 5xx
    TIMEOUT = "timeout"
    CONNECTION_ERROR = "connection_error"
    CLIENT_ERROR = "client_error"  # another 4xx: the provider is up, the request was bad
    CANCELLED = "cancelled"  # never sent or abandoned: frees the slot, no signal (pass
    # tokens_used=0 for a request never sent, to give its estimated tokens back)


BREAKER_FAILURES: Final = frozenset(
    {Outcome.SERVER_ERROR, Outcome.TIMEOUT, Outcome.CONNECTION_ERROR}
)
"""Outcomes that count toward opening the breaker."""

CONGESTION: Final = frozenset({Outcome.RATE_LIMITED, Outcome.SERVER_ERROR, Outcome.TIMEOUT})
"""Outcomes that decrease the concurrency limit."""


class DecisionKind(enum.StrEnum):
    GO = "go"
    WAIT = "wait"
    REJECTED = "rejected"


class BreakerState(enum.StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass(frozen=True)
class Permit:
    """One admitted request; hand it back to :meth:`SlotLimiter.on_result` exactly once."""

    id: int
    issued_at: float
    est_tokens: int
    probe: bool


@dataclass(frozen=True)
class Decision:
    """The answer to :meth:`SlotLimiter.acquire`.

    ``GO``: ``permit`` is set. ``WAIT``: ask again at ``until`` (``None``: when an
    in-flight request has been reported). ``REJECTED``: the breaker is open; ``until`` is
    when a probe may go. ``reason`` names the binding constraint (``concurrency``, ``rpm``,
    ``tpm``, ``retry_after``, ``breaker_open``, ``probe_in_flight``), empty for GO.
    """

    kind: DecisionKind
    until: float | None = None
    reason: str = ""
    permit: Permit | None = None


def backoff_s(attempt: int, base_s: float, max_s: float, u: float) -> float:
    """Full-jitter exponential backoff: ``u * min(max_s, base_s * 2 ** (attempt - 1))``.

    ``attempt`` counts retries from 1; ``u`` is a uniform draw in [0, 1).
    """
    if attempt < 1:
        raise ValueError(f"attempt counts from 1, got {attempt}")
    if not 0.0 <= u < 1.0:
        raise ValueError(f"u must be in [0, 1), got {u}")
    ceiling = min(max_s, base_s * 2.0 ** min(attempt - 1, 1023))
    return u * ceiling


class TokenBucket:
    """A continuously refilled bucket; pure arithmetic on the ``now`` it is given.

    It admits at most ``per_minute`` in any window of ``window_s`` seconds: it holds
    ``bucket_s`` seconds of refill and refills at ``per_minute / (window_s + bucket_s)``
    per second (``window_s=0``: plainly ``per_minute / 60`` per second).
    """

    def __init__(self, per_minute: float, bucket_s: float, now: float, window_s: float = 0.0) -> None:
        self.bucket_s = bucket_s
        self.window_s = window_s
        self.per_minute = per_minute
        self.rate = self._rate(per_minute)
        self.capacity = self.rate * bucket_s
        self.level = self.capacity
        self.updated = now

    def _rate(self, per_minute: float) -> float:
        return per_minute / (self.window_s + self.bucket_s if self.window_s else 60.0)

    def set_per_minute(self, now: float, per_minute: float) -> None:
        """Change the rate from ``now`` on (the level is kept, capped to the new capacity)."""
        self._refill(now)
        self.per_minute = per_minute
        self.rate = self._rate(per_minute)
        self.capacity = self.rate * self.bucket_s
        self.level = min(self.level, self.capacity)

    def _refill(self, now: float) -> None:
        if now > self.updated:
            self.level = min(self.capacity, self.level + (now - self.updated) * self.rate)
            self.updated = now

    def ready_at(self, now: float, amount: float) -> float:
        """The earliest time ``amount`` can be taken (``now`` if it can be now).

        An amount larger than the capacity needs a full bucket.
        """
        self._refill(now)
        need = min(amount, self.capacity)
        if self.level + _EPS >= need:
            return now
        return now + (need - self.level) / self.rate

    def take(self, now: float, amount: float) -> None:
        self._refill(now)
        self.level -= amount

    def adjust(self, delta: float) -> None:
        """Take ``delta`` more (give back if negative); the level never exceeds capacity."""
        self.level = min(self.capacity, self.level - delta)


class SlotLimiter:
    """Admission control for one (provider, model) slot. Not thread-safe: one owner."""

    def __init__(self, config: LimiterConfig, *, now: float, random: Callable[[], float]) -> None:
        self.config = config
        self._random = random
        self._limit = float(config.initial_concurrency)
        self._in_flight: dict[int, Permit] = {}
        self._next_id = 0
        self._fast_successes = 0
        self._cut_mark = 0  # the first permit id allowed to decrease the limit
        self._slow_start = config.slow_start
        self._rpm = (
            TokenBucket(config.rpm, config.bucket_s, now, WINDOW_S) if config.rpm > 0 else None
        )
        self._tpm = (
            TokenBucket(config.tpm, config.bucket_s, now, WINDOW_S) if config.tpm > 0 else None
        )
        # the permits of the last minute, less those refused with 429 (what the provider
        # counts): (issued_at, id)
        self._log: deque[tuple[float, int]] = deque()
        self._learned_rpm: float | None = None
        self._learned_at = 0.0
        self._learn_mark = 0  # the first permit id allowed to teach
        self._blocked_until = -math.inf
        self._breaker = BreakerState.CLOSED
        self._failures = 0
        self._cooldown = config.breaker_cooldown_s
        self._open_until = -math.inf
        self._probe_out = False

    # -- read-only views --------------------------------------------------------------

    @property
    def concurrency_limit(self) -> int:
        return int(self._limit)

    @property
    def in_flight(self) -> int:
        return len(self._in_flight)

    @property
    def breaker(self) -> BreakerState:
        return self._breaker

    @property
    def rpm(self) -> float:
        """The RPM the bucket admits now (configured or learned); 0: no RPM bucket."""
        return self._rpm.per_minute if self._rpm is not None else 0.0

    @property
    def learned_rpm(self) -> float | None:
        """What the last 429 taught (before probing); None: nothing learned."""
        return self._learned_rpm

    @property
    def blocked_until(self) -> float:
        """No request goes before this time (Retry-After); ``-inf`` if unset."""
        return self._blocked_until

    # -- the protocol -----------------------------------------------------------------

    def acquire(self, now: float, est_tokens: int = 0) -> Decision:
        """Admit one request now, or say how long to wait, or reject it (breaker open)."""
        probe = False
        if self._breaker is BreakerState.OPEN:
            if now + _EPS < self._open_until:
                return Decision(DecisionKind.REJECTED, self._open_until, "breaker_open")
            self._breaker = BreakerState.HALF_OPEN
        if self._breaker is BreakerState.HALF_OPEN:
            if self._probe_out:
                return Decision(DecisionKind.REJECTED, None, "probe_in_flight")
            probe = True

        self._probe_rpm(now)
        waits: list[tuple[float, str]] = []
        if now + _EPS < self._blocked_until:
            waits.append((self._blocked_until, "retry_after"))
        if self._rpm is not None:
            waits.append((self._rpm.ready_at(now, 1.0), "rpm"))
            waits.append((self._window_ready_at(now), "rpm"))
        if self._tpm is not None:
            waits.append((self._tpm.ready_at(now, float(est_tokens)), "tpm"))
        until, reason = max(waits, default=(now, ""))
        if until > now:
            return Decision(DecisionKind.WAIT, until, reason)
        if len(self._in_flight) >= int(self._limit):
            return Decision(DecisionKind.WAIT, None, "concurrency")

        if self._rpm is not None:
            self._rpm.take(now, 1.0)
        if self._tpm is not None:
            self._tpm.take(now, float(est_tokens))
        permit = Permit(self._next_id, now, est_tokens, probe)
        self._next_id += 1
        self._in_flight[permit.id] = permit
        self._log.append((now, permit.id))
        self._trim_log(now)
        if probe:
            self._probe_out = True
        return Decision(DecisionKind.GO, now, "", permit)

    def on_result(
        self,
        permit: Permit,
        now: float,
        outcome: Outcome,
        latency_s: float = 0.0,
        tokens_used: int | None = None,
        retry_after_s: float | None = None,
    ) -> None:
        """Record how an admitted request ended; frees its slot and updates every policy.

        ``tokens_used`` (input + output, as billed) corrects the TPM estimate; ``None``
        keeps the estimate. ``retry_after_s`` (from the response header) blocks the slot.
        """
        if self._in_flight.pop(permit.id, None) is None:
            raise ValueError(f"permit {permit.id} is not in flight (reported twice?)")
        if self._tpm is not None and tokens_used is not None:
            self._tpm.adjust(float(tokens_used - permit.est_tokens))
        if retry_after_s is not None and retry_after_s > 0:
            self._blocked_until = max(self._blocked_until, now + retry_after_s)
        if outcome is Outcome.CANCELLED:
            if permit.probe:
                self._probe_out = False
            return
        if outcome is Outcome.RATE_LIMITED and self.config.learn_rpm:
            self._learn(permit, now)
        self._update_concurrency(permit, outcome, latency_s)
        self._update_breaker(permit, now, outcome)

    def backoff(self, attempt: int) -> float:
        """Seconds to wait before retry number ``attempt`` (from 1), full jitter."""
        c = self.config
        return backoff_s(attempt, c.backoff_base_s, c.backoff_max_s, self._random())

    # -- policies ---------------------------------------------------------------------

    def _span(self) -> float:
        """The sliding window this slot counts its requests in (see ``_window_ready_at``)."""
        return WINDOW_S + (self.config.bucket_s if self._learned_rpm is not None else 0.0)

    def _trim_log(self, now: float) -> None:
        span = self._span()
        while self._log and self._log[0][0] <= now - span:
            self._log.popleft()

    def _window_ready_at(self, now: float) -> float:
        """When the last minute holds fewer than the RPM of this slot's admitted requests.

        Once an RPM is learned the window is ``bucket_s`` longer than the provider's: a
        request is not sent the instant the one it replaces leaves the provider's minute
        (the two clocks differ by the network's delay).
        """
        assert self._rpm is not None
        span = self._span()
        self._trim_log(now)
        allowed = max(1, math.floor(self._rpm.per_minute + _EPS))
        if len(self._log) < allowed:
            return now
        return self._log[len(self._log) - allowed][0] + span

    def _learn(self, permit: Permit, now: float) -> None:
        """A 429: the requests admitted in the 60 s before this one are the provider's RPM."""
        entry = (permit.issued_at, permit.id)
        if entry in self._log:
            self._log.remove(entry)  # refused: the provider does not count it
        if permit.id < self._learn_mark:
            return  # sent before the last lesson: it says nothing new
        start = permit.issued_at - WINDOW_S
        admitted = float(max(1, sum(1 for t, _ in self._log if start < t < permit.issued_at)))
        if self.config.rpm > 0:
            admitted = min(admitted, self.config.rpm)
        if self._rpm is not None:
            admitted = min(admitted, self._rpm.per_minute)
        self._learned_rpm = admitted
        self._learned_at = now
        self._learn_mark = self._next_id
        if self._rpm is None:
            self._rpm = TokenBucket(admitted, self.config.bucket_s, now, WINDOW_S)
        else:
            self._rpm.set_per_minute(now, admitted)

    def _probe_rpm(self, now: float) -> None:
        """Raise a learned RPM slowly while no 429 comes (only without a configured one)."""
        c = self.config
        if self._learned_rpm is None or self._rpm is None or c.rpm > 0 or c.rpm_probe <= 0:
            return
        minutes = max(0.0, now - self._learned_at) / WINDOW_S
        target = self._learned_rpm * (1.0 + c.rpm_probe * minutes)
        if target > self._rpm.per_minute * (1.0 + 1e-3):
            self._rpm.set_per_minute(now, target)

    def _update_concurrency(self, permit: Permit, outcome: Outcome, latency_s: float) -> None:
        c = self.config
        congested = outcome in CONGESTION or (
            outcome is Outcome.SUCCESS and latency_s > c.ceiling_latency_s
        )
        if congested:
            self._slow_start = False
            self._fast_successes = 0
            if outcome is Outcome.RATE_LIMITED and self._rpm is not None and c.learn_rpm:
                return  # the rate is what binds, and the RPM bucket now holds it
            if permit.id >= self._cut_mark:
                self._limit = max(
                    float(c.min_concurrency), float(math.floor(self._limit * c.decrease_factor))
                )
                self._cut_mark = self._next_id  # permits issued before this cut cannot cut
            return
        if outcome is Outcome.SUCCESS and latency_s <= c.target_latency_s:
            self._fast_successes += 1
            if self._slow_start or self._fast_successes >= c.increase_after:
                self._fast_successes = 0
                self._limit = min(float(c.max_concurrency), self._limit + 1.0)

    def _update_breaker(self, permit: Permit, now: float, outcome: Outcome) -> None:
        c = self.config
        failed = outcome in BREAKER_FAILURES
        if self._breaker is BreakerState.CLOSED:
            if failed:
                self._failures += 1
                if self._failures >= c.breaker_failures:
                    self._open(now)
            elif outcome is not Outcome.RATE_LIMITED:
                self._failures = 0
            return
        if not permit.probe:
            return  # only the probe moves an open or half-open breaker
        self._probe_out = False
        if failed:
            self._cooldown = min(
                c.breaker_cooldown_max_s, self._cooldown * c.breaker_cooldown_factor
            )
            self._open(now)
        else:
            self._breaker = BreakerState.CLOSED
            self._failures = 0
            self._cooldown = c.breaker_cooldown_s

    def _open(self, now: float) -> None:
        self._breaker = BreakerState.OPEN
        self._open_until = now + self._cooldown
        self._failures = 0
