"""Who is calling: the ``caller`` dependency every ``/v1`` route takes.

``create_app(settings, authenticate=...)`` plugs an authenticator in: an async callable
``(Request) -> Caller`` that raises :class:`~docmill.service.errors.ApiError` (401, 429 ...)
to refuse. Without one the service runs in local mode: every request is the single
caller ``local``, which owns every job (the auth module wires API keys and tiers in).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from fastapi import Request


@dataclass(frozen=True, slots=True)
class Caller:
    """The owner of the jobs a request creates and may see."""

    key_id: str
    tier: str = "local"


Authenticate = Callable[[Request], Awaitable[Caller]]

CALLER_SCOPE_KEY = "docmill.caller"  # set by ``service.guard.Guard`` before the body is read

LOCAL_CALLER = Caller(key_id="local")


async def local_caller(_request: Request) -> Caller:
    """Local mode: no keys, one caller."""
    return LOCAL_CALLER


async def current_caller(request: Request) -> Caller:
    """The FastAPI dependency: the caller the guard settled from the headers (the app's
    authenticator, ``app.state.authenticate``, is asked only where no guard ran)."""
    caller = request.scope.get(CALLER_SCOPE_KEY)
    if isinstance(caller, Caller):
        return caller
    authenticate: Authenticate = request.app.state.authenticate
    return await authenticate(request)
