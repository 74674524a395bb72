"""JSON shapes of jobs and records (pure functions of ledger data and the clock)."""

from __future__ import annotations

import json
from typing import Any

from docmill.llm.watch import published
from docmill.model import ProcessOutcome, Record
from docmill.model.content import content_json_utf8, encode_content_plain
from docmill.service.jobs import Job
from docmill.service.public import PublicNames
from docmill.service.retention import Refusal


def job_view(
    job: Job, progress: dict[str, Any], now: float, names: PublicNames, *, retry: Refusal | None,
    llm_budget_usd: float | None = None,
) -> dict[str, Any]:
    """Status, counts, pages, rates, ETA and spend of one job; its source and error
    named as ``names`` shows them (never a server path); ``retry`` is why a retry would
    be refused now (``retention.retry_refusal``), None when it would be accepted;
    ``llm_budget_usd``: the server's ``llm.budget_usd`` when the job runs the LLM stage
    (None: it does not)."""
    progress = progress or job.counts
    if job.source_kind == "path" and job.sources:
        source = names.folder(job.sources[0])
    else:
        source = names.text(job.description)
    counts: dict[str, int] = dict(progress.get("counts") or {})
    finished = sum(counts.get(s, 0) for s in ("done", "failed", "skipped"))
    remaining = counts.get("pending", 0) + counts.get("running", 0)
    pages = int(progress.get("pages") or 0)
    elapsed = ((job.finished_at or now) - job.started_at) if job.started_at else 0.0
    minutes = elapsed / 60.0
    docs_min = finished / minutes if minutes > 0 else None
    pages_min = pages / minutes if minutes > 0 else None
    eta_s: float | None
    if job.terminal:
        eta_s = 0.0
    elif docs_min and remaining:
        eta_s = round(remaining / docs_min * 60.0, 1)
    else:
        eta_s = None
    return {
        "id": job.id,
        "status": job.status,
        "source": source,
        "created_at": job.created_at,
        "started_at": job.started_at,
        "finished_at": job.finished_at,
        "settings": job.overrides,
        "counts": counts,
        "total": finished + remaining,
        "pages": pages,
        "docs_per_min": round(docs_min, 2) if docs_min is not None else None,
        "pages_per_min": round(pages_min, 2) if pages_min is not None else None,
        "eta_s": eta_s,
        "cost_usd": float(progress.get("cost_usd") or 0.0),
        "tokens": {"in": progress.get("tokens_in", 0), "out": progress.get("tokens_out", 0)},
        "failures": progress.get("failures") or {},
        "cancel_requested": job.cancel,
        "can_retry": retry is None,
        "retry_refused": retry.to_dict() if retry is not None else None,
        "runs": job.runs,
        "error": names.text(job.error) if job.error else job.error,
        # per delivery the job named: documents done, pending, failed, failures by category
        "deliveries": {
            name: _delivery_counts((progress.get("deliveries") or {}).get(name))
            for name in job.deliveries
        },
        # the LLM stage's limits per model (requests and tokens a minute, where each came
        # from, in flight, waiting, breaker) as the run last wrote them; None: no LLM stage
        "llm_limits": published(progress.get("llm_limits"), job.status == "running"),
        # the LLM stage: spec, budget asked for and in force, spend so far, per class
        "llm": _llm_view(job, progress, counts, llm_budget_usd),
    }


def _llm_view(
    job: Job, progress: dict[str, Any], counts: dict[str, int], default_budget: float | None
) -> dict[str, Any] | None:
    if default_budget is None:
        return None
    cost = float(progress.get("cost_usd") or 0.0)
    labels: dict[str, int] = dict(progress.get("labels") or {})
    done = counts.get("done", 0)
    asked = job.budget_usd if job.budget_usd is not None else default_budget
    in_force = round(job.budget_in_force, 6) if job.budget_in_force is not None else None
    return {
        "spec": job.llm_spec,
        "budget_usd": asked,
        # what the last run got: the budget within the key's monthly limit
        "budget_in_force_usd": in_force,
        "cost_usd": round(cost, 6),
        "budget_used": round(cost / in_force, 4) if in_force else None,
        "cost_per_document_usd": round(cost / done, 6) if done else None,
        "tokens": {"in": int(progress.get("tokens_in") or 0), "out": int(progress.get("tokens_out") or 0)},
        "calls": int(progress.get("llm_calls") or 0),  # billed answers, over every run
        "labels": labels,
        "stopped_at_budget": job.status == "stopped_budget",
    }


def _delivery_counts(found: dict[str, Any] | None) -> dict[str, Any]:
    found = found or {}
    return {
        "kind": found.get("kind"),
        "done": int(found.get("done", 0)),
        "pending": int(found.get("pending", 0)),
        "failed": int(found.get("failed", 0)),
        "failures": dict(found.get("failures") or {}),
    }


def record_view(
    record: Record, names: PublicNames, spend: tuple[str | None, float, int, int]
) -> dict[str, Any]:
    """The full record: text per page, tables, class, fields, error, cost (source and
    error message as ``names`` shows them)."""
    data = names.record(record).to_dict()
    label, cost, tokens_in, tokens_out = spend
    data.setdefault("class", label)
    data["cost_usd"] = cost
    data["tokens"] = {"in": tokens_in, "out": tokens_out}
    return data


def outcome_json(outcome: ProcessOutcome, name: str) -> bytes:
    """``POST /v1/extract``'s answer, the record of one document, as UTF-8 JSON: the
    outcome's own fields (``source``, ``status``, ``mime``, ``pages``, ``error``,
    ``page_range`` when some pages were asked for, ``timings``), then its content
    (``text``, ``metadata``, ``tables``, ``markdown``...) spliced in as the worker encoded
    it, never decoded here: with tables that JSON is ~96 KB a page, and decoding it,
    deep-copying it and encoding it again cost the event loop ~15 ms an answer. The
    same object the answer was before (keys in another order: the content's last); a non-finite number
    in the content (NaN, Infinity: not JSON) is answered as null, as before."""
    head: dict[str, Any] = {
        "source": name,
        "status": outcome.status.value,
        "mime": outcome.mime,
        "pages": outcome.pages,
        "error": outcome.error.to_dict() if outcome.error else None,
    }
    if outcome.page_range is not None:  # kept when the request asked for some pages
        head["page_range"] = {"start": outcome.page_range.start, "stop": outcome.page_range.stop}
    head["timings"] = {"parse_s": round(outcome.parse_s, 4)}
    body = _content_utf8(outcome)
    if b"NaN" in body or b"Infinity" in body:  # rare: maybe a number, maybe words
        body = json.dumps(
            json.loads(body, parse_constant=lambda _token: None), ensure_ascii=False
        ).encode("utf-8")
    start = json.dumps(head, ensure_ascii=False).encode("utf-8")
    return start if body == b"{}" else start[:-1] + b", " + body[1:]


def _content_utf8(outcome: ProcessOutcome) -> bytes:
    """The content's JSON: as sealed (uncompressed already when small), else encoded
    from the outcome's fields (a failure the pool made is not sealed)."""
    if outcome.content is not None:
        plain = outcome.content_utf8()
        return plain if plain is not None else content_json_utf8(outcome.content)
    return encode_content_plain(outcome.text, outcome.metadata, **outcome.extra)[1]
