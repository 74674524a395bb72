"""Shared fixtures, and the tests that need the full corpus."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Generator, Iterator
from pathlib import Path

import pytest

from engine_kit import CORPUS_WIDE_SKIP, FULL_CORPUS, SHARED_CORPUS, start_cli, stop_all
from service_kit import free_port, start_redis


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """``@pytest.mark.corpus_wide`` tests skip without the full corpus at ../shared/corpus
    (every other test runs on the carried subset, tests/data/corpus)."""
    if FULL_CORPUS:
        return
    skip = pytest.mark.skip(reason=CORPUS_WIDE_SKIP)
    for item in items:
        if item.get_closest_marker("corpus_wide"):
            item.add_marker(skip)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter,
) -> Generator[None, object, object]:
    """After the short summary (``-ra``), say how many tests the missing corpus skipped."""
    result = yield
    skipped = [
        report
        for report in terminalreporter.stats.get("skipped", [])
        if isinstance(report.longrepr, tuple) and CORPUS_WIDE_SKIP in str(report.longrepr[2])
    ]
    if skipped:
        n = len(skipped)
        terminalreporter.write_line(
            f"{n} test{'s' if n != 1 else ''} skipped: the corpus is not at ../shared/corpus"
            f" ({SHARED_CORPUS}); the others ran on the carried subset, tests/data/corpus",
            yellow=True,
            bold=True,
        )
    return result


@pytest.fixture
def start() -> Iterator[Callable[..., subprocess.Popen[str]]]:
    """Start ``docmill ARGS`` in the background; whatever still runs is killed afterwards."""
    started: list[subprocess.Popen[str]] = []

    def launch(*args: str) -> subprocess.Popen[str]:
        proc = start_cli(*args)
        started.append(proc)
        return proc

    yield launch
    for proc in started:
        stop_all(proc)


@pytest.fixture
def redis_url(tmp_path: Path) -> Iterator[str]:
    """A real redis-server on loopback for one test (skipped where it is not installed)."""
    port = free_port()
    proc = start_redis(port, tmp_path)
    try:
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.kill()
        proc.wait(timeout=30)
