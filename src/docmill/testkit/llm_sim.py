"""A local OpenAI-compatible LLM server that behaves like a paid API, for tests and benches.

Run it::

    python -m docmill.testkit.llm_sim --port 8089 --rpm 60 --tpm 40000 \\
        --latency 2:30 --error-rate 0.01 --timeout-rate 0.005 --seed 7
    python -m docmill.testkit.llm_sim --provider-like --ratelimit-headers   # issue 15's server

or in-process::

    with serve_in_thread(SimConfig(rpm=5, time_scale=0.01)) as sim:
        client_base_url = sim.base_url          # "http://127.0.0.1:PORT/v1"
        sim.set_outage(True)

Endpoints: ``POST /v1/chat/completions`` (answers from ``llm_answers``: deterministic,
derived from the prompt), ``GET /v1/models``, ``GET /_sim/stats`` (totals; ``by_model``:
the answers and the tokens billed per model, what a provider's invoice says; and per
simulated minute: ``requests``, ``admitted``, ``admitted:MODEL``, ``ok``, ``429``,
``5xx``, ``timeouts``), ``POST /_sim/outage``
``{"on": true}``, ``POST /_sim/config`` (any ``SimConfig`` field), ``POST /_sim/reset``
(clears stats and rate windows).

What happens to a chat request, in order:

1. malformed JSON or no ``model``/``messages`` → 400 ``invalid_request_error``;
2. outage on → 503;
3. rate limits, per API key (the ``Authorization`` bearer token; none → ``anonymous``)
   and, with ``limit_scope="model"`` (the default), per model as well; with
   ``limit_scope="key"`` every model on a key draws on the key's one window, as at
   providers that count per key or organisation. A sliding window of one simulated
   minute holds the admitted requests and their total tokens (prompt + the answer's
   completion). Past ``rpm`` requests or ``tpm`` tokens → 429 with ``Retry-After`` (whole
   seconds, at least 1), ``retry-after-ms`` (exact, as OpenAI sends) and OpenAI's body:
   ``Rate limit reached for MODEL in organization ORG on requests per min (RPM): Limit
   90, Used 90, Requested 1. Please try again in 1.2s.`` (key scope: ``Rate limit reached
   in organization ORG on …``, naming no model; ``limit_figures=False``: no Limit, Used
   or Requested). With ``ratelimit_headers`` every admitted answer (and every 429)
   carries OpenAI's ``x-ratelimit-limit-requests``, ``-remaining-requests`` and
   ``-reset-requests`` (a duration such as ``"1m0s"``, ``"850ms"``: until the window is
   back to its full allowance), and the three ``-tokens`` ones, as counted when the
   request was admitted. A request larger than ``tpm`` alone → 400 ``request_too_large``
   (waiting would never help). Rejected requests use no quota;
4. one draw from the seeded generator of faults (its own, so the n-th admitted request
   meets the same fate in every run): below ``timeout_rate`` the server holds the
   request for ``hang_s`` (or until the client goes away) and never answers; below
   ``timeout_rate + error_rate`` it answers 500, 502 or 503 after the latency;
5. latency: uniform, or log-normal whose 1st..99th percentiles span ``latency_min_s ..
   latency_max_s`` (clipped to that range; its median is their geometric mean); a share
   ``latency_tail_rate`` is drawn uniform in ``latency_tail_min_s .. latency_tail_max_s``
   instead (the slow tail); every sleep and the rate-limit window are multiplied by
   ``time_scale`` (0.01 turns a minute into 0.6 s);
6. 200 with the answer (cut to the request's ``max_tokens``, ``finish_reason: "length"``,
   as providers do); for a JSON ``response_format``, a share ``invalid_json_rate`` of
   answers is deliberately invalid JSON (fenced, truncated or single-quoted), and a share
   ``off_schema_rate`` is valid JSON that does not fit the schema (the answer wrapped as
   ``{"result": ...}``: no label, no fields). Every 200 is billed: ``/_sim/stats``
   ``by_model`` holds prompt and completion tokens and answers per model, counted as the
   answer is written (a client that dies before reading it is billed all the same).

``SimConfig.provider_like()`` is the server of issue 15: 90 requests and 60,000 tokens a
minute per key shared by both models, latency log-normal with median 1.5 s and 5 % at
8-20 s, 3 % 5xx, 1 % hung until the client gives up, 2 % malformed JSON answers.

The HTTP/1.1 server is plain asyncio streams (keep-alive, ``Content-Length`` bodies, no
chunked uploads), so it has no dependency and holds thousands of connections.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import math
import random
import threading
import time
from collections import Counter, deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from docmill.testkit.llm_answers import Answer, answer, corrupt_json

_MAX_HEADER: Final = 64 * 1024
_MAX_BODY: Final = 32 * 1024 * 1024
_REASONS: Final = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    411: "Length Required",
    413: "Payload Too Large",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
}
_Z99: Final = 2.326  # the 99th percentile of the standard normal


@dataclass(frozen=True)
class SimConfig:
    """How the simulated provider behaves; 0 means unlimited for ``rpm`` and ``tpm``."""

    rpm: int = 0
    tpm: int = 0
    latency_min_s: float = 0.0
    latency_max_s: float = 0.0
    latency_dist: Literal["uniform", "lognormal"] = "uniform"
    time_scale: float = 1.0
    error_rate: float = 0.0
    timeout_rate: float = 0.0
    invalid_json_rate: float = 0.0
    off_schema_rate: float = 0.0  # valid JSON answers that do not fit the schema
    hang_s: float = 600.0  # how long a "timeout" request is held (not scaled)
    seed: int = 0
    models: tuple[str, ...] = ("sim-small", "sim-large")
    limit_scope: Literal["model", "key"] = "model"  # where rpm/tpm are counted (per key always)
    ratelimit_headers: bool = False  # send OpenAI's x-ratelimit-* headers
    limit_figures: bool = True  # a 429's message states Limit, Used and Requested
    organization: str = "org-docmill-sim"  # named in 429 messages
    latency_tail_rate: float = 0.0  # share of answers with a latency from the tail range
    latency_tail_min_s: float = 0.0
    latency_tail_max_s: float = 0.0

    @classmethod
    def provider_like(cls, **changes: Any) -> SimConfig:
        """Issue 15's provider (any field can be changed): 90 requests and 60,000 tokens a
        minute per API key, shared by all models and told to nobody; latency log-normal
        with median 1.5 s (1st-99th percentile 0.5-4.5 s) and 5 % at 8-20 s; 3 % 500/502/
        503, 1 % hung (never answered), 2 % malformed JSON answers; OpenAI's 429 bodies.
        ``ratelimit_headers`` stays off unless asked for."""
        base = cls(
            rpm=90,
            tpm=60_000,
            limit_scope="key",
            latency_min_s=0.5,
            latency_max_s=4.5,
            latency_dist="lognormal",
            latency_tail_rate=0.05,
            latency_tail_min_s=8.0,
            latency_tail_max_s=20.0,
            error_rate=0.03,
            timeout_rate=0.01,
            invalid_json_rate=0.02,
        )
        return dataclasses.replace(base, **changes)

    def __post_init__(self) -> None:
        if self.limit_scope not in ("model", "key"):
            raise ValueError("limit_scope must be 'model' or 'key'")
        if not 0.0 <= self.latency_tail_min_s <= self.latency_tail_max_s:
            raise ValueError("the latency tail needs 0 <= min <= max")
        for name in (
            "error_rate", "timeout_rate", "invalid_json_rate", "latency_tail_rate", "off_schema_rate"
        ):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1, got {value}")
        if self.error_rate + self.timeout_rate > 1.0:
            raise ValueError("error_rate + timeout_rate must not exceed 1")
        if self.rpm < 0 or self.tpm < 0:
            raise ValueError("rpm and tpm must be >= 0")
        if not 0.0 <= self.latency_min_s <= self.latency_max_s:
            raise ValueError("latency needs 0 <= min <= max")
        if self.time_scale <= 0:
            raise ValueError("time_scale must be > 0")
        if self.latency_dist not in ("uniform", "lognormal"):
            raise ValueError("latency_dist must be 'uniform' or 'lognormal'")


@dataclass
class _Window:
    """One (key, model)'s (or, key scope, one key's) admitted requests in the last window:
    (time, tokens)."""

    entries: deque[tuple[float, int]] = field(default_factory=deque)
    tokens: int = 0

    def trim(self, now: float, span: float) -> None:
        while self.entries and self.entries[0][0] <= now - span:
            self.tokens -= self.entries.popleft()[1]

    def tokens_free_at(self, need: int, span: float) -> float:
        """When the oldest entries holding ``need`` tokens have left the window."""
        freed = 0
        for at, used in self.entries:
            freed += used
            if freed >= need:
                return at + span
        return self.entries[-1][0] + span if self.entries else -math.inf


def go_duration(seconds: float) -> str:
    """A duration as OpenAI's headers write it: ``"850ms"``, ``"1.5s"``, ``"6m0s"``."""
    if seconds < 1.0:
        return f"{max(0, round(seconds * 1000))}ms"
    if seconds < 60.0:
        return f"{seconds:.3f}".rstrip("0").rstrip(".") + "s"
    minutes, rest = divmod(seconds, 60.0)
    return f"{int(minutes)}m" + (f"{rest:.3f}".rstrip("0").rstrip(".") or "0") + "s"


