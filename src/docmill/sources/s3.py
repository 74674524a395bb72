"""The S3 backend (``s3://bucket/prefix``; ``docmill[s3]`` installs s3fs).

Credentials, region and endpoint come as the AWS CLI finds them (botocore's chain:
``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``/``AWS_SESSION_TOKEN``, ``AWS_PROFILE``
and the shared files, ``AWS_ENDPOINT_URL``/``AWS_ENDPOINT_URL_S3``, instance roles);
docmill never reads or stores them.

Listing walks ``ListObjectsV2`` one page (1,000 keys) at a time, without a delimiter, so
a prefix of a million objects costs one page of memory (``fs.find`` would hold the whole
listing). A SOURCE that names an existing key is that one object; any other is a folder
(``prefix/``). Every object's change token is its ETag, from the listing.

Downloads are one ``GetObject`` streamed in chunks, with ``If-Match`` on the listed ETag
(an object replaced since it was listed is not mixed with its old bytes: it fails
``changed`` and the next run picks the new version up); a dropped stream resumes with a
``Range`` from the last byte received.

With ``sources.s3_get = "lean"`` (the default) these three requests (ListObjectsV2,
HeadObject, GetObject) go through :mod:`docmill.sources.s3_get`: a pooled keep-alive
connection, signed here, everything else resolved once by botocore (~0.5 ms of the
driver's CPU per object instead of ~2 ms, and s3fs not even imported); with ``"s3fs"``,
and wherever the lean path cannot stand in for botocore, through s3fs's client, as are
deliveries' requests (:meth:`S3Backend.request`). s3fs's and botocore's own retries are off: the
store's :class:`~docmill.sources.throttle.Retrier` owns throttling and retries, and
:meth:`S3Backend._translate` is the one place botocore's errors (and the lean path's,
shaped as botocore's) are read.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Callable, Iterator
from typing import Any

from docmill.sources.backend import BackendContext, BackendError, RemoteObject
from docmill.sources.throttle import TransientError
from docmill.sources.urls import RemoteUrl

PAGE_KEYS = 1000
CHUNK = 1 << 20  # bytes read from a response body at a time
# error codes S3 (and S3-compatible stores) use to ask for less
_THROTTLE_CODES = {
    "SlowDown", "Throttling", "ThrottlingException", "RequestLimitExceeded",
    "TooManyRequests", "RequestThrottled", "ServiceUnavailable", "503", "429",
}
_TRANSIENT_CODES = {"InternalError", "RequestTimeout", "RequestTimeTooSkewed", "500", "502", "504"}
_MISSING_CODES = {"NoSuchKey", "NotFound", "404"}
# exception class names (anywhere in the chain) that mean the connection dropped
_CONNECTION_ERRORS = (
    "EndpointConnectionError", "ConnectionClosedError", "ReadTimeoutError",
    "ConnectTimeoutError", "ResponseStreamingError", "IncompleteReadError",
    "ClientPayloadError", "ServerDisconnectedError", "ClientConnectorError",
    "ClientOSError", "ConnectionResetError", "ConnectionRefusedError", "TimeoutError",
    "ConnectionError", "IncompleteRead", "ProtocolError", "HTTPClientError", "BadStatusLine",
)


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    found: BaseException | None = exc
    while found is not None and id(found) not in seen:
        seen.add(id(found))
        yield found
        found = found.__cause__ or found.__context__


def _retry_after(headers: dict[str, Any]) -> float | None:
    value = headers.get("retry-after") or headers.get("Retry-After")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


class S3Backend:
    """One bucket (see the module docstring)."""

    def __init__(self, context: BackendContext) -> None:
        from importlib.util import find_spec

        if find_spec("s3fs") is None:
            raise BackendError(
                "s3:// sources need s3fs (No module named 's3fs'): pip install 'docmill[s3]'"
            )
        self.bucket = context.store.netloc
        self._secrets = context.secrets
        self._s3fs: Any = None  # s3fs.S3FileSystem, made on first use (its import: ~0.3 s)
        self._fs_lock = threading.Lock()
        self._retrier = context.retrier
        self._lean_wanted = getattr(context.options, "s3_get", "lean") == "lean"
        self._lean: Any = None  # s3_get.LeanGetter once opened (first request)
        self._lean_lock = threading.Lock()

    @property
    def _fs(self) -> Any:
        with self._fs_lock:
            if self._s3fs is None:
                try:
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        import s3fs
                except ImportError as exc:
                    raise BackendError(
                        f"s3:// sources need s3fs ({exc}): pip install 'docmill[s3]'"
                    ) from None
                fs = s3fs.S3FileSystem(
                    skip_instance_cache=True,
                    # one try each: the store's Retrier owns the retries and their backoff
                    config_kwargs={"retries": {"total_max_attempts": 1}},
                )
                fs.retries = 1
                self._s3fs = fs
            return self._s3fs

    # --- the one place botocore's and s3fs's errors are read --------------------------

    def _translate(self, exc: BaseException, what: str) -> Exception:
        for err in _chain(exc):
            response = getattr(err, "response", None)
            if isinstance(response, dict) and "Error" in response:
                code = str(response["Error"].get("Code", ""))
                meta = response.get("ResponseMetadata", {})
                status = int(meta.get("HTTPStatusCode") or 0)
                after = _retry_after(meta.get("HTTPHeaders", {}) or {})
                if code in _THROTTLE_CODES or status in (429, 503):
                    reason = str(status) if status else code
                    return TransientError(f"{what}: {code or status} (slow down)",
                                          retry_after_s=after, throttled=True, reason=reason)
                if code in _TRANSIENT_CODES or status >= 500:
                    return TransientError(f"{what}: {code or status}", retry_after_s=after,
                                          reason=str(status or code))
                if code in _MISSING_CODES:
                    return BackendError(f"{what}: not found", missing=True)
                if code == "PreconditionFailed" or status == 412:
                    return BackendError(
                        f"{what}: the object changed after it was listed (a new version "
                        "is picked up by the next run)", changed=True,
                    )
                if code == "NoSuchBucket":
                    return BackendError(f"{what}: the bucket {self.bucket} does not exist")
                if code in ("AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch",
                            "ExpiredToken", "InvalidToken", "403") or status == 403:
                    return BackendError(
                        f"{what}: access denied ({code or status}): check the credentials "
                        "(AWS_PROFILE, the AWS_* variables, the shared credentials file)",
                        denied=True,
                    )
                message = str(response["Error"].get("Message") or code or status)
                return BackendError(self._secrets.scrub(f"{what}: {message}"))
        for err in _chain(exc):
            if any(c.__name__ in _CONNECTION_ERRORS for c in type(err).__mro__):
                return TransientError(f"{what}: connection lost ({type(err).__name__})",
                                      reason="connection")
        for err in _chain(exc):
            if "Credentials" in type(err).__name__:  # NoCredentialsError, PartialCredentials...
                return BackendError(
                    f"{what}: no AWS credentials found (set AWS_PROFILE or the AWS_* "
                    "variables, as for the AWS CLI)"
                )
        if isinstance(exc, FileNotFoundError):
            return BackendError(f"{what}: not found", missing=True)
        return BackendError(self._secrets.scrub(f"{what}: {type(exc).__name__}: {exc}"))

    def _call(self, method: str, what: str, *, lean: bool = False, **kwargs: Any) -> Any:
        """One request, on the lean client where ``lean`` and it is open (HeadObject and
        ListObjectsV2 as this backend asks them), else on s3fs's."""
        getter = self._getter() if lean else None
        if getter is not None:
            from docmill.sources.s3_get import Unsupported

            try:
                if method == "head_object":
                    return getter.head(kwargs["Key"])
                return getter.list_page(kwargs["Prefix"], kwargs.get("ContinuationToken"),
                                        kwargs["MaxKeys"])
            except Unsupported:  # e.g. a bucket of another region: botocore's client follows
                self._lean_wanted = False
            except Exception as exc:
                raise self._translate(exc, what) from None
        try:
            return self._fs.call_s3(method, **kwargs)
        except Exception as exc:
            raise self._translate(exc, what) from None

    def request(self, method: str, what: str, **kwargs: Any) -> Any:
        """One S3 API call on this bucket's client (``put_object``, ``head_object``…),
        its errors translated as every other call's (``what`` names the object in
        messages); no retry here: the caller's retrier owns them. A delivery to a
        bucket (``docmill.deliver.s3``) writes through this."""
        return self._call(method, what, **kwargs)

    def _sync(self, what: str, fn: Callable[..., Any], *args: Any) -> Any:
        from fsspec.asyn import sync

        try:
            return sync(self._fs.loop, fn, *args)
        except Exception as exc:
            raise self._translate(exc, what) from None

    # --- listing ------------------------------------------------------------------------

    def _object(self, key: str, size: int, etag: str, modified: Any) -> RemoteObject:
        mtime_ns = int(modified.timestamp() * 1e9) if hasattr(modified, "timestamp") else 0
        return RemoteObject(f"s3://{self.bucket}/{key}", int(size), etag.strip('"'), mtime_ns)

    def stat(self, url: str) -> RemoteObject | None:
        prefix = f"s3://{self.bucket}/"
        if not url.startswith(prefix) or url == prefix:
            return None
        return self._head(url[len(prefix) :])

    def _head(self, key: str) -> RemoteObject | None:
        def request() -> Any:
            return self._call("head_object", f"s3://{self.bucket}/{key}", lean=True,
                              Bucket=self.bucket, Key=key)

        try:
            head = self._retrier.call(request)
        except BackendError as exc:
            if exc.missing:
                return None
            raise
        return self._object(key, head["ContentLength"], head.get("ETag", ""), head.get("LastModified"))

    def list(self, url: RemoteUrl, select: Callable[[str], bool]) -> Iterator[RemoteObject]:
        key = url.path
        if key and not key.endswith("/"):
            single = self._head(key)
            if single is not None:
                if select(single.name):
                    yield single
                return
            key += "/"
        token: str | None = None
        while True:
            params: dict[str, Any] = {"Bucket": self.bucket, "Prefix": key, "MaxKeys": PAGE_KEYS}
            if token:
                params["ContinuationToken"] = token

            def request(params: dict[str, Any] = params) -> Any:
                return self._call("list_objects_v2", f"listing {url}", lean=True, **params)

            page = self._retrier.call(request)
            for item in page.get("Contents", ()):
                name = item["Key"]
                if name.endswith("/"):  # a folder marker
                    continue
                if select(name[len(key) :]):
                    yield self._object(name, item["Size"], item.get("ETag", ""), item.get("LastModified"))
            token = page.get("NextContinuationToken")
            if not page.get("IsTruncated") or not token:
                return

    # --- reading ------------------------------------------------------------------------

    async def _start(self, params: dict[str, Any]) -> tuple[bytes, Any]:
        """The request and its first chunk in one hop to s3fs's loop: a small object (most
        documents) is whole after it. (first bytes, the body still to read, or None)."""
        response = await self._fs._call_s3("get_object", **params)
        body = response["Body"]
        length = int(response.get("ContentLength") or 0)
        if params.get("Range") and not response.get("ContentRange"):
            # Range ignored (200, the whole object): read past what was asked to skip
            from docmill.sources.s3_get import range_start

            skip = range_start({"Range": params["Range"]})
            while skip > 0:
                piece = await body.read(min(CHUNK, skip))
                if not piece:
                    break
                skip -= len(piece)
                length -= len(piece)
        parts: list[bytes] = []
        got = 0
        while got < min(length, CHUNK):
            piece = await body.read(CHUNK - got)
            if not piece:
                break
            parts.append(piece)
            got += len(piece)
        if got >= length:
            body.close()
            return b"".join(parts), None
        return b"".join(parts), body

    def _getter(self) -> Any:
        """The lean client (opened on the first request), or None: s3fs's client then."""
        if not self._lean_wanted:
            return None
        with self._lean_lock:
            if self._lean is None and self._lean_wanted:
                from docmill.sources.s3_get import open_getter

                try:
                    self._lean = open_getter(self.bucket)
                except Exception:  # whatever botocore could not resolve: its client says it
                    self._lean = None
                self._lean_wanted = self._lean is not None
            return self._lean

    def read(self, obj: RemoteObject, offset: int) -> Iterator[bytes]:
        key = obj.url[len(f"s3://{self.bucket}/") :]
        lean = self._getter()
        if lean is not None:
            from docmill.sources.s3_get import Unsupported

            headers: dict[str, str] = {}
            if obj.version:
                headers["If-Match"] = f'"{obj.version}"'
            if offset:
                headers["Range"] = f"bytes={offset}-"
            try:
                yield from lean.get(key, headers)
                return
            except Unsupported:  # e.g. a bucket of another region: botocore's client follows
                self._lean_wanted = False
            except Exception as exc:
                raise self._translate(exc, obj.url) from None
        params: dict[str, Any] = {"Bucket": self.bucket, "Key": key}
        if obj.version:
            params["IfMatch"] = f'"{obj.version}"'
        if offset:
            params["Range"] = f"bytes={offset}-"
        first, body = self._sync(obj.url, self._start, params)
        if first:
            yield first
        if body is None:
            return
        try:
            while True:
                chunk: bytes = self._sync(obj.url, body.read, CHUNK)
                if not chunk:
                    return
                yield chunk
        finally:
            body.close()

    def close(self) -> None:
        if self._lean is not None:
            self._lean.close()
        self._s3fs = None  # s3fs closes its session at exit
