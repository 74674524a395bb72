#!/usr/bin/env python3
"""Google Drive sources: what a run costs in Drive queries, from one run against the simulator.

    listing queries per file = (files.list + files.get + drives.list) / files listed

The tree is ``--files`` small text files spread over ``--folders`` folders under one root
folder (so ``--folders`` + 1 folders are walked), served by the Drive simulator
(``docmill.testkit.drive_sim``) in this process on loopback, without a quota or faults.
docmill runs as a user would: ``docmill run gdrive://ROOT --out TMP`` with a
service-account key by reference and ``sources.gdrive_page_size`` at its default (1,000),
then the simulator's counters give every query by kind. With pages of 1,000 the listing
costs about 0.001 query per file plus one per folder; every file then costs one download
(``alt=media``), or one export for a Google-native file. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from pathlib import Path
from typing import Any

from corpus import add_output_args, check_run, docmill_run, ensure_venv, run_benchmark, table


def measure(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    from docmill.testkit.drive_sim import DriveSimConfig, serve_in_thread

    with serve_in_thread(DriveSimConfig(seed=11)) as sim:
        root = sim.data.add_folder("Bench")
        folders = [sim.data.add_folder(f"folder-{j:03d}", root) for j in range(args.folders)]
        for i in range(args.files):
            sim.data.add_file(f"note-{i:06d}.txt", b"Bench note %d\n" % i,
                              folders[i % len(folders)], "text/plain")
        key = tmp / "key.json"
        key.write_text(json.dumps(sim.service_account()))
        key.chmod(0o600)
        os.environ.update(
            DOCMILL_SOURCES__GDRIVE_API_URL=sim.api_url,
            DOCMILL_SOURCES__GDRIVE_TOKEN_URL=sim.token_url,
            DOCMILL_SOURCES__GDRIVE_CREDENTIALS=str(key),
        )
        extra = ["--set", f"sources.gdrive_queries_per_100s={args.quota}", *args.set_args]
        run = docmill_run([f"gdrive://{root}"], tmp / "out", args.workers or 2, extra)  # type: ignore[list-item]
        check_run(run, "docmill run gdrive://")
        stats = sim.stats()
    kinds = stats["by_kind"]
    listing = kinds.get("list", 0) + kinds.get("get", 0) + kinds.get("drives", 0)
    queries = stats["requests"] - kinds.get("token", 0)
    page = 1000
    ideal = sum(math.ceil(args.files / args.folders / page) for _ in range(args.folders)) + 2
    return {
        "files": args.files,
        "folders": args.folders + 1,
        "page_size": page,
        "list_requests": kinds.get("list", 0),
        "get_requests": kinds.get("get", 0),
        "drives_requests": kinds.get("drives", 0),
        "media_requests": stats["media"],
        "export_requests": stats["exports"],
        "token_requests": kinds.get("token", 0),
        "listing_queries_per_file": listing / args.files,
        "queries_per_file": queries / args.files,
        "expected_listing_queries": ideal,
        "wall_s": run.wall_s,
        "files_per_s": args.files / run.wall_s,
    }


def report(fig: dict[str, Any]) -> str:
    return "Google Drive sources (the Drive simulator on loopback): queries per file\n" + table([
        ("tree", f"{fig['files']:,} files in {fig['folders']} folders, pages of {fig['page_size']}"),
        ("listing", f"{fig['list_requests']} files.list + {fig['get_requests']} files.get + "
                    f"{fig['drives_requests']} drives.list (a page per 1,000 files and one "
                    f"per folder: {fig['expected_listing_queries']})"),
        ("listing / file", f"{fig['listing_queries_per_file']:.5f} queries"),
        ("downloads", f"{fig['media_requests']:,} alt=media, {fig['export_requests']} exports, "
                      f"{fig['token_requests']} token request(s)"),
        ("all / file", f"{fig['queries_per_file']:.4f} queries"),
        ("run", f"{fig['wall_s']:.1f} s ({fig['files_per_s']:.0f} files/s, listing, download "
                "and processing)"),
    ])


def main(argv: list[str] | None = None) -> int:
    ensure_venv()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=20_000, help="files in the tree")
    parser.add_argument("--folders", type=int, default=20, help="folders under the root")
    parser.add_argument("--workers", type=int, default=0, help="worker processes (default 2)")
    parser.add_argument("--quota", type=int, default=0,
                        help="sources.gdrive_queries_per_100s (default 0: none, as the "
                             "simulator has none)")
    parser.add_argument("--set", action="append", default=[], dest="sets", metavar="KEY=VALUE",
                        help="a docmill setting (repeatable)")
    add_output_args(parser, "drive")
    args = parser.parse_args(argv)
    args.set_args = [x for s in args.sets for x in ("--set", s)]
    return run_benchmark("drive", args, measure, report)


if __name__ == "__main__":
    sys.exit(main())
