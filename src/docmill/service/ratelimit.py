"""Rate limits: a pure sliding-window policy and two stores behind one interface.

A limit of ``n`` requests per ``w`` seconds means what it says: **no window of ``w``
seconds ever holds more than ``n`` admitted requests**, and a client that keeps asking
gets ``n`` per window (all ``n`` at once if it likes: the burst is part of the ``n``,
never on top of it). The policy keeps each key's admissions as counts per tick (1 ms up
to ``EXACT_UP_TO`` requests a window, so a slot is free again ``w`` seconds and at most
a millisecond after its request; ``w / EXACT_UP_TO`` above it, so a key never holds more
than ``EXACT_UP_TO + 1`` counters): a request at ``now`` is admitted when the ticks from
the one holding ``now - w`` up to ``now`` hold fewer than ``n``. Counting the oldest tick
whole is what makes the promise strict: every admission in any window ``(s, s + w]``
was counted when the window's last one was admitted.

Several limits are checked at once (the key's ``all`` and its endpoint group's) and
either all of them count the request or none does. ``peek`` asks without counting.

* :class:`MemoryLimiter`: in this process (``service.redis_url`` empty); the clock is a
  parameter, so the policy is tested without sleeping.
* :class:`RedisLimiter`: one Lua script per request (atomic in Redis, Redis's own clock,
  the same bucket arithmetic), so every instance pointed at the same Redis shares one
  budget; each key is a hash of bucket counts that expires with its newest bucket.
* :class:`FallbackLimiter`: Redis first; when Redis cannot be reached the request is
  limited in memory (this instance's share only) with a warning, and Redis is tried
  again after ``retry_s``. The service stays up when Redis is down.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from docmill.service.tiers import Limit

log = logging.getLogger("docmill.service")

Check = tuple[str, Limit]  # (store key, limit)
Buckets = tuple[tuple[int, int], ...]  # (tick index, admissions), oldest first
EXACT_UP_TO = 1200  # limits up to this many a window are kept to the millisecond


def bucket_s(limit: Limit) -> float:
    """The tick admissions are counted in."""
    return 0.001 if limit.requests <= EXACT_UP_TO else limit.window_s / EXACT_UP_TO


@dataclass(frozen=True, slots=True)
class Step:
    """One limit's answer to one request."""

    allowed: bool
    buckets: Buckets  # the key's buckets after this request (unchanged when refused)
    limit: int
    window_s: float
    remaining: int
    reset_s: float  # until every admission counted now has left the window
    retry_after_s: float  # 0 when allowed


def _leaves_at(index: int, limit: Limit) -> float:
    """When bucket ``index`` stops counting: once ``now - w`` is past its end."""
    return (index + 1) * bucket_s(limit) + limit.window_s


def live(buckets: Sequence[tuple[int, int]], now: float, limit: Limit) -> Buckets:
    """The buckets that still count at ``now``: from the one holding ``now - w`` on."""
    oldest = math.floor((now - limit.window_s) / bucket_s(limit))
    return tuple((i, n) for i, n in buckets if i >= oldest and n > 0)


def window_step(buckets: Sequence[tuple[int, int]], now: float, limit: Limit, count: bool = True) -> Step:
    """The pure policy: ``buckets`` are the key's stored counts (any order, stale ones
    included); ``count=False`` answers without counting (``peek``)."""
    held = tuple(sorted(live(buckets, now, limit)))
    used = sum(n for _i, n in held)
    if used >= limit.requests:
        # free again once enough of the oldest admissions have left the window
        excess = used - limit.requests + 1
        freed, retry_at = 0, now
        for index, n in held:
            freed += n
            if freed >= excess:
                retry_at = _leaves_at(index, limit)
                break
        reset = _leaves_at(held[-1][0], limit) - now
        return Step(False, held, limit.requests, limit.window_s, 0, reset, max(0.0, retry_at - now))
    if not count:
        reset = _leaves_at(held[-1][0], limit) - now if held else 0.0
        return Step(True, held, limit.requests, limit.window_s, limit.requests - used, reset, 0.0)
    current = math.floor(now / bucket_s(limit))
    if held and held[-1][0] == current:
        after = (*held[:-1], (current, held[-1][1] + 1))
    else:
        after = (*held, (current, 1))
    reset = _leaves_at(current, limit) - now
    return Step(True, after, limit.requests, limit.window_s, limit.requests - used - 1, reset, 0.0)


