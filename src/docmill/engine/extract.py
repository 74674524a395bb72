"""``docmill.extract``: one document to one typed record, the other direction of
``docmill.run`` (no output folder, no ledger).

The document is parsed by the engine's :class:`~docmill.engine.pool.WorkerPool` (one
worker, forked from the preloaded forkserver) with the run's limits: past
``run.timeout_s`` it is killed (``timeout``), over ``run.memory_mb`` too (``memory``), a
worker that dies is a ``crash``. Every failure is the record's ``status``/``error``,
never an exception. ``isolated=False`` parses in the calling process instead (faster
for trusted files; no limits). One try; the LLM stage is not run.

A URL (``s3://…``, ``sftp://…``, ``https://…``) is downloaded first through its store's
backend, as a run downloads it (credentials by reference, retries), into a temporary
folder that is removed afterwards; bytes are written there too.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from docmill.engine.pool import PoolLimits, WorkerPool
from docmill.engine.runner import extract_options
from docmill.model import DocState, ErrorInfo, FailureCategory, ProcessOutcome, Record
from docmill.processors import Task
from docmill.settings import Settings, load_settings
from docmill.sources.urls import UrlError, is_remote
from docmill.state.store import timings

__all__ = ["extract"]

BYTES_NAME = "document"  # the temporary file's name for bytes without a name


def extract(
    source: str | os.PathLike[str] | bytes,
    settings: Settings | None = None,
    *,
    isolated: bool = True,
    name: str | None = None,
) -> Record:
    """Parse one document (a path, a URL, or its bytes) into a :class:`Record`.

    ``name`` names bytes in the record's ``source`` (default ``<bytes>``) and gives the
    temporary file its name. The record's ``id`` is 0; ``text``, ``metadata`` and
    ``decoded()`` read its content. Raises only for what is wrong with the call itself
    (bad settings); a document that cannot be read or parsed is a failed record."""
    settings = settings or load_settings()
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="docmill-extract-") as tmp:
        folder = Path(tmp)
        called = ""  # what messages call the file: "" for its own name
        if isinstance(source, bytes | bytearray | memoryview):
            shown = name or "<bytes>"
            path = folder / (os.path.basename(name) if name else BYTES_NAME)
            path.write_bytes(bytes(source))
        else:
            text = os.fspath(source)
            if is_remote(text):
                from docmill.sources.spool import spool_name

                shown, called = text, spool_name(text)
                fetched = _download(text, folder, settings)
                if isinstance(fetched, ErrorInfo):
                    return _failed(shown, fetched, started)
                path = fetched
            else:
                shown = os.path.abspath(text)
                path = Path(shown)
        try:
            with open(path, "rb") as handle:
                digest = hashlib.file_digest(handle, "sha256").hexdigest()
            size = path.stat().st_size
        except OSError as exc:
            error = ErrorInfo(FailureCategory.IO, f"cannot read the file: {exc.strerror or exc}", "read")
            return _failed(shown, error, started)
        options = replace(extract_options(settings), split_pages=1 << 30)  # one document, whole
        task = Task(1, 0, str(path), None, settings.run.max_file_mb * 1024 * 1024, options,
                    name=called)
        outcome = _parse(task, settings) if isolated else _in_process(task)
    outcome.seal()
    return Record(
        id=0, source=shown, sha256=digest, size=size, mime=outcome.mime, status=outcome.status,
        error=outcome.error, pages=outcome.pages, content=outcome.content,
        timings=timings(outcome.parse_s, time.monotonic() - started), attempts=1,
        duplicate_of=None,
    )


def _parse(task: Task, settings: Settings) -> ProcessOutcome:
    """``task`` in one supervised worker with the run's limits."""
    limits = PoolLimits(settings.run.timeout_s, settings.run.memory_mb, settings.run.recycle_after)
    pool = WorkerPool(1, limits)
    pool.start()
    try:
        pool.submit(task)
        while True:
            for _task, outcome in pool.poll(0.05):
                return outcome
            for returned in pool.take_returned():  # its worker was replaced first: again
                pool.submit(returned)
    finally:
        pool.shutdown(kill=True)


def _in_process(task: Task) -> ProcessOutcome:
    from docmill.processors.pipeline import process_task

    return process_task(task)


def _download(url: str, folder: Path, settings: Settings) -> Path | ErrorInfo:
    """``url`` into ``folder`` as a run downloads it (its store's backend, retries)."""
    from docmill.sources.backend import BackendError, Backends
    from docmill.sources.spool import Spool, fetch

    backends = Backends.load(settings.sources)
    try:
        backend, _retrier = backends.for_url(url)
        found = backend.stat(url)
        if found is None:
            return ErrorInfo(FailureCategory.IO, f"{url}: not found", "download")
        spool = Spool(folder / "spool", int(settings.sources.spool_mb * 1024 * 1024))
        result = fetch(backends, spool, 0, url, found.size, found.version,
                       settings.run.max_file_mb * 1024 * 1024)
        if result is None:
            return ErrorInfo(FailureCategory.IO, f"{url}: the download was stopped", "download")
        sha, why = result
        if sha is None:
            return why if isinstance(why, ErrorInfo) else ErrorInfo(FailureCategory.IO, why, "download")
        return spool.path(0, url)
    except (BackendError, UrlError) as exc:
        return ErrorInfo(FailureCategory.IO, backends.secrets.scrub(str(exc)), "download")
    finally:
        backends.close()


def _failed(source: str, error: ErrorInfo, started: float) -> Record:
    return Record(
        id=0, source=source, sha256=None, size=0, mime=None, status=DocState.FAILED, error=error,
        pages=None, content=None, timings=timings(0.0, time.monotonic() - started), attempts=1,
        duplicate_of=None,
    )
