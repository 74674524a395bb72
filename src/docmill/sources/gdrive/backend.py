"""The Google Drive source backend (``gdrive://``; see :mod:`.locations` for the forms).

One backend serves every ``gdrive://`` URL of a run (``store_per_scheme``): Google's
quota is per user, and one set of credentials is one user, so there is one
:class:`DriveClient` (one token, one query quota) and one store Retrier however many
Drive SOURCEs a run names.

**Listing** walks folders depth first with a stack of ``(folder id, path)``, one
``files.list`` page (``pageSize`` ``sources.gdrive_page_size``, at most 1,000) at a time,
``q = "'FOLDER' in parents and trashed = false"``, a ``fields`` mask of what a change
token needs, and ``supportsAllDrives``/``includeItemsFromAllDrives`` (``corpora=drive``
with the drive's id inside a shared drive). Only a page and the stack of folders still
to list are in memory, never the tree. Shortcuts are not followed, and Google-native
types with no document export (Forms, Sites, Maps, Apps Script…) are not listed; the
count of each is logged at the end of the walk.

**Change tokens** come from the listing, before any download: ``md5:<md5Checksum>`` for
a binary file; ``document|spreadsheet|presentation|drawing:<version>:<modifiedTime>``
for a Google-native one (no md5; ``version`` grows with every change), whose kind also
tells ``read`` how to export it without another query. A native file's size is
unknown (``-1``) until exported; ``unknown_size_at_most`` tells the spool it is at most
Google's 10 MB export limit, so exports do not each reserve the whole spool.

**Reading**: a binary file is one ``alt=media`` query streamed in 1 MiB chunks, resumed
with ``Range`` from the last byte after a dropped stream, its md5 checked against the
listed one (across resumed calls too) so a file replaced after it was listed fails
``changed`` instead of mixing versions. A Google Doc, Slides or Drawing is exported as
PDF, a Sheet as XLSX (``files.export``), read whole before it is handed on (an export
cannot be resumed); past 10 MB Google refuses (403 ``exportSizeLimitExceeded``) and the
document fails ``too_large`` with a message saying so.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterator
from datetime import datetime
from functools import partial
from typing import Any, NamedTuple

from docmill.sources.backend import BackendContext, BackendError, RemoteObject
from docmill.sources.gdrive.auth import load_credentials
from docmill.sources.gdrive.client import EXPORT_LIMIT, DriveClient, DriveConfig
from docmill.sources.gdrive.locations import (
    SourceLocation,
    document_id,
    parse_source,
    path_name,
    with_extension,
)
from docmill.sources.throttle import TransientError
from docmill.sources.urls import RemoteUrl, UrlError

log = logging.getLogger("docmill.sources")

FOLDER = "application/vnd.google-apps.folder"
NATIVE_PREFIX = "application/vnd.google-apps."
CHUNK = 1 << 20
_FILE_FIELDS = "id,name,mimeType,size,md5Checksum,modifiedTime,version,trashed,driveId"
LIST_FIELDS = (
    "nextPageToken,incompleteSearch,files(id,name,mimeType,size,md5Checksum,modifiedTime,version)"
)
_RESUMABLE = 64  # partial md5 states kept for downloads that may be resumed


class Export(NamedTuple):
    key: str  # the change token's prefix
    mime: str  # what files.export is asked for
    ext: str  # added to the document's name


# Google-native types docmill exports (Sheets as XLSX keeps cells and sheets; the rest PDF)
EXPORTS: dict[str, Export] = {
    NATIVE_PREFIX + "document": Export("document", "application/pdf", ".pdf"),
    NATIVE_PREFIX + "spreadsheet": Export(
        "spreadsheet", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", ".xlsx"
    ),
    NATIVE_PREFIX + "presentation": Export("presentation", "application/pdf", ".pdf"),
    NATIVE_PREFIX + "drawing": Export("drawing", "application/pdf", ".pdf"),
}
_BY_KEY = {e.key: e for e in EXPORTS.values()}


def quoted(text: str) -> str:
    """A value inside a Drive query's single quotes."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _mtime_ns(value: Any) -> int:
    if not isinstance(value, str):
        return 0
    try:
        return int(datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() * 1e9)
    except ValueError:
        return 0


def change_token(item: dict[str, Any]) -> tuple[int, str]:
    """(size, version) of a listed file (size -1: a native document, known once exported)."""
    export = EXPORTS.get(item.get("mimeType", ""))
    if export is not None:
        return -1, f"{export.key}:{item.get('version', '')}:{item.get('modifiedTime', '')}"
    size = int(item.get("size") or 0)
    md5 = item.get("md5Checksum")
    if md5:
        return size, f"md5:{md5}"
    return size, f"rev:{item.get('version', '')}:{item.get('modifiedTime', '')}"


