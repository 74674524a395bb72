"""A local Google Drive API v3 server that behaves like the real one, for tests and benches.

Run it::

    python -m docmill.testkit.drive_sim --port 8090 --demo DIR --quota 1000

or in-process::

    with serve_in_thread(DriveSimConfig(queries_per_window=10, window_s=1)) as sim:
        folder = sim.data.add_folder("Invoices")
        sim.data.add_file("a.pdf", pdf_bytes, parent=folder)
        key = sim.service_account("robot@sim.iam.gserviceaccount.com")  # key file JSON
        # docmill: sources.gdrive_api_url = sim.api_url, sources.gdrive_token_url = sim.token_url

Endpoints (Google's paths): ``GET /drive/v3/files`` (``q``, ``fields``, ``pageSize``
1..1000, default 100, ``pageToken``, ``corpora``/``driveId``,
``supportsAllDrives``/``includeItemsFromAllDrives``), ``GET /drive/v3/files/ID``
(metadata, or ``alt=media`` with ``Range`` → 206, past the end → 416),
``GET /drive/v3/files/ID/export?mimeType=`` (Docs, Slides, Drawings → PDF; Sheets →
XLSX/CSV/PDF; over ``export_limit`` → 403 ``exportSizeLimitExceeded``), ``GET
/drive/v3/drives`` (``q = name = '…'``), ``POST /token`` (jwt-bearer grants checked
against the service account's public key; refresh-token grants), ``GET /_sim/stats``,
``POST /_sim/config``, ``POST /_sim/reset``, ``GET /_sim/tree?folder=ID`` (every path
below a folder, with its size and id).

Writes (``files.create``, ``files.update``): ``POST /drive/v3/files`` (metadata only:
a folder), ``PATCH /drive/v3/files/ID`` (name, ``appProperties`` merged, ``trashed``,
``addParents``/``removeParents``: one parent, as Drive enforces), and uploads to
``/upload/drive/v3/files[/ID]``: ``uploadType=multipart`` (``multipart/related``: JSON
metadata, then the media; ``POST`` creates, ``PATCH`` replaces the bytes of ID) and
``uploadType=resumable`` (the first request answers a session URI in ``Location``;
``PUT`` chunks to it with ``Content-Range: bytes A-B/T``, each but the last a multiple
of 256 KiB, answered ``308 Resume Incomplete`` with ``Range: bytes=0-N`` until the last
one creates the file; ``Content-Range: bytes */T`` with no body asks what arrived;
``DELETE`` cancels, 499). ``appProperties`` are searchable
(``appProperties has { key='K' and value='V' }``). Uploads use the same quota and
faults, and three more: ``drop_upload_every`` (every n-th chunk keeps half its bytes,
rounded down to 256 KiB, and the connection is closed unanswered), ``hold_uploads``
(``before``: a request that would file a document — an upload's last request, a move —
waits unanswered and, once released, is dropped as if it never arrived; ``after``: it
is done, then its answer waits; ``chunk``: a resumable upload's chunk before the last
is kept, then its answer waits), :meth:`SimHandle.release_uploads` ends the waits.

What happens to an API request, in order:

1. the bearer token must be one the token endpoint issued and not expired, or one
   registered as is (:meth:`SimHandle.access_token`) → else 401 ``authError``;
2. per user (the token's principal), a sliding window of ``window_s`` (100 s, times
   ``time_scale``) admits ``queries_per_window`` queries → else 403
   ``userRateLimitExceeded``; and at most ``burst_limit`` in a ``burst_window_s`` → else 429
   ``rateLimitExceeded`` (``Retry-After`` when ``retry_after_s`` is set). The bodies are
   Google's. Refused queries use no quota;
3. one draw from the seeded generator of faults (its own: the n-th admitted request meets
   the same fate in every run): below ``error_rate``, 500 ``backendError``, 502 or 503;
4. latency, uniform in ``latency_min_s .. latency_max_s`` (times ``time_scale``);
5. the answer; every ``drop_every``-th media body is cut halfway and the connection
   closed.

The HTTP/1.1 server is plain asyncio streams (keep-alive, Content-Length bodies).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import dataclasses
import hashlib
import json
import math
import mimetypes
import random
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final
from urllib.parse import parse_qs

from docmill.testkit.drive_http import (
    DEFAULT_FILE_FIELDS,
    REASONS,
    Request,
    Response,
    SimStats,
    error_response,
    google_error,
)
from docmill.testkit.drive_model import (
    EXPORT_FORMATS,
    FOLDER,
    DriveData,
    Item,
    QueryError,
    WriteError,
    export,
    parse_fields,
    project,
)
from docmill.testkit.drive_uploads import DriveWrites

_MAX_HEADER: Final = 64 * 1024
_MAX_BODY: Final = 1024 * 1024
_MAX_UPLOAD: Final = 64 * 1024 * 1024  # one request to /upload/ (a multipart file, a chunk)
HOLD_MOMENTS: Final = ("", "before", "after", "chunk")
USER_RATE_MESSAGE: Final = (
    "User Rate Limit Exceeded. Rate of requests for user exceed configured project quota. You "
    "may consider re-evaluating expected per-user traffic to the API and adjust project quota "
    "limits accordingly. You may monitor aggregate quota usage and adjust limits in the API "
    "Console: https://console.developers.google.com/apis/api/drive.googleapis.com/quotas?project=000000000000"
)


@dataclass(frozen=True)
class DriveSimConfig:
    """How the simulated Drive behaves (0 means off for the limits and faults)."""

    queries_per_window: int = 0  # per user, in a sliding ``window_s``
    window_s: float = 100.0  # Drive counts a user's queries per 100 s
    burst_limit: int = 0  # the backend's own short check: at most this many ...
    burst_window_s: float = 1.0  # ... a user's queries in this long (else 429)
    retry_after_s: float = 0.0  # sent with a 429 when > 0
    error_rate: float = 0.0  # share of 500/502/503
    drop_every: int = 0  # every n-th media body is cut halfway
    latency_min_s: float = 0.0
    latency_max_s: float = 0.0
    time_scale: float = 1.0  # multiplies every delay and the quota windows
    token_ttl_s: float = 3600.0  # lifetime of issued access tokens (not scaled)
    export_limit: int = 10 * 1024 * 1024  # bytes an export may have
    drop_upload_every: int = 0  # every n-th resumable chunk is cut and left unanswered
    hold_uploads: str = ""  # before | after | chunk: requests that file a document wait
    seed: int = 0

    def __post_init__(self) -> None:
        if self.hold_uploads not in HOLD_MOMENTS:
            raise ValueError(f"hold_uploads is one of {HOLD_MOMENTS}")
        if not 0.0 <= self.error_rate <= 1.0:
            raise ValueError("error_rate must be between 0 and 1")
        if self.time_scale <= 0 or self.window_s <= 0:
            raise ValueError("time_scale and window_s must be > 0")
        if not 0.0 <= self.latency_min_s <= self.latency_max_s:
            raise ValueError("latency needs 0 <= min <= max")


class DriveSimulator(DriveWrites):
    """The server; lives on one event loop. Use ``serve_in_thread`` from synchronous code."""

    def __init__(self, config: DriveSimConfig | None = None, data: DriveData | None = None) -> None:
        self.config = config or DriveSimConfig()
        self.data = data or DriveData(self.config.seed)
        self._rng = random.Random(self.config.seed)
        self._fault_rng = random.Random(f"faults:{self.config.seed}")
        self._windows: dict[str, deque[float]] = {}
        self._bursts: dict[str, deque[float]] = {}
        self._not_before: dict[str, tuple[float, float]] = {}
        self._media_n = 0
        self._chunk_n = 0
        self._stats = SimStats()
        self._released: asyncio.Event | None = None  # made on the loop, at start
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()
        self.host = "127.0.0.1"
        self.port = 0

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def token_url(self) -> str:
        return f"{self.base_url}/token"

    # ------------------------------------------------------------------ life cycle

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._server = await asyncio.start_server(self._serve_connection, host, port,
                                                  limit=_MAX_HEADER, backlog=1024)
        self.host = host
        self.port = self._server.sockets[0].getsockname()[1]
        self._released = asyncio.Event()

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

    def reconfigure(self, **changes: Any) -> None:
        self.config = dataclasses.replace(self.config, **changes)
        if "seed" in changes:
            self._rng = random.Random(self.config.seed)
            self._fault_rng = random.Random(f"faults:{self.config.seed}")
        if changes.get("hold_uploads") and self._released is not None:
            self._released.clear()

    def release_uploads(self) -> None:
        """Every held request goes on (those held ``before`` are dropped)."""
        if self._released is not None:
            self._released.set()

    def reset(self) -> None:
        """Clear the stats and every quota window."""
        self._windows.clear()
        self._bursts.clear()
        self._not_before.clear()
        self._media_n = 0
        self._chunk_n = 0
        self._stats = SimStats()

    def stats(self) -> dict[str, Any]:
        s = self._stats
        return {
            "requests": s.requests, "by_kind": dict(s.by_kind),
            "by_status": {str(k): v for k, v in sorted(s.by_status.items())},
            "media_by_file": dict(s.media_by_file), "export_by_file": dict(s.export_by_file),
            "media": sum(s.media_by_file.values()), "exports": sum(s.export_by_file.values()),
            "rate_limited_403": s.rate_limited_403, "rate_limited_429": s.rate_limited_429,
            "server_errors": s.server_errors, "unauthorized": s.unauthorized, "dropped": s.dropped,
            "tokens_issued": s.tokens_issued, "token_refused": s.token_refused,
            "early_after_retry_after": s.early_after_retry_after,
            "peak_in_window": s.peak_in_window,
            "created": dict(s.created), "sessions": s.sessions, "chunks": s.chunks,
            "status_queries": s.status_queries, "dropped_uploads": s.dropped_uploads,
            "replaced": s.replaced, "moved": s.moved, "held": dict(s.held),
        }

    # ------------------------------------------------------------------ HTTP

    async def _serve_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        try:
            while True:
                request = await self._read_request(reader)
                if request is None:
                    return
                response = await self._dispatch(request)
                keep = (request.headers.get("connection", "").lower() != "close"
                        and not response.drop and not response.abort)
                await self._write(writer, request, response, keep)
                if not keep:
                    return
        except (ConnectionError, ValueError, asyncio.IncompleteReadError, asyncio.LimitOverrunError,
                asyncio.CancelledError):
            return
        finally:
            writer.close()
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await writer.wait_closed()
            self._connections.discard(task)  # after the close: stop() still awaits it

    async def _read_request(self, reader: asyncio.StreamReader) -> Request | None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            return None
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3:
            return None
        headers: dict[str, str] = {}
        for line in lines[1:]:
            if ":" in line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0") or 0)
        if length > (_MAX_UPLOAD if parts[1].startswith("/upload/") else _MAX_BODY):
            return None
        body = await reader.readexactly(length) if length else b""
        return Request(parts[0].upper(), parts[1], headers, body)

    async def _write(self, writer: asyncio.StreamWriter, request: Request, response: Response,
                     keep: bool) -> None:
        if response.abort:
            return  # the caller closes the connection: no answer at all
        self._stats.by_status[response.status] += 1
        head = [
            f"HTTP/1.1 {response.status} {REASONS.get(response.status, 'Status')}",
            f"Content-Length: {len(response.body)}",
            f"Connection: {'keep-alive' if keep else 'close'}",
            *(f"{k}: {v}" for k, v in response.headers.items()),
        ]
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1"))
        body = response.body[: len(response.body) // 2] if response.drop else response.body
        if request.method != "HEAD":
            writer.write(body)
        await writer.drain()

    # ------------------------------------------------------------------ routing

    async def _dispatch(self, request: Request) -> Response:
        self._stats.requests += 1
        path = request.path.rstrip("/")
        if path == "/token" and request.method == "POST":
            self._stats.by_kind["token"] += 1
            return self._token(request)
        if path.startswith("/_sim/"):
            return self._control(request, path)
        upload = path.startswith("/upload/drive/v3/files")
        if not path.startswith("/drive/v3/") and not upload:
            return error_response(404, "notFound", f"Not Found: {path}")
        if request.method not in ("GET", "POST", "PATCH", "PUT", "DELETE"):
            return error_response(405, "methodNotAllowed", f"{request.method} is not simulated.")
        user = self._authorize(request)
        if isinstance(user, Response):
            return user
        limited = self._admit(user)
        if limited is not None:
            return limited
        config = self.config
        if config.error_rate and self._fault_rng.random() < config.error_rate:
            self._stats.server_errors += 1
            status = (500, 502, 503)[self._rng.randrange(3)]
            await self._latency()
            if status == 500:
                return error_response(500, "backendError", "Internal Error")
            return error_response(status, "backendError", "The service is currently unavailable.")
        await self._latency()
        try:
            if upload:
                return await self._upload(request, user, path[len("/upload/drive/v3/files"):])
            if request.method != "GET":
                return await self._write_metadata(request, path[len("/drive/v3/"):].split("/"))
        except WriteError as exc:
            return error_response(exc.status, exc.reason, exc.message)
        rest = path[len("/drive/v3/"):].split("/")
        try:
            if rest == ["files"]:
                self._stats.by_kind["list"] += 1
                return self._list(request)
            if rest == ["drives"]:
                self._stats.by_kind["drives"] += 1
                return self._drives(request)
            if len(rest) == 2 and rest[0] == "files":
                return self._get(request, rest[1])
            if len(rest) == 3 and rest[0] == "files" and rest[2] == "export":
                self._stats.by_kind["export"] += 1
                return self._export(request, rest[1])
        except QueryError as exc:
            return error_response(400, "invalid", f"Invalid Value: {exc}", locationType="parameter",
                          location="q")
        return error_response(404, "notFound", f"Not Found: {path}")

    def _control(self, request: Request, path: str) -> Response:
        if path == "/_sim/stats":
            return Response(200, self.stats())
        if path == "/_sim/tree":  # what a folder holds, for people rehearsing: [path, size, id]
            folder = request.query.get("folder", "root")
            return Response(200, {"folder": folder, "items": [
                [p, -1 if p.endswith("/") else len(item.content), item.id]
                for p, item in self.data.walk(folder)]})
        try:
            payload = json.loads(request.body or b"{}")
            if path == "/_sim/config":
                self.reconfigure(**payload)
            elif path == "/_sim/reset":
                self.reset()
            else:
                return error_response(404, "notFound", path)
        except (ValueError, TypeError) as exc:
            return error_response(400, "badRequest", str(exc))
        return Response(200, {"config": dataclasses.asdict(self.config)})

    # ------------------------------------------------------------------ auth and quota

    def _authorize(self, request: Request) -> str | Response:
        auth = request.headers.get("authorization", "")
        who = self.data.principal(auth[7:]) if auth.lower().startswith("bearer ") else None
        if who is None:
            self._stats.unauthorized += 1
            return Response(
                401,
                google_error(401, "authError", "Invalid Credentials", locationType="header",
                             location="Authorization"),
                headers={"WWW-Authenticate": 'Bearer realm="https://accounts.google.com/"'},
            )
        return who

    def _admit(self, user: str) -> Response | None:
        config = self.config
        now = time.monotonic()
        start, end = self._not_before.get(user, (0.0, 0.0))
        if start <= now < end:
            self._stats.early_after_retry_after += 1
        if config.queries_per_window:
            span = config.window_s * config.time_scale
            window = self._windows.setdefault(user, deque())
            while window and window[0] <= now - span:
                window.popleft()
            if len(window) >= config.queries_per_window:
                self._stats.rate_limited_403 += 1
                return error_response(403, "userRateLimitExceeded", USER_RATE_MESSAGE, domain="usageLimits",
                              extendedHelp="https://console.developers.google.com/apis/api/drive.googleapis.com/quotas?project=000000000000")
        if config.burst_limit:
            span = config.burst_window_s * config.time_scale
            burst = self._bursts.setdefault(user, deque())
            while burst and burst[0] <= now - span:
                burst.popleft()
            if len(burst) >= config.burst_limit:
                self._stats.rate_limited_429 += 1
                headers = {}
                if config.retry_after_s:
                    after = config.retry_after_s * config.time_scale
                    headers["Retry-After"] = str(max(1, math.ceil(after)) if after >= 1 else after)
                    # a grace for requests already on their way when this one was refused
                    self._not_before[user] = (now + min(0.1, after / 3), now + after * 0.95)
                response = error_response(429, "rateLimitExceeded", "Rate Limit Exceeded", domain="usageLimits")
                response.headers.update(headers)
                return response
            burst.append(now)
        if config.queries_per_window:
            window.append(now)
            self._stats.peak_in_window = max(self._stats.peak_in_window, len(window))
        return None

    async def _latency(self) -> None:
        low, high = self.config.latency_min_s, self.config.latency_max_s
        if high > 0:
            await asyncio.sleep(self._rng.uniform(low, high) * self.config.time_scale)

    def _token(self, request: Request) -> Response:
        form = {k: v[-1] for k, v in parse_qs(request.body.decode("latin-1")).items()}
        grant = form.get("grant_type", "")
        try:
            if grant == "urn:ietf:params:oauth:grant-type:jwt-bearer":
                who = self.data.exchange_jwt(form.get("assertion", ""), self.token_url, time.time())
            elif grant == "refresh_token":
                who = self.data.exchange_refresh(form.get("client_id", ""), form.get("client_secret", ""),
                                                 form.get("refresh_token", ""))
            else:
                self._stats.token_refused += 1
                return Response(400, {"error": "unsupported_grant_type",
                                       "error_description": "Invalid grant_type: " + grant[:40]})
        except ValueError as exc:
            self._stats.token_refused += 1
            kind = "invalid_client" if str(exc) == "Unauthorized" else "invalid_grant"
            return Response(400 if kind == "invalid_grant" else 401,
                             {"error": kind, "error_description": str(exc)})
        token, ttl = self.data.issue(who, self.config.token_ttl_s)
        self._stats.tokens_issued += 1
        return Response(200, {"access_token": token, "expires_in": int(ttl) if ttl >= 1 else ttl,
                               "token_type": "Bearer"})

    # ------------------------------------------------------------------ the API

    def _visible(self, item: Item | None, request: Request) -> Item | None:
        if item is None or (item.drive_id and not request.flag("supportsAllDrives")):
            return None
        return item

    def _not_found(self, file_id: str) -> Response:
        return error_response(404, "notFound", f"File not found: {file_id}.", locationType="parameter",
                      location="fileId")

    def _list(self, request: Request) -> Response:
        q = request.query.get("q", "")
        try:
            size = int(request.query.get("pageSize", "100"))
        except ValueError:
            size = 0
        if not 1 <= size <= 1000:
            return error_response(400, "invalid", f"Invalid value '{request.query.get('pageSize')}'. "
                          "Values must be within the range: [1, 1000]", locationType="parameter",
                          location="pageSize")
        corpora = request.query.get("corpora", "user")
        drive_id = request.query.get("driveId", "")
        shared = request.flag("includeItemsFromAllDrives")
        if drive_id and (corpora != "drive" or not shared or not request.flag("supportsAllDrives")):
            return error_response(400, "invalid", "The includeItemsFromAllDrives and supportsAllDrives "
                          "parameters must be set to true and corpora to drive when driveId is "
                          "specified.", locationType="parameter", location="driveId")
        if corpora == "drive" and not drive_id:
            return error_response(400, "invalid", "The driveId parameter must be specified when corpora "
                          "is drive.", locationType="parameter", location="corpora")
        mask = parse_fields(request.query.get("fields", ""))
        found = self.data.matching(q, shared=shared and corpora in ("drive", "allDrives"),
                                   drive_id=drive_id if corpora == "drive" else "")
        key = hashlib.sha1(f"{q}|{corpora}|{drive_id}".encode()).hexdigest()[:12]
        start = 0
        if request.query.get("pageToken"):
            try:
                token = json.loads(base64.urlsafe_b64decode(request.query["pageToken"]))
                assert token["k"] == key
                start = int(token["o"])
            except (ValueError, KeyError, AssertionError, TypeError):
                return error_response(400, "invalid", "Invalid Value", locationType="parameter",
                              location="pageToken")
        page = found[start : start + size]
        payload: dict[str, Any] = {
            "kind": "drive#fileList", "incompleteSearch": False,
            "files": [i.resource() for i in page],
        }
        if start + size < len(found):
            payload["nextPageToken"] = base64.urlsafe_b64encode(
                json.dumps({"k": key, "o": start + size}).encode()).decode()
        if mask is None and "fields" not in request.query:
            payload["files"] = [{k: f[k] for k in DEFAULT_FILE_FIELDS} for f in payload["files"]]
        return Response(200, project(payload, mask))

    def _drives(self, request: Request) -> Response:
        q = request.query.get("q", "")
        name = None
        if q:
            if not q.startswith("name = '") or not q.endswith("'"):
                raise QueryError("drives.list q: only name = '...' is simulated")
            name = q[len("name = '") : -1].replace("\\'", "'").replace("\\\\", "\\")
        with self.data.lock:
            known = list(self.data.drives.items())
        drives = [{"kind": "drive#drive", "id": d, "name": n} for d, n in known
                  if name is None or n == name]
        return Response(200, project({"kind": "drive#driveList", "drives": drives},
                                      parse_fields(request.query.get("fields", ""))))

    def _get(self, request: Request, file_id: str) -> Response:
        item = self._visible(self.data.get(file_id), request)
        media = request.query.get("alt") == "media"
        self._stats.by_kind["media" if media else "get"] += 1
        if item is None:
            return self._not_found(file_id)
        if not media:
            resource = item.resource()
            mask = parse_fields(request.query.get("fields", ""))
            if mask is None and "fields" not in request.query:
                resource = {k: resource[k] for k in DEFAULT_FILE_FIELDS}
            return Response(200, project(resource, mask))
        self._stats.media_by_file[item.id] += 1
        if item.native:
            return error_response(403, "fileNotDownloadable", "Only files with binary content can be "
                          "downloaded. Use Export with Docs Editors files.", locationType="parameter",
                          location="alt")
        data = item.content
        status, headers = 200, {"Content-Type": "application/octet-stream"}
        wanted = request.headers.get("range", "")
        if wanted.startswith("bytes="):
            first, _, last = wanted[6:].partition("-")
            start = int(first or 0)
            end = min(int(last), len(data) - 1) if last else len(data) - 1
            if start >= len(data) and len(data) > 0:
                return Response(416, google_error(416, "requestedRangeNotSatisfiable",
                                                   "Request range not satisfiable"),
                                 headers={"Content-Range": f"bytes */{len(data)}"})
            headers["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
            data, status = data[start : end + 1], 206
        self._media_n += 1
        drop = bool(self.config.drop_every and self._media_n % self.config.drop_every == 0
                    and len(data) > 1)
        if drop:
            self._stats.dropped += 1
        return Response(status, body=data, headers=headers, drop=drop)

    def _export(self, request: Request, file_id: str) -> Response:
        item = self.data.get(file_id)  # files.export has no supportsAllDrives: any drive
        if item is None:
            return self._not_found(file_id)
        self._stats.export_by_file[item.id] += 1
        mime = request.query.get("mimeType", "")
        if not item.native or item.mime == FOLDER:
            return error_response(403, "fileNotExportable", "Export only supports Docs Editors files.")
        if mime not in EXPORT_FORMATS.get(item.mime, ()):
            return error_response(400, "badRequest", "The requested conversion is not supported.",
                          locationType="parameter", location="convertTo")
        data = export(item, mime)
        if len(data) > self.config.export_limit:
            return error_response(403, "exportSizeLimitExceeded", "This file is too large to be exported.")
        return Response(200, body=data, headers={"Content-Type": mime})


class SimHandle:
    """A simulator running on its own thread. ``data`` is thread-safe; the rest goes
    through the simulator's loop."""

    def __init__(self, sim: DriveSimulator, loop: asyncio.AbstractEventLoop) -> None:
        self._sim = sim
        self._loop = loop
        self.data = sim.data

    @property
    def base_url(self) -> str:
        return self._sim.base_url

    @property
    def api_url(self) -> str:
        """What ``sources.gdrive_api_url`` takes (docmill adds ``/drive/v3``)."""
        return self._sim.base_url

    @property
    def token_url(self) -> str:
        """What ``sources.gdrive_token_url`` takes."""
        return self._sim.token_url

    def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        async def run() -> Any:
            return fn(*args, **kwargs)

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(timeout=30)

    def reconfigure(self, **changes: Any) -> None:
        self._call(self._sim.reconfigure, **changes)

    def reset(self) -> None:
        self._call(self._sim.reset)

    def stats(self) -> dict[str, Any]:
        result: dict[str, Any] = self._call(self._sim.stats)
        return result

    def release_uploads(self) -> None:
        """Requests held by ``hold_uploads`` go on (those held ``before`` are dropped)."""
        self._call(self._sim.release_uploads)

    def service_account(self, email: str = "docmill-robot@sim-project.iam.gserviceaccount.com") -> dict[str, Any]:
        """A service account the token endpoint accepts: its key file's JSON."""
        return self.data.add_service_account(email, self.token_url)

    def authorized_user(self, who: str = "user@example.com") -> dict[str, str]:
        return self.data.add_authorized_user(who)

    def access_token(self, principal: str = "user@example.com") -> str:
        return self.data.add_access_token(principal)


