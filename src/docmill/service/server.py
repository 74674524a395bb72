"""``docmill serve`` (uvicorn over :func:`create_app`) and ``docmill worker`` (the job
claim loop alone, for jobs when ``service.job_workers`` is 0 or to add capacity)."""

from __future__ import annotations

import logging
import signal
import threading

from docmill.service.jobrunner import JobRunner
from docmill.service.jobs import JobLedger
from docmill.settings import Settings

log = logging.getLogger("docmill.service")


def serve(settings: Settings) -> None:
    import uvicorn

    from docmill.service.app import create_app

    app = create_app(settings)
    uvicorn.run(app, host=settings.service.host, port=settings.service.port, log_level="info")


def work(settings: Settings, threads: int) -> None:
    """Run jobs until SIGINT/SIGTERM; running jobs go back to the queue and resume."""
    ledger = JobLedger.open(settings.service.data_dir)
    runner = JobRunner(settings, ledger, max(1, threads))
    stop = threading.Event()

    def on_signal(_signum: int, _frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    runner.start()
    log.info("worker: %d job threads on %s", max(1, threads), settings.service.data_dir)
    try:
        while not stop.wait(0.5):
            pass
    finally:
        runner.stop()
        ledger.close()
