#!/usr/bin/env python3
"""Run figures (a) throughput, (b) memory and (c) start-up, then print one summary.

Each benchmark runs as its own process (so none inherits another's memory or imports)
and writes bench/results/<name>.json; the summary is read back from those files and
also written to bench/results/summary.json. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from corpus import RESULTS, ensure_venv, write_results

BENCH = Path(__file__).resolve().parent
ORDER = ("throughput", "memory", "startup")


def run_one(name: str, extra: list[str]) -> tuple[int, float]:
    started = time.perf_counter()
    result = json_path(name)
    argv = [sys.executable, str(BENCH / f"{name}.py"), "--json", str(result), *extra]
    print(f"== {name}: {' '.join(argv[1:])}", flush=True)
    code = subprocess.run(argv, check=False).returncode
    return code, time.perf_counter() - started


def json_path(name: str) -> Path:
    return RESULTS / f"{name}.json"


def load(name: str) -> dict[str, Any] | None:
    try:
        data: dict[str, Any] = json.loads(json_path(name).read_text())
    except (OSError, ValueError):
        return None
    return data


def mark(ok: bool | None) -> str:
    return "-" if ok is None else ("met" if ok else "NOT met")


def summary_rows(figures: dict[str, dict[str, Any] | None]) -> list[tuple[str, str, str, str]]:
    rows: list[tuple[str, str, str, str]] = []
    a = figures.get("throughput")
    if a:
        rows.append(
            (
                "(a) docmill / (W x raw)",
                f"{a['ratio']:.3f}  ({a['docmill_pages_per_s']:,.0f} / ({a['workers']} x {a['raw_pages_per_s']:,.0f}) pages/s)",
                ">= 0.90",
                mark(a["meets_target"]),
            )
        )
        if a.get("foreign_load", 0.0) > 0.05:
            rows.append(
                (
                    "    WARNING",
                    f"other processes used up to {a['foreign_load']:.0%} of the machine",
                    "",
                    "unreliable",
                )
            )
        if a.get("machine_scaling"):
            rows.append(
                (
                    "    machine: raw xW / (W x raw)",
                    f"{a['machine_scaling']:.3f}  (docmill / raw xW {a['docmill_vs_raw_parallel']:.3f})",
                    "",
                    "",
                )
            )
    b = figures.get("memory")
    if b:
        n = b["copies_large"]
        large, small = b["runs"][f"{n}x"], b["runs"]["1x"]
        rows.append(
            (
                f"(b) driver peak {n}x / 1x",
                f"{b['driver_ratio']:.3f}  ({small['driver_peak_rss'] / 2**20:.1f} -> {large['driver_peak_rss'] / 2**20:.1f} MiB)",
                "<= 1.2",
                mark(b["meets_target"]),
            )
        )
        rows.append(
            (
                "    worker peak",
                f"{small['worker_peak_rss'] / 2**20:.1f} -> {large['worker_peak_rss'] / 2**20:.1f} MiB",
                "",
                "",
            )
        )
    c = figures.get("startup")
    if c:
        rows.append(
            (
                f"(c) run on {c['files']} small PDFs",
                f"{c['run_median_s']:.3f} s median  (--version {c['version_median_s']:.3f} s)",
                f"<= {c['target_s']} s",
                mark(c["meets_target"]),
            )
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    ensure_venv()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--only",
        action="append",
        choices=ORDER,
        help="run only this benchmark (repeatable; default: all three)",
    )
    parser.add_argument(
        "--summary-only",
        action="store_true",
        help="run nothing; summarise the existing bench/results/*.json",
    )
    parser.add_argument("--workers", type=int, help="passed to every benchmark")
    args = parser.parse_args(argv)
    extra = ["--workers", str(args.workers)] if args.workers else []
    codes: dict[str, int] = {}
    seconds: dict[str, float] = {}
    if not args.summary_only:
        for name in args.only or ORDER:
            codes[name], seconds[name] = run_one(name, extra)
            print(flush=True)
    figures = {name: load(name) for name in ORDER}
    rows = summary_rows(figures)
    print("Summary")
    if rows:
        widths = [max(len(r[i]) for r in rows) for i in range(3)]
        print(
            f"  {'figure':<{widths[0]}}  {'measured':<{widths[1]}}  {'target':<{widths[2]}}  result"
        )
        for r in rows:
            print(f"  {r[0]:<{widths[0]}}  {r[1]:<{widths[1]}}  {r[2]:<{widths[2]}}  {r[3]}")
    for name, code in codes.items():
        if code != 0:
            print(
                f"  {name} failed (exit {code}); its figures above, if any, are from an earlier run"
            )
    stale = [n for n in ORDER if figures[n] and n not in codes]
    for name in stale:
        print(f"  {name}: figures from {(figures[name] or {}).get('measured_at')} (not run now)")
    write_results(
        "summary",
        {
            "exit_codes": codes,
            "seconds": seconds,
            "figures": {
                r[0].strip(): {"measured": r[1], "target": r[2], "result": r[3]} for r in rows
            },
        },
    )
    return 1 if any(codes.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
