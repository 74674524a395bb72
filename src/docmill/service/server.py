"""``docmill serve`` (uvicorn over :func:`create_app`) and ``docmill worker`` (the job
claim loop alone, for jobs when ``service.job_workers`` is 0 or to add capacity)."""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
from typing import Any

from docmill.service.jobrunner import JobRunner
from docmill.service.jobs import JobLedger
from docmill.settings import Settings, SettingsError, with_overrides
from docmill.settings.loader import DELIVER

log = logging.getLogger("docmill.service")


SETTINGS_ENV = "DOCMILL_SERVE_SETTINGS"  # no "__": the settings loader's env layer skips it


def serve(settings: Settings, workers: int = 1) -> None:
    """One process, or ``workers`` uvicorn worker processes on the same socket. Each
    worker is a whole app: its own extract pool, job threads and metrics, over the
    shared ledger. With ``service.extract_workers`` 0 the usable cores are split
    between the workers (at least one extract process each)."""
    import uvicorn

    s = settings.service
    if workers <= 1:
        from docmill.service.app import create_app

        uvicorn.run(create_app(settings), host=s.host, port=s.port, log_level="info")
        return
    if s.extract_workers == 0:
        share = max(1, settings.workers // workers)
        settings = with_overrides(settings, {"service.extract_workers": share}, "serve")
    # the workers are spawned: they rebuild the same settings from this hand-over
    os.environ[SETTINGS_ENV] = json.dumps(_flat(settings))
    uvicorn.run(
        "docmill.service.app:app_from_env", factory=True, workers=workers,
        host=s.host, port=s.port, log_level="info",
    )


def _flat(settings: Settings) -> dict[str, Any]:
    data = settings.to_dict()
    deliver = data.pop(DELIVER)  # the [[deliver]] tables: a list, not a section
    flat = {
        f"{section}.{key}": value
        for section, table in data.items()
        for key, value in table.items()
    }
    return {**flat, DELIVER: deliver}


def settings_from_env() -> Settings:
    """The settings ``serve`` handed to its worker processes."""
    raw = os.environ.get(SETTINGS_ENV)
    if not raw:
        raise SettingsError(f"{SETTINGS_ENV} is not set: start the workers with `docmill serve --workers N`")
    return with_overrides(Settings(), json.loads(raw), "serve")


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
