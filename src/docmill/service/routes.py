"""The ``/v1`` routes: one synchronous document, and jobs with their documents.

Every route takes the ``caller`` dependency; a job of another owner is answered 404,
exactly as a job that does not exist. Blocking work (SQLite, files) runs in the
thread pool; parsing runs only in worker processes.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

from docmill.service.deps import LOCAL_CALLER, Caller, current_caller
from docmill.service.errors import ApiError
from docmill.service.extract import ExtractBusy
from docmill.service.jobrunner import job_progress
from docmill.service.jobs import Job, new_job_id
from docmill.service.multipart import read_form
from docmill.service.overrides import (
    EXTRACT_KEYS,
    JOB_KEYS,
    ExtractChoice,
    Maxima,
    SettingRefused,
    extract_choice,
    job_deliveries,
    job_overrides,
    settings_object,
)
from docmill.service.public import PublicNames, names_for
from docmill.service.retention import retry_refusal
from docmill.service.state import Services, services
from docmill.service.uploads import (
    MB,
    check_root,
    check_store_url,
    check_url,
    download,
)
from docmill.service.views import job_view, outcome_json, record_view
from docmill.sources.urls import is_remote
from docmill.state import Store, StoreError
from docmill.state.browse import LedgerReader

router = APIRouter(prefix="/v1")
CallerDep = Annotated[Caller, Depends(current_caller)]
ServicesDep = Annotated[Services, Depends(services)]

EXPORT_TYPES = {"jsonl": "application/x-ndjson", "csv": "text/csv", "parquet": "application/vnd.apache.parquet"}


# --- per-request settings (the policy: service/overrides.py) ------------------------------


def _maxima(svc: Services, caller: Caller) -> Maxima:
    """What the caller's tier permits; the local caller: the server's own settings."""
    if caller.tier == LOCAL_CALLER.tier:
        return Maxima.of(None, svc.settings)
    tier = svc.tiers.get(caller.tier)
    if tier is None:
        raise ApiError(403, "unknown_tier", f"the key's tier {caller.tier!r} is not configured")
    return Maxima.of(tier, svc.settings)


def job_settings(raw: Any, caller: Caller, svc: Services) -> dict[str, Any]:
    """A job's ``settings`` (JSON object or form text) as the overrides it runs with; 422
    naming the setting (and its maximum) when refused."""
    try:
        return job_overrides(settings_object(raw), _maxima(svc, caller), svc.settings)
    except SettingRefused as exc:
        raise ApiError(exc.status, exc.code, exc.message, exc.details) from None


def deliveries_of(raw: Any, svc: Services) -> list[str]:
    """The deliveries a job names (``service.allowed_deliveries``); 403 naming one the
    server does not offer."""
    try:
        return job_deliveries(raw, svc.settings.service.allowed_deliveries)
    except SettingRefused as exc:
        raise ApiError(exc.status, exc.code, exc.message, exc.details) from None


def extract_overrides(raw: Any, caller: Caller, svc: Services) -> ExtractChoice:
    """An extract's ``settings`` form field as what it runs with; 422 as for jobs."""
    try:
        return extract_choice(settings_object(raw), _maxima(svc, caller), svc.settings)
    except SettingRefused as exc:
        raise ApiError(exc.status, exc.code, exc.message, exc.details) from None


# --- one document ----------------------------------------------------------------------

EXTRACT_DOC = (
    "Parse one small document now and answer its record: `text` per page, `pages`, "
    "`metadata`, `text_source`; with `extract.tables` its `tables` (each `page`, `bbox`, "
    "`rows` of cell text, `header_rows`), with `output.markdown` its `markdown`. The "
    "optional form field `settings` is a JSON object of per-request settings, each within "
    "the key's tier (else 422 naming the setting and its maximum): "
    + ", ".join(f"`{k}`" for k in EXTRACT_KEYS)
    + '. `pages` is "N" or "N-M" (1-based, inclusive): `text` then holds those pages only, '
    "and `page_range` (zero-based, half-open) says which, unless they are the whole document; "
    "without it the document "
    "may have at most `service.extract_max_pages` pages (and the tier's `max_pages`), else 413. "
    'Example: `settings={"extract.tables": true, "pages": "1-3"}`.'
)
SETTINGS_FIELD_DOC = 'a JSON object, e.g. {"extract.tables": true, "output.markdown": true, "pages": "1-3"}'

