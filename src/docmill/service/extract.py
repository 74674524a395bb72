"""``POST /v1/extract``'s parsing, and the page view's drawing: the engine's supervised
:class:`WorkerPool` driven by one dedicated thread.

Why the pool and not a ``ProcessPoolExecutor``: a hostile document can hang a parser,
eat memory or crash its process. The pool kills a worker past ``run.timeout_s`` or over
``run.memory_mb`` and replaces a dead one, and the document fails as data (``timeout``,
``memory``, ``crash``); a crashed ``ProcessPoolExecutor`` breaks for every later call
and has no deadline or memory cap. The pool is not thread-safe, so exactly one thread
owns it: requests put ``(task, future)`` on a bounded queue, wake the thread (the
pool's :class:`Waker`) and await the future; the event loop never parses. The thread
sleeps until a worker answers, a limit check is due (a deadline, a memory sample every
50 ms while a worker is busy) or, while the workers could take more, a request arrives:
no timer wakes it, so an idle service costs no CPU and a request is handed to a worker
as soon as it is queued.

Each task carries its own :class:`ExtractOptions` (a request's ``settings``: tables, OCR,
Markdown, its pages); the options of one set of settings are built once and reused, so
that a worker is sent them only when they differ from its last task's.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import math
import os
import queue
import threading
from collections import deque
from collections.abc import Mapping
from concurrent.futures import Future
from typing import Any

from docmill.engine.pool import PoolLimits, Waker, WorkerPool
from docmill.engine.runner import extract_options
from docmill.model import PageRange, ProcessOutcome
from docmill.processors import ExtractOptions, Task
from docmill.service.overrides import ExtractChoice
from docmill.settings import Settings, with_overrides

log = logging.getLogger("docmill.service.extract")

QUEUE_MAX = 256
OPTIONS_KEPT = 64  # distinct request options kept built (then the cache starts again)


class ExtractBusy(RuntimeError):
    """The queue is full, or the service is stopping: the caller should answer 503 and
    ask to retry. A future's ``result()`` raises it for a request the service stopped
    before answering."""


STOPPING = "the service is stopping; retry shortly"


class ExtractService:
    def __init__(self, settings: Settings) -> None:
        s = settings.service
        self._size = s.extract_workers or settings.workers
        self._limits = PoolLimits(settings.run.timeout_s, settings.run.memory_mb, settings.run.recycle_after)
        self._settings = settings
        self._built: dict[tuple[Any, ...], ExtractOptions] = {}
        # a page cap bounds the work; ``pages`` still reports the whole document
        self._options = self.options({}, s.extract_max_pages)
        self._max_bytes = int(s.extract_max_mb * 1024 * 1024)
        self._render_max_bytes = int(settings.run.max_file_mb * 1024 * 1024)
        self._render_options: dict[tuple[int, tuple[str, ...]], ExtractOptions] = {}  # one object each
        self._queue: queue.Queue[tuple[Task, Future[ProcessOutcome]]] = queue.Queue(QUEUE_MAX)
        self._waker = Waker()  # a queued request (or stop) ends the driver's wait
        self._thread: threading.Thread | None = None
        self._ids = itertools.count(1)
        self._stopping = threading.Event()
        self.turns = 0  # the driver's turns (each one a wait ended), for stats

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._drive, name="docmill-extract", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._waker.wake()
            self._thread.join(timeout=10.0)
        if not self.alive:
            self._refuse_queued()  # one queued as the driver ended

    def options(self, overrides: Mapping[str, Any], max_pages: int) -> ExtractOptions:
        """The options of the server's settings with ``overrides`` (checked already: see
        ``service/overrides.py``), reading at most ``max_pages`` pages, never split."""
        key = (tuple(sorted(overrides.items())), max_pages)
        found = self._built.get(key)
        if found is None:
            settings = with_overrides(self._settings, overrides, origin="request")
            found = dataclasses.replace(extract_options(settings), max_pages=max_pages, split_pages=1 << 30)
            if len(self._built) >= OPTIONS_KEPT:
                self._built.clear()
            self._built[key] = found
        return found

    def submit(self, path: str, choice: ExtractChoice | None = None) -> Future[ProcessOutcome]:
        """Queue one document, with a request's settings (None: the server's); the future
        gets its outcome (never an exception from parsing)."""
        if choice is None:
            options, page_range = self._options, None
        else:
            options, page_range = self.options(choice.overrides, choice.max_pages), choice.page_range
        return self._put(Task(next(self._ids), 0, os.fspath(path), page_range, self._max_bytes, options))

    def submit_options(self, path: str, options: ExtractOptions, max_bytes: int) -> Future[ProcessOutcome]:
        """Queue one document with options built elsewhere (an estimate's sample: the
        text its LLM stage would see), under the pool's limits like any other task."""
        return self._put(Task(next(self._ids), 0, os.fspath(path), None, max_bytes, options))

    def render(self, path: str, page: int, dpi: int, roots: tuple[str, ...] = ()) -> Future[ProcessOutcome]:
        """Queue drawing page ``page`` (0-based) of a PDF as a PNG at ``dpi`` (the task
        only renders: ``ExtractOptions.render_only``); the outcome has the image in
        ``images`` and the page's size in ``metadata["page_sizes"]``. ``roots``: the file
        is opened only inside them (``confine_roots``), as the job's run opened it. It
        shares the workers, their limits and the queue with ``POST /v1/extract``."""
        options = self._render_options.get((dpi, roots))
        if options is None:
            options = ExtractOptions(render_only=True, image_dpi=dpi, confine_roots=roots)
            self._render_options[(dpi, roots)] = options
        rng = PageRange(page, page + 1)
        return self._put(Task(next(self._ids), 0, os.fspath(path), rng, self._render_max_bytes, options))

    def _put(self, task: Task) -> Future[ProcessOutcome]:
        if self._stopping.is_set():
            raise ExtractBusy(STOPPING)
        future: Future[ProcessOutcome] = Future()
        try:
            self._queue.put_nowait((task, future))
        except queue.Full:
            raise ExtractBusy("too many documents are waiting; retry shortly") from None
        self._waker.wake()
        return future

    def _take(self, limit: int) -> list[tuple[Task, Future[ProcessOutcome]]]:
        items: list[tuple[Task, Future[ProcessOutcome]]] = []
        try:
            while len(items) < limit:
                items.append(self._queue.get_nowait())
        except queue.Empty:
            pass
        return items

    def _drive(self) -> None:
        pool = WorkerPool(self._size, self._limits)
        pool.start()
        waiting: dict[int, Future[ProcessOutcome]] = {}
        ready: deque[Task] = deque()
        try:
            while True:
                # forget the wake-ups first, then look: a request queued (or a stop asked)
                # after this look wakes the wait below, so none is missed while it sleeps
                self._waker.clear()
                if self._stopping.is_set():
                    break
                self.turns += 1
                # take what the workers can start now; the rest waits in the bounded queue
                for task, future in self._take(pool.idle - len(ready)):
                    if future.set_running_or_notify_cancel():
                        waiting[task.task_id] = future
                        ready.append(task)
                while pool.idle and ready:
                    pool.submit(ready.popleft())
                # sleep until a worker answers or the pool owes a check (a deadline, a
                # memory sample); a new request ends the wait too while the workers could
                # take it (with every worker full it waits in the queue for an answer)
                wake = self._waker if pool.idle or not pool.busy else None
                for task, outcome in pool.poll(math.inf, wake):
                    future_done = waiting.pop(task.task_id, None)
                    if future_done is not None:
                        future_done.set_result(outcome)
                ready.extendleft(reversed(pool.take_returned()))
        except Exception as exc:
            log.exception("the extract driver failed")
            for future in waiting.values():
                future.set_exception(exc)
            waiting.clear()
        finally:
            pool.shutdown(kill=True)
            self._stopping.set()  # a driver that failed takes no more requests either
            # every request still unanswered, running or queued, is told the service is
            # going (503 with Retry-After), never left to hang until the server closes
            for future in waiting.values():
                future.set_exception(ExtractBusy(STOPPING))
            self._refuse_queued()

    def _refuse_queued(self) -> None:
        for _task, future in self._take(QUEUE_MAX):
            if future.set_running_or_notify_cancel():
                future.set_exception(ExtractBusy(STOPPING))
