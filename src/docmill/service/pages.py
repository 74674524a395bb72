"""``GET /v1/jobs/{id}/documents/{doc}/pages/{n}.png``: one page of a PDF as an image.

What the dashboard draws a document's tables over. The page is rendered on demand by
the extract service's supervised workers (``service/extract.py``: timeout, memory cap,
crash isolation), so a hostile PDF only costs a worker; the event loop never touches
PDFium. The image and the page's size are cached in the job's folder
(``pages/{doc}/{sha256 prefix}-{n}-{dpi}.png`` with a ``.json`` beside it), so a page is
drawn once per resolution; the cache goes with the job's uploads
(``service/retention.py``).

``n`` counts from 0, like the record's ``text`` entries and a table's ``page``. The
answer's headers give the page's displayed size in PDF points (``X-Page-Width-Pt``,
``X-Page-Height-Pt``: the frame of a table's ``bbox``), the document's ``X-Page-Count``,
the resolution drawn (``X-Page-Dpi``, lower than asked for a page over the pixel cap)
and ``X-Page-Cache`` (``hit`` | ``miss``).
"""

from __future__ import annotations

import asyncio
import json
import os
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from fastapi import Path as PathParam
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from docmill.model import FailureCategory, ProcessOutcome, Record
from docmill.service.deps import Caller, current_caller
from docmill.service.errors import ApiError
from docmill.service.extract import ExtractBusy
from docmill.service.jobs import Job
from docmill.service.retention import PAGES_DIR, source_refusal
from docmill.service.state import Services, services
from docmill.sources.confine import Roots
from docmill.sources.filetype import PDF
from docmill.state import StoreError
from docmill.state.browse import LedgerReader

router = APIRouter(prefix="/v1")
CallerDep = Annotated[Caller, Depends(current_caller)]
ServicesDep = Annotated[Services, Depends(services)]

DPIS = (72, 100, 150, 200)  # the resolutions offered: a page has at most this many images cached
PNG_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {"content": {"image/png": {}}, "description": "the page as a grey PNG"},
}


@dataclass(frozen=True, slots=True)
class PageImage:
    png: bytes
    size: dict[str, Any]  # page, width, height (points), dpi, pages
    cached: bool

    def response(self) -> Response:
        headers = {
            "X-Page-Width-Pt": str(self.size["width"]),
            "X-Page-Height-Pt": str(self.size["height"]),
            "X-Page-Count": str(self.size["pages"]),
            "X-Page-Dpi": str(self.size["dpi"]),
            "X-Page-Cache": "hit" if self.cached else "miss",
            "Cache-Control": "private, max-age=3600",
        }
        return Response(self.png, media_type="image/png", headers=headers)


@dataclass(frozen=True, slots=True)
class _Cache:
    png: Path
    meta: Path

    def read(self) -> PageImage | None:
        try:  # the .json is written last: with it there, the image is whole
            size = json.loads(self.meta.read_text())
            return PageImage(self.png.read_bytes(), size, cached=True)
        except (OSError, ValueError):
            return None

    def write(self, png: bytes, size: dict[str, Any]) -> None:
        self.png.parent.mkdir(parents=True, exist_ok=True)
        for path, data in ((self.png, png), (self.meta, json.dumps(size).encode())):
            tmp = path.with_name(f".{uuid.uuid4().hex}.tmp")
            tmp.write_bytes(data)
            os.replace(tmp, path)


def _owned(svc: Services, caller: Caller, job_id: str) -> Job:
    job = svc.ledger.get(job_id, caller.key_id)
    if job is None:  # another owner's job reads exactly as a job that does not exist
        raise ApiError(404, "job_not_found", f"no job {job_id}")
    return job


def _record(svc: Services, job: Job, doc_id: int) -> Record:
    try:
        reader = LedgerReader.open(svc.ledger.job_dir(job.id))
    except StoreError:
        raise ApiError(409, "not_started", "the job has not started yet") from None
    with reader:
        record = reader.record(doc_id)
    if record is None:
        raise ApiError(404, "document_not_found", f"no document {doc_id} in job {job.id}")
    return record