EXTRACT_BODY: dict[str, Any] = {
    "required": True,
    "content": {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "required": ["file"],
                "properties": {
                    "file": {"type": "string", "format": "binary"},
                    "settings": {"type": "string", "description": SETTINGS_FIELD_DOC},
                },
            }
        }
    },
}


@router.post(
    "/extract", summary="Extract one small document synchronously (tables, Markdown)",
    description=EXTRACT_DOC, openapi_extra={"requestBody": EXTRACT_BODY},
    response_model=dict[str, Any],  # documented as before; answered as the JSON bytes below
)
async def extract(request: Request, caller: CallerDep, svc: ServicesDep) -> Response:
    s = svc.settings.service
    max_bytes = int(s.extract_max_mb * MB)
    missing = ApiError(422, "invalid_request", "send the document as multipart field 'file'",
                       [{"loc": ["body", "file"], "msg": "Field required", "type": "missing"}])
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise missing
    folder = svc.ledger.data_dir / "tmp" / uuid.uuid4().hex  # made with its file (read_form)
    try:
        form = await read_form(request, folder, max_file_bytes=max_bytes, max_files=1)
        if not form.files:
            raise missing
        saved = form.files[0]
        try:
            choice = extract_overrides(form.fields.get("settings"), caller, svc)
            future = svc.extract.submit(str(saved.path), choice)
        except ExtractBusy as exc:
            raise ApiError(503, "busy", str(exc), headers={"Retry-After": "1"}) from None
        outcome = await asyncio.wrap_future(future)
    finally:
        await run_in_threadpool(shutil.rmtree, folder, True)
    if choice.page_range is None and outcome.pages and outcome.pages > choice.max_pages:
        raise ApiError(
            413, "too_many_pages",
            f"the document has {outcome.pages} pages, over {choice.max_pages}: "
            "send settings.pages or submit a job",
            {"pages": outcome.pages, "limit": choice.max_pages},
        )
    if choice.page_range is not None and outcome.pages and choice.page_range.start >= outcome.pages:
        raise ApiError(422, "invalid_settings", f"pages: the document has {outcome.pages} pages",
                       {"setting": "pages", "pages": outcome.pages})
    category = str(outcome.error.category) if outcome.error else None
    svc.metrics.document(str(outcome.status), "extract", outcome.pages, category)
    # the worker's JSON spliced in as it is: no decoding, copying or re-encoding here
    return Response(outcome_json(outcome, saved.name), media_type="application/json")


# --- jobs --------------------------------------------------------------------------------


def _owned(svc: Services, caller: Caller, job_id: str) -> Job:
    job = svc.ledger.get(job_id, caller.key_id)
    if job is None:
        raise ApiError(404, "job_not_found", f"no job {job_id}")
    return job


def _names(svc: Services, job: Job) -> PublicNames:
    """How this job's documents, source and errors are named to its owner."""
    ledger = svc.ledger
    roots = svc.settings.service.allowed_roots
    return names_for(job, ledger.upload_dir(job.id), ledger.data_dir, roots)


def _view(svc: Services, job: Job, progress: dict[str, Any]) -> dict[str, Any]:
    now = time.time()
    refusal = retry_refusal(job, svc.ledger, svc.settings.service.upload_retention_h, now)
    return job_view(job, progress, now, _names(svc, job), retry=refusal)


JobSource = tuple[str, list[str], str, dict[str, Any], list[str]]  # kind, sources, text, settings, deliveries


