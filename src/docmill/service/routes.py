"""The ``/v1`` routes: one synchronous document, and jobs with their documents.

Every route takes the ``caller`` dependency; a job of another owner is answered 404,
exactly as a job that does not exist. Blocking work (SQLite, files) runs in the
thread pool; parsing runs only in worker processes.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
import shutil
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

from docmill.service.deps import LOCAL_CALLER, Caller, current_caller
from docmill.service.errors import ApiError
from docmill.service.estimates import estimate_job
from docmill.service.extract import ExtractBusy
from docmill.service.jobrunner import job_progress
from docmill.service.jobs import TERMINAL, Job, new_job_id
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
from docmill.service.retention import rerun_refusal, retry_refusal
from docmill.service.specs import PublishedSpec, spec_view
from docmill.service.state import Services, services
from docmill.service.uploads import (
    MB,
    check_root,
    check_store_url,
    check_url,
    download,
)
from docmill.service.usage import period_of, resume_refusal, run_budget
from docmill.service.views import job_view, outcome_json, record_view
from docmill.sources.urls import is_remote
from docmill.state import Store, StoreError
from docmill.state.browse import LedgerReader

if TYPE_CHECKING:
    from docmill.llm.spec import LlmSpec

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
            outcome = await asyncio.wrap_future(future)
        except ExtractBusy as exc:  # the queue is full, or the service is stopping
            raise ApiError(503, "busy", str(exc), headers={"Retry-After": "1"}) from None
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
    llm = svc.settings.llm.budget_usd if job.llm_spec or svc.settings.llm.spec else None
    return job_view(job, progress, now, _names(svc, job), retry=refusal, llm_budget_usd=llm)


@dataclass(frozen=True, slots=True)
class LlmAsk:
    """What a job asks of the LLM stage: a published spec by name, its budget (None: the
    server's ``llm.budget_usd``), and whether it only wants the estimate."""

    spec: str | None = None
    budget_usd: float | None = None
    dry_run: bool = False


@dataclass(frozen=True, slots=True)
class JobSource:
    kind: str  # upload | url | store | path
    sources: list[str]
    description: str
    overrides: dict[str, Any]
    deliveries: list[str]
    llm: LlmAsk = field(default_factory=LlmAsk)


def _flag(raw: Any, name: str) -> bool:
    if raw is None or raw == "" or raw is False:
        return False
    if raw is True or (isinstance(raw, str) and raw.lower() in ("true", "1", "yes", "on")):
        return True
    if isinstance(raw, str) and raw.lower() in ("false", "0", "no", "off"):
        return False
    raise ApiError(422, "invalid_request", f"{name} must be true or false")


def _budget(raw: Any) -> float | None:
    if raw is None or raw == "":
        return None
    value: Any = raw
    if isinstance(raw, str):
        try:
            value = float(raw)
        except ValueError:
            value = None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        raise ApiError(422, "invalid_request", "budget_usd must be a number of USD >= 0",
                       {"field": "budget_usd"})
    return float(value)


def llm_ask(raw_spec: Any, raw_budget: Any, raw_dry_run: Any, caller: Caller, svc: Services) -> LlmAsk:
    """The LLM part of a job's request: the spec a published name the caller's tier may
    use (422 ``unknown_spec``, 403 ``spec_not_allowed``), a budget in USD, the dry run."""
    spec: str | None = None
    if raw_spec is not None and raw_spec != "":
        if not isinstance(raw_spec, str):
            raise ApiError(422, "invalid_request", "spec must be the name of a published spec")
        _published(svc, caller, raw_spec)
        spec = raw_spec
    budget = _budget(raw_budget)
    dry_run = _flag(raw_dry_run, "dry_run")
    if (budget is not None or dry_run) and spec is None:
        raise ApiError(422, "spec_required",
                       "budget_usd and dry_run need a spec: name one of GET /v1/specs")
    return LlmAsk(spec, budget, dry_run)


def _published(svc: Services, caller: Caller, name: str) -> PublishedSpec:
    published = svc.specs.get(name)
    if published is None:
        names = sorted(n for n in svc.specs if _may_use(svc, caller, n))
        raise ApiError(422, "unknown_spec", f"no published spec {name!r}"
                       + (f"; this key may use: {', '.join(names)}" if names else ""),
                       {"spec": name, "allowed": names})
    if not _may_use(svc, caller, name):
        raise ApiError(403, "spec_not_allowed",
                       f"the key's tier {caller.tier!r} may not use spec {name!r}",
                       {"spec": name, "tier": caller.tier})
    return published


def _may_use(svc: Services, caller: Caller, name: str) -> bool:
    if caller.tier == LOCAL_CALLER.tier:
        return True
    tier = svc.tiers.get(caller.tier)
    return tier is not None and tier.may_use(name)


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
        llm = llm_ask(form.fields.get("spec"), form.fields.get("budget_usd"),
                      form.fields.get("dry_run"), caller, svc)
    except BaseException:
        await run_in_threadpool(shutil.rmtree, folder, True)
        raise
    n = len(form.files)
    described = "1 uploaded file" if n == 1 else f"{n:,} uploaded files"
    return JobSource("upload", [str(folder)], described, overrides, deliveries, llm)


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
    llm = llm_ask(body.get("spec"), body.get("budget_usd"), body.get("dry_run"), caller, svc)
    if source.startswith(("http://", "https://")):
        checked = await check_url(source, s.allowed_hosts)
        folder = svc.ledger.upload_dir(job_id)
        folder.mkdir(parents=True)
        try:
            await download(checked, folder, int(s.max_upload_mb * MB))
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        return JobSource("url", [str(folder)], source, overrides, deliveries, llm)
    if is_remote(source):  # a store (s3://, sftp://, gdrive://...): the job's run reads it
        if llm.dry_run:
            raise ApiError(422, "estimate_unsupported",
                           "an estimate reads uploads, a URL or an allowed folder, not a store URL")
        url = await run_in_threadpool(_check_store_source, source, s.allowed_sources)
        return JobSource("store", [url], url, overrides, deliveries, llm)
    path = await run_in_threadpool(check_root, source, s.allowed_roots)
    return JobSource("path", [str(path)], str(path), overrides, deliveries, llm)


def _monthly(svc: Services, caller: Caller) -> tuple[float | None, str | None, float]:
    """The caller's monthly LLM limit, where it comes from, and its spend this month."""
    limit, source = svc.limits.of(caller.key_id) if svc.limits is not None else (None, None)
    spent = svc.spend.spent(caller.key_id, period_of(time.time())) if svc.spend is not None else 0.0
    return limit, source, spent


def _estimate(svc: Services, caller: Caller, job: JobSource) -> dict[str, Any]:
    assert job.llm.spec is not None
    asked = job.llm.budget_usd if job.llm.budget_usd is not None else svc.settings.llm.budget_usd
    limit, source, spent = _monthly(svc, caller)
    budget = run_budget(asked, 0.0, limit, spent)  # what a job started now would get
    try:
        report = estimate_job(svc.settings, svc.extract, job.sources, job.overrides,
                              svc.specs[job.llm.spec], budget)
    except ExtractBusy as exc:
        raise ApiError(503, "busy", str(exc), headers={"Retry-After": "1"}) from None
    return {
        "dry_run": True,
        "spec": job.llm.spec,
        **report,
        "budget_asked_usd": asked,
        "monthly_budget_usd": limit,
        "monthly_budget_source": source,
        "monthly_left_usd": None if limit is None else round(max(0.0, limit - spent), 6),
    }


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
_SPEC_DOC = (
    "the name of an LLM task spec the server publishes (GET /v1/specs): the job classifies "
    "and extracts fields with it; 422 unknown_spec, 403 spec_not_allowed for the key's tier"
)
_BUDGET_DOC = (
    "what the job may spend on LLM calls, USD (default: the server's llm.budget_usd), "
    "clamped to what is left of the key's monthly limit (GET /v1/usage)"
)
_DRY_RUN_DOC = (
    "true: answer the estimate (calls, tokens, cost low/expected/high, whether the budget "
    "suffices) and create no job; nothing is sent to a provider"
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
                    "spec": {"type": "string", "description": _SPEC_DOC},
                    "budget_usd": {"type": "string", "description": _BUDGET_DOC},
                    "dry_run": {"type": "string", "description": _DRY_RUN_DOC},
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
                    "spec": {"type": "string", "description": _SPEC_DOC},
                    "budget_usd": {"type": "number", "description": _BUDGET_DOC},
                    "dry_run": {"type": "boolean", "description": _DRY_RUN_DOC},
                },
            }
        },
    },
}


