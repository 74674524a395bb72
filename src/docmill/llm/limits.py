"""Request policy for one provider API key: a pure state machine, no threads, no sleeping.

One :class:`KeyLimiter` exists per (endpoint, API key): providers count their limits per
key or organisation, shared by every model on it (``stage.limit_key``). The caller owns the
clock (``time.monotonic`` in production, a fake in tests) and passes ``now`` (seconds) to
every call; the limiter never reads time itself and never blocks.

Two ways to use it. One request at a time::

    d = limiter.acquire(now, est_tokens, model="m")
    if d.kind is DecisionKind.GO:        # send; d.permit must be reported exactly once
        limiter.on_result(d.permit, now, outcome, latency_s, tokens_used, retry_after_s, signals)
    elif d.kind is DecisionKind.WAIT:    # ask again at d.until (None: after a result)
    else:                                # REJECTED: breaker open, d.until = re-probe time

or, for many waiting requests of several *lanes* (the stage's roles: classify, extract),
a queue: ``enqueue(lane, model, est_tokens)`` → ``dispatch(now)`` hands out permits as
the limits allow and says when to ask again (``withdraw`` takes a ticket back). When more
than one lane could go, the lanes take turns in proportion to the requests each has waiting
(smooth weighted round robin, weights = queue lengths): the key's rate is shared by the
work there is, not by who met a 429 first, and a lane alone gets all of it.

What it combines:

* **Rate limits at the provider's scope** (:mod:`~docmill.llm.minute_limit`): requests and
  tokens per minute at the key, shared by all models; a model gets a scope of its own only
  when the provider says its limits are per model: a 429 whose message names the model
  (``Rate limit reached for gpt-4o in …``), or ``x-ratelimit-*`` headers that count fewer
  requests than this key sent (requests sent at least a second before, still in the
  minute), or ``model_scope`` (``llm.limit_scope = "model"``). A limit's value is the
  provider's own figure when it states one (headers on any answer, ``Limit 90`` in a 429),
  else ``rpm`` / ``tpm`` as configured, else learned from 429s (``learn_rpm``); other
  clients' requests on the key (``Used`` in a 429, ``limit - remaining`` in headers, less
  this client's own) are counted in the window until they leave it.
* **Per-model concurrency** (:mod:`~docmill.llm.concurrency`): AIMD with slow start,
  never below a floor: ``min_concurrency``, or what the model's rate limit needs at its
  latency (``floor_headroom × rate × latency``); while a rate limit holds the rate, a
  request out for more than four mean latencies (hung, or in the slow tail) does not hold
  a slot: a hung request or a lone 5xx never stops a model. A 429 does not cut when a
  rate limit holds the rate (with ``learn_rpm``); a 5xx, a timeout or a success slower
  than ``ceiling_latency_s`` does.
* **Retry-After.** After a 429 with ``retry_after_s`` nothing goes at the refusing scope
  (key or model) before ``now + retry_after_s``; after another answer with one, nothing
  goes to that model.
* **Backoff** for retries: exponential with full jitter (:func:`backoff_s`), the jitter
  from an injected ``random`` callable.
* **Circuit breaker** per model: ``breaker_failures`` consecutive failures (5xx, timeouts,
  connection errors) open it for ``breaker_cooldown_s``; then one probe goes; its success
  closes it, its failure re-opens it for longer (up to ``breaker_cooldown_max_s``). While
  open, ``acquire`` answers REJECTED.
"""

from __future__ import annotations

import enum
import math
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Final

from docmill.llm.concurrency import BreakerState, ConcurrencyParams, ModelState
from docmill.llm.minute_limit import WINDOW_S, LimitParams, MinuteLimit, TokenBucket
from docmill.llm.rate_signals import RateSignals, names_model

