"""The worker process: receive a task, process it, send the outcome back, repeat.

The worker ignores SIGINT (the driver decides how a Ctrl-C drains) and sets an
address-space limit as a backstop; the real limits (wall clock and resident memory)
are enforced from outside by :mod:`docmill.engine.pool`, which kills this process.
"""

from __future__ import annotations

import resource
import signal
from multiprocessing.connection import Connection
from typing import Any

from docmill.processors import process_task

STAGE_BYTES = 32


def worker_main(conn: Connection, address_space_bytes: int, stage: Any) -> None:
    """``stage`` is a shared ``c_char`` array: the name of the stage being run, written
    here and read by the driver only when it has to kill this worker (no message)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if address_space_bytes > 0:
        try:
            resource.setrlimit(resource.RLIMIT_AS, (address_space_bytes, address_space_bytes))
        except (ValueError, OSError):
            pass
    while True:
        try:
            task = conn.recv()
        except (EOFError, OSError):
            return
        if task is None:
            return
        def on_stage(name: str) -> None:
            stage.value = name.encode("ascii", "replace")[: STAGE_BYTES - 1]

        outcome = process_task(task, on_stage)
        outcome.seal()  # encoded here, once: the driver passes the bytes on
        try:
            conn.send(outcome)
        except (BrokenPipeError, OSError):
            return
