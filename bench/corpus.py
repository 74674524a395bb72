"""Shared helpers for the benchmarks: the benchmark corpus, docmill subprocesses, results.

The corpus is ``<repo>/../shared/corpus/real`` (its PDFs, found by the ``.pdf`` suffix)
repeated ``copies`` times into a scratch folder. docmill processes identical content
once (sha256 dedup), so every copy gets different bytes: the original bytes plus one
trailing PDF comment line, ``%docmill-bench-copy-<i>-<j>``, after ``%%EOF``. The marker
names the copy *and* the file, because the source corpus itself holds byte-identical
files at different paths and those must differ too. Parsers ignore trailing comments.

Because every file is modified, hard links cannot be used for the copies: each file is
written out (``copy_mode`` in the results says so). The files stay in the page cache,
so the raw baseline and docmill read them at the same speed.

Not a script: ``throughput.py``, ``memory.py`` and ``startup.py`` import it.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
SOURCE = REPO.parent / "shared" / "corpus" / "real"
RESULTS = REPO / "bench" / "results"
VENV_BIN = REPO / ".venv" / "bin"
MARKER = b"%docmill-bench-copy-"


def ensure_venv() -> None:
    """Re-run this script under ``.venv/bin/python`` when started by another interpreter.

    The shebang is ``/usr/bin/env python3``; the benchmarks need pypdfium2 and psutil,
    which live in the repository's virtual environment.
    """
    venv_python = VENV_BIN / "python"
    if not venv_python.exists():
        return
    if Path(sys.prefix).resolve() == (REPO / ".venv").resolve():
        return
    os.execv(str(venv_python), [str(venv_python), *sys.argv])


def tool(name: str) -> str:
    """A console script of the venv (``docmill``, ``python``), else the one on PATH."""
    local = VENV_BIN / name
    if local.exists():
        return str(local)
    found = shutil.which(name)
    if found is None:
        raise SystemExit(f"bench: cannot find {name!r}: run scripts/setup dev first")
    return found


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


# --- the corpus ---------------------------------------------------------------------


def source_pdfs(source: Path = SOURCE) -> list[Path]:
    """The PDFs of the source corpus, sorted (regular files with a ``.pdf`` suffix)."""
    if not source.is_dir():
        raise SystemExit(f"bench: the corpus folder {source} does not exist")
    return sorted(p for p in source.rglob("*") if p.suffix.lower() == ".pdf" and p.is_file())


def count_pages(path: str | Path) -> int:
    """Page count by the raw parser (pypdfium2); 0 when it cannot open the file."""
    import pypdfium2 as pdfium

    try:
        doc = pdfium.PdfDocument(str(path))
    except Exception:  # encrypted, corrupt, empty: not counted, still in the corpus
        return 0
    try:
        return len(doc)
    finally:
        doc.close()


def source_pages(source: Path = SOURCE) -> int:
    """Readable pages of one copy of the source corpus."""
    return sum(count_pages(p) for p in source_pdfs(source))


def copies_for(min_pages: int, source: Path = SOURCE) -> tuple[int, int]:
    """(copies, pages of one copy): the fewest copies giving at least ``min_pages`` pages."""
    per_copy = source_pages(source)
    if per_copy <= 0:
        raise SystemExit(f"bench: no readable PDF pages under {source}")
    return max(1, -(-min_pages // per_copy)), per_copy


def copy_name(copy: int, index: int, original: Path) -> str:
    return f"c{copy:03d}-{index:04d}-{original.name}"


def make_corpus(dest: Path, copies: int, source: Path = SOURCE) -> tuple[int, int]:
    """Write ``copies`` copies of the source PDFs under ``dest``; return (files, pages).

    Copy ``i`` goes to ``dest/copy-<i>/``; each file there has its own name and its own
    bytes (a unique trailing comment line). Pages are counted by the raw parser on the
    originals (the comment changes no page), so unreadable files count 0 pages but are
    still in the corpus, as in a real batch.
    """
    originals = source_pdfs(source)
    pages_each = [count_pages(p) for p in originals]
    files = 0
    for copy in range(copies):
        folder = dest / f"copy-{copy:03d}"
        folder.mkdir(parents=True, exist_ok=True)
        for index, original in enumerate(originals):
            data = original.read_bytes()
            if data and not data.endswith(b"\n"):
                data += b"\n"
            marker = MARKER + f"{copy}-{index}\n".encode()
            (folder / copy_name(copy, index, original)).write_bytes(data + marker)
            files += 1
    return files, copies * sum(pages_each)


def corpus_files(dest: Path) -> list[Path]:
    """The files of a corpus made by :func:`make_corpus`, in a stable order."""
    return sorted(p for p in dest.rglob("*.pdf") if p.is_file())


@dataclass(frozen=True)
class SmallSet:
    files: int
    pages: int


def make_small_set(dest: Path, count: int, max_pages: int = 3, source: Path = SOURCE) -> SmallSet:
    """``count`` small (1..max_pages pages) readable PDFs with distinct content, copied."""
    dest.mkdir(parents=True, exist_ok=True)
    chosen = 0
    pages = 0
    for index, original in enumerate(source_pdfs(source)):
        n = count_pages(original)
        if not 1 <= n <= max_pages:
            continue
        data = original.read_bytes()
        if not data.endswith(b"\n"):
            data += b"\n"
        (dest / copy_name(0, index, original)).write_bytes(data + MARKER + f"s-{index}\n".encode())
        chosen += 1
        pages += n
        if chosen == count:
            break
    if chosen < count:
        raise SystemExit(f"bench: only {chosen} PDFs of 1..{max_pages} pages under {source}")
    return SmallSet(chosen, pages)


# --- docmill subprocesses -------------------------------------------------------------


# Figures (a)-(c) measure the engine against the raw parser, which reads text layers
# only: docmill's default ``extract.ocr = auto`` would also OCR the corpus's scanned
# pages (18 of 646, ~1.5 s each), which is another workload (bench/features.py, ocr.py).
TEXT_LAYER_ONLY = ["--set", "extract.ocr=never"]


@dataclass(frozen=True)
class TimedRun:
    wall_s: float
    returncode: int
    stderr: str
    cpu_s: float = 0.0  # user + system CPU of docmill and every process it waited for


def become_subreaper() -> None:
    """Adopt this process's orphaned descendants (Linux ``PR_SET_CHILD_SUBREAPER``):
    docmill's forkserver outlives the driver by a moment, and its workers' CPU time
    reaches ``RUSAGE_CHILDREN`` only when it is reaped here."""
    import ctypes

    try:
        ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
    except (OSError, AttributeError):
        pass


def reap_orphans(timeout_s: float = 10.0) -> None:
    """Wait for adopted descendants (the forkserver, stray workers) until none is left."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            time.sleep(0.02)


