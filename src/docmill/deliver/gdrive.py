"""A Google Drive folder as a destination (``gdrive://``; ``docmill[gdrive]`` for keys).

The root is a folder as a SOURCE names one (:mod:`docmill.sources.gdrive.locations`):
``gdrive://FOLDER_ID/path/``, ``gdrive://root/path/`` (My Drive),
``gdrive://shared/DRIVE_NAME/path/``. A key's folders are Drive folders below it, found
by name or created (the names in the root's path too); its last segment is the file's
name (``／`` written for a ``/`` in a name is a ``/`` again in Drive).

Every request goes through the source's :class:`~docmill.sources.gdrive.client.DriveClient`
(one per destination) with the full ``drive`` scope: the per-user quota, the bearer
token refreshed before it expires, ``Retry-After``, Google's answers translated in one
place and every secret scrubbed. Each method is one attempt; the delivery's retrier
tries it again on a :class:`TransientError` (403 rate limits, 429, 5xx, a dropped
connection), and each step is safe to repeat:

* **Folders**: looked up by name under their parent first (``files.list``), created
  (``files.create``, metadata only) when missing, then looked up again, and **the
  oldest** of those of that name is used (``createdTime``, then id): two creators at
  once, or a crash between a creation and its use, leave at most an unused twin, never
  two folders in use. Found ids are kept for the destination's life (at most
  :data:`FOLDERS_KEPT`), and one thread at a time looks up or creates a given name.
* **Files**: Drive lets a folder hold several files of one name, so a retried upload
  must find the one before it. Every upload carries ``appProperties``: ``docmill`` (the
  delivery's item, e.g. ``archive-17``) and ``docmill-sha256`` (its content's sha256).
  ``holds`` lists the folder for the name (one query, whose answer ``put`` reuses) and
  says yes for a file of that size whose ``docmill-sha256`` (or Drive's own
  ``sha256Checksum``) is the content's. ``put`` replaces the bytes of the oldest file of
  that name docmill put (``files.update`` with media: one file, a new revision; a
  rewritten part, a document processed again), else creates one; a file of that name
  docmill did not put is left alone (Drive allows both).
* **Uploads**: up to :data:`MULTIPART_MAX` one ``uploadType=multipart`` request (JSON
  metadata and the bytes: the file exists whole or not at all); above it a resumable
  upload (``uploadType=resumable``): a session, then ``PUT`` chunks of :data:`CHUNK`
  bytes with ``Content-Range``, each answered ``308`` with the ``Range`` Drive holds.
  The bytes are checked against the record's sha256 before the last chunk leaves (a
  mismatch cancels the session: nothing appears, ``changed``). A dropped connection
  keeps the session: the item's next try asks Drive what arrived (``Content-Range:
  bytes */N``), reads the source again from the start (hashing what it skips) and
  sends only the rest. A session lost with the process (``kill -9``) leaves no file.
* **Moves** (``mode = "move"`` from a ``gdrive://`` SOURCE, :meth:`move_here`): one
  ``files.update`` with ``addParents``/``removeParents``, the name and the
  ``appProperties`` (no download, no upload); a file already in the folder with the
  content's ``docmill-sha256`` was moved before a crash. A file changed since it was
  processed is not moved (``changed``).
* ``delete`` trashes the files of that name docmill put; :meth:`remove_source` trashes a
  moved source by its document URL (the file id), unless it changed since.

At ``close`` one log line says what the destination did: queries, folders created,
files uploaded (and bytes), replaced, resumed, moved, trashed (flat counters,
:attr:`DriveDestination.counts`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import mimetypes
import secrets as tokens
import threading
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any

import httpx

from docmill.deliver.destinations import DestinationContext
from docmill.deliver.errors import DeliveryCategory, DeliveryFailed
from docmill.settings import SettingsError
from docmill.settings.deliveries import TemplateError, check_key
from docmill.sources.backend import BackendError
from docmill.sources.gdrive.auth import load_credentials
from docmill.sources.gdrive.backend import EXPORTS, FOLDER, change_token, quoted
from docmill.sources.gdrive.client import API_PATH, SCOPE_FULL, DriveClient, DriveConfig
from docmill.sources.gdrive.locations import (
    SHARED,
    SourceLocation,
    document_id,
    drive_name,
    parse_source,
    with_extension,
)
from docmill.sources.throttle import TransientError
from docmill.sources.urls import RemoteUrl, UrlError, scheme_of

log = logging.getLogger("docmill.deliver")

MULTIPART_MAX = 5 << 20  # bytes sent in one multipart request (Google's advice: up to 5 MB)
GRANULE = 256 << 10  # a resumable chunk but the last is a multiple of this
CHUNK = 8 << 20  # bytes a resumable PUT (32 granules)
FOLDERS_KEPT = 10_000  # folder ids remembered (path below the root -> id)
SESSIONS_KEPT = 64  # resumable sessions kept for the item's next try
ITEM_KEY = "docmill"
SHA_KEY = "docmill-sha256"
UPLOAD_PATH = "/upload/drive/v3/files"
_FILE_FIELDS = "id,name,mimeType,size,sha256Checksum,appProperties,createdTime"
_MOVE_FIELDS = "id,name,mimeType,parents,trashed,appProperties,md5Checksum,version,modifiedTime,size"
_STRIPES = 64  # locks for lookups and uploads, by hash of (parent, name)
DONE = -1  # what a session's status says once its file is complete


def _failed(exc: BackendError) -> DeliveryFailed:
    if exc.denied:
        return DeliveryFailed(DeliveryCategory.DENIED, str(exc))
    if exc.missing:
        return DeliveryFailed(DeliveryCategory.MISSING, str(exc))
    return DeliveryFailed(DeliveryCategory.ERROR, str(exc))


def _oldest(found: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Oldest first (``createdTime``, then id): every writer picks the same one."""
    return sorted(found, key=lambda f: (str(f.get("createdTime", "")), str(f.get("id", ""))))