@router.post(
    "/jobs", status_code=202, summary="Create a job from uploads, a path or a URL",
    openapi_extra={"requestBody": JOB_BODY},
)
async def create_job(request: Request, caller: CallerDep, svc: ServicesDep) -> Any:
    job_id = new_job_id()
    if request.headers.get("content-type", "").startswith("multipart/form-data"):
        found = await _from_uploads(svc, request, job_id, caller)
    else:
        found = await _from_json(svc, request, job_id, caller)
    if found.llm.dry_run:
        return await _dry_run(svc, caller, job_id, found)
    job = await run_in_threadpool(
        svc.ledger.create, job_id, caller.key_id, found.kind, found.sources, found.description,
        found.overrides, found.deliveries, found.llm.spec, found.llm.budget_usd,
    )
    return await run_in_threadpool(_view, svc, job, {})  # _view may look at the uploads folder


async def _dry_run(svc: Services, caller: Caller, job_id: str, found: JobSource) -> Response:
    """The estimate of a job never created; its uploads (or download) removed after."""
    try:
        answer = await run_in_threadpool(_estimate, svc, caller, found)
    finally:
        if found.kind in ("upload", "url"):
            await run_in_threadpool(shutil.rmtree, svc.ledger.upload_dir(job_id), True)
    return Response(json.dumps(answer), status_code=200, media_type="application/json")


