"""API-key authentication and rate limits for ``/v1`` (``service.auth = "keys"``).

``KeyAuth`` is the app's ``authenticate`` hook: it reads ``Authorization: Bearer
<key>`` (or ``X-API-Key``), checks the key in the :class:`~docmill.service.keys.KeyStore`
(401 with ``WWW-Authenticate`` when missing, malformed, unknown or revoked), then counts
the request against the key's tier (``all`` and the route's group; 429 with
``Retry-After`` when over). The ``RateLimit-Limit``, ``RateLimit-Remaining`` and
``RateLimit-Reset`` headers go on every answer to a counted request, errors included,
through :class:`RateLimitHeaders` (a plain ASGI middleware, so streamed answers get
them too). ``service.auth = "none"`` is local mode: no keys, no limits.

Failed authentication (no key, an unknown, malformed or revoked one) is braked per
client address: past ``service.auth_fail_limit`` failures in ``auth_fail_window_s`` the
address is answered 429 ``too_many_failed_attempts`` (with ``Retry-After``) before any
key is looked at, counted in the same limiter as the tiers (so shared through Redis when
``service.redis_url`` is set). Failures are logged as counts (:class:`AuthFailures`, one
summary line a window), never one line an attempt.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any

from fastapi import FastAPI, Request
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from docmill.service.deps import Caller
from docmill.service.errors import ApiError
from docmill.service.keys import KeyStore
from docmill.service.ratelimit import Check, Limiter, build_limiter
from docmill.service.tiers import Limit, Tier, group_of, load_tiers
from docmill.settings import Settings

log = logging.getLogger("docmill.service")

SCOPE_KEY = "docmill.ratelimit_headers"
_CHALLENGE = 'Bearer realm="docmill"'


def presented_key(request: Request) -> str | None:
    auth = request.headers.get("authorization", "")
    scheme, _, token = auth.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    key = request.headers.get("x-api-key", "").strip()
    return key or None


def _unauthorized(code: str, message: str, error: str) -> ApiError:
    header = _CHALLENGE if error == "" else f'{_CHALLENGE}, error="{error}"'
    return ApiError(401, code, message, headers={"WWW-Authenticate": header})


class AuthFailures:
    """Failed authentications, counted and logged as one summary line per ``interval_s``
    (by reason, how many were braked, how many addresses, the busiest ones)."""

    def __init__(self, interval_s: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval_s = interval_s
        self._clock = clock
        self._since = clock()
        self.reasons: Counter[str] = Counter()
        self.addresses: Counter[str] = Counter()
        self.braked = 0
        self.total = 0  # since start, for metrics and tests

    def record(self, address: str, reason: str, braked: bool) -> None:
        self.reasons[reason] += 1
        self.addresses[address] += 1
        self.braked += braked
        self.total += 1
        if self._clock() - self._since >= self.interval_s:
            self.flush()

    def flush(self) -> None:
        """Log what was counted since the last line (nothing when nothing failed)."""
        now = self._clock()
        if self.reasons:
            n = sum(self.reasons.values())
            reasons = ", ".join(f"{r} {c}" for r, c in self.reasons.most_common())
            top = ", ".join(f"{a} x{c}" for a, c in self.addresses.most_common(3))
            log.warning(
                "authentication failed %d times in %.0f s (%s); %d answered 429; from %d "
                "address(es), most: %s", n, now - self._since, reasons, self.braked,
                len(self.addresses), top,
            )
        self.reasons.clear()
        self.addresses.clear()
        self.braked = 0
        self._since = now


class KeyAuth:
    """The ``authenticate`` hook over a key store, the tiers and a limiter; ``brake`` is
    the failed-attempt limit per client address (None: no brake)."""

    def __init__(
        self, keys: KeyStore, tiers: Mapping[str, Tier], limiter: Limiter,
        brake: Limit | None = None, failures: AuthFailures | None = None,
    ) -> None:
        self.keys = keys
        self.tiers = dict(tiers)
        self.limiter = limiter
        self.brake = brake
        self.failures = failures or AuthFailures()

    def _braked(self, retry_after_s: float, address: str) -> ApiError:
        self.failures.record(address, "braked", True)
        assert self.brake is not None
        return ApiError(
            429, "too_many_failed_attempts",
            "too many failed authentications from this address; retry later",
            {"limit": self.brake.requests, "window_s": self.brake.window_s},
            headers={"Retry-After": str(max(1, int(retry_after_s + 0.999)))},
        )

    async def _failed(self, address: str, refusal: ApiError) -> ApiError:
        """Count a failure against the address: the 401 to answer, or past the brake a 429."""
        if self.brake is not None:
            decision = await self.limiter.hit([(f"authfail:{address}", self.brake)])
            if not decision.allowed:
                return self._braked(decision.retry_after_s, address)
        self.failures.record(address, refusal.code, False)
        return refusal

    async def __call__(self, request: Request) -> Caller:
        address = request.client.host if request.client else "unknown"
        if self.brake is not None:
            held = await self.limiter.peek([(f"authfail:{address}", self.brake)])
            if not held.allowed:
                raise self._braked(held.retry_after_s, address)
        presented = presented_key(request)
        if presented is None:
            raise await self._failed(address, _unauthorized(
                "missing_api_key", "send an API key: Authorization: Bearer <key> (or X-API-Key)", ""
            ))
        key = await run_in_threadpool(self.keys.verify, presented)
        if key is None:
            raise await self._failed(
                address, _unauthorized("invalid_api_key", "the API key is not valid", "invalid_token")
            )
        if key.revoked:
            raise await self._failed(
                address, _unauthorized("revoked_api_key", "the API key was revoked", "invalid_token")
            )
        tier = self.tiers.get(key.tier)
        if tier is None:
            raise ApiError(403, "unknown_tier", f"the key's tier {key.tier!r} is not configured")
        route = request.scope.get("route")
        group = group_of(request.method, getattr(route, "path", request.url.path).rstrip("/") or "/")
        checks: list[Check] = []
        for g in ("all", group):
            limit = tier.limit(g)
            if limit is not None:
                checks.append((f"{key.id}:{g}", limit))
        if checks:
            decision = await self.limiter.hit(checks)
            headers = decision.headers()
            request.scope[SCOPE_KEY] = {k: v for k, v in headers.items() if k != "Retry-After"}
            if not decision.allowed:
                raise ApiError(
                    429, "rate_limited",
                    f"too many requests for tier {tier.name!r}; retry in {headers['Retry-After']} s",
                    {"tier": tier.name, "group": group, "limit": decision.limit,
                     "window_s": tier.window_s},
                    headers=headers,
                )
        return Caller(key_id=key.id, tier=key.tier)

    async def close(self) -> None:
        self.failures.flush()
        close = getattr(self.limiter, "close", None)
        if close is not None:
            await close()
        await run_in_threadpool(self.keys.close)


def build_auth(settings: Settings) -> KeyAuth | None:
    """The hook ``service.auth`` asks for: None in local mode (``none``)."""
    s = settings.service
    if s.auth == "none":
        log.warning("service.auth=none: no API keys, every request is the local caller")
        return None
    tiers = load_tiers(s.tiers_file)
    brake = Limit(s.auth_fail_limit, s.auth_fail_window_s) if s.auth_fail_limit > 0 else None
    auth = KeyAuth(KeyStore.open(s.data_dir), tiers, build_limiter(s.redis_url), brake,
                   AuthFailures(s.auth_fail_window_s))
    log.info("API keys on; rate limits in %s; tiers: %s",
             "Redis" if s.redis_url else "memory", ", ".join(sorted(tiers)))
    return auth


def document_security(app: FastAPI) -> None:
    """Declare the key schemes, and the 401/429 answers, on every ``/v1`` operation of
    the app's OpenAPI document (built once, on first request)."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        schema = build()
        schemes = schema.setdefault("components", {}).setdefault("securitySchemes", {})
        schemes["bearer"] = {"type": "http", "scheme": "bearer",
                             "description": "an API key from `docmill keys create`"}
        schemes["apiKey"] = {"type": "apiKey", "in": "header", "name": "X-API-Key"}
        for path, operations in schema.get("paths", {}).items():
            if not path.startswith("/v1/"):
                continue
            for op in operations.values():
                op["security"] = [{"bearer": []}, {"apiKey": []}]
                responses = op.setdefault("responses", {})
                responses.setdefault("401", {"description": "missing, invalid or revoked API key"})
                responses.setdefault("429", {"description": "over the key's tier limit (Retry-After)"})
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


class RateLimitHeaders:
    """Adds the request's ``RateLimit-*`` headers (left in the scope by ``KeyAuth``)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                extra: dict[str, str] | None = scope.get(SCOPE_KEY)
                if extra:
                    raw: list[Any] = list(message.get("headers", []))
                    present = {k.lower() for k, _ in raw}
                    for name, value in extra.items():
                        if name.lower().encode() not in present:
                            raw.append((name.lower().encode(), value.encode()))
                    message = {**message, "headers": raw}
            await send(message)

        await self.app(scope, receive, with_headers)

