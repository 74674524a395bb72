"""``run.executor = ray``: the run's tasks as Ray core tasks on a cluster (an adapter).

The driver keeps everything it owns in a local run: enumeration, the SQLite ledger,
dedup, commits, part files and progress. Only :func:`~docmill.processors.process_task`
runs remotely, inside :func:`~docmill.executors.ray_batch.run_batch`: one Ray task per
batch of small documents (sized by :class:`~docmill.executors.batching.BatchSizer` to
about a second of work) or per page range of a big one. Each batch runs through a
supervised worker process on its node, so ``run.timeout_s`` ends ``timeout``,
``run.memory_mb`` ends ``memory`` and a dead child ends ``crash`` exactly as locally.

What the driver adds:

* **attempts**: Ray's retries are off (``max_retries=0``): only the ledger counts
  tries. A batch whose Ray worker or node dies charges its current task (the first not
  answered) with ``crash`` and returns the others uncounted, as a local worker's queue;
  a batch lost before it started charges nobody;
* **a watchdog**: a started batch silent for ``run.timeout_s`` + :data:`GRACE_S` is
  cancelled with ``force`` (its worker killed): its current task ends ``timeout``;
* **bytes**: a worker reads the task's path when it can (``run.ray_files``: ``shared``,
  or ``auto`` while every node is on this machine; a node that cannot see the path
  says so and the document is shipped instead); otherwise the driver reads the file
  (inside its roots when confined) and ships it through the object store, at most
  ``run.ray_ship_mb`` at once;
* **the window**: :func:`~docmill.executors.batching.batches_in_flight` from the
  cluster's CPUs (``ray.cluster_resources()``, read every :data:`REFRESH_S`), so it
  grows when nodes join and shrinks when they leave; the progress line shows nodes and
  workers.

Ray's errors are translated in one place (:meth:`RayExecutor._translate`). Ray is
imported when this executor is built, never at docmill's import; a process connects to
its cluster once and stays connected (``docmill serve`` runs several jobs over one
connection; a library caller ends it with ``ray.shutdown()``).
"""

from __future__ import annotations

import logging
import math
import os
import socket
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from docmill.engine.executor import ExecutorContext, ExecutorError, ExecutorState
from docmill.engine.worker import task_message
from docmill.executors.batching import (
    MAX_WINDOW,
    BatchSizer,
    batches_in_flight,
    goes_alone,
    on_this_machine,
    weight,
    window_batches,
)
from docmill.executors.ray_batch import Answer, Item, run_batch, run_batch_whole, warm_up
from docmill.model import FailureCategory, ProcessOutcome
from docmill.processors import Task
from docmill.sources.confine import NotAllowed

log = logging.getLogger("docmill.engine.ray")

CONNECT_TIMEOUT_S = 10.0  # a cluster address that accepts no connection in this long is refused
CLIENT_TRIES = 3  # sessions asked of a Ray Client server that failed to start one
CLIENT_PAUSE_S = 2.0  # before the second ask; twice that before the third
REFRESH_S = 2.0  # how often the cluster's nodes and CPUs are read
GRACE_S = 10.0  # a started batch silent for run.timeout_s + this is cancelled (force)
LOST_BEFORE_START = 20  # batches in a row lost before they started: the cluster is broken
MB = 1024 * 1024
INSTALL = "pip install 'docmill[ray]'"

# one connection per process (Ray's driver is process-wide): job threads share it
_CONNECT = threading.Lock()

# what run_batch raises when the node lacks docmill or its dependencies
_SETUP_ERRORS = (ImportError, ModuleNotFoundError, AttributeError)


@dataclass
class _Shipped:
    ref: Any  # ObjectRef of the bytes
    size: int
    users: int = 0  # batches in flight that carry it


@dataclass
class _Batch:
    tasks: dict[int, Task]  # task id -> task, in batch order: those not answered yet
    size: int
    units: int  # the tasks' weight
    sent_at: float
    started_at: float | None = None
    seen_at: float = 0.0
    timed_out: bool = False
    shipped: list[int] = field(default_factory=list)  # doc ids of the bytes it carries