@router.post(
    "/estimates", summary="What a job would cost with an LLM spec (nothing is sent)",
    openapi_extra={"requestBody": JOB_BODY},
)
async def create_estimate(request: Request, caller: CallerDep, svc: ServicesDep) -> dict[str, Any]:
    """``POST /v1/jobs`` with ``dry_run``: the same body (a ``spec`` is required)."""
    job_id = new_job_id()
    if request.headers.get("content-type", "").startswith("multipart/form-data"):
        found = await _from_uploads(svc, request, job_id, caller)
    else:
        found = await _from_json(svc, request, job_id, caller)
    try:
        if found.llm.spec is None:
            raise ApiError(422, "spec_required", "an estimate needs a spec: name one of GET /v1/specs")
        if found.kind == "store":
            raise ApiError(422, "estimate_unsupported",
                           "an estimate reads uploads, a URL or an allowed folder, not a store URL")
        return await run_in_threadpool(_estimate, svc, caller, found)
    finally:
        if found.kind in ("upload", "url"):
            await run_in_threadpool(shutil.rmtree, svc.ledger.upload_dir(job_id), True)


@router.get("/specs", summary="The LLM task specs this key may use (labels, fields, models, prices)")
async def list_specs(caller: CallerDep, svc: ServicesDep) -> dict[str, Any]:
    return {"items": [spec_view(p) for name, p in svc.specs.items() if _may_use(svc, caller, name)]}


def _usage(svc: Services, caller: Caller, period: str | None) -> dict[str, Any]:
    limit, source = svc.limits.of(caller.key_id) if svc.limits is not None else (None, None)
    month = period or period_of(time.time())
    assert svc.spend is not None
    return svc.spend.usage(caller.key_id, month).to_dict(limit, source)


@router.get("/usage", summary="The key's LLM spend this month (or another), per job, and its monthly limit")
async def usage(
    caller: CallerDep, svc: ServicesDep,
    period: Annotated[str | None, Query(pattern=r"^\d{4}-(0[1-9]|1[0-2])$")] = None,
) -> dict[str, Any]:
    return await run_in_threadpool(_usage, svc, caller, period)


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


def _job_spec(svc: Services, job: Job) -> LlmSpec | None:
    """The LLM spec the job runs: its published spec, else the server's own
    (``llm.spec``); None without one. A server spec that cannot be read raises
    ``SpecError``."""
    if job.llm_spec and job.llm_spec in svc.specs:
        return svc.specs[job.llm_spec].spec
    if svc.settings.llm.spec:
        from docmill.llm.spec import load_spec

        return load_spec(svc.settings.llm.spec)
    return None


def _schema_labels(svc: Services, job: Job) -> list[str]:
    """The labels of the job's spec that have fields (a schema); [] without a spec."""
    from docmill.llm.spec import SpecError

    try:
        spec = _job_spec(svc, job)
    except SpecError:
        return []
    return [lb.name for lb in spec.labels if lb.schema] if spec is not None else []


