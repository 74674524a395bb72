"""The extract service's driver thread in one process: what it costs and how fast it hands
a request to a worker, without HTTP.

An :class:`~docmill.service.extract.ExtractService` (the pool and the thread that owns it,
as ``docmill serve`` runs them) and ``--clients`` closed-loop client threads, each
submitting ``--pdf`` (tables on by default), waiting for the answer, then thinking
a time drawn uniformly from [0.5, 1.5] x ``--think`` (seeded per client; a fixed think
time locks the clients in step). Printed: extracts/s; latency p50/p95 (submit ->
answer); the service's own part of it, p50 and mean of (latency - the worker's
``parse_s``), which the machine's other load moves far less than the latency (the
pool's dispatch, the result's way back); the driver thread's CPU per extract (its own
clock, ``pthread_getcpuclockid``) and the process's (driver and clients); and, over an
idle interval after the run, the driver's CPU per second. Run it from each checkout (``PYTHONPATH`` or the checkout's venv picks the
code) and compare the figures of the same session::

    .venv/bin/python bench/extract_wake.py --clients 2 --think 0.02 --duration 10
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_PDF = REPO.parent / "shared/corpus/real/pdfplumber/examples/pdfs/background-checks.pdf"


def _cpu_s(thread: threading.Thread) -> float:
    assert thread.ident is not None
    return time.clock_gettime(time.pthread_getcpuclockid(thread.ident))


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--clients", type=int, default=2)
    parser.add_argument("--think", type=float, default=0.02, help="seconds between a client's requests")
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--workers", type=int, default=2, help="service.extract_workers")
    parser.add_argument("--idle", type=float, default=3.0, help="idle seconds measured after the run")
    parser.add_argument("--no-tables", action="store_true")
    parser.add_argument("--pdf", type=Path, default=DEFAULT_PDF)
    args = parser.parse_args()

    import tempfile

    import docmill
    from docmill.service.extract import ExtractService
    from docmill.service.overrides import ExtractChoice
    from docmill.settings import load_settings

    with tempfile.TemporaryDirectory() as data:
        settings = load_settings(env={}, overrides={
            "service.data_dir": data, "service.extract_workers": str(args.workers),
        })
        service = ExtractService(settings)
        service.start()
        overrides = {} if args.no_tables else {"extract.tables": True}
        choice = ExtractChoice(overrides, None, settings.service.extract_max_pages)
        for _ in range(2 * args.workers):  # warm: every worker has the options
            assert service.submit(str(args.pdf), choice).result(60).status.value == "done"
        (driver,) = [t for t in threading.enumerate() if t.name == "docmill-extract"]
        latencies: list[float] = []
        own: list[float] = []  # latency less the worker's parse time
        lock = threading.Lock()
        end = time.monotonic() + args.duration

        def client(seed: int) -> None:
            rng = random.Random(seed)
            while time.monotonic() < end:
                started = time.monotonic()
                outcome = service.submit(str(args.pdf), choice).result(60)
                took = time.monotonic() - started
                with lock:
                    latencies.append(took)
                    own.append(took - outcome.parse_s)
                time.sleep(args.think * rng.uniform(0.5, 1.5))

        cpu0, turns0, t0 = _cpu_s(driver), getattr(service, "turns", 0), time.monotonic()
        proc0 = sum(os.times()[:2])
        threads = [threading.Thread(target=client, args=(i,)) for i in range(args.clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.monotonic() - t0
        cpu1, turns1 = _cpu_s(driver), getattr(service, "turns", 0)
        proc1 = sum(os.times()[:2])
        time.sleep(0.2)
        idle0 = _cpu_s(driver)
        time.sleep(args.idle)
        idle1 = _cpu_s(driver)
        service.stop()
    n = len(latencies)
    ms = [x * 1000 for x in latencies]
    turns = f"{(turns1 - turns0) / n:.2f}" if hasattr(service, "turns") else "n/a"
    print(f"docmill {Path(docmill.__file__).resolve().parents[1]}")
    print(f"clients {args.clients} think {args.think}s tables {not args.no_tables} workers {args.workers}")
    print(f"extracts {n} ({n / wall:.1f}/s)  latency p50 {statistics.median(ms):.1f} ms  "
          f"p95 {_pct(ms, 0.95):.1f} ms  mean {statistics.fmean(ms):.1f} ms")
    own_ms = [x * 1000 for x in own]
    print(f"service's own part (latency - parse_s): p50 {statistics.median(own_ms):.2f} ms  "
          f"mean {statistics.fmean(own_ms):.2f} ms")
    print(f"driver CPU {1000 * (cpu1 - cpu0) / n:.3f} ms an extract (process: "
          f"{1000 * (proc1 - proc0) / n:.3f})  turns an extract {turns}  "
          f"idle: {1000 * (idle1 - idle0) / args.idle:.3f} ms CPU a second")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
