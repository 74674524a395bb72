"""What LLM calls cost: a price table, a hard budget, and a pre-run estimate.

All pure: no clock, no I/O. Money inside :class:`Budget` is kept in integer nano-dollars
so that the cap comparison is exact (no float drift over millions of calls).
"""

from __future__ import annotations

import math
import random
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

_NANO: Final = 1_000_000_000  # nano-dollars per dollar
_MTOK: Final = 1_000_000


@dataclass(frozen=True)
class Price:
    """USD per million tokens, input (prompt) and output (completion)."""

    input_per_mtok: float
    output_per_mtok: float

    def __post_init__(self) -> None:
        for v in (self.input_per_mtok, self.output_per_mtok):
            if not (math.isfinite(v) and v >= 0):
                raise ValueError(f"a price must be a finite number >= 0, got {v!r}")


DEFAULT_PRICES_DATE: Final = "2025-06"
DEFAULT_PRICES: Final[Mapping[str, Price]] = MappingProxyType(
    {
        # OpenAI, standard tier (no batch or cached-input discount)
        "gpt-4o": Price(2.50, 10.00),
        "gpt-4o-mini": Price(0.15, 0.60),
        "gpt-4.1": Price(2.00, 8.00),
        "gpt-4.1-mini": Price(0.40, 1.60),
        "gpt-4.1-nano": Price(0.10, 0.40),
        # Anthropic
        "claude-sonnet-4": Price(3.00, 15.00),
        "claude-3-5-haiku": Price(0.80, 4.00),
        "claude-opus-4": Price(15.00, 75.00),
        # Google, prompts up to 200k tokens
        "gemini-2.0-flash": Price(0.10, 0.40),
    }
)
"""Built-in list prices, as published by the providers around ``DEFAULT_PRICES_DATE``.

They are *defaults to be overridden*: prices change, tiers and discounts differ per
account. Pass overrides (from config) to :class:`PriceTable`. A model name matches an
entry exactly, or by the longest entry that is a prefix followed by ``-`` (so
``gpt-4o-2024-08-06`` is priced as ``gpt-4o``, ``gpt-4o-mini-…`` as ``gpt-4o-mini``).
"""


class UnknownModelError(KeyError):
    """No price is known for a model: add one under the price overrides."""


class PriceTable:
    """Defaults plus overrides; ``overrides`` maps a model to ``{"input": x, "output": y}``
    (USD per million tokens) or to a :class:`Price`. Overrides win."""

    def __init__(
        self,
        overrides: Mapping[str, Mapping[str, float] | Price] | None = None,
        *,
        defaults: Mapping[str, Price] = DEFAULT_PRICES,
    ) -> None:
        table = dict(defaults)
        for model, value in (overrides or {}).items():
            if isinstance(value, Price):
                table[model] = value
                continue
            unknown = set(value) - {"input", "output"}
            if unknown or not {"input", "output"} <= set(value):
                raise ValueError(
                    f"price for {model!r} needs exactly the keys 'input' and 'output' "
                    f"(USD per million tokens), got {sorted(value)}"
                )
            table[model] = Price(float(value["input"]), float(value["output"]))
        self._prices: Mapping[str, Price] = MappingProxyType(table)

    @property
    def models(self) -> list[str]:
        return sorted(self._prices)

    def price(self, model: str) -> Price:
        """The price of ``model`` (exact name, else the longest ``name-`` prefix)."""
        found = self._prices.get(model)
        if found is not None:
            return found
        prefixes = [m for m in self._prices if model.startswith(m + "-")]
        if prefixes:
            return self._prices[max(prefixes, key=len)]
        raise UnknownModelError(f"no price for model {model!r}; known: {', '.join(self.models)}")

    def cost(self, model: str, input_tokens: int, output_tokens: int) -> float:
        """USD for one call."""
        if input_tokens < 0 or output_tokens < 0:
            raise ValueError("token counts must be >= 0")
        p = self.price(model)
        return (input_tokens * p.input_per_mtok + output_tokens * p.output_per_mtok) / _MTOK

    def output_tokens_within(self, model: str, input_tokens: int, usd: float) -> int:
        """The most output tokens a call with ``input_tokens`` may have and cost at most
        ``usd`` (0 when even its input does not fit; a free output: a very large number)."""
        p = self.price(model)
        left = usd * _MTOK - input_tokens * p.input_per_mtok
        if left < 0:
            return 0
        if p.output_per_mtok == 0:
            return 1 << 30
        # a hair under what fits: the cost is rounded up to a nano-dollar when reserved
        return max(0, math.floor(left / p.output_per_mtok * (1 - 1e-9)) - 1)


def _to_nano_up(usd: float) -> int:
    if not (math.isfinite(usd) and usd >= 0):
        raise ValueError(f"an amount must be a finite number >= 0, got {usd!r}")
    return math.ceil(usd * _NANO)


@dataclass(frozen=True)
class Pledge:
    """The expected cost of a document's remaining requests, set aside when it was admitted."""

    id: int


@dataclass(frozen=True)
class Reservation:
    """Money set aside for one call; settle it exactly once."""

    id: int
    nano_usd: int

    @property
    def usd(self) -> float:
        return self.nano_usd / _NANO


