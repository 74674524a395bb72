"""One per-minute limit (requests or tokens) at one scope: pure arithmetic on ``now``.

A :class:`MinuteLimit` knows the limit's value, from the most trusted source present:

1. **stated**: the provider's own figure (``x-ratelimit-limit-*`` headers, or a 429's
   ``Limit 90``); with it nothing is guessed;
2. **configured** (``llm.rpm`` / ``llm.tpm``): an upper bound the user knows;
3. **learned** (:class:`LearnedLimit`): from 429s that state no figure, as what this client
   had admitted in the provider's minute when it was refused.

and it holds what this client sent inside the window (its *entries*: time, permit, amount;
a request counts 1, tokens count the estimate until the answer's usage settles them), plus
an estimate of what *other* clients on the same key hold there (``foreign``): the
provider's ``Used`` (or ``limit - remaining``) less this client's own entries at the
moment it counted, assumed to leave the window evenly over the next minute (the next
header or 429 corrects it). A request may go when

* the pacing bucket holds its amount: ``bucket_s`` seconds of refill, refilled at
  ``limit / (60 + bucket_s)`` per second, so that no 60 s window sees more than the limit
  and requests are spread instead of sent in bursts that echo minute after minute;
* and own entries + foreign + its amount fit under the limit in the sliding window
  (``60 + bucket_s`` seconds once the limit came from the provider: the provider's clock
  lags this one by each request's travel time). A configured token limit (``llm.tpm``)
  uses the bucket alone.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import Final

WINDOW_S: Final = 60.0
"""The window providers count their per-minute limits in."""
_EPS: Final = 1e-9
PEAK_MEMORY_S: Final = 600.0
"""How long a learned limit remembers the highest level it found (``LearnedLimit``)."""
_SAME_WINDOW_S: Final = 1.0
"""How much older than this client's oldest request the provider's oldest may be (by its
Retry-After) for a 429 to count as this client's own window (whole-second Retry-After)."""


class TokenBucket:
    """A continuously refilled bucket; pure arithmetic on the ``now`` it is given.

    It admits at most ``per_minute`` in any window of ``window_s`` seconds: it holds
    ``bucket_s`` seconds of refill and refills at ``per_minute / (window_s + bucket_s)``
    per second (``window_s=0``: plainly ``per_minute / 60`` per second). ``min_capacity``
    lets it hold more than that (where a sliding window enforces the minute): a bucket that
    cannot hold one whole request loses every moment its owner is late to take a token.
    """

    def __init__(
        self,
        per_minute: float,
        bucket_s: float,
        now: float,
        window_s: float = 0.0,
        min_capacity: float = 0.0,
    ) -> None:
        self.bucket_s = bucket_s
        self.window_s = window_s
        self.min_capacity = min_capacity
        self.per_minute = per_minute
        self.rate = self._rate(per_minute)
        self.capacity = max(self.rate * bucket_s, min_capacity)
        self.level = self.capacity
        self.updated = now

    def _rate(self, per_minute: float) -> float:
        return per_minute / (self.window_s + self.bucket_s if self.window_s else 60.0)

    def set_per_minute(self, now: float, per_minute: float) -> None:
        """Change the rate from ``now`` on (the level is kept, capped to the new capacity)."""
        self._refill(now)
        self.per_minute = per_minute
        self.rate = self._rate(per_minute)
        self.capacity = max(self.rate * self.bucket_s, self.min_capacity)
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


