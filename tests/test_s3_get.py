"""The S3 backend's lean GET path (``sources/s3_get.py``): its SigV4 signature against
botocore's signer, and its downloads against moto's real server behind the counting,
fault-injecting loopback proxy of ``remote_kit``."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from remote_kit import Faults, MotoS3, S3Proxy, s3_env

pytest.importorskip("s3fs", reason="the s3 extra (s3fs) is in the dev lock: run scripts/setup dev")
pytest.importorskip("moto", reason="moto[server] is in the dev lock: run scripts/setup dev")

from docmill.settings import SourceSettings
from docmill.sources.backend import BackendError, Backends, RemoteObject
from docmill.sources.s3_get import (
    botocore_getter,
    environment_getter,
    object_path,
    open_getter,
    query_string,
    sign_request,
)
from docmill.sources.spool import Spool, fetch
from docmill.sources.throttle import Retrier

# --- the signature ----------------------------------------------------------------------


def botocore_headers(method: str, url: str, headers: dict[str, str], key_id: str, secret: str,
                     token: str | None, region: str) -> dict[str, str]:
    from botocore.auth import S3SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    request = AWSRequest(method, url, headers=dict(headers))
    S3SigV4Auth(Credentials(key_id, secret, token), "s3", region).add_auth(request)
    return dict(request.headers)


LIST = {"list-type": "2", "prefix": "in box/ü+&=x", "max-keys": "1000", "encoding-type": "url"}


@pytest.mark.parametrize(
    ("method", "base", "key", "query", "extra", "token", "region"),
    [
        ("GET", "http://127.0.0.1:9000/bench", "corpus/a.pdf", {}, {}, None, "us-east-1"),
        ("GET", "https://acme.s3.eu-west-1.amazonaws.com", "2024/Q1 report (final).pdf", {},
         {"If-Match": '"0123abcd"'}, None, "eu-west-1"),
        ("GET", "https://s3.us-west-2.amazonaws.com/acme", "ünï/cödé+x~y=z&.pdf", {},
         {"If-Match": '"9f"', "Range": "bytes=1048576-"}, "FwoGZXIvYXdzEJr//token==", "us-west-2"),
        ("GET", "http://localhost:4566/b", "a//b/./c", {}, {"Range": "bytes=5-"}, None, "us-east-1"),
        ("HEAD", "http://127.0.0.1:9000/bench", "one/report.pdf", {}, {}, "tok", "us-east-1"),
        ("GET", "http://127.0.0.1:9000/bench", "", LIST, {}, None, "us-east-1"),
        ("GET", "https://acme.s3.amazonaws.com", "",
         {**LIST, "continuation-token": "1/a+b==/c d"}, {}, None, "us-east-1"),
    ],
)
def test_the_signature_is_botocores(
    method: str, base: str, key: str, query: dict[str, str], extra: dict[str, str],
    token: str | None, region: str,
) -> None:
    from urllib.parse import urlsplit

    parts = urlsplit(base)
    path = object_path(parts.path, key)
    url = f"{parts.scheme}://{parts.netloc}{path}" + (f"?{query_string(query)}" if query else "")
    key_id, secret = "AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
    # botocore's takes its own time; ours is given the same moment and the same payload hash
    theirs = botocore_headers(method, url,
                              {**extra, "X-Amz-Content-SHA256": hashlib.sha256(b"").hexdigest()},
                              key_id, secret, token, region)
    ours = sign_request(method, parts.netloc, path, query, extra, access_key=key_id,
                        secret_key=secret, token=token, region=region,
                        amz_date=theirs["X-Amz-Date"])
    assert ours["Authorization"] == theirs["Authorization"]
    assert {k.lower(): v for k, v in ours.items()} == {k.lower(): v for k, v in theirs.items()}
    # and it depends on what it signs
    other = sign_request(method, parts.netloc, path + "x", query, extra, access_key=key_id,
                         secret_key=secret, token=token, region=region,
                         amz_date=theirs["X-Amz-Date"])
    assert other["Authorization"] != ours["Authorization"]
    assert secret not in repr(ours)


# --- against moto's server --------------------------------------------------------------


@pytest.fixture(scope="module")
def moto() -> Iterator[MotoS3]:
    server = MotoS3()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def proxy(moto: MotoS3, monkeypatch: pytest.MonkeyPatch) -> Iterator[S3Proxy]:
    front = S3Proxy(moto.port)
    for name in [n for n in __import__("os").environ if n.startswith("AWS_")]:
        monkeypatch.delenv(name)
    for name, value in s3_env(front.endpoint, secret="lean-secret-value-42").items():
        if name.startswith("AWS_"):
            monkeypatch.setenv(name, value)
    try:
        yield front
    finally:
        front.stop()


_buckets = iter(range(1, 10_000))


def bucket_with(moto: MotoS3, objects: dict[str, bytes]) -> str:
    name = f"lean-{next(_buckets)}"
    moto.bucket(name)
    for key, data in objects.items():
        moto.put(name, key, data)
    return name


def listed(backend: object, bucket: str) -> dict[str, RemoteObject]:
    from docmill.sources.urls import parse

    found = backend.list(parse(f"s3://{bucket}/"), lambda _name: True)  # type: ignore[attr-defined]
    return {o.url.rsplit("/", 1)[-1]: o for o in found}


def no_sleep_backends(**settings: object) -> Backends:
    options = SourceSettings(**settings)  # type: ignore[arg-type]
    return Backends(options, retrier=lambda: Retrier(0, options.retries, sleep=lambda _s: None))


def test_objects_are_read_over_one_kept_alive_connection(moto: MotoS3, proxy: S3Proxy) -> None:
    objects = {f"d/{i}.bin": bytes([i]) * (1000 + 37 * i) for i in range(6)}
    objects["d/big.bin"] = hashlib.sha256(b"x").digest() * 100_000  # 3.2 MB: several chunks
    bucket = bucket_with(moto, objects)
    backend, _retrier = Backends(SourceSettings()).for_url(f"s3://{bucket}/")
    try:
        found = listed(backend, bucket)
        for key, data in objects.items():
            obj = found[key.rsplit("/", 1)[-1]]
            assert b"".join(backend.read(obj, 0)) == data
        assert proxy.counts["get"] == len(objects) and proxy.counts["list"] == 1
        assert proxy.connections == 1  # the listing and every GET on the same connection
        # a resumed read (Range) gives the rest
        obj = found["big.bin"]
        assert b"".join(backend.read(obj, 1_000_001)) == objects["d/big.bin"][1_000_001:]
    finally:
        backend.close()


def test_a_changed_object_fails_changed_and_is_fetched_by_its_new_version(
    moto: MotoS3, proxy: S3Proxy, tmp_path: Path
) -> None:
    bucket = bucket_with(moto, {"p/a.txt": b"first version", "p/b.txt": b"unchanged"})
    backends = no_sleep_backends()
    backend, _retrier = backends.for_url(f"s3://{bucket}/")
    spool = Spool(tmp_path / "spool", 10 << 20)
    try:
        old = listed(backend, bucket)
        moto.put(bucket, "p/a.txt", b"second version, longer")
        with pytest.raises(BackendError) as info:
            b"".join(backend.read(old["a.txt"], 0))
        assert info.value.changed
        assert "lean-secret-value-42" not in str(info.value)
        sha, why = fetch(backends, spool, 1, old["a.txt"].url, old["a.txt"].size,
                         old["a.txt"].version, 1 << 30)
        assert sha is None and "changed" in str(why)
        new = listed(backend, bucket)
        assert new["a.txt"].version != old["a.txt"].version
        assert new["b.txt"].version == old["b.txt"].version  # the run skips it: no GET
        sha, why = fetch(backends, spool, 2, new["a.txt"].url, new["a.txt"].size,
                         new["a.txt"].version, 1 << 30)
        assert (sha, why) == (hashlib.sha256(b"second version, longer").hexdigest(), "")
        assert spool.path(2, new["a.txt"].url).read_bytes() == b"second version, longer"
        assert proxy.gets["p/b.txt"] == 0
        assert proxy.gets["p/a.txt"] == 3
        with pytest.raises(BackendError) as info:
            b"".join(backend.read(RemoteObject(f"s3://{bucket}/p/gone.txt", 5, ""), 0))
        assert info.value.missing
    finally:
        backends.close()


def test_slowdown_429_and_dropped_connections_are_retried_in_the_spool(
    moto: MotoS3, proxy: S3Proxy, tmp_path: Path
) -> None:
    objects = {f"t/{i:02d}.bin": bytes([65 + i]) * (20_000 + i) for i in range(12)}
    bucket = bucket_with(moto, objects)
    backends = no_sleep_backends()
    backend, retrier = backends.for_url(f"s3://{bucket}/")
    spool = Spool(tmp_path / "spool", 10 << 20)
    try:
        found = listed(backend, bucket)
        proxy.faults = Faults(slowdown_every=3, too_many_every=4, drop_every=5,
                              retry_after="0")
        for i, (key, data) in enumerate(objects.items(), 1):
            obj = found[key.rsplit("/", 1)[-1]]
            sha, why = fetch(backends, spool, i, obj.url, obj.size, obj.version, 1 << 30)
            assert (sha, why) == (hashlib.sha256(data).hexdigest(), ""), why
            assert spool.path(i, obj.url).read_bytes() == data
    finally:
        backends.close()
    assert proxy.counts["injected/503"] >= 3 and proxy.counts["injected/429"] >= 2
    assert proxy.counts["injected/drop"] >= 2
    assert retrier.stats["retry/503"] == proxy.counts["injected/503"]
    assert retrier.stats["retry/429"] == proxy.counts["injected/429"]
    assert retrier.stats["retry/connection"] == proxy.counts["injected/drop"]
    assert retrier.stats["downloaded"] == len(objects)
    assert "gave_up" not in retrier.stats


def test_a_keep_alive_connection_closed_by_the_server_is_reopened_without_a_retry(
    moto: MotoS3, proxy: S3Proxy, tmp_path: Path
) -> None:
    objects = {f"k/{i}.bin": bytes([i]) * 5000 for i in range(6)}
    bucket = bucket_with(moto, objects)
    backends = no_sleep_backends()
    backend, retrier = backends.for_url(f"s3://{bucket}/")
    spool = Spool(tmp_path / "spool", 10 << 20)
    try:
        found = listed(backend, bucket)
        proxy.faults = Faults(close_after_every=2)
        for i, (key, data) in enumerate(objects.items(), 1):
            obj = found[key.rsplit("/", 1)[-1]]
            sha, why = fetch(backends, spool, i, obj.url, obj.size, obj.version, 1 << 30)
            assert sha == hashlib.sha256(data).hexdigest(), why
    finally:
        backends.close()
    assert proxy.counts["injected/close"] == 3
    assert not any(k.startswith("retry/") for k in retrier.stats), retrier.stats


def test_s3fs_reads_when_asked_and_when_a_proxy_applies(
    moto: MotoS3, proxy: S3Proxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    bucket = bucket_with(moto, {"a.txt": b"through s3fs"})
    backend, _retrier = Backends(SourceSettings(s3_get="s3fs")).for_url(f"s3://{bucket}/")
    try:
        obj = listed(backend, bucket)["a.txt"]
        assert b"".join(backend.read(obj, 0)) == b"through s3fs"
        assert backend._getter() is None  # type: ignore[attr-defined]
    finally:
        backend.close()
    assert open_getter(bucket) is not None
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    assert open_getter(bucket) is None  # botocore's client honours the proxy: s3fs reads


def test_listing_and_stat_go_through_the_lean_client_page_by_page(
    moto: MotoS3, proxy: S3Proxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys

    from docmill.sources import s3 as s3_module

    odd = ["in/a b.pdf", "in/ü+&=x.pdf", "in/sub/%41.txt", "in/c~d(1).txt", "in/z.txt",
           "in/folder/", "out/no.txt"]
    bucket = bucket_with(moto, {k: k.encode() for k in odd})
    monkeypatch.setattr(s3_module, "PAGE_KEYS", 2)
    monkeypatch.delitem(sys.modules, "s3fs", raising=False)
    backend, retrier = Backends(SourceSettings()).for_url(f"s3://{bucket}/")
    try:
        from docmill.sources.urls import parse

        found = list(backend.list(parse(f"s3://{bucket}/in/"), lambda _n: True))
        expect = sorted(k for k in odd if k.startswith("in/") and not k.endswith("/"))
        assert [o.url for o in found] == [f"s3://{bucket}/{k}" for k in expect]
        for obj in found:
            key = obj.url.split("/", 3)[3]
            assert obj.size == len(key.encode())
            assert obj.version == hashlib.md5(key.encode()).hexdigest()
            assert obj.mtime_ns > 0
            assert b"".join(backend.read(obj, 0)) == key.encode()
        assert proxy.counts["list"] == 3  # 5 keys and a folder marker, 2 a page
        one = backend.stat(f"s3://{bucket}/in/ü+&=x.pdf")
        listed_one = next(o for o in found if o.url == f"s3://{bucket}/in/ü+&=x.pdf")
        assert one is not None and (one.size, one.version) == (listed_one.size, listed_one.version)
        assert abs(one.mtime_ns - listed_one.mtime_ns) < 2_000_000_000
        assert backend.stat(f"s3://{bucket}/in/missing.pdf") is None
        assert proxy.counts["head"] == 2
        assert "s3fs" not in sys.modules  # nothing went through s3fs's client
    finally:
        backend.close()
    assert retrier.stats["requests"] == 3 + 2 and "gave_up" not in retrier.stats  # lists, heads


@pytest.mark.parametrize("get", ["lean", "s3fs"])
def test_a_resumed_download_from_a_server_that_ignores_range_is_whole(
    moto: MotoS3, proxy: S3Proxy, tmp_path: Path, get: str
) -> None:
    data = b"".join(hashlib.sha256(b"%d" % i).digest() for i in range(40_000))  # 1.28 MB
    bucket = bucket_with(moto, {"r/big.bin": data})
    backends = no_sleep_backends(s3_get=get)
    backend, retrier = backends.for_url(f"s3://{bucket}/")
    spool = Spool(tmp_path / "spool", 10 << 20)
    try:
        obj = listed(backend, bucket)["big.bin"]
        # the first GET is cut halfway; the resumed one (Range: bytes=N-) is answered 200
        # with the whole object, so its first N bytes are not the ones asked for
        proxy.faults = Faults(drop_at=(1,), ignore_range=True)
        sha, why = fetch(backends, spool, 1, obj.url, obj.size, obj.version, 1 << 30)
        assert (sha, why) == (hashlib.sha256(data).hexdigest(), ""), why
        assert spool.path(1, obj.url).read_bytes() == data
        # and a read from an offset gives the rest only
        assert b"".join(backend.read(obj, 1_000_003)) == data[1_000_003:]
    finally:
        backends.close()
    assert proxy.counts["injected/drop"] == 1 and retrier.stats["retry/connection"] == 1


# --- the URL form without botocore ------------------------------------------------------

ENDPOINTS = ["http://127.0.0.1:9000", "http://localhost:9000/", "https://s3.example.com",
             "https://store.example.com/base/", "http://[::1]:9000"]


def getter_form(getter: object) -> tuple[Any, ...]:
    frozen = getter._credentials.get_frozen_credentials()  # type: ignore[attr-defined]
    return (getter.scheme, getter.host, getter.prefix, getter.region,  # type: ignore[attr-defined]
            frozen.access_key, frozen.secret_key, frozen.token)


def clean_aws_env(monkeypatch: pytest.MonkeyPatch, **env: str) -> dict[str, str]:
    for name in [n for n in os.environ if n.startswith("AWS_") or n.lower().endswith("_proxy")]:
        monkeypatch.delenv(name)
    env = {"AWS_CONFIG_FILE": "/nonexistent/aws-config",
           "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/aws-credentials",
           "AWS_EC2_METADATA_DISABLED": "true", **env}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


@pytest.mark.parametrize("endpoint", ENDPOINTS)
@pytest.mark.parametrize("more", [
    {},
    {"AWS_DEFAULT_REGION": "eu-west-1", "AWS_SESSION_TOKEN": "session-token-1"},
    {"AWS_REGION": "eu-west-2", "AWS_SECURITY_TOKEN": "legacy-token"},
    {"AWS_ENDPOINT_URL_S3": "http://10.1.2.3:7000/s3"},
])
@pytest.mark.parametrize("bucket", ["docs", "my.bucket-2"])
def test_keys_and_an_endpoint_in_the_environment_give_botocores_answer(
    monkeypatch: pytest.MonkeyPatch, endpoint: str, more: dict[str, str], bucket: str
) -> None:
    env = clean_aws_env(monkeypatch, AWS_ENDPOINT_URL=endpoint, AWS_ACCESS_KEY_ID="AKEXAMPLE",
                        AWS_SECRET_ACCESS_KEY="secret/example+1", **more)
    quick = environment_getter(bucket, env)
    assert quick is not None
    slow = botocore_getter(bucket)
    assert slow is not None
    assert getter_form(quick) == getter_form(slow)
    assert (quick._pool._context is None) == (slow._pool._context is None)  # type: ignore[attr-defined]


@pytest.mark.parametrize("change", [
    {"AWS_PROFILE": "ops"}, {"AWS_USE_FIPS_ENDPOINT": "true"}, {"AWS_CREDENTIAL_EXPIRATION": "x"},
    {"AWS_S3_US_EAST_1_REGIONAL_ENDPOINT": "regional"}, {"AWS_ENDPOINT_URL": ""},
    {"AWS_SECRET_ACCESS_KEY": ""}, {"AWS_CONFIG_FILE": "<a file>"},
    {"HTTP_PROXY": "http://127.0.0.1:9"},
])
def test_whatever_else_could_change_the_answer_leaves_it_to_botocore(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, change: dict[str, str]
) -> None:
    config = tmp_path / "config"
    config.write_text("[default]\ns3 =\n    addressing_style = virtual\n")
    change = {k: (str(config) if v == "<a file>" else v) for k, v in change.items()}
    env = clean_aws_env(monkeypatch, AWS_ENDPOINT_URL="http://127.0.0.1:9000",
                        AWS_ACCESS_KEY_ID="AKEXAMPLE", AWS_SECRET_ACCESS_KEY="secret")
    assert environment_getter("docs", env) is not None
    for name, value in change.items():
        monkeypatch.setenv(name, value)
    assert environment_getter("docs", dict(os.environ)) is None
    if "AWS_CONFIG_FILE" in change:  # the config file's style is botocore's to apply
        monkeypatch.setenv("AWS_ENDPOINT_URL", "http://store.example.com:9000")
        slow = botocore_getter("docs")
        assert slow is not None and slow.host == "docs.store.example.com:9000"
        assert slow.prefix == ""


def test_the_environment_path_never_imports_botocore(moto: MotoS3) -> None:
    bucket = bucket_with(moto, {"a.txt": b"no botocore"})
    code = (
        "import sys\n"
        "from docmill.sources.s3_get import open_getter\n"
        f"g = open_getter({bucket!r})\n"
        "assert b''.join(g.get('a.txt', {})) == b'no botocore'\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('botocore', 'boto3', 's3fs')))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=s3_env(moto.endpoint), timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


# --- the answer's headers ---------------------------------------------------------------


class RawSocket:
    """What ``HTTPResponse`` reads an answer from: the bytes as they came."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def makefile(self, _mode: str) -> Any:
        import io

        return io.BytesIO(self.data)


