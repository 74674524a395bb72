"""The worker process: receive a task, process it, send the outcome back, repeat.

The worker ignores SIGINT (the driver decides how a Ctrl-C drains), asks the kernel to
kill it when the forkserver that forked it exits (its driver, or the Ray worker that
ran its batch, is gone: no orphan goes on parsing) and sets an address-space limit as a
backstop; the real limits (wall clock and resident memory) are enforced from outside by
:mod:`docmill.engine.pool`, which kills this process.

What crosses the pipe is plain values (tuples, strings, numbers, bytes), pickled with
the plain pickler: cheap on both sides, the driver's above all. A task goes as
:func:`task_message` (its options only when they differ from the last ones this worker
got: they are the same for every task of a run), an outcome as
:meth:`ProcessOutcome.to_wire`; ``None`` asks the worker to exit.
"""

from __future__ import annotations

import os
import pickle
import resource
import signal
import sys
from multiprocessing.connection import Connection
from typing import Any

from docmill.model import PageRange
from docmill.processors import ExtractOptions, Task, process_task

STAGE_BYTES = 32
PR_SET_PDEATHSIG = 1


def task_message(task: Task, with_options: bool) -> tuple[Any, ...]:
    """``task`` as plain values; its options only ``with_options`` (None: the last ones)."""
    rng = task.page_range
    return (
        task.task_id,
        task.doc_id,
        task.path,
        (rng.start, rng.stop) if rng is not None else None,
        task.max_file_bytes,
        task.options if with_options else None,
    )


def read_task(message: tuple[Any, ...], options: ExtractOptions) -> Task:
    """The task of a :func:`task_message`; ``options`` when the message has none."""
    task_id, doc_id, path, rng, max_file_bytes, sent = message
    return Task(
        task_id=task_id,
        doc_id=doc_id,
        path=path,
        page_range=PageRange(rng[0], rng[1]) if rng is not None else None,
        max_file_bytes=max_file_bytes,
        options=options if sent is None else sent,
    )


def _die_with_parent() -> None:
    """Linux: SIGKILL this process when its parent (the forkserver) exits."""
    if not sys.platform.startswith("linux"):
        return
    parent = os.getppid()
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # the parent died before the request was made
        os._exit(1)


def worker_main(conn: Connection, address_space_bytes: int, stage: Any) -> None:
    """``stage`` is a shared ``c_char`` array: the name of the stage being run, written
    here and read by the driver only when it has to kill this worker (no message)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _die_with_parent()
    if address_space_bytes > 0:
        try:
            resource.setrlimit(resource.RLIMIT_AS, (address_space_bytes, address_space_bytes))
        except (ValueError, OSError):
            pass
    options = ExtractOptions()

    def on_stage(name: str) -> None:
        stage.value = name.encode("ascii", "replace")[: STAGE_BYTES - 1]

    while True:
        try:
            message = pickle.loads(conn.recv_bytes())
        except (EOFError, OSError):
            return
        if message is None:
            return
        task = read_task(message, options)
        options = task.options
        outcome = process_task(task, on_stage)
        outcome.seal()  # encoded here, once: the driver passes the bytes on
        try:
            conn.send_bytes(pickle.dumps(outcome.to_wire(), pickle.HIGHEST_PROTOCOL))
        except (BrokenPipeError, OSError):
            return
