#!/usr/bin/env python3
"""The Ray executor: pages/s on a two-node loopback Ray cluster against the local pool
with the same number of CPUs, and the driver's CPU per document.

    ratio = pages/s (--executor ray, 2 nodes x 1 CPU) / pages/s (--workers 2)   target >= 0.85

The cluster is ``tests/ray_kit.py``'s (``ray start --head`` and a second node joined
with ``ray start --address``, each ``--num-cpus 1``, 100 MB object stores, no dashboard,
usage stats off, on 127.0.0.2), started once before anything is timed; its start time
is reported apart. It runs on the same cores as the local runs and the driver, with its
own daemons (GCS, raylets, agents) beside them. The corpus is ../shared/corpus/real
(``--copies`` copies, each file with unique bytes), text layer only.

- local: ``docmill run CORPUS --out TMP --workers 2 --quiet``;
- ray: ``docmill run CORPUS --out TMP2 --executor ray --set run.ray_address=... --quiet``,
  wall clock from start to exit: joining the cluster and the Ray job's worker processes
  starting are part of it. The driver's CPU (user + system of the ``docmill`` process:
  with the Ray executor it starts no worker process) ÷ documents is the driver's cost a
  document; the same run on one small file gives its fixed part (importing Ray, joining
  the cluster, the job), so the cost a document is also given without it. Over this
  corpus that is mostly time (Ray's own threads in the driver), so the driver's cost at
  a high rate is measured too: ``--tiny`` small text files (default 20,000; a line each,
  ``bench/driver.py``'s) through the same cluster, documents/s and the driver's CPU a
  document without the fixed part.

``--rounds N`` alternates the two N times and reports medians. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from corpus import (
    REPO,
    SOURCE,
    TEXT_LAYER_ONLY,
    add_output_args,
    check_run,
    docmill_run,
    docmill_status,
    ensure_venv,
    idle_share,
    make_corpus,
    run_benchmark,
    table,
)
from driver import make_files

TARGET = 0.85


def measure(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    sys.path.insert(0, str(REPO / "tests"))
    from ray_kit import RayCluster

    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    corpus = tmp / "corpus"
    n_files, _pages = make_corpus(corpus, args.copies, args.source)
    began = time.perf_counter()
    cluster = RayCluster.start((1, 1))  # before any run: its daemons are not our orphans
    start_s = time.perf_counter() - began
    cpus = 2
    extra = [*TEXT_LAYER_ONLY, *args.set_args]
    ray = ["--executor", "ray", "--set", f"run.ray_address={cluster.address}"]
    rounds: list[dict[str, float]] = []
    one = tmp / "one"
    one.mkdir()
    first = sorted(corpus.rglob("*.pdf"))[0]
    (one / first.name).write_bytes(first.read_bytes())
    try:
        fixed = docmill_run([one], tmp / "out-one", cpus, [*extra, *ray])
        check_run(fixed, "docmill run (ray, one file)")
        for r in range(args.rounds):
            figures: dict[str, float] = {}
            for kind, more in (("local", []), ("ray", ray)):
                out = tmp / f"out-{kind}-{r}"
                run = docmill_run([corpus], out, cpus, [*extra, *more])
                check_run(run, f"docmill run ({kind})")
                status = docmill_status(out)
                pages = int(status.get("pages", 0))
                docs = int(status.get("documents", 0))
                figures[f"{kind}_pages"] = pages
                figures[f"{kind}_wall_s"] = run.wall_s
                figures[f"{kind}_pages_per_s"] = pages / run.wall_s
                figures[f"{kind}_cpu_ms_per_doc"] = run.cpu_s / max(1, docs) * 1000
            figures["ratio"] = figures["ray_pages_per_s"] / figures["local_pages_per_s"]
            figures["ray_marginal_ms_per_doc"] = (
                (figures["ray_cpu_ms_per_doc"] * docs / 1000 - fixed.cpu_s) / max(1, docs - 1) * 1000
            )
            rounds.append(figures)
            print(f"  round {r + 1}: local {figures['local_pages_per_s']:.1f} pages/s, "
                  f"ray {figures['ray_pages_per_s']:.1f} pages/s, ratio {figures['ratio']:.3f}, "
                  f"driver {figures['ray_cpu_ms_per_doc']:.2f} ms CPU a document",
                  file=sys.stderr)
        tiny = tmp / "tiny"
        make_files(tiny, args.tiny)
        fast = docmill_run([tiny], tmp / "out-tiny", cpus, [*extra, *ray])
        check_run(fast, "docmill run (ray, small text files)")
    finally:
        cluster.stop()

    def median(key: str) -> float:
        return float(statistics.median(r[key] for r in rounds))

    return {
        "target": TARGET,
        "ratio": median("ratio"),
        "ratios": [round(r["ratio"], 3) for r in rounds],
        "local_pages_per_s": median("local_pages_per_s"),
        "ray_pages_per_s": median("ray_pages_per_s"),
        "ray_driver_cpu_ms_per_doc": median("ray_cpu_ms_per_doc"),
        "ray_driver_marginal_ms_per_doc": median("ray_marginal_ms_per_doc"),
        "ray_driver_fixed_cpu_s": fixed.cpu_s,
        "tiny_files": args.tiny,
        "tiny_docs_per_s": args.tiny / fast.wall_s,
        "tiny_driver_ms_per_doc": (fast.cpu_s - fixed.cpu_s) / max(1, args.tiny) * 1000,
        "local_cpu_ms_per_doc": median("local_cpu_ms_per_doc"),
        "cluster_start_s": start_s,
        "pages": rounds[0]["local_pages"],
        "ray_pages": rounds[0]["ray_pages"],
        "files": n_files,
        "cpus": cpus,
        "rounds": args.rounds,
        "others_share": idle_share(),
    }


def report(fig: dict[str, Any]) -> str:
    ok = "meets" if fig["ratio"] >= fig["target"] else "misses"
    return "the Ray executor (2 nodes x 1 CPU on loopback) against the local pool (2 workers)\n" + table(
        [
            ("corpus", f"{fig['files']} files, {fig['pages']} pages ({fig['ray_pages']} on Ray)"),
            ("cluster", f"started in {fig['cluster_start_s']:.1f} s (apart; not in the runs)"),
            ("local", f"{fig['local_pages_per_s']:.1f} pages/s"),
            ("ray", f"{fig['ray_pages_per_s']:.1f} pages/s"),
            ("ratio", f"{fig['ratio']:.3f} ({ok} the target {fig['target']}); rounds "
                      f"{', '.join(map(str, fig['ratios']))}"),
            ("driver", f"{fig['ray_driver_cpu_ms_per_doc']:.2f} ms CPU a document with Ray, "
                       f"{fig['ray_driver_marginal_ms_per_doc']:.2f} ms without the fixed "
                       f"{fig['ray_driver_fixed_cpu_s']:.2f} CPU-s of a run (import, join, "
                       f"job); the local run: {fig['local_cpu_ms_per_doc']:.2f} ms, its "
                       "workers included"),
            ("high rate", f"{fig['tiny_files']:,} small text files: "
                          f"{fig['tiny_docs_per_s']:,.0f} documents/s, the driver "
                          f"{fig['tiny_driver_ms_per_doc']:.3f} ms CPU a document "
                          "without the fixed part"),
            ("others", f"{fig['others_share']:.0%} of the machine busy with other work"),
        ]
    )


def main(argv: list[str] | None = None) -> int:
    ensure_venv()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", type=Path, default=SOURCE, help="corpus folder (PDFs)")
    parser.add_argument("--copies", type=int, default=10, help="copies of the corpus (default 10)")
    parser.add_argument("--rounds", type=int, default=3, help="local/ray pairs (median)")
    parser.add_argument(
        "--tiny", type=int, default=20_000, help="small text files for the driver's rate"
    )
    parser.add_argument(
        "--set", action="append", default=[], dest="sets", metavar="KEY=VALUE",
        help="a docmill setting for both runs (repeatable)",
    )
    add_output_args(parser, "cluster")
    args = parser.parse_args(argv)
    args.set_args = [x for s in args.sets for x in ("--set", s)]
    return run_benchmark("cluster", args, measure, report)


if __name__ == "__main__":
    sys.exit(main())
