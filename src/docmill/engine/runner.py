"""The run loop: enumerate lazily, hash, claim, dispatch, collect, commit, write.

One thread drives everything and is the ledger's only writer. Work is pulled as room
appears in the in-flight window (never more than ``window`` documents claimed), so
memory stays flat however many sources there are.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from itertools import islice
from pathlib import Path
from typing import Any

from docmill.engine.delivery import RunDeliveries
from docmill.engine.executor import (
    Executor,
    ExecutorContext,
    ExecutorFactory,
    ExecutorState,
    open_executor,
)
from docmill.engine.llm_bridge import LlmBridge
from docmill.engine.remote import RemoteDocuments, spool_root
from docmill.engine.sink import RecordSink
from docmill.model import (
    DocState,
    ErrorInfo,
    FailureCategory,
    PageRange,
    ProcessOutcome,
    Record,
    SourceFile,
)
from docmill.observability.progress import ProgressSnapshot
from docmill.processors import ExtractOptions, Task
from docmill.settings import Settings
from docmill.sources import iter_sources
from docmill.sources.confine import NotAllowed, Roots
from docmill.sources.discover import local_sources
from docmill.sources.spool import FetchResult
from docmill.sources.urls import is_remote
from docmill.state import LedgerRow, Store
from docmill.state.store import timings

log = logging.getLogger("docmill.engine")

ENUMERATE_BATCH = 1000
HASH_THREADS = 4
HASH_CHUNK = 16  # files per hashing job
COMMIT_EVERY_S = 0.2  # outcomes wait at most this long for their transaction...
COMMIT_MAX = 256  # ...or until this many are waiting (a kill -9 loses only these)


class StopToken:
    """Asked to stop: once drains (in-flight work finishes), twice abandons in-flight work."""

    def __init__(self) -> None:
        self.requests = 0

    def request(self) -> None:
        self.requests += 1

    @property
    def draining(self) -> bool:
        return self.requests >= 1

    @property
    def abandon(self) -> bool:
        return self.requests >= 2


@dataclass
class RunSummary:
    """What a run did, and where the output folder stands."""

    status: str  # completed | interrupted | budget (the LLM budget is spent; the rest pending)
    out_dir: str
    counts: dict[str, int]
    pages: int
    elapsed_s: float
    docs_this_run: int
    pages_this_run: int
    failures: list[tuple[str, int, str]] = field(default_factory=list)
    llm: dict[str, Any] | None = None  # spend and labels so far (None: no LLM stage)

    @property
    def completed(self) -> bool:
        return self.status == "completed"


def extract_options(s: Settings) -> ExtractOptions:
    """The processors' options for every task of a run."""
    return ExtractOptions(
        max_pages=s.extract.max_pages,
        split_pages=s.run.split_pages,
        fallback_max_bytes=int(s.extract.fallback_max_mb * 1024 * 1024),
        tables=s.extract.tables,
        ocr=s.extract.ocr,
        ocr_languages=s.extract.ocr_languages,
        reading_order=s.extract.reading_order,
        markdown=s.output.markdown,
        image_pages=(s.llm.max_pages or 3) if s.llm.spec and s.llm.input == "images" else 0,
        image_dpi=s.llm.image_dpi,
    )


def merge_extra(into: dict[str, Any], more: dict[str, Any]) -> None:
    """Merge a page range's extra content into the document's: lists (per-page values,
    tables) are concatenated in range order, text such as Markdown is joined."""
    for key, value in more.items():
        have = into.get(key)
        if isinstance(value, list):
            into[key] = [*(have or []), *value]
        elif isinstance(value, str):
            into[key] = f"{have}\n\n{value}" if have else value
        else:
            into.setdefault(key, value)


HashResult = FetchResult  # (sha256, "") or (None, why)