class Budget:
    """A hard spending cap for a run.

    Protocol: ``r = budget.reserve(max_cost)`` before sending (``None``: refused, do not
    send), then ``budget.settle(r, actual_cost)`` when the call is billed (``0`` if it was
    never sent or not billed).

    The guarantee, exactly: ``reserve`` admits a call only if
    ``spent + reserved + max_cost <= cap``, so ``spent + reserved <= cap`` holds after
    every ``reserve``, and after every ``settle`` whose actual cost is at most its
    reservation. Hence **if every actual cost is at most its reservation, ``spent`` never
    exceeds the cap**. A settlement above its reservation (an input-token estimate that
    was low, or output not capped by ``max_tokens``) is charged in full and recorded in
    ``overrun_usd``; then ``spent <= cap + overrun_usd`` (overrun_usd = the sum over all
    settlements of ``max(0, actual - reserved)``), and no new call is admitted until
    ``spent + reserved + max_cost <= cap`` again. So the overrun is bounded by the excess
    of calls already in flight; callers that reserve ``cost(input tokens counted exactly,
    max_tokens)`` never overrun. Amounts are rounded up to a nano-dollar; the cap down.

    Pledges plan ahead (the LLM stage): a document is admitted only when its remaining
    requests' *expected* cost fits beside what is spent and what the documents admitted
    before it still expect to spend (:meth:`pledge`: ``spent + pledged + expected +
    margin <= cap``), so money is never spent classifying a document whose fields would
    not fit. A pledge is lowered as its requests are answered (:meth:`repledge`) and
    released when its document is done. Pledges never let a request through: the hard
    guarantee above holds for the reservations alone.
    """

    def __init__(self, budget_usd: float) -> None:
        if not (math.isfinite(budget_usd) and budget_usd >= 0):
            raise ValueError(f"budget_usd must be a finite number >= 0, got {budget_usd!r}")
        self._cap = math.floor(budget_usd * _NANO)
        self._spent = 0
        self._overrun = 0
        self._open: dict[int, int] = {}
        self._next_id = 0
        self._pledges: dict[int, int] = {}

    @property
    def cap_usd(self) -> float:
        return self._cap / _NANO

    @property
    def spent_usd(self) -> float:
        return self._spent / _NANO

    @property
    def reserved_usd(self) -> float:
        return sum(self._open.values()) / _NANO

    @property
    def remaining_usd(self) -> float:
        """What a new reservation may still take (never negative)."""
        return max(0, self._cap - self._spent - sum(self._open.values())) / _NANO

    @property
    def overrun_usd(self) -> float:
        """Sum of ``actual - reserved`` over settlements that cost more than reserved."""
        return self._overrun / _NANO

    @property
    def in_flight(self) -> int:
        return len(self._open)

    def reserve(self, max_cost: float) -> Reservation | None:
        """Set ``max_cost`` aside, or return ``None`` if it would break the cap."""
        amount = _to_nano_up(max_cost)
        if self._spent + sum(self._open.values()) + amount > self._cap:
            return None
        r = Reservation(self._next_id, amount)
        self._next_id += 1
        self._open[r.id] = amount
        return r

    @property
    def pledged_usd(self) -> float:
        return sum(self._pledges.values()) / _NANO

    @property
    def pledges(self) -> int:
        """Documents admitted and not yet released."""
        return len(self._pledges)

    def pledge(self, expected_usd: float, margin_usd: float = 0.0) -> Pledge | None:
        """Admit a document expected to cost ``expected_usd`` more, keeping ``margin_usd``
        spare for the spread of actual costs; ``None``: it does not fit now."""
        amount = _to_nano_up(expected_usd)
        margin = _to_nano_up(margin_usd)
        if self._spent + sum(self._pledges.values()) + amount + margin > self._cap:
            return None
        p = Pledge(self._next_id)
        self._next_id += 1
        self._pledges[p.id] = amount
        return p

    def repledge(self, pledge: Pledge, expected_usd: float) -> None:
        """What the admitted document now expects still to spend (no check: admitted)."""
        if pledge.id not in self._pledges:
            raise ValueError(f"pledge {pledge.id} is not open")
        self._pledges[pledge.id] = _to_nano_up(expected_usd)

    def release(self, pledge: Pledge) -> None:
        """The document is done (or stopped): its pledge is free again."""
        self._pledges.pop(pledge.id, None)

    def settle(self, reservation: Reservation, actual_cost: float) -> None:
        """Release ``reservation`` and charge ``actual_cost``."""
        actual = _to_nano_up(actual_cost)
        held = self._open.pop(reservation.id, None)
        if held is None:
            raise ValueError(f"reservation {reservation.id} is not open (settled twice?)")
        self._spent += actual
        self._overrun += max(0, actual - held)


@dataclass
class _Seen:
    answers: int = 0
    ratio_sum: float = 0.0  # billed input tokens / our estimate
    out_sum: int = 0
    out_max: int = 0
    ratio_max: float = 0.0