def _documents(
    svc: Services, caller: Caller, job_id: str, status: str | None, label: str | None,
    q: str | None, cursor: str | None, limit: int, fields: str | None = None,
) -> dict[str, Any]:
    job = _owned(svc, caller, job_id)
    # fields=valid: done with a label that has fields (the stage keeps only answers that
    # fit the schema); invalid: failed because the answer never fit (invalid_output)
    category: str | None = None
    labels: list[str] | None = None
    if fields == "invalid":
        if status not in (None, "failed"):
            return {"items": [], "next_cursor": None}
        status, category = "failed", "invalid_output"
    elif fields == "valid":
        if status not in (None, "done"):
            return {"items": [], "next_cursor": None}
        status, labels = "done", _schema_labels(svc, job)
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
            status=status, label=label, q=q, after=after, limit=limit + 1, skip=names.skip,
            category=category, labels=labels,
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
    fields: Annotated[
        str | None,
        Query(pattern="^(valid|invalid)$",
              description="valid: done with a label that has fields; invalid: its answer never fit the schema"),
    ] = None,
) -> dict[str, Any]:
    return await run_in_threadpool(_documents, svc, caller, job_id, status, label, q, cursor, limit, fields)


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


def _label_fields(svc: Services, job: Job, label: str) -> dict[str, str | None]:
    """The fields of ``label`` in the job's spec, name -> JSON type (422 when the label is
    not the spec's or has no fields)."""
    from docmill.llm.spec import SpecError

    try:
        spec = _job_spec(svc, job)
    except SpecError:
        raise ApiError(409, "spec_unavailable", "the server's LLM spec cannot be read") from None
    if spec is None:
        raise ApiError(422, "no_llm_stage", "the job runs no LLM spec: it has no fields")
    found = spec.label(label)
    if found is None:
        raise ApiError(422, "unknown_label", f"the spec has no label {label!r}",
                       {"labels": spec.label_names})
    if not found.schema:
        raise ApiError(422, "no_fields", f"label {label!r} has no fields (no schema in the spec)")
    out: dict[str, str | None] = {}
    for name, prop in (found.schema.get("properties") or {}).items():
        kind = prop.get("type") if isinstance(prop, dict) else None
        if isinstance(kind, list):
            kind = next((k for k in kind if k != "null"), None)
        out[name] = kind if isinstance(kind, str) else None
    return out


def _export_file(svc: Services, job: Job, fmt: str, label: str | None = None, fields: bool = False) -> Path:
    from docmill.outputs.export import export_fields, export_records

    folder = svc.ledger.job_dir(job.id) / "exports"
    names = _names(svc, job)
    columns = _label_fields(svc, job, label) if fields and label else None
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"export-{uuid.uuid4().hex}.{fmt}"
    with _reader(svc, job) as reader:
        records = map(names.record, reader.iter_records(label=label))
        if columns is not None:
            export_fields(records, columns, fmt, path)
        else:
            export_records(records, fmt, path)
    return path


def _stream_file(path: Path) -> Iterator[bytes]:
    try:
        with open(path, "rb") as handle:
            while chunk := handle.read(256 * 1024):
                yield chunk
    finally:
        path.unlink(missing_ok=True)