@dataclass
class LearnedLimit:
    """A limit learned from 429s that state no figure.

    A lesson measures ``value``: what this client had admitted in the provider's minute
    when it was refused. It is *sure* when the window held only this client's requests
    (the provider's oldest entry, known from the 429's Retry-After, is not older than this
    client's oldest), else only a lower bound (another client, or this client's killed
    predecessor, filled part of the window). The limit then:

    * unsure: climbs back to the peak as below (a window shared with another client),
      or, with no peak found yet, doubles every ``unsure_doubling_s`` until a sure lesson;
    * sure, near its ``peak`` (the highest sure lesson of the last ``PEAK_MEMORY_S``;
      near: at least 90 % of it): probes upward by ``probe`` (a share per minute), slowly,
      because every overshoot costs a 429;
    * sure, well below the peak (another client is taking part of the key): holds for
      ``recover_s / 2``, then climbs back to the peak within ``recover_s``. While the other
      client stays, each climb costs a 429 or two and starts again; once it has gone, the
      limit is back within ``1.5 × recover_s`` of the last 429. A peak not met again for
      ``PEAK_MEMORY_S`` is forgotten (the other client is there to stay).
    """

    value: float
    at: float
    sure: bool
    peak: float | None = None
    peak_at: float = -math.inf

    def lesson(self, value: float, now: float, sure: bool) -> None:
        if sure:
            if self.peak is None or value >= self.peak or now - self.peak_at > PEAK_MEMORY_S:
                self.peak, self.peak_at = value, now
            elif value >= 0.9 * self.peak:
                self.peak_at = now  # met again
        self.value, self.at, self.sure = value, now, sure

    def current(
        self, now: float, probe: float, recover_s: float, unsure_doubling_s: float
    ) -> float:
        t = max(0.0, now - self.at)
        if not self.sure and self.peak is None:
            return self.value * math.pow(2.0, min(t / unsure_doubling_s, 10.0))
        peak = self.peak if self.peak is not None else self.value
        if self.value < 0.9 * peak:
            hold = recover_s / 2.0
            if t < hold:
                return self.value
            if t < hold + recover_s:
                return self.value + (peak - self.value) * (t - hold) / recover_s
            return peak * (1.0 + probe * (t - hold - recover_s) / WINDOW_S)
        return self.value * (1.0 + probe * t / WINDOW_S)


@dataclass
class _Entry:
    at: float
    permit: int
    amount: float
    model: str
    live: bool = True


@dataclass(frozen=True)
class LimitParams:
    """The knobs of a :class:`MinuteLimit` (from ``LimiterConfig``)."""

    bucket_s: float = 1.0
    learn: bool = False
    probe: float = 0.01
    recover_s: float = 60.0
    unsure_doubling_s: float = 10.0


