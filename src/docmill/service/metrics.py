"""Prometheus metrics, one registry per app (never the process-global one)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import generate_latest

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class ServiceMetrics:
    def __init__(self, queue_depth: Callable[[], float]) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.documents = Counter(
            "docmill_documents", "Documents finished, by status and path (extract|job)",
            ["status", "path"], registry=r,
        )
        self.pages = Counter("docmill_pages", "Pages of done documents", ["path"], registry=r)
        self.failures = Counter(
            "docmill_failures", "Failed documents by failure category", ["category"], registry=r
        )
        self.requests = Histogram(
            "docmill_request_seconds", "HTTP request latency", ["method", "route", "status"],
            registry=r,
        )
        self.llm_tokens = Counter(
            "docmill_llm_tokens", "LLM tokens billed, by direction (in|out)", ["direction"],
            registry=r,
        )
        self.llm_cost = Counter("docmill_llm_cost_usd", "LLM spend in US dollars", registry=r)
        self.jobs = Counter("docmill_jobs_finished", "Jobs finished by status", ["status"], registry=r)
        self.page_images = Counter(
            "docmill_page_images", "Page images answered, by source (rendered|cached)", ["source"],
            registry=r,
        )
        depth = Gauge("docmill_queue_depth", "Jobs waiting in the queue", registry=r)
        depth.set_function(queue_depth)

    def document(self, status: str, path: str, pages: int | None, category: str | None) -> None:
        self.documents.labels(status=status, path=path).inc()
        if status == "done" and pages:
            self.pages.labels(path=path).inc(pages)
        if category and status == "failed":
            self.failures.labels(category=category).inc()

    def job_finished(self, status: str, progress: dict[str, Any]) -> None:
        self.jobs.labels(status=status).inc()
        for state, n in (progress.get("counts") or {}).items():
            if n and state in ("done", "failed", "skipped"):
                self.documents.labels(status=state, path="job").inc(n)
        if progress.get("pages"):
            self.pages.labels(path="job").inc(progress["pages"])
        for category, n in (progress.get("failures") or {}).items():
            self.failures.labels(category=str(category)).inc(n)
        self.llm_tokens.labels(direction="in").inc(progress.get("tokens_in", 0))
        self.llm_tokens.labels(direction="out").inc(progress.get("tokens_out", 0))
        self.llm_cost.inc(progress.get("cost_usd", 0.0))

    def render(self) -> bytes:
        return generate_latest(self.registry)