__all__ = [
    "BREAKER_FAILURES",
    "CONGESTION",
    "WINDOW_S",
    "BreakerState",
    "Clock",
    "Decision",
    "DecisionKind",
    "Dispatch",
    "KeyLimiter",
    "LimiterConfig",
    "ModelView",
    "Outcome",
    "Permit",
    "Ticket",
    "TokenBucket",
    "backoff_s",
]

Clock = Callable[[], float]
"""What a caller reads ``now`` from: seconds on a monotonic scale (``time.monotonic``)."""

_EPS: Final = 1e-9  # float slack when comparing times
_NARROW_AGE_S: Final = 1.0  # own requests at least this old are surely counted by the provider
_STUCK_LATENCIES: Final = 4.0  # a request out this many mean latencies no longer holds a slot


@dataclass(frozen=True)
class LimiterConfig:
    """Everything the limiter does is set here; the defaults suit a paid API tier."""

    initial_concurrency: int = 16
    """Requests in flight per model at the start. Slow start raises it per fast answer, so
    with slow answers (a 16 s mean) starting at 16 rather than 4 saves two round trips
    before a learned limit is found."""
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
    """A success slower than this decreases the limit like a 5xx."""
    decrease_factor: float = 0.5
    """Multiplier applied to the limit on a congestion signal."""
    floor_headroom: float = 2.0
    """A cut never goes below this many times what the model's rate limit needs in flight
    at its mean latency (rate/s × latency)."""
    rpm: float = 0.0
    """Requests per minute the key allows, as configured; 0 = not known."""
    tpm: float = 0.0
    """Tokens per minute (input + output) the key allows, as configured; 0 = not known."""
    model_scope: bool = False
    """Count every limit per model from the start (``rpm``/``tpm`` then hold for each model)
    instead of per key."""
    bucket_s: float = 1.0
    """Pacing bucket capacity, in seconds of refill; it costs the sustained rate a share
    ``bucket_s / (60 + bucket_s)`` (1 s: 1.6 %), so that no 60 s window sees more."""
    learn_rpm: bool = False
    """Learn limits from 429s that state no figure (see ``minute_limit.LearnedLimit``)."""
    rpm_probe: float = 0.01
    """A learned limit at its ceiling rises by this share per minute without a 429."""
    recover_s: float = 60.0
    """A learned limit below its ceiling (after another client's storm) climbs back to it
    within this many seconds."""
    unsure_doubling_s: float = 10.0
    """A learned limit that is only a lower bound (and no level found before) doubles this
    often."""
    backoff_base_s: float = 1.0
    """Upper bound of the first retry's delay; doubles with each attempt."""
    backoff_max_s: float = 60.0
    """No retry delay exceeds this."""
    breaker_failures: int = 5
    """Consecutive 5xx / timeouts / connection errors that open a model's breaker."""
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
        if self.recover_s <= 0 or self.unsure_doubling_s <= 0 or self.floor_headroom < 0:
            problems.append("recover_s and unsure_doubling_s must be > 0, floor_headroom >= 0")
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

    def limit_params(self) -> LimitParams:
        return LimitParams(
            bucket_s=self.bucket_s,
            learn=self.learn_rpm,
            probe=self.rpm_probe,
            recover_s=self.recover_s,
            unsure_doubling_s=self.unsure_doubling_s,
        )

    def concurrency_params(self) -> ConcurrencyParams:
        return ConcurrencyParams(
            initial=self.initial_concurrency,
            min_concurrency=self.min_concurrency,
            max_concurrency=self.max_concurrency,
            increase_after=self.increase_after,
            slow_start=self.slow_start,
            target_latency_s=self.target_latency_s,
            decrease_factor=self.decrease_factor,
            floor_headroom=self.floor_headroom,
            breaker_failures=self.breaker_failures,
            breaker_cooldown_s=self.breaker_cooldown_s,
            breaker_cooldown_factor=self.breaker_cooldown_factor,
            breaker_cooldown_max_s=self.breaker_cooldown_max_s,
        )


