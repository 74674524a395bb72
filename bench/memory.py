#!/usr/bin/env python3
"""Figure (b): peak resident memory of docmill's driver and workers at 1x and Nx the corpus.

    ratio = driver peak RSS (Nx corpus) / driver peak RSS (1x corpus)      target <= 1.2

``docmill run`` runs as a subprocess, sampled with psutil every ``--interval`` seconds
(default 50 ms):

- driver: the subprocess itself;
- workers: its descendants, except multiprocessing's helpers: the forkserver (a child
  of the driver whose command line holds ``forkserver``; the workers are forked from it,
  so they are its children and share its command line) and the resource tracker;
- peaks: the largest sampled RSS of the driver, and the largest over all workers (each
  worker is recycled after ``run.recycle_after`` tasks, so many come and go). On Linux
  the kernel's own high-water mark (VmHWM, read at every sample) is reported beside it:
  it also catches peaks between samples.
- CPU seconds of the driver and of all workers (last sampled values), a by-product.

1x is one copy of ../shared/corpus/real; Nx is N copies (``--copies-large``, default 10),
each file with unique bytes so docmill's dedup skips nothing. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from corpus import (
    SOURCE,
    TEXT_LAYER_ONLY,
    add_output_args,
    docmill_status,
    ensure_venv,
    idle_share,
    make_corpus,
    run_benchmark,
    table,
    tool,
    usable_cores,
)

if TYPE_CHECKING:
    import psutil

TARGET = 1.2
MB = 1024 * 1024


def vm_hwm(pid: int) -> int | None:
    """The kernel's peak RSS of ``pid`` in bytes (Linux), None when unknown."""
    try:
        with open(f"/proc/{pid}/status") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


@dataclass
class Sampled:
    """What the sampler saw during one run."""

    wall_s: float = 0.0
    returncode: int = 0
    samples: int = 0
    driver_peak_rss: int = 0
    driver_hwm: int = 0
    worker_peak_rss: int = 0
    worker_hwm: int = 0
    forkserver_peak_rss: int = 0
    workers_seen: int = 0
    max_workers_alive: int = 0
    driver_cpu_s: float = 0.0
    workers_cpu_s: float = 0.0
    worker_cpu: dict[int, float] = field(default_factory=dict)


def _classify(driver: psutil.Process) -> tuple[list[psutil.Process], list[psutil.Process]]:
    """(helpers, workers) among the driver's descendants."""
    import psutil

    helpers: list[psutil.Process] = []
    workers: list[psutil.Process] = []
    helper_pids: set[int] = set()
    try:
        children = driver.children(recursive=False)
    except psutil.Error:
        return helpers, workers
    for child in children:
        try:
            cmdline = " ".join(child.cmdline())
        except psutil.Error:
            continue
        if "forkserver" in cmdline or "resource_tracker" in cmdline:
            helpers.append(child)
            helper_pids.add(child.pid)
        else:
            workers.append(child)  # another start method: workers are direct children
    for helper in list(helpers):
        try:
            workers.extend(helper.children(recursive=True))
        except psutil.Error:
            continue
    return helpers, workers


def sample_run(argv: list[str], interval: float) -> Sampled:
    """Run ``argv`` and sample it and its descendants until it exits."""
    import psutil

    seen = Sampled()
    started = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    driver = psutil.Process(proc.pid)
    worker_pids: set[int] = set()
    while proc.poll() is None:
        try:
            with driver.oneshot():
                seen.driver_peak_rss = max(seen.driver_peak_rss, driver.memory_info().rss)
                seen.driver_cpu_s = sum(driver.cpu_times()[:2])
        except psutil.Error:
            break
        seen.driver_hwm = max(seen.driver_hwm, vm_hwm(proc.pid) or 0)
        helpers, workers = _classify(driver)
        for helper in helpers:
            try:
                if "forkserver" in " ".join(helper.cmdline()):
                    rss = helper.memory_info().rss
                    seen.forkserver_peak_rss = max(seen.forkserver_peak_rss, rss)
            except psutil.Error:
                pass
        alive = 0
        for worker in workers:
            try:
                with worker.oneshot():
                    rss = worker.memory_info().rss
                    cpu = sum(worker.cpu_times()[:2])
            except psutil.Error:
                continue
            alive += 1
            worker_pids.add(worker.pid)
            seen.worker_peak_rss = max(seen.worker_peak_rss, rss)
            seen.worker_hwm = max(seen.worker_hwm, vm_hwm(worker.pid) or 0)
            seen.worker_cpu[worker.pid] = cpu
        seen.max_workers_alive = max(seen.max_workers_alive, alive)
        seen.samples += 1
        time.sleep(interval)
    _out, err = proc.communicate()
    seen.wall_s = time.perf_counter() - started
    seen.returncode = proc.returncode
    if proc.returncode != 0:
        raise SystemExit(f"bench: docmill run exited with {proc.returncode}:\n{err[-2000:]}")
    seen.workers_seen = len(worker_pids)
    seen.workers_cpu_s = sum(seen.worker_cpu.values())
    return seen


