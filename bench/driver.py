#!/usr/bin/env python3
"""The driver's ceiling: documents per second one driver enumerates, hashes, claims,
commits and writes when processing costs nothing.

    ceiling = documents / wall seconds of a run whose executor answers every task at once

A no-op executor (``NoopExecutor`` below, given to the runner through the executor seam
as a library caller would) answers each task with the same small sealed outcome (one
page, a line of text) on the next poll, as if the cluster behind it were infinitely
fast; reading an outcome from its wire form is counted (every executor's driver side
does it), sealing it is not (a worker does it). Everything else is a real run: ``--files`` distinct small files (a line of text
each; default 50,000) enumerated into the ledger, hashed by the driver's threads,
claimed in the window (``--window``, default 4,096: a cluster of some hundreds of CPUs),
deduplicated, committed every 0.2 s and written to JSON Lines parts.

``--profile`` also prints where the driver's own thread spends its time (cProfile,
cumulative), to say which part limits the ceiling. The figure is measured, not asserted;
the target (5,000 documents/s) is printed beside it.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import sys
import time
from pathlib import Path
from typing import Any

from corpus import add_output_args, ensure_venv, idle_share, run_benchmark, table

TARGET = 5000.0  # documents/s


def make_files(folder: Path, n: int) -> None:
    """``n`` distinct small text files, 1,000 a folder."""
    for i in range(n):
        sub = folder / f"{i // 1000:04d}"
        if i % 1000 == 0:
            sub.mkdir(parents=True, exist_ok=True)
        (sub / f"doc-{i:07d}.txt").write_text(f"document {i}: nothing much to read\n")


def noop_factory(window: int) -> Any:
    from docmill.engine.executor import ExecutorContext, ExecutorState
    from docmill.model import DocState, ProcessOutcome
    from docmill.processors import Task

    template = ProcessOutcome(
        status=DocState.DONE, mime="text/plain", pages=1, text=["nothing much to read"],
        metadata={}, parse_s=0.0,
    )
    template.seal()  # done once: sealing is a worker's cost, not the driver's
    wire = template.to_wire()  # each answer is read from it, as the driver reads a worker's

    class NoopExecutor:
        """Answers every task at the next poll with one sealed outcome, read from its
        wire form as every executor's outcomes are (``ProcessOutcome.from_wire``)."""

        def __init__(self, _context: ExecutorContext) -> None:
            self.window = window
            self._todo: list[Task] = []

        @property
        def idle(self) -> int:
            return self.window - len(self._todo)

        @property
        def busy(self) -> int:
            return len(self._todo)

        def prepare(self) -> None:
            pass

        def start(self) -> None:
            pass

        def submit(self, task: Task) -> None:
            self._todo.append(task)

        def poll(self, wait_s: float) -> list[tuple[Task, ProcessOutcome]]:
            todo, self._todo = self._todo, []
            return [(task, ProcessOutcome.from_wire(wire)) for task in todo]

        def take_returned(self) -> list[Task]:
            return []

        def shutdown(self, *, kill: bool = False) -> list[Task]:
            return []

        def describe(self) -> ExecutorState | None:
            return None

    return NoopExecutor


def measure(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    from docmill.engine.runner import Runner
    from docmill.settings import load_settings

    src = tmp / "in"
    began = time.perf_counter()
    make_files(src, args.files)
    made_s = time.perf_counter() - began
    settings = load_settings(env={}, overrides={"run.executor": "noop"})
    runner = Runner(
        settings, [str(src)], tmp / "out", executors={"noop": noop_factory(args.window)}
    )
    profile = cProfile.Profile() if args.profile else None
    cpu0 = time.process_time()
    started = time.perf_counter()
    if profile is not None:
        profile.enable()
    summary = runner.run()
    if profile is not None:
        profile.disable()
    wall = time.perf_counter() - started
    cpu = time.process_time() - cpu0
    assert summary.completed and summary.counts.get("done") == args.files, summary.counts
    top = ""
    if profile is not None:
        out = io.StringIO()
        pstats.Stats(profile, stream=out).sort_stats("cumulative").print_stats(25)
        top = out.getvalue()
    return {
        "target": TARGET,
        "docs_per_s": args.files / wall,
        "files": args.files,
        "window": args.window,
        "wall_s": wall,
        "cpu_s": cpu,
        "cpu_ms_per_doc": cpu / args.files * 1000,
        "files_made_s": made_s,
        "others_share": idle_share(),
        "profile": top,
    }


def report(fig: dict[str, Any]) -> str:
    ok = "meets" if fig["docs_per_s"] >= fig["target"] else "misses"
    text = "the driver's ceiling (a no-op executor: enumerate, hash, claim, commit, write)\n"
    text += table(
        [
            ("documents", f"{fig['files']:,} small text files, window {fig['window']:,}"),
            ("wall", f"{fig['wall_s']:.1f} s ({fig['cpu_s']:.1f} CPU-s of the driver process, "
                     f"{fig['cpu_ms_per_doc']:.3f} ms a document, hashing threads included)"),
            ("ceiling", f"{fig['docs_per_s']:,.0f} documents/s ({ok} the target "
                        f"{fig['target']:,.0f})"),
            ("others", f"{fig['others_share']:.0%} of the machine busy with other work"),
        ]
    )
    if fig.get("profile"):
        text += "\n" + fig["profile"]
    return text


def main(argv: list[str] | None = None) -> int:
    ensure_venv()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=50_000, help="documents (default 50,000)")
    parser.add_argument("--window", type=int, default=4096, help="documents in flight")
    parser.add_argument("--profile", action="store_true", help="print the driver's profile")
    add_output_args(parser, "driver")
    args = parser.parse_args(argv)
    return run_benchmark("driver", args, measure, report)


if __name__ == "__main__":
    sys.exit(main())
