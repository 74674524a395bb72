"""The gate in front of ``/v1``: who calls, and how many body bytes the request may send,
settled from the headers before a single byte of the body is read.

:class:`Guard` is a plain ASGI middleware. For every ``/v1`` request it

1. asks the app's authenticator (``KeyAuth``: key, failed-attempt brake, tier limits)
   with the headers only; a refusal (401, 429) is answered at once, so an
   unauthenticated request never touches the disk and costs no body read;
2. picks the request's body cap (:class:`BodyLimits`: a multipart upload to
   ``POST /v1/extract`` or ``POST /v1/jobs``, or a small JSON body anywhere else) and
   refuses a ``Content-Length`` over it at once (413);
3. counts the bytes as the route reads them (chunked bodies too) and raises a 413
   :class:`ApiError` the moment the count passes the cap, so nothing past it is held.

Refusals that leave a body unread say ``Connection: close``. The caller is left in the
scope for the ``current_caller`` dependency.
"""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from docmill.service.deps import CALLER_SCOPE_KEY, Authenticate
from docmill.service.errors import ApiError, error_response
from docmill.settings import ServiceSettings

MB = 1024 * 1024
FORM_OVERHEAD = 256 * 1024  # part headers, boundaries and the small form fields


@dataclass(frozen=True, slots=True)
class BodyLimits:
    """Body caps in bytes, by what the request is."""

    extract: int  # multipart POST /v1/extract: one document and its settings
    job_upload: int  # multipart POST /v1/jobs: every file of the job
    json: int  # any other body

    @classmethod
    def from_settings(cls, s: ServiceSettings) -> BodyLimits:
        return cls(
            extract=int(s.extract_max_mb * MB) + FORM_OVERHEAD,
            job_upload=int(s.max_job_mb * MB) + FORM_OVERHEAD,
            json=int(s.max_json_kb * 1024),
        )

    def cap(self, method: str, path: str, content_type: str) -> tuple[int, str]:
        """(cap in bytes, the setting that sets it)."""
        multipart = content_type.lower().startswith("multipart/form-data")
        if method == "POST" and multipart and path.rstrip("/") == "/v1/extract":
            return self.extract, "service.extract_max_mb"
        if method == "POST" and multipart and path.rstrip("/") in ("/v1/jobs", "/v1/estimates"):
            return self.job_upload, "service.max_job_mb"
        return self.json, "service.max_json_kb"


def _too_large(cap: int, setting: str) -> ApiError:
    # an upload's limit is about its files (the code the routes' own per-file cap uses)
    code = "body_too_large" if setting == "service.max_json_kb" else "file_too_large"
    return ApiError(
        413, code, f"the request body is over {cap:,} bytes ({setting})",
        {"limit_bytes": cap, "setting": setting}, headers={"Connection": "close"},
    )


def _has_body(scope: Scope) -> bool:
    for name, value in scope.get("headers", ()):
        if name == b"transfer-encoding" or (name == b"content-length" and value.strip() not in (b"", b"0")):
            return True
    return False


class Guard:
    """Authenticate from the headers, then cap the body; see the module docstring."""

    def __init__(self, app: ASGIApp, authenticate: Authenticate, limits: BodyLimits) -> None:
        self.app = app
        self.authenticate = authenticate
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/v1/"):
            await self.app(scope, receive, send)
            return
        request = Request(scope)  # headers only: no receive, so nothing here reads the body
        try:
            scope[CALLER_SCOPE_KEY] = await self.authenticate(request)
            cap, setting = self.limits.cap(scope["method"], scope["path"], request.headers.get("content-type", ""))
            declared = request.headers.get("content-length", "").strip()
            if declared.isdigit() and int(declared) > cap:
                raise _too_large(cap, setting)
        except ApiError as exc:
            await self._refuse(exc, scope, send)
            return

        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > cap:
                    raise _too_large(cap, setting)
            return message

        started = False

        async def watch(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, watch)
        except ApiError as exc:  # raised past the app's own handlers (a body read elsewhere)
            if started:
                raise
            await self._refuse(exc, scope, send)

    async def _refuse(self, exc: ApiError, scope: Scope, send: Send) -> None:
        headers = dict(exc.headers or {})
        if _has_body(scope):
            headers["Connection"] = "close"  # the unread body is not drained
        response = error_response(exc.status, exc.code, exc.message, exc.details, headers)
        await response(scope, _no_body, send)


async def _no_body() -> Message:
    return {"type": "http.disconnect"}
