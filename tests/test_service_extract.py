"""The extract service's driver thread: it sleeps until a request, an answer or a check
the pool owes wakes it (no timer), answers every request, and stops when asked."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from docmill.model import DocState
from docmill.processors import ExtractOptions
from docmill.service.extract import ExtractBusy, ExtractService
from docmill.settings import load_settings
from engine_kit import HOSTILE, corpus_file
from pdfgen import write_pdf


def _driver() -> threading.Thread:
    (thread,) = [t for t in threading.enumerate() if t.name == "docmill-extract"]
    return thread


def _cpu_s(thread: threading.Thread) -> float:
    assert thread.ident is not None
    return time.clock_gettime(time.pthread_getcpuclockid(thread.ident))


@pytest.fixture
def service(tmp_path: Path) -> Iterator[ExtractService]:
    settings = load_settings(
        env={}, overrides={"service.data_dir": str(tmp_path / "data"), "service.extract_workers": "1"}
    )
    svc = ExtractService(settings)
    svc.start()
    try:
        yield svc
    finally:
        svc.stop()
    assert not svc.alive


@pytest.mark.timeout(120)
def test_an_idle_service_sleeps_and_a_long_extract_wakes_it_only_for_its_answer(
    service: ExtractService, tmp_path: Path
) -> None:
    pdf = write_pdf(tmp_path / "a.pdf", ["hello"])
    assert service.submit(str(pdf)).result(60).status is DocState.DONE
    time.sleep(0.2)  # the answer's turn is over
    driver = _driver()
    cpu, turns = _cpu_s(driver), service.turns
    time.sleep(2.0)
    # idle: no turn at all; a poll every 5 ms would be ~400 turns and milliseconds of CPU
    assert service.turns == turns
    assert _cpu_s(driver) - cpu < 0.002

    # one worker busy with a long document: the driver samples its memory every 50 ms
    # inside the pool's wait, but takes a turn only for the request and its answer
    big = corpus_file(HOSTILE / "generated" / "pages_100k.pdf")
    turns = service.turns
    long = service.submit_options(str(big), ExtractOptions(split_pages=10**9), 2**30)
    long.result(100)
    assert service.turns - turns <= 3


@pytest.mark.timeout(120)
def test_requests_beyond_what_the_workers_hold_are_all_answered(
    service: ExtractService, tmp_path: Path
) -> None:
    pdfs = [write_pdf(tmp_path / f"p{i}.pdf", [f"page {i}"]) for i in range(12)]
    futures = [service.submit(str(p)) for p in pdfs]  # one worker holds 4; 8 wait in the queue
    outcomes = [f.result(100) for f in futures]
    assert [o.status for o in outcomes] == [DocState.DONE] * 12
    assert [o.opened().text for o in outcomes] == [[f"page {i}"] for i in range(12)]


@pytest.mark.timeout(120)
def test_stop_ends_a_driver_whose_worker_is_full(tmp_path: Path) -> None:
    settings = load_settings(
        env={}, overrides={"service.data_dir": str(tmp_path / "data"), "service.extract_workers": "1"}
    )
    svc = ExtractService(settings)
    svc.start()
    big = corpus_file(HOSTILE / "generated" / "pages_100k.pdf")
    futures = [svc.submit_options(str(big), ExtractOptions(split_pages=10**9), 2**30) for _ in range(6)]
    time.sleep(0.5)
    svc.stop()
    assert not svc.alive
    # no request is left to hang: the one running and those queued are told the service
    # is stopping (the route answers 503 with Retry-After)
    assert all(f.done() for f in futures)
    refused = [f for f in futures if f.exception(0) is not None]
    assert refused and all(isinstance(f.exception(0), ExtractBusy) for f in refused)
    assert all("stopping" in str(f.exception(0)) for f in refused)
    assert all(f.result(0).status is not None for f in futures if f not in refused)
    with pytest.raises(ExtractBusy, match="stopping"):
        svc.submit(str(big))
