"""A bucket prefix as a destination (``s3://bucket/prefix/``; ``docmill[s3]``).

It writes through the source backend's client for that bucket
(:meth:`docmill.sources.s3.S3Backend.request`): the same credentials chain
(``AWS_PROFILE``, the ``AWS_*`` variables, ``AWS_ENDPOINT_URL``…), the same one place
botocore's errors are read, no retries below (the delivery's retrier owns them).

An object is whole or absent: up to :data:`PART` bytes one ``PutObject``, above it a
multipart upload completed only once every part is in (aborted otherwise). Each object
carries its content's sha256 as metadata (``x-amz-meta-docmill-sha256``), so
:meth:`S3Destination.holds` knows a copy that landed before a crash.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Any

from docmill.deliver.destinations import DestinationContext
from docmill.deliver.errors import DeliveryCategory, DeliveryFailed
from docmill.settings import SourceSettings
from docmill.settings.deliveries import TemplateError, check_key
from docmill.sources.backend import BackendContext, BackendError
from docmill.sources.s3 import S3Backend
from docmill.sources.throttle import Retrier
from docmill.sources.urls import RemoteUrl

PART = 8 << 20  # bytes per multipart part (and the largest single PutObject)
SHA_KEY = "docmill-sha256"


def _failed(exc: BackendError) -> DeliveryFailed:
    if exc.denied:
        return DeliveryFailed(DeliveryCategory.DENIED, str(exc))
    if exc.missing:
        return DeliveryFailed(DeliveryCategory.MISSING, str(exc))
    return DeliveryFailed(DeliveryCategory.ERROR, str(exc))


class S3Destination:
    """One bucket prefix (see the module docstring)."""

    def __init__(self, context: DestinationContext) -> None:
        store = context.store
        assert store is not None
        try:
            self._s3 = S3Backend(
                BackendContext(
                    RemoteUrl(store.scheme, store.netloc, ""), Retrier(0, 1), SourceSettings(),
                    context.secrets,
                )
            )
        except BackendError as exc:
            raise _failed(exc) from None
        self.bucket = store.netloc
        self._prefix = store.path

    def _key(self, key: str) -> str:
        try:
            check_key(key)
        except TemplateError as exc:
            raise DeliveryFailed(DeliveryCategory.NOT_ALLOWED, str(exc)) from None
        return self._prefix + key

    def _call(self, method: str, key: str, **kwargs: Any) -> Any:
        try:
            return self._s3.request(method, f"s3://{self.bucket}/{key}", Bucket=self.bucket, Key=key, **kwargs)
        except BackendError as exc:
            raise _failed(exc) from None

    def put(self, key: str, chunks: Iterator[bytes], size: int, sha256: str | None, tag: str) -> None:
        full = self._key(key)
        digest = hashlib.sha256()
        buffer = bytearray()
        upload: str | None = None
        parts: list[dict[str, Any]] = []
        meta = {SHA_KEY: sha256} if sha256 else {}
        try:
            for chunk in chunks:
                digest.update(chunk)
                buffer += chunk
                if len(buffer) >= PART:
                    if upload is None:
                        upload = self._call("create_multipart_upload", full, Metadata=meta)["UploadId"]
                    parts.append(self._part(full, upload, len(parts) + 1, bytes(buffer)))
                    buffer.clear()
            got = digest.hexdigest()
            if sha256 is not None and got != sha256:
                raise DeliveryFailed(
                    DeliveryCategory.CHANGED,
                    f"{key}: the source's bytes are no longer those of its record "
                    "(it changed after it was processed; the next run processes it again)",
                )
            if upload is None:
                self._call("put_object", full, Body=bytes(buffer), Metadata={SHA_KEY: got})
                return
            if buffer:
                parts.append(self._part(full, upload, len(parts) + 1, bytes(buffer)))
            self._call("complete_multipart_upload", full, UploadId=upload,
                       MultipartUpload={"Parts": parts})
            upload = None
        finally:
            if upload is not None:  # never completed: nothing appears under the key
                try:
                    self._call("abort_multipart_upload", full, UploadId=upload)
                except Exception:
                    pass

    def _part(self, key: str, upload: str, number: int, data: bytes) -> dict[str, Any]:
        answer = self._call("upload_part", key, UploadId=upload, PartNumber=number, Body=data)
        return {"PartNumber": number, "ETag": answer["ETag"]}

    def holds(self, key: str, size: int, sha256: str | None) -> bool:
        full = self._key(key)
        try:
            head = self._s3.request("head_object", f"s3://{self.bucket}/{full}", Bucket=self.bucket, Key=full)
        except BackendError as exc:
            if exc.missing:
                return False
            raise _failed(exc) from None
        if size >= 0 and int(head.get("ContentLength", -1)) != size:
            return False
        return sha256 is None or (head.get("Metadata") or {}).get(SHA_KEY) == sha256

    def delete(self, key: str) -> None:
        self._call("delete_object", self._key(key))

    def close(self) -> None:
        self._s3.close()