def docmill_run(
    sources: list[Path], out: Path, workers: int, extra: list[str] | None = None
) -> TimedRun:
    """``docmill run SOURCES --out OUT --workers W --quiet``, timed from start to exit."""
    argv = [tool("docmill"), "run", *map(str, sources), "--out", str(out)]
    argv += ["--workers", str(workers), "--quiet", *(extra or [])]
    become_subreaper()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    reap_orphans()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return TimedRun(wall, done.returncode, done.stderr, cpu)


def docmill_status(out: Path) -> dict[str, Any]:
    """``docmill status OUT --json``, parsed."""
    done = subprocess.run(
        [tool("docmill"), "status", str(out), "--json"],
        capture_output=True,
        text=True,
        check=True,
    )
    data: dict[str, Any] = json.loads(done.stdout)
    return data


def check_run(run: TimedRun, what: str) -> None:
    if run.returncode != 0:
        tail = run.stderr.strip().splitlines()[-5:]
        raise SystemExit(f"bench: {what} exited with {run.returncode}:\n" + "\n".join(tail))


# --- other load on the machine ------------------------------------------------------


def _busy_s() -> float:
    """CPU seconds the whole machine has been busy (all cores, Linux /proc/stat)."""
    try:
        with open("/proc/stat") as handle:
            fields = [int(x) for x in handle.readline().split()[1:]]
    except (OSError, ValueError):
        return 0.0
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def _own_s() -> float:
    """CPU seconds of this process and its waited-for children."""
    import resource

    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


