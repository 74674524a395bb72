"""The supervised worker pool on its own: results, recycling, limits from outside."""

from __future__ import annotations

import json
import math
import multiprocessing
import os
import pickle
import signal
import threading
import time
import zlib
from dataclasses import fields
from pathlib import Path
from types import SimpleNamespace

import pytest

from docmill.engine.pool import PoolLimits, Waker, WorkerPool
from docmill.engine.worker import read_task, task_message
from docmill.model import DocState, ErrorInfo, FailureCategory, PageRange, ProcessOutcome
from docmill.model.content import encode_content
from docmill.model.records import PLAIN_MAX
from docmill.processors import ExtractOptions, Task
from engine_kit import HOSTILE, corpus_file
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


def test_a_recycled_workers_successor_starts_early_and_the_old_one_is_reaped(
    tmp_path: Path,
) -> None:
    pdf = write_pdf(tmp_path / "a.pdf", ["hello"])
    pool = WorkerPool(1, PoolLimits(timeout_s=30, memory_mb=1024, recycle_after=2))
    pool.start()
    try:
        (first,) = pool.pids()
        pool.submit(_task(1, pdf))
        assert pool.started == 1
        pool.submit(_task(2, pdf))  # its last task: the successor starts now
        assert pool.started == 2 and pool.pids() == [first]
        assert [t.task_id for t, _o in _collect(pool, 2)] == [1, 2]
        pool.poll(0.0)  # hands over without waiting for the old worker to exit
        (second,) = pool.pids()
        assert second != first
        deadline = time.monotonic() + 10
        while _alive(first) and time.monotonic() < deadline:
            pool.poll(0.05)  # later polls reap it
        assert not _alive(first)
        pool.submit(_task(3, pdf))
        ((task, outcome),) = _collect(pool, 1)
        assert task.task_id == 3 and outcome.opened().text == ["hello"]
    finally:
        assert pool.shutdown() == []


