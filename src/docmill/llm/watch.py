"""What the LLM stage tells the log about throttling: a few INFO lines, never a flood.

A :class:`ThrottleLog` is pure (the caller passes ``now``, seconds): the stage notes each
request refused with a 429, timed out, or answered with a 5xx or a dropped connection,
and each time a model's breaker opens (:meth:`~ThrottleLog.note`), and shows it the
limiter's :class:`~docmill.llm.limits.ModelView` list now and then
(:meth:`~ThrottleLog.observe`: a limit in force that changed by 5 % or more, or changed
its source or scope). :meth:`~ThrottleLog.lines`
returns what is due: at most one line per kind (``rate_limited``, ``timeout``,
``server_error``, ``breaker``, ``limit``) every ``interval_s``, counting what happened
since that kind's last line; the first event of a kind is told at once. ``lines(now,
flush=True)`` tells what is left (the stage's end).

Lines name models, scopes, counts and limits only: never a document, a prompt, an
endpoint or a key.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from docmill.llm.limits import ModelView

KINDS: Final = ("rate_limited", "timeout", "server_error", "breaker", "limit")
INTERVAL_S: Final = 30.0
"""At most one line per kind this often (seconds)."""
_CHANGE: Final = 0.05  # a limit that moved by less than this share is not told again

_WHAT: Final = {
    "rate_limited": "refused with 429 (rate limited; retried)",
    "timeout": "timed out (retried)",
    "server_error": "answered 5xx or dropped the connection (retried)",
}


@dataclass
class _Kind:
    counts: Counter[str] = field(default_factory=Counter)  # by model
    since: float = math.inf  # the first event counted
    told_at: float = -math.inf


def _per_min(value: float, source: str, unit: str) -> str:
    if not value:
        return f"no {unit}/min limit known"
    by = {"429": "429 figures"}.get(source, source)
    return f"{value:,.0f} {unit}/min ({by})"


def describe(view: ModelView) -> str:
    """One model's limits as a log line tells them."""
    return (
        f"{view.model}: {_per_min(view.rpm, view.rpm_source, 'requests')}, "
        f"{_per_min(view.tpm, view.tpm_source, 'tokens')}, counted per {view.scope}"
    )


class ThrottleLog:
    """Rate-limited INFO lines about throttling. Not thread-safe: one owner."""

    def __init__(self, interval_s: float = INTERVAL_S) -> None:
        self.interval_s = interval_s
        self._kinds = {kind: _Kind() for kind in KINDS}
        self._told: dict[str, tuple[str, float, str, float, str]] = {}  # limits last told
        self._changed: dict[str, ModelView] = {}  # limits to tell

    def note(self, kind: str, model: str, now: float) -> None:
        """One event of ``kind`` (``rate_limited``, ``timeout``, ``server_error``, or
        ``breaker``: the model's breaker opened, or opened again after a failed probe)."""
        entry = self._kinds[kind]
        entry.counts[model] += 1
        entry.since = min(entry.since, now)

    def observe(self, views: Sequence[ModelView], now: float) -> None:
        """The limiter's view now: limits that changed."""
        for view in views:
            told = self._told.get(view.model)
            key = (view.scope, view.rpm, view.rpm_source, view.tpm, view.tpm_source)
            if told is None:
                if view.rpm or view.tpm:
                    self._changed[view.model] = view
                    self._kinds["limit"].since = min(self._kinds["limit"].since, now)
                continue
            if key[0::2] != told[0::2] or _moved(view.rpm, told[1]) or _moved(view.tpm, told[3]):
                self._changed[view.model] = view
                self._kinds["limit"].since = min(self._kinds["limit"].since, now)

    def lines(self, now: float, *, flush: bool = False) -> list[str]:
        """The lines due now (``flush``: everything left, whatever the interval)."""
        out: list[str] = []
        for kind in KINDS:
            entry = self._kinds[kind]
            pending = self._changed if kind == "limit" else entry.counts
            if not pending or (not flush and now - entry.told_at < self.interval_s):
                continue
            out.append(self._line(kind, entry, now))
            entry.counts.clear()
            entry.since = math.inf
            entry.told_at = now
        return out

    def _line(self, kind: str, entry: _Kind, now: float) -> str:
        span = f"{max(1.0, now - entry.since):,.0f} s"
        if kind == "limit":
            views = [self._changed[m] for m in sorted(self._changed)]
            for view in views:
                self._told[view.model] = (
                    view.scope, view.rpm, view.rpm_source, view.tpm, view.tpm_source
                )
            self._changed.clear()
            return "llm limits: " + "; ".join(describe(v) for v in views)
        total = sum(entry.counts.values())
        models = ", ".join(f"{m} {n:,}" for m, n in sorted(entry.counts.items()))
        if kind == "breaker":
            return (
                f"llm breaker opened {total:,} time{'s' if total != 1 else ''} in {span} "
                f"({models}): after 5xx, timeouts or dropped connections in a row nothing is "
                "sent to that model until a probe succeeds"
            )
        return f"llm throttled: {total:,} request{'s' if total != 1 else ''} {_WHAT[kind]} in {span} ({models})"


def _moved(value: float, before: float) -> bool:
    if not before:
        return bool(value)
    return abs(value - before) >= _CHANGE * before


def published(saved: dict[str, Any] | None, live: bool) -> dict[str, Any] | None:
    """The limits per model a run's stage wrote to its ledger (``Store.save_llm_limits``),
    as ``docmill status`` and the service show them: ``updated_at``, ``live`` (a run is
    going now) and ``models``; with no run going (it ended, or was killed) nothing is in
    flight or waiting, whatever was last written. None: the stage never wrote any."""
    if saved is None:
        return None
    models = list(saved.get("models") or [])
    if not live:
        models = [{**m, "in_flight": 0, "waiting": 0} for m in models]
    return {"updated_at": saved.get("updated_at"), "live": live, "models": models}
