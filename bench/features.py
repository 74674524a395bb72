#!/usr/bin/env python3
"""Engine throughput with each extraction feature on, as a ratio to text only.

    ratio(feature) = docmill pages/s with the feature / docmill pages/s text only

The corpus is ../shared/corpus/real repeated ``--copies`` times (unique bytes per copy,
so dedup skips nothing). Each configuration is a full ``docmill run`` into a fresh
output folder, timed from start to exit, with the same workers; the configurations run
back to back, round after round, and the figures are medians over ``--rounds``.
Nothing is asserted (timings are not tests).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from corpus import (
    SOURCE,
    add_output_args,
    check_run,
    docmill_run,
    docmill_status,
    ensure_venv,
    make_corpus,
    run_benchmark,
    table,
    usable_cores,
)

CONFIGS: dict[str, list[str]] = {
    "text only": ["--set", "extract.ocr=never"],
    "tables": ["--set", "extract.ocr=never", "--set", "extract.tables=true"],
    "markdown": ["--set", "extract.ocr=never", "--set", "output.markdown=true"],
    "tables + markdown": [
        "--set",
        "extract.ocr=never",
        "--set",
        "extract.tables=true",
        "--set",
        "output.markdown=true",
    ],
    "ocr auto (default)": [],
}


def measure(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    corpus = work / "corpus"
    t0 = time.perf_counter()
    files, pages = make_corpus(corpus, args.copies, args.source)
    print(
        f"corpus: {files:,} files, {pages:,} readable pages ({args.copies} copies),"
        f" written in {time.perf_counter() - t0:.1f}s",
        file=sys.stderr,
    )
    runs: dict[str, list[float]] = {name: [] for name in CONFIGS}
    done_pages: dict[str, int] = {}
    for number in range(args.rounds):
        for name, extra in CONFIGS.items():
            out = work / f"out-{number}-{len(runs[name])}-{name.replace(' ', '_')}"
            run = docmill_run([corpus], out, args.workers, extra)
            check_run(run, f"docmill run ({name})")
            status = docmill_status(out)
            done_pages[name] = int(status["pages"])
            runs[name].append(int(status["pages"]) / run.wall_s)
            print(f"  {name}: {status['pages']:,} pages in {run.wall_s:.2f}s", file=sys.stderr)
    base = statistics.median(runs["text only"])
    return {
        "corpus": {"source": str(args.source), "copies": args.copies, "files": files, "pages": pages},
        "workers": args.workers,
        "rounds": args.rounds,
        "pages_per_s": {name: statistics.median(v) for name, v in runs.items()},
        "ratio_to_text_only": {name: statistics.median(v) / base for name, v in runs.items()},
        "pages": done_pages,
    }


def report(fig: dict[str, Any]) -> str:
    rows = [
        ("corpus", f"{fig['corpus']['files']:,} files, {fig['corpus']['pages']:,} pages"),
        ("workers", str(fig["workers"])),
    ]
    for name, pps in fig["pages_per_s"].items():
        ratio = fig["ratio_to_text_only"][name]
        rows.append((name, f"{pps:,.0f} pages/s   ratio to text only {ratio:.3f}"))
    if fig["rounds"] > 1:
        rows.append(("rounds (medians)", str(fig["rounds"])))
    return "Engine throughput by feature\n" + table(rows)


def main(argv: list[str] | None = None) -> int:
    ensure_venv()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=SOURCE, help="corpus folder")
    parser.add_argument("--copies", type=int, default=4, help="copies of the corpus (default 4)")
    parser.add_argument("--workers", type=int, default=usable_cores(), help="docmill workers")
    parser.add_argument("--rounds", type=int, default=1, help="rounds; medians are reported")
    add_output_args(parser, "features")
    args = parser.parse_args(argv)
    return run_benchmark("features", args, measure, report)


if __name__ == "__main__":
    raise SystemExit(main())