async def _from_uploads(svc: Services, request: Request, job_id: str, caller: Caller) -> JobSource:
    s = svc.settings.service
    folder = svc.ledger.upload_dir(job_id)
    folder.mkdir(parents=True)
    try:
        form = await read_form(
            request, folder, max_file_bytes=int(s.max_upload_mb * MB), max_files=s.max_files
        )
        if not form.files:
            raise ApiError(422, "no_files", "send the documents as multipart field 'files'")
        overrides = job_settings(form.fields.get("settings"), caller, svc)
        deliveries = deliveries_of(form.fields.get("deliveries"), svc)
    except BaseException:
        await run_in_threadpool(shutil.rmtree, folder, True)
        raise
    n = len(form.files)
    described = "1 uploaded file" if n == 1 else f"{n:,} uploaded files"
    return "upload", [str(folder)], described, overrides, deliveries


def _check_store_source(source: str, allowed: tuple[str, ...]) -> str:
    """A store URL on ``service.allowed_sources`` whose scheme docmill can read (no request)."""
    from docmill.sources import SourceError
    from docmill.sources.discover import check_sources

    url = check_store_url(source, allowed)
    try:
        check_sources([url])
    except SourceError as exc:
        raise ApiError(422, "invalid_source", str(exc)) from None
    return url


async def _from_json(svc: Services, request: Request, job_id: str, caller: Caller) -> JobSource:
    s = svc.settings.service
    try:
        body = await request.json()
    except (ValueError, RecursionError):  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise ApiError(422, "invalid_request", "the body is not JSON") from None
    source = body.get("source") if isinstance(body, dict) else None
    if not isinstance(source, str) or not source:
        raise ApiError(422, "invalid_request", 'send {"source": "path or URL"} or multipart files')
    overrides = job_settings(body.get("settings"), caller, svc)
    deliveries = deliveries_of(body.get("deliveries"), svc)
    if source.startswith(("http://", "https://")):
        checked = await check_url(source, s.allowed_hosts)
        folder = svc.ledger.upload_dir(job_id)
        folder.mkdir(parents=True)
        try:
            await download(checked, folder, int(s.max_upload_mb * MB))
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        return "url", [str(folder)], source, overrides, deliveries
    if is_remote(source):  # a store (s3://, sftp://, gdrive://...): the job's run reads it
        url = await run_in_threadpool(_check_store_source, source, s.allowed_sources)
        return "store", [url], url, overrides, deliveries
    path = await run_in_threadpool(check_root, source, s.allowed_roots)
    return "path", [str(path)], str(path), overrides, deliveries


# POST /v1/jobs reads its body itself (multipart or JSON); this tells OpenAPI clients both
_SETTINGS_DOC = (
    "per-job settings, each within the key's tier (else 422 naming the setting and its "
    "maximum): " + ", ".join(JOB_KEYS) + "; where results are delivered is never a setting "
    "(403 delivery_not_allowed)"
)
_DELIVERIES_DOC = (
    "names of deliveries the server offers (service.allowed_deliveries: the operator's "
    "destinations); any other name is 403 delivery_not_allowed"
)
JOB_BODY: dict[str, Any] = {
    "required": True,
    "content": {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "required": ["files"],
                "properties": {
                    "files": {"type": "array", "items": {"type": "string", "format": "binary"}},
                    "settings": {"type": "string", "description": "a JSON object: " + _SETTINGS_DOC},
                    "deliveries": {"type": "string", "description": "a JSON list: " + _DELIVERIES_DOC},
                },
            }
        },
        "application/json": {
            "schema": {
                "type": "object",
                "required": ["source"],
                "properties": {
                    "source": {"type": "string", "description": "a folder under service.allowed_roots, "
                               "an http(s) URL on service.allowed_hosts, or a store URL (s3://, "
                               "sftp://, gdrive://...) at or below one of service.allowed_sources"},
                    "settings": {"type": "object", "description": _SETTINGS_DOC},
                    "deliveries": {"type": "array", "items": {"type": "string"},
                                   "description": _DELIVERIES_DOC},
                },
            }
        },
    },
}