def sha256_file(path: str, roots: Roots | None = None) -> HashResult:
    """(sha256, "") or (None, why): the reason as text (an ``io`` failure), or as an
    :class:`ErrorInfo` when confinement (``roots``) refused to open the file."""
    try:
        if roots is None:
            handle = open(path, "rb")  # noqa: SIM115 - closed by the with below
        else:
            handle = open(roots.open(path)[0], "rb")  # noqa: SIM115 - the confined descriptor
        with handle:
            digest = hashlib.file_digest(handle, "sha256")  # reuses one buffer: ~20% less CPU
    except NotAllowed as exc:
        return None, ErrorInfo(FailureCategory.NOT_ALLOWED, str(exc), "read")
    except OSError as exc:
        return None, f"cannot read the file: {exc.strerror or exc}"
    return digest.hexdigest(), ""


def sha256_files(
    chunk: Sequence[tuple[int, str]], roots: Roots | None = None
) -> dict[int, HashResult]:
    """``sha256_file`` of each (doc id, path), by doc id: one thread hand-off per chunk
    (per file, the hand-offs cost about as much CPU as hashing small files)."""
    return {doc_id: sha256_file(path, roots) for doc_id, path in chunk}


@dataclass
class _Split:
    pages: int
    left: set[int]
    mime: str = "application/pdf"
    tries: dict[int, int] = field(default_factory=dict)


@dataclass
class _InFlight:
    row: LedgerRow
    claimed_at: float
    split: _Split | None = None
    retries: int = 0  # tries counted in this run before the current one