@router.get(
    "/jobs/{job_id}/export",
    summary="The job's records as one JSONL, CSV or Parquet file; or one label's fields, a column each",
)
async def export(
    job_id: str,
    caller: CallerDep,
    svc: ServicesDep,
    format: Annotated[str, Query(pattern="^(jsonl|csv|parquet)$")] = "jsonl",
    label: Annotated[str | None, Query(max_length=200)] = None,
    fields: Annotated[bool, Query(description="with label: one column per field of the label's schema (csv or parquet)")] = False,
) -> StreamingResponse:
    if fields and (not label or format == "jsonl"):
        raise ApiError(422, "invalid_request", "fields=true needs a label and format csv or parquet")
    job = await run_in_threadpool(_owned, svc, caller, job_id)
    path = await run_in_threadpool(_export_file, svc, job, format, label, fields)
    safe = re.sub(r"[^A-Za-z0-9_-]", "_", label or "")[:64]
    name = f"{job.id}-{safe}-fields" if fields else job.id
    return StreamingResponse(
        _stream_file(path),
        media_type=EXPORT_TYPES[format],
        headers={"Content-Disposition": f'attachment; filename="{name}.{format}"'},
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


@router.post("/jobs/{job_id}/retry", status_code=202, summary="Failed documents and deliveries again; a cancelled job resumes (a job stopped at its LLM budget: 409, resume it with a new budget)")
async def retry(job_id: str, caller: CallerDep, svc: ServicesDep) -> dict[str, Any]:
    return await run_in_threadpool(_retry, svc, caller, job_id)


def _per_document(svc: Services, job: Job, progress: dict[str, Any]) -> float | None:
    """What one more document of ``job`` is expected to cost: its spend per done document
    so far (the job's ``cost_per_document_usd``), else the estimate's mean over a small
    sample of its sources; None when neither is known."""
    cost = float(progress.get("cost_usd") or 0.0)
    done = int((progress.get("counts") or {}).get("done") or 0)
    if cost > 0 and done:
        return cost / done
    published = svc.specs.get(job.llm_spec) if job.llm_spec else None
    if published is None or job.source_kind == "store":  # an estimate reads no store
        return None
    try:
        report = estimate_job(svc.settings, svc.extract, job.sources, job.overrides, published,
                              0.0, sample=RESUME_SAMPLE)
    except (ExtractBusy, OSError, ValueError):
        return None
    docs = int(report.get("documents") or 0)
    expected = float(report.get("cost_expected") or 0.0)
    return expected / docs if docs and expected > 0 else None


RESUME_SAMPLE = 5  # documents an estimate reads for a resume when the job spent nothing yet


def _resume(svc: Services, caller: Caller, job_id: str, budget: float | None) -> dict[str, Any]:
    job = _owned(svc, caller, job_id)
    if not (job.llm_spec or svc.settings.llm.spec):
        raise ApiError(409, "no_llm_stage", "the job runs no LLM spec: there is no budget to raise")
    refusal = rerun_refusal(job, svc.ledger, svc.settings.service.upload_retention_h, time.time())
    if refusal is not None:  # running, or its uploads are gone
        raise refusal.error()
    if budget is None:
        raise ApiError(422, "invalid_request", 'send {"budget_usd": USD}, the job\'s new LLM budget')
    limit, _source, spent = _monthly(svc, caller)
    progress = job_progress(svc.ledger, job.id)
    job_spent = float(progress.get("cost_usd") or 0.0)
    others = svc.ledger.running_budgets(job.owner, job.id)
    outstanding = 0.0
    if others and svc.spend is not None:
        totals = svc.spend.job_totals(others)
        outstanding = sum(max(0.0, b - totals.get(j, 0.0)) for j, b in others.items())
    # its run would get less than one document beyond its spend: it would stop at once
    refused = resume_refusal(budget, job_spent, _per_document(svc, job, progress), limit, spent,
                             outstanding)
    if refused is not None:
        raise refused
    if not svc.ledger.requeue(job.id, budget):
        raise ApiError(409, "job_active", "the job changed state; try again")
    updated = svc.ledger.get(job.id)
    assert updated is not None
    return _view(svc, updated, job_progress(svc.ledger, job.id))


@router.post(
    "/jobs/{job_id}/resume", status_code=202,
    summary="Queue a job again with a new LLM budget (a job stopped at its budget goes on)",
)
async def resume(job_id: str, request: Request, caller: CallerDep, svc: ServicesDep) -> dict[str, Any]:
    try:
        body = await request.json()
    except (ValueError, RecursionError):
        raise ApiError(422, "invalid_request", 'send {"budget_usd": USD}') from None
    budget = _budget(body.get("budget_usd") if isinstance(body, dict) else None)
    return await run_in_threadpool(_resume, svc, caller, job_id, budget)


@router.get("/jobs/{job_id}/events", summary="Server-sent progress snapshots every second until the job ends")
async def events(job_id: str, request: Request, caller: CallerDep, svc: ServicesDep) -> StreamingResponse:
    await run_in_threadpool(_owned, svc, caller, job_id)

    async def stream() -> AsyncIterator[str]:
        while True:
            state = await run_in_threadpool(_job_state, svc, caller, job_id)
            yield f"event: progress\ndata: {json.dumps(state)}\n\n"
            if state["status"] in TERMINAL:
                yield f"event: end\ndata: {json.dumps({'status': state['status']})}\n\n"
                return
            if await request.is_disconnected():
                return
            await asyncio.sleep(1.0)

    return StreamingResponse(stream(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})