def _alive(pid: int) -> bool:
    """True while ``pid`` exists, zombie or not reaped included."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            return handle.read().split(b") ")[-1][:1] != b"Z"
    except FileNotFoundError:
        return False


def test_timeout_is_enforced_from_outside_and_the_worker_replaced(tmp_path: Path) -> None:
    big = corpus_file(HOSTILE / "generated" / "pages_100k.pdf")
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


def _thread_cpu_s(thread: threading.Thread) -> float:
    assert thread.ident is not None
    return time.clock_gettime(time.pthread_getcpuclockid(thread.ident))


@pytest.mark.timeout(60)
def test_an_idle_pool_waits_on_its_waker_without_using_cpu_and_wakes_at_once(tmp_path: Path) -> None:
    pool = WorkerPool(1, PoolLimits(timeout_s=30, memory_mb=1024, recycle_after=100))
    pool.start()
    waker = Waker()
    ended = threading.Event()
    got: list[object] = []

    def owner() -> None:
        got.append(pool.poll(math.inf, waker))
        ended.set()

    try:
        thread = threading.Thread(target=owner)
        thread.start()
        time.sleep(0.1)
        cpu = _thread_cpu_s(thread)
        assert not ended.wait(1.5)  # nothing to wake it: no result, no check, no timer
        # a poll every 5 ms would cost ~300 turns here (milliseconds of CPU); a sleep, none
        assert _thread_cpu_s(thread) - cpu < 0.002
        waker.wake()
        assert ended.wait(30) and got == [[]]
        thread.join()
        waker.wake()  # a wake before the wait is not lost ...
        assert pool.poll(math.inf, waker) == []
        waker.clear()  # ... and a cleared one is forgotten
        assert pool.poll(0.0, waker) == []
        pdf = write_pdf(tmp_path / "a.pdf", ["hello"])
        pool.submit(_task(1, pdf))
        ((task, outcome),) = pool.poll(math.inf, waker)  # an answer ends the wait too
        assert task.task_id == 1 and outcome.status is DocState.DONE
    finally:
        waker.close()
        assert pool.shutdown() == []


@pytest.mark.timeout(120)
def test_a_wait_without_a_limit_still_kills_a_worker_past_its_deadline() -> None:
    big = corpus_file(HOSTILE / "generated" / "pages_100k.pdf")
    pool = WorkerPool(1, PoolLimits(timeout_s=1.0, memory_mb=2048, recycle_after=100))
    pool.start()
    try:
        pool.submit(_task(1, big, split_pages=10**9))
        ((task, outcome),) = pool.poll(math.inf)  # woken by its own checks, not a result
        assert task.task_id == 1 and outcome.error is not None
        assert outcome.error.category is FailureCategory.TIMEOUT
        assert pool.killed == {"timeout": 1}
    finally:
        pool.shutdown()


def test_an_idle_pool_refuses_to_wait_forever_without_a_waker() -> None:
    pool = WorkerPool(1, PoolLimits(timeout_s=30, memory_mb=1024, recycle_after=100))
    with pytest.raises(ValueError, match="wait forever"):
        pool.poll(math.inf)


def test_shutdown_reports_tasks_still_in_flight(tmp_path: Path) -> None:
    big = corpus_file(HOSTILE / "generated" / "pages_100k.pdf")
    pool = WorkerPool(1, PoolLimits(timeout_s=60, memory_mb=2048, recycle_after=100))
    pool.start()
    pool.submit(_task(7, big, split_pages=10**9))
    lost = pool.shutdown(kill=True)
    assert [t.task_id for t in lost] == [7]


def test_outcome_wire_form_round_trips_every_field() -> None:
    outcome = ProcessOutcome(
        status=DocState.FAILED,
        mime="application/pdf",
        pages=12,
        text=["a", "b"],
        metadata={"title": "T", "nested": {"x": [1, 2]}},
        error=ErrorInfo(FailureCategory.TIMEOUT, "too slow", "ocr"),
        parse_s=1.5,
        needs_split=True,
        page_range=PageRange(10, 20),
        extra={"markdown": "# T"},
        content=b"sealed",
        images=[("image/png", b"\x89PNG")],
        label="invoice",
        cost_usd=0.25,
        tokens_in=100,
        tokens_out=7,
    )
    outcome.plain = (outcome.content, b'{"text": []}')  # type: ignore[assignment]
    blank = ProcessOutcome(status=DocState.PENDING)
    # every field is set here: a field added later has to be added here, and to the wire
    assert all(getattr(outcome, f.name) != getattr(blank, f.name) for f in fields(outcome))
    wire = outcome.to_wire()
    assert len(wire) == len(fields(outcome))
    back = ProcessOutcome.from_wire(pickle.loads(pickle.dumps(wire)))
    assert back == outcome
    assert back.status is DocState.FAILED and back.error is not None
    assert back.error.category is FailureCategory.TIMEOUT
    assert back.content_utf8() == b'{"text": []}'
    assert ProcessOutcome.from_wire(blank.to_wire()) == blank
    assert ProcessOutcome.from_wire(blank.to_wire()).content_utf8() is None


def test_a_sealed_outcome_knows_its_contents_json_while_the_content_is_unchanged() -> None:
    outcome = ProcessOutcome(status=DocState.DONE, text=["é ✓"], metadata={"k": 1})
    outcome.seal()
    assert outcome.content is not None and outcome.text == []
    plain = outcome.content_utf8()
    assert plain == zlib.decompress(outcome.content)
    assert json.loads(plain) == {"text": ["é ✓"], "metadata": {"k": 1}}
    back = ProcessOutcome.from_wire(pickle.loads(pickle.dumps(outcome.to_wire())))
    assert back.content_utf8() == plain
    assert back.opened().plain is None and "plain" not in back.to_dict()
    back.content = encode_content(["other"], {})  # replaced (as the LLM stage does)
    assert back.content_utf8() is None
    big = ProcessOutcome(status=DocState.DONE, text=["x" * (PLAIN_MAX + 1)])
    big.seal()
    assert big.content is not None and big.content_utf8() is None  # too big to send twice
    assert ProcessOutcome(status=DocState.DONE).content_utf8() is None


def test_task_message_carries_options_only_when_asked() -> None:
    options = ExtractOptions(max_pages=3, ocr="never")
    task = Task(7, 8, "/x.pdf", PageRange(0, 5), 1234, options)
    assert read_task(task_message(task, True), ExtractOptions()) == task
    assert task_message(task, False)[-1] is None
    assert read_task(task_message(task, False), options) == task
    other = ExtractOptions(max_pages=9)
    assert read_task(task_message(task, False), other).options is other
    whole = Task(1, 2, "/y.pdf", None, 5, options)
    assert read_task(pickle.loads(pickle.dumps(task_message(whole, True))), other) == whole


def test_a_worker_follows_the_options_of_each_task(tmp_path: Path) -> None:
    pdf = write_pdf(tmp_path / "three.pdf", ["one", "two", "three"])
    pool = WorkerPool(1, PoolLimits(timeout_s=30, memory_mb=1024, recycle_after=100))
    pool.start()
    first = ExtractOptions(max_pages=1)
    try:
        pages = []
        for i, options in enumerate([first, first, ExtractOptions(), ExtractOptions(max_pages=1), first]):
            pool.submit(Task(i, i, str(pdf), None, 2**30, options))
            ((task, outcome),) = _collect(pool, 1)
            assert task.task_id == i and outcome.status is DocState.DONE
            pages.append(len(outcome.opened().text))
        assert pages == [1, 1, 3, 1, 1]
        assert pool.started == 1
    finally:
        pool.shutdown()


def test_a_malformed_worker_result_fails_its_document() -> None:
    pool = WorkerPool(1, PoolLimits(timeout_s=30, memory_mb=1024, recycle_after=100))
    ours, theirs = multiprocessing.Pipe()
    slot = SimpleNamespace(conn=ours)
    try:
        for message in [ProcessOutcome(status=DocState.DONE), ("done",), "done"]:
            theirs.send(message)
            outcome = pool._receive(slot)  # type: ignore[arg-type]
            assert outcome is not None and outcome.error is not None
            assert outcome.error.category is FailureCategory.ERROR
            assert outcome.error.message == "unexpected worker result"
        theirs.send(ProcessOutcome(status=DocState.DONE, pages=2).to_wire())
        assert pool._receive(slot) == ProcessOutcome(status=DocState.DONE, pages=2)  # type: ignore[arg-type]
        theirs.close()
        assert pool._receive(slot) is None  # type: ignore[arg-type]
    finally:
        ours.close()


def test_poll_waits_its_time_and_follows_workers_that_die_and_are_replaced(tmp_path: Path) -> None:
    big = corpus_file(HOSTILE / "generated" / "pages_100k.pdf")
    small = write_pdf(tmp_path / "s.pdf", ["fine"])
    pool = WorkerPool(2, PoolLimits(timeout_s=60, memory_mb=2048, recycle_after=2))
    pool.start()
    try:
        assert pool.poll(0.0) == []
        for round_ in range(3):  # a fresh pair of workers (and fds) each round
            pool.submit(_task(10 * round_, big, split_pages=10**9))
            pool.submit(_task(10 * round_ + 1, small))
            got = _collect(pool, 1)
            assert [(t.task_id, o.status) for t, o in got] == [(10 * round_ + 1, DocState.DONE)]
            started = time.monotonic()
            assert pool.poll(0.2) == []  # the big one is still working
            assert time.monotonic() - started >= 0.19
            for pid in pool.pids():  # the idle one is replaced when it is given a task
                os.kill(pid, signal.SIGKILL)
            ((task, outcome),) = _collect(pool, 1)
            assert task.task_id == 10 * round_
            assert outcome.error is not None and outcome.error.category is FailureCategory.CRASH
            assert "SIGKILL" in outcome.error.message
        assert pool.take_returned() == []
    finally:
        pool.shutdown(kill=True)


def test_the_forkserver_has_pdfium_loaded_before_a_worker_is_asked_for() -> None:
    import subprocess
    import sys

    # started in a fresh interpreter, as `docmill run` starts it: before the engine is
    # imported, and importing nothing else of docmill's
    script = (
        "import sys, time\n"
        "from docmill.engine.preload import start_forkserver\n"
        "start_forkserver()\n"
        "from multiprocessing import forkserver\n"
        "pid = forkserver._forkserver._forkserver_pid\n"
        "ours = sorted(m for m in sys.modules if m.startswith('docmill'))\n"
        "deadline = time.monotonic() + 30\n"
        "while time.monotonic() < deadline:\n"
        "    if 'libpdfium' in open(f'/proc/{pid}/maps').read():\n"
        "        break\n"
        "    time.sleep(0.02)\n"
        "else:\n"
        "    sys.exit('the forkserver never loaded PDFium')\n"
        "print(ours)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "['docmill', 'docmill.engine', 'docmill.engine.preload']"
