"""A lean S3 client for the S3 backend's reads (``sources.s3_get = "lean"``, the default):
``GetObject``, ``HeadObject`` and ``ListObjectsV2``.

s3fs's client costs the driver ~2 ms of CPU per object (botocore's request pipeline,
aiohttp, the hop to s3fs's event loop); for a million small documents that is the
driver's whole budget. This path does the same request with ~0.3 ms:

* everything botocore decides is decided **once per bucket**, by botocore itself: a
  synchronous botocore client from botocore's own chain (``AWS_ACCESS_KEY_ID``...,
  ``AWS_PROFILE`` and the shared files, ``AWS_ENDPOINT_URL``/``AWS_ENDPOINT_URL_S3``, the
  ``s3.addressing_style`` of the config file, instance roles) presigns one dummy
  ``GetObject``, and the object URL's form (endpoint, virtual-hosted or path style) is
  read from it; the credentials object is kept (refreshable ones refresh themselves).
  Where the environment alone decides (keys and an endpoint in the environment, no
  config file, no profile: :func:`environment_getter`), botocore's answer is known
  without it, path style under the endpoint, and botocore is not even imported (~0.2 s
  of CPU, and as long before the first listing, saved a run; the tests hold the two
  answers equal);
* each object is then one ``GET`` on a pooled keep-alive ``http.client`` connection,
  signed with SigV4 here (:func:`sign_request`, checked against botocore's signer in
  the tests), streamed in chunks; a listing page is one ``GET ?list-type=2`` on the same
  connections, its XML read as botocore reads it (keys URL-encoded on the wire).

Errors keep botocore's shape (:class:`S3HttpError` has a botocore-like ``response``), so
:meth:`~docmill.sources.s3.S3Backend._translate` reads them as every other error. Where
this path cannot reproduce botocore (an HTTP proxy applies to the endpoint, no
credentials, a bucket in another region answering with a redirect) :func:`open_getter`
gives None or :class:`Unsupported` is raised, and the backend uses s3fs's client
instead. Nothing here logs; no message holds a credential.
"""

from __future__ import annotations

import email.parser
import hashlib
import hmac
import http.client
import os
import re
import ssl
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime
from email.utils import parsedate_to_datetime
from functools import lru_cache
from typing import Any, NamedTuple
from urllib.parse import parse_qsl, quote, unquote_plus, urlsplit

CHUNK = 1 << 20
TIMEOUT_S = 60.0  # connect and read, as botocore's defaults
POOL_SIZE = 16  # idle connections kept per bucket (sources.downloads is 8 by default)
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
_REDIRECT_CODES = {"PermanentRedirect", "TemporaryRedirect", "AuthorizationHeaderMalformed",
                   "IllegalLocationConstraintException"}
_SPACES = re.compile(r"\s+")


class Unsupported(Exception):
    """This request needs what only botocore's client does (a region redirect): use s3fs."""


class S3HttpError(Exception):
    """An S3 error answer, with ``response`` shaped as botocore's ``ClientError``'s."""

    def __init__(self, status: int, headers: Mapping[str, str], body: bytes) -> None:
        text = body.decode("utf-8", "replace")
        code = _tag(text, "Code") or str(status)
        message = _tag(text, "Message") or ""
        super().__init__(f"{code} ({status})")
        self.response: dict[str, Any] = {
            "Error": {"Code": code, "Message": message},
            "ResponseMetadata": {"HTTPStatusCode": status, "HTTPHeaders": dict(headers)},
        }


def _tag(text: str, name: str) -> str:
    found = re.search(rf"<{name}>(.*?)</{name}>", text, re.S)
    return found.group(1).strip() if found else ""


# --- SigV4 ------------------------------------------------------------------------------