@router.post(
    "/jobs", status_code=202, summary="Create a job from uploads, a path or a URL",
    openapi_extra={"requestBody": JOB_BODY},
)
async def create_job(request: Request, caller: CallerDep, svc: ServicesDep) -> dict[str, Any]:
    job_id = new_job_id()
    if request.headers.get("content-type", "").startswith("multipart/form-data"):
        kind, sources, description, overrides, deliveries = await _from_uploads(svc, request, job_id, caller)
    else:
        kind, sources, description, overrides, deliveries = await _from_json(svc, request, job_id, caller)
    job = await run_in_threadpool(
        svc.ledger.create, job_id, caller.key_id, kind, sources, description, overrides, deliveries
    )
    return await run_in_threadpool(_view, svc, job, {})  # _view may look at the uploads folder


@router.get("/jobs", summary="The caller's jobs, newest first")
async def list_jobs(
    caller: CallerDep, svc: ServicesDep, limit: Annotated[int, Query(ge=1, le=500)] = 100
) -> dict[str, Any]:
    def page() -> list[dict[str, Any]]:
        return [_view(svc, j, {}) for j in svc.ledger.list(caller.key_id, limit)]

    return {"items": await run_in_threadpool(page)}


def _job_state(svc: Services, caller: Caller, job_id: str) -> dict[str, Any]:
    job = _owned(svc, caller, job_id)
    # counts cached in the job ledger: a finished job's when it ended, a running one's by
    # its runner's heartbeat (every second, once however many clients watch): reading them
    # costs the same at 10 documents as at 1,000,000. Before the first beat: the ledger.
    cached = job.counts and (job.terminal or job.status == "running")
    progress = {} if cached else job_progress(svc.ledger, job.id)
    return _view(svc, job, progress)


@router.get("/jobs/{job_id}", summary="A job's status, counts, rates, ETA and cost")
async def get_job(job_id: str, caller: CallerDep, svc: ServicesDep) -> dict[str, Any]:
    return await run_in_threadpool(_job_state, svc, caller, job_id)


def _reader(svc: Services, job: Job) -> LedgerReader:
    try:
        return LedgerReader.open(svc.ledger.job_dir(job.id))
    except StoreError:
        raise ApiError(409, "not_started", "the job has not started yet") from None


def _documents(
    svc: Services, caller: Caller, job_id: str, status: str | None, label: str | None,
    q: str | None, cursor: str | None, limit: int,
) -> dict[str, Any]:
    job = _owned(svc, caller, job_id)
    after = 0
    if cursor:
        if not cursor.isdigit():
            raise ApiError(422, "invalid_cursor", "cursor must be a next_cursor from a previous page")
        after = int(cursor)
    try:
        reader = _reader(svc, job)
    except ApiError:
        return {"items": [], "next_cursor": None}
    names = _names(svc, job)
    with reader:
        rows = reader.page(
            status=status, label=label, q=q, after=after, limit=limit + 1, skip=names.skip
        )
    items = []
    for row in rows[:limit]:
        item = row.to_dict()
        item["source"] = names.source(row.source)
        items.append(item)
    next_cursor = str(rows[limit - 1].id) if len(rows) > limit else None
    return {"items": items, "next_cursor": next_cursor}


