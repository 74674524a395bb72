"""Per-model concurrency (AIMD with a floor) and circuit breaker: pure, ``now`` passed in.

One :class:`ModelState` exists per model on a key: how many of its requests may be in
flight, and whether its breaker lets any through. The rate limits are not here (they
belong to the key, or to a model only when the provider says so; ``minute_limit``).

* **AIMD.** The limit starts at ``initial``. Until the first congestion signal it is in
  slow start: every fast success (at most ``target_latency_s``) raises it by 1. After
  that, ``increase_after`` fast successes raise it by 1 (slower ones neither count nor
  reset the count). A congestion signal multiplies it by ``decrease_factor``, once per
  burst (results of requests sent before the last cut do not cut again), never below the
  **floor**: ``min_concurrency``, or, when a rate limit is known, what that rate needs at
  this model's latency (``floor_headroom × rate/s × mean latency``): one hung request or
  a lone 5xx must not stop a model whose rate is what binds.
* **Breaker.** ``breaker_failures`` consecutive failures (5xx, timeouts, connection errors)
  open it for ``breaker_cooldown_s``; then it is half-open and lets one probe through. The
  probe's success (any answer that is not such a failure) closes it; its failure re-opens
  it with the cool-down multiplied by ``breaker_cooldown_factor`` (up to
  ``breaker_cooldown_max_s``).
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass
from typing import Final

_LATENCY_WEIGHT: Final = 0.1  # the weight of a new success in the mean latency


class BreakerState(enum.StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass(frozen=True)
class ConcurrencyParams:
    initial: int = 16
    min_concurrency: int = 1
    max_concurrency: int = 64
    increase_after: int = 10
    slow_start: bool = True
    target_latency_s: float = 20.0
    decrease_factor: float = 0.5
    floor_headroom: float = 2.0
    breaker_failures: int = 5
    breaker_cooldown_s: float = 30.0
    breaker_cooldown_factor: float = 2.0
    breaker_cooldown_max_s: float = 600.0


class ModelState:
    """One model's in-flight limit and breaker. Not thread-safe: one owner."""

    def __init__(self, params: ConcurrencyParams) -> None:
        self.params = params
        self.limit = float(params.initial)
        self.in_flight: set[int] = set()
        self.latency_s: float | None = None  # mean latency of successes
        self._fast = 0
        self._cut_mark = 0
        self._slow_start = params.slow_start
        self.breaker = BreakerState.CLOSED
        self._failures = 0
        self._cooldown = params.breaker_cooldown_s
        self.open_until = -math.inf
        self.probe_out = False
        self.blocked_until = -math.inf  # Retry-After of an answer that was not a 429

    # -- admission --------------------------------------------------------------------

    def breaker_check(self, now: float) -> tuple[bool, float | None, str]:
        """(may go, until, reason): an open breaker rejects until its cool-down ends; a
        half-open one lets one probe through."""
        if self.breaker is BreakerState.OPEN:
            if now + 1e-9 < self.open_until:
                return False, self.open_until, "breaker_open"
            self.breaker = BreakerState.HALF_OPEN
        if self.breaker is BreakerState.HALF_OPEN and self.probe_out:
            return False, None, "probe_in_flight"
        return True, None, ""

    def admit(self, permit: int) -> bool:
        """Count ``permit`` in flight; True when it is the half-open breaker's probe."""
        self.in_flight.add(permit)
        probe = self.breaker is BreakerState.HALF_OPEN
        if probe:
            self.probe_out = True
        return probe

    # -- results ----------------------------------------------------------------------

    def release(self, permit: int) -> None:
        self.in_flight.discard(permit)

    def succeeded(self, latency_s: float) -> None:
        """A success not slower than the ceiling latency: raises the limit when fast."""
        p = self.params
        if self.latency_s is None:
            self.latency_s = latency_s
        else:
            self.latency_s += _LATENCY_WEIGHT * (latency_s - self.latency_s)
        if latency_s <= p.target_latency_s:
            self._fast += 1
            if self._slow_start or self._fast >= p.increase_after:
                self._fast = 0
                self.limit = min(float(p.max_concurrency), self.limit + 1.0)

    def congested(
        self, permit: int, next_permit: int, cut: bool, rate_per_min: float | None
    ) -> None:
        """A congestion signal; ``cut``: it lowers the limit (a 429 does not when a rate
        limit holds the rate); ``rate_per_min``: the rate limit this model is held to."""
        self._slow_start = False
        self._fast = 0
        if not cut or permit < self._cut_mark:
            return
        floor = max(float(self.params.min_concurrency), self.floor(rate_per_min))
        cut_to = math.floor(self.limit * self.params.decrease_factor)
        self.limit = max(min(floor, self.limit), float(cut_to))
        self._cut_mark = next_permit

    def floor(self, rate_per_min: float | None) -> float:
        """In flight needed to keep ``rate_per_min`` going at this model's latency."""
        if not rate_per_min or self.latency_s is None:
            return 0.0
        need = self.params.floor_headroom * rate_per_min / 60.0 * self.latency_s
        return float(min(self.params.max_concurrency, math.ceil(need)))

    def breaker_result(self, now: float, probe: bool, failed: bool, rate_limited: bool) -> None:
        p = self.params
        if self.breaker is BreakerState.CLOSED:
            if failed:
                self._failures += 1
                if self._failures >= p.breaker_failures:
                    self._open(now)
            elif not rate_limited:
                self._failures = 0
            return
        if not probe:
            return  # only the probe moves an open or half-open breaker
        self.probe_out = False
        if failed:
            self._cooldown = min(
                p.breaker_cooldown_max_s, self._cooldown * p.breaker_cooldown_factor
            )
            self._open(now)
        else:
            self.breaker = BreakerState.CLOSED
            self._failures = 0
            self._cooldown = p.breaker_cooldown_s

    def _open(self, now: float) -> None:
        self.breaker = BreakerState.OPEN
        self.open_until = now + self._cooldown
        self._failures = 0
