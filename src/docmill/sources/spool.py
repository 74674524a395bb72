"""The spool: remote documents downloaded to local disk, bounded by ``sources.spool_mb``.

Workers never talk to the network: a remote document is downloaded (in chunks, its
sha256 computed on the way) into ``DIR/spool/<doc id>-<name>`` before it can be
claimed, and the worker reads that file (one folder: a folder per document cost ~0.2 ms
of system CPU a document in mkdir and rmdir on ext4). The spool holds at most ``capacity`` bytes:
a download first reserves its object's listed size and waits while the spool is full,
so downloading runs only as far ahead of the workers as the spool allows (and claiming,
which takes only downloaded documents, waits with it). A document's file is deleted
when its outcome is committed, when its content turns out unchanged or a twin's, and
on the next start for anything no pending document needs.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import threading
from pathlib import Path

from docmill.model import ErrorInfo, FailureCategory
from docmill.sources.backend import BackendError, Backends, RemoteObject
from docmill.sources.throttle import TransientError

SPOOL_DIR = "spool"
_UNSAFE = re.compile(r"[^A-Za-z0-9._ ()+,=@-]+")

# (sha256, "") or (None, why): what hashing a local file gives, too
FetchResult = tuple[str | None, str | ErrorInfo]


def spool_name(url: str) -> str:
    """A safe file name for the object ``url`` (its last segment, cleaned): error messages
    name a document by its file name, so this keeps the object's own."""
    name = url.rstrip("/").rsplit("/", 1)[-1]
    name = _UNSAFE.sub("_", name).strip(". ") or "document"
    return name[-120:]


