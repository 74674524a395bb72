"""Progress reporting: pure formatting of a ProgressSnapshot, live line or periodic log line.

Only counts are formatted here, and in the summary an example source path per failure
category, PII-masked (a file name can hold an e-mail address or a phone number);
document text never reaches this module.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, TextIO

from docmill.observability.redact import redact

UNKNOWN: Final = "—"
INTERACTIVE_MIN_INTERVAL_S: Final = 0.2
_CLEAR_TO_EOL: Final = "\x1b[K"


@dataclass(frozen=True, slots=True)
class ProgressSnapshot:
    """Counts at one moment of a run.

    ``done``/``failed``/``skipped`` are terminal documents; ``total`` is None while
    sources are still being enumerated. ``nodes`` and ``workers`` describe a cluster
    executor (None: the local worker processes, not shown).
    """

    elapsed_s: float
    total: int | None
    done: int
    failed: int
    skipped: int
    running: int
    pages: int
    pages_recent_per_s: float | None = None
    nodes: int | None = None
    workers: int | None = None

    @property
    def finished(self) -> int:
        """Documents in a terminal state (done, failed or skipped)."""
        return self.done + self.failed + self.skipped


def format_duration(seconds: float) -> str:
    """Format a duration as ``45s``, ``3m05s`` or ``1h02m`` (``—`` if not finite)."""
    if not math.isfinite(seconds):
        return UNKNOWN
    whole = max(0, round(seconds))
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole // 3600}h{whole % 3600 // 60:02d}m"


def _per_s(count: int, elapsed_s: float) -> float | None:
    if elapsed_s <= 0 or not math.isfinite(elapsed_s):
        return None
    return count / elapsed_s


def docs_per_s(s: ProgressSnapshot) -> float | None:
    """Finished documents per second over the whole elapsed time."""
    return _per_s(s.finished, s.elapsed_s)


def pages_per_s(s: ProgressSnapshot) -> float | None:
    """Recent page rate if given, else pages per second over the whole elapsed time."""
    if s.pages_recent_per_s is not None and math.isfinite(s.pages_recent_per_s):
        return max(0.0, s.pages_recent_per_s)
    return _per_s(s.pages, s.elapsed_s)


def eta_seconds(s: ProgressSnapshot) -> float | None:
    """Seconds left at the document rate so far; None while unknown."""
    if s.total is None:
        return None
    remaining = max(0, s.total - s.finished)
    if remaining == 0:
        return 0.0
    rate = docs_per_s(s)
    if rate is None or rate <= 0:
        return None
    return remaining / rate


def _fmt_rate(per_s: float | None) -> str:
    if per_s is None:
        return UNKNOWN
    per_min = per_s * 60
    return f"{per_min:.1f}" if per_min < 10 else f"{per_min:,.0f}"


def _fmt_docs(s: ProgressSnapshot) -> str:
    if s.total is None:
        return f"docs {s.finished:,} (enumerating…)"
    pct = 100.0 if s.total <= 0 else min(100.0, 100.0 * s.finished / s.total)
    return f"docs {s.finished:,}/{s.total:,} ({pct:.1f}%)"


def format_line(s: ProgressSnapshot) -> str:
    """One status line: docs, pages, rates, failures, running, a cluster's nodes and
    workers, ETA."""
    eta = eta_seconds(s)
    cluster = () if s.nodes is None else (f"nodes {s.nodes:,}", f"workers {s.workers or 0:,}")
    return " | ".join(
        (
            _fmt_docs(s),
            f"pages {s.pages:,}",
            f"{_fmt_rate(pages_per_s(s))} pages/min",
            f"{_fmt_rate(docs_per_s(s))} docs/min",
            f"failed {s.failed:,}",
            f"skipped {s.skipped:,}",
            f"running {s.running:,}",
            *cluster,
            f"ETA {UNKNOWN if eta is None else format_duration(eta)}",
        )
    )


def format_summary(s: ProgressSnapshot, top_failures: list[tuple[str, int, str]]) -> str:
    """Multi-line end-of-run summary; ``top_failures`` holds (category, count, example
    source), the example PII-masked."""
    total = s.total if s.total is not None else s.finished
    lines = [
        "Run summary",
        f"  documents:  {total:,} total | {s.done:,} done | {s.failed:,} failed"
        f" | {s.skipped:,} skipped",
        f"  pages:      {s.pages:,}",
        f"  wall time:  {format_duration(s.elapsed_s)}",
        f"  throughput: {_fmt_rate(_per_s(s.pages, s.elapsed_s))} pages/min"
        f" | {_fmt_rate(docs_per_s(s))} docs/min",
    ]
    if top_failures:
        lines.append("  top failures:")
        width = max(len(category) for category, _, _ in top_failures)
        for category, count, example in top_failures:
            lines.append(f"    {category:<{width}}  {count:>7,}  e.g. {redact(example)}")
    return "\n".join(lines)


class ProgressReporter:
    """Shows progress as a live terminal line (interactive) or a periodic log line.

    Output errors (closed stream, broken pipe) are ignored: progress never fails a run.
    """

    def __init__(
        self,
        stream: TextIO,
        interactive: bool,
        interval_s: float,
        logger: logging.Logger,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._stream = stream
        self._interactive = interactive
        self._interval_s = INTERACTIVE_MIN_INTERVAL_S if interactive else interval_s
        self._logger = logger
        self._clock = clock
        self._last_emit: float | None = None
        self._line_open = False

    def update(self, s: ProgressSnapshot, *, force: bool = False) -> None:
        """Show ``s`` unless the last output was less than the interval ago (or ``force``)."""
        now = self._clock()
        if not force and self._last_emit is not None and now - self._last_emit < self._interval_s:
            return
        self._last_emit = now
        line = format_line(s)
        if self._interactive:
            self._write(f"\r{line}{_CLEAR_TO_EOL}")
            self._line_open = True
        else:
            self._logger.info("%s", line)

    def close(self, summary: str) -> None:
        """End the live line (interactive) and print ``summary``."""
        if self._line_open:
            self._write("\n")
            self._line_open = False
        self._write(summary if summary.endswith("\n") else summary + "\n")

    def _write(self, text: str) -> None:
        try:
            self._stream.write(text)
            self._stream.flush()
        except (OSError, ValueError):
            pass