@dataclass(frozen=True, slots=True)
class Decision:
    """The answer to a request over all its limits; ``headers`` are the ``RateLimit-*``
    fields of the most constrained limit (``Retry-After`` too when refused): ``Limit``,
    ``Remaining``, ``Reset`` (seconds until the whole quota is back) and ``Policy``
    (``N;w=SECONDS``)."""

    allowed: bool
    limit: int
    window_s: float
    remaining: int
    reset_s: float
    retry_after_s: float
    backend: str = "memory"

    def headers(self) -> dict[str, str]:
        out = {
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(self.remaining),
            "RateLimit-Reset": str(max(0, math.ceil(self.reset_s))),
            "RateLimit-Policy": f"{self.limit};w={self.window_s:g}",
        }
        if not self.allowed:
            out["Retry-After"] = str(max(1, math.ceil(self.retry_after_s)))
        return out


def decide(steps: Sequence[Step], backend: str) -> Decision:
    refused = [s for s in steps if not s.allowed]
    if refused:
        worst = max(refused, key=lambda s: s.retry_after_s)
        return Decision(False, worst.limit, worst.window_s, 0, worst.reset_s, worst.retry_after_s, backend)
    tight = min(steps, key=lambda s: (s.remaining, -s.reset_s))
    return Decision(True, tight.limit, tight.window_s, tight.remaining, tight.reset_s, 0.0, backend)


class Limiter(Protocol):
    async def hit(self, checks: Sequence[Check]) -> Decision: ...

    async def peek(self, checks: Sequence[Check]) -> Decision: ...


