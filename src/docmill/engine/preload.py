"""The forkserver the worker processes are forked from, started as early as a run can.

Workers are forked from one forkserver that has imported what every worker needs for
the common case (PDF text), instead of importing it in each new worker (~35 ms of
imports per worker, paid again at every recycle). Starting it is cheap for the caller
and does not wait: the CLI starts it as soon as a run's settings are read, so it
imports on the other core while the driver imports its own modules (~90 ms) and reads
the ledger. This module imports nothing of docmill's.
"""

from __future__ import annotations

WORKER_PRELOAD = (
    "docmill.engine.worker",
    "pypdfium2",
    "docmill.processors.pdf.text",
    "encodings.utf_16_le",  # PDFium's text comes as UTF-16LE
)


def start_forkserver() -> None:
    """Start the forkserver with ``WORKER_PRELOAD`` if it is not running (no waiting
    for its imports)."""
    import multiprocessing
    from multiprocessing import forkserver

    multiprocessing.get_context("forkserver").set_forkserver_preload(list(WORKER_PRELOAD))
    forkserver.ensure_running()