@lru_cache(maxsize=8)
def _signing_key(secret: str, day: str, region: str) -> bytes:
    key = hmac.new(f"AWS4{secret}".encode(), day.encode(), hashlib.sha256).digest()
    for part in (region, "s3", "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key


def range_start(headers: Mapping[str, str]) -> int:
    """The first byte a ``Range: bytes=N-`` header asks for (0 without one)."""
    value = next((v for k, v in headers.items() if k.lower() == "range"), "")
    if value.startswith("bytes=") and value.endswith("-") and value[6:-1].isdigit():
        return int(value[6:-1])
    return 0


def sign_request(
    method: str, host: str, path: str, query: Mapping[str, str], headers: Mapping[str, str],
    *, access_key: str, secret_key: str, token: str | None, region: str, amz_date: str,
) -> dict[str, str]:
    """The headers of a SigV4-signed ``METHOD host/path?query`` with an empty body:
    ``headers`` (e.g. ``If-Match``, ``Range``) plus ``X-Amz-Date``,
    ``X-Amz-Content-SHA256``, ``X-Amz-Security-Token`` with a session token, and
    ``Authorization``. ``path`` is sent as given (already percent-encoded), ``query`` is
    encoded here (:func:`query_string`); every header given is signed, as botocore signs
    them. Pure: the time is ``amz_date`` (``YYYYMMDDTHHMMSSZ``)."""
    out = dict(headers)
    out["X-Amz-Date"] = amz_date
    out["X-Amz-Content-SHA256"] = EMPTY_SHA256
    if token:
        out["X-Amz-Security-Token"] = token
    canon = {"host": host}
    for name, value in out.items():
        canon[name.lower()] = _SPACES.sub(" ", str(value).strip())
    names = sorted(canon)
    signed = ";".join(names)
    request = "\n".join((
        method, path, query_string(query), "".join(f"{n}:{canon[n]}\n" for n in names), signed,
        EMPTY_SHA256,
    ))
    day = amz_date[:8]
    scope = f"{day}/{region}/s3/aws4_request"
    to_sign = "\n".join((
        "AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(request.encode()).hexdigest(),
    ))
    signature = hmac.new(_signing_key(secret_key, day, region), to_sign.encode(),
                         hashlib.sha256).hexdigest()
    out["Authorization"] = (
        f"AWS4-HMAC-SHA256 Credential={access_key}/{scope}, SignedHeaders={signed}, "
        f"Signature={signature}"
    )
    return out


def query_string(query: Mapping[str, str]) -> str:
    """``query`` as SigV4's canonical query string (sorted, every byte but ``-_.~`` and
    alphanumerics percent-encoded); sent exactly so."""
    return "&".join(
        f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}" for k, v in sorted(query.items())
    )


def object_path(prefix: str, key: str) -> str:
    """The request path of ``key`` under a bucket's path ``prefix`` ("" virtual-hosted,
    "/bucket" path style), percent-encoded as botocore encodes keys."""
    return f"{prefix}/{quote(key, safe='/~')}"


# --- connections ------------------------------------------------------------------------

_HEADER_NAME = re.compile(rb"[!-9;-~]+")  # what the email parser takes for a field name


def parse_headers(lines: list[bytes]) -> http.client.HTTPMessage:
    """An answer's header lines (up to the blank one) as ``http.client`` gives them, but
    without the email parser where every line is a plain ``Name: value`` (it costs ~0.1
    ms an answer, a quarter of the driver's CPU for a small download); anything else (a
    folded line, a line that is no field) goes to that parser, which decides as always."""
    message = http.client.HTTPMessage()
    for line in lines:
        if line in (b"\r\n", b"\n", b""):
            break
        name, colon, value = line.partition(b":")
        if not colon or not _HEADER_NAME.fullmatch(name):
            parsed: http.client.HTTPMessage = email.parser.Parser(
                _class=http.client.HTTPMessage
            ).parsestr(b"".join(lines).decode("iso-8859-1"))
            return parsed
        message[name.decode("iso-8859-1")] = value.decode("iso-8859-1").lstrip(" \t").rstrip("\r\n")
    return message


# http.client's own reader of an answer's header lines (up to and with the blank one,
# bounded by its _MAXLINE and _MAXHEADERS): only their parsing is replaced
_header_lines: Callable[[Any], list[bytes]] = http.client._read_headers  # type: ignore[attr-defined]


