#!/usr/bin/env python3
"""Figure (a): docmill's parallel efficiency against the raw parser.

    ratio = docmill pages/s / (workers x raw single-process pages/s)      target >= 0.90

The corpus is ../shared/corpus/real repeated until it has at least ``--min-pages``
readable pages (every copy with unique bytes, so docmill's dedup skips nothing).

- raw: this process, pypdfium2, each file opened, every page's text
  (``get_textpage().get_text_bounded()``), everything closed; files that raise are
  skipped. No workers, no ledger, no output. Measured before and again after docmill
  in each round; the round's raw figure is the mean of the two (a shared machine's speed
  drifts by several per cent within a minute).
- docmill: ``docmill run CORPUS --out TMP --workers W --quiet`` as a subprocess, timed
  by wall clock from start to exit (interpreter start, forkserver, ledger, hashing and
  part files included); pages from ``docmill status TMP --json``.
- raw xW (diagnostic, ``--no-parallel`` skips it): W raw-parser processes sharing the
  files. It shows what the machine itself gives W processes: on a shared or small VM it
  is often well under W x raw, and then no engine can reach the target there.

Each round measures raw, raw xW, docmill and raw again back to back; with ``--rounds N``
the figures are medians over the rounds, and the ratio of each round is printed too.
Everything comes from one invocation; nothing is asserted (timings are not tests).
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from corpus import (
    SOURCE,
    TEXT_LAYER_ONLY,
    CpuProbe,
    add_output_args,
    check_run,
    copies_for,
    corpus_files,
    docmill_run,
    docmill_status,
    ensure_venv,
    idle_share,
    make_corpus,
    run_benchmark,
    table,
    usable_cores,
)

TARGET = 0.90
BUSY = 0.05  # above this share of the machine used by others, warn


def raw_pass(files: list[Path]) -> tuple[int, float, int]:
    """(pages, seconds, files skipped): the raw parser over ``files``, one process.
    ``raw_cpu_s`` below gives its CPU time."""
    import pypdfium2 as pdfium

    pages = 0
    skipped = 0
    started = time.perf_counter()
    for path in files:
        try:
            doc = pdfium.PdfDocument(str(path))
        except Exception:
            skipped += 1
            continue
        try:
            for index in range(len(doc)):
                page = doc[index]
                try:
                    textpage = page.get_textpage()
                    try:
                        textpage.get_text_bounded()
                    finally:
                        textpage.close()
                finally:
                    page.close()
                pages += 1
        except Exception:
            skipped += 1
        finally:
            doc.close()
    return pages, time.perf_counter() - started, skipped


def _parallel_worker(files: list[str], counter: Any, ready: Any, results: Any) -> None:
    """One of W raw-parser processes: take file indexes from a shared counter."""
    import pypdfium2  # noqa: F401  (imported before the clock starts)

    ready.wait()
    started = time.perf_counter()  # CLOCK_MONOTONIC: comparable across processes
    pages = 0
    while True:
        with counter.get_lock():
            index = counter.value
            counter.value += 1
        if index >= len(files):
            break
        pages += raw_pass([Path(files[index])])[0]
    results.put((pages, started, time.perf_counter()))


def raw_parallel(files: list[Path], processes: int) -> tuple[int, float]:
    """(pages, seconds): W raw-parser processes sharing the files, one file at a time.

    Timed from the moment all W processes have imported pypdfium2 to the moment the
    last one is done.
    """
    ctx = multiprocessing.get_context("spawn")
    counter = ctx.Value("q", 0)
    ready = ctx.Barrier(processes)
    results = ctx.Queue()
    names = [str(p) for p in files]
    procs = [
        ctx.Process(target=_parallel_worker, args=(names, counter, ready, results))
        for _ in range(processes)
    ]
    for proc in procs:
        proc.start()
    figures = [results.get() for _ in procs]
    for proc in procs:
        proc.join()
    pages = sum(f[0] for f in figures)
    return pages, max(f[2] for f in figures) - min(f[1] for f in figures)


def timed_raw_pass(paths: list[Path], label: str) -> dict[str, Any]:
    """The raw parser over ``paths`` in this process: pages, seconds, CPU, foreign load."""
    with CpuProbe() as probe:
        cpu0 = time.process_time()
        raw_pages, raw_s, skipped = raw_pass(paths)
        raw_cpu = time.process_time() - cpu0
    print(f"  {label}: {raw_pages:,} pages in {raw_s:.2f}s", file=sys.stderr)
    return {
        "pages": raw_pages,
        "seconds": raw_s,
        "skipped_files": skipped,
        "cpu_s": raw_cpu,
        "foreign_share": probe.foreign_share,
    }


def one_round(
    paths: list[Path], corpus: Path, out: Path, workers: int, parallel: bool
) -> dict[str, Any]:
    """raw, raw xW, docmill, raw again: the round's raw figure is the mean of the passes
    before and after docmill, so a machine that speeds up or slows down during the round
    moves both sides of the ratio alike."""
    figures: dict[str, Any] = {"raw_before": timed_raw_pass(paths, "raw")}
    if parallel:
        with CpuProbe() as probe:
            par_pages, par_s = raw_parallel(paths, workers)
        figures["raw_parallel"] = {
            "pages": par_pages,
            "seconds": par_s,
            "foreign_share": probe.foreign_share,
        }
        print(f"  raw x{workers}: {par_pages:,} pages in {par_s:.2f}s", file=sys.stderr)
    before = idle_share(1.0)  # docmill's workers escape rusage: probe the machine instead
    run = docmill_run([corpus], out, workers, TEXT_LAYER_ONLY)
    check_run(run, "docmill run")
    after = idle_share(1.0)
    status = docmill_status(out)
    figures["docmill"] = {
        "pages": int(status["pages"]),
        "seconds": run.wall_s,
        "cpu_s": run.cpu_s,
        "counts": status["counts"],
        "ledger_elapsed_s": (status.get("last_run") or {}).get("elapsed_s"),
        "foreign_share_around": max(before, after),
    }
    print(f"  docmill: {status['pages']:,} pages in {run.wall_s:.2f}s", file=sys.stderr)
    figures["raw_after"] = timed_raw_pass(paths, "raw again")
    before, after = figures["raw_before"], figures["raw_after"]
    figures["raw"] = {
        "pages": before["pages"],
        "seconds": (before["seconds"] + after["seconds"]) / 2,
        "skipped_files": before["skipped_files"],
        "cpu_s": (before["cpu_s"] + after["cpu_s"]) / 2,
        "foreign_share": max(before["foreign_share"], after["foreign_share"]),
    }
    return figures


def foreign_load(rounds: list[dict[str, Any]]) -> float:
    """The largest share of the machine other processes took during the measurements."""
    shares = [
        r[key].get(name, 0.0)
        for r in rounds
        for key, name in (
            ("raw", "foreign_share"),
            ("raw_parallel", "foreign_share"),
            ("docmill", "foreign_share_around"),
        )
        if key in r
    ]
    return max(shares, default=0.0)


def _pps(rounds: list[dict[str, Any]], key: str, seconds: str = "seconds") -> float | None:
    values = [
        r[key]["pages"] / r[key][seconds] for r in rounds if r.get(key) and r[key].get(seconds)
    ]
    return statistics.median(values) if values else None


def measure(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    copies = args.copies
    if copies is None:
        copies, _ = copies_for(args.min_pages, args.source)
    corpus = work / "corpus"
    t0 = time.perf_counter()
    files, pages = make_corpus(corpus, copies, args.source)
    print(
        f"corpus: {files:,} files, {pages:,} readable pages ({copies} copies of {args.source}),"
        f" written in {time.perf_counter() - t0:.1f}s",
        file=sys.stderr,
    )
    paths = corpus_files(corpus)
    rounds = []
    for number in range(args.rounds):
        print(f"round {number + 1}/{args.rounds}", file=sys.stderr)
        rounds.append(one_round(paths, corpus, work / f"out-{number}", args.workers, args.parallel))

    raw = _pps(rounds, "raw") or 0.0
    dm = _pps(rounds, "docmill") or 0.0
    par = _pps(rounds, "raw_parallel")
    ratio = dm / (args.workers * raw)
    cpu = [r["raw"]["cpu_s"] / r["docmill"]["cpu_s"] for r in rounds if r["docmill"]["cpu_s"]]
    per_round = [
        (r["docmill"]["pages"] / r["docmill"]["seconds"])
        / (args.workers * r["raw"]["pages"] / r["raw"]["seconds"])
        for r in rounds
    ]
    return {
        "corpus": {
            "source": str(args.source),
            "copies": copies,
            "files": files,
            "pages": pages,
            "copy_mode": "written, with a unique trailing comment per file",
        },
        "workers": args.workers,
        "rounds": rounds,
        "raw_pages_per_s": raw,
        "docmill_pages_per_s": dm,
        "docmill_pages_per_s_ledger_time": _pps(rounds, "docmill", "ledger_elapsed_s"),
        "raw_parallel_pages_per_s": par,
        "machine_scaling": par / (args.workers * raw) if par else None,
        "docmill_vs_raw_parallel": dm / par if par else None,
        "ratio": ratio,
        "ratio_by_round": per_round,
        "cpu_efficiency": statistics.median(cpu) if cpu else None,
        "foreign_load": foreign_load(rounds),
        "target": f">= {TARGET}",
        "meets_target": ratio >= TARGET,
    }


def report(fig: dict[str, Any]) -> str:
    w = fig["workers"]
    first = fig["rounds"][0]
    rows = [
        ("corpus", f"{fig['corpus']['files']:,} files, {fig['corpus']['pages']:,} pages"),
        ("raw parser, 1 process", f"{fig['raw_pages_per_s']:,.0f} pages/s"),
        ("docmill, wall start to exit", f"{fig['docmill_pages_per_s']:,.0f} pages/s"),
        ("workers W", str(w)),
        (
            "ratio docmill / (W x raw)",
            f"{fig['ratio']:.3f}   target >= {TARGET:.2f} "
            + ("(met)" if fig["meets_target"] else "(NOT met)"),
        ),
    ]
    if len(fig["ratio_by_round"]) > 1:
        rows.append(
            ("  ratio round by round", ", ".join(f"{x:.3f}" for x in fig["ratio_by_round"]))
        )
    if fig["raw_parallel_pages_per_s"]:
        rows += [
            (f"raw parser, {w} processes", f"{fig['raw_parallel_pages_per_s']:,.0f} pages/s"),
            ("  machine scaling raw xW / (W x raw)", f"{fig['machine_scaling']:.3f}"),
            ("  docmill / raw xW", f"{fig['docmill_vs_raw_parallel']:.3f}"),
        ]
    if fig["docmill_pages_per_s_ledger_time"]:
        rows.append(
            ("docmill, ledger's run time", f"{fig['docmill_pages_per_s_ledger_time']:,.0f} pages/s")
        )
    if fig.get("cpu_efficiency"):
        rows.append(
            (
                "CPU: raw CPU-s / docmill CPU-s",
                f"{fig['cpu_efficiency']:.3f}   (driver, forkserver and workers; the"
                " ratio's ceiling on an idle machine)",
            )
        )
    counts = first["docmill"]["counts"]
    rows.append(("docmill outcome", ", ".join(f"{k} {v:,}" for k, v in counts.items() if v)))
    if first["docmill"]["pages"] != first["raw"]["pages"]:
        rows.append(
            (
                "note",
                f"pages differ: docmill {first['docmill']['pages']:,}"
                f" vs raw {first['raw']['pages']:,}",
            )
        )
    if fig["foreign_load"] > BUSY:
        rows.append(
            (
                "WARNING",
                f"other processes used up to {fig['foreign_load']:.0%} of the machine while"
                " measuring: the figures are not reliable; run again on a quiet machine",
            )
        )
    else:
        rows.append(("other load while measuring", f"{fig['foreign_load']:.1%} of the machine"))
    if len(fig["rounds"]) > 1:
        rows.append(("rounds (medians)", str(len(fig["rounds"]))))
    return "Figure (a): throughput\n" + table(rows)


def main(argv: list[str] | None = None) -> int:
    ensure_venv()
    parser = argparse.ArgumentParser(
        description="Figure (a): docmill pages/s / (workers x raw parser pages/s)."
    )
    parser.add_argument(
        "--source", type=Path, default=SOURCE, help="corpus folder (default: %(default)s)"
    )
    parser.add_argument(
        "--min-pages",
        type=int,
        default=10_000,
        help="repeat the corpus to at least this many pages (default: %(default)s)",
    )
    parser.add_argument("--copies", type=int, help="number of copies (instead of --min-pages)")
    parser.add_argument(
        "--workers",
        type=int,
        default=usable_cores(),
        help="docmill --workers (default: the usable cores, %(default)s)",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="measure everything N times, report medians (default: %(default)s)",
    )
    parser.add_argument(
        "--no-parallel", dest="parallel", action="store_false", help="skip the raw xW diagnostic"
    )
    add_output_args(parser, "throughput")
    return run_benchmark("throughput", parser.parse_args(argv), measure, report)


if __name__ == "__main__":
    sys.exit(main())
