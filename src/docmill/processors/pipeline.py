"""One task, start to end, inside a worker: sniff the type, pick an extractor, run it.

Every exception is caught here, at the stage boundary, and turned into a failure
category: nothing a document does escapes as an exception.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field

from docmill.model import FailureCategory, PageRange, ProcessOutcome
from docmill.processors.registry import (
    ExtractOptions,
    ExtractRequest,
    builtin_extractors,
    supported_names,
)
from docmill.sources.filetype import EMPTY, sniff


@dataclass(frozen=True, slots=True)
class Task:
    """A unit of work sent to a worker: a document, or a page range of one."""

    task_id: int
    doc_id: int
    path: str
    page_range: PageRange | None
    max_file_bytes: int
    options: ExtractOptions = field(default_factory=ExtractOptions)


def classify_exception(exc: BaseException) -> FailureCategory:
    if isinstance(exc, MemoryError):
        return FailureCategory.MEMORY
    if isinstance(exc, FileNotFoundError | PermissionError | IsADirectoryError):
        return FailureCategory.IO
    if isinstance(exc, RecursionError):
        return FailureCategory.CORRUPT
    return FailureCategory.ERROR


def _no_report(_stage: str) -> None:
    return None


def process_task(task: Task, on_stage: Callable[[str], None] = _no_report) -> ProcessOutcome:
    """Run one task; always returns an outcome.

    ``on_stage`` hears each stage's name as it starts, so that a worker killed from
    outside (timeout, memory) can still say which stage it was in.
    """
    stage = "detect"
    on_stage(stage)
    try:
        size = os.path.getsize(task.path)
        if size > task.max_file_bytes:
            return ProcessOutcome.failure(
                FailureCategory.TOO_LARGE,
                f"file is {size:,} bytes, over run.max_file_mb ({task.max_file_bytes:,} bytes)",
                stage,
            )
        mime = sniff(task.path)
        if mime == EMPTY:
            return ProcessOutcome.failure(FailureCategory.EMPTY, "the file is empty (0 bytes)", stage)
        if task.options.render_only:  # page images, no extraction (the service's page view)
            from docmill.processors.page_images import render_pages

            stage = "render"
            on_stage(stage)
            return render_pages(task.path, mime, ExtractRequest(task.page_range, task.options, on_stage))
        extractor = builtin_extractors().get(mime)
        if extractor is None:
            outcome = ProcessOutcome.failure(
                FailureCategory.UNSUPPORTED,
                f"type {mime} is not processed (detected from content;"
                f" supported: {', '.join(supported_names())})",
                stage,
            )
            outcome.mime = mime
            return outcome
        stage = "extract"
        on_stage(stage)
        request = ExtractRequest(task.page_range, task.options, on_stage)
        return extractor(task.path, request)
    except BaseException as exc:
        if isinstance(exc, KeyboardInterrupt | SystemExit):
            raise
        message = f"{type(exc).__name__}: {exc}"[:500]
        return ProcessOutcome.failure(classify_exception(exc), message, stage)
