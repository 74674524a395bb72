"""The remote-source seam: what a store backend does, and the registry by URL scheme.

A backend serves one store (``scheme://netloc``: an S3 bucket, an SFTP host, a Drive)
and does three things, each one request at a time through the store's
:class:`~docmill.sources.throttle.Retrier`:

* ``list(url, select)``: every object at or below ``url`` whose path relative to it
  passes ``select`` (the include/exclude globs), **lazily**, page by page, as
  :class:`RemoteObject` values: its URL (the document's identity), size and a change
  token (``version``: ETag, version id, generation, else size and mtime) read from the
  listing, so an unchanged object is never downloaded again;
* ``stat(url)``: one object's size and change token, or None when there is none;
* ``read(obj, offset)``: the object's bytes from ``offset`` on, in chunks (one request);
  a dropped stream raises :class:`TransientError` and the caller resumes from where it
  stopped; an object that no longer has ``obj.version`` raises :class:`BackendError`
  with ``changed``;
* ``close()``.

Foreign errors are translated in exactly one place per backend, into
:class:`TransientError` (retried with backoff) or :class:`BackendError` (this object, or
this listing, failed), with every message passed through :meth:`Secrets.scrub`.

Backends are found by scheme (:class:`Backends`): the built-in table
:data:`BUILTIN_BACKENDS` and the entry points of the group ``docmill.sources`` (a plugin
registers ``gdrive = "mypkg.drive:DriveBackend"`` exactly as the built-ins are listed),
then any protocol fsspec knows, through the generic fsspec backend. An unknown scheme is
refused with the list of the known ones.
"""

from __future__ import annotations

import importlib
import os
import re
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Protocol

from docmill.settings import SourceSettings
from docmill.sources.throttle import Retrier, TransientError
from docmill.sources.urls import RemoteUrl, UrlError, parse, scheme_of

__all__ = [
    "BUILTIN_BACKENDS",
    "BackendContext",
    "BackendError",
    "Backends",
    "RemoteObject",
    "Secrets",
    "SourceBackend",
    "TransientError",
]

ENTRY_POINT_GROUP = "docmill.sources"

# scheme -> "module:factory"; a plugin's entry point has exactly this form
BUILTIN_BACKENDS: Mapping[str, str] = MappingProxyType(
    {
        "s3": "docmill.sources.s3:S3Backend",
        "s3a": "docmill.sources.s3:S3Backend",
        "gdrive": "docmill.sources.gdrive.backend:DriveBackend",
    }
)
# any other scheme fsspec knows (gs, az, abfs, sftp, ssh, http, https, ...)
FSSPEC_BACKEND = "docmill.sources.fsspec_backend:FsspecBackend"
# the docmill extra that installs each scheme's fsspec backend
EXTRAS: Mapping[str, str] = MappingProxyType(
    {
        "s3": "s3", "s3a": "s3", "gs": "gcs", "gcs": "gcs", "az": "azure", "abfs": "azure",
        "abfss": "azure", "adl": "azure", "sftp": "sftp", "ssh": "sftp", "http": "http",
        "https": "http", "gdrive": "gdrive",
    }
)


@dataclass(frozen=True, slots=True)
class RemoteObject:
    """One object of a store, as its listing describes it."""

    url: str  # the document's identity: scheme://netloc/path
    size: int
    version: str  # the change token (ETag, version id, generation; else size and mtime)
    mtime_ns: int = 0

    @property
    def name(self) -> str:
        return self.url.rstrip("/").rsplit("/", 1)[-1]


class BackendError(Exception):
    """A request that failed for good: this object (or this listing) cannot be read.

    The message is safe to show and store: scrubbed of secrets, naming the object by
    its URL at most."""

    def __init__(
        self, message: str, *, missing: bool = False, changed: bool = False,
        too_large: bool = False, denied: bool = False,
    ) -> None:
        super().__init__(message)
        self.missing = missing
        self.changed = changed
        self.too_large = too_large  # the store will not serve it at this size (too_large)
        self.denied = denied  # the store refused the credentials or the access


class SourceBackend(Protocol):
    """What every store backend provides (see the module docstring)."""

    def list(self, url: RemoteUrl, select: Callable[[str], bool]) -> Iterator[RemoteObject]:
        """Objects at or below ``url`` whose relative path passes ``select``, lazily."""
        ...

    def stat(self, url: str) -> RemoteObject | None:
        """One object's size and change token (None: there is no object at ``url``),
        one request through the store's retrier."""
        ...

    def read(self, obj: RemoteObject, offset: int) -> Iterator[bytes]:
        """``obj``'s bytes from ``offset`` on, in chunks: one request (not throttled here:
        the caller waits its turn before each call)."""
        ...

    def close(self) -> None: ...


class Secrets:
    """Values that must never be shown: the credentials the environment holds (the
    stores' own variables are read by their libraries; this only knows what to hide)."""

    _NAME = re.compile(r"(SECRET|TOKEN|PASSWORD|PASSPHRASE|CREDENTIAL|ACCESS_KEY|_KEY$|_SAS)", re.I)

    def __init__(self, values: frozenset[str]) -> None:
        # the longest first, so that a secret holding another is hidden whole
        self._values = tuple(sorted(values, key=len, reverse=True))

    @classmethod
    def from_environ(cls, env: Mapping[str, str] | None = None) -> Secrets:
        env = os.environ if env is None else env
        return cls(frozenset(v for k, v in env.items() if cls._NAME.search(k) and len(v) >= 6))

    def with_values(self, values: frozenset[str]) -> Secrets:
        """These secrets and ``values`` (e.g. a webhook's resolved header values)."""
        return Secrets(frozenset({*self._values, *(v for v in values if v)}))

    def scrub(self, text: str) -> str:
        for value in self._values:
            if value in text:
                text = text.replace(value, "[secret]")
        return text