class MemoryLimiter:
    """Limits in this process; ``clock`` (seconds) is injected for tests."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, max_keys: int = 100_000) -> None:
        self._clock = clock
        self._keys: dict[str, tuple[Buckets, float]] = {}  # key -> (buckets, when all leave)
        self._lock = threading.Lock()
        self._max_keys = max_keys

    def _answer(self, checks: Sequence[Check], count: bool) -> Decision:
        with self._lock:
            now = self._clock()
            steps = [
                window_step(self._keys.get(key, ((), 0.0))[0], now, limit, count)
                for key, limit in checks
            ]
            if count and all(s.allowed for s in steps):
                for (key, _limit), step in zip(checks, steps, strict=True):
                    self._keys[key] = (step.buckets, now + step.reset_s)
                if len(self._keys) > self._max_keys:  # forget keys with nothing in their window
                    self._keys = {k: v for k, v in self._keys.items() if v[1] > now}
        return decide(steps, "memory")

    def hit_now(self, checks: Sequence[Check]) -> Decision:
        return self._answer(checks, True)

    def peek_now(self, checks: Sequence[Check]) -> Decision:
        return self._answer(checks, False)

    async def hit(self, checks: Sequence[Check]) -> Decision:
        return self.hit_now(checks)

    async def peek(self, checks: Sequence[Check]) -> Decision:
        return self.peek_now(checks)

    def __len__(self) -> int:
        return len(self._keys)


# KEYS: the store keys; ARGV: count (1/0), then window_s, requests and tick for each key.
# Each key is a hash {tick index: admissions}. Returns Redis's time, then per key its live
# buckets before this request as "i:n,i:n"; counts the request in every key (and sets
# each hash to expire with its newest bucket) only when all keys admit it.
_LUA = """
local t = redis.call('TIME')
local now = tonumber(string.format('%.6f', tonumber(t[1]) + tonumber(t[2]) / 1000000))
local count = ARGV[1] == '1'
local out = {string.format('%.6f', now)}
local ok = true
local current = {}
for i = 1, #KEYS do
  local window = tonumber(ARGV[3 * i - 1])
  local requests = tonumber(ARGV[3 * i])
  local size = tonumber(ARGV[3 * i + 1])
  local oldest = math.floor((now - window) / size)
  local raw = redis.call('HGETALL', KEYS[i])
  local used = 0
  local parts = {}
  for j = 1, #raw, 2 do
    local index = tonumber(raw[j])
    local n = tonumber(raw[j + 1])
    if index < oldest then
      redis.call('HDEL', KEYS[i], raw[j])
    else
      used = used + n
      parts[#parts + 1] = raw[j] .. ':' .. raw[j + 1]
    end
  end
  out[i + 1] = table.concat(parts, ',')
  if used >= requests then ok = false end
  current[i] = {math.floor(now / size), size, window}
end
if ok and count then
  for i = 1, #KEYS do
    local index, size, window = current[i][1], current[i][2], current[i][3]
    redis.call('HINCRBY', KEYS[i], tostring(index), 1)
    redis.call('PEXPIRE', KEYS[i], math.ceil(((index + 1) * size + window - now) * 1000))
  end
end
return out
"""


def _parse_buckets(raw: str) -> Buckets:
    if not raw:
        return ()
    return tuple((int(i), int(n)) for i, n in (part.split(":") for part in raw.split(",")))


class RedisLimiter:
    """Limits shared through Redis (redis-py's asyncio client, short timeouts)."""

    def __init__(self, url: str, prefix: str = "docmill:rl:", timeout_s: float = 0.5) -> None:
        import redis.asyncio as aioredis

        self._client: Any = aioredis.Redis.from_url(
            url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s,
            decode_responses=True,
        )
        self._script: Any = self._client.register_script(_LUA)
        self._prefix = prefix

    async def _answer(self, checks: Sequence[Check], count: bool) -> Decision:
        args: list[str] = ["1" if count else "0"]
        for _key, limit in checks:
            args += [repr(float(limit.window_s)), str(limit.requests), repr(bucket_s(limit))]
        reply = await self._script(keys=[self._prefix + k for k, _ in checks], args=args)
        now = float(reply[0])
        steps = [
            window_step(_parse_buckets(raw), now, limit, count)
            for raw, (_key, limit) in zip(reply[1:], checks, strict=True)
        ]
        return decide(steps, "redis")

    async def hit(self, checks: Sequence[Check]) -> Decision:
        return await self._answer(checks, True)

    async def peek(self, checks: Sequence[Check]) -> Decision:
        return await self._answer(checks, False)

    async def close(self) -> None:
        await self._client.aclose()


class FallbackLimiter:
    """Redis when it answers, memory while it does not (logged, retried after ``retry_s``)."""

    def __init__(
        self, redis_limiter: RedisLimiter, memory: MemoryLimiter,
        clock: Callable[[], float] = time.monotonic, retry_s: float = 5.0,
    ) -> None:
        self._redis = redis_limiter
        self._memory = memory
        self._clock = clock
        self._retry_s = retry_s
        self._down_until = 0.0

    async def _answer(self, checks: Sequence[Check], count: bool) -> Decision:
        from redis.exceptions import RedisError

        if self._clock() >= self._down_until:
            try:
                decision = await (self._redis.hit(checks) if count else self._redis.peek(checks))
            except (RedisError, OSError) as exc:
                self._down_until = self._clock() + self._retry_s
                log.warning(
                    "rate limits: Redis unreachable (%s); limiting in this instance's memory, "
                    "retrying Redis in %.0f s", type(exc).__name__, self._retry_s,
                )
            else:
                if self._down_until:
                    log.info("rate limits: Redis reachable again")
                    self._down_until = 0.0
                return decision
        return self._memory.hit_now(checks) if count else self._memory.peek_now(checks)

    async def hit(self, checks: Sequence[Check]) -> Decision:
        return await self._answer(checks, True)

    async def peek(self, checks: Sequence[Check]) -> Decision:
        return await self._answer(checks, False)

    async def close(self) -> None:
        await self._redis.close()


def build_limiter(redis_url: str) -> MemoryLimiter | FallbackLimiter:
    """The limiter ``service.redis_url`` asks for."""
    if not redis_url:
        return MemoryLimiter()
    return FallbackLimiter(RedisLimiter(redis_url), MemoryLimiter())