@contextlib.contextmanager
def serve_in_thread(config: DriveSimConfig | None = None, host: str = "127.0.0.1",
                    port: int = 0, data: DriveData | None = None) -> Iterator[SimHandle]:
    """Run a simulator on a daemon thread for the ``with`` block (port 0 = any free port)."""
    sim = DriveSimulator(config, data)
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

    thread = threading.Thread(target=main, name="drive-sim", daemon=True)
    thread.start()
    ready.wait()
    if failure:
        raise failure[0]
    try:
        yield SimHandle(sim, loop)
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=30)


# ---------------------------------------------------------------------- demo and CLI


def seed_demo(data: DriveData) -> dict[str, str]:
    """A small tree: a folder with a sub-folder (a PDF, a text file, a Google Doc, a Sheet,
    Slides, a Form), and a shared drive ``Finance`` with a folder ``2024``."""
    from docmill.testkit.labelled import make_pdf

    root = data.add_folder("Reports")
    sub = data.add_folder("Q1", parent=root)
    data.add_file("summary.pdf", make_pdf(["Quarterly summary\nRevenue 1,204,000 EUR"]), parent=root,
                  mime="application/pdf")
    data.add_file("notes.txt", b"Board meeting notes\nNext review: June\n", parent=root,
                  mime="text/plain")
    data.add_native("Plan 2025", "document", ["Plan 2025\nHire two engineers", "Budget follows"],
                    parent=sub)
    data.add_native("Budget", "spreadsheet", ["Item\tAmount", "Laptops\t4200", "Travel\t1800"],
                    parent=sub)
    data.add_native("Kick-off", "presentation", ["Kick-off\nAgenda", "Timeline"], parent=sub)
    data.add_native("Survey", "form", ["Question 1"], parent=sub)
    finance = data.add_shared_drive("Finance")
    year = data.add_folder("2024", parent=finance)
    data.add_file("invoice-0042.pdf", make_pdf(["Invoice 0042\nTotal 310.00 EUR"]), parent=year,
                  mime="application/pdf")
    return {"folder": root, "shared_drive": "Finance"}