@dataclass(frozen=True)
class BackendContext:
    """What a backend factory is given: its store, its retrier and the settings."""

    store: RemoteUrl  # scheme://netloc (path empty)
    retrier: Retrier
    options: SourceSettings
    secrets: Secrets


BackendFactory = Callable[[BackendContext], SourceBackend]


def _load(target: str) -> BackendFactory:
    module, _, attr = target.partition(":")
    factory: BackendFactory = getattr(importlib.import_module(module), attr)
    return factory


def _plugin_table() -> dict[str, str]:
    from importlib.metadata import entry_points

    return {ep.name.lower(): ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)}


def _fsspec_protocols() -> list[str]:
    try:
        from fsspec.registry import known_implementations, registry
    except ImportError:
        return []
    return sorted({*known_implementations, *registry} - {"file", "local"})


def _install_hint(scheme: str) -> str:
    extra = EXTRAS.get(scheme)
    return f"pip install 'docmill[{extra}]'" if extra else "install its fsspec backend"


class Backends:
    """The run's backends: one instance per store, created on first use (thread-safe),
    each with its own :class:`Retrier` (``sources.requests_per_s``, ``sources.retries``)."""

    def __init__(
        self,
        options: SourceSettings,
        table: Mapping[str, str | BackendFactory] | None = None,
        *,
        secrets: Secrets | None = None,
        retrier: Callable[[], Retrier] | None = None,
    ) -> None:
        self.options = options
        self._table: dict[str, str | BackendFactory] = dict(
            BUILTIN_BACKENDS if table is None else table
        )
        self.secrets = secrets or Secrets.from_environ()
        self._new_retrier = retrier or (
            lambda: Retrier(options.requests_per_s, options.retries)
        )
        self._lock = threading.Lock()
        self._open: dict[str, tuple[SourceBackend, Retrier]] = {}
        self._factories: dict[str, BackendFactory] = {}

    @classmethod
    def load(cls, options: SourceSettings) -> Backends:
        """The built-ins, then the ``docmill.sources`` entry points (a plugin may add a
        scheme; a built-in keeps its own)."""
        table: dict[str, str | BackendFactory] = dict(_plugin_table())
        table.update(BUILTIN_BACKENDS)
        return cls(options, table)

    def known_schemes(self) -> list[str]:
        return sorted(self._table)

    def _target(self, scheme: str) -> str | BackendFactory:
        if scheme in self._table:
            return self._table[scheme]
        if scheme in _fsspec_protocols():
            return FSSPEC_BACKEND
        fsspec = _fsspec_protocols()
        raise UrlError(
            f"unknown source scheme {scheme}://; known: {', '.join(self.known_schemes())}"
            + (f", and fsspec's: {', '.join(fsspec)}" if fsspec else "")
        )

    def check(self, url: str) -> RemoteUrl:
        """Parse ``url`` and make sure its scheme has a backend that can be imported,
        without any request. Raises :class:`UrlError` saying what to do."""
        parsed = parse(url)
        target = self._target(parsed.scheme)
        try:
            factory = _load(target) if isinstance(target, str) else target
            check_url = getattr(factory, "check_url", None)  # the backend's own URL forms
            if check_url is not None:
                check_url(parsed)
            if target == FSSPEC_BACKEND:
                import fsspec

                fsspec.get_filesystem_class(parsed.scheme)
        except ImportError as exc:
            raise UrlError(
                f"{parsed.scheme}:// sources need a package that is not installed "
                f"({exc}): {_install_hint(parsed.scheme)}"
            ) from None
        return parsed

    def for_url(self, url: str) -> tuple[SourceBackend, Retrier]:
        """The backend serving ``url``'s store, and that store's retrier.

        A store is ``scheme://netloc``, unless the backend says ``store_per_scheme``: then
        every URL of its scheme is one store (Drive: the quota and the token belong to the
        account, whatever folder a URL names), keyed ``scheme://``."""
        parsed = parse(url) if "://" in url else None
        if parsed is None:
            raise UrlError(f"not a URL: {url}")
        with self._lock:
            factory = self._factories.get(parsed.scheme)
            if factory is None:
                target = self._target(scheme_of(url))
                factory = _load(target) if isinstance(target, str) else target
                self._factories[parsed.scheme] = factory
            netloc = "" if getattr(factory, "store_per_scheme", False) else parsed.netloc
            key = f"{parsed.scheme}://{netloc}"
            found = self._open.get(key)
            if found is None:
                retrier = self._new_retrier()
                context = BackendContext(
                    RemoteUrl(parsed.scheme, netloc, ""), retrier, self.options, self.secrets
                )
                found = (factory(context), retrier)
                self._open[key] = found
        return found

    def stats(self) -> dict[str, dict[str, int]]:
        """Each store's counters (requests, retry/REASON, gave_up), by store URL."""
        with self._lock:
            return {store: dict(r.stats) for store, (_b, r) in self._open.items()}

    def close(self) -> None:
        with self._lock:
            opened, self._open = list(self._open.values()), {}
        for backend, _retrier in opened:
            try:
                backend.close()
            except Exception:  # closing must not end the run
                pass