class Runner:
    def __init__(
        self,
        settings: Settings,
        sources: Sequence[str],
        out_dir: str | Path,
        *,
        stop: StopToken | None = None,
        on_progress: Callable[[ProgressSnapshot], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        executors: Mapping[str, str | ExecutorFactory] | None = None,
    ) -> None:
        self.settings = settings
        self._executors = executors  # more executor kinds (a library caller's, a bench's)
        self._executor: Executor | None = None
        self.sources = list(sources)
        self.out_dir = Path(out_dir)
        self.stop = stop or StopToken()
        self._on_progress = on_progress
        self._clock = clock
        self._task_ids = 0
        self._ready: deque[Task] = deque()
        self._inflight: dict[int, _InFlight] = {}
        self._inflight_sha: dict[str, int] = {}
        self._waiting: dict[str, list[int]] = {}
        self._finished_now: list[int] = []  # finished: records to read from the ledger
        # finished: records built in memory, with their content's JSON when it is known
        self._finished_records: list[tuple[Record, bytes | None]] = []
        self._to_commit: list[tuple[_InFlight, ProcessOutcome, bool]] = []
        self._first_uncommitted = 0.0
        # doc id -> the future of the chunk that hashes it (a chunk's documents share it)
        self._hash_jobs: dict[int, Future[dict[int, HashResult]]] = {}
        # the chunks' futures as they finish (appended by the hashing threads), so that
        # collecting does not ask every pending future on every turn
        self._hashed: deque[Future[dict[int, HashResult]]] = deque()
        self._counts: dict[str, int] = {}
        self._docs_run = 0
        self._run_counts: dict[str, int] = {}
        self.last_snapshot: ProgressSnapshot | None = None
        self._sink: RecordSink | None = None
        self._pages_run = 0
        # remote SOURCEs (URLs): downloaded into the spool, which the workers read
        self._remote = any(is_remote(src) for src in self.sources)
        self._fetching: RemoteDocuments | None = None
        # sources.confine_to_root: every file is opened inside its SOURCE's root (or the
        # spool), by the hashing threads and again by the worker right before it reads it
        self._roots: Roots | None = None
        if settings.sources.confine_to_root:
            real = Roots.of_sources(local_sources(self.sources)).real
            if self._remote:
                real = (*real, spool_root(self.out_dir))
            self._roots = Roots(tuple(dict.fromkeys(real)))
        self._options = extract_options(settings)
        if self._roots is not None:
            self._options = replace(self._options, confine_roots=self._roots.real)
        self._llm: LlmBridge | None = None

    # --- the loop -------------------------------------------------------------------

    def run(self) -> RunSummary:
        started = self._clock()
        store = Store.open(self.out_dir)
        try:
            store.lock_for_run()
            return self._run(store, started)
        finally:
            store.close()

    def _run(self, store: Store, started: float) -> RunSummary:
        s = self.settings
        # run.executor: local worker processes, or a cluster (only the tasks leave)
        pool = open_executor(ExecutorContext(s, self._clock, self._roots), self._executors)
        self._executor = pool
        pool.prepare()  # the forkserver imports while the ledger and first sources are read
        recovered = store.recover_interrupted()
        if recovered:
            log.info("resuming: %d documents interrupted in flight are pending again", recovered)
        sink = RecordSink(
            self.out_dir, store, s.output.format, s.output.part_max_records,
            s.output.part_max_seconds, self._clock,
        )
        sink.recover()
        self._sink = sink
        # [[deliver]]: a step after each commit, on threads of their own (engine/delivery.py)
        deliveries = RunDeliveries.open(s, self.out_dir, store, self.sources, self._roots)
        run_id = store.start_run(self.sources, s.to_dict())
        remote: RemoteDocuments | None = None
        if self._remote or store.remote_pending():  # earlier runs' remote documents too
            remote = RemoteDocuments.open(s, self.out_dir, store)
        self._fetching = remote
        self._counts = store.counts()
        sources: Iterator[SourceFile] = iter_sources(
            self.sources, s.sources, remote.backends if remote else None
        )
        hasher = ThreadPoolExecutor(HASH_THREADS, thread_name_prefix="docmill-hash")

        def stop_fetching() -> None:
            if remote is not None:
                remote.stop()
                remote.close()

        try:
            self._submit_hashes(store, hasher)
            # the first batch of sources hashes while the workers start
            exhausted = self._enumerate(store, sources, hasher)
            if s.llm.spec:
                self._llm = LlmBridge.open(s.llm, self.out_dir, store)
            pool.start()
        except BaseException:
            stop_fetching()
            hasher.shutdown(wait=True, cancel_futures=True)
            if deliveries is not None:
                deliveries.close(drain=False)
            raise
        last_progress = 0.0
        status = "interrupted"
        llm = self._llm
        drain_since: float | None = None  # when the drain began (Ctrl-C / SIGTERM once)
        try:
            while not self.stop.abandon:
                if self.stop.draining and drain_since is None:
                    drain_since = self._clock()
                if not self.stop.draining and not (llm and llm.exhausted):
                    self._collect_hashes(store)
                    # finished documents waiting for their commit (or, up to a cap, for
                    # the LLM stage) do not hold the window
                    window = pool.window  # a cluster's moves as nodes come and go
                    room = window - len(self._inflight) + len(self._to_commit)
                    room += llm.window_credit if llm else 0
                    # claim in batches (fewer transactions), or at once when idle
                    if room >= max(1, window // 2) or (room > 0 and not self._ready):
                        rows = store.claim_pending(room, time.time())
                        if len(rows) < room and not exhausted and (
                            len(self._hash_jobs) < ENUMERATE_BATCH
                        ):
                            exhausted = self._enumerate(store, sources, hasher)
                        twins = store.settled_twins(r.sha256 for r in rows if r.sha256)
                        for row in rows:
                            self._admit(store, row, twins.get(row.sha256 or ""))
                while pool.idle and self._ready:
                    pool.submit(self._ready.popleft())
                wait_s = 0.05 if pool.busy else (0.005 if self._hash_jobs else 0.0)
                if ((llm and llm.waiting) or (deliveries and deliveries.busy)) and not pool.busy:
                    wait_s = 0.02
                for task, outcome in pool.poll(wait_s):
                    self._handle(store, task, outcome)
                if llm:
                    for entry, outcome, deferred in llm.collect():
                        if deferred:
                            self._release(store, entry)
                        else:
                            self._queue_commit(entry, outcome, False)
                self._ready.extendleft(reversed(pool.take_returned()))
                self._commit(store, force=not pool.busy)
                self._write(sink)
                sink.maybe_flush()
                if deliveries is not None:
                    if self.stop.draining:
                        deliveries.stop()  # no new deliveries; those in progress finish
                    deliveries.step(store, sink.changes)
                now = self._clock()
                if now - last_progress >= 0.2:
                    last_progress = now
                    self._report(now - started, exhausted)
                    if llm:
                        llm.publish()  # its limits per model, for status (once a second)
                if drain_since is not None and llm and self._llm_overdue(pool.busy > 0, drain_since):
                    break  # the rest waits on the LLM: back to pending (finally, below)
                if not self._inflight and not self._ready:
                    if self.stop.draining:
                        break
                    if llm and llm.exhausted:
                        status = "budget"
                        break
                    if exhausted and not self._hash_jobs and store.pending_count() == 0:
                        if deliveries is not None:  # the last part closes: its deliveries
                            sink.flush()
                            deliveries.step(store, sink.changes)
                            if deliveries.busy:
                                continue
                        status = "completed"
                        break
        finally:
            stop_fetching()
            hasher.shutdown(wait=True, cancel_futures=True)
            if llm:
                llm.close()  # documents still waiting on it stay in flight: released below
            self._commit(store, force=True)
            lost = pool.shutdown(kill=self.stop.abandon)
            if lost:
                log.warning("%d documents were in flight and go back to pending", len(lost))
            leftover = list(self._inflight)
            leftover += [i for ids in self._waiting.values() for i in ids]
            store.release_running(leftover)
            self._write(sink)
            sink.flush()
            if deliveries is not None:  # undelivered rows stay pending for the next run
                deliveries.close(drain=not self.stop.abandon, store=store)
            store.finish_run(run_id, status, self._docs_run, self._pages_run)
        self._report(self._clock() - started, exhausted)
        return RunSummary(
            status=status,
            out_dir=str(self.out_dir),
            counts=store.counts(),
            pages=store.total_pages(),
            elapsed_s=self._clock() - started,
            docs_this_run=self._docs_run,
            pages_this_run=self._pages_run,
            failures=store.failure_summary(),
            llm=store.llm_totals() if llm else None,
        )

    # --- sources --------------------------------------------------------------------

    def _enumerate(
        self, store: Store, sources: Iterator[SourceFile], hasher: ThreadPoolExecutor
    ) -> bool:
        """Add the next batch of sources to the ledger and start hashing it (no waiting).

        True when there are no more sources.
        """
        batch = list(islice(sources, ENUMERATE_BATCH))
        if batch:
            new, _changed = store.upsert_sources(batch)
            self._counts[str(DocState.PENDING)] += new
            self._submit_hashes(store, hasher)
        return len(batch) < ENUMERATE_BATCH

    def _submit_hashes(self, store: Store, hasher: ThreadPoolExecutor) -> None:
        """Hash new and changed rows in the background threads (download remote ones
        into the spool, hashing them on the way)."""
        todo: list[tuple[int, str]] = []
        for doc_id, path, size, version in store.unhashed_rows(
            ENUMERATE_BATCH + len(self._hash_jobs)
        ):
            if doc_id in self._hash_jobs:
                continue
            if version is None or self._fetching is None:
                todo.append((doc_id, path))
                continue
            fetching = self._fetching.submit(doc_id, path, size, version)
            self._hash_jobs[doc_id] = fetching
            fetching.add_done_callback(self._hashed.append)
        for start in range(0, len(todo), HASH_CHUNK):
            chunk = todo[start : start + HASH_CHUNK]
            future = hasher.submit(sha256_files, chunk, self._roots)
            for doc_id, _path in chunk:
                self._hash_jobs[doc_id] = future
            future.add_done_callback(self._hashed.append)

    def _collect_hashes(self, store: Store) -> None:
        """Record the hashes that are ready (one transaction), without waiting."""
        if not self._hashed:
            return
        hashes: list[tuple[int, str | None, str | ErrorInfo]] = []
        while self._hashed:
            future = self._hashed.popleft()
            for doc_id, result in future.result().items():
                if self._hash_jobs.get(doc_id) is future:
                    del self._hash_jobs[doc_id]
                    hashes.append((doc_id, *result))
        if not hashes:
            return
        unreadable: list[int] = []
        requeued = store.set_hashes(hashes, unreadable)
        if self._fetching is not None:  # downloaded but unchanged: the file is not needed
            self._fetching.hashed(store, (doc_id for doc_id, sha, _ in hashes if sha))
        if requeued:
            log.info("%d changed documents will be processed again", requeued)
        if (requeued or unreadable) and self._sink is not None:
            self._sink.rewrite_stale()
            self._write(self._sink)
            self._sink.write_ids(None)  # unreadable files, and duplicates set apart
            self._counts = store.counts()

    def _write(self, sink: RecordSink) -> None:
        """Send finished documents' records to the part files."""
        if self._finished_records:
            sink.write_records(self._finished_records)
            self._finished_records = []
        if self._finished_now:
            sink.write_ids(self._finished_now)
            self._finished_now = []

    # --- dispatch -------------------------------------------------------------------

    def _task(self, doc: LedgerRow, page_range: PageRange | None) -> Task:
        self._task_ids += 1
        s = self.settings
        path, name = doc.source, ""
        if self._fetching is not None:  # a remote one's downloaded file
            path, name = self._fetching.task_file(doc.id, path)
        return Task(
            task_id=self._task_ids,
            doc_id=doc.id,
            path=path,
            page_range=page_range,
            max_file_bytes=s.run.max_file_mb * 1024 * 1024,
            options=self._options,
            name=name,
        )

    def _admit(self, store: Store, row: LedgerRow, twin: LedgerRow | None) -> None:
        """Dispatch a claimed row, unless its content is settled (``twin``, looked up for
        the whole claimed batch) or in flight."""
        sha = row.sha256 or ""
        if twin is not None:
            store.copy_outcome(row.id, twin.id)
            self._settled(row.id, twin.state, twin.pages)
            return
        if sha in self._inflight_sha:
            self._waiting.setdefault(sha, []).append(row.id)
            return
        self._inflight_sha[sha] = row.id
        self._inflight[row.id] = _InFlight(row, time.time())
        self._ready.append(self._task(row, None))

    # --- results --------------------------------------------------------------------

    def _handle(self, store: Store, task: Task, outcome: ProcessOutcome) -> None:
        entry = self._inflight.get(task.doc_id)
        if entry is None:
            return  # a late result for a document already settled
        if task.page_range is not None:
            self._handle_range(store, entry, task, outcome)
            return
        if outcome.needs_split:
            self._split(store, entry, outcome.pages or 0, outcome.mime or "application/pdf")
            return
        error = outcome.error
        if outcome.status is DocState.FAILED and error and error.category.retryable:
            tries = store.attempts(task.doc_id) + 1
            if tries < self.settings.run.max_attempts:
                store.count_attempt(task.doc_id, error)
                entry.retries += 1
                log.info("retrying document %d after %s (try %d)", task.doc_id, error.category, tries)
                self._ready.append(self._task(entry.row, None))
                return
            self._queue_commit(entry, outcome, True)
        else:
            self._deliver(entry, outcome)

    def _deliver(self, entry: _InFlight, outcome: ProcessOutcome) -> None:
        """A finished extraction: to the LLM stage when there is one, else to commit."""
        if self._llm is not None and outcome.status is DocState.DONE:
            outcome.plain = None  # the LLM stage replaces the content: not kept meanwhile
            self._llm.submit(entry, outcome)
        else:
            self._queue_commit(entry, outcome, False)

    def _llm_overdue(self, extracting: bool, drain_since: float) -> bool:
        """Draining, every document still in flight waits on the LLM stage (none is being
        extracted, none waits for its commit), and ``run.drain_s`` has passed: a provider
        that does not answer (an outage, retried without end) would hold the drain
        forever. The stage is then closed and those documents go back to pending, their
        attempt not counted; what was billed before is in the ledger already."""
        llm = self._llm
        if llm is None or not llm.waiting or extracting or self._ready or self._to_commit:
            return False
        if len(self._inflight) > llm.waiting:
            return False
        grace = self.settings.run.drain_s
        if self._clock() - drain_since < grace:
            return False
        log.warning(
            "draining: %d documents still wait on the LLM after run.drain_s = %g s; they go "
            "back to pending for the next run",
            llm.waiting,
            grace,
        )
        return True

    def _release(self, store: Store, entry: _InFlight) -> None:
        """Back to pending (the LLM budget ran out): its twins waiting on it too."""
        row = entry.row
        self._inflight.pop(row.id, None)
        sha = row.sha256 or ""
        if self._inflight_sha.get(sha) == row.id:
            del self._inflight_sha[sha]
        store.release_running([row.id, *self._waiting.pop(sha, [])])

    def _queue_commit(self, entry: _InFlight, outcome: ProcessOutcome, quarantined: bool) -> None:
        if not self._to_commit:
            self._first_uncommitted = self._clock()
        outcome.seal()  # workers seal theirs; outcomes made here are sealed now
        self._to_commit.append((entry, outcome, quarantined))

    def _commit(self, store: Store, *, force: bool) -> None:
        """One transaction for the outcomes gathered over up to ``COMMIT_EVERY_S``
        (or ``COMMIT_MAX`` of them), then their bookkeeping.

        Their records are built here from the outcomes, exactly as the ledger now holds
        them, so writing the parts does not read them back.
        """
        if not self._to_commit or not (
            force
            or len(self._to_commit) >= COMMIT_MAX
            or self._clock() - self._first_uncommitted >= COMMIT_EVERY_S
        ):
            return
        batch, self._to_commit = self._to_commit, []
        now = time.time()
        store.complete_many(
            (e.row.id, outcome, quarantined, now, now - e.claimed_at)
            for e, outcome, quarantined in batch
        )
        for e, outcome, _quarantined in batch:
            row = e.row
            record = Record(
                id=row.id,
                source=row.source,
                sha256=row.sha256,
                size=row.size,
                mime=outcome.mime,
                status=outcome.status,
                error=outcome.error,
                pages=outcome.pages,
                content=outcome.content,
                timings=timings(outcome.parse_s, now - e.claimed_at),
                attempts=row.attempts + e.retries + 1,
                duplicate_of=None,
            )
            self._finish(store, row, outcome.status, outcome.pages, record, outcome.content_utf8())

    def _split(self, store: Store, entry: _InFlight, pages: int, mime: str) -> None:
        s = self.settings
        limit = min(pages, s.extract.max_pages) if s.extract.max_pages else pages
        size = s.run.split_pages
        have = store.chunk_starts(entry.row.id)
        starts = [start for start in range(0, limit, size) if start not in have]
        entry.split = _Split(pages=pages, left=set(starts), mime=mime)
        log.info("document %d has %d pages: split into ranges of %d", entry.row.id, pages, size)
        for start in starts:
            self._ready.append(self._task(entry.row, PageRange(start, min(start + size, limit))))
        if not starts:
            self._merge(store, entry)

    def _handle_range(
        self, store: Store, entry: _InFlight, task: Task, outcome: ProcessOutcome
    ) -> None:
        split = entry.split
        rng = task.page_range
        if split is None or rng is None or rng.start not in split.left:
            return
        if outcome.status is DocState.DONE:
            store.save_chunk(entry.row.id, rng.start, rng.stop, outcome)
            split.left.discard(rng.start)
            if not split.left:
                self._merge(store, entry)
            return
        error = outcome.error or ErrorInfo(FailureCategory.ERROR, "no result", "extract")
        tries = split.tries.get(rng.start, 0) + 1
        split.tries[rng.start] = tries
        if error.category.retryable and tries < self.settings.run.max_attempts:
            self._ready.append(self._task(entry.row, rng))
            return
        failed = ProcessOutcome.failure(
            error.category, f"pages {rng.start + 1}-{rng.stop}: {error.message}", error.stage
        )
        failed.pages = split.pages
        failed.mime = split.mime
        store.complete(entry.row.id, failed, quarantined=error.category.retryable)
        doc_id = entry.row.id
        self._ready = deque(t for t in self._ready if t.doc_id != doc_id)
        self._finish(store, entry.row, DocState.FAILED, split.pages)

    def _merge(self, store: Store, entry: _InFlight) -> None:
        text: list[str] = []
        metadata: dict[str, object] = {}
        extra: dict[str, Any] = {}
        blank: list[int] = []
        parse_s = 0.0
        running: dict[str, list[Any]] = {}  # headers/footers, lists of {page, text}
        for chunk in store.iter_chunks(entry.row.id):
            if not metadata:
                metadata = dict(chunk.metadata)
            blank.extend(chunk.metadata.get("pages_without_text", []))
            for key in ("headers", "footers"):
                if key in chunk.metadata:
                    running.setdefault(key, []).extend(chunk.metadata[key])
            text.extend(chunk.text)
            parse_s += chunk.parse_s
            merge_extra(extra, chunk.extra)
        metadata["pages_without_text"] = blank
        metadata.update(running)
        assert entry.split is not None
        metadata["split_ranges"] = -(-len(text) // self.settings.run.split_pages)
        merged = ProcessOutcome(
            status=DocState.DONE,
            mime=entry.split.mime,
            pages=entry.split.pages,
            text=text,
            metadata=metadata,
            extra=extra,
            parse_s=parse_s,
        )
        self._deliver(entry, merged)

    def _finish(
        self,
        store: Store,
        row: LedgerRow,
        state: DocState,
        pages: int | None,
        record: Record | None = None,
        plain: bytes | None = None,
    ) -> None:
        self._inflight.pop(row.id, None)
        sha = row.sha256 or ""
        if self._inflight_sha.get(sha) == row.id:
            del self._inflight_sha[sha]
        self._settled(row.id, state, pages, record, plain)
        for twin_id in self._waiting.pop(sha, []):
            store.copy_outcome(twin_id, row.id)
            self._settled(twin_id, state, pages)

    def _settled(
        self,
        doc_id: int,
        state: DocState,
        pages: int | None,
        record: Record | None = None,
        plain: bytes | None = None,
    ) -> None:
        if record is not None:
            self._finished_records.append((record, plain))
        else:
            self._finished_now.append(doc_id)
        if self._fetching is not None:
            self._fetching.settled(doc_id)  # committed: its downloaded file is done with
        self._counts["pending"] = max(0, self._counts.get("pending", 0) - 1)
        self._counts[str(state)] = self._counts.get(str(state), 0) + 1
        self._docs_run += 1
        self._run_counts[str(state)] = self._run_counts.get(str(state), 0) + 1
        if state is DocState.DONE and pages:
            self._pages_run += pages

    def _report(self, elapsed: float, exhausted: bool) -> None:
        self.last_snapshot = self._snapshot(elapsed, exhausted)
        if self._on_progress is not None:
            self._on_progress(self.last_snapshot)

    def _snapshot(self, elapsed: float, exhausted: bool) -> ProgressSnapshot:
        """This run's progress: its finished documents against its remaining work."""
        run = self._run_counts
        remaining = self._counts.get("pending", 0) + self._counts.get("running", 0)
        state: ExecutorState | None = self._executor.describe() if self._executor else None
        return ProgressSnapshot(
            elapsed_s=elapsed,
            total=(remaining + sum(run.values())) if exhausted else None,
            done=run.get("done", 0),
            failed=run.get("failed", 0),
            skipped=run.get("skipped", 0),
            running=len(self._inflight),
            pages=self._pages_run,
            nodes=state.nodes if state else None,
            workers=state.workers if state else None,
        )
