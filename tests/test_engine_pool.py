"""The supervised worker pool on its own: results, recycling, limits from outside."""

from __future__ import annotations

import time
from pathlib import Path

from docmill.engine.pool import PoolLimits, WorkerPool
from docmill.model import DocState, FailureCategory, ProcessOutcome
from docmill.processors import ExtractOptions, Task
from engine_kit import HOSTILE
from pdfgen import write_pdf


def _task(i: int, path: Path, **kw: int) -> Task:
    return Task(
        task_id=i,
        doc_id=i,
        path=str(path),
        page_range=None,
        max_file_bytes=2**30,
        options=ExtractOptions(
            max_pages=kw.get("max_pages", 0), split_pages=kw.get("split_pages", 500)
        ),
    )


def _collect(pool: WorkerPool, want: int, limit_s: float = 60) -> list[tuple[Task, ProcessOutcome]]:
    got: list[tuple[Task, ProcessOutcome]] = []
    deadline = time.monotonic() + limit_s
    while len(got) < want and time.monotonic() < deadline:
        got.extend(pool.poll(0.05))
    return got


def test_workers_are_recycled_after_n_tasks(tmp_path: Path) -> None:
    pdf = write_pdf(tmp_path / "a.pdf", ["hello"])
    pool = WorkerPool(1, PoolLimits(timeout_s=30, memory_mb=1024, recycle_after=2))
    pool.start()
    try:
        pids = set()
        for i in range(5):
            pool.submit(_task(i, pdf))
            pids.update(pool.pids())
            ((task, outcome),) = _collect(pool, 1)
            assert task.task_id == i and outcome.status is DocState.DONE
            assert outcome.opened().text == ["hello"]
        assert pool.started == 3  # the first, then a fresh one after tasks 2 and 4
        assert len(pids) == 3
    finally:
        assert pool.shutdown() == []


def test_timeout_is_enforced_from_outside_and_the_worker_replaced(tmp_path: Path) -> None:
    big = HOSTILE / "generated" / "pages_100k.pdf"
    small = write_pdf(tmp_path / "b.pdf", ["fine"])
    pool = WorkerPool(1, PoolLimits(timeout_s=1.0, memory_mb=2048, recycle_after=100))
    pool.start()
    try:
        pool.submit(_task(1, big, split_pages=10**9))
        ((_, outcome),) = _collect(pool, 1)
        assert outcome.error is not None
        assert outcome.error.category is FailureCategory.TIMEOUT
        assert outcome.error.stage == "extract"
        assert pool.killed == {"timeout": 1}
        pool.submit(_task(2, small))
        ((_, outcome),) = _collect(pool, 1)
        assert outcome.status is DocState.DONE
        assert pool.started == 2
    finally:
        pool.shutdown()


def test_shutdown_reports_tasks_still_in_flight(tmp_path: Path) -> None:
    big = HOSTILE / "generated" / "pages_100k.pdf"
    pool = WorkerPool(1, PoolLimits(timeout_s=60, memory_mb=2048, recycle_after=100))
    pool.start()
    pool.submit(_task(7, big, split_pages=10**9))
    lost = pool.shutdown(kill=True)
    assert [t.task_id for t in lost] == [7]