ANSWERS = [
    b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nETag: \"abc\"\r\nx-amz-meta-a: 1\r\n"
    b"x-amz-meta-a: 2\r\nLast-Modified: Mon, 07 Dec 2026 10:00:00 GMT\r\n\r\nhello",
    b"HTTP/1.1 206 Partial Content\r\ncontent-range: bytes 2-4/5\r\ncontent-length: 3\r\n"
    b"Connection: close\r\n\r\nllo",
    b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"5\r\nhello\r\n0\r\n\r\n",
    b"HTTP/1.1 404 Not Found\r\nContent-Type: application/xml\r\nContent-Length: 9\r\n"
    b"X-Folded: one\r\n  two\r\n\r\n<Error/>\n",
    b"HTTP/1.0 200 OK\r\nServer:  spaced value \t\r\nNot a field\r\nContent-Length: 2\r\n\r\nok",
    b"HTTP/1.1 304 Not Modified\r\nETag: x\r\n\r\n",
    b"HTTP/1.1 200 OK\nContent-Length: 2\nBare-LF: yes\n\nok",
]


@pytest.mark.parametrize("raw", ANSWERS)
def test_an_answers_headers_and_body_read_as_http_client_reads_them(raw: bytes) -> None:
    import http.client

    from docmill.sources.s3_get import _Response

    def read(cls: type[http.client.HTTPResponse]) -> tuple[Any, ...]:
        answer = cls(RawSocket(raw), method="GET")  # type: ignore[arg-type]
        answer.begin()
        return (answer.status, answer.reason, answer.version, answer.getheaders(),
                answer.chunked, answer.length, answer.will_close, answer.read())

    assert read(_Response) == read(http.client.HTTPResponse)
