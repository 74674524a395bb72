"""The generic backend: any protocol fsspec knows (``sftp://``, ``gs://``, ``az://``,
``http(s)://``...), each through its own fsspec package (``docmill[sftp]`` installs sshfs,
``[gcs]`` gcsfs, ``[azure]`` adlfs, ``[http]`` aiohttp).

Each package finds its credentials as its own tools do (sshfs: ``~/.ssh/config``, the
agent and ``~/.ssh/id_*``, known_hosts checked; gcsfs: ``GOOGLE_APPLICATION_CREDENTIALS``
and gcloud's; adlfs: ``AZURE_STORAGE_*``); docmill never reads them.

Listing walks folders one at a time (``ls`` of one folder, sorted, depth first, as a
local walk does): a folder's entries are in memory while it is listed, never the whole
tree. An ``http(s)://`` SOURCE is one file, never crawled. An object's change token is
the first of ETag, version id, generation or MD5 its listing gives, else its size and
modification time. A read opens the file, seeks to the offset and reads chunks.
"""

from __future__ import annotations

import posixpath
import warnings
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

from docmill.sources.backend import BackendContext, BackendError, RemoteObject
from docmill.sources.throttle import TransientError
from docmill.sources.urls import RemoteUrl

CHUNK = 1 << 20
_VERSION_KEYS = ("ETag", "etag", "VersionId", "version_id", "generation", "md5Hash", "md5",
                 "content_md5", "Content-MD5")
_TIME_KEYS = ("mtime", "LastModified", "last_modified", "modified", "updated", "time", "created")
_SINGLE_FILE = {"http", "https"}
# connection options by scheme: sshfs skips host-key checks unless told otherwise; ssh
# checks known_hosts (and ~/.ssh/config's UserKnownHostsFile), and so does docmill
_CONNECT: dict[str, dict[str, Any]] = {"sftp": {"known_hosts": ()}, "ssh": {"known_hosts": ()}}
# exception class names (anywhere in the chain) that mean the connection dropped
_CONNECTION_ERRORS = (
    "ConnectionError", "TimeoutError", "ConnectionLost", "DisconnectError",
    "ClientPayloadError", "ServerDisconnectedError", "ClientConnectorError", "ClientOSError",
    "ChannelOpenError", "BrokenPipeError", "EOFError", "IncompleteRead", "SSHException",
)


def _timestamp(value: Any) -> float:
    if isinstance(value, datetime):
        return value.timestamp()
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
        except ValueError:
            return 0.0
    return 0.0


def _version(info: dict[str, Any]) -> tuple[str, int]:
    """(change token, mtime in ns) from an fsspec ``info`` dict."""
    mtime = next((_timestamp(info[k]) for k in _TIME_KEYS if info.get(k)), 0.0)
    for key in _VERSION_KEYS:
        value = info.get(key)
        if value:
            return f"{key}:{str(value).strip(chr(34))}", int(mtime * 1e9)
    return f"size:{info.get('size')}:mtime:{mtime!r}", int(mtime * 1e9)