@dataclass
class _Stats:
    started: float
    requests: int = 0
    chat_requests: int = 0
    admitted: int = 0  # counted in a rate window (neither refused nor a bad request)
    ok: int = 0
    rate_limited: int = 0
    server_errors: int = 0
    outage_503: int = 0
    timeouts: int = 0
    invalid_json: int = 0
    client_errors: int = 0
    image_parts: int = 0  # image_url parts received (page images)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    off_schema: int = 0
    by_model: dict[str, Counter[str]] = field(default_factory=dict)  # tokens billed per model
    in_flight: int = 0  # admitted chat requests not yet answered
    connections_open: int = 0
    connections_peak: int = 0
    connections_total: int = 0
    by_status: Counter[int] = field(default_factory=Counter)
    per_minute: dict[int, Counter[str]] = field(default_factory=dict)


class _Request:
    __slots__ = ("body", "headers", "method", "path")

    def __init__(self, method: str, path: str, headers: dict[str, str], body: bytes):
        self.method = method
        self.path = path
        self.headers = headers
        self.body = body


class _Response:
    __slots__ = ("body", "headers", "status")

    def __init__(self, status: int, payload: Any, headers: Mapping[str, str] | None = None):
        self.status = status
        self.body = json.dumps(payload).encode()
        self.headers = dict(headers or {})