def _not_a_pdf(mime: str) -> ApiError:
    return ApiError(422, "not_a_pdf", f"page images are drawn for PDFs only; this document is {mime}")


def _page_not_found(page: int, pages: int) -> ApiError:
    return ApiError(404, "page_not_found", f"no page {page}: the document has {pages} (counted from 0)",
                    {"pages": pages})


def _prepare(
    svc: Services, caller: Caller, job_id: str, doc_id: int, page: int, dpi: int
) -> tuple[_Cache, PageImage | None, str, tuple[str, ...]]:
    """The checks before drawing: the cache entry, a cached image (or None), the path to
    draw from and the roots the worker must find it in (as the job's run did)."""
    job = _owned(svc, caller, job_id)
    record = _record(svc, job, doc_id)
    if record.error is not None and record.error.category is FailureCategory.NOT_ALLOWED:
        raise ApiError(403, "not_allowed", "the job did not read this document (it leads outside its folder)")
    roots = Roots.of_sources(job.sources).real
    if record.mime not in (PDF, None):  # None (failed before its type was known): the worker sniffs
        raise _not_a_pdf(record.mime)
    if record.pages is not None and page >= record.pages:
        raise _page_not_found(page, record.pages)
    refusal = source_refusal(job, svc.ledger, svc.settings.service.upload_retention_h, time.time())
    if refusal is not None:
        raise refusal.error()
    folder = svc.ledger.job_dir(job.id) / PAGES_DIR / str(record.id)
    stem = f"{(record.sha256 or 'unhashed')[:16]}-{page}-{dpi}"  # a changed source misses
    cache = _Cache(folder / f"{stem}.png", folder / f"{stem}.json")
    cached = cache.read()
    if cached is not None:
        return cache, cached, record.source, roots
    try:
        size = os.stat(record.source).st_size
    except OSError:
        raise ApiError(410, "source_gone", "the document's file is no longer where the job read it") from None
    if size != record.size:
        raise ApiError(409, "source_changed", "the document's file changed since the job read it; retry the job")
    return cache, None, record.source, roots


def _finish(cache: _Cache, outcome: ProcessOutcome, page: int) -> PageImage:
    if outcome.error is not None and outcome.error.category is FailureCategory.UNSUPPORTED:
        raise _not_a_pdf(outcome.mime or "of another type")
    if outcome.error is not None:
        raise ApiError(422, "render_failed", f"the page could not be drawn: {outcome.error.message}",
                       {"category": str(outcome.error.category)})
    pages = outcome.pages or 0
    sizes = outcome.opened().metadata.get("page_sizes") or []
    if not outcome.images or not sizes:
        raise _page_not_found(page, pages)
    size = {**sizes[0], "pages": pages}
    png = outcome.images[0][1]
    cache.write(png, size)
    return PageImage(png, size, cached=False)


@router.get(
    "/jobs/{job_id}/documents/{doc_id}/pages/{page}.png",
    summary="A page of a PDF document as a PNG (its size in points in the headers)",
    response_class=Response, responses=PNG_RESPONSE,
)
async def page_image(
    job_id: str,
    doc_id: int,
    page: Annotated[int, PathParam(ge=0, description="0-based, like a table's page")],
    caller: CallerDep,
    svc: ServicesDep,
    dpi: Annotated[int, Query(description=f"one of {', '.join(map(str, DPIS))}")] = 100,
) -> Response:
    if dpi not in DPIS:
        raise ApiError(422, "invalid_dpi", f"dpi must be one of {', '.join(map(str, DPIS))}", {"dpi": dpi})
    cache, cached, source, roots = await run_in_threadpool(_prepare, svc, caller, job_id, doc_id, page, dpi)
    if cached is not None:
        svc.metrics.page_images.labels(source="cached").inc()
        return cached.response()
    try:
        future = svc.extract.render(source, page, dpi, roots)
        outcome = await asyncio.wrap_future(future)
    except ExtractBusy as exc:  # the queue is full, or the service is stopping
        raise ApiError(503, "busy", str(exc), headers={"Retry-After": "1"}) from None
    image = await run_in_threadpool(_finish, cache, outcome, page)
    svc.metrics.page_images.labels(source="rendered").inc()
    return image.response()
