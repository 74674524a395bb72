"""Rate limits: a pure GCRA policy and two stores behind one interface.

GCRA (the generic cell rate algorithm) keeps one number per (key, group): the
theoretical arrival time ``tat``. A limit of ``n`` requests per ``w`` seconds spaces
requests ``w / n`` apart and tolerates a burst of ``n``. A request at ``now`` is allowed
when ``max(tat, now) + w/n - w <= now``; then ``tat`` moves on by ``w/n``.

Several limits are checked at once (the key's ``all`` and its endpoint group's) and
either all of them count the request or none does.

* :class:`MemoryLimiter`: in this process (``service.redis_url`` empty); the clock is a
  parameter, so the policy is tested without sleeping.
* :class:`RedisLimiter`: one Lua script per request (atomic in Redis, Redis's own clock),
  so every instance pointed at the same Redis shares one budget.
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
TOLERANCE_S = 1e-4  # clock rounding (Redis keeps times as text with microseconds)


@dataclass(frozen=True, slots=True)
class Step:
    """One limit's answer to one request."""

    allowed: bool
    tat: float  # the new tat when allowed, the old one when refused
    limit: int
    window_s: float
    remaining: int
    reset_s: float  # until the full burst is available again
    retry_after_s: float  # 0 when allowed


def gcra(tat: float | None, now: float, limit: Limit) -> Step:
    """The pure policy: ``tat`` is the stored theoretical arrival time (None: never seen)."""
    interval = limit.window_s / limit.requests
    start = now if tat is None or tat < now else tat
    new_tat = start + interval
    allow_at = new_tat - limit.window_s
    if allow_at > now + TOLERANCE_S:
        remaining = max(0, int((limit.window_s - (start - now)) / interval + 1e-9))
        return Step(False, start, limit.requests, limit.window_s, remaining, start - now, allow_at - now)
    remaining = max(0, int((limit.window_s - (new_tat - now)) / interval + 1e-9))
    return Step(True, new_tat, limit.requests, limit.window_s, remaining, new_tat - now, 0.0)


@dataclass(frozen=True, slots=True)
class Decision:
    """The answer to a request over all its limits; ``headers`` are the ``RateLimit-*``
    fields of the most constrained limit (``Retry-After`` too when refused): ``Limit``,
    ``Remaining``, ``Reset`` (seconds until the full burst is back) and ``Policy``
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


class MemoryLimiter:
    """Limits in this process; ``clock`` (seconds) is injected for tests."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, max_keys: int = 100_000) -> None:
        self._clock = clock
        self._tats: dict[str, float] = {}
        self._lock = threading.Lock()
        self._max_keys = max_keys

    def hit_now(self, checks: Sequence[Check]) -> Decision:
        with self._lock:
            now = self._clock()
            steps = [gcra(self._tats.get(key), now, limit) for key, limit in checks]
            if all(s.allowed for s in steps):
                for (key, _limit), step in zip(checks, steps, strict=True):
                    self._tats[key] = step.tat
                if len(self._tats) > self._max_keys:  # forget keys whose burst is full again
                    self._tats = {k: t for k, t in self._tats.items() if t > now}
        return decide(steps, "memory")

    async def hit(self, checks: Sequence[Check]) -> Decision:
        return self.hit_now(checks)

    def __len__(self) -> int:
        return len(self._tats)


# KEYS: the store keys; ARGV: window_s, requests for each key. Returns Redis's time and
# each key's stored tat ("" when none) as strings; sets the keys only when all allow.
_LUA = """
local t = redis.call('TIME')
local now = tonumber(string.format('%.6f', tonumber(t[1]) + tonumber(t[2]) / 1000000))
local out = {string.format('%.6f', now)}
local new = {}
local ok = true
for i = 1, #KEYS do
  local window = tonumber(ARGV[2 * i - 1])
  local interval = window / tonumber(ARGV[2 * i])
  local raw = redis.call('GET', KEYS[i])
  out[i + 1] = raw or ''
  local tat = tonumber(raw) or now
  if tat < now then tat = now end
  local nt = tat + interval
  if nt - window > now + 0.0001 then ok = false end
  new[i] = nt
end
if ok then
  for i = 1, #KEYS do
    local ttl = math.ceil((new[i] - now) * 1000) + 1000
    redis.call('SET', KEYS[i], string.format('%.6f', new[i]), 'PX', ttl)
  end
end
return out
"""


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

    async def hit(self, checks: Sequence[Check]) -> Decision:
        args: list[str] = []
        for _key, limit in checks:
            args += [repr(float(limit.window_s)), str(limit.requests)]
        reply = await self._script(keys=[self._prefix + k for k, _ in checks], args=args)
        now = float(reply[0])
        steps = [
            gcra(float(raw) if raw else None, now, limit)
            for raw, (_key, limit) in zip(reply[1:], checks, strict=True)
        ]
        return decide(steps, "redis")

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

    async def hit(self, checks: Sequence[Check]) -> Decision:
        from redis.exceptions import RedisError

        if self._clock() >= self._down_until:
            try:
                decision = await self._redis.hit(checks)
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
        return self._memory.hit_now(checks)

    async def close(self) -> None:
        await self._redis.close()


def build_limiter(redis_url: str) -> MemoryLimiter | FallbackLimiter:
    """The limiter ``service.redis_url`` asks for."""
    if not redis_url:
        return MemoryLimiter()
    return FallbackLimiter(RedisLimiter(redis_url), MemoryLimiter())
