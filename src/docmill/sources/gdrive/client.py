"""A small Drive API v3 client over plain HTTP (httpx), reusable beyond sources.

Why not ``google-api-python-client``: it pulls in google-auth, httplib2, uritemplate
and a discovery document (tens of MB imported, its own retries and its own threads
model), for the five calls docmill makes. Plain HTTP keeps the import light (the CLI
starts fast), lets the store's :class:`~docmill.sources.throttle.Retrier` own every
retry, and makes the whole client testable against a loopback simulator by changing
two base URLs (``sources.gdrive_api_url``, ``sources.gdrive_token_url``).

What it does, and does not:

* every Drive query first waits its turn in the per-user :class:`QueryQuota`
  (``sources.gdrive_queries_per_100s``; its pace halves on each throttling answer and
  comes back with successes), then for any ``Retry-After`` an answer sent (no thread
  sends while one runs); the token endpoint is not a Drive query. The quota is the
  account's, not the client's: the clients a run makes for one account (its source,
  each Drive delivery) share one :class:`AccountPace` (:func:`account_pace`);
* a bearer token from :mod:`.auth`, fetched or refreshed before it expires, under a
  lock (one refresh for all threads); a 401 refreshes once and asks again;
* answers are translated in exactly one place (:meth:`DriveClient._translate`):
  403 ``userRateLimitExceeded``/``rateLimitExceeded``, 429, 5xx and dropped connections
  are :class:`TransientError` (throttled ones pause the store), 404 is
  ``BackendError(missing=True)``, 403 ``exportSizeLimitExceeded`` is
  ``BackendError(too_large=True)``, anything else a ``BackendError`` naming the reason;
* it never retries (the caller's ``Retrier.call`` does) and never writes files;
* no message holds a secret: every one passes :meth:`DriveClient.scrub` (the run's
  credential variables, the key, client secret, refresh token, every access token).

A delivery that writes to Drive (:mod:`docmill.deliver.gdrive`) reuses it:
``DriveConfig(scope=SCOPE_FULL)`` and :meth:`DriveClient.request` for any method and
path (an upload is a ``POST`` to ``/upload/drive/v3/files?uploadType=multipart|resumable``,
a resumable session's chunks go to the absolute URI Drive answered, which must be on
the API's own origin: the bearer token is never sent elsewhere), with the same quota,
token, translation and scrubbing, wrapped in its own ``Retrier.call``. A refusal of the
account (401, a 403 that is not a rate limit) is ``BackendError(denied=True)``.
"""

from __future__ import annotations

import email.utils
import json
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx

from docmill.settings import SourceSettings
from docmill.sources.backend import BackendError, Secrets
from docmill.sources.gdrive.auth import AccessToken, Credentials, refresh_due
from docmill.sources.gdrive.quota import QueryQuota
from docmill.sources.throttle import TransientError

API_PATH = "/drive/v3"
SCOPE_READONLY = "https://www.googleapis.com/auth/drive.readonly"
# a delivery files documents into folders people made and moves files it did not create:
# drive.file (only the app's own files) cannot see either
SCOPE_FULL = "https://www.googleapis.com/auth/drive"
CHUNK = 1 << 20  # bytes read from a download at a time
EXPORT_LIMIT = 10 * 1024 * 1024  # Google exports at most 10 MB of a native document
_ERROR_BODY_MAX = 64 * 1024
_THROTTLE_REASONS = {"userRateLimitExceeded", "rateLimitExceeded"}
_FILE_REASONS = {  # a 403 that is about this file, not the account: fail the file
    "cannotDownloadAbusiveFile": "Google flagged this file as abusive and will not serve it",
    "downloadQuotaExceeded": "this file was downloaded too often; Google refuses it for now",
    "cannotExportFile": "this file cannot be exported",
    "fileNotDownloadable": "this file cannot be downloaded (only exported)",
}
_ACCOUNT_REASONS = {  # a 403 about the account or the project: nothing is readable
    "dailyLimitExceeded", "quotaExceeded", "accessNotConfigured", "insufficientPermissions",
    "domainPolicy", "appNotAuthorizedToFile", "insufficientFilePermissions", "forbidden",
}
_WRITE_REASONS = {  # a 403 a write meets: it fails for good (no retry helps)
    "storageQuotaExceeded": "the Drive is full (its storage quota is used up)",
    "teamDriveFileLimitExceeded": "the shared drive holds as many items as Drive allows",
    "numChildrenInNonRootLimitExceeded": "the folder holds as many items as Drive allows",
    "cannotAddParent": "Drive refuses a second parent for this file",
    "teamDrivesParentLimit": "an item in a shared drive has exactly one parent",
    "fileWriterTeamDriveMoveInDisabled": "the shared drive does not let files be moved in",
    "teamDrivesFolderMoveInNotSupported": "folders cannot be moved into a shared drive",
    "parentNotAFolder": "the parent named is not a folder",
}


