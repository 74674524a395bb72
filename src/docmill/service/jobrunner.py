"""The job runner: threads that claim queued jobs from the service ledger and run them.

The server starts ``service.job_workers`` of them; ``docmill worker`` runs the same loop
on its own. Each job is one docmill run (itself a pool of worker processes) over the
job's sources into ``{data_dir}/jobs/{id}/``; a heartbeat thread refreshes the job's
row every second, caches its counts and turns the cancel flag into a stop request.
A job whose runner died is claimed again and the engine resumes on the same folder.
Between jobs, a runner sweeps the uploads of jobs ended more than
``service.upload_retention_h`` ago (``service/retention.py``).

A job that names a published LLM spec runs the LLM stage with ``llm.spec`` set to that
spec's file on the server (``service/specs.py``) and ``llm.budget_usd`` set to the
job's budget clamped to what is left of its key's monthly limit (``service/usage.py``);
its spend goes to the key's monthly record with every heartbeat and at its end. A run
the budget stops ends ``stopped_budget``: a resume with a higher budget queues it again.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from docmill.engine.runner import Runner, StopToken
from docmill.service.jobs import Job, JobLedger, runner_identity
from docmill.service.keys import KeyStore
from docmill.service.retention import remove_sources, sweep
from docmill.service.specs import spec_path
from docmill.service.tiers import load_tiers
from docmill.service.usage import (
    KeyLimits,
    SpendLedger,
    job_totals_in,
    period_of,
    run_budget,
    spent_in,
)
from docmill.settings import Settings, SettingsError, with_overrides
from docmill.settings.deliveries import DeliverySpec
from docmill.state import StoreError
from docmill.state.browse import LedgerReader

log = logging.getLogger("docmill.service.jobs")

BEAT_S = 1.0
SWEEP_EVERY_S = 60.0


@dataclass(frozen=True, slots=True)
class JobResult:
    job: Job
    status: str
    progress: dict[str, Any]


def job_progress(ledger: JobLedger, job_id: str) -> dict[str, Any]:
    """Counts, pages, spend, failures, deliveries and the LLM limits per model of the job's
    folder (empty before its first run)."""
    try:
        with LedgerReader.open(ledger.job_dir(job_id)) as reader:
            progress = {"counts": reader.counts(), **reader.totals()}
            labels = reader.labels()
            if labels:
                progress["labels"] = labels
            calls = reader.llm_calls()
            if calls:
                progress["llm_calls"] = calls
            deliveries = reader.deliveries()
            if deliveries:
                progress["deliveries"] = deliveries
            limits = reader.llm_limits()  # the LLM stage's view per model, once a second
            if limits:
                progress["llm_limits"] = limits
            return progress
    except StoreError:
        return {}


def deliveries_for(job: Job, settings: Settings) -> tuple[DeliverySpec, ...]:
    """The operator's deliveries a job named, as they are configured now (one the server
    no longer offers ends the job with an error naming it)."""
    offered = {spec.name: spec for spec in settings.service.allowed_deliveries}
    missing = [name for name in job.deliveries if name not in offered]
    if missing:
        raise SettingsError(
            f"delivery {missing[0]!r} is no longer offered by this server (service.allowed_deliveries)"
        )
    return tuple(offered[name] for name in job.deliveries)


class JobRunner:
    """``threads`` claim loops; ``stop()`` gives running jobs back to the queue."""

    def __init__(
        self,
        settings: Settings,
        ledger: JobLedger,
        threads: int,
        *,
        on_finished: Callable[[JobResult], None] | None = None,
        poll_s: float = 0.5,
    ) -> None:
        self.settings = settings
        self.ledger = ledger
        self._threads_wanted = threads
        self._threads: list[threading.Thread] = []
        self._stop = threading.Event()
        self._on_finished = on_finished
        self._poll_s = poll_s
        self._sweep_lock = threading.Lock()
        self._swept_at = 0.0  # monotonic; 0: sweep on the first idle turn
        self.spend = SpendLedger.open(settings.service.data_dir)
        keys = KeyStore.open(settings.service.data_dir) if settings.service.auth == "keys" else None
        self.limits = KeyLimits(keys, load_tiers(settings.service.tiers_file))

    def start(self) -> None:
        for i in range(self._threads_wanted):
            t = threading.Thread(target=self._loop, name=f"docmill-job-{i}", daemon=True)
            t.start()
            self._threads.append(t)

    def stop(self, timeout_s: float = 30.0) -> None:
        self._stop.set()
        deadline = time.monotonic() + timeout_s
        for t in self._threads:
            t.join(max(0.0, deadline - time.monotonic()))

    @property
    def alive(self) -> bool:
        """Every runner thread is running (vacuously true with none)."""
        return all(t.is_alive() for t in self._threads)

    def wait(self) -> None:
        """Block until the runner is stopped (``docmill worker``)."""
        while not self._stop.wait(0.5):
            pass

    def _loop(self) -> None:
        me = runner_identity()
        while not self._stop.is_set():
            self._sweep_when_due()  # between jobs, so a runner never idle still sweeps
            try:
                job = self.ledger.claim(me)
            except Exception:  # the ledger is busy or gone: try again later
                log.exception("cannot claim a job")
                job = None
            if job is None:
                self._stop.wait(self._poll_s)
                continue
            try:
                self._run(job, me)
            except Exception:
                log.exception("job %s: the runner failed", job.id)

    def _sweep_when_due(self) -> None:
        """One thread at a time sweeps expired uploads, every :data:`SWEEP_EVERY_S`."""
        if not self._sweep_lock.acquire(blocking=False):
            return
        try:
            if self._swept_at and time.monotonic() - self._swept_at < SWEEP_EVERY_S:
                return
            self._swept_at = time.monotonic()
            sweep(self.ledger, self.settings.service.upload_retention_h)
        except Exception:  # a folder that cannot be removed now is tried at the next sweep
            log.exception("the uploads sweep failed")
        finally:
            self._sweep_lock.release()

    def _record_spend(self, job: Job, progress: dict[str, Any]) -> None:
        if progress:
            self.spend.record(
                job.owner, job.id, float(progress.get("cost_usd") or 0.0),
                int(progress.get("tokens_in") or 0), int(progress.get("tokens_out") or 0),
            )

    def llm_overrides(self, job: Job, me: str) -> dict[str, Any]:
        """``llm.spec`` (the published spec the job names, as the server has it now) and
        ``llm.budget_usd`` (the job's, within its key's monthly limit) of a job's run."""
        out: dict[str, Any] = {}
        if job.llm_spec:
            path = spec_path(self.settings, job.llm_spec)
            if path is None:
                raise SettingsError(
                    f"LLM spec {job.llm_spec!r} is no longer published by this server (service.llm_specs)"
                )
            out["llm.spec"] = path
        if not (out or self.settings.llm.spec):
            return out  # no LLM stage
        progress = job_progress(self.ledger, job.id)
        self._record_spend(job, progress)  # the key's month includes all this job spent
        asked = job.budget_usd if job.budget_usd is not None else self.settings.llm.budget_usd
        limit = self.limits.of(job.owner)[0]
        spent = float(progress.get("cost_usd") or 0.0)

        def decide(others: dict[str, float], conn: sqlite3.Connection) -> float:
            # read through the deciding transaction (the spend ledger's own connection
            # may be waiting for its write lock: a heartbeat recording spend)
            totals = job_totals_in(conn, others)
            outstanding = sum(max(0.0, b - totals.get(j, 0.0)) for j, b in others.items())
            month = spent_in(conn, job.owner, period_of(time.time()))
            return run_budget(asked, spent, limit, month, outstanding)

        budget = self.ledger.settle_budget(job.id, me, job.owner, decide)
        if budget < asked:
            log.info("job %s: LLM budget %.4f USD (asked %.4f): the key's monthly limit", job.id, budget, asked)
        out["llm.budget_usd"] = budget
        return out

    def _without_spec_paths(self, job: Job, message: str) -> str:
        """A run's error with the server's spec file and folder named by the spec's name
        (a key never learns where the operator keeps them)."""
        path = spec_path(self.settings, job.llm_spec) if job.llm_spec else None
        if path:
            message = message.replace(path, f"<spec {job.llm_spec}>")
            message = message.replace(os.path.dirname(path) + os.sep, f"<spec {job.llm_spec}>/")
        return message

    def _run(self, job: Job, me: str) -> None:
        log.info("job %s: run %d starts", job.id, job.runs)
        token = StopToken()
        done = threading.Event()

        def heartbeat() -> None:
            while not done.wait(BEAT_S):
                try:
                    progress = job_progress(self.ledger, job.id)
                    cancel = self.ledger.beat(job.id, me, progress)
                    self._record_spend(job, progress)
                except Exception:
                    log.exception("job %s: heartbeat failed", job.id)
                    continue
                if self._stop.is_set():
                    token.request()
                    token.request()  # shutting down: abandon in-flight work, it resumes later
                elif cancel and not token.draining:
                    token.request()

        beater = threading.Thread(target=heartbeat, name=f"docmill-beat-{job.id[:8]}", daemon=True)
        beater.start()
        error: str | None = None
        status = "failed"
        try:
            # a job reads only what resolves inside its folder (an allowed root's folder,
            # or its uploads): a symlink out of it ends failed (not_allowed), unread
            confined = {**job.overrides, "sources.confine_to_root": True}
            # where it delivers: the operator's tables it named, never its own
            confined["deliver"] = deliveries_for(job, self.settings)
            # what it may spend: the server's spec it named, its budget within its key's
            confined.update(self.llm_overrides(job, me))
            settings = with_overrides(self.settings, confined)
            summary = Runner(settings, job.sources, self.ledger.job_dir(job.id), stop=token).run()
            if summary.completed:
                status = "done"
            elif summary.status == "budget":
                status = "stopped_budget"
                error = (
                    f"stopped at the LLM budget ({settings.llm.budget_usd:.4f} USD); resume with a "
                    f"higher budget (POST /v1/jobs/{job.id}/resume) within the key's monthly limit"
                )
            else:
                status = "interrupted"
        except Exception as exc:  # a run-level error (bad settings, unusable ledger ...)
            error = self._without_spec_paths(job, str(exc))
        finally:
            done.set()
            beater.join()
        progress = job_progress(self.ledger, job.id)
        try:
            self._record_spend(job, progress)
        except Exception:  # the next run records it (totals, never deltas)
            log.exception("job %s: its spend could not be recorded", job.id)
        if status == "interrupted":
            current = self.ledger.get(job.id)
            if current is not None and current.cancel:
                status = "cancelled"
            else:
                self.ledger.release(job.id, me)
                log.info("job %s: interrupted, back in the queue", job.id)
                return
        if self.settings.service.upload_retention_h <= 0:
            remove_sources(self.ledger, job.id)  # kept 0 h: gone as the job ends
        self.ledger.finish(job.id, me, status, progress, error)
        log.info("job %s: %s", job.id, status)
        if self._on_finished is not None:
            self._on_finished(JobResult(job, status, progress))
