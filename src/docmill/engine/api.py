"""The library entry point: ``docmill.run(sources, out_dir, settings)``.

The CLI and (later) the HTTP API are thin adapters over this function.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from docmill.engine.runner import Runner, RunSummary, StopToken
from docmill.observability.progress import ProgressReporter, format_summary
from docmill.observability.redact import redact
from docmill.settings import Settings, load_settings
from docmill.sources.discover import check_sources

__all__ = ["RunSummary", "StopToken", "run"]


def run(
    sources: Sequence[str],
    out_dir: str | Path,
    settings: Settings | None = None,
    *,
    stop: StopToken | None = None,
    progress: bool = True,
    stream: TextIO | None = None,
) -> RunSummary:
    """Process ``sources`` into ``out_dir``; running it again resumes.

    Raises :class:`docmill.sources.SourceError` for a source that names nothing and
    :class:`docmill.state.StoreError` when the ledger cannot be used; every failure of
    a single document is recorded in the ledger and the records, never raised.
    """
    settings = settings or load_settings()
    check_sources(sources)
    logger = logging.getLogger("docmill")
    reporter: ProgressReporter | None = None
    if progress:
        out = stream or sys.stderr
        reporter = ProgressReporter(
            stream=out,
            interactive=out.isatty(),
            interval_s=settings.run.progress_interval_s,
            logger=logger,
        )
    runner = Runner(
        settings, sources, out_dir, stop=stop, on_progress=reporter.update if reporter else None
    )
    summary = runner.run()
    if reporter is not None:
        snapshot = runner.last_snapshot
        if snapshot is not None:
            reporter.update(snapshot, force=True)
            reporter.close(redact(format_summary(snapshot, summary.failures)))
    return summary