@dataclass(frozen=True)
class DriveConfig:
    """Where the API and the token endpoint are, and the per-user quota."""

    api_url: str = "https://www.googleapis.com"
    token_url: str = "https://oauth2.googleapis.com/token"
    queries_per_100s: float = 1000.0
    scope: str = SCOPE_READONLY
    timeout_s: float = 60.0

    @classmethod
    def from_settings(cls, options: SourceSettings, scope: str = SCOPE_READONLY) -> DriveConfig:
        return cls(
            api_url=options.gdrive_api_url.rstrip("/"),
            token_url=options.gdrive_token_url,
            queries_per_100s=float(options.gdrive_queries_per_100s),
            scope=scope,
        )


def retry_after(headers: Mapping[str, str], now_epoch: float) -> float | None:
    """``Retry-After`` in seconds (given as seconds or as an HTTP date)."""
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
    return max(0.0, when.timestamp() - now_epoch)


def _error_fields(body: bytes) -> tuple[str, str]:
    """(reason, message) of a Google JSON error body (API or OAuth shape)."""
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return "", ""
    if not isinstance(payload, dict):
        return "", ""
    error = payload.get("error")
    if isinstance(error, dict):  # the API's {"error": {"errors": [...], "code", "message"}}
        errors = error.get("errors")
        first = errors[0] if isinstance(errors, list) and errors and isinstance(errors[0], dict) else {}
        reason = str(first.get("reason") or error.get("status") or "")
        return reason, str(error.get("message") or first.get("message") or "")
    if isinstance(error, str):  # the token endpoint's {"error": "invalid_grant", ...}
        return error, str(payload.get("error_description") or "")
    return "", ""


@dataclass(eq=False)
class AccountPace:
    """One account's queries: its :class:`QueryQuota`, the lock around it and any
    ``Retry-After`` Google sent (times on ``time.monotonic``'s clock)."""

    quota: QueryQuota
    lock: threading.Lock = field(default_factory=threading.Lock)
    hold_until: float = 0.0  # no query before this


# the paces of the accounts the clients of this process query as, while one is in use
_PACES: weakref.WeakValueDictionary[tuple[str, str, float], AccountPace] = weakref.WeakValueDictionary()
_PACES_LOCK = threading.Lock()


def account_pace(config: DriveConfig, credentials: Credentials) -> AccountPace:
    """The pace every client of this process shares for ``credentials`` at ``config``'s
    API: Google counts a user's queries whoever sends them, so a run's source and each
    of its Drive deliveries (and a service's jobs) spend one quota, not one each."""
    key = (config.api_url, credentials.describe, float(config.queries_per_100s))
    with _PACES_LOCK:
        pace = _PACES.get(key)
        if pace is None:
            pace = AccountPace(QueryQuota(config.queries_per_100s))
            _PACES[key] = pace
        return pace


