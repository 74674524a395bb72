"""``docmill_request_seconds``: the plain ASGI ``TimedRequests`` middleware (it replaced a
``BaseHTTPMiddleware``) labels each request by method, route and status, a stream when
it starts, and 500 when the app raised before answering."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.types import Message, Receive, Scope, Send

from docmill.service.app import TimedRequests, create_app
from docmill.service.metrics import ServiceMetrics
from docmill.settings import load_settings
from engine_kit import REAL
from service_kit import server_in_thread

PDF = REAL / "pdfplumber" / "examples" / "pdfs" / "background-checks.pdf"


def _count(metrics: ServiceMetrics, method: str, route: str, status: str) -> float:
    value = metrics.registry.get_sample_value(
        "docmill_request_seconds_count", {"method": method, "route": route, "status": status}
    )
    return value or 0.0


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, ServiceMetrics]]:
    settings = load_settings(overrides={
        "service.data_dir": str(tmp_path / "data"), "service.job_workers": "0",
        "service.extract_workers": "1", "service.auth": "none",
    })
    app = create_app(settings)
    with server_in_thread(app) as base:
        yield base, app.state.services.metrics


def test_requests_are_timed_by_route_and_status(served: tuple[str, ServiceMetrics]) -> None:
    base, metrics = served
    with httpx.Client(base_url=base, timeout=120) as client:
        assert client.post("/v1/extract", files={"file": ("a.pdf", PDF.read_bytes())}).status_code == 200
        assert client.get("/v1/jobs/nope").status_code == 404
        assert client.get("/nowhere").status_code == 404
        assert client.post("/v1/extract").status_code == 422
    assert _count(metrics, "POST", "/v1/extract", "200") == 1
    assert _count(metrics, "GET", "/v1/jobs/{job_id}", "404") == 1
    assert _count(metrics, "GET", "unmatched", "404") == 1
    assert _count(metrics, "POST", "/v1/extract", "422") == 1


def _run(app: Any, path: str = "/x") -> list[Message]:
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    scope: dict[str, Any] = {"type": "http", "method": "GET", "path": path, "headers": []}
    asyncio.run(app(scope, receive, send))
    return sent


def test_a_raising_app_counts_500_and_a_stream_counts_once() -> None:
    metrics = ServiceMetrics(lambda: 0.0)

    async def raising(scope: Scope, receive: Receive, send: Send) -> None:
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        _run(TimedRequests(raising, metrics))
    assert _count(metrics, "GET", "unmatched", "500") == 1

    class Route:
        path = "/v1/stream"

    async def streaming(scope: Scope, receive: Receive, send: Send) -> None:
        scope["route"] = Route()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for _ in range(3):
            await send({"type": "http.response.body", "body": b"x", "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    sent = _run(TimedRequests(streaming, metrics))
    assert [m["type"] for m in sent].count("http.response.body") == 4  # passed on untouched
    assert _count(metrics, "GET", "/v1/stream", "200") == 1

    async def late_failure(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        raise RuntimeError("after the start")

    with pytest.raises(RuntimeError):
        _run(TimedRequests(late_failure, metrics))
    assert _count(metrics, "GET", "unmatched", "200") == 1  # counted at its start, once
    assert _count(metrics, "GET", "unmatched", "500") == 1
