"""``files``: each source document copied (or moved) to its rendered destination.

One item, in order, each step safe to repeat after a crash at any moment:

1. the target already holds these bytes (same size and sha256)? nothing to copy
   (a crash after the copy, before its ledger commit);
2. else the source is read (a local file, confined to its SOURCE's folder when the
   run is; a remote object through its store's backend, pinned to the version that was
   processed) and put under the target atomically, checked against the record's sha256:
   a source that changed since fails ``changed`` and leaves nothing;
3. ``mode = "move"``: the source is removed (already gone is fine);
4. an earlier target of the same document (it was processed again and renders to
   another place) is removed.

A move whose source lives in the destination's own store (a Drive file moved within
Drive) is one step instead of 1-3: the destination's ``move_here`` moves it there
without reading it (see :mod:`docmill.deliver.destinations`).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator

from docmill.deliver.destinations import Destination
from docmill.deliver.errors import DeliveryCategory, DeliveryFailed
from docmill.deliver.work import FileWork, Work, settle
from docmill.settings.deliveries import DeliverySpec
from docmill.sources.backend import BackendError, Backends, RemoteObject, Secrets
from docmill.sources.confine import NotAllowed, Roots
from docmill.sources.throttle import Retrier
from docmill.sources.urls import is_remote
from docmill.state.deliveries import DeliveryDoc, DeliveryResult

CHUNK = 1 << 20
# the store a remote source lives in, opened as a destination (to remove a moved source):
# (the source's URL) -> (that store's destination, the object's key in it)
SourceStore = Callable[[str], tuple[Destination, str]]


def _source_failed(exc: BackendError) -> DeliveryFailed:
    if exc.changed:
        return DeliveryFailed(DeliveryCategory.CHANGED, str(exc))
    if exc.missing:
        return DeliveryFailed(DeliveryCategory.MISSING, str(exc))
    if exc.denied:
        return DeliveryFailed(DeliveryCategory.DENIED, str(exc))
    return DeliveryFailed(DeliveryCategory.ERROR, str(exc))


class FilesDelivery:
    def __init__(
        self,
        spec: DeliverySpec,
        destination: Destination,
        retrier: Retrier,
        secrets: Secrets,
        stop: threading.Event,
        *,
        roots: Roots | None,
        backends: Callable[[], Backends],
        source_store: SourceStore,
    ) -> None:
        self.spec = spec
        self._dest = destination
        self._retrier = retrier
        self._secrets = secrets
        self._stop = stop
        self._roots = roots
        self._backends = backends
        self._source_store = source_store

    def deliver(self, work: Work) -> DeliveryResult:
        if not isinstance(work, FileWork):
            raise TypeError(f"a {self.spec.kind} delivery takes FileWork, not {type(work).__name__}")
        record = work.doc.record

        tag = f"{self.spec.name}-{work.item}"

        def attempt() -> None:
            if not self._moved_within(work, tag):
                if not self._dest.holds(work.target, record.size, record.sha256):
                    self._dest.put(work.target, self._read(work.doc), record.size, record.sha256, tag)
                if self.spec.mode == "move":
                    self._remove_source(work.doc)
            if work.previous and work.previous != work.target:
                self._dest.delete(work.previous)

        return settle(self.spec.name, work, self._retrier, attempt, self._secrets, self._stop)

    # --- the source -----------------------------------------------------------------

    def _read(self, doc: DeliveryDoc) -> Iterator[bytes]:
        source = doc.record.source
        if is_remote(source):
            yield from self._read_remote(doc)
            return
        name = os.path.basename(source)
        try:
            if self._roots is None:
                handle = open(source, "rb")  # noqa: SIM115 - closed by the with below
            else:
                handle = open(self._roots.open(source)[0], "rb")  # noqa: SIM115
        except FileNotFoundError:
            raise DeliveryFailed(DeliveryCategory.MISSING, f"{name}: the source is gone") from None
        except NotAllowed as exc:
            raise DeliveryFailed(DeliveryCategory.NOT_ALLOWED, f"{name}: {exc}") from None
        except OSError as exc:
            raise DeliveryFailed(DeliveryCategory.IO, f"{name}: {exc.strerror or exc}") from None
        with handle:
            while True:
                try:
                    chunk = handle.read(CHUNK)
                except OSError as exc:
                    raise DeliveryFailed(DeliveryCategory.IO, f"{name}: {exc.strerror or exc}") from None
                if not chunk:
                    return
                yield chunk

    def _read_remote(self, doc: DeliveryDoc) -> Iterator[bytes]:
        url = doc.record.source
        try:
            backend, retrier = self._backends().for_url(url)
            retrier.wait_turn()
            yield from backend.read(RemoteObject(url, doc.record.size, doc.remote_version or ""), 0)
        except BackendError as exc:
            raise _source_failed(exc) from None

    def _moved_within(self, work: FileWork, tag: str) -> bool:
        """``move`` from the destination's own store: moved there, unread."""
        source = work.doc.record.source
        move_here = getattr(self._dest, "move_here", None)
        if self.spec.mode != "move" or not is_remote(source) or move_here is None:
            return False
        moved: bool = move_here(source, work.doc.remote_version, work.target,
                                work.doc.record.sha256, tag)
        return moved

    def _remove_source(self, doc: DeliveryDoc) -> None:
        source = doc.record.source
        if is_remote(source):
            store, key = self._source_store(source)
            remove = getattr(store, "remove_source", None)
            if remove is not None:  # named by its URL (Drive: the file id in it)
                remove(source, doc.remote_version)
            else:
                store.delete(key)
            return
        if self._roots is not None and self._roots.escapes(source):
            raise DeliveryFailed(
                DeliveryCategory.NOT_ALLOWED,
                f"{os.path.basename(source)}: leads outside its folder; not removed",
            )
        try:
            os.unlink(source)
        except FileNotFoundError:
            pass  # removed by a try that crashed before its commit
        except OSError as exc:
            raise DeliveryFailed(
                DeliveryCategory.IO, f"removing {os.path.basename(source)}: {exc.strerror or exc}"
            ) from None