def _error(status: int, message: str, kind: str, code: str | None = None) -> _Response:
    return _Response(
        status, {"error": {"message": message, "type": kind, "param": None, "code": code}}
    )


class LlmSimulator:
    """The server; lives on one event loop. Use ``serve_in_thread`` from synchronous code."""

    def __init__(self, config: SimConfig | None = None) -> None:
        self.config = config or SimConfig()
        self.outage = False
        self._rng = random.Random(self.config.seed)
        # the fault draws have a generator of their own: the n-th admitted request meets
        # the same fate in every run, however the other draws interleave with timing
        self._fault_rng = random.Random(f"faults:{self.config.seed}")
        self._windows: dict[tuple[str, str], _Window] = {}  # (API key, model)
        self._stats = _Stats(started=time.monotonic())
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()
        self.port = 0
        self.host = "127.0.0.1"

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    # ------------------------------------------------------------------ life cycle

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._server = await asyncio.start_server(
            self._serve_connection, host, port, limit=_MAX_HEADER, backlog=2048
        )
        self.host = host
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._connections):
            task.cancel()
        if self._connections:
            await asyncio.gather(*self._connections, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    # ------------------------------------------------------------------ control

    def set_outage(self, on: bool) -> None:
        self.outage = on

    def reconfigure(self, **changes: Any) -> None:
        """Replace some ``SimConfig`` fields (validated); a new ``seed`` reseeds the draws."""
        self.config = dataclasses.replace(self.config, **changes)
        if "seed" in changes:
            self._rng = random.Random(self.config.seed)
            self._fault_rng = random.Random(f"faults:{self.config.seed}")

    def reset(self) -> None:
        """Clear the stats and every rate-limit window."""
        self._windows.clear()
        old = self._stats
        self._stats = _Stats(
            started=time.monotonic(),
            connections_open=old.connections_open,
            in_flight=old.in_flight,
        )

    def stats(self) -> dict[str, Any]:
        s = self._stats
        return {
            "requests": s.requests,
            "chat_requests": s.chat_requests,
            "admitted": s.admitted,
            "ok": s.ok,
            "rate_limited": s.rate_limited,
            "server_errors": s.server_errors,
            "outage_503": s.outage_503,
            "timeouts": s.timeouts,
            "invalid_json": s.invalid_json,
            "off_schema": s.off_schema,
            "client_errors": s.client_errors,
            "image_parts": s.image_parts,
            "prompt_tokens": s.prompt_tokens,
            "completion_tokens": s.completion_tokens,
            "by_model": {model: dict(counts) for model, counts in sorted(s.by_model.items())},
            "in_flight": s.in_flight,
            "connections_open": s.connections_open,
            "connections_peak": s.connections_peak,
            "connections_total": s.connections_total,
            "by_status": {str(k): v for k, v in sorted(s.by_status.items())},
            "outage": self.outage,
            "per_minute": [
                {"minute": minute, **dict(counts)}
                for minute, counts in sorted(s.per_minute.items())
            ],
            "minute_s": self._minute(),
        }

    # ------------------------------------------------------------------ HTTP

    async def _serve_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        s = self._stats
        s.connections_open += 1
        s.connections_total += 1
        s.connections_peak = max(s.connections_peak, s.connections_open)
        try:
            while True:
                request = await self._read_request(reader, writer)
                if request is None:
                    return
                response = await self._dispatch(request, reader)
                if response is None:  # a hung request whose client went away
                    return
                keep = request.headers.get("connection", "").lower() != "close"
                await self._write(writer, response, keep)
                if not keep:
                    return
        except (
            ConnectionError,
            ValueError,
            asyncio.IncompleteReadError,
            asyncio.LimitOverrunError,
        ):
            return
        except asyncio.CancelledError:
            return
        finally:
            self._stats.connections_open -= 1
            self._connections.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _read_request(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> _Request | None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            return None
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3:
            await self._write(
                writer, _error(400, "bad request line", "invalid_request_error"), False
            )
            return None
        headers: dict[str, str] = {}
        for line in lines[1:]:
            if ":" in line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        if headers.get("transfer-encoding", "").lower() == "chunked":
            await self._write(
                writer, _error(411, "send Content-Length", "invalid_request_error"), False
            )
            return None
        length = int(headers.get("content-length", "0") or 0)
        if length > _MAX_BODY:
            await self._write(writer, _error(413, "body too large", "invalid_request_error"), False)
            return None
        body = await reader.readexactly(length) if length else b""
        return _Request(parts[0].upper(), parts[1].split("?")[0], headers, body)

    async def _write(self, writer: asyncio.StreamWriter, response: _Response, keep: bool) -> None:
        self._stats.by_status[response.status] += 1
        if response.status >= 500:
            self._count("5xx")
        head = [
            f"HTTP/1.1 {response.status} {_REASONS.get(response.status, 'Status')}",
            "Content-Type: application/json",
            f"Content-Length: {len(response.body)}",
            f"Connection: {'keep-alive' if keep else 'close'}",
            *(f"{k}: {v}" for k, v in response.headers.items()),
        ]
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + response.body)
        await writer.drain()

    async def _dispatch(self, request: _Request, reader: asyncio.StreamReader) -> _Response | None:
        self._stats.requests += 1
        route = (request.method, request.path.rstrip("/"))
        if route == ("POST", "/v1/chat/completions"):
            return await self._chat(request, reader)
        if route == ("GET", "/v1/models"):
            data = [
                {"id": m, "object": "model", "owned_by": "docmill-sim"} for m in self.config.models
            ]
            return _Response(200, {"object": "list", "data": data})
        if route == ("GET", "/_sim/stats"):
            return _Response(200, self.stats())
        if route in (("POST", "/_sim/outage"), ("POST", "/_sim/config"), ("POST", "/_sim/reset")):
            return self._control(route[1], request.body)
        return _error(404, f"no route {request.method} {request.path}", "invalid_request_error")

    def _control(self, path: str, body: bytes) -> _Response:
        try:
            payload = json.loads(body or b"{}")
            if not isinstance(payload, dict):
                raise ValueError("expected a JSON object")
            if path == "/_sim/outage":
                self.set_outage(bool(payload.get("on", True)))
            elif path == "/_sim/config":
                if "models" in payload:
                    payload["models"] = tuple(payload["models"])
                self.reconfigure(**payload)
            else:
                self.reset()
        except (ValueError, TypeError) as exc:
            return _error(400, str(exc), "invalid_request_error")
        return _Response(200, {"outage": self.outage, "config": dataclasses.asdict(self.config)})

    # ------------------------------------------------------------------ chat

    def _minute(self) -> float:
        return 60.0 * self.config.time_scale

    def _count(self, key: str) -> None:
        minute = int((time.monotonic() - self._stats.started) // self._minute())
        self._stats.per_minute.setdefault(minute, Counter())[key] += 1

    async def _chat(self, request: _Request, reader: asyncio.StreamReader) -> _Response | None:
        s = self._stats
        s.chat_requests += 1
        self._count("requests")
        try:
            payload = json.loads(request.body)
            messages = payload["messages"]
            if not isinstance(payload.get("model"), str) or not isinstance(messages, list):
                raise ValueError
            response_format = payload.get("response_format")
            s.image_parts += sum(
                1
                for m in messages
                if isinstance(m.get("content"), list)
                for part in m["content"]
                if isinstance(part, dict) and part.get("type") == "image_url"
            )
            reply = answer(messages, response_format if isinstance(response_format, dict) else None)
        except (ValueError, KeyError, TypeError, AttributeError):
            s.client_errors += 1
            return _error(400, "expected JSON with 'model' and 'messages'", "invalid_request_error")
        if self.outage:
            s.outage_503 += 1
            return _error(503, "the service is temporarily unavailable (outage)", "server_error")
        limited, headers = self._admit(
            request, payload["model"], reply.prompt_tokens + reply.completion_tokens
        )
        if limited is not None:
            return limited
        s.admitted += 1
        self._count("admitted")
        self._count(f"admitted:{payload['model']}")
        s.in_flight += 1
        try:
            response = await self._answer(reader, payload, reply)
        finally:
            self._stats.in_flight -= 1
        if response is not None:
            response.headers.update(headers)
        return response

    async def _answer(
        self, reader: asyncio.StreamReader, payload: Any, reply: Answer
    ) -> _Response | None:
        s = self._stats
        draw = self._fault_rng.random()
        config = self.config
        if draw < config.timeout_rate:
            s.timeouts += 1
            self._count("timeouts")
            await self._hang(reader)
            return None
        await asyncio.sleep(self._latency() * config.time_scale)
        if draw < config.timeout_rate + config.error_rate:
            s.server_errors += 1
            status = (500, 502, 503)[self._rng.randrange(3)]
            return _error(status, f"simulated server error {status}", "server_error")
        content = reply.content
        completion_tokens, finish = reply.completion_tokens, "stop"
        limit = payload.get("max_tokens")
        if isinstance(limit, int) and 0 < limit < completion_tokens:  # cut, as providers do
            content, completion_tokens, finish = content[: 4 * limit], limit, "length"
        if reply.is_json and self._rng.random() < config.invalid_json_rate:
            s.invalid_json += 1
            content = corrupt_json(content, self._rng.randrange(3))
        elif reply.is_json and config.off_schema_rate and self._rng.random() < config.off_schema_rate:
            s.off_schema += 1
            content = json.dumps({"result": json.loads(content)}, ensure_ascii=False)
        s.ok += 1
        s.prompt_tokens += reply.prompt_tokens
        s.completion_tokens += completion_tokens
        billed = s.by_model.setdefault(str(payload["model"]), Counter())
        billed["answers"] += 1
        billed["prompt_tokens"] += reply.prompt_tokens
        billed["completion_tokens"] += completion_tokens
        self._count("ok")
        return _Response(
            200,
            {
                "id": f"chatcmpl-sim-{s.chat_requests}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": payload["model"],
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": content},
                        "finish_reason": finish,
                    }
                ],
                "usage": {
                    "prompt_tokens": reply.prompt_tokens,
                    "completion_tokens": completion_tokens,
                    "total_tokens": reply.prompt_tokens + completion_tokens,
                },
            },
        )

    def _admit(
        self, request: _Request, model: str, tokens: int
    ) -> tuple[_Response | None, dict[str, str]]:
        """Record the request in its window, or answer 429 / 400 (too large); with the
        headers its answer carries (``ratelimit_headers``)."""
        config = self.config
        if config.tpm and tokens > config.tpm:
            self._stats.client_errors += 1
            return _error(
                400,
                f"request too large: {tokens} tokens, limit {config.tpm} per minute",
                "invalid_request_error",
                "request_too_large",
            ), {}
        auth = request.headers.get("authorization", "")
        key = auth[7:] if auth.lower().startswith("bearer ") else "anonymous"
        scope = model if config.limit_scope == "model" else "*"
        window = self._windows.setdefault((key, scope), _Window())
        now = time.monotonic()
        span = self._minute()
        window.trim(now, span)
        wait = 0.0
        kind = ""
        if config.rpm and len(window.entries) >= config.rpm:
            wait = window.entries[len(window.entries) - config.rpm][0] + span - now
            kind = "requests"
        if config.tpm and window.tokens + tokens > config.tpm:
            wait = max(wait, window.tokens_free_at(window.tokens + tokens - config.tpm, span) - now)
            kind = kind or "tokens"
        if kind:
            self._stats.rate_limited += 1
            self._count("429")
            wait = max(wait, 0.001)
            response = _error(
                429,
                self._refusal(kind, model, window, tokens, wait),
                kind,
                "rate_limit_exceeded",
            )
            response.headers["Retry-After"] = str(max(1, math.ceil(wait)))
            response.headers["retry-after-ms"] = str(max(1, math.ceil(wait * 1000)))
            response.headers.update(self._limit_headers(window, now, span))
            return response, {}
        window.entries.append((now, tokens))
        window.tokens += tokens
        return None, self._limit_headers(window, now, span)

    def _refusal(self, kind: str, model: str, window: _Window, tokens: int, wait: float) -> str:
        """A 429's message, worded as OpenAI's."""
        config = self.config
        where = (
            f"for {model} in organization {config.organization}"
            if config.limit_scope == "model"
            else f"in organization {config.organization}"
        )
        if kind == "requests":
            what = "requests per min (RPM)"
            figures = f"Limit {config.rpm}, Used {len(window.entries)}, Requested 1"
        else:
            what = "tokens per min (TPM)"
            figures = f"Limit {config.tpm}, Used {window.tokens}, Requested {tokens}"
        said = f": {figures}" if config.limit_figures else ""
        return (
            f"Rate limit reached {where} on {what}{said}. Please try again in {wait:.3f}s. "
            "Visit https://platform.openai.com/account/rate-limits to learn more."
        )

    def _limit_headers(self, window: _Window, now: float, span: float) -> dict[str, str]:
        """OpenAI's x-ratelimit-* headers for ``window`` as it is now (empty when off)."""
        config = self.config
        if not config.ratelimit_headers:
            return {}
        reset = max(0.0, window.entries[-1][0] + span - now) if window.entries else 0.0
        headers: dict[str, str] = {}
        if config.rpm:
            headers["x-ratelimit-limit-requests"] = str(config.rpm)
            remaining = max(0, config.rpm - len(window.entries))
            headers["x-ratelimit-remaining-requests"] = str(remaining)
            headers["x-ratelimit-reset-requests"] = go_duration(reset)
        if config.tpm:
            headers["x-ratelimit-limit-tokens"] = str(config.tpm)
            headers["x-ratelimit-remaining-tokens"] = str(max(0, config.tpm - window.tokens))
            headers["x-ratelimit-reset-tokens"] = go_duration(reset)
        return headers

    def _latency(self) -> float:
        config = self.config
        if config.latency_tail_rate and self._rng.random() < config.latency_tail_rate:
            return self._rng.uniform(config.latency_tail_min_s, config.latency_tail_max_s)
        low, high = self.config.latency_min_s, self.config.latency_max_s
        if high <= 0 or high == low:
            return high
        if self.config.latency_dist == "uniform":
            return self._rng.uniform(low, high)
        low = max(low, high / 1000)
        mu = (math.log(low) + math.log(high)) / 2
        sigma = (math.log(high) - math.log(low)) / (2 * _Z99)
        return min(high, max(low, self._rng.lognormvariate(mu, sigma)))

    async def _hang(self, reader: asyncio.StreamReader) -> None:
        """Hold a request for ``hang_s`` or until its client closes the connection."""
        with contextlib.suppress(asyncio.TimeoutError, ConnectionError):
            await asyncio.wait_for(reader.read(1), timeout=self.config.hang_s)


