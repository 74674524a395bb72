"""One API key's limiter on the LLM stage's event loop: requests wait, one task hands out permits.

A :class:`KeyDispatcher` owns a :class:`~docmill.llm.limits.KeyLimiter` (pure policy) and
the asyncio around it. A request calls :meth:`~KeyDispatcher.permit` with its lane (the
stage's role) and waits; the dispatcher task asks the limiter (``dispatch``) for as many
permits as may go now, resolves those requests' futures, and sleeps until the limiter's
next time, a result or a new request (a second at most). Every answer comes back through
:meth:`~KeyDispatcher.report`, which hands the limiter its outcome, latency, usage,
Retry-After and rate-limit signals.

What it sees goes out two ways (:mod:`~docmill.llm.watch`): 429s, timeouts, 5xx, breakers
that open (as the answer that opens one comes back) and limits that change (in the
limiter's view) become rate-limited INFO lines on the ``docmill.llm`` logger; and once a second the limiter's :class:`~docmill.llm.limits.ModelView`
list is published in :attr:`KeyDispatcher.views` (an immutable tuple another thread may
read), for ``docmill status`` and the service through the ledger.

The limiter's clock is ``time.monotonic() / time_scale``: tests and benches against a
simulator with the same ``time_scale`` see the same minute on both sides; latencies and
Retry-After are converted into that clock, waits back into real seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Final

from docmill.llm.client import ChatResult, ResultKind
from docmill.llm.limits import BreakerState, KeyLimiter, ModelView, Outcome, Permit
from docmill.llm.watch import ThrottleLog

log = logging.getLogger("docmill.llm")

_OUTCOME: Final = {
    ResultKind.OK: Outcome.SUCCESS,
    ResultKind.RATE_LIMITED: Outcome.RATE_LIMITED,
    ResultKind.SERVER_ERROR: Outcome.SERVER_ERROR,
    ResultKind.TIMEOUT: Outcome.TIMEOUT,
    ResultKind.CLIENT_ERROR: Outcome.CLIENT_ERROR,
}
_MAX_SLEEP_S: Final = 1.0  # of the limiter's clock: a learned limit may rise meanwhile
VIEW_EVERY_S: Final = 1.0  # real seconds between two published views
_NOTED: Final = {
    Outcome.RATE_LIMITED: "rate_limited",
    Outcome.TIMEOUT: "timeout",
    Outcome.SERVER_ERROR: "server_error",
    Outcome.CONNECTION_ERROR: "server_error",
}


def outcome_of(chat: ChatResult) -> Outcome:
    """What the limiter is told about an answer (no status at all: a connection error)."""
    if chat.kind is ResultKind.SERVER_ERROR and chat.status == 0:
        return Outcome.CONNECTION_ERROR
    return _OUTCOME[chat.kind]


class KeyDispatcher:
    """Permits of one API key for the requests on one event loop. Create, :meth:`start`
    on the loop, use, :meth:`close`."""

    def __init__(
        self, limiter: KeyLimiter, *, time_scale: float = 1.0, watch: ThrottleLog | None = None
    ) -> None:
        self.limiter = limiter
        self.watch = watch if watch is not None else ThrottleLog()
        self.views: tuple[ModelView, ...] = ()  # published each VIEW_EVERY_S (any thread reads)
        self._viewed_at = -float("inf")
        self._scale = time_scale
        self._waiters: dict[int, asyncio.Future[Permit]] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def now(self) -> float:
        """The limiter's clock."""
        return time.monotonic() / self._scale

    def start(self) -> None:
        """Start handing out permits (on the running loop)."""
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        self.look(flush=True)

    def look(self, *, flush: bool = False) -> None:
        """Publish the limiter's view and log the throttle lines due (real seconds)."""
        real = time.monotonic()
        views = tuple(self.limiter.views(self.now()))
        self.views = views
        self._viewed_at = real
        self.watch.observe(views, real)
        for line in self.watch.lines(real, flush=flush):
            log.info("%s", line)

    async def permit(self, lane: str, model: str, est_tokens: int) -> Permit:
        """Wait in ``lane`` until this request may be sent to ``model``."""
        limiter = self.limiter
        ticket = limiter.enqueue(lane, model, est_tokens)
        future: asyncio.Future[Permit] = asyncio.get_running_loop().create_future()
        self._waiters[ticket.id] = future
        self._wake.set()
        try:
            return await future
        except asyncio.CancelledError:
            self._waiters.pop(ticket.id, None)
            if future.done() and not future.cancelled():  # granted as it was cancelled
                limiter.on_result(future.result(), self.now(), Outcome.CANCELLED, tokens_used=0)
            else:
                limiter.withdraw(ticket)
            self._wake.set()
            raise

    def report(self, permit: Permit, chat: ChatResult) -> None:
        """How the request ``permit`` let through ended."""
        scale = self._scale
        retry_after = chat.retry_after_s / scale if chat.retry_after_s is not None else None
        tokens = chat.usage.total_tokens if chat.usage else None
        outcome = outcome_of(chat)
        was_open = self.limiter.breaker_of(permit.model) is BreakerState.OPEN
        self.limiter.on_result(
            permit, self.now(), outcome, chat.latency_s / scale, tokens, retry_after, chat.rate
        )
        noted = _NOTED.get(outcome)
        if noted is not None:
            real = time.monotonic()
            self.watch.note(noted, permit.model, real)
            if not was_open and self.limiter.breaker_of(permit.model) is BreakerState.OPEN:
                self.watch.note("breaker", permit.model, real)
        self._wake.set()

    def abandon(self, permit: Permit) -> None:
        """A request sent and given up before its answer (the stage is stopping)."""
        self.limiter.on_result(permit, self.now(), Outcome.CANCELLED)
        self._wake.set()

    def give_back(self, permit: Permit) -> None:
        """A permit not used: the request was not sent (the budget holds it back)."""
        self.limiter.on_result(permit, self.now(), Outcome.CANCELLED, tokens_used=0)
        self._wake.set()

    async def backoff(self, attempt: int) -> None:
        """Sleep before retry number ``attempt`` (full jitter, in the limiter's clock)."""
        await asyncio.sleep(self.limiter.backoff(attempt) * self._scale)

    async def _run(self) -> None:
        limiter = self.limiter
        while True:
            self._wake.clear()
            now = self.now()
            decision = limiter.dispatch(now)
            for ticket, permit in decision.grants:
                future = self._waiters.pop(ticket.id, None)
                if future is None or future.done():  # its request was cancelled meanwhile
                    limiter.on_result(permit, now, Outcome.CANCELLED, tokens_used=0)
                    self._wake.set()
                else:
                    future.set_result(permit)
            if time.monotonic() - self._viewed_at >= VIEW_EVERY_S:
                self.look()
            wait = _MAX_SLEEP_S if decision.until is None else decision.until - now
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(_MAX_SLEEP_S, max(0.0, wait)) * self._scale):
                    await self._wake.wait()