class _Response(http.client.HTTPResponse):
    """``http.client``'s answer with its headers read by :func:`parse_headers`; the rest
    of ``begin`` is ``http.client``'s own (Python 3.11-3.13)."""

    def begin(self) -> None:  # called once, by getresponse
        while True:
            version, status, reason = self._read_status()  # type: ignore[attr-defined]
            if status != http.client.CONTINUE:
                break
            _header_lines(self.fp)  # the 100 Continue's
        self.code = self.status = status
        self.reason = reason.strip()
        if version in ("HTTP/1.0", "HTTP/0.9"):
            self.version = 10
        elif version.startswith("HTTP/1."):
            self.version = 11
        else:
            raise http.client.UnknownProtocol(version)
        self.headers = self.msg = parse_headers(_header_lines(self.fp))
        coding = self.headers.get("transfer-encoding")
        self.chunked = bool(coding and coding.lower() == "chunked")
        if self.chunked:
            self.chunk_left = None
        self.will_close = self._check_close()  # type: ignore[attr-defined]
        self.length = None
        length = self.headers.get("content-length")
        if length and not self.chunked:
            try:
                self.length = int(length)
            except ValueError:
                self.length = None
            else:
                if self.length < 0:
                    self.length = None
        if (status in (http.client.NO_CONTENT, http.client.NOT_MODIFIED)
                or 100 <= status < 200 or self._method == "HEAD"):  # type: ignore[attr-defined]
            self.length = 0
        if not self.will_close and not self.chunked and self.length is None:
            self.will_close = True


class _Pool:
    """Idle keep-alive connections to one host, shared by the download threads."""

    def __init__(self, scheme: str, host: str, port: int | None, context: ssl.SSLContext | None):
        self._scheme, self._host, self._port, self._context = scheme, host, port, context
        self._idle: list[http.client.HTTPConnection] = []
        self._lock = threading.Lock()

    def get(self) -> tuple[http.client.HTTPConnection, bool]:
        """A connection, and whether it was used before (an idle one may have been closed
        by the server meanwhile)."""
        with self._lock:
            if self._idle:
                return self._idle.pop(), True
        conn: http.client.HTTPConnection
        if self._scheme == "https":
            conn = http.client.HTTPSConnection(
                self._host, self._port, timeout=TIMEOUT_S, context=self._context
            )
        else:
            conn = http.client.HTTPConnection(self._host, self._port, timeout=TIMEOUT_S)
        conn.response_class = _Response
        return conn, False

    def put(self, conn: http.client.HTTPConnection) -> None:
        with self._lock:
            if len(self._idle) < POOL_SIZE:
                self._idle.append(conn)
                return
        conn.close()

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()


# errors of a reused connection the server had closed, before any answer: sent again once
_STALE = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError,
          ConnectionAbortedError)


