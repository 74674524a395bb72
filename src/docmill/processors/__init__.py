"""Processors: what turns one document (or a page range of it) into an outcome.

Processors run inside the engine's worker processes. They never raise for a bad
document: every failure is returned as data (:class:`docmill.model.ProcessOutcome`).
"""

from docmill.processors.pipeline import Task, process_task
from docmill.processors.registry import ExtractOptions, ExtractRequest, known_kinds

# What every worker needs for the common case (PDF text), imported once where workers
# are forked from (the engine's forkserver) instead of in each new worker: ~35 ms of
# imports per worker otherwise, paid again at every recycle.
WORKER_PRELOAD = (
    "pypdfium2",
    "docmill.processors.pdf_text",
    "_strptime",  # PDF dates (datetime.strptime)
    "encodings.utf_16_le",  # PDFium's text comes as UTF-16LE
)

__all__ = [
    "WORKER_PRELOAD", "ExtractOptions", "ExtractRequest", "Task", "known_kinds", "process_task",
]
