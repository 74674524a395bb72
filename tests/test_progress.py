"""Tests for docmill.observability.progress."""

from __future__ import annotations

import io
import logging
from dataclasses import replace

import pytest

from docmill.observability.progress import (
    ProgressReporter,
    ProgressSnapshot,
    eta_seconds,
    format_duration,
    format_line,
    format_summary,
)
from docmill.observability.redact import redact

SNAP = ProgressSnapshot(
    elapsed_s=600.0,
    total=10_000,
    done=1_230,
    failed=3,
    skipped=1,
    running=4,
    pages=45_678,
    pages_recent_per_s=None,
)


class FakeClock:
    """A settable monotonic clock."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class ListHandler(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@pytest.fixture
def log_handler() -> tuple[logging.Logger, ListHandler]:
    logger = logging.getLogger("test.progress.reporter")
    logger.handlers.clear()
    logger.propagate = False
    logger.setLevel(logging.INFO)
    handler = ListHandler()
    logger.addHandler(handler)
    return logger, handler


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [
        (0, "0s"),
        (0.4, "0s"),
        (45, "45s"),
        (59.6, "1m00s"),
        (185, "3m05s"),
        (3599, "59m59s"),
        (3600, "1h00m"),
        (3725, "1h02m"),
        (100 * 3600 + 7 * 60, "100h07m"),
        (-5, "0s"),
        (float("inf"), "—"),
        (float("nan"), "—"),
    ],
)
def test_format_duration(seconds: float, expected: str) -> None:
    assert format_duration(seconds) == expected


def test_format_line_full() -> None:
    assert format_line(SNAP) == (
        "docs 1,234/10,000 (12.3%) | pages 45,678 | 4,568 pages/min | 123 docs/min"
        " | failed 3 | skipped 1 | running 4 | ETA 1h11m"
    )


def test_format_line_shows_a_clusters_nodes_and_workers() -> None:
    line = format_line(replace(SNAP, nodes=3, workers=48))
    assert line == (
        "docs 1,234/10,000 (12.3%) | pages 45,678 | 4,568 pages/min | 123 docs/min"
        " | failed 3 | skipped 1 | running 4 | nodes 3 | workers 48 | ETA 1h11m"
    )


def test_format_line_uses_recent_page_rate() -> None:
    line = format_line(replace(SNAP, pages_recent_per_s=90.5))
    assert "| 5,430 pages/min |" in line


def test_format_line_while_enumerating() -> None:
    line = format_line(replace(SNAP, total=None))
    assert line.startswith("docs 1,234 (enumerating…) | pages 45,678 |")
    assert line.endswith("ETA —")


def test_format_line_at_start() -> None:
    start = ProgressSnapshot(0.0, 50, 0, 0, 0, 0, 0, None)
    assert format_line(start) == (
        "docs 0/50 (0.0%) | pages 0 | — pages/min | — docs/min"
        " | failed 0 | skipped 0 | running 0 | ETA —"
    )


def test_format_line_small_rates_and_empty_total() -> None:
    slow = ProgressSnapshot(120.0, 0, 0, 0, 0, 0, 3, None)
    assert format_line(slow).startswith(
        "docs 0/0 (100.0%) | pages 3 | 1.5 pages/min | 0.0 docs/min"
    )


def test_format_line_is_not_redacted() -> None:
    big = ProgressSnapshot(86_400.0, 12_345_678, 4_111_111, 1, 0, 16, 1_111_111_111_111, 9e9)
    assert redact(format_line(big)) == format_line(big)


def test_eta_seconds() -> None:
    eta = eta_seconds(SNAP)
    assert eta is not None
    assert eta == pytest.approx(8_766 / (1_234 / 600.0))
    assert eta_seconds(replace(SNAP, total=None)) is None
    assert eta_seconds(replace(SNAP, done=0, failed=0, skipped=0)) is None
    assert eta_seconds(replace(SNAP, elapsed_s=0.0)) is None
    assert eta_seconds(replace(SNAP, total=1_234)) == 0.0
    assert eta_seconds(replace(SNAP, total=100)) == 0.0


def test_format_summary() -> None:
    done = ProgressSnapshot(3725.0, 10_000, 9_990, 7, 3, 0, 456_789, None)
    text = format_summary(
        done,
        [("timeout", 5, "/data/a/slow.pdf"), ("encrypted", 2, "/data/b/locked.pdf")],
    )
    lines = text.splitlines()
    assert lines[0] == "Run summary"
    assert "10,000 total | 9,990 done | 7 failed | 3 skipped" in text
    assert "pages:      456,789" in text
    assert "wall time:  1h02m" in text
    assert "7,358 pages/min | 161 docs/min" in text
    assert "top failures:" in text
    assert any("timeout" in ln and "5" in ln and "/data/a/slow.pdf" in ln for ln in lines)
    assert any("encrypted" in ln and "2" in ln and "/data/b/locked.pdf" in ln for ln in lines)
    assert "top failures" not in format_summary(done, [])


def test_non_interactive_logs_only_every_interval(
    log_handler: tuple[logging.Logger, ListHandler],
) -> None:
    logger, handler = log_handler
    clock = FakeClock()
    stream = io.StringIO()
    reporter = ProgressReporter(
        stream, interactive=False, interval_s=5.0, logger=logger, clock=clock
    )
    for step in range(0, 121):  # 12 s in 0.1 s steps
        clock.now = 1000.0 + step / 10
        reporter.update(replace(SNAP, done=step))
    # emitted at t=0, 5, 10
    assert len(handler.messages) == 3
    assert handler.messages[0].startswith("docs 4/10,000")
    assert handler.messages[1].startswith("docs 54/10,000")
    assert handler.messages[2].startswith("docs 104/10,000")
    assert stream.getvalue() == ""
    reporter.update(SNAP, force=True)
    assert len(handler.messages) == 4
    reporter.close("all done")
    assert stream.getvalue() == "all done\n"


def test_interactive_rewrites_one_line(log_handler: tuple[logging.Logger, ListHandler]) -> None:
    logger, handler = log_handler
    clock = FakeClock()
    stream = io.StringIO()
    reporter = ProgressReporter(
        stream, interactive=True, interval_s=5.0, logger=logger, clock=clock
    )
    for step in range(8):  # 1 s in exact 0.125 s steps -> writes at 0, 0.25, 0.5, 0.75
        clock.now = 1000.0 + step * 0.125
        reporter.update(SNAP)
    out = stream.getvalue()
    assert out.count("\r") == 4
    assert out == f"\r{format_line(SNAP)}\x1b[K" * 4
    assert "\n" not in out
    assert handler.messages == []
    reporter.close("Run summary\n  pages: 1")
    assert stream.getvalue() == out + "\nRun summary\n  pages: 1\n"


def test_reporter_survives_closed_stream(log_handler: tuple[logging.Logger, ListHandler]) -> None:
    logger, _ = log_handler
    stream = io.StringIO()
    reporter = ProgressReporter(stream, interactive=True, interval_s=1.0, logger=logger)
    stream.close()
    reporter.update(SNAP)
    reporter.close("summary")