@dataclass(frozen=True)
class _Session:
    """A resumable upload kept for the item's next try."""

    url: str  # the session URI (a credential of its own: never in a message)
    key: str
    target: str  # the file whose bytes it replaces ("": a new file)
    size: int
    sha256: str | None


class DriveDestination:
    """One Drive folder (see the module docstring)."""

    def __init__(
        self, context: DestinationContext, *, client: DriveClient | None = None,
        multipart_max: int = MULTIPART_MAX, chunk_size: int = CHUNK,
    ) -> None:
        if chunk_size <= 0 or chunk_size % GRANULE:
            raise ValueError(f"chunk_size is a positive multiple of {GRANULE}")
        store = context.store
        assert store is not None
        self.root = context.root
        self._store = store  # what the root names is read at its first use (see check_root)
        if client is None:
            try:
                credentials = load_credentials(context.options)
            except BackendError as exc:
                raise SettingsError(f"destination {context.root}: {exc}") from None
            config = replace(DriveConfig.from_settings(context.options, SCOPE_FULL),
                             timeout_s=context.timeout_s)
            client = DriveClient.of_account(config, credentials, secrets=context.secrets)
        self.client = client
        self._multipart_max = multipart_max
        self._chunk = chunk_size
        self._lock = threading.Lock()
        self._folder_locks = [threading.Lock() for _ in range(_STRIPES)]
        self._name_locks = [threading.Lock() for _ in range(_STRIPES)]
        self._puts = [0] * _STRIPES  # puts done, per name lock (a memo older than one is stale)
        self._root_node: tuple[str, str] | None = None  # (folder id, shared drive id)
        self._folders: OrderedDict[tuple[str, str], str] = OrderedDict()  # (parent, name) -> id
        self._sessions: OrderedDict[str, _Session] = OrderedDict()  # tag -> session
        self._memo = threading.local()  # holds' listing, for the put that follows
        self.counts: dict[str, int] = {}  # folders, uploaded, bytes, replaced, resumed, moved, trashed

    def _count(self, key: str, n: int = 1) -> None:
        with self._lock:
            self.counts[key] = self.counts.get(key, 0) + n

    @staticmethod
    def check_root(store: RemoteUrl) -> None:
        """The root's form, before any request (raises UrlError). ``gdrive://shared/``
        alone passes: it is the store of a shared drive's documents, opened to remove
        moved sources by their URL (as a folder to write to it fails at first use)."""
        if store.netloc == SHARED and not store.path.strip("/"):
            return
        parse_source(store)

    # --- one place for Google's errors ------------------------------------------------

    @contextmanager
    def _translated(self) -> Iterator[None]:
        try:
            yield
        except BackendError as exc:
            raise _failed(exc) from None

    def _json(self, response: httpx.Response, what: str) -> dict[str, Any]:
        try:
            payload = response.json()
        except ValueError:
            raise TransientError(self.client.scrub(f"{what}: an answer that is not JSON"),
                                 reason="bad_answer") from None
        if not isinstance(payload, dict):
            raise DeliveryFailed(DeliveryCategory.ERROR, f"{what}: an unexpected answer")
        return payload

    def _call(self, method: str, path: str, params: dict[str, Any], what: str, *,
              body: dict[str, Any] | None = None) -> dict[str, Any]:
        """One JSON request (``path`` below the API's base URL)."""
        content = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json; charset=UTF-8"} if body is not None else None
        response = self.client.request(method, path, {"supportsAllDrives": "true", **params},
                                       what, headers=headers, content=content)
        return self._json(response, what)

    # --- folders ------------------------------------------------------------------------

    def _split(self, key: str) -> tuple[tuple[str, ...], str]:
        try:
            check_key(key)
        except TemplateError as exc:
            raise DeliveryFailed(DeliveryCategory.NOT_ALLOWED, str(exc)) from None
        *folders, name = key.split("/")
        return tuple(drive_name(f) for f in folders), drive_name(name)

    def _root(self) -> tuple[str, str]:
        """(the root folder's id, its shared drive's id or ""), asked once."""
        with self._lock:
            if self._root_node is not None:
                return self._root_node
        try:
            where: SourceLocation = parse_source(self._store)
        except UrlError as exc:
            raise DeliveryFailed(DeliveryCategory.NOT_ALLOWED, f"destination {self.root}: {exc}") from None
        if where.shared_drive:
            drive = self._shared_drive(where.shared_drive)
            node = (drive, drive)  # a shared drive's id is its top folder's
        else:
            what = f"the destination {self.root}"
            try:
                item = self.client.get_file(where.root_id, "id,mimeType,driveId,trashed", what)
            except BackendError as exc:
                if exc.missing:
                    raise DeliveryFailed(DeliveryCategory.MISSING, self.client.scrub(
                        f"{what}: no folder with the id {where.root_id} is visible to "
                        f"{self.client.credentials.describe}")) from None
                raise
            if item.get("mimeType") != FOLDER or item.get("trashed"):
                raise DeliveryFailed(DeliveryCategory.NOT_ALLOWED,
                                     f"{what}: {where.root_id} is not a folder (or is in the trash)")
            node = (str(item["id"]), str(item.get("driveId") or ""))
        parent = node[0]
        for name in where.path:
            found = self._child(parent, node[1], name, create=True)
            assert found is not None
            parent = found
        with self._lock:
            self._root_node = (parent, node[1])
            return self._root_node

    def _shared_drive(self, name: str) -> str:
        what = f"finding the shared drive {name!r} for {self.root}"
        found: list[str] = []
        token: str | None = None
        while True:
            page = self.client.list_drives(what, q=f"name = {quoted(name)}", page_token=token)
            found += [str(d["id"]) for d in page.get("drives", []) if d.get("name") == name]
            token = page.get("nextPageToken")
            if not token:
                break
        if len(found) != 1:
            raise DeliveryFailed(
                DeliveryCategory.MISSING if not found else DeliveryCategory.NOT_ALLOWED,
                f"{self.root}: {len(found) or 'no'} shared drives named {name!r} are visible "
                f"to {self.client.credentials.describe}"
                + ("; name the folder by its id (gdrive://FOLDER_ID/…)" if found else ""))
        return found[0]

    def _folder(self, folders: tuple[str, ...], *, create: bool) -> tuple[str, str] | None:
        """(the id of the folder ``folders`` names below the root, the drive id); None
        when one is missing and ``create`` is false."""
        parent, drive = self._root()
        for name in folders:
            found = self._child(parent, drive, name, create=create)
            if found is None:
                return None
            parent = found
        return parent, drive

    def _cached(self, key: tuple[str, str]) -> str | None:
        with self._lock:
            found = self._folders.get(key)
            if found is not None:
                self._folders.move_to_end(key)
            return found

    def _child(self, parent: str, drive: str, name: str, *, create: bool) -> str | None:
        key = (parent, name)
        found = self._cached(key)
        if found is not None:
            return found
        with self._folder_locks[hash(key) % _STRIPES]:  # one lookup (and creation) per name at once
            found = self._cached(key)
            if found is not None:
                return found
            found = self._find_folder(parent, drive, name)
            if found is None:
                if not create:
                    return None
                made = self._call("POST", f"{API_PATH}/files", {"fields": "id"},
                                  f"creating the folder {name!r} in {self.root}",
                                  body={"name": name, "mimeType": FOLDER, "parents": [parent]})
                self._count("folders")
                # the oldest of that name now there: ours, or one made at the same time
                found = self._find_folder(parent, drive, name) or str(made["id"])
            with self._lock:
                self._folders[key] = found
                while len(self._folders) > FOLDERS_KEPT:
                    self._folders.popitem(last=False)
            return found

    def _find_folder(self, parent: str, drive: str, name: str) -> str | None:
        q = (f"{quoted(parent)} in parents and name = {quoted(name)} and "
             f"mimeType = {quoted(FOLDER)} and trashed = false")
        page = self.client.list_files(q, "files(id,name,createdTime)",
                                      f"looking up the folder {name!r} in {self.root}",
                                      page_size=100, drive_id=drive)
        found = _oldest([f for f in page.get("files", []) if f.get("name") == name])
        if len(found) > 1:
            log.warning("%s: %d folders are named %r in one folder; using the oldest", self.root,
                        len(found), name)
        return str(found[0]["id"]) if found else None

    # --- files ----------------------------------------------------------------------------

    def _named(self, folder: tuple[str, str], name: str) -> list[dict[str, Any]]:
        """The files of ``name`` in ``folder``, oldest first (one query)."""
        q = (f"{quoted(folder[0])} in parents and name = {quoted(name)} and "
             f"mimeType != {quoted(FOLDER)} and trashed = false")
        page = self.client.list_files(q, f"files({_FILE_FIELDS})", f"looking up {name!r} in {self.root}",
                                      page_size=100, drive_id=folder[1])
        return _oldest([f for f in page.get("files", []) if f.get("name") == name])

    @staticmethod
    def _same(item: dict[str, Any], size: int, sha256: str | None) -> bool:
        if size >= 0 and str(item.get("size", "")) != str(size):
            return False
        if sha256 is None:
            return True
        props = item.get("appProperties") or {}
        return sha256 in (props.get(SHA_KEY), item.get("sha256Checksum"))

    def holds(self, key: str, size: int, sha256: str | None) -> bool:
        folders, name = self._split(key)
        with self._translated():
            folder = self._folder(folders, create=False)
            if folder is None:
                return False
            puts = self._puts[hash((folder[0], name)) % _STRIPES]
            found = self._named(folder, name)
        self._memo.value = (key, folder, puts, found)
        return any(self._same(item, size, sha256) for item in found)

    def put(self, key: str, chunks: Iterator[bytes], size: int, sha256: str | None, tag: str) -> None:
        folders, name = self._split(key)
        with self._translated():
            folder = self._folder(folders, create=True)
            assert folder is not None
            stripe = hash((folder[0], name)) % _STRIPES
            with self._name_locks[stripe]:  # two items with one target (twins): one file
                try:
                    self._put(key, folder, name, stripe, chunks, size, sha256, tag)
                finally:
                    self._puts[stripe] += 1

    def _put(self, key: str, folder: tuple[str, str], name: str, stripe: int,
             chunks: Iterator[bytes], size: int, sha256: str | None, tag: str) -> None:
        memo = getattr(self._memo, "value", None)
        self._memo.value = None
        if memo is not None and memo[:3] == (key, folder, self._puts[stripe]):
            found = memo[3]  # holds' listing, and no put of this name since
        else:
            found = self._named(folder, name)
        ours = [item for item in found if ITEM_KEY in (item.get("appProperties") or {})]
        target = str(ours[0]["id"]) if ours else ""
        meta: dict[str, Any] = {"appProperties": {ITEM_KEY: tag}}
        if not target:
            meta.update(name=name, parents=[folder[0]],
                        mimeType=mimetypes.guess_type(name)[0] or "application/octet-stream")
        head, rest = self._head(chunks)
        if rest is None:  # small: one request
            got = hashlib.sha256(head).hexdigest()
            self._check(key, got, sha256, None)
            if target and self._same(ours[0], len(head), got):
                return  # already these bytes (a records part put again)
            meta["appProperties"][SHA_KEY] = got
            self._multipart(target, meta, head, key)
            return
        if sha256 is not None:
            meta["appProperties"][SHA_KEY] = sha256
        self._resumable(key, target, meta, head, rest, size, sha256, tag)

    def _head(self, chunks: Iterator[bytes]) -> tuple[bytes, Iterator[bytes] | None]:
        """The first bytes, up to the multipart limit; the rest (None: there is none)."""
        head = bytearray()
        for chunk in chunks:
            head += chunk
            if len(head) > self._multipart_max:
                return bytes(head), chunks
        return bytes(head), None

    def _check(self, key: str, got: str, sha256: str | None, session: _Session | None) -> None:
        if sha256 is None or got == sha256:
            return
        if session is not None:
            self._cancel(session)
        raise DeliveryFailed(
            DeliveryCategory.CHANGED,
            f"{key}: the source's bytes are no longer those of its record "
            "(it changed after it was processed; the next run processes it again)",
        )

    def _multipart(self, target: str, meta: dict[str, Any], data: bytes, key: str) -> None:
        boundary = "docmill-" + tokens.token_hex(16)
        while boundary.encode() in data:
            boundary = "docmill-" + tokens.token_hex(16)
        mime = str(meta.get("mimeType") or "application/octet-stream")
        body = b"".join((
            f"--{boundary}\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n".encode(),
            json.dumps(meta).encode(), f"\r\n--{boundary}\r\nContent-Type: {mime}\r\n\r\n".encode(),
            data, f"\r\n--{boundary}--\r\n".encode(),
        ))
        path = f"{UPLOAD_PATH}/{target}" if target else UPLOAD_PATH
        self.client.request(
            "PATCH" if target else "POST", path,
            {"uploadType": "multipart", "supportsAllDrives": "true", "fields": "id"},
            f"uploading {key} to {self.root}", content=body,
            headers={"Content-Type": f"multipart/related; boundary={boundary}"},
        ).close()
        self._count("replaced" if target else "uploaded")
        self._count("bytes", len(data))

    # --- resumable uploads ----------------------------------------------------------------

    def _resumable(self, key: str, target: str, meta: dict[str, Any], head: bytes,
                   rest: Iterator[bytes], size: int, sha256: str | None, tag: str) -> None:
        what = f"uploading {key} to {self.root}"
        with self._lock:
            session = self._sessions.pop(tag, None)
        offset: int | None = None
        if session is not None and session == _Session(session.url, key, target, size, sha256):
            offset = self._received(session, what)
            if offset == DONE:  # its last chunk arrived, the answer did not
                return
            if offset is not None:
                self._count("resumed")
        if session is None or offset is None:
            session = self._start(key, target, meta, size, sha256, what)
            offset = 0
        with self._lock:  # kept until it completes: a dropped connection resumes it
            self._sessions[tag] = session
            while len(self._sessions) > SESSIONS_KEPT:
                self._sessions.popitem(last=False)
        digest = hashlib.sha256()
        read = 0  # bytes of the source read so far
        start = offset  # where pending[0] goes in the file
        pending = bytearray()
        total = str(size) if size >= 0 else "*"
        for chunk in _chained(head, rest):
            digest.update(chunk)
            read += len(chunk)
            if read <= offset:
                continue  # Drive holds these already (hashed all the same)
            lacking = read - offset  # the bytes of this chunk Drive lacks, the first time
            pending += chunk if pending or lacking >= len(chunk) else chunk[len(chunk) - lacking :]
            while len(pending) > self._chunk:  # the last chunk waits until the end is known
                held = self._send(session, bytes(pending[: self._chunk]), start, total, what)
                if not start < held <= start + self._chunk:
                    raise TransientError(f"{what}: Drive holds an unexpected length; asking again",
                                         reason="upload")
                del pending[: held - start]  # what did not arrive is sent again
                start = held
        self._check(key, digest.hexdigest(), sha256, session)
        if self._send(session, bytes(pending), start, str(start + len(pending)), what) != DONE:
            raise TransientError(f"{what}: Drive did not complete the upload", reason="upload")
        with self._lock:
            self._sessions.pop(tag, None)
        self._count("replaced" if target else "uploaded")
        self._count("bytes", start + len(pending) - offset)

    def _start(self, key: str, target: str, meta: dict[str, Any], size: int, sha256: str | None,
               what: str) -> _Session:
        headers = {"Content-Type": "application/json; charset=UTF-8"}
        if size >= 0:
            headers["X-Upload-Content-Length"] = str(size)
        response = self.client.request(
            "PATCH" if target else "POST", f"{UPLOAD_PATH}/{target}" if target else UPLOAD_PATH,
            {"uploadType": "resumable", "supportsAllDrives": "true", "fields": "id"}, what,
            headers=headers, content=json.dumps(meta).encode(),
        )
        response.close()
        url = response.headers.get("location", "")
        if not url:
            raise TransientError(f"{what}: Drive answered no upload session", reason="upload")
        return _Session(url, key, target, size, sha256)

    def _received(self, session: _Session, what: str) -> int | None:
        """How many bytes of ``session`` Drive holds (DONE: the file is complete; None:
        the session is gone)."""
        try:
            return self._send(session, b"", None, str(session.size) if session.size >= 0 else "*", what)
        except BackendError as exc:
            if exc.missing:
                return None  # expired: a new session
            raise

    def _send(self, session: _Session, data: bytes, start: int | None, total: str,
              what: str) -> int:
        """One PUT to the session: the bytes Drive then holds, or DONE once the file is
        complete. ``start`` None asks what arrived (``bytes */total``)."""
        span = "*" if start is None else f"{start}-{start + len(data) - 1}"
        try:
            response = self.client.request("PUT", session.url, {}, what, content=data,
                                           headers={"Content-Range": f"bytes {span}/{total}"})
        except BackendError as exc:
            if exc.missing and start is not None:  # the session expired meanwhile
                with self._lock:
                    for tag, kept in list(self._sessions.items()):
                        if kept == session:
                            del self._sessions[tag]
                raise TransientError(f"{what}: the upload session expired; starting again",
                                     reason="upload") from None
            raise
        response.close()
        if response.status_code != 308:
            return DONE
        held = response.headers.get("range", "")  # bytes=0-N
        if not held:
            return 0
        try:
            return int(held.rpartition("-")[2]) + 1
        except ValueError:
            raise TransientError(f"{what}: an unreadable Range answer", reason="upload") from None

    def _cancel(self, session: _Session) -> None:
        try:
            self.client.request("DELETE", session.url, {}, f"cancelling an upload to {self.root}").close()
        except (BackendError, TransientError):
            pass  # 499 is the answer to a cancel; an unfinished session expires alone
        with self._lock:
            for tag, kept in list(self._sessions.items()):
                if kept == session:
                    del self._sessions[tag]

    # --- removing and moving --------------------------------------------------------------

    def _trash(self, file_id: str, what: str) -> None:
        try:
            self._call("PATCH", f"{API_PATH}/files/{file_id}", {"fields": "id"}, what,
                       body={"trashed": True})
            self._count("trashed")
        except BackendError as exc:
            if not exc.missing:
                raise

    def delete(self, key: str) -> None:
        folders, name = self._split(key)
        with self._translated():
            folder = self._folder(folders, create=False)
            if folder is None:
                return
            for item in self._named(folder, name):
                if ITEM_KEY in (item.get("appProperties") or {}):
                    self._trash(str(item["id"]), f"removing {key} from {self.root}")

    def remove_source(self, url: str, version: str | None) -> None:
        """A moved source, by its document URL: trashed (gone already is fine), unless
        its change token is no longer ``version``."""
        with self._translated():
            item = self._current(url)
            if item is None or item.get("trashed"):
                return
            if version and change_token(item)[1] != version:
                raise DeliveryFailed(DeliveryCategory.CHANGED, f"{url}: it changed after it was "
                                     "processed; not removed (the next run processes it again)")
            self._trash(str(item["id"]), f"removing {url}")

    def _current(self, url: str) -> dict[str, Any] | None:
        try:
            file_id = document_id(url)
        except UrlError as exc:
            raise DeliveryFailed(DeliveryCategory.NOT_ALLOWED, str(exc)) from None
        try:
            return self.client.get_file(file_id, _MOVE_FIELDS, url)
        except BackendError as exc:
            if exc.missing:
                return None
            raise

    def move_here(self, url: str, version: str | None, key: str, sha256: str | None, tag: str) -> bool:
        """Move the Drive file ``url`` to ``key`` within Drive (False: ``url`` is not a
        Drive document, so the caller copies and removes instead)."""
        if scheme_of(url) != "gdrive":
            return False
        folders, name = self._split(key)
        with self._translated():
            folder = self._folder(folders, create=True)
            assert folder is not None
            item = self._current(url)
            if item is None:
                raise DeliveryFailed(DeliveryCategory.MISSING, f"{url}: the source is gone")
            props = item.get("appProperties") or {}
            parents = [str(p) for p in item.get("parents", [])]
            if folder[0] in parents and props.get(SHA_KEY) == sha256 and not item.get("trashed"):
                return True  # moved by a try that crashed before its commit
            if item.get("trashed"):
                raise DeliveryFailed(DeliveryCategory.MISSING, f"{url}: the source is in the trash")
            if version and change_token(item)[1] != version:
                raise DeliveryFailed(DeliveryCategory.CHANGED, f"{url}: it changed after it was "
                                     "processed; not moved (the next run processes it again)")
            app = {ITEM_KEY: tag, **({SHA_KEY: sha256} if sha256 else {})}
            self._call("PATCH", f"{API_PATH}/files/{item['id']}",
                       {"addParents": folder[0], "removeParents": ",".join(parents), "fields": "id"},
                       f"moving {url} to {key} in {self.root}",
                       body={"name": _moved_name(item, name), "appProperties": app})
            self._count("moved")
        return True

    def close(self) -> None:
        queries = self.client.stats.get("queries", 0)
        if queries:
            counts = self.counts
            done = [f"{counts[k]} {label}" for k, label in (
                ("folders", "folders created"), ("uploaded", "uploaded"), ("replaced", "replaced"),
                ("resumed", "uploads resumed"), ("moved", "moved"), ("trashed", "trashed"),
            ) if counts.get(k)]
            if counts.get("bytes"):
                done.append(f"{counts['bytes'] / 1e6:.1f} MB sent")
            log.info("%s: %d Drive queries%s", self.root, queries,
                     "".join(f", {part}" for part in done))
        self.client.close()


def _chained(head: bytes, rest: Iterator[bytes]) -> Iterator[bytes]:
    yield head
    yield from rest


def _moved_name(item: dict[str, Any], name: str) -> str:
    """A Google-native file keeps no export extension: ``Budget.xlsx`` (its listed name)
    moves as ``Budget``; any other file takes the key's name."""
    export = EXPORTS.get(str(item.get("mimeType", "")))
    if export is not None and name.lower().endswith(export.ext):
        own = str(item.get("name", ""))
        if with_extension(own, export.ext) == name:
            return own
        return name[: -len(export.ext)]
    return name

