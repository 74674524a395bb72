"""Throttling and retries for a remote store's requests (``sources.requests_per_s``,
``sources.retries``).

The policies are pure and take the time as a parameter (:class:`RequestGate`,
:class:`Backoff`); :class:`Retrier` applies them around a request with an injected
clock and sleep, shared by the listing and every download thread of one store:

* every request first waits for its slot: at most ``requests_per_s`` a second, with a
  burst of one second's worth;
* a transient answer (429, 503 SlowDown, a dropped connection...) is retried after a
  full-jitter exponential backoff, never sooner than its ``Retry-After``, and a
  throttling answer pauses the whole store for that long (every thread waits, so a
  slowdown is not met with a retry storm).
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

T = TypeVar("T")


class TransientError(Exception):
    """A request that may succeed when tried again (a backend's translation of a 429,
    503, SlowDown or a dropped connection). ``throttled``: the store asked to slow down."""

    def __init__(self, message: str, *, retry_after_s: float | None = None, throttled: bool = False,
                 reason: str = "error") -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s
        self.throttled = throttled
        self.reason = reason  # a short key for the counters: "503", "429", "connection"...


@dataclass
class RequestGate:
    """A token bucket of ``rate`` requests a second (``rate`` <= 0: no limit) and a pause
    that throttling answers set for everyone. Pure: ``now`` is always given."""

    rate: float
    burst: float = 0.0  # tokens the bucket holds (default: one second's worth, at least 1)
    _tokens: float = field(default=0.0, init=False)
    _stamp: float | None = field(default=None, init=False)
    _paused_until: float = field(default=0.0, init=False)

    def __post_init__(self) -> None:
        if self.burst <= 0:
            self.burst = max(1.0, self.rate)
        self._tokens = self.burst

    def take(self, now: float) -> float:
        """Reserve one request; how many seconds the caller must wait before sending it."""
        pause = max(0.0, self._paused_until - now)
        if self.rate <= 0:
            return pause
        if self._stamp is not None:
            self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now
        self._tokens -= 1.0
        wait = 0.0 if self._tokens >= 0 else -self._tokens / self.rate
        return max(wait, pause)

    def pause(self, until: float) -> None:
        """Hold every request until ``until`` (a throttling answer)."""
        self._paused_until = max(self._paused_until, until)


@dataclass(frozen=True)
class Backoff:
    """Full-jitter exponential backoff: try ``n`` waits a random time in
    ``[0, min(cap, base * 2**n))``, and never less than the server's ``Retry-After``."""

    base_s: float = 0.2
    cap_s: float = 20.0

    def delay(self, attempt: int, retry_after_s: float | None, rand: float) -> float:
        """``attempt`` counts from 1; ``rand`` is uniform in [0, 1)."""
        ceiling = min(self.cap_s, self.base_s * (2 ** (attempt - 1)))
        wait = float(ceiling * rand)
        if retry_after_s is not None:
            wait = max(wait, min(retry_after_s, self.cap_s * 3))
        return wait


class Retrier:
    """One store's gate, backoff and counters, shared by its threads."""

    def __init__(
        self,
        rate: float,
        attempts: int,
        backoff: Backoff | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.attempts = max(1, attempts)
        self._gate = RequestGate(rate)
        self._backoff = backoff or Backoff()
        self._clock = clock
        self._sleep = sleep
        self._rand = rand
        self._lock = threading.Lock()
        self.stats: dict[str, int] = {}  # flat counters: requests, retry/503, gave_up...

    def count(self, key: str, n: int = 1) -> None:
        with self._lock:
            self.stats[key] = self.stats.get(key, 0) + n

    def wait_turn(self) -> None:
        """Block until the gate lets one more request go."""
        with self._lock:
            wait = self._gate.take(self._clock())
            self.stats["requests"] = self.stats.get("requests", 0) + 1
        if wait > 0:
            self._sleep(wait)

    def after_failure(self, exc: TransientError, attempt: int) -> bool:
        """Count ``exc`` (try number ``attempt``); wait its backoff and say True when
        another try is due, False when the tries are spent."""
        self.count(f"retry/{exc.reason}")
        if attempt >= self.attempts:
            self.count("gave_up")
            return False
        wait = self._backoff.delay(attempt, exc.retry_after_s, self._rand())
        if exc.throttled:
            with self._lock:
                self._gate.pause(self._clock() + wait)
        self._sleep(wait)
        return True

    def call(self, request: Callable[[], T]) -> T:
        """``request()`` in its turn, tried again on :class:`TransientError`."""
        attempt = 0
        while True:
            attempt += 1
            self.wait_turn()
            try:
                return request()
            except TransientError as exc:
                if not self.after_failure(exc, attempt):
                    raise