class RayExecutor:
    """The executor of ``run.executor = ray`` (see the module's docstring)."""

    def __init__(self, context: ExecutorContext) -> None:
        try:
            import ray
        except ImportError:
            raise ExecutorError(
                f"run.executor=ray needs Ray on this machine and on every node: {INSTALL}"
            ) from None
        self._ray = ray
        s = context.settings
        self._run = s.run
        self._clock = context.clock
        self._roots = context.roots
        self._limits = (s.run.timeout_s, s.run.memory_mb, s.run.recycle_after)
        self._files = s.run.ray_files
        self._ship_cap = int(s.run.ray_ship_mb * MB)
        self._sizer = BatchSizer()
        self._pending: deque[tuple[Task, int]] = deque()  # with its weight
        self._pending_units = 0
        self._batches: dict[Any, _Batch] = {}  # ObjectRefGenerator -> its batch
        self._held = 0  # tasks pending here or in a batch
        self._returned: list[Task] = []
        self._failed_here: list[tuple[Task, ProcessOutcome]] = []  # unreadable for shipping
        self._suspects: set[int] = set()  # doc ids that timed out, ran out of memory, crashed
        self._lost_first: set[int] = set()  # doc ids first in line in a batch lost unstarted
        self._unseen: set[int] = set()  # doc ids a node could not read: shipped from now on
        self._shipped: dict[int, _Shipped] = {}
        self._shipped_bytes = 0
        self._lost_before_start = 0
        self._cpus = 0.0
        self._nodes = 0
        self._paths_seen = self._files != "ship"
        self._refreshed = -math.inf
        self._remote: Any = None
        self._whole = False  # batches answer at their end (Ray Client), not as a stream
        self._local_addresses: set[str] = set()

    # --- lifecycle ----------------------------------------------------------------

    def prepare(self) -> None:
        """Join the cluster (once per process) while nothing else waits on it."""
        ray = self._ray
        address = self._run.ray_address.strip() or "auto"
        with _CONNECT:
            if not ray.is_initialized():
                _check_reachable(address)  # ray.init waits for ever on an address no one answers
                _join(ray, address)
        # Ray Client (ray://) cannot stream a task's results: a batch answers at its end
        self._whole = address.startswith("ray://")
        if self._whole:
            self._remote = ray.remote(run_batch_whole).options(
                num_cpus=1, max_retries=0, retry_exceptions=False, name="docmill-batch"
            )
        else:
            self._remote = ray.remote(run_batch).options(
                num_cpus=1,
                max_retries=0,
                retry_exceptions=False,
                num_returns="streaming",
                name="docmill-batch",
            )
        self._local_addresses = _this_machine()
        # one worker a CPU starts (Ray, then PDFium in its forkserver) while the driver
        # reads the ledger and hashes the first sources; its result is not awaited
        warm = ray.remote(warm_up).options(num_cpus=1, max_retries=0, name="docmill-warm-up")
        try:
            cpus = int(ray.cluster_resources().get("CPU", 0))
        except Exception:  # the cluster's state comes again in start()
            cpus = 0
        for _ in range(cpus):
            warm.remote()

    def start(self) -> None:
        if self._remote is None:
            self.prepare()
        self._refresh(self._clock(), force=True)

    def shutdown(self, *, kill: bool = False) -> list[Task]:
        """Cancel every batch in flight (its worker killed) and return what they held,
        with the tasks not yet sent: they go back to pending."""
        lost = [task for task, _units in self._pending]
        self._pending.clear()
        self._pending_units = 0
        for gen, batch in self._batches.items():
            lost.extend(batch.tasks.values())
            try:
                self._ray.cancel(gen, force=True)
            except Exception:  # already finished, or the cluster is gone
                pass
        self._batches.clear()
        self._shipped.clear()
        self._shipped_bytes = 0
        self._held = 0
        return lost

    # --- what the runner asks -------------------------------------------------------

    @property
    def window(self) -> int:
        if self._run.window > 0:
            return self._run.window
        return min(MAX_WINDOW, window_batches(self._cpus) * self._sizer.size)

    @property
    def idle(self) -> int:
        return max(0, self.window - self._held)

    @property
    def busy(self) -> int:
        return len(self._batches) + len(self._pending)

    def describe(self) -> ExecutorState:
        return ExecutorState(nodes=self._nodes, workers=int(self._cpus))

    def submit(self, task: Task) -> None:
        try:
            size = os.stat(task.path).st_size
        except OSError:
            size = 0  # the worker (or the driver, shipping it) says what is wrong
        units = weight(size)
        self._pending.append((task, units))
        self._pending_units += units
        self._held += 1

    def take_returned(self) -> list[Task]:
        returned, self._returned = self._returned, []
        self._held -= len(returned)
        return returned

    def poll(self, wait_s: float) -> list[tuple[Task, ProcessOutcome]]:
        """Send what can go, then wait up to ``wait_s`` for answers."""
        now = self._clock()
        self._refresh(now)
        self._dispatch(now)
        results, self._failed_here = self._failed_here, []
        if not self._batches:
            if wait_s > 0 and not results:
                time.sleep(wait_s)
            self._held -= len(results)
            return results
        ray = self._ray
        gens = list(self._batches)
        try:
            ready, _ = ray.wait(gens, num_returns=1, timeout=0 if results else wait_s)
            if ready and len(gens) > 1:
                ready, _ = ray.wait(gens, num_returns=len(gens), timeout=0)
        except Exception as exc:  # the driver lost its cluster (its GCS, its raylet)
            raise ExecutorError(f"lost the Ray cluster: {_first_line(exc)}") from None
        now = self._clock()
        for gen in ready:
            results.extend(self._receive(gen, now))
        self._watch(now)
        self._held -= len(results)
        return results

    # --- sending ------------------------------------------------------------------

    def _dispatch(self, now: float) -> None:
        """Batches from the pending tasks while the window has room."""
        most = batches_in_flight(self._cpus)
        while self._pending and len(self._batches) < most:
            if goes_alone(self._pending[0][0], self._suspects):
                take = 1
            else:
                take = self._sizer.take(
                    self._mates(), len(self._pending), self._pending_units, int(self._cpus)
                )
            picked = [self._pending.popleft() for _ in range(take)]
            self._pending_units -= sum(units for _task, units in picked)
            if not self._launch(picked, now):
                self._pending.extendleft(reversed(picked))
                self._pending_units += sum(units for _task, units in picked)
                return

    def _mates(self) -> Iterator[int]:
        """The weights of the pending tasks that may share a batch, from the first."""
        for task, units in self._pending:
            if goes_alone(task, self._suspects):
                return
            yield units

    def _launch(self, picked: list[tuple[Task, int]], now: float) -> bool:
        """Send ``picked`` as one Ray task. False: the shipping window is full (they
        wait for a batch to finish)."""
        tasks = [task for task, _units in picked]
        ship = {t.task_id: t for t in tasks if self._ships(t)}
        need = 0
        for task in ship.values():
            if task.doc_id not in self._shipped:
                try:
                    need += os.stat(task.path).st_size
                except OSError:
                    pass  # reading it below fails it
        if ship and self._batches and self._shipped_bytes + need > self._ship_cap:
            return False
        refs: list[Any] = []
        items: list[Item] = []
        batch = _Batch(tasks={}, size=0, units=0, sent_at=now)
        for task, units in picked:
            index = -1
            if task.task_id in ship:
                shipped = self._ship(task)
                if shipped is None:
                    continue  # unreadable: failed here
                shipped.users += 1
                batch.shipped.append(task.doc_id)
                index = len(refs)
                refs.append(shipped.ref)
            check = self._files == "auto" and index < 0
            items.append((task_message(task, False), index, check))
            batch.tasks[task.task_id] = task
            batch.units += units
        if not items:
            return True
        batch.size = len(items)
        options = tasks[0].options
        gen = self._remote.remote(self._limits, options, items, *refs)
        self._batches[gen] = batch
        return True

    def _ships(self, task: Task) -> bool:
        return not self._paths_seen or task.doc_id in self._unseen

    def _ship(self, task: Task) -> _Shipped | None:
        """The task's document in the object store (once per document while batches
        carry it); None when the driver cannot read it (the task fails here)."""
        have = self._shipped.get(task.doc_id)
        if have is not None:
            return have
        try:
            if self._roots is not None:
                fd, _real = self._roots.open(task.path)
                with open(fd, "rb") as handle:
                    data = handle.read()
            else:
                with open(task.path, "rb") as handle:
                    data = handle.read()
        except NotAllowed as exc:
            self._fail_here(task, FailureCategory.NOT_ALLOWED, str(exc))
            return None
        except OSError as exc:
            name = os.path.basename(task.path)
            self._fail_here(task, FailureCategory.IO, f"cannot read {name}: {exc.strerror or exc}")
            return None
        shipped = _Shipped(self._ray.put(data), len(data))
        del data
        self._shipped[task.doc_id] = shipped
        self._shipped_bytes += shipped.size
        return shipped

    def _fail_here(self, task: Task, category: FailureCategory, message: str) -> None:
        self._failed_here.append((task, ProcessOutcome.failure(category, message, "read")))

    # --- receiving ----------------------------------------------------------------

    def _receive(self, gen: Any, now: float) -> list[tuple[Task, ProcessOutcome]]:
        """Every answer ``gen`` has ready; its end, or its loss."""
        batch = self._batches[gen]
        if self._whole:
            return self._receive_whole(gen, batch, now)
        out: list[tuple[Task, ProcessOutcome]] = []
        try:
            first = True  # ray.wait said it is ready: its next item, its end or its error
            while first or gen.next_ready():
                first = False
                answers: list[Answer] = self._ray.get(next(gen))
                batch.seen_at = now
                if batch.started_at is None:
                    batch.started_at = now
                    self._lost_before_start = 0
                out.extend(self._answered(batch, answers))
            if not gen.is_finished():
                return out
        except StopIteration:
            pass
        except Exception as exc:  # the batch is lost: Ray's errors, translated here
            out.extend(self._lost(batch, exc))
        self._finish(gen, batch, now)
        return out

    def _receive_whole(
        self, ref: Any, batch: _Batch, now: float
    ) -> list[tuple[Task, ProcessOutcome]]:
        """A batch that answers at its end (Ray Client). Whether a lost one had started
        is not known: it is taken as started (its first task is charged), so attempts
        stay bounded."""
        try:
            busy_s, answers = self._ray.get(ref)
        except Exception as exc:
            category, message = self._translate(exc, batch)
            if category is FailureCategory.ERROR:  # a node without docmill: the run's error
                raise ExecutorError(message) from None
            batch.started_at = batch.sent_at
            out = self._lost(batch, exc)
            batch.timed_out = True  # nothing to learn from its time
        else:
            out = self._answered(batch, answers)
            batch.started_at = now - busy_s
        self._finish(ref, batch, now)
        return out

    def _answered(
        self, batch: _Batch, answers: list[Answer]
    ) -> list[tuple[Task, ProcessOutcome]]:
        out: list[tuple[Task, ProcessOutcome]] = []
        for task_id, wire in answers:
            task = batch.tasks.pop(task_id, None)
            if task is None:
                continue
            if wire is None:  # this node cannot see the path: ship it, uncounted
                self._unseen.add(task.doc_id)
                self._returned.append(task)
                continue
            try:
                outcome = ProcessOutcome.from_wire(wire)
            except Exception:
                outcome = ProcessOutcome.failure(
                    FailureCategory.ERROR, "unexpected worker result", "worker"
                )
            error = outcome.error
            if error is not None and error.category.retryable:
                self._suspects.add(task.doc_id)
            else:
                self._suspects.discard(task.doc_id)
            out.append((task, outcome))
        return out

    def _finish(self, gen: Any, batch: _Batch, now: float) -> None:
        del self._batches[gen]
        if batch.tasks:  # ended without answering them (never expected): sent again
            self._returned.extend(batch.tasks.values())
            batch.tasks.clear()
        if batch.started_at is not None and not batch.timed_out:
            self._sizer.observe(now - batch.started_at, batch.size, batch.units)
        for doc_id in batch.shipped:
            shipped = self._shipped.get(doc_id)
            if shipped is not None:
                shipped.users -= 1
                if shipped.users <= 0:
                    del self._shipped[doc_id]
                    self._shipped_bytes -= shipped.size

    def _lost(self, batch: _Batch, exc: BaseException) -> list[tuple[Task, ProcessOutcome]]:
        """The batch's worker or node died, or it was cancelled: its current task (the
        first not answered) is charged, the others go back uncounted.

        A batch lost before the driver heard it start (Ray drops what a failed task
        yielded and the driver had not read yet) charges nobody, unless its first task
        was first in line in such a batch before: so a document that kills its Ray
        worker at once still reaches ``run.max_attempts``."""
        left = list(batch.tasks.values())
        batch.tasks.clear()
        if not left:
            return []
        category, message = self._translate(exc, batch)
        current, rest = left[0], left[1:]
        if batch.started_at is None:
            if category is FailureCategory.ERROR:
                raise ExecutorError(message) from None
            self._lost_before_start += 1
            if self._lost_before_start >= LOST_BEFORE_START:
                raise ExecutorError(
                    f"{LOST_BEFORE_START} Ray tasks in a row were lost before they started; "
                    f"the last: {message}"
                ) from None
            if current.doc_id not in self._lost_first:
                self._lost_first.add(current.doc_id)
                self._returned.extend(left)
                return []
        self._lost_first.discard(current.doc_id)
        self._returned.extend(rest)
        self._suspects.add(current.doc_id)
        return [(current, ProcessOutcome.failure(category, message, "worker"))]

    def _translate(self, exc: BaseException, batch: _Batch) -> tuple[FailureCategory, str]:
        """Ray's errors as a failure category and message (the one place)."""
        errors = self._ray.exceptions
        if batch.timed_out:
            return FailureCategory.TIMEOUT, (
                f"no result within run.timeout_s={self._run.timeout_s:g}s; the Ray task was "
                "cancelled (force)"
            )
        if isinstance(exc, errors.OutOfMemoryError):
            return FailureCategory.MEMORY, (
                "Ray's memory monitor killed the worker (its node ran out of memory)"
            )
        if isinstance(exc, errors.NodeDiedError):
            return FailureCategory.CRASH, "the Ray node running it died"
        if isinstance(exc, errors.TaskCancelledError):
            return FailureCategory.CRASH, "the Ray task was cancelled"
        if isinstance(exc, errors.RayTaskError):
            cause = getattr(exc, "cause", None)
            if batch.started_at is None and isinstance(cause, _SETUP_ERRORS):
                return FailureCategory.ERROR, (
                    f"the Ray workers cannot run docmill's tasks ({_first_line(cause)}): "
                    f"every node needs docmill with Ray ({INSTALL})"
                )
            return FailureCategory.CRASH, f"the Ray task failed: {_first_line(cause or exc)}"
        if isinstance(exc, errors.RayError):  # WorkerCrashedError, ObjectLostError, ...
            return FailureCategory.CRASH, (
                f"the Ray worker running it died ({type(exc).__name__})"
            )
        return FailureCategory.CRASH, f"the Ray task failed: {_first_line(exc)}"

    def _watch(self, now: float) -> None:
        """Cancel (force) a started batch that has been silent past its deadline."""
        limit = self._run.timeout_s + GRACE_S
        for gen, batch in self._batches.items():
            if batch.started_at is None or batch.timed_out or now - batch.seen_at <= limit:
                continue
            batch.timed_out = True
            log.warning(
                "a Ray task has sent nothing for %.0f s (run.timeout_s=%g): cancelled",
                now - batch.seen_at, self._run.timeout_s,
            )
            try:
                self._ray.cancel(gen, force=True)
            except Exception:
                pass

    # --- the cluster --------------------------------------------------------------

    def _refresh(self, now: float, *, force: bool = False) -> None:
        """The cluster's CPUs and live nodes, every :data:`REFRESH_S`."""
        if not force and now - self._refreshed < REFRESH_S:
            return
        self._refreshed = now
        ray = self._ray
        try:
            cpus = float(ray.cluster_resources().get("CPU", 0.0))
            nodes = [n for n in ray.nodes() if n.get("Alive")]
        except Exception as exc:  # the GCS is unreachable for a moment: keep the last view
            log.warning("cannot read the Ray cluster's state: %s", _first_line(exc))
            return
        paths = self._files == "shared" or (
            self._files == "auto"
            and on_this_machine(
                (str(n.get("NodeManagerAddress", "")) for n in nodes), self._local_addresses
            )
        )
        if (cpus, len(nodes), paths) != (self._cpus, self._nodes, self._paths_seen):
            log.info(
                "ray: %d nodes, %g CPUs; documents %s",
                len(nodes), cpus, "read by the workers" if paths else "shipped by the driver",
            )
        self._cpus, self._nodes, self._paths_seen = cpus, len(nodes), paths