class LeanGetter:
    """``GET`` of one bucket's objects (see the module docstring). Thread-safe."""

    def __init__(self, base_url: str, region: str, credentials: Any,
                 context: ssl.SSLContext | None = None) -> None:
        parts = urlsplit(base_url)
        self.scheme = parts.scheme
        self.host = parts.netloc  # the Host header: with the port where one is given
        self.prefix = parts.path.rstrip("/")
        self.region = region
        self._credentials = credentials  # botocore's: get_frozen_credentials() per request
        self._pool = _Pool(parts.scheme, parts.hostname or "", parts.port, context)

    def _headers(self, method: str, path: str, query: Mapping[str, str],
                 extra: Mapping[str, str]) -> dict[str, str]:
        frozen = self._credentials.get_frozen_credentials()
        return sign_request(
            method, self.host, path, query, extra, access_key=frozen.access_key,
            secret_key=frozen.secret_key, token=frozen.token, region=self.region,
            amz_date=time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()),
        )

    def _open(self, method: str, key: str, extra: Mapping[str, str],
              query: Mapping[str, str] | None = None) -> tuple[http.client.HTTPConnection,
                                                              http.client.HTTPResponse]:
        path = object_path(self.prefix, key)
        target = f"{path}?{query_string(query)}" if query else path
        while True:
            conn, reused = self._pool.get()
            headers = self._headers(method, path, query or {}, extra)
            headers["Host"] = self.host  # as signed (http.client would drop a default port)
            try:
                conn.request(method, target, headers=headers)
                return conn, conn.getresponse()
            except _STALE:
                conn.close()
                if not reused:
                    raise
            except BaseException:
                conn.close()
                raise

    def get(self, key: str, headers: Mapping[str, str]) -> Iterator[bytes]:
        """``key``'s bytes in chunks (``headers``: ``If-Match``, ``Range``); raises
        :class:`S3HttpError` for an error answer, :class:`Unsupported` for a redirect,
        ``http.client``'s and the socket's errors for a dropped connection."""
        conn, resp = self._open("GET", key, headers)
        done = False
        try:
            if resp.status not in (200, 206):
                body = resp.read()
                done = True
                _raise(resp.status, resp.getheaders(), body)
            # a server that ignores Range answers 200 with the whole object: what was
            # asked for starts further in
            skip = range_start(headers) if resp.status == 200 else 0
            left = resp.length
            while left is None or left > 0:
                chunk = resp.read(CHUNK if left is None else min(CHUNK, left))
                if not chunk:
                    break
                if left is not None:
                    left -= len(chunk)
                if skip:
                    cut = min(skip, len(chunk))
                    chunk, skip = chunk[cut:], skip - cut
                    if not chunk:
                        continue
                yield chunk
            done = True
        finally:
            if done and not resp.will_close and resp.isclosed():
                self._pool.put(conn)
            else:
                conn.close()

    def _small(self, method: str, key: str, query: Mapping[str, str] | None = None
               ) -> tuple[dict[str, str], bytes]:
        """One request whose whole answer is read: (headers, lower-case names; body)."""
        conn, resp = self._open(method, key, {}, query)
        try:
            body = resp.read()
        except BaseException:
            conn.close()
            raise
        if resp.will_close:
            conn.close()
        else:
            self._pool.put(conn)
        if resp.status not in (200, 206):
            _raise(resp.status, resp.getheaders(), body)
        return {k.lower(): v for k, v in resp.getheaders()}, body

    def head(self, key: str) -> dict[str, Any]:
        """``HeadObject``: ContentLength, ETag, LastModified (a datetime), as botocore's."""
        headers, _body = self._small("HEAD", key)
        modified = headers.get("last-modified")
        return {
            "ContentLength": int(headers.get("content-length") or 0),
            "ETag": headers.get("etag", ""),
            "LastModified": parsedate_to_datetime(modified) if modified else None,
        }

    def list_page(self, prefix: str, token: str | None, max_keys: int) -> dict[str, Any]:
        """One ``ListObjectsV2`` page under ``prefix``, shaped as botocore's answer
        (Contents: Key, Size, ETag, LastModified; IsTruncated; NextContinuationToken);
        keys come URL-encoded (``encoding-type=url``, as botocore asks) and are decoded."""
        query = {"list-type": "2", "prefix": prefix, "max-keys": str(max_keys),
                 "encoding-type": "url"}
        if token:
            query["continuation-token"] = token
        _headers, body = self._small("GET", "", query)
        return parse_list(body)

    def close(self) -> None:
        self._pool.close()


def _raise(status: int, headers: list[tuple[str, str]], body: bytes) -> None:
    error = S3HttpError(status, {k.lower(): v for k, v in headers}, body)
    if status in (301, 302, 307) or error.response["Error"]["Code"] in _REDIRECT_CODES:
        raise Unsupported(error.response["Error"]["Code"])
    raise error


def parse_list(body: bytes) -> dict[str, Any]:
    """A ``ListObjectsV2`` answer (``encoding-type=url``) as botocore gives it."""
    from xml.etree import ElementTree

    root = ElementTree.fromstring(body)
    ns = root.tag[: root.tag.index("}") + 1] if root.tag.startswith("{") else ""
    url_encoded = (root.findtext(f"{ns}EncodingType") or "").lower() == "url"
    contents = []
    for item in root.iter(f"{ns}Contents"):
        key = item.findtext(f"{ns}Key") or ""
        modified = item.findtext(f"{ns}LastModified")
        contents.append({
            "Key": unquote_plus(key) if url_encoded else key,
            "Size": int(item.findtext(f"{ns}Size") or 0),
            "ETag": item.findtext(f"{ns}ETag") or "",
            "LastModified": datetime.fromisoformat(modified) if modified else None,
        })
    page: dict[str, Any] = {
        "Contents": contents,
        "IsTruncated": (root.findtext(f"{ns}IsTruncated") or "").lower() == "true",
    }
    token = root.findtext(f"{ns}NextContinuationToken")
    if token:
        page["NextContinuationToken"] = token
    return page


def _uses_proxy(url: str) -> bool:
    from urllib.request import getproxies, proxy_bypass

    parts = urlsplit(url)
    return parts.scheme in getproxies() and not proxy_bypass(parts.hostname or "")


