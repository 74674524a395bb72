"""One task, start to end, inside a worker: sniff the type, pick an extractor, run it.

Every exception is caught here, at the stage boundary, and turned into a failure
category: nothing a document does escapes as an exception.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from docmill.model import FailureCategory, PageRange, ProcessOutcome
from docmill.processors.registry import (
    ExtractOptions,
    ExtractRequest,
    builtin_extractors,
    supported_names,
)
from docmill.sources.confine import NotAllowed, Roots, fd_path
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
    name: str = ""  # what messages call the file ("": the name in ``path``; a download's own)


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

    In a confined run (``options.confine_roots``) the file is opened here, inside its
    root (:meth:`Roots.open`), and the processors read that open file through
    :func:`fd_path`, never the name again. An error message names the file by its name
    only, never its folder.
    """
    if not task.options.confine_roots:
        return _scrubbed(_process(task, task.path, None, on_stage), {task.path: _shown(task)})
    on_stage("detect")
    try:
        fd, real = Roots(task.options.confine_roots).open(task.path)
    except NotAllowed as exc:
        return ProcessOutcome.failure(FailureCategory.NOT_ALLOWED, str(exc), "read")
    except OSError as exc:
        return ProcessOutcome.failure(classify_exception(exc), _message(exc), "read")
    try:
        path = fd_path(fd, real)
        outcome = _process(task, path, os.fstat(fd).st_size, on_stage)
        shown = _shown(task)
        return _scrubbed(outcome, {path: shown, real: shown, task.path: shown})
    finally:
        os.close(fd)


def _shown(task: Task) -> str:
    return task.name or task.path


def _message(exc: BaseException) -> str:
    """``Type: what`` (at most 500 characters); an OS error without its file name."""
    if isinstance(exc, OSError) and exc.strerror:
        return f"{type(exc).__name__}: {exc.strerror}"[:500]
    return f"{type(exc).__name__}: {exc}"[:500]


def _scrubbed(outcome: ProcessOutcome, paths: dict[str, str]) -> ProcessOutcome:
    """``outcome`` with every path of ``paths`` in its error message replaced by the
    file's name (a parser's message may quote the path it was given)."""
    error = outcome.error
    if error is None or not any(p in error.message for p in paths):
        return outcome
    message = error.message
    for path in sorted(paths, key=len, reverse=True):
        message = message.replace(path, os.path.basename(paths[path]))
    outcome.error = replace(error, message=message)
    return outcome


def _process(
    task: Task, path: str, size: int | None, on_stage: Callable[[str], None]
) -> ProcessOutcome:
    stage = "detect"
    on_stage(stage)
    try:
        if size is None:
            size = os.path.getsize(path)
        if size > task.max_file_bytes:
            return ProcessOutcome.failure(
                FailureCategory.TOO_LARGE,
                f"file is {size:,} bytes, over run.max_file_mb ({task.max_file_bytes:,} bytes)",
                stage,
            )
        mime = sniff(path)
        if mime == EMPTY:
            return ProcessOutcome.failure(FailureCategory.EMPTY, "the file is empty (0 bytes)", stage)
        if task.options.render_only:  # page images, no extraction (the service's page view)
            from docmill.processors.pdf.page_images import render_pages

            stage = "render"
            on_stage(stage)
            return render_pages(path, mime, ExtractRequest(task.page_range, task.options, on_stage))
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
        return extractor(path, request)
    except BaseException as exc:
        if isinstance(exc, KeyboardInterrupt | SystemExit):
            raise
        return ProcessOutcome.failure(classify_exception(exc), _message(exc), stage)
