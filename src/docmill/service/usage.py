"""What each key spends on LLM calls, per calendar month (UTC), and the budget a job's
run may spend (``service.db``, table ``key_spend``).

A job's run spends against ``llm.budget_usd``, the stage's hard cap for the job's own
folder (its ledger sums what every run of the job spent). The service sets it to the
job's ``budget_usd`` (else the server's ``llm.budget_usd``) clamped by
:func:`run_budget` to what is left of the key's monthly limit (its own, else its tier's
``monthly_budget_usd``; none in local mode): the job's spend so far plus what the key
has left this month, less what the key's other running jobs may still spend (their
budgets in force less what they spent). A run never starts with more than the key has.

Spend is recorded from each job's ledger: the runner's heartbeat (every second) and the
job's end hand the job's total to :meth:`SpendLedger.record`, which adds what is new to
the current month's row of (key, month, job); a job that runs over a month's end has
its spend split where it was recorded. ``GET /v1/usage`` reads it (:meth:`usage`).
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from docmill.service.errors import ApiError
from docmill.service.jobs import open_service_db
from docmill.service.keys import KeyStore
from docmill.service.tiers import Tier

MIGRATIONS: tuple[tuple[str, str], ...] = (
    (
        "usage_0001_key_spend",
        """
        CREATE TABLE key_spend (
            key_id TEXT NOT NULL,
            period TEXT NOT NULL,
            job_id TEXT NOT NULL,
            cost_usd REAL NOT NULL DEFAULT 0,
            tokens_in INTEGER NOT NULL DEFAULT 0,
            tokens_out INTEGER NOT NULL DEFAULT 0,
            updated_at REAL NOT NULL,
            PRIMARY KEY (key_id, period, job_id)
        );
        CREATE INDEX key_spend_job ON key_spend(job_id)
        """,
    ),
)


def period_of(now: float) -> str:
    """The calendar month (UTC) ``now`` falls in: ``"2026-12"``."""
    return time.strftime("%Y-%m", time.gmtime(now))


def monthly_limit(tier_limit: float, key_limit: float | None) -> float | None:
    """A key's monthly LLM limit: its own when set, else its tier's (0: none); None: no limit."""
    if key_limit is not None:
        return key_limit
    return tier_limit if tier_limit > 0 else None


def run_budget(
    asked_usd: float, job_spent_usd: float, limit_usd: float | None, key_spent_usd: float,
    others_outstanding_usd: float = 0.0,
) -> float:
    """What ``llm.budget_usd`` a job's run gets (pure): the budget asked for, at most the
    job's spend so far plus what the key has left this month (``limit_usd`` less its
    spend this month, this job's included, less what its other running jobs may still
    spend). ``limit_usd`` None: no monthly limit."""
    if limit_usd is None:
        return asked_usd
    left = max(0.0, limit_usd - key_spent_usd - others_outstanding_usd)
    return max(0.0, min(asked_usd, job_spent_usd + left))


def resume_refusal(
    asked_usd: float, job_spent_usd: float, per_document_usd: float | None,
    limit_usd: float | None, key_spent_usd: float, others_outstanding_usd: float = 0.0,
) -> ApiError | None:
    """Why a resume (or a new run) of a job at ``asked_usd`` would be refused, or None
    (pure). Its run gets :func:`run_budget`; what that leaves beyond the job's spend must
    pay for at least one document (``per_document_usd``: the job's spend per done
    document, else the estimate's; None: not known, then only nothing left refuses), or
    the run stops at its budget again at once. Refused by what binds: the key's month
    (409 ``monthly_budget_spent`` when nothing is left, ``monthly_budget_low`` when less
    than a document is), else the budget asked for (422 ``budget_too_low``)."""
    if limit_usd is not None and key_spent_usd >= limit_usd:
        return ApiError(
            409, "monthly_budget_spent",
            f"the key has spent its monthly LLM limit ({limit_usd:g} USD) this month",
            {"monthly_budget_usd": limit_usd, "spent_usd": round(key_spent_usd, 6)},
        )
    room = run_budget(asked_usd, job_spent_usd, limit_usd, key_spent_usd, others_outstanding_usd)
    room -= job_spent_usd
    need = per_document_usd or 0.0
    if room > 0 and room >= need:
        return None
    doc = f"~{need:.6g} USD, the job's cost per document" if need else "anything"
    if limit_usd is not None:
        left = max(0.0, limit_usd - key_spent_usd - others_outstanding_usd)
        if left < asked_usd - job_spent_usd:  # the month binds
            held = (f", {others_outstanding_usd:.6g} held by its other running jobs"
                    if others_outstanding_usd > 0 else "")
            return ApiError(
                409, "monthly_budget_low",
                f"the key has {left:.6g} USD left of its monthly LLM limit ({limit_usd:g} USD, "
                f"{key_spent_usd:.6g} spent this month{held}): less than one document "
                f"({doc}), so the job would stop at its budget again at once; raise the key's "
                "limit (docmill keys budget) or resume next month",
                {"monthly_budget_usd": limit_usd, "spent_usd": round(key_spent_usd, 6),
                 "held_usd": round(others_outstanding_usd, 6), "left_usd": round(left, 6),
                 "per_document_usd": per_document_usd},
            )
    least = round(job_spent_usd + need, 6)
    return ApiError(
        422, "budget_too_low",
        f"a budget of {asked_usd:g} USD leaves {max(0.0, asked_usd - job_spent_usd):.6g} USD beyond "
        f"the {job_spent_usd:.6g} USD the job has spent, less than one document ({doc}): "
        f"ask for at least {least:g} USD",
        {"budget_usd": asked_usd, "job_spent_usd": round(job_spent_usd, 6),
         "per_document_usd": per_document_usd, "least_budget_usd": least},
    )


class KeyLimits:
    """Each key's monthly LLM limit, read when asked (a key's own, else its tier's);
    ``keys`` None (local mode): no limit."""

    def __init__(self, keys: KeyStore | None, tiers: Mapping[str, Tier]) -> None:
        self._keys = keys
        self._tiers = tiers

    def of(self, key_id: str) -> tuple[float | None, str | None]:
        """(the limit in USD, ``"key"`` or ``"tier"``); (None, None): no limit."""
        key = self._keys.get(key_id) if self._keys is not None else None
        if key is None:
            return None, None
        if key.monthly_budget_usd is not None:
            return key.monthly_budget_usd, "key"
        tier = self._tiers.get(key.tier)
        limit = monthly_limit(tier.monthly_budget_usd if tier else 0.0, None)
        return limit, ("tier" if limit is not None else None)


def spent_in(conn: sqlite3.Connection, key_id: str, period: str) -> float:
    """What ``key_id`` spent in ``period`` (any connection to ``service.db``)."""
    row = conn.execute(
        "SELECT COALESCE(SUM(cost_usd), 0) FROM key_spend WHERE key_id=? AND period=?",
        (key_id, period),
    ).fetchone()
    return float(row[0])


def job_totals_in(conn: sqlite3.Connection, job_ids: Iterable[str]) -> dict[str, float]:
    """What has been recorded for each of ``job_ids``, every month together."""
    ids = list(job_ids)
    if not ids:
        return {}
    marks = ",".join("?" * len(ids))
    rows = conn.execute(
        f"SELECT job_id, SUM(cost_usd) FROM key_spend WHERE job_id IN ({marks}) GROUP BY job_id", ids
    ).fetchall()
    return {job_id: float(cost) for job_id, cost in rows}


@dataclass(frozen=True, slots=True)
class KeyUsage:
    key_id: str
    period: str
    cost_usd: float
    tokens_in: int
    tokens_out: int
    jobs: list[dict[str, Any]]

    def to_dict(self, limit_usd: float | None, limit_source: str | None) -> dict[str, Any]:
        return {
            "key_id": self.key_id,
            "period": self.period,
            "monthly_budget_usd": limit_usd,
            "monthly_budget_source": limit_source,
            "spent_usd": round(self.cost_usd, 6),
            "left_usd": None if limit_usd is None else round(max(0.0, limit_usd - self.cost_usd), 6),
            "tokens": {"in": self.tokens_in, "out": self.tokens_out},
            "jobs": self.jobs,
        }


class SpendLedger:
    """The ``key_spend`` table; one connection serialised by a lock (thread-safe)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        self._lock = threading.Lock()

    @classmethod
    def open(cls, data_dir: str | Path) -> SpendLedger:
        return cls(open_service_db(data_dir, MIGRATIONS))

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def record(
        self, key_id: str, job_id: str, cost_usd: float, tokens_in: int, tokens_out: int,
        now: float | None = None,
    ) -> None:
        """The job's totals as its ledger holds them now: what is new since the last
        record goes to the current month (totals never go down)."""
        now = time.time() if now is None else now
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                seen = self._conn.execute(
                    "SELECT COALESCE(SUM(cost_usd), 0), COALESCE(SUM(tokens_in), 0), "
                    "COALESCE(SUM(tokens_out), 0) FROM key_spend WHERE job_id=?",
                    (job_id,),
                ).fetchone()
                d_cost = max(0.0, cost_usd - float(seen[0]))
                d_in = max(0, tokens_in - int(seen[1]))
                d_out = max(0, tokens_out - int(seen[2]))
                if d_cost > 0 or d_in > 0 or d_out > 0:
                    self._conn.execute(
                        "INSERT INTO key_spend (key_id, period, job_id, cost_usd, tokens_in, "
                        "tokens_out, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?) "
                        "ON CONFLICT(key_id, period, job_id) DO UPDATE SET "
                        "cost_usd=cost_usd+excluded.cost_usd, "
                        "tokens_in=tokens_in+excluded.tokens_in, "
                        "tokens_out=tokens_out+excluded.tokens_out, updated_at=excluded.updated_at",
                        (key_id, period_of(now), job_id, d_cost, d_in, d_out, now),
                    )
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def job_total(self, job_id: str) -> float:
        """What has been recorded for a job, every month together."""
        with self._lock:
            row = self._conn.execute(
                "SELECT COALESCE(SUM(cost_usd), 0) FROM key_spend WHERE job_id=?", (job_id,)
            ).fetchone()
        return float(row[0])

    def job_totals(self, job_ids: Iterable[str]) -> dict[str, float]:
        with self._lock:
            return job_totals_in(self._conn, job_ids)

    def spent(self, key_id: str, period: str) -> float:
        with self._lock:
            return spent_in(self._conn, key_id, period)

    def usage(self, key_id: str, period: str) -> KeyUsage:
        with self._lock:
            rows = self._conn.execute(
                "SELECT job_id, cost_usd, tokens_in, tokens_out FROM key_spend "
                "WHERE key_id=? AND period=? ORDER BY updated_at DESC, job_id",
                (key_id, period),
            ).fetchall()
        jobs = [
            {"id": job_id, "cost_usd": round(float(cost), 6), "tokens": {"in": int(tin), "out": int(tout)}}
            for job_id, cost, tin, tout in rows
        ]
        return KeyUsage(
            key_id, period,
            sum(float(r[1]) for r in rows), sum(int(r[2]) for r in rows), sum(int(r[3]) for r in rows),
            jobs,
        )