class EnvironmentCredentials(NamedTuple):
    """Keys read from the environment, shaped as botocore's frozen credentials."""

    access_key: str
    secret_key: str
    token: str | None

    def get_frozen_credentials(self) -> EnvironmentCredentials:
        return self


# variables that make botocore's answer depend on more than the keys and the endpoint
_NOT_ENVIRONMENT_ONLY = (
    "AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_CREDENTIAL_EXPIRATION",
    "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "AWS_USE_FIPS_ENDPOINT",
    "AWS_USE_DUALSTACK_ENDPOINT", "AWS_S3_US_EAST_1_REGIONAL_ENDPOINT",
)


def environment_getter(bucket: str, environ: Mapping[str, str]) -> LeanGetter | None:
    """The lean path for ``bucket`` when ``environ`` alone decides what botocore would:
    both keys (and any session token) and an endpoint (``AWS_ENDPOINT_URL_S3``, else
    ``AWS_ENDPOINT_URL``) set, no profile, no shared config file, none of the switches
    that change an endpoint's form. botocore then signs for ``AWS_DEFAULT_REGION`` (else
    us-east-1) and addresses the bucket path style under the endpoint, whatever its host
    (checked against botocore in the tests). None otherwise: :func:`open_getter` asks
    botocore."""
    key, secret = environ.get("AWS_ACCESS_KEY_ID", ""), environ.get("AWS_SECRET_ACCESS_KEY", "")
    endpoint = environ.get("AWS_ENDPOINT_URL_S3") or environ.get("AWS_ENDPOINT_URL") or ""
    if not (key and secret and endpoint) or any(environ.get(n) for n in _NOT_ENVIRONMENT_ONLY):
        return None
    config = environ.get("AWS_CONFIG_FILE") or "~/.aws/config"
    if os.path.exists(os.path.expanduser(config)):
        return None
    parts = urlsplit(endpoint)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query:
        return None
    base = f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}/{quote(bucket, safe='')}"
    if _uses_proxy(base):
        return None
    context = None
    if parts.scheme == "https":
        bundle = environ.get("AWS_CA_BUNDLE")
        if not bundle:
            try:
                from certifi import where  # botocore's own default bundle
            except ImportError:
                return None
            bundle = where()
        context = ssl.create_default_context(cafile=bundle)
    token = environ.get("AWS_SESSION_TOKEN") or environ.get("AWS_SECURITY_TOKEN") or None
    region = environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    return LeanGetter(base, region, EnvironmentCredentials(key, secret, token), context)


def open_getter(bucket: str) -> LeanGetter | None:
    """The lean path for ``bucket``, everything resolved by botocore once (or known
    without it: :func:`environment_getter`); None where it cannot stand in for
    botocore's client (no credentials found: s3fs's client then says so as it always
    has; an HTTP proxy applies to the endpoint)."""
    return environment_getter(bucket, os.environ) or botocore_getter(bucket)


def botocore_getter(bucket: str) -> LeanGetter | None:
    """:func:`open_getter`'s answer as botocore's own client gives it (see there)."""
    import botocore.session
    from botocore.config import Config
    from botocore.httpsession import get_cert_path

    session = botocore.session.Session()
    credentials = session.get_credentials()
    if credentials is None:
        return None
    client = session.create_client("s3", config=Config(retries={"total_max_attempts": 1}))
    probe = "docmill-probe"
    url = client.generate_presigned_url(
        "get_object", Params={"Bucket": bucket, "Key": probe}, ExpiresIn=60
    )
    parts = urlsplit(url)
    if not parts.path.endswith("/" + probe) or _uses_proxy(url):
        return None
    base = f"{parts.scheme}://{parts.netloc}{parts.path[: -len(probe) - 1]}"
    context = None
    if parts.scheme == "https":
        verify = session.get_config_variable("ca_bundle") or get_cert_path(True)
        context = ssl.create_default_context(cafile=verify if isinstance(verify, str) else None)
    # the signing region botocore chose: the scope of the presigned credential
    scope = dict(parse_qsl(parts.query)).get("X-Amz-Credential", "").split("/")
    region = scope[2] if len(scope) == 5 else (client.meta.region_name or "us-east-1")
    return LeanGetter(base, region, credentials, context)
