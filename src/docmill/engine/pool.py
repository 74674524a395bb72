"""A pool of worker processes supervised from outside.

Each worker runs one task at a time. The driver watches every busy worker: past its
deadline it is killed (``timeout``), over its resident-memory cap it is killed
(``memory``), and if it dies on its own the task fails with ``crash`` and the signal.
A killed or dead worker is replaced; a worker is also retired after ``recycle_after``
tasks. Its successor is started when it takes its last task, so that it is waiting when
that task is done, and a retired worker exits on its own time (reaped by later polls):
a recycle costs the driver no wait and the core no idle gap. Nothing a document does can
take the pool down.
"""

from __future__ import annotations

import math
import multiprocessing
import os
import pickle
import select
import signal
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

from docmill.engine.executor import ExecutorContext, ExecutorState
from docmill.engine.preload import start_forkserver
from docmill.engine.worker import STAGE_BYTES, task_message, worker_main
from docmill.model import FailureCategory, ProcessOutcome
from docmill.processors import ExtractOptions, Task

Clock = Callable[[], float]
MB = 1024 * 1024
DEPTH = 4  # tasks per worker: the current one and three more, already in its pipe
RSS_SAMPLE_S = 0.05  # how often a busy worker's resident memory is read
EXIT_GRACE_S = 5.0  # a retired worker that has not exited by then is killed


@dataclass(frozen=True, slots=True)
class PoolLimits:
    timeout_s: float
    memory_mb: int
    recycle_after: int


@dataclass(slots=True)
class _Slot:
    """One worker. ``queue[0]`` is the task it works on; the next one waits in its pipe
    so that it never idles while the driver turns around (its deadline starts only when
    it becomes current)."""

    proc: BaseProcess
    conn: Connection
    stage_buf: Any
    fds: tuple[int, int]  # what poll() waits on: the connection and the process sentinel
    queue: deque[Task] = field(default_factory=deque)
    deadline: float = 0.0
    tasks_done: int = 0
    sampled_at: float = 0.0
    options: ExtractOptions | None = None  # the last options sent (tasks carry them)
    successor: _Slot | None = None  # started when this one took its last task

    @property
    def task(self) -> Task | None:
        return self.queue[0] if self.queue else None


def _signal_name(code: int) -> str:
    try:
        return signal.Signals(code).name
    except ValueError:
        return f"signal {code}"


class Waker:
    """Wakes the thread that owns a pool from another thread: :meth:`WorkerPool.poll`
    given a waker also returns when :meth:`wake` is called, so the owner can sleep until
    a result, a limit check the pool must make, or new work (never a poll on a timer).
    An eventfd (a non-blocking pipe where there is none). The owner calls :meth:`clear`
    before it looks for new work, so a ``wake`` after that look is never lost."""

    def __init__(self) -> None:
        self._read: int
        self._write: int
        if hasattr(os, "eventfd"):
            self._read = self._write = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        else:
            self._read, self._write = os.pipe()
            os.set_blocking(self._read, False)
            os.set_blocking(self._write, False)
        self._closed = False

    def fileno(self) -> int:
        return self._read

    def wake(self) -> None:
        """Make the owner's next (or current) wait return. Safe from any thread."""
        try:
            os.write(self._write, (1).to_bytes(8, "little"))
        except (BlockingIOError, OSError):  # already signalled (pipe full), or closed
            pass

    def clear(self) -> None:
        """Forget the wake-ups so far (the owner's next wait sleeps again)."""
        try:
            if self._read == self._write:
                os.read(self._read, 8)  # an eventfd's counter goes back to 0
            else:
                while os.read(self._read, 4096):
                    pass
        except (BlockingIOError, OSError):  # nothing to read
            pass

    def __del__(self) -> None:  # no thread holds it any more: nothing can write to a reused fd
        self.close()

    def close(self) -> None:
        """Close the fds: only once no thread can call :meth:`wake` any more."""
        if not getattr(self, "_closed", True):  # (an __init__ that failed opened nothing)
            self._closed = True
            os.close(self._read)
            if self._write != self._read:
                os.close(self._write)


def read_rss(pid: int) -> int:
    """Resident set size of ``pid`` in bytes (0 if it is gone)."""
    try:
        with open(f"/proc/{pid}/statm", "rb") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        import psutil

        try:
            return int(psutil.Process(pid).memory_info().rss)
        except psutil.Error:
            return 0


