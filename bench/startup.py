#!/usr/bin/env python3
"""Figure (c): start-up cost, the wall time of ``docmill run`` on 10 small PDFs.

    median wall time of ``docmill run SMALL --out FRESH --quiet`` over 5 runs   target <= 1.5 s

SMALL is 10 readable PDFs of one to three pages taken from ../shared/corpus/real (each
with unique bytes), so the time is almost all fixed cost: interpreter start, imports,
settings, ledger creation, forkserver and workers, part files, shutdown. Every run
writes into a fresh output folder.

Also shown: the median time of ``docmill --version`` and the heaviest imports of
``python -X importtime -c "import docmill.cli.main"``, to show that the CLI module
loads without the heavy libraries (pypdfium2, pypdf, pyarrow, psutil, sqlite3,
multiprocessing), which ``docmill run`` imports only when it needs them.
Nothing is asserted.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from corpus import (
    SOURCE,
    TEXT_LAYER_ONLY,
    add_output_args,
    check_run,
    docmill_run,
    docmill_status,
    ensure_venv,
    idle_share,
    make_small_set,
    run_benchmark,
    table,
    tool,
    usable_cores,
)

TARGET_S = 1.5
HEAVY = ("pypdfium2", "pypdf", "pyarrow", "psutil", "sqlite3", "multiprocessing", "concurrent")


@dataclass(frozen=True)
class Import:
    module: str
    depth: int
    self_us: int
    cumulative_us: int


def parse_importtime(stderr: str) -> list[Import]:
    """The lines of ``-X importtime`` (``import time: self | cumulative | name``)."""
    out: list[Import] = []
    for line in stderr.splitlines():
        if not line.startswith("import time:") or "[us]" in line:
            continue
        try:
            self_us, cumulative_us, name = line.removeprefix("import time:").split("|", 2)
            depth = (len(name) - len(name.lstrip(" "))) // 2
            out.append(Import(name.strip(), depth, int(self_us), int(cumulative_us)))
        except ValueError:
            continue
    return out


def importtime(module: str) -> list[Import]:
    done = subprocess.run(
        [tool("python"), "-X", "importtime", "-c", f"import {module}"],
        capture_output=True,
        text=True,
        check=True,
    )
    return parse_importtime(done.stderr)


def timed(argv: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(argv, capture_output=True, check=True)
    return time.perf_counter() - started


def measure(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    small = work / "small"
    chosen = make_small_set(small, args.files, args.max_pages, args.source)
    print(f"small set: {chosen.files} PDFs, {chosen.pages} pages", file=sys.stderr)

    busy = idle_share(1.0)
    runs: list[float] = []
    pages = 0
    for number in range(args.runs):
        out = work / f"out-{number}"
        run = docmill_run([small], out, args.workers, TEXT_LAYER_ONLY)
        check_run(run, "docmill run")
        pages = int(docmill_status(out)["pages"])
        runs.append(run.wall_s)
        print(f"  run {number + 1}: {run.wall_s:.3f}s", file=sys.stderr)

    version = [timed([tool("docmill"), "--version"]) for _ in range(args.runs)]
    bare = [timed([tool("python"), "-c", "pass"]) for _ in range(args.runs)]
    imports = importtime("docmill.cli.main")
    total = next((i for i in reversed(imports) if i.module == "docmill.cli.main"), None)
    heavy = sorted({i.module for i in imports if i.module.split(".")[0] in HEAVY})
    engine = importtime("docmill.engine.api")
    engine_total = next((i for i in reversed(engine) if i.module == "docmill.engine.api"), None)
    top = sorted(imports, key=lambda i: i.cumulative_us, reverse=True)[: args.top]
    median = statistics.median(runs)
    return {
        "foreign_load_before": busy,
        "files": chosen.files,
        "pages": pages,
        "workers": args.workers,
        "run_s": runs,
        "run_median_s": median,
        "target_s": TARGET_S,
        "meets_target": median <= TARGET_S,
        "version_s": version,
        "version_median_s": statistics.median(version),
        "python_bare_median_s": statistics.median(bare),
        "import_cli_main_us": total.cumulative_us if total else None,
        "heavy_modules_at_cli_import": heavy,
        "import_engine_api_us": engine_total.cumulative_us if engine_total else None,
        "top_imports": [vars(i) for i in top],
    }


def report(fig: dict[str, Any]) -> str:
    runs = ", ".join(f"{s:.2f}" for s in fig["run_s"])
    rows = [
        ("small set", f"{fig['files']} PDFs, {fig['pages']} pages, {fig['workers']} workers"),
        (
            "docmill run, median",
            f"{fig['run_median_s']:.3f} s   target <= {fig['target_s']} s "
            + ("(met)" if fig["meets_target"] else "(NOT met)"),
        ),
        ("  runs", runs),
        ("docmill --version, median", f"{fig['version_median_s']:.3f} s"),
        ("python -c pass, median", f"{fig['python_bare_median_s']:.3f} s"),
        ("other load before start", f"{fig['foreign_load_before']:.1%} of the machine"),
    ]
    if fig["import_cli_main_us"] is not None:
        rows.append(
            ("import docmill.cli.main", f"{fig['import_cli_main_us'] / 1000:.1f} ms cumulative")
        )
    if fig["import_engine_api_us"] is not None:
        rows.append(
            (
                "import docmill.engine.api",
                f"{fig['import_engine_api_us'] / 1000:.1f} ms (what run loads)",
            )
        )
    rows.append(
        ("heavy modules at CLI import", ", ".join(fig["heavy_modules_at_cli_import"]) or "none")
    )
    lines = ["Figure (c): start-up", table(rows), "  top imports by cumulative time (ms, self):"]
    for item in fig["top_imports"]:
        name = "  " * item["depth"] + item["module"]
        lines.append(
            f"    {item['cumulative_us'] / 1000:8.1f}  {item['self_us'] / 1000:6.1f}  {name}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ensure_venv()
    parser = argparse.ArgumentParser(
        description="Figure (c): wall time of docmill run on 10 small PDFs, and CLI imports."
    )
    parser.add_argument(
        "--source", type=Path, default=SOURCE, help="corpus folder (default: %(default)s)"
    )
    parser.add_argument(
        "--files", type=int, default=10, help="small PDFs to process (default: %(default)s)"
    )
    parser.add_argument(
        "--max-pages", type=int, default=3, help="a small PDF has 1..N pages (default: %(default)s)"
    )
    parser.add_argument(
        "--runs", type=int, default=5, help="runs to take the median of (default: %(default)s)"
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=usable_cores(),
        help="docmill --workers (default: %(default)s)",
    )
    parser.add_argument(
        "--top", type=int, default=12, help="imports to list (default: %(default)s)"
    )
    add_output_args(parser, "startup")
    return run_benchmark("startup", parser.parse_args(argv), measure, report)


if __name__ == "__main__":
    sys.exit(main())