class SimHandle:
    """A simulator running on its own thread; the methods are safe from any thread."""

    def __init__(self, sim: LlmSimulator, loop: asyncio.AbstractEventLoop) -> None:
        self._sim = sim
        self._loop = loop

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT/v1``, what an OpenAI client takes as its base URL."""
        return self._sim.base_url

    @property
    def port(self) -> int:
        return self._sim.port

    def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        async def run() -> Any:
            return fn(*args, **kwargs)

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(timeout=30)

    def set_outage(self, on: bool) -> None:
        self._call(self._sim.set_outage, on)

    def reconfigure(self, **changes: Any) -> None:
        self._call(self._sim.reconfigure, **changes)

    def reset(self) -> None:
        self._call(self._sim.reset)

    def stats(self) -> dict[str, Any]:
        result: dict[str, Any] = self._call(self._sim.stats)
        return result


@contextlib.contextmanager
def serve_in_thread(
    config: SimConfig | None = None, host: str = "127.0.0.1", port: int = 0
) -> Iterator[SimHandle]:
    """Run a simulator on a daemon thread for the ``with`` block (port 0 = any free port)."""
    sim = LlmSimulator(config)
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    failure: list[BaseException] = []

    def main() -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(sim.start(host, port))
        except BaseException as exc:
            failure.append(exc)
            ready.set()
            return
        ready.set()
        loop.run_forever()
        loop.run_until_complete(sim.stop())
        loop.close()

    thread = threading.Thread(target=main, name="llm-sim", daemon=True)
    thread.start()
    ready.wait()
    if failure:
        raise failure[0]
    try:
        yield SimHandle(sim, loop)
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=30)


# ---------------------------------------------------------------------- command line


def _latency_arg(text: str) -> tuple[float, float]:
    low, sep, high = text.partition(":")
    try:
        return (float(low), float(high)) if sep else (float(low), float(low))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected MIN:MAX seconds, got {text!r}") from None


def _tail_arg(text: str) -> tuple[float, float, float]:
    parts = text.split(":")
    try:
        rate, low, high = (float(p) for p in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected RATE:MIN:MAX, got {text!r}") from None
    return rate, low, high


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m docmill.testkit.llm_sim",
        description="A local OpenAI-compatible LLM server with rate limits, latency and faults.",
        argument_default=argparse.SUPPRESS,  # only what is given changes the base config
    )
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8089)
    p.add_argument(
        "--provider-like",
        action="store_true",
        help="start from issue 15's provider: 90 RPM and 60,000 TPM per key shared by all "
        "models, latency median 1.5 s with 5%% at 8-20 s, 3%% 5xx, 1%% hung, 2%% malformed "
        "JSON (the options below change it)",
    )
    p.add_argument("--rpm", type=int, help="requests per minute (0: none; default 0)")
    p.add_argument("--tpm", type=int, help="tokens per minute (0: none; default 0)")
    p.add_argument(
        "--limit-scope",
        choices=("model", "key"),
        help="count rpm/tpm per key and model (default) or per key, shared by all models",
    )
    p.add_argument(
        "--ratelimit-headers",
        action="store_true",
        help="send OpenAI's x-ratelimit-limit/remaining/reset-requests and -tokens headers",
    )
    p.add_argument(
        "--no-limit-figures",
        dest="limit_figures",
        action="store_false",
        help="429 messages say which limit refused, not its Limit, Used or Requested",
    )
    p.add_argument("--latency", type=_latency_arg, help="MIN:MAX seconds (default 0:0)")
    p.add_argument("--latency-dist", choices=("uniform", "lognormal"))
    p.add_argument(
        "--latency-tail",
        type=_tail_arg,
        help="RATE:MIN:MAX: that share of answers takes MIN..MAX seconds instead",
    )
    p.add_argument("--time-scale", type=float, help="multiplies every delay (default 1)")
    p.add_argument("--error-rate", type=float, help="share of 500/502/503")
    p.add_argument("--timeout-rate", type=float, help="share never answered (held --hang s)")
    p.add_argument("--invalid-json-rate", type=float, help="share of malformed JSON answers")
    p.add_argument(
        "--off-schema-rate", type=float, help="share of valid JSON answers off the schema"
    )
    p.add_argument("--hang", type=float, help="seconds a timeout is held (default 600)")
    p.add_argument("--seed", type=int)
    return p


def config_from_args(args: argparse.Namespace) -> SimConfig:
    """The ``SimConfig`` the command line asks for: the base (``--provider-like`` or the
    defaults) with every option given applied on top."""
    given = vars(args)
    changes: dict[str, Any] = {}
    plain = ("rpm", "tpm", "limit_scope", "ratelimit_headers", "limit_figures",
             "latency_dist", "time_scale", "error_rate", "timeout_rate", "invalid_json_rate",
             "off_schema_rate", "seed")  # fmt: skip
    changes.update({name: given[name] for name in plain if name in given})
    if "latency" in given:
        changes["latency_min_s"], changes["latency_max_s"] = given["latency"]
    if "latency_tail" in given:
        rate, low, high = given["latency_tail"]
        changes.update(latency_tail_rate=rate, latency_tail_min_s=low, latency_tail_max_s=high)
    if "hang" in given:
        changes["hang_s"] = given["hang"]
    if given.get("provider_like"):
        return SimConfig.provider_like(**changes)
    return SimConfig(**changes)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    config = config_from_args(args)

    async def serve() -> None:
        sim = LlmSimulator(config)
        await sim.start(args.host, args.port)
        print(f"llm_sim listening on {sim.base_url}", flush=True)
        try:
            await asyncio.Event().wait()
        finally:
            await sim.stop()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