class Outcome(enum.StrEnum):
    """How a request ended, as the limiter needs to know it."""

    SUCCESS = "success"
    RATE_LIMITED = "rate_limited"  # 429
    SERVER_ERROR = "server_error"  # 5xx
    TIMEOUT = "timeout"
    CONNECTION_ERROR = "connection_error"
    CLIENT_ERROR = "client_error"  # another 4xx: the provider is up, the request was bad
    CANCELLED = "cancelled"  # never sent or abandoned: frees the slot, no signal (pass
    # tokens_used=0 for a request never sent: it leaves the windows and gives its share back)


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


@dataclass(frozen=True)
class Permit:
    """One admitted request; hand it back to :meth:`KeyLimiter.on_result` exactly once."""

    id: int
    issued_at: float
    est_tokens: int
    probe: bool
    model: str = ""
    lane: str = ""


@dataclass(frozen=True)
class Ticket:
    """A request waiting in a lane (:meth:`KeyLimiter.enqueue`)."""

    id: int
    lane: str
    model: str
    est_tokens: int


@dataclass(frozen=True)
class Decision:
    """The answer to :meth:`KeyLimiter.acquire`.

    ``GO``: ``permit`` is set. ``WAIT``: ask again at ``until`` (``None``: when an
    in-flight request has been reported). ``REJECTED``: the breaker is open; ``until`` is
    when a probe may go. ``reason`` names the binding constraint (``concurrency``, ``rpm``,
    ``tpm``, ``retry_after``, ``breaker_open``, ``probe_in_flight``), empty for GO.
    """

    kind: DecisionKind
    until: float | None = None
    reason: str = ""
    permit: Permit | None = None


@dataclass(frozen=True)
class Dispatch:
    """What :meth:`KeyLimiter.dispatch` handed out, and when to ask again (``until``;
    None: after a result or a new request; ``reason`` of the soonest wait)."""

    grants: tuple[tuple[Ticket, Permit], ...]
    until: float | None
    reason: str = ""


@dataclass(frozen=True)
class ModelView:
    """What the limiter holds for one model now (:meth:`KeyLimiter.views`): the limits in
    force (0: none known) and where each came from (``headers``, ``429``, ``learned``,
    ``configured``; "" none), where they are counted (``key``, ``model``), its requests in
    flight and waiting, its concurrency limit and breaker."""

    model: str
    scope: str
    rpm: float
    rpm_source: str
    tpm: float
    tpm_source: str
    in_flight: int
    waiting: int
    concurrency: int
    breaker: str
    rate_limited: int = 0  # requests for the model answered 429 since the limiter began

    def to_dict(self) -> dict[str, object]:
        return {
            "model": self.model,
            "scope": self.scope,
            "rpm": round(self.rpm, 1),
            "rpm_source": self.rpm_source,
            "tpm": round(self.tpm),
            "tpm_source": self.tpm_source,
            "in_flight": self.in_flight,
            "waiting": self.waiting,
            "concurrency": self.concurrency,
            "breaker": self.breaker,
            "rate_limited": self.rate_limited,
        }


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


class _Scope:
    """The limits counted at one scope: the key, or one model on it."""

    def __init__(self, rpm: float, tpm: float, params: LimitParams, now: float) -> None:
        self.requests = MinuteLimit("requests", rpm, params, now)
        self.tokens = MinuteLimit("tokens", tpm, params, now)
        self.blocked_until = -math.inf

    def dim(self, kind: str) -> MinuteLimit:
        return self.tokens if kind == "tokens" else self.requests


@dataclass
class _Lane:
    name: str
    queue: deque[Ticket] = field(default_factory=deque)
    credit: float = 0.0


