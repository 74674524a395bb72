"""SOURCE arguments that are URLs: how one is told from a path, split and checked.

A remote SOURCE is ``scheme://location/path`` (``s3://bucket/prefix``,
``sftp://host/folder``, ``https://host/file.pdf``...). Its documents are named by their
own URL, which is their identity in the ledger, the records and every message, so a URL
must never carry a secret: a password in it (``sftp://user:pw@host``) or a credential in
its query (a presigned URL's signature) is refused before anything is read. Credentials
come by reference instead: each store's own environment, profile or key file.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlsplit

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
# query parameters that hold a credential (presigned S3/GCS URLs, Azure SAS, tokens)
_SECRET_PARAMS = re.compile(
    r"(signature|sig|token|secret|password|passwd|credential|key|auth|session)", re.I
)


class UrlError(ValueError):
    """A URL SOURCE that cannot be used as given (the message says what to do)."""


def is_remote(source: str) -> bool:
    """``source`` is a URL (``scheme://...``) rather than a path or ``@list.txt``.

    ``file://`` counts as local: it is a path written as a URL."""
    found = _SCHEME.match(source)
    return found is not None and found.group(1).lower() != "file"


def scheme_of(url: str) -> str:
    found = _SCHEME.match(url)
    if found is None:
        raise UrlError(f"not a URL: {url}")
    return found.group(1).lower()


@dataclass(frozen=True, slots=True)
class RemoteUrl:
    """A parsed remote SOURCE: ``scheme://netloc/path`` (``path`` without its leading /)."""

    scheme: str
    netloc: str
    path: str

    @property
    def store(self) -> str:
        """The store a backend instance serves: ``scheme://netloc``."""
        return f"{self.scheme}://{self.netloc}"

    def child(self, rel: str) -> str:
        """The URL of ``rel`` below this one (``rel`` uses ``/``)."""
        base = self.path.rstrip("/")
        return f"{self.store}/{base}/{rel}" if base else f"{self.store}/{rel}"

    def __str__(self) -> str:
        return f"{self.store}/{self.path}"


def parse(url: str) -> RemoteUrl:
    """Split a remote SOURCE, refusing one that carries a secret. The path is kept as
    written (an S3 key may hold ``#`` or ``?``), so ``str(parse(u)) == u`` for any URL
    with a path."""
    check_no_secret(url)
    scheme = scheme_of(url)
    netloc, _, path = url[len(scheme) + 3 :].partition("/")
    return RemoteUrl(scheme, netloc, path)


def check_no_secret(url: str) -> None:
    """Refuse a URL with a password or a credential in it: it would be stored in the
    ledger and printed in records and messages. Credentials go by reference."""
    parts = urlsplit(url)
    if parts.password is not None:
        raise UrlError(
            f"{scheme_of(url)}:// source with a password in the URL: the URL names every "
            "document in the ledger and the records, so it must not hold a secret; give "
            "the user in the URL and the key or password by reference (the store's own "
            "environment, profile or key file, e.g. ~/.ssh/config for sftp://)"
        )
    for name, _value in parse_qsl(parts.query, keep_blank_values=True):
        if _SECRET_PARAMS.search(name):
            raise UrlError(
                f"{scheme_of(url)}:// source with a credential in its query ({name}=...): "
                "presigned and token URLs would be stored in the ledger and the records; "
                "name the object by its plain URL and give credentials by reference"
            )
