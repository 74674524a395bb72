"""The job runner: threads that claim queued jobs from the service ledger and run them.

The server starts ``service.job_workers`` of them; ``docmill worker`` runs the same loop
on its own. Each job is one docmill run (itself a pool of worker processes) over the
job's sources into ``{data_dir}/jobs/{id}/``; a heartbeat thread refreshes the job's
row every second, caches its counts and turns the cancel flag into a stop request.
A job whose runner died is claimed again and the engine resumes on the same folder.
Between jobs, a runner sweeps the uploads of jobs ended more than
``service.upload_retention_h`` ago (``service/retention.py``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from docmill.engine.runner import Runner, StopToken
from docmill.service.jobs import Job, JobLedger, runner_identity
from docmill.service.retention import remove_sources, sweep
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

    def _run(self, job: Job, me: str) -> None:
        log.info("job %s: run %d starts", job.id, job.runs)
        token = StopToken()
        done = threading.Event()

        def heartbeat() -> None:
            while not done.wait(BEAT_S):
                try:
                    cancel = self.ledger.beat(job.id, me, job_progress(self.ledger, job.id))
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
            settings = with_overrides(self.settings, confined)
            summary = Runner(settings, job.sources, self.ledger.job_dir(job.id), stop=token).run()
            if summary.completed:
                status = "done"
            elif summary.status == "budget":
                error = "the LLM budget (llm.budget_usd) is spent; retry after raising it"
            else:
                status = "interrupted"
        except Exception as exc:  # a run-level error (bad settings, unusable ledger ...)
            error = str(exc)
        finally:
            done.set()
            beater.join()
        progress = job_progress(self.ledger, job.id)
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