def _join(ray: Any, address: str) -> None:
    """``ray.init`` on ``address``. Through Ray Client (``ray://``) a session the head's
    proxy could not start (its server process late or gone: ``Initialization failure
    from server``) is asked for again, up to ``CLIENT_TRIES`` times in all."""
    tries = CLIENT_TRIES if address.startswith("ray://") else 1
    for attempt in range(1, tries + 1):
        try:
            ray.init(
                address=address,
                log_to_driver=False,
                logging_level=logging.WARNING,
                namespace="docmill",
            )
            return
        except Exception as exc:  # ConnectionError, ValueError, RuntimeError ...
            reason = _first_line(exc)
            if attempt < tries and isinstance(exc, ConnectionAbortedError):
                log.warning(
                    "Ray Client at %s could not start a session (%s); asking again (%d of %d)",
                    address, reason, attempt + 1, tries,
                )
                time.sleep(CLIENT_PAUSE_S * attempt)
                continue
            raise ExecutorError(
                f"cannot join the Ray cluster at run.ray_address={address}: {reason}"
            ) from None


def _check_reachable(address: str) -> None:
    """Refuse at once a cluster address that takes no connection (``auto`` reads
    ``RAY_ADDRESS``; without it Ray looks for the cluster ``ray start`` made here)."""
    if address == "auto":
        address = os.environ.get("RAY_ADDRESS", "").strip()
        if not address or address == "auto":
            return
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if not sep or not port.isdigit():
        raise ExecutorError(
            f"run.ray_address={address!r}: expected auto, host:port or ray://host:port"
        )
    try:
        with socket.create_connection((host.strip("[]"), int(port)), CONNECT_TIMEOUT_S):
            pass
    except OSError as exc:
        raise ExecutorError(
            f"cannot join the Ray cluster at run.ray_address={address}: nothing answers there "
            f"({exc.strerror or exc}); start it with `ray start --head` or fix the address"
        ) from None


def _this_machine() -> set[str]:
    """This machine's addresses (a node at one of them reads the driver's files)."""
    import psutil

    addresses = {"127.0.0.1", "::1"}
    try:
        for entries in psutil.net_if_addrs().values():
            addresses.update(e.address.split("%")[0] for e in entries if e.address)
    except (OSError, psutil.Error):
        pass
    return addresses


def _first_line(exc: BaseException) -> str:
    """The first line of an error; where that line only introduces what follows (Ray
    Client's ``Initialization failure from server:`` and the server's traceback), the
    last line too, which names the cause."""
    text = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    if not text:
        return type(exc).__name__
    if text[0].endswith(":") and len(text) > 1:
        return f"{text[0]} {text[-1]}"
    return text[0]