class TokenStats:
    """What answers cost so far, per (role, model): billed input tokens against the
    stage's estimate, and output tokens (mean and most). Before the first answer of a
    (role, model) the caller's prior (the spec's estimate of a typical answer) stands."""

    def __init__(self) -> None:
        self._seen: dict[tuple[str, str], _Seen] = {}

    def observe(self, role: str, model: str, est_in: int, tokens_in: int, tokens_out: int) -> None:
        seen = self._seen.setdefault((role, model), _Seen())
        seen.answers += 1
        ratio = tokens_in / est_in if est_in > 0 else 1.0
        seen.ratio_sum += ratio
        seen.ratio_max = max(seen.ratio_max, ratio)
        seen.out_sum += tokens_out
        seen.out_max = max(seen.out_max, tokens_out)

    def answers(self, role: str, model: str) -> int:
        seen = self._seen.get((role, model))
        return seen.answers if seen else 0

    def expected(self, role: str, model: str, est_in: int, prior_out: int) -> tuple[int, int]:
        """(input, output) tokens a request is expected to be billed."""
        seen = self._seen.get((role, model))
        if not seen or not seen.answers:
            return est_in, prior_out
        ratio = seen.ratio_sum / seen.answers
        return math.ceil(round(est_in * ratio, 6)), math.ceil(seen.out_sum / seen.answers)

    def output_need(self, role: str, model: str, prior_out: int) -> int:
        """Output tokens to ask for at the least when money is short: twice the longest
        answer seen (twice the prior before any), at least 16."""
        seen = self._seen.get((role, model))
        most = seen.out_max if seen and seen.answers else prior_out
        return max(16, 2 * most)

    def input_ceiling(self, role: str, model: str, est_in: int) -> int:
        """Input tokens a request may be billed at the most: our estimate + 50 % for the
        provider's tokenizer, or, once ``LEARN_AFTER`` answers are in, 10 % above the
        largest ratio of billed to estimated tokens seen (whichever is less)."""
        ceiling = est_in * 3 // 2 + 16
        seen = self._seen.get((role, model))
        if seen and seen.answers >= LEARN_AFTER:
            ceiling = min(ceiling, math.ceil(round(est_in * seen.ratio_max * 1.1, 6)) + 16)
        return ceiling


LEARN_AFTER: Final = 3


@dataclass(frozen=True)
class Estimate:
    """Cost of a run in USD: a ``low``–``high`` range around ``expected``."""

    low: float
    expected: float
    high: float


def bootstrap_mean(
    samples: Sequence[float], *, confidence: float = 0.90, rounds: int = 2000, seed: int = 0
) -> tuple[float, float, float]:
    """(low, mean, high): the sample's mean and a percentile bootstrap interval of it
    (``rounds`` resamples, central ``confidence`` interval, deterministic for a ``seed``)."""
    if not samples:
        raise ValueError("a bootstrap needs at least one sample")
    if not 0.0 < confidence < 1.0 or rounds < 1:
        raise ValueError("confidence must be in (0, 1) and rounds >= 1")
    mean = statistics.fmean(samples)
    rng = random.Random(seed)
    k = len(samples)
    means = sorted(statistics.fmean(rng.choices(samples, k=k)) for _ in range(rounds))
    tail = (1.0 - confidence) / 2.0
    lo_i = min(rounds - 1, max(0, math.floor(tail * rounds)))
    hi_i = min(rounds - 1, max(0, math.ceil((1.0 - tail) * rounds) - 1))
    return means[lo_i], mean, means[hi_i]


def estimate(
    samples: list[int],
    n_docs: int,
    model: str,
    expected_output_tokens: int,
    *,
    prices: PriceTable | None = None,
    confidence: float = 0.90,
    rounds: int = 2000,
    seed: int = 0,
) -> Estimate:
    """Estimate the cost of ``n_docs`` calls from a sample of input-token counts.

    ``expected`` is ``n_docs`` times the cost at the sample's mean input size. The range
    is a percentile bootstrap of that mean (``rounds`` resamples, central ``confidence``
    interval, deterministic for a given ``seed``); it reflects uncertainty from the
    sample's size and spread, not from output length, which is taken as given. Output
    ``low <= expected <= high`` always.
    """
    if not samples:
        raise ValueError("estimate needs at least one sample token count")
    if n_docs < 0 or expected_output_tokens < 0 or any(s < 0 for s in samples):
        raise ValueError("n_docs, expected_output_tokens and samples must be >= 0")
    if not 0.0 < confidence < 1.0 or rounds < 1:
        raise ValueError("confidence must be in (0, 1) and rounds >= 1")
    table = prices if prices is not None else PriceTable()
    p = table.price(model)

    def run_cost(mean_input: float) -> float:
        per_doc = mean_input * p.input_per_mtok + expected_output_tokens * p.output_per_mtok
        return n_docs * per_doc / _MTOK

    lo_mean, mean, hi_mean = bootstrap_mean(samples, confidence=confidence, rounds=rounds, seed=seed)
    expected = run_cost(mean)
    return Estimate(
        low=min(run_cost(lo_mean), expected),
        expected=expected,
        high=max(run_cost(hi_mean), expected),
    )
