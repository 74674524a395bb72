"""One pooled async HTTP client per LLM provider (OpenAI-compatible chat completions).

``ProviderClient.chat`` sends one request and returns a ``ChatResult``; it never raises
for what the provider or the network does. Every outcome is classified once, here:

========================  ====================================================
``ResultKind``            when
========================  ====================================================
``ok``                    HTTP 2xx with a readable completion (even if its JSON is bad:
                          see ``parse_error``)
``rate_limited``          HTTP 429 (``retry_after_s`` from ``retry-after-ms`` or
                          ``Retry-After``: seconds or an HTTP date; ``rate.refusal``: what
                          its message says about the limit)
``server_error``          HTTP 5xx, a connection refused or dropped, a 2xx whose body is
                          not a chat completion
``timeout``               no answer within ``timeout_s`` (connect, read, write or pool)
``client_error``          any other 4xx (bad request, bad key, request too large)
========================  ====================================================

Every answer's rate-limit headers (``x-ratelimit-*``, ``anthropic-ratelimit-*``) are
read into ``rate`` (:mod:`docmill.llm.rate_signals`). There is no retry here: the limiter
decides what to do with each kind. Log lines carry
the provider name, status, kind and latency only, never the key, prompt or answer.
"""

from __future__ import annotations

import email.utils
import json
import logging
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Final

import httpx

from docmill.llm.rate_signals import RateSignals, read_signals
from docmill.settings.loader import SettingsError

_log = logging.getLogger("docmill.llm")
_ENV_REF: Final = "$env"


class ProviderConfigError(SettingsError):
    """A provider's configuration cannot be used (for example its key's variable is unset)."""


class ResultKind(StrEnum):
    OK = "ok"
    RATE_LIMITED = "rate_limited"
    SERVER_ERROR = "server_error"
    TIMEOUT = "timeout"
    CLIENT_ERROR = "client_error"


@dataclass(frozen=True)
class ProviderConfig:
    """Where and how to reach one provider.

    ``api_key`` is a reference ``{"$env": "NAME"}`` resolved when the client starts, or
    None for a provider without a key (a local server).
    """

    name: str
    base_url: str
    model: str
    api_key: Mapping[str, str] | None = None
    timeout_s: float = 60.0
    connect_timeout_s: float = 10.0
    pool_timeout_s: float = 60.0
    max_connections: int = 100
    max_keepalive_connections: int = 20
    keepalive_expiry_s: float = 30.0
    headers: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.base_url.startswith(("http://", "https://")):
            raise ProviderConfigError(
                f"provider {self.name!r}: base_url must start with http:// or https://"
            )
        if self.max_connections < 1 or self.max_keepalive_connections < 0:
            raise ProviderConfigError(f"provider {self.name!r}: connection limits must be >= 1")
        if min(self.timeout_s, self.connect_timeout_s, self.pool_timeout_s) <= 0:
            raise ProviderConfigError(f"provider {self.name!r}: timeouts must be > 0")

    def __repr__(self) -> str:  # the reference is harmless, but keep reprs short and safe
        return (
            f"ProviderConfig(name={self.name!r}, base_url={self.base_url!r}, model={self.model!r})"
        )


def resolve_api_key(
    provider: str, ref: Mapping[str, str] | None, env: Mapping[str, str] | None = None
) -> str | None:
    """The key a ``{"$env": "NAME"}`` reference points at; a clear error names what is wrong."""
    if ref is None:
        return None
    if not isinstance(ref, Mapping) or set(ref) != {_ENV_REF} or not isinstance(ref[_ENV_REF], str):
        raise ProviderConfigError(
            f'provider {provider!r}: api_key must be a reference {{"$env": "NAME"}}, '
            "never the key itself"
        )
    name = ref[_ENV_REF]
    value = (os.environ if env is None else env).get(name)
    if not value:
        raise ProviderConfigError(
            f"provider {provider!r}: api_key refers to environment variable {name}, "
            "which is not set (or empty)"
        )
    return value


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


@dataclass(frozen=True)
class ChatResult:
    """What one chat request came to. ``parsed`` is set when JSON was asked for and read."""

    kind: ResultKind
    status: int  # HTTP status; 0 when no response came (timeout, connection error)
    latency_s: float
    content: str | None = None
    parsed: Any = None
    parse_error: str | None = None
    usage: Usage | None = None
    retry_after_s: float | None = None
    finish_reason: str | None = None
    error: str | None = None  # the provider's error message or the network error's type
    rate: RateSignals | None = None  # what the answer said about limits (headers, a 429's body)

    @property
    def ok(self) -> bool:
        return self.kind is ResultKind.OK

    @property
    def json_ok(self) -> bool:
        """A 2xx answer whose content parsed as JSON."""
        return self.ok and self.parse_error is None and self.content is not None


