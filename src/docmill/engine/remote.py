"""A run's remote side: its stores' backends, the spool and the download threads.

The runner owns one :class:`RemoteDocuments` when a SOURCE is a URL (or an earlier run
left remote documents pending). Where a local file is hashed, a remote document is
downloaded into the spool by ``sources.downloads`` threads and hashed on the way
(:func:`docmill.sources.spool.fetch`); the worker reads the spooled file; the file is
deleted when the document's outcome is committed, or as soon as its content turns out
unchanged. Nothing here writes the ledger: the runner's thread does, as for every row.

Downloads keep pace with the workers: at most ``2 x sources.downloads`` documents are
downloading or downloaded and not yet handed to a worker; the others wait in a queue
here, not in a thread. Racing ahead all at once would cost the same downloads, but with
every download thread runnable at the same moment they contend for the driver's GIL (on
a loopback store: ~10 times the futex calls, ~0.5 ms of the driver's system CPU a
document).
"""

from __future__ import annotations

import logging
import os
from collections import deque
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from docmill.settings import Settings
from docmill.sources.backend import Backends
from docmill.sources.spool import SPOOL_DIR, FetchResult, Spool, fetch, spool_name
from docmill.sources.urls import is_remote
from docmill.state import Store

log = logging.getLogger("docmill.engine")


def spool_root(out_dir: Path) -> str:
    """The spool's real path: a confined run's workers may read there."""
    return os.path.realpath(out_dir / SPOOL_DIR)


class RemoteDocuments:
    """Backends, spool and download threads of one run (see the module docstring)."""

    def __init__(self, settings: Settings, backends: Backends, spool: Spool) -> None:
        self._settings = settings
        self.backends = backends
        self._spool = spool
        self._threads = ThreadPoolExecutor(
            settings.sources.downloads, thread_name_prefix="docmill-fetch"
        )
        self.lead = 2 * settings.sources.downloads
        # the runner's thread only: downloads asked for and not started, and the documents
        # started and not yet handed to a worker, nor settled, nor left without a file
        self._queue: deque[tuple[int, str, int, str | None, Future[dict[int, FetchResult]]]] = deque()
        self._ahead: set[int] = set()
        self._no_file: deque[int] = deque()  # appended by the download threads

    @classmethod
    def open(cls, settings: Settings, out_dir: Path, store: Store) -> RemoteDocuments:
        """Load the backends and open the spool with what a previous run left in it: a
        pending, downloaded document's file is kept (and counted), every other one
        deleted; a pending remote document without its file is downloaded again."""
        spool = Spool(out_dir / SPOOL_DIR, int(settings.sources.spool_mb * 1024 * 1024))
        left = spool.leftovers()
        sizes = {doc_id: (path.stat().st_size if path.is_file() else -1) for doc_id, path in left}
        keep = store.respool(sizes)
        for doc_id, path in left:
            if doc_id in keep:
                spool.adopt(doc_id, sizes[doc_id], path)
            else:
                spool.remove(path)
        if keep:
            log.info("resuming: %d downloaded documents are still in the spool", len(keep))
        return cls(settings, Backends.load(settings.sources), spool)

    def submit(self, doc_id: int, url: str, size: int, version: str | None) -> Future[dict[int, FetchResult]]:
        """Download ``url`` into the spool in a download thread, once it is among the
        next ``lead`` documents: its future gives ``{doc_id: (sha256, "") or (None,
        why)}``, or ``{}`` when the run ended first."""
        future: Future[dict[int, FetchResult]] = Future()
        self._queue.append((doc_id, url, size, version, future))
        self._pump()
        return future

    @property
    def queued(self) -> int:
        """Downloads asked for and not started (waiting for the workers to catch up)."""
        return len(self._queue)

    def _pump(self) -> None:
        while self._no_file:
            self._ahead.discard(self._no_file.popleft())
        while self._queue and len(self._ahead) < self.lead:
            doc_id, url, size, version, future = self._queue.popleft()
            if not future.set_running_or_notify_cancel():
                continue
            self._ahead.add(doc_id)
            self._threads.submit(self._fetch, doc_id, url, size, version, future)

    def _fetch(self, doc_id: int, url: str, size: int, version: str | None,
               future: Future[dict[int, FetchResult]]) -> None:
        try:
            result = fetch(
                self.backends, self._spool, doc_id, url, size, version,
                self._settings.run.max_file_mb * 1024 * 1024,
            )
        except BaseException as exc:
            self._no_file.append(doc_id)
            future.set_exception(exc)
            return
        if result is None or result[0] is None:
            self._no_file.append(doc_id)
        future.set_result({} if result is None else {doc_id: result})

    def task_file(self, doc_id: int, source: str) -> tuple[str, str]:
        """What the worker reads for a document and what its messages call it: a remote
        one's spooled file (which leaves the downloads' lead) and the object's name."""
        if not is_remote(source):
            return source, ""
        self._leave(doc_id)
        return str(self._spool.path(doc_id, source)), spool_name(source)

    def _leave(self, doc_id: int) -> None:
        """``doc_id`` is no longer ahead of the workers: the next download may start."""
        if doc_id in self._ahead:
            self._ahead.discard(doc_id)
            self._pump()

    def hashed(self, store: Store, doc_ids: Iterable[int]) -> None:
        """After their hashes are recorded: a downloaded document that is not pending
        (its content did not change after all) does not need its file."""
        held = [doc_id for doc_id in doc_ids if self._spool.holds(doc_id)]
        needed = store.pending_among(held)
        for doc_id in held:
            if doc_id not in needed:
                self._spool.discard(doc_id)
                self._ahead.discard(doc_id)
        self._pump()

    def settled(self, doc_id: int) -> None:
        """A document's outcome is committed: its downloaded file is done with."""
        self._spool.discard(doc_id)
        self._leave(doc_id)

    def stop(self) -> None:
        """No more downloads: wake those waiting for room, stop those running (they are
        downloaded again next time), wait for the threads."""
        self._spool.close()
        while self._queue:
            self._queue.popleft()[-1].cancel()
        self._threads.shutdown(wait=True, cancel_futures=True)

    def close(self) -> None:
        """Log each store's counters and the spool's high-water mark; close the backends."""
        for store_url, stats in self.backends.stats().items():
            retries = ", ".join(
                f"{k.split('/', 1)[1]} {v}" for k, v in sorted(stats.items()) if k.startswith("retry/")
            )
            requests = stats.get("requests", 0)
            log.info(
                "%s: %d request%s, %d downloaded (%.1f MB)%s%s",
                store_url, requests, "" if requests == 1 else "s", stats.get("downloaded", 0),
                stats.get("downloaded_bytes", 0) / 1e6,
                f", retried: {retries}" if retries else "",
                f", {stats['gave_up']} gave up" if stats.get("gave_up") else "",
            )
        self.backends.close()
        log.info(
            "spool: at most %.3f MB held at once (sources.spool_mb %g)",
            self._spool.high_water / (1024 * 1024), self._settings.sources.spool_mb,
        )