class FsspecBackend:
    """One store of any fsspec protocol (see the module docstring)."""

    def __init__(self, context: BackendContext) -> None:
        self.store = context.store
        self._secrets = context.secrets
        self._retrier = context.retrier
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # e.g. asyncssh's DSA deprecation on import
                from fsspec.core import url_to_fs

                self._fs, _ = url_to_fs(
                    f"{self.store.store}/", skip_instance_cache=True,
                    **_CONNECT.get(self.store.scheme, {}),
                )
        except ImportError as exc:
            raise BackendError(
                f"{self.store.scheme}:// sources need a package that is not installed ({exc})"
            ) from None
        except Exception as exc:
            raise self._translate(exc, f"connecting to {self.store.store}") from None

    # --- the one place foreign errors are read ------------------------------------------

    def _translate(self, exc: BaseException, what: str) -> Exception:
        if isinstance(exc, TransientError | BackendError):
            return exc
        chain: list[BaseException] = []
        found: BaseException | None = exc
        while found is not None and found not in chain:
            chain.append(found)
            found = found.__cause__ or found.__context__
        for err in chain:
            status = getattr(err, "status", None) or getattr(err, "code", None)
            if status in (429, 503):
                headers = getattr(err, "headers", None) or {}
                after = headers.get("Retry-After") if hasattr(headers, "get") else None
                try:
                    after_s = float(after) if after is not None else None
                except ValueError:
                    after_s = None
                return TransientError(f"{what}: {status} (slow down)", retry_after_s=after_s,
                                      throttled=True, reason=str(status))
            if isinstance(status, int) and 500 <= status < 600:
                return TransientError(f"{what}: {status}", reason=str(status))
        for err in chain:
            if any(c.__name__ in _CONNECTION_ERRORS for c in type(err).__mro__):
                return TransientError(f"{what}: connection lost ({type(err).__name__})",
                                      reason="connection")
        if isinstance(exc, FileNotFoundError):
            return BackendError(f"{what}: not found", missing=True)
        if isinstance(exc, PermissionError):
            return BackendError(f"{what}: permission denied (check the credentials)")
        return BackendError(self._secrets.scrub(f"{what}: {type(exc).__name__}: {exc}"))

    def _call(self, what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        def request() -> Any:
            try:
                return fn(*args, **kwargs)
            except Exception as exc:
                raise self._translate(exc, what) from None

        return self._retrier.call(request)

    # --- listing ------------------------------------------------------------------------

    def _path(self, url: str) -> str:
        path: str = self._fs._strip_protocol(url)
        return path

    def list(self, url: RemoteUrl, select: Callable[[str], bool]) -> Iterator[RemoteObject]:
        source = str(url)
        root = self._path(source)
        if self.store.scheme in _SINGLE_FILE:
            info = self._call(source, self._fs.info, source)
            info = {**info, "type": "file"}
        else:
            try:
                info = self._call(source, self._fs.info, root)
            except BackendError as exc:
                if exc.missing:
                    return
                raise
        if info.get("type") != "directory":
            obj = self._object(source, info)
            if select(obj.name):
                yield obj
            return
        base = root.rstrip("/")
        stack = [root]
        while stack:
            folder = stack.pop()
            entries = self._call(f"listing {folder}", self._fs.ls, folder, detail=True)
            entries.sort(key=lambda e: e["name"])
            subfolders: list[str] = []
            for entry in entries:
                path = entry["name"].rstrip("/")
                if path == folder.rstrip("/"):
                    continue
                if entry.get("type") == "directory":
                    subfolders.append(path)
                    continue
                if entry.get("type") != "file":
                    continue
                rel = path[len(base) :].lstrip("/") if path.startswith(base) else posixpath.basename(path)
                if select(rel):
                    yield self._object(url.child(rel), entry)
            stack.extend(reversed(subfolders))

    def stat(self, url: str) -> RemoteObject | None:
        path = url if self.store.scheme in _SINGLE_FILE else self._path(url)
        try:
            info = self._call(url, self._fs.info, path)
        except BackendError as exc:
            if exc.missing:
                return None
            raise
        if info.get("type") == "directory" and self.store.scheme not in _SINGLE_FILE:
            return None
        return self._object(url, info)

    def _object(self, url: str, info: dict[str, Any]) -> RemoteObject:
        version, mtime_ns = _version(info)
        size = info.get("size")
        return RemoteObject(url, int(size) if size is not None else -1, version, mtime_ns)

    # --- reading ------------------------------------------------------------------------

    def read(self, obj: RemoteObject, offset: int) -> Iterator[bytes]:
        what = obj.url
        path = obj.url if self.store.scheme in _SINGLE_FILE else self._path(obj.url)
        try:
            handle = self._fs.open(path, "rb")
        except Exception as exc:
            raise self._translate(exc, what) from None
        try:
            if offset:
                handle.seek(offset)
            while True:
                try:
                    chunk = handle.read(CHUNK)
                except Exception as exc:
                    raise self._translate(exc, what) from None
                if not chunk:
                    return
                yield chunk
        finally:
            try:
                handle.close()
            except Exception:
                pass

    def close(self) -> None:
        pass