class KeyLimiter:
    """Admission control for one (endpoint, API key). Not thread-safe: one owner."""

    def __init__(self, config: LimiterConfig, *, now: float, random: Callable[[], float]) -> None:
        self.config = config
        self._random = random
        self._now = now
        self._params = config.limit_params()
        keyed = not config.model_scope
        self._key = _Scope(
            config.rpm if keyed else 0.0, config.tpm if keyed else 0.0, self._params, now
        )
        self._model_scopes: dict[str, _Scope] = {}
        self._models: dict[str, ModelState] = {}
        self._in_flight: dict[int, Permit] = {}
        self._next_id = 0
        self._lanes: dict[str, _Lane] = {}
        self._next_ticket = 0
        self._refusals: dict[str, int] = {}  # 429s per model (ModelView.rate_limited)

    # -- read-only views (the default model "" unless named) ---------------------------

    @property
    def concurrency_limit(self) -> int:
        return self.concurrency_of("")

    def concurrency_of(self, model: str) -> int:
        return int(self._model(model).limit)

    @property
    def in_flight(self) -> int:
        return len(self._in_flight)

    @property
    def breaker(self) -> BreakerState:
        return self._model("").breaker

    def breaker_of(self, model: str) -> BreakerState:
        return self._model(model).breaker

    @property
    def rpm(self) -> float:
        """The key's requests per minute now (stated, configured or learned); 0: none."""
        return self._key.requests.limit(self._now) or 0.0

    @property
    def tpm(self) -> float:
        """The key's tokens per minute now; 0: none known."""
        return self._key.tokens.limit(self._now) or 0.0

    def limits_of(self, model: str) -> tuple[float, float]:
        """(requests, tokens) per minute that hold for ``model`` now (0: none known)."""
        scopes = list(self._scopes(model))
        rpm = [v for s in scopes if (v := s.requests.limit(self._now)) is not None]
        tpm = [v for s in scopes if (v := s.tokens.limit(self._now)) is not None]
        return min(rpm, default=0.0), min(tpm, default=0.0)

    def limit_of(self, model: str, kind: str) -> tuple[float, str]:
        """(the ``kind`` limit per minute holding for ``model`` now, where it came from):
        the tightest of its scopes; (0, "") when none is known."""
        found = [
            (value, dim.source(self._now))
            for scope in self._scopes(model)
            if (value := (dim := scope.dim(kind)).limit(self._now)) is not None
        ]
        return min(found, default=(0.0, ""), key=lambda x: x[0])

    def views(self, now: float) -> list[ModelView]:
        """Every model this limiter has seen, as :class:`ModelView` (sorted by name)."""
        self._now = max(self._now, now)
        waiting: dict[str, int] = {}
        for lane in self._lanes.values():
            for ticket in lane.queue:
                waiting[ticket.model] = waiting.get(ticket.model, 0) + 1
        out = []
        for model in sorted(self._models):
            if not model and len(self._models) > 1:
                continue  # the default model, only looked at (``breaker``, ``blocked_until``)
            state = self._models[model]
            rpm, rpm_source = self.limit_of(model, "requests")
            tpm, tpm_source = self.limit_of(model, "tokens")
            out.append(
                ModelView(
                    model=model,
                    scope=self.scope_of(model),
                    rpm=rpm,
                    rpm_source=rpm_source,
                    tpm=tpm,
                    tpm_source=tpm_source,
                    in_flight=len(state.in_flight),
                    waiting=waiting.get(model, 0),
                    concurrency=int(state.limit),
                    breaker=str(state.breaker),
                    rate_limited=self._refusals.get(model, 0),
                )
            )
        return out

    @property
    def learned_rpm(self) -> float | None:
        """What the key's last 429 lesson measured (before probing); None: nothing learned."""
        learned = self._key.requests.learned
        return learned.value if learned is not None else None

    @property
    def blocked_until(self) -> float:
        """No request goes before this time (Retry-After at the key or for the default
        model); ``-inf`` if unset."""
        return max(self._key.blocked_until, self._model("").blocked_until)

    def scope_of(self, model: str) -> str:
        """``key`` or ``model``: where ``model``'s limits are counted besides the key."""
        self._model(model)
        return "model" if model in self._model_scopes else "key"

    def waiting(self, lane: str | None = None) -> int:
        """Requests queued (in ``lane``, or in all)."""
        if lane is not None:
            found = self._lanes.get(lane)
            return len(found.queue) if found is not None else 0
        return sum(len(x.queue) for x in self._lanes.values())

    # -- one request at a time --------------------------------------------------------

    def acquire(
        self, now: float, est_tokens: int = 0, *, model: str = "", lane: str = ""
    ) -> Decision:
        """Admit one request now, or say how long to wait, or reject it (breaker open)."""
        decision = self.check(now, est_tokens, model)
        if decision.kind is not DecisionKind.GO:
            return decision
        return Decision(DecisionKind.GO, now, "", self._admit(now, est_tokens, model, lane))

    def check(self, now: float, est_tokens: int = 0, model: str = "") -> Decision:
        """Whether a request could go now (nothing is taken)."""
        self._now = max(self._now, now)
        state = self._model(model)
        ok, until, reason = state.breaker_check(now)
        if not ok:
            return Decision(DecisionKind.REJECTED, until, reason)
        waits: list[tuple[float, str]] = []
        for scope in self._scopes(model):
            if now + _EPS < scope.blocked_until:
                waits.append((scope.blocked_until, "retry_after"))
            waits.append((scope.requests.ready_at(now, 1.0), "rpm"))
            waits.append((scope.tokens.ready_at(now, float(est_tokens)), "tpm"))
        if now + _EPS < state.blocked_until:
            waits.append((state.blocked_until, "retry_after"))
        until_, reason = max(waits, default=(now, ""))
        if until_ > now:
            return Decision(DecisionKind.WAIT, until_, reason)
        if len(state.in_flight) >= self._room(state, model, now):
            return Decision(DecisionKind.WAIT, None, "concurrency")
        return Decision(DecisionKind.GO, now)

    def _room(self, state: ModelState, model: str, now: float) -> int:
        """How many of ``model``'s requests may be in flight: its AIMD limit, never below
        the floor its rate limit needs; and, when a rate limit holds the rate, requests
        out for more than ``_STUCK_LATENCIES`` mean latencies (hung, or in the slow tail)
        do not count: the others keep going while they wait."""
        rpm = self.limits_of(model)[0]
        room = max(int(state.limit), int(state.floor(rpm or None)))
        if rpm and state.latency_s is not None:
            stuck_since = now - _STUCK_LATENCIES * state.latency_s
            room += sum(
                1 for p in self._in_flight.values() if p.model == model and p.issued_at < stuck_since
            )
        return room

    # -- many requests in lanes -------------------------------------------------------

    def enqueue(self, lane: str, model: str, est_tokens: int = 0) -> Ticket:
        """A request waits in ``lane`` until :meth:`dispatch` hands it a permit."""
        ticket = Ticket(self._next_ticket, lane, model, est_tokens)
        self._next_ticket += 1
        self._lanes.setdefault(lane, _Lane(lane)).queue.append(ticket)
        return ticket

    def withdraw(self, ticket: Ticket) -> None:
        """A waiting request gives up (a ticket already granted is not in a queue)."""
        lane = self._lanes.get(ticket.lane)
        if lane is not None and ticket in lane.queue:
            lane.queue.remove(ticket)
            if not lane.queue:
                lane.credit = 0.0

    def dispatch(self, now: float) -> Dispatch:
        """Permits for as many waiting requests as may go now, the lanes taking turns in
        proportion to their queues; and when to ask again."""
        grants: list[tuple[Ticket, Permit]] = []
        while True:
            ready: list[_Lane] = []
            until: float | None = None
            reason = ""
            for lane in self._lanes.values():
                if not lane.queue:
                    continue
                head = lane.queue[0]
                d = self.check(now, head.est_tokens, head.model)
                if d.kind is DecisionKind.GO:
                    ready.append(lane)
                elif d.until is not None and (until is None or d.until < until):
                    until, reason = d.until, d.reason
                elif until is None and not reason:
                    reason = d.reason
            if not ready:
                return Dispatch(tuple(grants), until, reason)
            lane = self._pick(ready)
            ticket = lane.queue.popleft()
            if not lane.queue:
                lane.credit = 0.0
            grants.append((ticket, self._admit(now, ticket.est_tokens, ticket.model, lane.name)))

    @staticmethod
    def _pick(ready: list[_Lane]) -> _Lane:
        """Smooth weighted round robin, each lane weighted by its queue's length."""
        total = 0.0
        for lane in ready:
            lane.credit += len(lane.queue)
            total += len(lane.queue)
        best = max(ready, key=lambda x: x.credit)
        best.credit -= total
        return best

    # -- results ----------------------------------------------------------------------

    def on_result(
        self,
        permit: Permit,
        now: float,
        outcome: Outcome,
        latency_s: float = 0.0,
        tokens_used: int | None = None,
        retry_after_s: float | None = None,
        signals: RateSignals | None = None,
    ) -> None:
        """Record how an admitted request ended; frees its slot and updates every policy.

        ``tokens_used`` (input + output, as billed) corrects the token estimate; ``None``
        keeps it. ``retry_after_s`` (from the response header) blocks the refusing scope
        (a 429) or the model (another answer). ``signals``: what the answer said about
        limits (``ChatResult.rate``).
        """
        if self._in_flight.pop(permit.id, None) is None:
            raise ValueError(f"permit {permit.id} is not in flight (reported twice?)")
        self._now = max(self._now, now)
        state = self._model(permit.model)
        state.release(permit.id)
        never_sent = outcome is Outcome.CANCELLED and tokens_used == 0
        for scope in self._scopes(permit.model):
            if tokens_used is not None:
                scope.tokens.settle(permit.id, float(permit.est_tokens), float(tokens_used))
            if never_sent:
                scope.requests.settle(permit.id, 1.0, 0.0)
                scope.requests.forget(permit.id)
                scope.tokens.forget(permit.id)
        if outcome is Outcome.CANCELLED:
            if permit.probe:
                state.probe_out = False
            return
        refused = outcome is Outcome.RATE_LIMITED
        if refused:  # the provider counted it nowhere
            self._refusals[permit.model] = self._refusals.get(permit.model, 0) + 1
            for scope in self._scopes(permit.model):
                scope.requests.forget(permit.id)
                scope.tokens.forget(permit.id)
        if signals is not None:
            self._observe(permit, now, signals)
        if refused:
            blamed = self._refused(permit, now, signals, retry_after_s)
            if retry_after_s is not None and retry_after_s > 0:
                blamed.blocked_until = max(blamed.blocked_until, now + retry_after_s)
        elif retry_after_s is not None and retry_after_s > 0:
            state.blocked_until = max(state.blocked_until, now + retry_after_s)
        self._update_concurrency(state, permit, outcome, latency_s)
        state.breaker_result(now, permit.probe, outcome in BREAKER_FAILURES, refused)

    def backoff(self, attempt: int) -> float:
        """Seconds to wait before retry number ``attempt`` (from 1), full jitter."""
        c = self.config
        return backoff_s(attempt, c.backoff_base_s, c.backoff_max_s, self._random())

    # -- internals --------------------------------------------------------------------

    def _model(self, model: str) -> ModelState:
        state = self._models.get(model)
        if state is None:
            state = self._models[model] = ModelState(self.config.concurrency_params())
            if self.config.model_scope:
                self._narrow(model, self._now, from_config=True)
        return state

    def _scopes(self, model: str) -> Iterator[_Scope]:
        self._model(model)  # a model counted per model from the start has its scope now
        yield self._key
        scope = self._model_scopes.get(model)
        if scope is not None:
            yield scope

    def _scope_for(self, model: str) -> _Scope:
        """Where the provider counts ``model``'s requests: its own scope, else the key."""
        return self._model_scopes.get(model, self._key)

    def _admit(self, now: float, est_tokens: int, model: str, lane: str) -> Permit:
        state = self._model(model)
        pid = self._next_id
        self._next_id += 1
        probe = state.admit(pid)
        for scope in self._scopes(model):
            scope.requests.take(now, pid, 1.0, model)
            scope.tokens.take(now, pid, float(est_tokens), model)
        permit = Permit(pid, now, est_tokens, probe, model, lane)
        self._in_flight[pid] = permit
        return permit

    def _narrow(self, model: str, now: float, *, from_config: bool = False) -> None:
        """Count ``model``'s limits in a scope of its own (its requests so far included);
        what the key had heard from the provider was about this narrower scope."""
        if model in self._model_scopes:
            return
        c = self.config
        scope = _Scope(
            c.rpm if from_config else 0.0, c.tpm if from_config else 0.0, self._params, now
        )
        for kind in ("requests", "tokens"):
            scope.dim(kind).adopt(self._key.dim(kind).entries_of(model), now)
            if not from_config:
                self._key.dim(kind).clear_provider_view(now)
        self._model_scopes[model] = scope

    def _observe(self, permit: Permit, now: float, signals: RateSignals) -> None:
        """Headers: the provider's figures, and how much of the window others hold."""
        allowances = (("requests", signals.requests), ("tokens", signals.tokens))
        if (
            signals.requests is not None
            and permit.model not in self._model_scopes
            and self._counts_fewer(permit, signals.requests.limit - signals.requests.remaining)
        ):
            self._narrow(permit.model, now)
        scope = self._scope_for(permit.model)
        for kind, allowance in allowances:
            if allowance is not None:
                used = max(0.0, allowance.limit - allowance.remaining)
                scope.dim(kind).observe(now, allowance.limit, used, permit.issued_at, permit.id)

    def _counts_fewer(self, permit: Permit, used: float) -> bool:
        """Whether the provider counted fewer requests than this key surely sent in its
        minute (sent at least ``_NARROW_AGE_S`` before ``permit``): it counts per model."""
        at = permit.issued_at
        sure = self._key.requests.own_between(at - WINDOW_S + _NARROW_AGE_S, at - _NARROW_AGE_S)
        margin = max(2.0, 0.05 * (used + 1.0))
        return sure > used + margin

    def _refused(
        self, permit: Permit, now: float, signals: RateSignals | None, retry_after_s: float | None
    ) -> _Scope:
        """A 429: the scope it came from learns; returns that scope (for its Retry-After)."""
        refusal = signals.refusal if signals is not None else None
        if refusal is not None and permit.model and names_model(refusal.target, permit.model):
            self._narrow(permit.model, now)
        scope = self._scope_for(permit.model)
        if refusal is not None and not refusal.per_minute:
            return scope  # a daily limit: its Retry-After is all a minute window can use
        kind = refusal.kind if refusal is not None and refusal.kind else "requests"
        scope.dim(kind).refused(
            now,
            permit.id,
            permit.issued_at,
            refusal.figure if refusal is not None else None,
            refusal.used if refusal is not None else None,
            retry_after_s,
            self._next_id,
        )
        return scope

    def _update_concurrency(
        self, state: ModelState, permit: Permit, outcome: Outcome, latency_s: float
    ) -> None:
        c = self.config
        slow = outcome is Outcome.SUCCESS and latency_s > c.ceiling_latency_s
        if outcome in CONGESTION or slow:
            rpm, tpm = self.limits_of(permit.model)
            rate_binds = outcome is Outcome.RATE_LIMITED and c.learn_rpm and (rpm > 0 or tpm > 0)
            state.congested(permit.id, self._next_id, not rate_binds, rpm or None)
        elif outcome is Outcome.SUCCESS:
            state.succeeded(latency_s)
