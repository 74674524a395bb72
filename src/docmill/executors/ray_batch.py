"""What runs inside a Ray worker: one batch of tasks, through the same supervised worker
process as a local run.

The Ray worker does not parse anything itself. It starts a one-process
:class:`~docmill.engine.pool.WorkerPool` (forked from a forkserver that has imported the
PDF modules, started once per Ray worker process) and feeds it the batch, so every
limit is enforced exactly as locally: past ``run.timeout_s`` the child is killed
(``timeout``), over ``run.memory_mb`` of resident memory (``memory``), a child that dies
is a ``crash``; a task queued behind a killed one is sent again inside the batch,
uncounted. Ray's own node-level memory monitor never has to step in.

The batch is a generator (a Ray streaming task): it yields ``[]`` as it starts (from
then on the driver's watchdog counts its time), then lists of ``(task_id, outcome)``
at most every :data:`YIELD_EVERY_S` and at its end, so the driver commits as work
finishes and knows, if the worker or its node dies, which tasks were done. An outcome is
:meth:`ProcessOutcome.to_wire`; ``None`` says this node cannot read the task's path
(the driver ships the bytes instead, uncounted).

This module imports neither Ray nor anything that needs it: Ray pickles
:func:`run_batch` by reference and every node imports it from its own docmill.
"""

from __future__ import annotations

import importlib.machinery
import os
import shutil
import sys
import tempfile
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

from docmill.engine.pool import PoolLimits, WorkerPool
from docmill.engine.preload import start_forkserver
from docmill.engine.worker import read_task
from docmill.processors import ExtractOptions, Task

YIELD_EVERY_S = 0.25  # outcomes gathered this long travel back together
POLL_S = 0.05

# (task message without options, index of its shipped bytes among the payloads or -1,
#  whether to check that this node sees the path)
Item = tuple[tuple[Any, ...], int, bool]
Answer = tuple[int, tuple[Any, ...] | None]


def run_batch(
    limits: tuple[float, int, int],
    options: ExtractOptions,
    items: list[Item],
    *payloads: bytes,
) -> Iterator[list[Answer]]:
    """Process ``items`` in order through one supervised worker process; yields lists
    of answers (see the module's docstring). ``payloads`` are shipped documents' bytes
    (Ray resolves them from the object store before the batch starts)."""
    yield []
    answers: list[Answer] = []
    todo: deque[Task] = deque()
    scratch: str | None = None
    # a shipped file was read by the driver inside its roots: this copy is read as is
    shipped_options = replace(options, confine_roots=())
    for message, index, check in items:
        task = read_task(message, options)
        if index >= 0:
            if scratch is None:
                scratch = tempfile.mkdtemp(prefix="docmill-ray-")
            task = replace(
                task, path=_write(scratch, task, payloads[index]), options=shipped_options
            )
        elif check and not os.path.exists(task.path):
            answers.append((task.task_id, None))
            continue
        todo.append(task)
    _spare_children_the_main_script()
    pool = WorkerPool(1, PoolLimits(*limits))
    try:
        pool.start()
        last = time.monotonic()
        while todo or pool.busy:
            while pool.idle and todo:
                pool.submit(todo.popleft())
            for task, outcome in pool.poll(POLL_S):
                answers.append((task.task_id, outcome.to_wire()))
            todo.extendleft(reversed(pool.take_returned()))
            now = time.monotonic()
            if answers and now - last >= YIELD_EVERY_S:
                yield answers
                answers, last = [], now
        if answers:
            yield answers
    finally:
        pool.shutdown(kill=True)
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)


def run_batch_whole(
    limits: tuple[float, int, int],
    options: ExtractOptions,
    items: list[Item],
    *payloads: bytes,
) -> tuple[float, list[Answer]]:
    """:func:`run_batch` for a driver that cannot stream (Ray Client, ``ray://``): the
    seconds the batch took and all its answers, at its end."""
    started = time.monotonic()
    answers = [a for part in run_batch(limits, options, items, *payloads) for a in part]
    return time.monotonic() - started, answers


def warm_up() -> None:
    """Make a Ray worker ready for batches before the first one comes: its forkserver
    started (PDFium and the PDF modules imported once, ~0.3 s) while the driver still
    enumerates and hashes."""
    _spare_children_the_main_script()
    start_forkserver()


def _spare_children_the_main_script() -> None:
    """multiprocessing runs its parent's main script again in every child it starts (to
    find what was defined there). A Ray worker's is Ray's ``default_worker.py``, which
    imports Ray: ~0.4 s and ~100 MB in every child, for nothing (the child runs
    :func:`~docmill.engine.worker.worker_main`). A main module known by the name
    ``__main__`` is one a child leaves alone, so the script is given that name."""
    main = sys.modules.get("__main__")
    if main is None or getattr(main, "__spec__", None) is not None:
        return
    if getattr(main, "__file__", None):
        main.__spec__ = importlib.machinery.ModuleSpec("__main__", None)


def _write(scratch: str, task: Task, data: bytes) -> str:
    """A shipped document's bytes as a file under its own name (messages name it)."""
    folder = os.path.join(scratch, str(task.task_id))
    os.mkdir(folder)
    path = os.path.join(folder, os.path.basename(task.path) or "document")
    with open(path, "wb") as handle:
        handle.write(data)
    return path