class DriveBackend:
    """Every ``gdrive://`` URL of a run (see the module docstring)."""

    store_per_scheme = True  # the quota and the token belong to the account
    unknown_size_at_most = EXPORT_LIMIT  # what a native document's export may weigh
    check_url = staticmethod(parse_source)  # a SOURCE's form, checked before any request

    def __init__(self, context: BackendContext, *, client: DriveClient | None = None) -> None:
        self._retrier = context.retrier
        self.client = client or DriveClient.of_account(
            DriveConfig.from_settings(context.options),
            load_credentials(context.options),
            secrets=context.secrets,
        )
        self._page_size = max(1, min(1000, context.options.gdrive_page_size))
        self._lock = threading.Lock()
        self._partial: OrderedDict[str, tuple[int, Any]] = OrderedDict()  # url -> (offset, md5)

    def _call(self, request: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        return self._retrier.call(request)

    # --- where a SOURCE starts ----------------------------------------------------------

    def _shared_drive(self, name: str, source: str) -> str:
        what = f"finding the shared drive {name!r} for {source}"
        found: list[str] = []
        token: str | None = None
        while True:
            page = self._call(partial(self.client.list_drives, what, q=f"name = {quoted(name)}",
                                      page_token=token))
            found += [d["id"] for d in page.get("drives", []) if d.get("name") == name]
            token = page.get("nextPageToken")
            if not token:
                break
        if not found:
            raise BackendError(f"{source}: no shared drive named {name!r} is visible to "
                               f"{self.client.credentials.describe}")
        if len(found) > 1:
            raise BackendError(f"{source}: {len(found)} shared drives are named {name!r}; "
                               "name the folder by its id instead (gdrive://FOLDER_ID)")
        return found[0]

    def _child_folder(self, parent: dict[str, Any], name: str, source: str) -> dict[str, Any]:
        q = (f"{quoted(parent['id'])} in parents and name = {quoted(name)} and "
             f"mimeType = {quoted(FOLDER)} and trashed = false")
        page = self._call(lambda: self.client.list_files(
            q, "files(id,name,mimeType,driveId)", f"looking up {name!r} in {source}",
            page_size=10, drive_id=parent.get("driveId", "")))
        folders = page.get("files", [])
        if not folders:
            raise BackendError(f"{source}: there is no folder {name!r} where it is named")
        if len(folders) > 1:
            raise BackendError(f"{source}: {len(folders)} folders are named {name!r} there; "
                               "name the folder by its id instead (gdrive://FOLDER_ID)")
        return {**folders[0], "driveId": folders[0].get("driveId") or parent.get("driveId", "")}

    def _root(self, where: SourceLocation, source: str) -> dict[str, Any]:
        """The file or folder a SOURCE names, as ``files.get`` gives it."""
        if where.shared_drive:
            drive = self._shared_drive(where.shared_drive, source)
            # a shared drive's id is also the id of its top folder
            node: dict[str, Any] = {"id": drive, "name": where.shared_drive, "mimeType": FOLDER,
                                    "driveId": drive}
        else:
            try:
                node = self._call(lambda: self.client.get_file(where.root_id, _FILE_FIELDS, source))
            except BackendError as exc:
                if exc.missing:
                    raise BackendError(f"{source}: no file or folder with the id "
                                       f"{where.root_id} is visible to "
                                       f"{self.client.credentials.describe}") from None
                raise
            if node.get("trashed"):
                raise BackendError(f"{source}: it is in the trash")
        for name in where.path:
            node = self._child_folder(node, name, source)
        return node

    # --- listing ------------------------------------------------------------------------

    def _object(self, url: RemoteUrl, folders: str, item: dict[str, Any]) -> tuple[str, RemoteObject] | None:
        """(path relative to the SOURCE, the object) of a listed file; None: not listed."""
        mime = item.get("mimeType", "")
        export = EXPORTS.get(mime)
        if export is None and mime.startswith(NATIVE_PREFIX):
            return None
        name = path_name(item.get("name", ""))
        if export is not None:
            name = with_extension(name, export.ext)
        size, version = change_token(item)
        rel = folders + name
        obj = RemoteObject(url.child(f"{folders}{item['id']}/{name}"), size, version,
                           _mtime_ns(item.get("modifiedTime")))
        return rel, obj

    def list(self, url: RemoteUrl, select: Callable[[str], bool]) -> Iterator[RemoteObject]:
        source = str(url).rstrip("/")
        try:
            where = parse_source(url)
        except UrlError as exc:
            raise BackendError(str(exc)) from None
        root = self._root(where, source)
        base = RemoteUrl(url.scheme, url.netloc, url.path.strip("/"))
        if root.get("mimeType") != FOLDER:  # a SOURCE naming one file
            found = self._object(base, "", root)
            if found is not None and select(found[0]):
                yield found[1]
            return
        skipped: Counter[str] = Counter()
        warned = False
        drive_id = root.get("driveId", "")
        stack: list[tuple[str, str]] = [(root["id"], "")]
        while stack:
            folder_id, folders = stack.pop()
            subfolders: list[tuple[str, str]] = []
            token: str | None = None
            q = f"{quoted(folder_id)} in parents and trashed = false"
            what = f"listing {source}/{folders}".rstrip("/")
            while True:
                page = self._call(partial(self.client.list_files, q, LIST_FIELDS, what,
                                          page_size=self._page_size, page_token=token,
                                          drive_id=drive_id))
                for item in page.get("files", ()):
                    if item.get("mimeType") == FOLDER:
                        subfolders.append((item["id"], f"{folders}{path_name(item.get('name', ''))}/"))
                        continue
                    found = self._object(base, folders, item)
                    if found is None:
                        skipped[item.get("mimeType", "?").removeprefix(NATIVE_PREFIX)] += 1
                    elif select(found[0]):
                        yield found[1]
                if page.get("incompleteSearch") and not warned:
                    warned = True
                    log.warning("%s: Drive says its listing may be incomplete (incompleteSearch)",
                                what)
                token = page.get("nextPageToken")
                if not token:
                    break
            subfolders.sort(key=lambda f: f[1], reverse=True)  # popped in name order
            stack.extend(subfolders)
        if skipped:
            log.info("%s: not listed (no document export, or a shortcut): %s", source,
                     ", ".join(f"{n} {kind}" for kind, n in sorted(skipped.items())))

    def stat(self, url: str) -> RemoteObject | None:
        try:
            file_id = document_id(url)
        except UrlError:
            return None
        try:
            item = self._call(lambda: self.client.get_file(file_id, _FILE_FIELDS, url))
        except BackendError as exc:
            if exc.missing:
                return None
            raise
        if item.get("trashed") or item.get("mimeType") == FOLDER:
            return None
        size, version = change_token(item)
        return RemoteObject(url, size, version, _mtime_ns(item.get("modifiedTime")))

    # --- reading ------------------------------------------------------------------------

    def read(self, obj: RemoteObject, offset: int) -> Iterator[bytes]:
        file_id = document_id(obj.url)
        version = obj.version
        if not version:  # a row without its listing's token: ask (one query)
            current = self.stat(obj.url)
            if current is None:
                raise BackendError(f"{obj.url}: not found", missing=True)
            version = current.version
        kind, _, _rest = version.partition(":")
        export = _BY_KEY.get(kind)
        if export is not None:
            yield from self._export(obj, file_id, export, offset)
            return
        yield from self._download(obj, file_id, version, offset)

    def _export(self, obj: RemoteObject, file_id: str, export: Export, offset: int) -> Iterator[bytes]:
        if offset:  # never happens: an export is only handed on whole
            raise BackendError(f"{obj.url}: an export cannot be resumed")
        data = self.client.export(file_id, export.mime, obj.url)
        for start in range(0, len(data), CHUNK):
            yield data[start : start + CHUNK]

    def _download(self, obj: RemoteObject, file_id: str, version: str, offset: int) -> Iterator[bytes]:
        expected = version[4:] if version.startswith("md5:") else ""
        digest: Any = None
        if expected:
            with self._lock:
                held = self._partial.pop(obj.url, None)
            if offset == 0:
                digest = hashlib.md5(usedforsecurity=False)
            elif held is not None and held[0] == offset:
                digest = held[1]
        got = offset
        try:
            for chunk in self.client.download(file_id, offset, obj.url):
                if digest is not None:
                    digest.update(chunk)
                got += len(chunk)
                yield chunk
        except TransientError:
            self._keep(obj.url, got, digest)
            raise
        if 0 <= got < obj.size:  # ended early: the caller resumes from ``got``
            self._keep(obj.url, got, digest)
            return
        if digest is not None and obj.size >= 0 and got >= obj.size and digest.hexdigest() != expected:
            raise BackendError(
                f"{obj.url}: the file changed after it was listed (its md5 is not the listed "
                "one); the next run picks the new version up", changed=True,
            )

    def _keep(self, url: str, offset: int, digest: Any) -> None:
        """Remember the md5 of the bytes so far, for the call that resumes at ``offset``."""
        if digest is None:
            return
        with self._lock:
            self._partial[url] = (offset, digest)
            while len(self._partial) > _RESUMABLE:
                self._partial.popitem(last=False)

    def close(self) -> None:
        self.client.close()