class WorkerPool:
    """Supervised worker processes. Used from one thread (the driver's).

    It is the ``local`` executor (:mod:`docmill.engine.executor`): ``window`` is the
    number of documents the runner keeps claimed for it (``run.window``)."""

    def __init__(
        self, size: int, limits: PoolLimits, clock: Clock = time.monotonic, window: int = 0
    ) -> None:
        self._size = size
        self.window = window if window > 0 else 16 * size
        self._limits = limits
        self._clock = clock
        self._ctx = multiprocessing.get_context("forkserver")
        self._slots: list[_Slot] = []
        self._returned: list[Task] = []
        # one poll object, kept across calls: registered are the busy slots' fds
        self._poller = select.poll()
        self._polled: set[int] = set()
        self.started = 0  # processes started, for stats
        self._exiting: list[tuple[BaseProcess, float]] = []  # retired: (process, kill at)
        self.killed: dict[str, int] = {}

    # --- lifecycle ----------------------------------------------------------------

    def prepare(self) -> None:
        """Start the forkserver, which imports the worker modules, without waiting for
        it: the driver goes on (ledger, enumeration, hashing) while it loads. The CLI
        has usually started it already (``engine.preload``)."""
        start_forkserver()

    def start(self) -> None:
        start_forkserver()  # with the preload, when ``prepare`` was not called
        self._slots = [self._spawn() for _ in range(self._size)]

    def _spawn(self) -> _Slot:
        parent, child = self._ctx.Pipe(duplex=True)
        cap = self._limits.memory_mb * MB
        address_space = max(cap * 3, cap + 2048 * MB)
        stage_buf = self._ctx.RawArray("c", STAGE_BYTES)
        proc = self._ctx.Process(
            target=worker_main,
            args=(child, address_space, stage_buf),
            daemon=True,
            name="docmill-worker",
        )
        proc.start()
        child.close()
        self.started += 1
        return _Slot(
            proc=proc, conn=parent, stage_buf=stage_buf, fds=(parent.fileno(), proc.sentinel)
        )

    def _retire(self, slot: _Slot, *, kill: bool, wait: bool = True) -> None:
        """Stop ``slot``'s worker (and a successor it had started). ``wait=False``, for
        an idle worker: ask it to exit and reap it in a later poll (killed after
        ``EXIT_GRACE_S``)."""
        if slot.successor is not None:
            self._retire(slot.successor, kill=False, wait=wait)
            slot.successor = None
        if kill:
            slot.proc.kill()
        else:
            try:
                slot.conn.send(None)
            except OSError:
                slot.proc.kill()
        if not wait and not kill:
            slot.conn.close()
            self._exiting.append((slot.proc, self._clock() + EXIT_GRACE_S))
            return
        slot.proc.join(timeout=2.0 if not kill else 5.0)
        if slot.proc.is_alive():
            slot.proc.kill()
            slot.proc.join(timeout=5.0)
        slot.conn.close()

    def _replace(self, slot: _Slot, *, kill: bool) -> _Slot:
        """Retire ``slot`` (killed, or asked to exit when idle) and return the worker
        that takes its place: its successor when one was started."""
        successor, slot.successor = slot.successor, None
        self._retire(slot, kill=kill, wait=False)
        return successor or self._spawn()

    def _reap(self, *, wait: bool = False) -> None:
        """Join retired workers that have exited; kill those past their grace."""
        now = self._clock()
        keep: list[tuple[BaseProcess, float]] = []
        for proc, kill_at in self._exiting:
            if wait:
                proc.join(timeout=max(0.0, kill_at - now))
            if proc.is_alive():
                if now < kill_at and not wait:
                    keep.append((proc, kill_at))
                    continue
                proc.kill()
            proc.join(timeout=5.0)
        self._exiting = keep

    def shutdown(self, *, kill: bool = False) -> list[Task]:
        """Stop every worker; return the tasks that were still in flight (lost)."""
        lost = [t for s in self._slots for t in s.queue]
        for slot in self._slots:
            self._retire(slot, kill=kill or bool(slot.queue))
        self._slots = []
        self._reap(wait=True)
        return lost

    # --- work ---------------------------------------------------------------------

    def _accepts(self, slot: _Slot) -> bool:
        return (
            len(slot.queue) < DEPTH
            and slot.tasks_done + len(slot.queue) < self._limits.recycle_after
        )

    @property
    def idle(self) -> int:
        """How many more tasks the pool takes now."""
        return sum(
            min(DEPTH - len(s.queue), self._limits.recycle_after - s.tasks_done - len(s.queue))
            for s in self._slots
            if self._accepts(s)
        )

    @property
    def busy(self) -> int:
        return sum(1 for s in self._slots if s.queue)

    def describe(self) -> ExecutorState | None:
        """Nothing for the progress line: one machine, its ``run.workers``."""
        return None

    def pids(self) -> list[int]:
        """The worker processes' ids, for monitoring."""
        return [s.proc.pid for s in self._slots if s.proc.pid is not None]

    def submit(self, task: Task) -> None:
        """Give ``task`` to the least loaded worker that takes one."""
        candidates = [i for i, s in enumerate(self._slots) if self._accepts(s)]
        if not candidates:
            raise RuntimeError("no idle worker")
        i = min(candidates, key=lambda j: len(self._slots[j].queue))
        slot = self._slots[i]
        try:
            self._send(slot, task)
        except OSError:  # the worker died: its result (if any) shows up in poll()
            if slot.queue:
                raise RuntimeError("worker pipe closed") from None
            slot = self._slots[i] = self._replace(slot, kill=True)
            self._send(slot, task)
        slot.queue.append(task)
        if len(slot.queue) == 1:  # busy from now: its memory is first sampled RSS_SAMPLE_S on
            self._begin(slot)
            slot.sampled_at = self._clock()
        if slot.successor is None and slot.tasks_done + len(slot.queue) >= self._limits.recycle_after:
            slot.successor = self._spawn()  # its last task: the next worker starts now

    @staticmethod
    def _send(slot: _Slot, task: Task) -> None:
        """The task as plain values; its options only when they are not the last sent."""
        fresh = task.options is not slot.options
        message = task_message(task, fresh)
        slot.conn.send_bytes(pickle.dumps(message, pickle.HIGHEST_PROTOCOL))
        if fresh:
            slot.options = task.options

    def _begin(self, slot: _Slot) -> None:
        slot.deadline = self._clock() + self._limits.timeout_s

    def take_returned(self) -> list[Task]:
        """Tasks that never started because their worker was killed: send them again."""
        returned, self._returned = self._returned, []
        return returned

    def poll(self, wait_s: float, wake: Waker | None = None) -> list[tuple[Task, ProcessOutcome]]:
        """Wait up to ``wait_s`` (``math.inf``: until something happens) for results;
        enforce deadlines and memory caps meanwhile. It returns as soon as there are
        results (or a worker failed) and, with ``wake``, when another thread calls
        ``wake.wake()``. The wait wakes only for a check the pool owes (a busy worker's
        deadline, its memory sample every ``RSS_SAMPLE_S``, a retired worker's grace),
        never on a timer of its own: an idle pool waiting on a waker sleeps."""
        end = time.monotonic() + wait_s
        while True:
            left = max(0.0, end - time.monotonic())
            results, stirred = self._turn(left, wake)
            if results or stirred or left <= 0:
                return results

    def _turn(
        self, wait_s: float, wake: Waker | None
    ) -> tuple[list[tuple[Task, ProcessOutcome]], bool]:
        """One wait, at most until the next check the pool owes, then the checks: the
        results, and whether any fd (a worker's, ``wake``'s) ended the wait."""
        busy = [s for s in self._slots if s.queue]
        if self._exiting and not busy:
            self._reap()
        wait_s = min(wait_s, self._next_check(busy))
        if not busy:
            if wake is not None:
                return [], bool(self._wait(busy, wait_s, wake))
            if wait_s == math.inf:
                raise ValueError("an idle pool without a waker would wait forever")
            if wait_s > 0:
                time.sleep(wait_s)
            return [], False
        ready = self._wait(busy, wait_s, wake)
        if self._exiting:
            self._reap()
        results: list[tuple[Task, ProcessOutcome]] = []
        cap = self._limits.memory_mb * MB
        for i, slot in enumerate(self._slots):
            if slot.queue and slot.fds[0] in ready:  # one outcome a turn; more stay readable
                outcome = self._receive(slot)
                if outcome is not None:
                    results.append((slot.queue.popleft(), outcome))
                    slot.tasks_done += 1
                    if slot.queue:
                        self._begin(slot)
            task = slot.task
            if task is None:
                if slot.tasks_done >= self._limits.recycle_after:
                    self._slots[i] = self._replace(slot, kill=False)
                continue
            now = self._clock()
            category: FailureCategory | None = None
            detail = ""
            # a worker that exited has a readable sentinel: no extra system call otherwise
            if slot.fds[1] in ready and not slot.proc.is_alive():
                last = self._receive(slot) if slot.conn.poll() else None
                if last is not None:  # its outcome arrived before it exited
                    results.append((slot.queue.popleft(), last))
                    self._returned.extend(slot.queue)
                    slot.queue.clear()
                    self._slots[i] = self._replace(slot, kill=True)
                    continue
                code = slot.proc.exitcode or 0
                category = FailureCategory.CRASH
                detail = f"killed by {_signal_name(-code)}" if code < 0 else f"exited with code {code}"
            elif now > slot.deadline:
                category = FailureCategory.TIMEOUT
                detail = f"no result within run.timeout_s={self._limits.timeout_s:g}s"
            elif now - slot.sampled_at >= RSS_SAMPLE_S:
                slot.sampled_at = now
                rss = read_rss(slot.proc.pid or 0)
                if rss > cap:
                    category = FailureCategory.MEMORY
                    detail = (
                        f"worker memory {rss // MB:,} MB over run.memory_mb="
                        f"{self._limits.memory_mb:,}"
                    )
            failure: ProcessOutcome | None = None
            if category is not None:
                stage = slot.stage_buf.value.decode("ascii", "replace") or "start"
                if category is FailureCategory.CRASH:
                    message = f"the worker process {detail} during stage {stage}"
                else:
                    message = f"{detail} (stage {stage}); the worker was killed"
                failure = ProcessOutcome.failure(category, message, stage)
                self.killed[str(category)] = self.killed.get(str(category), 0) + 1
            if failure is not None:
                self._slots[i] = self._replace(slot, kill=True)
                results.append((slot.queue.popleft(), failure))
                self._returned.extend(slot.queue)  # never started: not this document's fault
        return results, bool(ready)

    def _next_check(self, busy: list[_Slot]) -> float:
        """Seconds until the pool must look at its workers again whatever they send:
        the first deadline or memory sample of a busy worker, a retired one's grace."""
        due = math.inf
        for slot in busy:
            due = min(due, slot.deadline, slot.sampled_at + RSS_SAMPLE_S)
        for _proc, kill_at in self._exiting:
            due = min(due, kill_at)
        return max(0.0, due - self._clock()) if due < math.inf else math.inf

    def _wait(self, busy: list[_Slot], timeout_s: float, wake: Waker | None = None) -> set[int]:
        """The fds of ``busy`` (and ``wake``'s) that are readable (or closed) within
        ``timeout_s`` (``math.inf``: until one is), as ``multiprocessing.connection.wait``
        would say, without building a selector on every call: the poll object is only
        told when the set changes."""
        wanted = {fd for s in busy for fd in s.fds}
        if wake is not None:
            wanted.add(wake.fileno())
        if wanted != self._polled:
            for fd in self._polled - wanted:
                self._poller.unregister(fd)
            for fd in wanted - self._polled:
                self._poller.register(fd, select.POLLIN)
            self._polled = wanted
        if timeout_s == math.inf:
            ms: int | None = None  # no timeout
        else:
            ms = math.ceil(timeout_s * 1000) if timeout_s > 0 else 0
        return {fd for fd, _event in self._poller.poll(ms)}

    def _receive(self, slot: _Slot) -> ProcessOutcome | None:
        """The outcome waiting on a readable connection (None: the worker is gone)."""
        try:
            message = pickle.loads(slot.conn.recv_bytes())
        except (EOFError, OSError):
            return None
        except Exception as exc:  # an outcome that cannot be unpickled
            return ProcessOutcome.failure(
                FailureCategory.ERROR, f"unreadable worker result: {exc}", "worker"
            )
        if isinstance(message, tuple):
            try:
                return ProcessOutcome.from_wire(message)
            except Exception:  # a malformed result fails its document
                pass
        return ProcessOutcome.failure(FailureCategory.ERROR, "unexpected worker result", "worker")


def local_executor(context: ExecutorContext) -> WorkerPool:
    """``run.executor = local``: ``run.workers`` supervised processes on this machine."""
    s = context.settings
    return WorkerPool(
        s.workers,
        PoolLimits(s.run.timeout_s, s.run.memory_mb, s.run.recycle_after),
        context.clock,
        window=s.window,
    )