@dataclass
class CpuProbe:
    """How much of the machine other processes used while we measured.

    ``foreign_share`` = (machine busy CPU-s - our CPU-s) / (CPUs x wall). Ours counts
    this process and the children it waited for, so use it around in-process work or
    joined child processes (not around ``docmill run``, whose workers are reaped by
    the forkserver). Above a few percent the timings are not trustworthy.
    """

    busy0: float = 0.0
    own0: float = 0.0
    wall0: float = 0.0
    foreign_s: float = 0.0
    foreign_share: float = 0.0

    def __enter__(self) -> CpuProbe:
        self.busy0, self.own0, self.wall0 = _busy_s(), _own_s(), time.perf_counter()
        return self

    def __exit__(self, *_exc: object) -> None:
        wall = time.perf_counter() - self.wall0
        self.foreign_s = max(0.0, (_busy_s() - self.busy0) - (_own_s() - self.own0))
        self.foreign_share = self.foreign_s / ((os.cpu_count() or 1) * wall) if wall > 0 else 0.0


def idle_share(seconds: float = 1.0) -> float:
    """Share of the machine busy over ``seconds`` while this process sleeps."""
    with CpuProbe() as probe:
        time.sleep(seconds)
    return probe.foreign_share


# --- results ------------------------------------------------------------------------


def git_state() -> dict[str, Any]:
    """The commit measured, and whether src/ had uncommitted changes."""

    def git(*args: str) -> str:
        try:
            done = subprocess.run(
                ["git", "-C", str(REPO), *args], capture_output=True, text=True, check=True
            )
        except (OSError, subprocess.CalledProcessError):
            return ""
        return done.stdout.strip()

    return {
        "commit": git("rev-parse", "HEAD") or None,
        "src_dirty": bool(git("status", "--porcelain", "src")),
    }


def machine() -> dict[str, Any]:
    import platform

    return {
        "cores": usable_cores(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def write_results(name: str, figures: dict[str, Any], path: Path | None = None) -> Path:
    """Write ``figures`` (plus the machine and a timestamp) to ``bench/results/NAME.json``."""
    target = path or RESULTS / f"{name}.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "benchmark": name,
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": machine(),
        "git": git_state(),
        **figures,
    }
    target.write_text(json.dumps(payload, indent=2) + "\n")
    return target


def table(rows: list[tuple[str, str]]) -> str:
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"  {k:<{width}}  {v}" for k, v in rows)


def add_output_args(parser: argparse.ArgumentParser, name: str) -> None:
    """The options every benchmark has: its scratch folder and its results file."""
    parser.add_argument(
        "--tmp", type=Path, help="parent of the scratch folder (default: the system temp)"
    )
    parser.add_argument(
        "--json",
        type=Path,
        default=RESULTS / f"{name}.json",
        help="results file (default: %(default)s)",
    )


def run_benchmark(
    name: str,
    args: argparse.Namespace,
    measure: Callable[[argparse.Namespace, Path], dict[str, Any]],
    report: Callable[[dict[str, Any]], str],
) -> int:
    """Measure in a scratch folder, print the report, write the results file."""
    with tempfile.TemporaryDirectory(prefix="docmill-bench-", dir=args.tmp) as tmp:
        fig = measure(args, Path(tmp))
    print(report(fig))
    print(f"  -> {write_results(name, fig, args.json)}")
    return 0
