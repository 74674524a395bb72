"""What a provider's answer says about its rate limits: headers and 429 bodies, parsed once.

Pure functions of the text they are given (the wall clock comes from the caller, for
Anthropic's reset dates). Two header families:

* OpenAI (and Groq, Together, OpenRouter, vLLM gateways): ``x-ratelimit-limit-requests``,
  ``x-ratelimit-remaining-requests``, ``x-ratelimit-reset-requests`` (a Go-style duration:
  ``"12ms"``, ``"1s"``, ``"6m0s"``, ``"1h2m3.5s"``: the time until the window is back to
  its full allowance), and the same three for ``-tokens``;
* Anthropic: ``anthropic-ratelimit-requests-limit`` / ``-remaining`` / ``-reset`` (an RFC
  3339 date), and ``anthropic-ratelimit-tokens-*`` (else ``-input-tokens-*``).

A 429 body's message (OpenAI: ``Rate limit reached for gpt-4o in organization org-x on
requests per min (RPM): Limit 90, Used 90, Requested 1. Please try again in 1.2s.``;
older: ``... on tokens per min. Limit: 10000 / min. Current: 10020 / min.``; Anthropic:
``... exceed the rate limit for your organization (…) of 50,000 input tokens per
minute``) says which limit refused (requests or tokens, per minute or per day), its
figure, how much was used, and what the limit is *for*: a model, or a limit group
(``10KTPM-200RPM``), or nothing (the organisation or key as a whole).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Final, Literal

Kind = Literal["requests", "tokens"]

_DURATION_PART: Final = re.compile(r"(\d+(?:\.\d+)?)(ms|us|µs|ns|h|m|s)")
_UNIT_S: Final = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}
_NUMBER: Final = r"(\d[\d,]*(?:\.\d+)?)"
_LIMIT: Final = re.compile(rf"\bLimit:?\s*{_NUMBER}", re.IGNORECASE)
_USED: Final = re.compile(rf"\b(?:Used|Current):?\s*{_NUMBER}", re.IGNORECASE)
_REQUESTED: Final = re.compile(rf"\bRequested:?\s*{_NUMBER}", re.IGNORECASE)
_FOR: Final = re.compile(r"Rate limit reached for\s+(\S+?)\s+(?:in|on)\s", re.IGNORECASE)
_ANTHROPIC: Final = re.compile(
    rf"rate limit for your organization.*?\bof\s+{_NUMBER}\s+((?:input |output )?tokens|requests)"
    r"\s+per\s+(minute|day)",
    re.IGNORECASE | re.DOTALL,
)


@dataclass(frozen=True)
class Allowance:
    """One window as a provider's headers state it. ``reset_s``: seconds until it is back
    to its full allowance (None: not said)."""

    limit: float
    remaining: float
    reset_s: float | None = None


@dataclass(frozen=True)
class Refusal:
    """What a 429's message says. ``kind`` None: it does not say which limit; ``figure``:
    the limit's number; ``per_minute`` False: a daily (or other) limit, which a minute
    window must not learn; ``target``: what the limit is for (a model, a group), None
    when it names nothing narrower than the organisation or key."""

    kind: Kind | None = None
    figure: float | None = None
    used: float | None = None
    requested: float | None = None
    per_minute: bool = True
    target: str | None = None


@dataclass(frozen=True)
class RateSignals:
    """Everything one answer said about limits (each part None when it said nothing)."""

    requests: Allowance | None = None
    tokens: Allowance | None = None
    refusal: Refusal | None = None

    @property
    def empty(self) -> bool:
        return self.requests is None and self.tokens is None and self.refusal is None


def parse_duration(text: str) -> float | None:
    """Seconds in ``"6m0s"``, ``"1.5s"``, ``"120ms"``, ``"1h2m3s"`` or a bare number of
    seconds; None if it is none of these."""
    text = text.strip()
    if not text:
        return None
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    total, pos = 0.0, 0
    for match in _DURATION_PART.finditer(text):
        if match.start() != pos:
            return None
        total += float(match.group(1)) * _UNIT_S[match.group(2)]
        pos = match.end()
    return total if pos == len(text) else None


def _number(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        return float(text.strip().replace(",", ""))
    except ValueError:
        return None


def _rfc3339_in(text: str, wall_now: float) -> float | None:
    try:
        when = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - wall_now)


def _allowance(
    headers: Mapping[str, str], limit: str, remaining: str, reset: str, wall_now: float
) -> Allowance | None:
    lim, rem = _number(headers.get(limit)), _number(headers.get(remaining))
    if lim is None or rem is None or lim <= 0:
        return None
    raw = headers.get(reset)
    reset_s: float | None = None
    if raw:
        reset_s = parse_duration(raw)
        if reset_s is None:
            reset_s = _rfc3339_in(raw, wall_now)
    return Allowance(lim, max(0.0, rem), reset_s)


def from_headers(
    headers: Mapping[str, str], wall_now: float
) -> tuple[Allowance | None, Allowance | None]:
    """(requests, tokens) allowances from OpenAI's or Anthropic's headers (lower-case
    names, or any mapping that folds case such as httpx's ``Headers``)."""
    requests = _allowance(
        headers,
        "x-ratelimit-limit-requests",
        "x-ratelimit-remaining-requests",
        "x-ratelimit-reset-requests",
        wall_now,
    ) or _allowance(
        headers,
        "anthropic-ratelimit-requests-limit",
        "anthropic-ratelimit-requests-remaining",
        "anthropic-ratelimit-requests-reset",
        wall_now,
    )
    tokens = _allowance(
        headers,
        "x-ratelimit-limit-tokens",
        "x-ratelimit-remaining-tokens",
        "x-ratelimit-reset-tokens",
        wall_now,
    )
    for family in ("tokens", "input-tokens"):
        tokens = tokens or _allowance(
            headers,
            f"anthropic-ratelimit-{family}-limit",
            f"anthropic-ratelimit-{family}-remaining",
            f"anthropic-ratelimit-{family}-reset",
            wall_now,
        )
    return requests, tokens


def parse_refusal(message: str, error_type: str | None = None) -> Refusal:
    """What a 429's error message (and its ``error.type``, OpenAI: ``requests`` or
    ``tokens``) says about the limit that refused it."""
    low = message.lower()
    anthropic = _ANTHROPIC.search(message)
    if anthropic:
        unit = anthropic.group(2).lower()
        return Refusal(
            kind="requests" if unit == "requests" else "tokens",
            figure=_number(anthropic.group(1)),
            per_minute=anthropic.group(3).lower() == "minute",
        )
    kind: Kind | None = None
    if "tokens per" in low or "(tpm)" in low or "(tpd)" in low:
        kind = "tokens"
    elif "requests per" in low or "(rpm)" in low or "(rpd)" in low:
        kind = "requests"
    elif error_type in ("requests", "tokens"):
        kind = error_type  # type: ignore[assignment]
    per_minute = not any(w in low for w in ("per day", "(rpd)", "(tpd)", "/ day", "per hour"))
    used = _USED.search(message)
    limit = _LIMIT.search(message)
    requested = _REQUESTED.search(message)
    target = _FOR.search(message)
    return Refusal(
        kind=kind,
        figure=_number(limit.group(1)) if limit else None,
        used=_number(used.group(1)) if used else None,
        requested=_number(requested.group(1)) if requested else None,
        per_minute=per_minute,
        target=target.group(1).strip("'\"") if target else None,
    )


def names_model(target: str | None, model: str) -> bool:
    """Whether a 429 that says it is ``for`` ``target`` means the model ``model``: the
    model's name, alone or at the end of a longer name (``default-gpt-4o``), never a
    longer model's (``gpt-4o-mini`` is not ``gpt-4o``); a limit group such as
    ``10KTPM-200RPM`` or the organisation does not."""
    if not target or not model:
        return False
    t, m = target.lower(), model.lower()
    return t == m or re.search(rf"(?<![a-z0-9.]){re.escape(m)}(?![a-z0-9.-])", t) is not None


def read_signals(
    headers: Mapping[str, str],
    wall_now: float,
    message: str | None = None,
    error_type: str | None = None,
) -> RateSignals | None:
    """Headers, and for a 429 its message; None when the answer said nothing about limits."""
    requests, tokens = from_headers(headers, wall_now)
    refusal = parse_refusal(message, error_type) if message is not None else None
    signals = RateSignals(requests, tokens, refusal)
    return None if signals.empty else signals
