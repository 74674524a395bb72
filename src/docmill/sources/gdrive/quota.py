"""Drive's per-user query quota as a pure policy (the time is always given).

Google counts a user's queries in windows of 100 seconds (``sources.gdrive_queries_per_100s``,
1,000 by default, the Drive API's classic per-user limit; a project may have more) and
answers past it 403 ``userRateLimitExceeded``. :class:`QueryQuota` keeps a run under it
before Google has to say so:

* a **sliding window**: no 100-s window ever holds more than ``limit`` admissions (the
  admission times of the last ``limit`` queries are kept, so a window never needs more
  memory than that; above :data:`EXACT_UP_TO` the window is scaled down with the limit,
  which is stricter, never looser);
* **pacing**: a token bucket at ``limit / 100`` queries a second with ten seconds' worth
  of burst, so a run does not spend the whole window's quota in its first second (Drive
  answers such bursts 429 ``rateLimitExceeded`` even under the quota).

``take(now)`` reserves the next slot and says how long the caller waits before sending;
slots are handed out in order, so concurrent callers (the listing and the download
threads) queue fairly. The caller holds a lock around it (:class:`DriveClient` does).

The pace adapts (AIMD, as scrapy's autothrottle and the LLM limiter do): a throttling
answer (403 ``userRateLimitExceeded``/``rateLimitExceeded``, 429) halves it, down to a
32nd, and empties the bucket, so the threads a pause released do not all leave at once
and meet the same answer; each success gives back a 64th of the configured pace. Until
the pace is whole again the bucket holds one query: a retry that waited out a long
backoff does not find ten seconds' worth of burst waiting for it (a delivery's item
that makes a dozen queries at once met the same 429 at every try). The window's hard
limit never moves.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

WINDOW_S = 100.0
EXACT_UP_TO = 5000  # admissions remembered at most (a larger limit scales the window)
BURST_S = 10.0  # seconds' worth of queries the pacing bucket holds
MIN_FACTOR = 1 / 32  # the slowest pace, as a share of the configured one
STEP = 1 / 64  # what one success gives back


@dataclass
class QueryQuota:
    """At most ``limit`` queries in any ``window_s`` (``limit`` <= 0: no limit)."""

    limit: float
    window_s: float = WINDOW_S
    _times: deque[float] = field(default_factory=deque, init=False, repr=False)
    _cap: int = field(default=0, init=False)
    _span: float = field(default=0.0, init=False)
    _rate: float = field(default=0.0, init=False)
    _burst: float = field(default=0.0, init=False)
    _tokens: float = field(default=0.0, init=False)
    _stamp: float | None = field(default=None, init=False)
    _last: float = field(default=float("-inf"), init=False)
    factor: float = field(default=1.0, init=False)  # the pace now, as a share of the rate

    def __post_init__(self) -> None:
        if self.limit <= 0:
            return
        whole = max(1, int(self.limit))
        self._cap = min(whole, EXACT_UP_TO)
        # a smaller window holding proportionally fewer: every full window still <= limit
        self._span = self.window_s * self._cap / whole
        self._rate = whole / self.window_s
        self._burst = max(1.0, min(float(self._cap), self._rate * BURST_S))
        self._tokens = self._burst

    @property
    def unlimited(self) -> bool:
        return self.limit <= 0

    def take(self, now: float) -> float:
        """Reserve one query; how many seconds to wait before sending it."""
        if self.unlimited:
            return 0.0
        # pacing: the bucket refills at the pace; a negative balance is a queue
        rate = self._rate * self.factor
        if self._stamp is not None:
            self._tokens = min(self._capacity(), self._tokens + (now - self._stamp) * rate)
        self._stamp = now
        self._tokens -= 1.0
        at = now if self._tokens >= 0 else now - self._tokens / rate
        # the window: the query ``cap`` places back must have left it
        if len(self._times) >= self._cap:
            at = max(at, self._times[-self._cap] + self._span)
        at = max(at, self._last)  # slots in order: the log stays sorted
        self._last = at
        self._times.append(at)
        while len(self._times) > self._cap:
            self._times.popleft()
        return at - now

    def _capacity(self) -> float:
        """The bucket's size: the full burst at the configured pace; one query while the
        pace is cut (a pause, however long, never refills a burst Google just refused)."""
        return self._burst if self.factor >= 1.0 else 1.0

    def throttled(self, now: float) -> None:
        """Google said to slow down: half the pace, and no burst."""
        if self.unlimited:
            return
        if self._stamp is not None:  # settle the bucket at the old pace first
            self._tokens = min(self._capacity(), self._tokens + (now - self._stamp) * self._rate * self.factor)
            self._stamp = now
        self.factor = max(MIN_FACTOR, self.factor / 2)
        self._tokens = min(self._tokens, 0.0)

    def succeeded(self) -> None:
        """A query went through: a little of the pace back."""
        self.factor = min(1.0, self.factor + STEP)

    def admitted_in(self, start: float, end: float) -> int:
        """Reserved slots in ``[start, end)`` among those remembered (for tests)."""
        return sum(1 for t in self._times if start <= t < end)