class DriveClient:
    """Drive API v3 calls for one account (thread-safe; see the module docstring).
    ``pace``: the account's quota, shared with other clients (:func:`account_pace`);
    by default one of its own."""

    @classmethod
    def of_account(cls, config: DriveConfig, credentials: Credentials, *, secrets: Secrets | None) -> DriveClient:
        """A client that spends the account's quota with every other client of this
        process for the same account (:func:`account_pace`): a run's source and its
        Drive deliveries."""
        return cls(config, credentials, secrets=secrets, pace=account_pace(config, credentials))

    def __init__(
        self,
        config: DriveConfig,
        credentials: Credentials,
        *,
        secrets: Secrets | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        transport: httpx.BaseTransport | None = None,
        pace: AccountPace | None = None,
    ) -> None:
        self.config = config
        self.credentials = credentials
        self._secrets = secrets or Secrets(frozenset())
        self._clock = clock
        self._wall_clock = wall_clock
        self._sleep = sleep
        self._http = httpx.Client(
            timeout=httpx.Timeout(config.timeout_s, connect=15.0),
            transport=transport,
            follow_redirects=True,  # a media redirect drops the Authorization header
            headers={"User-Agent": "docmill (gzip)", "Accept-Encoding": "gzip"},
        )
        self._pace = pace or AccountPace(QueryQuota(config.queries_per_100s))
        self._token: AccessToken | None = None
        self._token_lock = threading.Lock()
        self._issued: set[str] = set()
        self.stats: dict[str, int] = {}  # queries, tokens, token_refreshes, unauthorized
        self._stats_lock = threading.Lock()

    # --- secrets and counters -----------------------------------------------------------

    def scrub(self, text: str) -> str:
        """``text`` with every known secret replaced by ``[secret]``."""
        text = self._secrets.scrub(text)
        own = [*self.credentials.secrets(), *self._issued]
        for value in sorted((v for v in own if len(v) >= 6), key=len, reverse=True):
            if value in text:
                text = text.replace(value, "[secret]")
        return text

    def _count(self, key: str) -> None:
        with self._stats_lock:
            self.stats[key] = self.stats.get(key, 0) + 1

    # --- the bearer token ---------------------------------------------------------------

    def _bearer(self) -> str:
        with self._token_lock:
            token = self._token
            if token is None or refresh_due(token, self._clock()):
                token = self._token = self._fetch_token()
            return token.value

    def _invalidate(self, value: str) -> None:
        with self._token_lock:
            if self._token is not None and self._token.value == value:
                self._token = None

    def _fetch_token(self) -> AccessToken:
        now = self._clock()
        form = self.credentials.token_form(self._wall_clock(), self.config.token_url, self.config.scope)
        if form is None:
            value = self.credentials.given_token()
            self._count("token_reads")
            return AccessToken(value, issued_at=now)
        what = f"token endpoint ({self.credentials.describe})"
        try:
            response = self._http.post(self.config.token_url, data=form)
        except httpx.TransportError as exc:
            raise TransientError(f"{what}: connection lost ({type(exc).__name__})",
                                 reason="connection") from None
        if response.status_code != 200:
            raise self._translate(response.status_code, response.headers, response.content[:_ERROR_BODY_MAX], what)
        try:
            payload = response.json()
            value = str(payload["access_token"])
            lifetime = float(payload.get("expires_in", 3600))
        except (ValueError, KeyError, TypeError):
            raise BackendError(f"{what}: an answer without an access token") from None
        self._issued.add(value)
        self._count("tokens")
        return AccessToken(value, issued_at=now, expires_at=now + lifetime)

    # --- requests -----------------------------------------------------------------------

    def _wait_quota(self) -> None:
        """Wait for this query's slot in the quota, then for any ``Retry-After`` that
        arrived meanwhile: no query leaves while one runs, from any thread."""
        pace = self._pace
        with pace.lock:
            wait = pace.quota.take(self._clock())
        if wait > 0:
            self._sleep(wait)
        while True:
            with pace.lock:
                hold = pace.hold_until - self._clock()
            if hold <= 0:
                return
            self._sleep(hold)

    def _hold(self, seconds: float) -> None:
        pace = self._pace
        with pace.lock:
            pace.hold_until = max(pace.hold_until, self._clock() + seconds)

    def _throttled(self, after: float | None) -> None:
        """A throttling answer: the quota's pace halves; a Retry-After holds every query."""
        pace = self._pace
        with pace.lock:
            pace.quota.throttled(self._clock())
            if after:
                pace.hold_until = max(pace.hold_until, self._clock() + after)

    def request(self, method: str, path: str, params: Mapping[str, Any], what: str, *,
                headers: Mapping[str, str] | None = None, content: bytes | None = None,
                stream: bool = False) -> httpx.Response:
        """One Drive query, ``path`` below the API's base URL (``/drive/v3/files``,
        ``/upload/drive/v3/files`` for a delivery's upload): its turn in the quota, the
        bearer token (a 401 fetches it again and asks once more), the answer if it is a
        success (a streamed one is the caller's to close), else the translated error
        raised. ``what`` names the object in messages. ``path`` may also be an absolute
        URL on the API's own origin (a resumable upload's session URI)."""
        url = httpx.URL(self._url(path))
        query = {**dict(url.params), **params}  # httpx would drop the URL's own query
        url = url.copy_with(query=None)
        for attempt in (1, 2):
            self._wait_quota()
            self._count("queries")
            token = self._bearer()
            request = self._http.build_request(
                method, url, params=query, content=content,
                headers={**(headers or {}), "Authorization": f"Bearer {token}"},
            )
            try:
                response = self._http.send(request, stream=stream)
            except httpx.TransportError as exc:
                raise TransientError(self.scrub(f"{what}: connection lost ({type(exc).__name__})"),
                                     reason="connection") from None
            if response.status_code < 400:
                with self._pace.lock:
                    self._pace.quota.succeeded()
                return response
            try:
                body = response.read()[:_ERROR_BODY_MAX]
            except httpx.TransportError:
                body = b""
            finally:
                response.close()
            if response.status_code == 401 and attempt == 1:
                self._count("unauthorized")
                self._invalidate(token)
                continue
            raise self._translate(response.status_code, response.headers, body, what)
        raise AssertionError("unreachable")  # pragma: no cover

    def _url(self, path: str) -> str:
        if not path.startswith(("http://", "https://")):
            return f"{self.config.api_url}{path}"
        given, api = urlsplit(path), urlsplit(self.config.api_url)
        if (given.scheme, given.netloc) != (api.scheme, api.netloc):
            # a session URI elsewhere would receive the bearer token: never followed
            raise BackendError(self.scrub(f"Drive answered an upload address on another host "
                                          f"({given.netloc or '?'}); not followed"))
        return path

    def _translate(self, status: int, headers: Mapping[str, str], body: bytes, what: str) -> Exception:
        """The one place Google's answers become TransientError / BackendError."""
        reason, message = _error_fields(body)
        after = retry_after(headers, self._wall_clock())
        label = f"{status} {reason}".strip()
        if status == 429 or (status == 403 and reason in _THROTTLE_REASONS):
            self._throttled(after)
            return TransientError(self.scrub(f"{what}: {label} (slow down)"), retry_after_s=after,
                                  throttled=True, reason=reason or str(status))
        if status >= 500:
            if after:
                self._hold(after)
            return TransientError(self.scrub(f"{what}: {label}"), retry_after_s=after,
                                  throttled=status == 503, reason=str(status))
        if status == 404:
            return BackendError(self.scrub(f"{what}: not found (or not shared with "
                                           f"{self.credentials.describe})"), missing=True)
        if status == 403 and reason == "exportSizeLimitExceeded":
            return BackendError(
                self.scrub(f"{what}: Google exports at most 10 MB of a document and this one "
                           "is larger (403 exportSizeLimitExceeded); download it from Drive by "
                           "hand, or split it"), too_large=True,
            )
        if status == 403 and reason in _FILE_REASONS:
            return BackendError(self.scrub(f"{what}: {_FILE_REASONS[reason]} (403 {reason})"))
        if status == 403 and reason in _WRITE_REASONS:
            return BackendError(self.scrub(f"{what}: {_WRITE_REASONS[reason]} (403 {reason})"))
        if status == 416:
            return BackendError(self.scrub(f"{what}: the file is shorter than the part asked "
                                           "for: it changed after it was listed"), changed=True)
        if status in (400, 401) and reason in ("invalid_grant", "invalid_client", "unauthorized_client",
                                                "invalid_request", "access_denied"):
            return BackendError(self.scrub(
                f"{what}: the token endpoint refused {self.credentials.describe} ({reason}"
                f"{': ' + message if message else ''}); check the credentials file"), denied=True)
        if status == 401:
            return BackendError(self.scrub(
                f"{what}: 401 {reason or 'unauthorized'}: the token of "
                f"{self.credentials.describe} is not accepted"), denied=True)
        if status == 403 and (reason in _ACCOUNT_REASONS or not reason):
            return BackendError(self.scrub(
                f"{what}: access denied (403 {reason or 'forbidden'}"
                f"{': ' + message if message else ''}) for {self.credentials.describe}"),
                denied=True)
        return BackendError(self.scrub(f"{what}: {label}{': ' + message if message else ''}"))

    # --- the calls ------------------------------------------------------------------------

    def get_json(self, path: str, params: Mapping[str, Any], what: str) -> dict[str, Any]:
        response = self.request("GET", API_PATH + path, params, what)
        try:
            payload = response.json()
        except ValueError:
            raise TransientError(self.scrub(f"{what}: an answer that is not JSON"),
                                 reason="bad_answer") from None
        if not isinstance(payload, dict):
            raise BackendError(self.scrub(f"{what}: an unexpected answer"))
        return payload

    def get_file(self, file_id: str, fields: str, what: str) -> dict[str, Any]:
        """``files.get`` (metadata)."""
        return self.get_json(f"/files/{file_id}", {"fields": fields, "supportsAllDrives": "true"}, what)

    def list_files(self, q: str, fields: str, what: str, *, page_size: int = 1000,
                   page_token: str | None = None, drive_id: str = "") -> dict[str, Any]:
        """One page of ``files.list``; with ``drive_id``, inside that shared drive."""
        params: dict[str, Any] = {
            "q": q, "fields": fields, "pageSize": page_size,
            "supportsAllDrives": "true", "includeItemsFromAllDrives": "true",
        }
        if drive_id:
            params.update(corpora="drive", driveId=drive_id)
        if page_token:
            params["pageToken"] = page_token
        return self.get_json("/files", params, what)

    def list_drives(self, what: str, *, q: str = "", page_token: str | None = None) -> dict[str, Any]:
        """One page of ``drives.list`` (the shared drives the account can see)."""
        params: dict[str, Any] = {"pageSize": 100, "fields": "nextPageToken,drives(id,name)"}
        if q:
            params["q"] = q
        if page_token:
            params["pageToken"] = page_token
        return self.get_json("/drives", params, what)

    def download(self, file_id: str, offset: int, what: str) -> Iterator[bytes]:
        """A binary file's bytes from ``offset`` on (``alt=media`` with ``Range``), in
        chunks, one query. A dropped stream raises TransientError."""
        # bytes as stored: a gzip-encoded answer would not match the Range offsets
        headers = {"Accept-Encoding": "identity"}
        if offset:
            headers["Range"] = f"bytes={offset}-"
        response = self.request("GET", f"{API_PATH}/files/{file_id}",
                                {"alt": "media", "supportsAllDrives": "true"},
                                what, headers=headers, stream=True)
        skip = offset if offset and response.status_code == 200 else 0  # Range ignored
        buffer = bytearray()
        try:
            try:
                for piece in response.iter_bytes():  # as the bytes arrive
                    if skip:
                        cut = min(skip, len(piece))
                        piece, skip = piece[cut:], skip - cut
                    buffer += piece
                    if len(buffer) >= CHUNK:
                        yield bytes(buffer)
                        buffer.clear()
            except httpx.TransportError as exc:
                if buffer:  # what did arrive is kept: the caller resumes after it
                    yield bytes(buffer)
                raise TransientError(self.scrub(f"{what}: connection lost ({type(exc).__name__})"),
                                     reason="connection") from None
            if buffer:
                yield bytes(buffer)
        finally:
            response.close()

    def export(self, file_id: str, mime: str, what: str, limit: int = EXPORT_LIMIT) -> bytes:
        """A Google-native document exported as ``mime``, whole (at most ``limit`` bytes:
        an export cannot be resumed, so it is only handed on once complete)."""
        response = self.request("GET", f"{API_PATH}/files/{file_id}/export", {"mimeType": mime},
                                what, stream=True)
        parts: list[bytes] = []
        size = 0
        try:
            for chunk in response.iter_bytes(CHUNK):
                size += len(chunk)
                if size > limit:
                    raise BackendError(self.scrub(
                        f"{what}: its export is over {limit // (1024 * 1024)} MB (Google's "
                        "export limit)"), too_large=True)
                parts.append(chunk)
        except httpx.TransportError as exc:
            raise TransientError(self.scrub(f"{what}: connection lost ({type(exc).__name__})"),
                                 reason="connection") from None
        finally:
            response.close()
        return b"".join(parts)

    def close(self) -> None:
        self._http.close()
