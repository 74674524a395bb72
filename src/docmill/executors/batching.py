"""Pure policies of a cluster executor: how many tasks a remote task carries, how many
remote tasks are in flight, and which nodes can read this machine's paths.

A remote task costs the driver about 0.3 ms of CPU and the cluster a scheduling round
trip; a small document takes a worker ~6 ms, a big one seconds. So tasks travel in
batches sized by work: a task weighs its file's bytes plus :data:`OVERHEAD_BYTES` (what
any document costs), :class:`BatchSizer` learns the seconds a unit of weight takes from
finished batches, and a batch gathers about ``target_s`` of work (2 s: a batch's own cost, its
worker process started and stopped, is ~20-50 ms), so the overhead stays a few percent
of the work and a batch of big files is short in files. A page range of a
big document, and a document that once timed out, ran out of memory or crashed its
worker, travels alone (:func:`goes_alone`): it is work enough by itself, and a suspect
must not hold innocent documents behind it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from docmill.processors import Task

TARGET_S = 2.0  # seconds of work a batch aims at
FIRST_SIZE = 4  # tasks per batch before any batch has finished
MOST = 512  # tasks per batch at most (a batch's outcomes come back in pieces anyway)
OVERHEAD_BYTES = 64 * 1024  # a task's own cost, as bytes of document it weighs like
SMOOTHING = 0.3  # weight of the newest batch in the estimates
QUEUED_PER_CPU = 2  # remote tasks in flight per cluster CPU: one runs, one waits its turn
MAX_WINDOW = 65_536  # documents claimed at most (a driver's memory; its ceiling is lower)


def weight(size_bytes: int) -> int:
    """A task's weight: its file's bytes and the cost any document has."""
    return max(0, size_bytes) + OVERHEAD_BYTES


@dataclass(slots=True)
class BatchSizer:
    """How much work a batch carries, from the seconds finished batches took (an
    exponential average of seconds per unit of weight, and of a task's weight)."""

    target_s: float = TARGET_S
    first: int = FIRST_SIZE
    most: int = MOST
    s_per_unit: float | None = None
    units_per_task: float | None = None

    def observe(self, busy_s: float, tasks: int, units: int) -> None:
        """A batch of ``tasks`` tasks weighing ``units`` kept its worker ``busy_s``."""
        if tasks <= 0 or units <= 0 or busy_s <= 0 or not math.isfinite(busy_s):
            return
        rate = busy_s / units
        self.s_per_unit = rate if self.s_per_unit is None else (
            self.s_per_unit + SMOOTHING * (rate - self.s_per_unit)
        )
        mean = units / tasks
        self.units_per_task = mean if self.units_per_task is None else (
            self.units_per_task + SMOOTHING * (mean - self.units_per_task)
        )

    @property
    def budget(self) -> float | None:
        """Units of weight a batch gathers (None: no batch has finished yet, so a batch
        is ``first`` tasks)."""
        if self.s_per_unit is None:
            return None
        return self.target_s / max(self.s_per_unit, 1e-12)

    @property
    def size(self) -> int:
        """Tasks of a typical weight in a full batch (what the in-flight window is
        counted in)."""
        budget = self.budget
        if budget is None or not self.units_per_task:
            return self.first
        return max(1, min(self.most, round(budget / self.units_per_task)))

    def take(self, weights: Iterable[int], pending: int, total: int, cpus: int) -> int:
        """How many of the ``pending`` tasks (their ``weights`` in order, ``total`` of
        them all) the next batch takes on a cluster of ``cpus`` CPUs: about ``target_s``
        of work, at least one task, at most :attr:`most`. Once less than half a batch a
        CPU is waiting (the ledger runs dry: the end of a run), a batch takes a CPU's
        share of it, so the last work spreads over the cluster instead of piling on one
        worker."""
        if pending <= 0:
            return 0
        cpus = max(1, cpus)
        budget = self.budget
        if budget is None:
            return max(1, min(self.first, pending))
        if total < budget * cpus / 2:
            budget = total / cpus
        gathered = 0
        n = 0
        for n, w in enumerate(weights, start=1):
            gathered += w
            if gathered >= budget or n >= self.most:
                return n
        return max(1, n)


def window_batches(cpus: float) -> int:
    """Batches' worth of documents the runner keeps claimed: those in flight, and one a
    CPU waiting here, so the next batch is always at hand."""
    return batches_in_flight(cpus) + max(1, math.floor(cpus))


def batches_in_flight(cpus: float) -> int:
    """Remote tasks kept in flight for a cluster of ``cpus`` CPUs (at least one)."""
    return max(1, QUEUED_PER_CPU * math.floor(cpus))


def goes_alone(task: Task, suspects: Iterable[int] | set[int]) -> bool:
    """A page range, or a document that once timed out, ran out of memory or crashed,
    is a batch of its own."""
    return task.page_range is not None or task.doc_id in suspects


def on_this_machine(node_addresses: Iterable[str], local_addresses: Iterable[str]) -> bool:
    """Every node's address is one of this machine's (a loopback address counts): its
    workers read the same files as the driver."""
    local = set(local_addresses)
    return all(addr in local or addr.startswith("127.") or addr == "::1" for addr in node_addresses)
