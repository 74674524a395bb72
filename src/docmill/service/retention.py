"""How long a job's uploaded sources are kept, and what that allows (retry, page images).

An upload or URL job reads files the service holds in ``{data_dir}/uploads/{id}/``. They
are kept ``service.upload_retention_h`` hours after the job ends (0: removed at its
end), so the dashboard can draw a document's pages and a failed or cancelled job can be
retried without uploading again. Past that the sources are *gone*, decided by time
alone: ``retry`` answers 409 ``sources_gone`` and a page image 410 ``source_gone`` at
the same moment, whether or not the sweep has run yet. The sweep (:func:`sweep`, run by
the job runner) removes the files :data:`SWEEP_GRACE_S` later, so a retry accepted just
before the deadline never finds its files removed under it. A folder job's sources are
the caller's own files and never expire here.

The refusals live here, in one place: ``POST .../retry`` raises them and the job's JSON
says ``can_retry`` from the same function, so the dashboard disables the button exactly
when the API would refuse (a job stopped at its LLM budget is resumed with a new budget,
never retried with the old one).
"""

from __future__ import annotations

import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from docmill.service.errors import ApiError
from docmill.service.jobs import Job, JobLedger

log = logging.getLogger("docmill.service.jobs")

HELD_KINDS = ("upload", "url")  # jobs whose sources the service holds
SWEEP_GRACE_S = 600.0  # files outlive the API's deadline by this much
ORPHAN_AFTER_S = 3600.0  # an upload folder without a job (a failed create) is removed after this
PAGES_DIR = "pages"  # a job's cache of rendered page images, inside its folder


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why an action on a job is refused: an HTTP status, a stable code, a sentence."""

    status: int
    code: str
    message: str

    def error(self) -> ApiError:
        return ApiError(self.status, self.code, self.message)

    def to_dict(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message}


def kept_until(job: Job, retention_h: float) -> float | None:
    """When the service stops holding the job's sources (None: not decided yet, or never)."""
    if job.source_kind not in HELD_KINDS or not job.terminal or job.finished_at is None:
        return None
    return job.finished_at + max(retention_h, 0.0) * 3600.0


def sources_gone(job: Job, ledger: JobLedger, retention_h: float, now: float) -> bool:
    """The service no longer holds the uploaded or downloaded files of ``job``."""
    if job.source_kind not in HELD_KINDS:
        return False
    until = kept_until(job, retention_h)
    if until is not None and now >= until:
        return True
    return not ledger.upload_dir(job.id).is_dir()


def retry_refusal(job: Job, ledger: JobLedger, retention_h: float, now: float) -> Refusal | None:
    """Why ``POST /v1/jobs/{id}/retry`` would answer 409, or None when it would not. A
    job its LLM budget stopped is not retried: a retry keeps the budget, so its run
    would stop again at once; ``resume`` takes a new one."""
    refusal = rerun_refusal(job, ledger, retention_h, now)
    if refusal is None and job.status == "stopped_budget":
        in_force = f" ({job.budget_in_force:.6g} USD)" if job.budget_in_force is not None else ""
        return Refusal(
            409, "stopped_budget",
            f"the job stopped at its LLM budget{in_force}; a retry keeps that budget and would "
            f"stop again at once: resume it with a higher one, POST /v1/jobs/{job.id}/resume "
            'with {"budget_usd": USD}',
        )
    return refusal


def rerun_refusal(job: Job, ledger: JobLedger, retention_h: float, now: float) -> Refusal | None:
    """Why a finished job cannot run again (retry or resume), or None: it has not
    finished, or its uploaded files are gone."""
    if not job.terminal:
        return Refusal(409, "job_active", f"the job is {job.status}")
    if sources_gone(job, ledger, retention_h, now):
        return Refusal(
            409, "sources_gone",
            f"the uploaded files are kept {retention_h:g} h after a job ends "
            "(service.upload_retention_h) and are gone now; upload them again",
        )
    return None


def source_refusal(job: Job, ledger: JobLedger, retention_h: float, now: float) -> Refusal | None:
    """Why a document's source cannot be read again (410), or None."""
    if sources_gone(job, ledger, retention_h, now):
        return Refusal(
            410, "source_gone",
            f"the job's uploaded files were kept {retention_h:g} h after it ended "
            "(service.upload_retention_h) and are gone",
        )
    return None


def remove_sources(ledger: JobLedger, job_id: str) -> None:
    """The job's uploads and the page images drawn from them."""
    shutil.rmtree(ledger.upload_dir(job_id), ignore_errors=True)
    shutil.rmtree(ledger.job_dir(job_id) / PAGES_DIR, ignore_errors=True)


def sweep(ledger: JobLedger, retention_h: float, now: float | None = None) -> int:
    """Remove the uploads of jobs ended more than ``retention_h`` (+ the grace) ago, and
    upload folders no job owns; returns how many folders went. It walks the folders
    still there (never the whole job table), so its cost is what is kept."""
    now = time.time() if now is None else now
    root = ledger.data_dir / "uploads"
    try:
        folders = [p for p in root.iterdir() if p.is_dir()]
    except FileNotFoundError:
        return 0
    removed = 0
    for folder in folders:
        job = ledger.get(folder.name)
        if job is None:
            if _age(folder, now) > ORPHAN_AFTER_S:
                shutil.rmtree(folder, ignore_errors=True)
                removed += 1
            continue
        until = kept_until(job, retention_h)
        if until is not None and now >= until + SWEEP_GRACE_S:
            remove_sources(ledger, job.id)
            removed += 1
    if removed:
        log.info("removed the uploads of %d ended jobs (service.upload_retention_h = %g)", removed, retention_h)
    return removed


def _age(path: Path, now: float) -> float:
    try:
        return now - path.stat().st_mtime
    except FileNotFoundError:
        return 0.0
