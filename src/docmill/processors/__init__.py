"""Processors: what turns one document (or a page range of it) into an outcome.

Processors run inside the engine's worker processes. They never raise for a bad
document: every failure is returned as data (:class:`docmill.model.ProcessOutcome`).
"""

from docmill.processors.pipeline import Task, process_task
from docmill.processors.registry import ExtractOptions, ExtractRequest, known_kinds

__all__ = [
    "ExtractOptions", "ExtractRequest", "Task", "known_kinds", "process_task",
]