def parse_retry_after(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """Seconds to wait: ``retry-after-ms`` first, then ``Retry-After`` (seconds or a date)."""
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return max(0.0, float(ms) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def _classify_status(status: int) -> ResultKind:
    if 200 <= status < 300:
        return ResultKind.OK
    if status == 429:
        return ResultKind.RATE_LIMITED
    if status >= 500:
        return ResultKind.SERVER_ERROR
    return ResultKind.CLIENT_ERROR


def _error_fields(response: httpx.Response) -> tuple[str, str | None]:
    """The error's message (or ``HTTP <status>``) and its ``type``, if the body has them."""
    try:
        error = response.json()["error"]
        kind = error.get("type")
        return str(error["message"])[:500], str(kind) if kind is not None else None
    except (ValueError, KeyError, TypeError, AttributeError):
        return f"HTTP {response.status_code}", None


def _usage(body: Mapping[str, Any]) -> Usage | None:
    raw = body.get("usage")
    if not isinstance(raw, Mapping):
        return None
    try:
        prompt = int(raw.get("prompt_tokens") or 0)
        completion = int(raw.get("completion_tokens") or 0)
        total = int(raw.get("total_tokens") or prompt + completion)
    except (TypeError, ValueError):
        return None
    return Usage(prompt, completion, total)


class ProviderClient:
    """A pooled, keep-alive async client for one provider; use as ``async with``.

    The key is resolved in the constructor, so a missing variable fails at start. One
    instance serves any number of concurrent ``chat`` calls (up to ``max_connections``
    at once on the wire; the rest wait for a connection up to ``pool_timeout_s``).
    """

    def __init__(
        self,
        config: ProviderConfig,
        *,
        env: Mapping[str, str] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.config = config
        key = resolve_api_key(config.name, config.api_key, env)
        headers = {"Content-Type": "application/json", **dict(config.headers)}
        if key:
            headers["Authorization"] = f"Bearer {key}"
        self._http = httpx.AsyncClient(
            base_url=config.base_url.rstrip("/") + "/",
            headers=headers,
            timeout=httpx.Timeout(
                config.timeout_s,
                connect=config.connect_timeout_s,
                pool=config.pool_timeout_s,
            ),
            limits=httpx.Limits(
                max_connections=config.max_connections,
                max_keepalive_connections=config.max_keepalive_connections,
                keepalive_expiry=config.keepalive_expiry_s,
            ),
            transport=transport,
            follow_redirects=False,
            trust_env=False,
        )

    async def __aenter__(self) -> ProviderClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    def __repr__(self) -> str:
        return f"ProviderClient({self.config!r})"

    async def chat(
        self,
        messages: Sequence[Mapping[str, Any]],
        *,
        schema: Mapping[str, Any] | None = None,
        schema_name: str = "result",
        json_mode: bool = False,
        temperature: float | None = 0.0,
        max_tokens: int | None = None,
        timeout_s: float | None = None,
        model: str | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> ChatResult:
        """Send one chat completion; ``schema`` asks for a strict JSON-schema answer.

        ``json_mode`` asks for ``{"type": "json_object"}`` without a schema. ``extra``
        fields are merged into the request body as they are.
        """
        body: dict[str, Any] = {"model": model or self.config.model, "messages": list(messages)}
        if temperature is not None:
            body["temperature"] = temperature
        if max_tokens is not None:
            body["max_tokens"] = max_tokens
        wants_json = schema is not None or json_mode
        if schema is not None:
            body["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": schema_name, "schema": dict(schema), "strict": True},
            }
        elif json_mode:
            body["response_format"] = {"type": "json_object"}
        if extra:
            body.update(extra)
        timeout = (
            httpx.Timeout(
                timeout_s,
                connect=min(timeout_s, self.config.connect_timeout_s),
                pool=self.config.pool_timeout_s,
            )
            if timeout_s is not None
            else httpx.USE_CLIENT_DEFAULT
        )
        started = time.monotonic()
        try:
            response = await self._http.post(
                "chat/completions", content=json.dumps(body).encode(), timeout=timeout
            )
        except httpx.TimeoutException as exc:
            return self._done(ResultKind.TIMEOUT, 0, started, error=type(exc).__name__)
        except httpx.TransportError as exc:  # refused, reset, protocol error
            return self._done(ResultKind.SERVER_ERROR, 0, started, error=type(exc).__name__)
        return self._read(response, started, wants_json)

    def _read(self, response: httpx.Response, started: float, wants_json: bool) -> ChatResult:
        status = response.status_code
        kind = _classify_status(status)
        if kind is not ResultKind.OK:
            retry = parse_retry_after(response.headers)
            message, error_type = _error_fields(response)
            rate = read_signals(
                response.headers,
                time.time(),
                message if kind is ResultKind.RATE_LIMITED else None,
                error_type,
            )
            return self._done(
                kind, status, started, retry_after_s=retry, error=message, rate=rate
            )
        try:
            body = response.json()
            choice = body["choices"][0]
            content = choice["message"]["content"]
            if not isinstance(content, str):
                raise TypeError("content is not text")
        except (ValueError, KeyError, IndexError, TypeError):
            return self._done(
                ResultKind.SERVER_ERROR, status, started, error="malformed chat completion body"
            )
        parsed: Any = None
        parse_error: str | None = None
        if wants_json:
            try:
                parsed = json.loads(content)
            except json.JSONDecodeError as exc:
                parse_error = f"{exc.msg} at line {exc.lineno} column {exc.colno}"
        return self._done(
            ResultKind.OK,
            status,
            started,
            content=content,
            parsed=parsed,
            parse_error=parse_error,
            usage=_usage(body),
            finish_reason=choice.get("finish_reason"),
            rate=read_signals(response.headers, time.time()),
        )

    def _done(self, kind: ResultKind, status: int, started: float, **fields: Any) -> ChatResult:
        result = ChatResult(
            kind=kind, status=status, latency_s=time.monotonic() - started, **fields
        )
        _log.debug(
            "llm %s: %s status=%d in %.3fs",
            self.config.name,
            kind.value,
            status,
            result.latency_s,
        )
        return result