class Spool:
    """Reservations and files under ``folder``; thread-safe."""

    def __init__(self, folder: str | Path, capacity_bytes: int) -> None:
        self.folder = Path(folder)
        self.capacity = capacity_bytes
        self._cond = threading.Condition()
        self._held: dict[int, int] = {}  # doc id -> bytes reserved
        self._paths: dict[int, Path] = {}  # doc id -> its file, once asked for
        self._used = 0
        self._closed = False
        self._made = False
        self.high_water = 0  # the most bytes reserved at once (for tests and the summary)

    def path(self, doc_id: int, url: str) -> Path:
        """Where ``doc_id``'s download of ``url`` lies (the folder is made on the way)."""
        with self._cond:
            path = self._paths.get(doc_id)
            if path is None:
                path = self._paths[doc_id] = self.folder / f"{doc_id}-{spool_name(url)}"
            if not self._made:
                self.folder.mkdir(parents=True, exist_ok=True)
                self._made = True
            return path

    @property
    def used(self) -> int:
        with self._cond:
            return self._used

    def reserve(self, doc_id: int, nbytes: int) -> bool:
        """Hold ``nbytes`` for ``doc_id``, waiting while they do not fit. False when the
        spool was closed meanwhile (the run is ending)."""
        with self._cond:
            while not self._closed and (
                self._used - self._held.get(doc_id, 0) + nbytes > self.capacity
            ):
                self._cond.wait(0.5)
            if self._closed:
                return False
            self._used += nbytes - self._held.get(doc_id, 0)
            self._held[doc_id] = nbytes
            self.high_water = max(self.high_water, self._used)
            return True

    def shrink(self, doc_id: int, nbytes: int) -> None:
        """A download that held more than it needed (its size was not listed) keeps only
        what it wrote."""
        with self._cond:
            held = self._held.get(doc_id)
            if held is not None and nbytes < held:
                self._held[doc_id] = nbytes
                self._used -= held - nbytes
                self._cond.notify_all()

    def adopt(self, doc_id: int, nbytes: int, path: Path) -> None:
        """Count ``path``, the file a previous run left for a pending document."""
        with self._cond:
            self._paths[doc_id] = path
            self._used += nbytes - self._held.get(doc_id, 0)
            self._held[doc_id] = nbytes

    def holds(self, doc_id: int) -> bool:
        with self._cond:
            return doc_id in self._held

    def discard(self, doc_id: int) -> None:
        """Delete ``doc_id``'s file and free its room (nothing if it has none)."""
        with self._cond:
            nbytes = self._held.pop(doc_id, None)
            if nbytes is None:
                return
            self._used -= nbytes
            self._cond.notify_all()
            path = self._paths.pop(doc_id, None)
        if path is not None:
            self.remove(path)

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """Wake every waiting download: the run is ending."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def leftovers(self) -> list[tuple[int, Path]]:
        """What a previous run left: (doc id, file) for each ``<id>-<name>`` file (and for
        the ``<id>/<name>`` folders of docmill before 2026-12: the file, or the folder
        itself when it does not hold exactly one); anything else is deleted."""
        if not self.folder.is_dir():
            return []
        found: list[tuple[int, Path]] = []
        for entry in os.scandir(self.folder):
            head, dash, _name = entry.name.partition("-")
            if dash and head.isdigit() and not entry.is_dir():
                found.append((int(head), Path(entry.path)))
            elif entry.name.isdigit() and entry.is_dir():
                files = os.listdir(entry.path)
                path = Path(entry.path) / files[0] if len(files) == 1 else Path(entry.path)
                found.append((int(entry.name), path))
            else:
                self.remove(Path(entry.path))
        return found

    def remove(self, path: Path) -> None:
        """Delete a spool file (and the folder of the older layout it lies in), or a
        leftover folder."""
        try:  # a file, nearly always: no stat first
            os.unlink(path)
            if path.parent != self.folder:
                os.rmdir(path.parent)
        except IsADirectoryError:
            shutil.rmtree(path, ignore_errors=True)
        except OSError:  # gone already, or an older folder not empty
            pass


def fetch(
    backends: Backends,
    spool: Spool,
    doc_id: int,
    url: str,
    size: int,
    version: str | None,
    max_file_bytes: int,
) -> FetchResult | None:
    """Download ``url`` into the spool: (sha256, "") when it is there, (None, why) when it
    cannot be (the document ends ``failed``), None when the run ended first.

    Runs in a download thread: waits for spool room, then for each request's turn."""
    name = url.rstrip("/").rsplit("/", 1)[-1]
    limit = max_file_bytes
    if size > max_file_bytes:
        return None, ErrorInfo(
            FailureCategory.TOO_LARGE,
            f"{name}: {size} bytes, over run.max_file_mb; not downloaded",
            "download",
        )
    if size > spool.capacity:
        return None, ErrorInfo(
            FailureCategory.TOO_LARGE,
            f"{name}: {size} bytes, larger than the whole spool (sources.spool_mb); "
            "not downloaded",
            "download",
        )
    try:
        backend, retrier = backends.for_url(url)
    except BackendError as exc:
        return None, ErrorInfo(FailureCategory.IO, f"download failed: {exc}", "download")
    # a size the listing could not give: what the store says it may weigh at most (Drive:
    # its export limit), else the whole spool or the file cap
    bound = getattr(backend, "unknown_size_at_most", None) or max_file_bytes
    reserve = size if size >= 0 else min(spool.capacity, max_file_bytes, bound)
    if not spool.reserve(doc_id, reserve):
        return None
    try:
        obj = RemoteObject(url, size, version or "")
        path = spool.path(doc_id, url)
        digest = hashlib.sha256()
        written = 0
        cap = min(reserve, limit)
        with open(path, "wb") as out:
            attempt = 0
            while True:
                attempt += 1
                retrier.wait_turn()
                try:
                    for chunk in backend.read(obj, written):
                        if spool.closed:
                            spool.discard(doc_id)
                            return None
                        if written + len(chunk) > cap:
                            raise BackendError(
                                f"{url}: more bytes than its listed size ({size}); it changed "
                                "while it was read (the next run picks the new version up)",
                                changed=True,
                            )
                        out.write(chunk)
                        digest.update(chunk)
                        written += len(chunk)
                    if 0 <= written < size:  # the stream ended early: resume from here
                        raise TransientError(f"{url}: the body ended early", reason="connection")
                    break
                except TransientError as exc:
                    if not retrier.after_failure(exc, attempt):
                        raise BackendError(f"{exc} (gave up after {attempt} tries)") from None
        retrier.count("downloaded")
        retrier.count("downloaded_bytes", written)
        spool.shrink(doc_id, written)
        return digest.hexdigest(), ""
    except BackendError as exc:
        spool.discard(doc_id)
        category = FailureCategory.TOO_LARGE if exc.too_large else FailureCategory.IO
        return None, ErrorInfo(category, f"download failed: {exc}", "download")
    except OSError as exc:  # the local disk: spool folder full or unwritable
        spool.discard(doc_id)
        return None, ErrorInfo(
            FailureCategory.IO, f"cannot write the spool file: {exc.strerror or exc}", "download"
        )
    except BaseException:
        spool.discard(doc_id)
        raise