class MinuteLimit:
    """One limit (``kind``: requests or tokens) at one scope. Not thread-safe: one owner."""

    def __init__(self, kind: str, configured: float, params: LimitParams, now: float) -> None:
        self.kind = kind
        self.configured = configured
        self.params = params
        self.stated: float | None = None
        self.stated_by = ""  # headers | 429: where the stated figure came from
        self.learned: LearnedLimit | None = None
        self._entries: deque[_Entry] = deque()
        self._by_permit: dict[int, _Entry] = {}
        self._total = 0.0  # the live entries' amounts
        self._foreign = 0.0  # other clients' amount in the window at _foreign_at
        self._foreign_at = -math.inf
        self._foreign_from = -math.inf  # none of it leaves before this (a 429's Retry-After)
        self._learn_mark = 0  # the first permit id allowed to teach
        self._bucket: TokenBucket | None = None
        self._sync_bucket(now)

    # -- what it knows ----------------------------------------------------------------

    def limit(self, now: float) -> float | None:
        """The limit in force now; None: none known (nothing limits)."""
        if self.stated is not None:
            return min(self.stated, self.configured) if self.configured else self.stated
        if self.learned is not None:
            p = self.params
            value = self.learned.current(now, p.probe, p.recover_s, p.unsure_doubling_s)
            return min(value, self.configured) if self.configured else value
        return self.configured or None

    def source(self, now: float) -> str:
        """Where the limit in force now comes from: ``headers`` or ``429`` (the provider's
        figure), ``configured``, ``learned`` (from 429s); "" when none is known."""
        limit = self.limit(now)
        if limit is None:
            return ""
        if self.configured and limit >= self.configured and (
            self.stated is None or self.stated > self.configured
        ):
            return "configured"
        if self.stated is not None:
            return self.stated_by
        return "learned" if self.learned is not None else "configured"

    @property
    def from_provider(self) -> bool:
        """Whether the limit came from the provider (stated or learned), not the settings."""
        return self.stated is not None or self.learned is not None

    def span(self) -> float:
        """The sliding window this client counts its own entries in."""
        return WINDOW_S + (self.params.bucket_s if self.from_provider else 0.0)

    def _foreign_span(self) -> tuple[float, float]:
        """(start, end): other clients' share leaves evenly between these times."""
        end = self._foreign_at + WINDOW_S
        return min(max(self._foreign_from, self._foreign_at), end), end

    def foreign(self, now: float) -> float:
        """Other clients' estimated amount in the provider's window at ``now``: all of what
        was counted until the first entry may leave (a 429's Retry-After, else at once),
        then less and less, evenly, until a minute after it was counted."""
        if self._foreign <= 0:
            return 0.0
        start, end = self._foreign_span()
        if now <= start:
            return self._foreign
        if now >= end:
            return 0.0
        return self._foreign * (end - now) / (end - start)

    def used(self, now: float) -> float:
        """This client's live entries in its window at ``now``."""
        self._trim(now)
        return self._total

    # -- admission --------------------------------------------------------------------

    def ready_at(self, now: float, amount: float) -> float:
        """The earliest time ``amount`` more may go (``now`` if it may go now)."""
        self._trim(now)
        self._sync_bucket(now)
        limit = self.limit(now)
        if limit is None:
            return now
        waits = [now]
        if self._bucket is not None:
            waits.append(self._bucket.ready_at(now, amount))
        if self.kind == "requests" or self.from_provider or self._foreign > 0:
            # a configured token limit is the bucket alone: it bounds every minute too, and
            # lets a request larger than the bucket go when the bucket is full
            waits.append(self._window_ready_at(now, limit, min(amount, limit)))
        return max(waits)

    def take(self, now: float, permit: int, amount: float, model: str) -> None:
        self._trim(now)
        if self._bucket is not None:
            self._bucket.take(now, amount)
        entry = _Entry(now, permit, amount, model)
        self._entries.append(entry)
        self._by_permit[permit] = entry
        self._total += amount

    def settle(self, permit: int, estimate: float, amount: float) -> None:
        """The amount a request really used (tokens: the answer's usage) instead of the
        ``estimate`` taken when it went: the bucket is corrected (it may go into debt), and
        so is the request's entry while it is in the window."""
        if self._bucket is not None:
            self._bucket.adjust(amount - estimate)
        entry = self._by_permit.get(permit)
        if entry is not None and entry.live:
            self._total += amount - entry.amount
            entry.amount = amount

    def forget(self, permit: int) -> None:
        """A request the provider did not count (refused, or never sent): out of the window."""
        entry = self._by_permit.pop(permit, None)
        if entry is None or not entry.live:
            return
        entry.live = False
        self._total -= entry.amount

    def adopt(self, entries: list[tuple[float, int, float, str]], now: float) -> None:
        """Start counting entries another scope holds (a scope narrowed to a model)."""
        for at, permit, amount, model in entries:
            entry = _Entry(at, permit, amount, model)
            self._entries.append(entry)
            self._by_permit[permit] = entry
            self._total += amount
        self._trim(now)

    def entries_of(self, model: str) -> list[tuple[float, int, float, str]]:
        return [
            (e.at, e.permit, e.amount, e.model)
            for e in self._entries
            if e.live and e.model == model
        ]

    # -- what the provider says -------------------------------------------------------

    def observe(self, now: float, limit: float, used: float, at: float, permit: int) -> None:
        """A header: the provider's ``limit`` and what it had ``used`` when it counted the
        request ``permit`` (sent ``at``)."""
        self.stated, self.stated_by = float(limit), "headers"
        self._note_foreign(used, at, permit)
        self._sync_bucket(now)

    def own_at(self, at: float, permit: int) -> float:
        """This client's amount the provider held when it counted ``permit`` (sent ``at``):
        entries sent in the 60 s before, up to and including that permit."""
        return sum(
            e.amount
            for e in self._entries
            if e.live and at - WINDOW_S < e.at and (e.at, e.permit) <= (at, permit)
        )

    def own_between(self, after: float, until: float) -> float:
        """This client's live amount sent in (``after``, ``until``]."""
        return sum(e.amount for e in self._entries if e.live and after < e.at <= until)

    def refused(
        self,
        now: float,
        permit: int,
        at: float,
        figure: float | None,
        used: float | None,
        retry_after_s: float | None,
        next_permit: int,
    ) -> None:
        """A 429 from this limit for the request ``permit`` (sent ``at``); ``figure`` and
        ``used`` as its message states them (None: not stated). With a figure known, the
        429 says how full the window is (other clients' share); without one, a lesson
        (``params.learn``), of which only a request sent after the last one may teach
        (``next_permit``: the id the next request will get)."""
        self.forget(permit)
        if figure is not None:
            self.stated, self.stated_by = float(figure), "429"
        if self.stated is not None:
            full = self.stated if used is None else used
            oldest_leaves = now + retry_after_s if retry_after_s is not None else None
            self._note_foreign(full, at, permit, oldest_leaves)
        elif self.params.learn and permit >= self._learn_mark:
            self._learn(now, at, permit, retry_after_s)
            self._learn_mark = next_permit
        self._sync_bucket(now)

    def clear_provider_view(self, now: float) -> None:
        """Forget what the provider said (it was about a narrower scope)."""
        self.stated, self.stated_by = None, ""
        self.learned = None
        self._foreign = 0.0
        self._foreign_at = -math.inf
        self._foreign_from = -math.inf
        self._sync_bucket(now)

    # -- internals --------------------------------------------------------------------

    def _note_foreign(
        self, used: float, at: float, permit: int, oldest_leaves: float | None = None
    ) -> None:
        if at < self._foreign_at:
            return  # an older count than the one already known
        self._foreign = max(0.0, used - self.own_at(at, permit))
        self._foreign_at = at
        self._foreign_from = oldest_leaves if oldest_leaves is not None else -math.inf

    def _learn(self, now: float, at: float, permit: int, retry_after_s: float | None) -> None:
        inside = [
            e
            for e in self._entries
            if e.live and at - WINDOW_S < e.at and (e.at, e.permit) < (at, permit)
        ]
        admitted = max(1.0, sum(e.amount for e in inside))
        if self.configured:
            admitted = min(admitted, self.configured)
        current = self.limit(now)
        if current is not None:
            admitted = min(admitted, current)
        # a full window holding none of this client's requests, or older ones than its
        # oldest (by the Retry-After), is partly someone else's: the count is a lower bound
        sure = bool(inside)
        if retry_after_s is not None and inside:
            providers_oldest = now + retry_after_s - WINDOW_S
            sure = providers_oldest >= inside[0].at - _SAME_WINDOW_S
        if self.learned is None:
            self.learned = LearnedLimit(admitted, now, sure)
        self.learned.lesson(admitted, now, sure)

    def _trim(self, now: float) -> None:
        span = self.span()
        while self._entries and self._entries[0].at <= now - span:
            entry = self._entries.popleft()
            if entry.live:
                self._total -= entry.amount
                entry.live = False
            self._by_permit.pop(entry.permit, None)

    def _sync_bucket(self, now: float) -> None:
        limit = self.limit(now)
        if limit is None:
            self._bucket = None
        elif self._bucket is None:
            # requests are always held to the sliding window too: the bucket may hold two
            self._bucket = TokenBucket(
                limit, self.params.bucket_s, now, WINDOW_S, 2.0 if self.kind == "requests" else 0.0
            )
        elif abs(limit - self._bucket.per_minute) > 1e-3 * max(1.0, limit):
            self._bucket.set_per_minute(now, limit)

    def _window_ready_at(self, now: float, limit: float, need: float) -> float:
        """When own entries + foreign + ``need`` fit under ``limit`` in the window."""
        own = self._total
        span = self.span()
        best = self._foreign_fits(limit - need - own, now)
        if best <= now:
            return now
        for entry in self._entries:
            if not entry.live:
                continue
            own -= entry.amount
            leaves = entry.at + span
            if leaves >= best:
                break
            best = min(best, max(leaves, self._foreign_fits(limit - need - own, leaves)))
        return best

    def _foreign_fits(self, room: float, after: float) -> float:
        """The first time from ``after`` on when foreign <= ``room`` (inf: never)."""
        if room < -_EPS:
            return math.inf
        if self.foreign(after) <= room + _EPS:
            return after
        start, end = self._foreign_span()
        # foreign(t) = F * (end - t) / (end - start) <= room
        return max(after, start, end - (end - start) * room / self._foreign)