def measure_one(sources: Path, out: Path, workers: int, interval: float) -> dict[str, Any]:
    argv = [
        tool("docmill"),
        "run",
        str(sources),
        "--out",
        str(out),
        "--workers",
        str(workers),
        "--quiet",
        *TEXT_LAYER_ONLY,
    ]
    seen = sample_run(argv, interval)
    status = docmill_status(out)
    figures = asdict(seen)
    del figures["worker_cpu"]
    figures["documents"] = status["documents"]
    figures["pages"] = status["pages"]
    figures["counts"] = status["counts"]
    return figures


def measure(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    corpus = work / "corpus"
    files, pages = make_corpus(corpus, args.copies_large, args.source)
    print(
        f"corpus: {files:,} files, {pages:,} readable pages ({args.copies_large} copies)",
        file=sys.stderr,
    )
    busy = idle_share(1.0)
    small = measure_one(corpus / "copy-000", work / "out-1x", args.workers, args.interval)
    print(f"  1x: {small['pages']:,} pages in {small['wall_s']:.1f}s", file=sys.stderr)
    large = measure_one(corpus, work / f"out-{args.copies_large}x", args.workers, args.interval)
    print(
        f"  {args.copies_large}x: {large['pages']:,} pages in {large['wall_s']:.1f}s",
        file=sys.stderr,
    )
    ratio = large["driver_peak_rss"] / small["driver_peak_rss"]
    hwm_ratio = (
        large["driver_hwm"] / small["driver_hwm"]
        if small["driver_hwm"] and large["driver_hwm"]
        else None
    )
    return {
        "workers": args.workers,
        "interval_s": args.interval,
        "foreign_load_before": busy,
        "copies_large": args.copies_large,
        "runs": {"1x": small, f"{args.copies_large}x": large},
        "driver_ratio": ratio,
        "driver_hwm_ratio": hwm_ratio,
        "worker_ratio": (
            large["worker_peak_rss"] / small["worker_peak_rss"]
            if small["worker_peak_rss"]
            else None
        ),
        "target": f"<= {TARGET}",
        "meets_target": ratio <= TARGET,
    }


def report(fig: dict[str, Any]) -> str:
    n = fig["copies_large"]
    small, large = fig["runs"]["1x"], fig["runs"][f"{n}x"]

    def mb(value: int) -> str:
        return f"{value / MB:,.1f}" if value else "-"

    header = f"  {'':<26} {'1x':>12} {f'{n}x':>12}"
    lines = [
        "Figure (b): memory (MiB)",
        header,
        *(
            f"  {label:<26} {a:>12} {b:>12}"
            for label, a, b in (
                (
                    "documents / pages",
                    f"{small['documents']:,}/{small['pages']:,}",
                    f"{large['documents']:,}/{large['pages']:,}",
                ),
                ("wall s", f"{small['wall_s']:.1f}", f"{large['wall_s']:.1f}"),
                (
                    "driver peak RSS (sampled)",
                    mb(small["driver_peak_rss"]),
                    mb(large["driver_peak_rss"]),
                ),
                ("driver VmHWM", mb(small["driver_hwm"]), mb(large["driver_hwm"])),
                (
                    "worker peak RSS (max)",
                    mb(small["worker_peak_rss"]),
                    mb(large["worker_peak_rss"]),
                ),
                ("worker VmHWM (max)", mb(small["worker_hwm"]), mb(large["worker_hwm"])),
                (
                    "forkserver peak RSS",
                    mb(small["forkserver_peak_rss"]),
                    mb(large["forkserver_peak_rss"]),
                ),
                (
                    "workers seen / max alive",
                    f"{small['workers_seen']}/{small['max_workers_alive']}",
                    f"{large['workers_seen']}/{large['max_workers_alive']}",
                ),
                (
                    "CPU s driver / workers",
                    f"{small['driver_cpu_s']:.1f}/{small['workers_cpu_s']:.1f}",
                    f"{large['driver_cpu_s']:.1f}/{large['workers_cpu_s']:.1f}",
                ),
                ("samples", str(small["samples"]), str(large["samples"])),
            )
        ),
    ]
    rows = [
        (
            f"driver peak {n}x / 1x",
            f"{fig['driver_ratio']:.3f}   target <= {TARGET} "
            + ("(met)" if fig["meets_target"] else "(NOT met)"),
        )
    ]
    if fig["driver_hwm_ratio"]:
        rows.append(("  same by VmHWM", f"{fig['driver_hwm_ratio']:.3f}"))
    rows.append(("other load before start", f"{fig['foreign_load_before']:.1%} of the machine"))
    if fig["worker_ratio"]:
        rows.append((f"worker peak {n}x / 1x", f"{fig['worker_ratio']:.3f}"))
    return "\n".join(lines) + "\n" + table(rows)


def main(argv: list[str] | None = None) -> int:
    ensure_venv()
    parser = argparse.ArgumentParser(
        description="Figure (b): driver and worker peak RSS at 1x and Nx the corpus."
    )
    parser.add_argument(
        "--source", type=Path, default=SOURCE, help="corpus folder (default: %(default)s)"
    )
    parser.add_argument(
        "--copies-large",
        type=int,
        default=10,
        help="copies for the large run (default: %(default)s)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=usable_cores(),
        help="docmill --workers (default: %(default)s)",
    )
    parser.add_argument(
        "--interval",
        type=float,
        default=0.05,
        help="sampling interval in seconds (default: %(default)s)",
    )
    add_output_args(parser, "memory")
    return run_benchmark("memory", parser.parse_args(argv), measure, report)


if __name__ == "__main__":
    sys.exit(main())
