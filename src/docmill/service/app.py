"""``create_app(settings)``: the FastAPI app, its lifespan (extract pool, job runner) and
the unversioned routes (``/healthz``, ``/readyz``, ``/metrics``)."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Response
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from docmill import __version__
from docmill.service.auth import RateLimitHeaders, build_auth, document_security
from docmill.service.dashboard import router as dashboard_router
from docmill.service.deps import Authenticate, local_caller
from docmill.service.errors import ApiError, install_error_handlers
from docmill.service.extract import ExtractService
from docmill.service.guard import BodyLimits, Guard
from docmill.service.jobrunner import JobRunner
from docmill.service.jobs import JobLedger
from docmill.service.metrics import CONTENT_TYPE, ServiceMetrics
from docmill.service.pages import router as pages_router
from docmill.service.routes import router
from docmill.service.specs import load_published
from docmill.service.state import Services
from docmill.service.tiers import load_tiers
from docmill.service.usage import KeyLimits, SpendLedger
from docmill.settings import Settings


def create_app(settings: Settings, *, authenticate: Authenticate | None = None) -> FastAPI:
    """The service over ``settings.service``; ``authenticate`` (an async ``Request ->
    Caller``) decides who calls. Without it ``service.auth`` does: API keys with tier
    limits (``keys``, see ``service/auth.py``) or every request the local caller (``none``)."""
    key_auth = build_auth(settings) if authenticate is None else None
    ledger = JobLedger.open(settings.service.data_dir)
    metrics = ServiceMetrics(lambda: float(ledger.queue_depth()))
    runner: JobRunner | None = None
    if settings.service.job_workers > 0:
        runner = JobRunner(
            settings, ledger, settings.service.job_workers,
            on_finished=lambda r: metrics.job_finished(r.status, r.progress),
        )
    tiers = key_auth.tiers if key_auth is not None else load_tiers(settings.service.tiers_file)
    specs = load_published(settings)  # a spec that cannot be used stops the start
    spend = SpendLedger.open(settings.service.data_dir)
    limits = KeyLimits(key_auth.keys if key_auth is not None else None, tiers)
    svc = Services(settings, ledger, metrics, ExtractService(settings), runner, tiers, specs, spend, limits)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        quiet_refusals_in_access_log()
        svc.extract.start()
        if svc.runner is not None:
            svc.runner.start()
        try:
            yield
        finally:
            if svc.runner is not None:
                await run_in_threadpool(svc.runner.stop)
            await run_in_threadpool(svc.extract.stop)
            if key_auth is not None:
                await key_auth.close()
            spend.close()
            ledger.close()

    app = FastAPI(
        title="docmill", version=__version__, lifespan=lifespan,
        description="Turn piles of documents into data: one document at once, or jobs.",
    )
    app.state.services = svc
    app.state.authenticate = authenticate or key_auth or local_caller
    install_error_handlers(app)
    # innermost first: the guard settles the caller and the body cap before any route
    # reads a byte; RateLimitHeaders then stamps every answer, the guard's refusals too
    app.add_middleware(
        Guard, authenticate=app.state.authenticate, limits=BodyLimits.from_settings(settings.service)
    )
    app.add_middleware(RateLimitHeaders)
    if key_auth is not None:
        document_security(app)

    app.add_middleware(TimedRequests, metrics=metrics)

    @app.get("/healthz", summary="The process answers")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", summary="The ledger is reachable and the runners are alive")
    async def readyz() -> dict[str, Any]:
        checks = {
            "ledger": await run_in_threadpool(ledger.ping),
            "job_runner": svc.runner.alive if svc.runner is not None else True,
            "extract_pool": svc.extract.alive,
        }
        if not all(checks.values()):
            raise ApiError(503, "not_ready", "the service is not ready", checks)
        return {"status": "ready", "checks": checks}

    @app.get("/metrics", summary="Prometheus metrics", response_class=Response)
    async def metrics_route() -> Response:
        body = await run_in_threadpool(metrics.render)
        return Response(body, media_type=CONTENT_TYPE)

    app.include_router(router)
    app.include_router(pages_router)
    app.include_router(dashboard_router)
    return app


class TimedRequests:
    """``docmill_request_seconds`` by method, route and status: from the request's arrival
    to its answer's start (a stream's body is not waited for), 500 when the app raised
    before answering. A plain ASGI middleware: Starlette's ``BaseHTTPMiddleware`` (what
    ``@app.middleware("http")`` makes) runs each request through a task group and memory
    streams, measurable CPU a request on a busy service."""

    def __init__(self, app: ASGIApp, metrics: ServiceMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        observed = False

        def observe(status: int) -> None:
            nonlocal observed
            observed = True
            path = getattr(scope.get("route"), "path", "unmatched")
            self.metrics.requests.labels(scope["method"], path, str(status)).observe(
                time.perf_counter() - started
            )

        async def timed_send(message: Message) -> None:
            if message["type"] == "http.response.start" and not observed:
                observe(int(message["status"]))
            await send(message)

        try:
            await self.app(scope, receive, timed_send)
        finally:
            if not observed:
                observe(500)


class _NoRefusals(logging.Filter):
    """Drops uvicorn's access line for a 401 or 429: refused requests are counted (the
    auth failure summary, ``docmill_request_seconds`` by status), never a line each."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        return not (isinstance(args, tuple) and len(args) >= 5 and args[4] in (401, 429))


def quiet_refusals_in_access_log() -> None:
    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, _NoRefusals) for f in access.filters):
        access.addFilter(_NoRefusals())


def app_from_env() -> FastAPI:
    """The app factory of each ``docmill serve --workers N`` worker process."""
    from docmill.service.server import settings_from_env

    return create_app(settings_from_env())
