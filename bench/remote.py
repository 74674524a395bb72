#!/usr/bin/env python3
"""Remote sources: docmill's pages/s reading the corpus from S3 against from local disk.

    ratio = pages/s (s3://bucket/corpus) / pages/s (the same files on local disk)   target >= 0.8

The corpus is ../shared/corpus/real (``--copies`` copies, each file with unique bytes).
The S3 store is moto's server (``ThreadedMotoServer``) in this process, on loopback, so
the server's CPU is taken from the same cores docmill uses; the files are uploaded
through its S3 API before anything is timed.

- local: ``docmill run CORPUS --out TMP --workers W --quiet``, wall clock from start to
  exit, pages from ``docmill status --json``;
- s3: ``docmill run s3://bench/corpus --out TMP2 ...`` with ``AWS_ENDPOINT_URL`` at the
  server and fake credentials in the environment, as a user would run it: listing,
  downloads into the spool (throttled at the default ``sources.requests_per_s``),
  hashing and the same processing.

``--rounds N`` alternates the two N times and reports medians (and each round's
ratio). Nothing is asserted.
"""

from __future__ import annotations

import argparse
import logging
import os
import socket
import statistics
import sys
from pathlib import Path
from typing import Any

from corpus import (
    SOURCE,
    TEXT_LAYER_ONLY,
    add_output_args,
    check_run,
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

TARGET = 0.8
BUCKET = "bench"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_s3(files: list[Path], root: Path) -> tuple[Any, str]:
    """moto's S3 server on a free loopback port, the corpus uploaded under corpus/."""
    import boto3
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    client = boto3.client(
        "s3", endpoint_url=endpoint, region_name="us-east-1",
        aws_access_key_id="bench", aws_secret_access_key="bench-secret",
    )
    client.create_bucket(Bucket=BUCKET)
    for path in files:
        key = "corpus/" + path.relative_to(root).as_posix()
        client.put_object(Bucket=BUCKET, Key=key, Body=path.read_bytes())
    return server, endpoint


def measure(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    workers = args.workers or usable_cores()
    corpus = tmp / "corpus"
    n_files, _pages = make_corpus(corpus, args.copies, args.source)
    files = corpus_files(corpus)
    server, endpoint = start_s3(files, corpus)
    os.environ.update(
        AWS_ENDPOINT_URL=endpoint, AWS_ACCESS_KEY_ID="bench",
        AWS_SECRET_ACCESS_KEY="bench-secret", AWS_DEFAULT_REGION="us-east-1",
        AWS_EC2_METADATA_DISABLED="true",
    )
    extra = [*TEXT_LAYER_ONLY, *args.set_args]
    rounds: list[dict[str, float]] = []
    try:
        for r in range(args.rounds):
            figures: dict[str, float] = {}
            for kind, sources in (("local", [corpus]), ("s3", [f"s3://{BUCKET}/corpus"])):
                out = tmp / f"out-{kind}-{r}"
                run = docmill_run(sources, out, workers, extra)  # type: ignore[arg-type]
                check_run(run, f"docmill run ({kind})")
                status = docmill_status(out)
                pages = int(status.get("pages", 0))
                figures[f"{kind}_pages"] = pages
                figures[f"{kind}_wall_s"] = run.wall_s
                figures[f"{kind}_pages_per_s"] = pages / run.wall_s
                if kind == "s3":
                    spool = out / "spool"
                    figures["spool_left"] = len(list(spool.iterdir())) if spool.is_dir() else 0
            figures["ratio"] = figures["s3_pages_per_s"] / figures["local_pages_per_s"]
            rounds.append(figures)
            print(f"  round {r + 1}: local {figures['local_pages_per_s']:.1f} pages/s, "
                  f"s3 {figures['s3_pages_per_s']:.1f} pages/s, ratio {figures['ratio']:.3f}",
                  file=sys.stderr)
    finally:
        server.stop()

    def median(key: str) -> float:
        return float(statistics.median(r[key] for r in rounds))

    return {
        "target": TARGET,
        "ratio": median("ratio"),
        "ratios": [round(r["ratio"], 3) for r in rounds],
        "local_pages_per_s": median("local_pages_per_s"),
        "s3_pages_per_s": median("s3_pages_per_s"),
        "pages": rounds[0]["local_pages"],
        "s3_pages": rounds[0]["s3_pages"],
        "files": n_files,
        "workers": workers,
        "rounds": args.rounds,
        "others_share": idle_share(),
    }


def report(fig: dict[str, Any]) -> str:
    ok = "meets" if fig["ratio"] >= fig["target"] else "misses"
    return "remote sources (moto S3 on loopback) against local disk\n" + table(
        [
            ("corpus", f"{fig['files']} files, {fig['pages']} pages ({fig['s3_pages']} from S3)"),
            ("workers", str(fig["workers"])),
            ("local", f"{fig['local_pages_per_s']:.1f} pages/s"),
            ("s3", f"{fig['s3_pages_per_s']:.1f} pages/s"),
            ("ratio", f"{fig['ratio']:.3f} ({ok} the target {fig['target']}); rounds "
                      f"{', '.join(map(str, fig['ratios']))}"),
            ("others", f"{fig['others_share']:.0%} of the machine busy with other work"),
        ]
    )


def main(argv: list[str] | None = None) -> int:
    ensure_venv()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", type=Path, default=SOURCE, help="corpus folder (PDFs)")
    parser.add_argument("--copies", type=int, default=1, help="copies of the corpus (default 1)")
    parser.add_argument("--workers", type=int, default=0, help="worker processes (default: cores)")
    parser.add_argument("--rounds", type=int, default=3, help="local/S3 pairs (median)")
    parser.add_argument(
        "--set", action="append", default=[], dest="sets", metavar="KEY=VALUE",
        help="a docmill setting for both runs (repeatable)",
    )
    add_output_args(parser, "remote")
    args = parser.parse_args(argv)
    args.set_args = [x for s in args.sets for x in ("--set", s)]
    return run_benchmark("remote", args, measure, report)


if __name__ == "__main__":
    sys.exit(main())
