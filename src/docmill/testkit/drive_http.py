"""The Drive simulator's HTTP plumbing: a request as read, an answer to write, Google's
JSON error body, and the counters ``/_sim/stats`` reports."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import parse_qs, urlsplit

REASONS: Final = {
    200: "OK", 204: "No Content", 206: "Partial Content", 308: "Resume Incomplete",
    400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
    405: "Method Not Allowed", 416: "Range Not Satisfiable", 429: "Too Many Requests",
    499: "Client Closed Request", 500: "Internal Server Error", 502: "Bad Gateway",
    503: "Service Unavailable",
}
DEFAULT_FILE_FIELDS = ("kind", "id", "name", "mimeType")  # what v3 gives without ``fields``


def google_error(status: int, reason: str, message: str, domain: str = "global",
                 **extra: str) -> dict[str, Any]:
    """Google's JSON error body: ``{"error": {"errors": [...], "code", "message"}}``."""
    return {"error": {"errors": [{"domain": domain, "reason": reason, "message": message, **extra}],
                      "code": status, "message": message}}


class Request:
    """One HTTP request: method, path, the last value of each query parameter, headers
    (lower-case names), body."""

    __slots__ = ("body", "headers", "method", "path", "query")

    def __init__(self, method: str, target: str, headers: dict[str, str], body: bytes) -> None:
        parts = urlsplit(target)
        self.method = method
        self.path = parts.path
        self.query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        self.headers = headers
        self.body = body

    def flag(self, name: str) -> bool:
        return self.query.get(name, "false").lower() == "true"


class Response:
    """An answer: JSON ``payload`` or raw ``body``; ``drop``: half the body, then the
    connection closed; ``abort``: the connection closed with no answer at all."""

    __slots__ = ("abort", "body", "drop", "headers", "status")

    def __init__(self, status: int, payload: Any = None, *, body: bytes | None = None,
                 headers: Mapping[str, str] | None = None, drop: bool = False,
                 abort: bool = False) -> None:
        self.status = status
        self.body = body if body is not None else json.dumps(payload).encode()
        self.headers = {"Content-Type": "application/json; charset=UTF-8", **(headers or {})}
        self.drop = drop  # half the body, then the connection closed
        self.abort = abort  # the connection closed with no answer at all


def error_response(status: int, reason: str, message: str, domain: str = "global",
                   **extra: str) -> Response:
    """An error answer with Google's body."""
    return Response(status, google_error(status, reason, message, domain, **extra))


@dataclass
class SimStats:
    """What ``/_sim/stats`` reports (see ``DriveSimulator.stats``)."""

    requests: int = 0
    by_kind: Counter[str] = field(default_factory=Counter)  # list, get, media, export, drives, token
    by_status: Counter[int] = field(default_factory=Counter)
    media_by_file: Counter[str] = field(default_factory=Counter)
    export_by_file: Counter[str] = field(default_factory=Counter)
    rate_limited_403: int = 0
    rate_limited_429: int = 0
    server_errors: int = 0
    unauthorized: int = 0
    dropped: int = 0
    tokens_issued: int = 0
    token_refused: int = 0
    early_after_retry_after: int = 0  # queries sent while a user's Retry-After ran
    peak_in_window: int = 0  # the most queries one user had admitted in a window
    created: Counter[str] = field(default_factory=Counter)  # folder, multipart, resumable
    sessions: int = 0  # resumable uploads started
    chunks: int = 0  # resumable chunks received (with bytes)
    status_queries: int = 0  # "bytes */T": what arrived?
    dropped_uploads: int = 0
    replaced: int = 0  # files whose bytes an upload replaced
    moved: int = 0  # files.update with addParents
    held: Counter[str] = field(default_factory=Counter)  # requests held, by moment