@router.get("/jobs/{job_id}/documents", summary="A page of a job's documents (keyset, by id)")
async def list_documents(
    job_id: str,
    caller: CallerDep,
    svc: ServicesDep,
    status: Annotated[str | None, Query(pattern="^(pending|running|done|failed|skipped)$")] = None,
    label: str | None = None,
    q: Annotated[str | None, Query(max_length=500)] = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    return await run_in_threadpool(_documents, svc, caller, job_id, status, label, q, cursor, limit)


def _document(svc: Services, caller: Caller, job_id: str, doc_id: int) -> dict[str, Any]:
    job = _owned(svc, caller, job_id)
    with _reader(svc, job) as reader:
        record = reader.record(doc_id)
        if record is None:
            raise ApiError(404, "document_not_found", f"no document {doc_id} in job {job_id}")
        spend = reader.spend(doc_id)
    return record_view(record, _names(svc, job), spend)


@router.get("/jobs/{job_id}/documents/{doc_id}", summary="A document's full record")
async def get_document(job_id: str, doc_id: int, caller: CallerDep, svc: ServicesDep) -> dict[str, Any]:
    return await run_in_threadpool(_document, svc, caller, job_id, doc_id)


def _export_file(svc: Services, job: Job, fmt: str) -> Path:
    from docmill.outputs.export import export_records

    folder = svc.ledger.job_dir(job.id) / "exports"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"export-{uuid.uuid4().hex}.{fmt}"
    names = _names(svc, job)
    with _reader(svc, job) as reader:
        export_records(map(names.record, reader.iter_records()), fmt, path)
    return path


def _stream_file(path: Path) -> Iterator[bytes]:
    try:
        with open(path, "rb") as handle:
            while chunk := handle.read(256 * 1024):
                yield chunk
    finally:
        path.unlink(missing_ok=True)


@router.get("/jobs/{job_id}/export", summary="The job's records as one JSONL, CSV or Parquet file")
async def export(
    job_id: str,
    caller: CallerDep,
    svc: ServicesDep,
    format: Annotated[str, Query(pattern="^(jsonl|csv|parquet)$")] = "jsonl",
) -> StreamingResponse:
    job = await run_in_threadpool(_owned, svc, caller, job_id)
    path = await run_in_threadpool(_export_file, svc, job, format)
    return StreamingResponse(
        _stream_file(path),
        media_type=EXPORT_TYPES[format],
        headers={"Content-Disposition": f'attachment; filename="{job.id}.{format}"'},
    )


def _cancel(svc: Services, caller: Caller, job_id: str) -> dict[str, Any]:
    job = _owned(svc, caller, job_id)
    if job.terminal:
        raise ApiError(409, "job_finished", f"the job is already {job.status}")
    updated = svc.ledger.request_cancel(job.id)
    assert updated is not None
    return _view(svc, updated, job_progress(svc.ledger, job.id))


@router.post("/jobs/{job_id}/cancel", status_code=202, summary="Stop a job (in-flight documents finish)")
async def cancel(job_id: str, caller: CallerDep, svc: ServicesDep) -> dict[str, Any]:
    return await run_in_threadpool(_cancel, svc, caller, job_id)


def _retry(svc: Services, caller: Caller, job_id: str) -> dict[str, Any]:
    job = _owned(svc, caller, job_id)
    refusal = retry_refusal(job, svc.ledger, svc.settings.service.upload_retention_h, time.time())
    if refusal is not None:  # the same answer the job's can_retry gave
        raise refusal.error()
    folder = svc.ledger.job_dir(job.id)
    if (folder / "docmill.db").exists():
        store = Store.open(folder)
        try:
            store.retry_failed()
            store.deliveries.retry()  # failed deliveries are tried again too
        finally:
            store.close()
    if not svc.ledger.requeue(job.id):
        raise ApiError(409, "job_active", "the job changed state; try again")
    updated = svc.ledger.get(job.id)
    assert updated is not None
    return _view(svc, updated, job_progress(svc.ledger, job.id))


@router.post("/jobs/{job_id}/retry", status_code=202, summary="Failed documents and deliveries again; a cancelled job resumes")
async def retry(job_id: str, caller: CallerDep, svc: ServicesDep) -> dict[str, Any]:
    return await run_in_threadpool(_retry, svc, caller, job_id)


@router.get("/jobs/{job_id}/events", summary="Server-sent progress snapshots every second until the job ends")
async def events(job_id: str, request: Request, caller: CallerDep, svc: ServicesDep) -> StreamingResponse:
    await run_in_threadpool(_owned, svc, caller, job_id)

    async def stream() -> AsyncIterator[str]:
        while True:
            state = await run_in_threadpool(_job_state, svc, caller, job_id)
            yield f"event: progress\ndata: {json.dumps(state)}\n\n"
            if state["status"] in ("done", "failed", "cancelled"):
                yield f"event: end\ndata: {json.dumps({'status': state['status']})}\n\n"
                return
            if await request.is_disconnected():
                return
            await asyncio.sleep(1.0)

    return StreamingResponse(stream(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})