def upload_tree(data: DriveData, folder: Path, parent: str = "root") -> tuple[str, int]:
    """``folder``'s files, sub-folders kept, in a new Drive folder of its name under
    ``parent``: (its id, the files added)."""
    top = data.add_folder(folder.name, parent)
    count = 0
    for path in sorted(folder.iterdir()):
        if path.is_dir():
            count += upload_tree(data, path, top)[1]
        elif path.is_file():
            mime = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
            data.add_file(path.name, path.read_bytes(), top, mime)
            count += 1
    return top, count


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m docmill.testkit.drive_sim",
                                description="A local Google Drive API v3 with quotas and faults.")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8090)
    p.add_argument("--quota", type=int, default=0, help="queries per user per 100 s (0: none)")
    p.add_argument("--burst", type=int, default=0, help="queries per user per second (429)")
    p.add_argument("--error-rate", type=float, default=0.0, help="share of 500/502/503")
    p.add_argument("--latency", type=float, nargs=2, default=(0.0, 0.0), metavar=("MIN", "MAX"))
    p.add_argument("--demo", type=Path, metavar="DIR",
                   help="seed a demo tree and write a service-account key to DIR/key.json")
    p.add_argument("--upload", type=Path, action="append", default=[], metavar="DIR",
                   help="serve DIR's files (sub-folders kept) in a Drive folder named after it")
    p.add_argument("--folder", action="append", default=[], metavar="NAME",
                   help="an empty folder in My Drive (a destination to file into)")
    p.add_argument("--key", type=Path, metavar="FILE",
                   help="write a service-account key the token endpoint accepts to FILE")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    config = DriveSimConfig(queries_per_window=args.quota, burst_limit=args.burst,
                            error_rate=args.error_rate, latency_min_s=args.latency[0],
                            latency_max_s=args.latency[1], seed=args.seed)

    async def serve() -> None:
        sim = DriveSimulator(config)
        await sim.start(args.host, args.port)
        print(f"drive_sim listening on {sim.base_url} (token endpoint {sim.token_url})", flush=True)
        if args.demo:
            found = seed_demo(sim.data)
            args.demo.mkdir(parents=True, exist_ok=True)
            key = sim.data.add_service_account("docmill-demo@sim-project.iam.gserviceaccount.com",
                                               sim.token_url)
            path = args.demo / "key.json"
            path.write_text(json.dumps(key, indent=2))
            path.chmod(0o600)
            print(f"demo: folder gdrive://{found['folder']}, shared drive "
                  f"gdrive://shared/{found['shared_drive']}, service-account key {path}", flush=True)
        for folder in args.upload:
            top, count = upload_tree(sim.data, folder)
            print(f"folder {folder.name}: gdrive://{top} ({count} files)", flush=True)
        for name in args.folder:
            print(f"folder {name}: gdrive://{sim.data.add_folder(name)}", flush=True)
        if args.key:
            key = sim.data.add_service_account("docmill@sim-project.iam.gserviceaccount.com",
                                               sim.token_url)
            args.key.parent.mkdir(parents=True, exist_ok=True)
            args.key.write_text(json.dumps(key, indent=2))
            args.key.chmod(0o600)
            print(f"service-account key {args.key}", flush=True)
        try:
            await asyncio.Event().wait()
        finally:
            await sim.stop()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
