"""Table quality: ICDAR 2013 cell-adjacency precision/recall/F1 and pages/s, for docmill
and (in the same run) pdfplumber, camelot lattice and stream, and PyMuPDF find_tables.

Ground truth: tabula-java's expected outputs (``src/test/resources/technology/tabula/
{json,csv}``) for the PDFs beside them. A JSON file names its page; for a CSV the page is
the one whose text holds most of the expected cells. Files that are not tables
(``TestBasicExtractor-*``, ``TestSpreadsheetExtractor-*`` coordinates) and those with no
PDF of their name (``TestCommandLineApp_*``) are left out.

Measure (ICDAR 2013, Göbel et al.): every non-empty cell and its nearest non-empty
neighbour to the right and below is one relation ``(text1, text2, direction)``, text
with whitespace collapsed. Relations of all tables a tool finds on a page are compared
as multisets with the ground truth's relations on that page; precision and recall are
micro-averaged over all pages (a table found on no ground-truth page is not counted).
pages/s is wall clock; "per CPU-s" divides by this process's CPU time instead, which
other load on a shared machine changes far less (camelot's Ghostscript subprocess, if any,
is not in it). Peers are optional (``pip install -e .[bench]``): one that cannot be imported is skipped
with a note. Each tool runs single-threaded in this process, one page at a time.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from corpus import SOURCE, add_output_args, ensure_venv, run_benchmark

TABULA = SOURCE / "tabula-java" / "src" / "test" / "resources" / "technology" / "tabula"
SKIP_PREFIXES = ("TestBasicExtractor", "TestSpreadsheetExtractor", "TestCommandLineApp")
Grid = list[list[str]]
Relation = tuple[str, str, str]


def norm(text: Any) -> str:
    return " ".join(str(text or "").split())


def relations(grid: Sequence[Sequence[Any]]) -> Counter[Relation]:
    """ICDAR 2013 adjacency relations of one table."""
    cells = [[norm(c) for c in row] for row in grid]
    out: Counter[Relation] = Counter()
    for row in cells:
        filled = [c for c in row if c]
        out.update((a, b, "h") for a, b in itertools.pairwise(filled))
    width = max((len(r) for r in cells), default=0)
    for col in range(width):
        filled = [r[col] for r in cells if col < len(r) and r[col]]
        out.update((a, b, "v") for a, b in itertools.pairwise(filled))
    return out


def _page_texts(pdf: Path) -> list[str]:
    import pypdfium2 as pdfium

    doc = pdfium.PdfDocument(str(pdf))
    try:
        texts = []
        for page in doc:
            tp = page.get_textpage()
            texts.append(norm(tp.get_text_bounded()))
            tp.close()
            page.close()
        return texts
    finally:
        doc.close()


def ground_truth() -> dict[tuple[str, int], list[Grid]]:
    """(pdf path, 0-based page) -> expected tables."""
    truth: dict[tuple[str, int], list[Grid]] = {}
    seen: set[str] = set()
    for path in sorted((TABULA / "json").glob("*.json")):
        stem = path.stem.removesuffix("_basic")
        pdf = TABULA / f"{stem}.pdf"
        if not pdf.exists() or stem in seen:
            continue
        seen.add(stem)
        data = json.loads(path.read_text(encoding="utf-8"))
        for table in data if isinstance(data, list) else [data]:
            grid = [[cell.get("text", "") for cell in row] for row in table["data"]]
            truth.setdefault((str(pdf), int(table["page_number"]) - 1), []).append(grid)
    for path in sorted((TABULA / "csv").glob("*.csv")):
        stem = path.stem
        pdf = TABULA / f"{stem}.pdf"
        if stem.startswith(SKIP_PREFIXES) or stem in seen or not pdf.exists():
            continue
        seen.add(stem)
        grid = list(csv.reader(path.open(encoding="utf-8", newline="")))
        texts = _page_texts(pdf)
        cells = [norm(c) for row in grid for c in row if norm(c)]
        page = max(range(len(texts)), key=lambda i: sum(c in texts[i] for c in cells))
        truth.setdefault((str(pdf), page), []).append(grid)
    return truth


# ---------------------------------------------------------------- the tools


def docmill_tables(pdf: str, page: int) -> list[Grid]:
    from docmill.processors.tables.extract import tables_in_pdf

    return [t.rows for t in tables_in_pdf(pdf, [page])]


def pdfplumber_tables(pdf: str, page: int) -> list[Grid]:
    import pdfplumber

    with pdfplumber.open(pdf) as doc:
        return [[[c or "" for c in row] for row in t] for t in doc.pages[page].extract_tables()]


def _camelot(flavor: str) -> Callable[[str, int], list[Grid]]:
    def run(pdf: str, page: int) -> list[Grid]:
        import camelot

        found = camelot.read_pdf(pdf, pages=str(page + 1), flavor=flavor)
        return [t.df.values.tolist() for t in found]

    return run


def pymupdf_tables(pdf: str, page: int) -> list[Grid]:
    import pymupdf

    with pymupdf.open(pdf) as doc:
        found = doc[page].find_tables()
        return [[[c or "" for c in row] for row in t.extract()] for t in found.tables]


TOOLS: dict[str, tuple[str, Callable[[str, int], list[Grid]]]] = {
    "docmill": ("docmill", docmill_tables),
    "pdfplumber": ("pdfplumber", pdfplumber_tables),
    "camelot-lattice": ("camelot", _camelot("lattice")),
    "camelot-stream": ("camelot", _camelot("stream")),
    "pymupdf": ("pymupdf", pymupdf_tables),
}


def _version(module: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    dist = {"camelot": "camelot-py", "pymupdf": "PyMuPDF"}.get(module, module)
    try:
        return version(dist)
    except PackageNotFoundError:
        return None


def measure(args: argparse.Namespace, _work: Path) -> dict[str, Any]:
    import importlib
    import logging
    import warnings

    warnings.simplefilter("ignore")
    logging.disable(logging.WARNING)
    truth = ground_truth()
    pages = sorted(truth)
    expected = {key: sum((relations(g) for g in grids), Counter()) for key, grids in truth.items()}
    results: dict[str, Any] = {}
    for name in args.tools:
        module, fn = TOOLS[name]
        try:
            importlib.import_module(module)
        except Exception as exc:  # a peer that is not installed is skipped, said so
            print(f"note: {name} skipped ({module} not importable: {exc})", file=sys.stderr)
            results[name] = {"skipped": f"{module} not importable"}
            continue
        fn(*pages[0])  # warm-up: imports and lazy initialisation are not timed
        correct = found = wanted = 0
        errors = 0
        started, cpu_started = time.perf_counter(), time.process_time()
        for pdf, page in pages:
            try:
                grids = fn(pdf, page)
            except Exception:
                grids, errors = [], errors + 1
            got = sum((relations(g) for g in grids), Counter())
            want = expected[(pdf, page)]
            correct += sum((got & want).values())
            found += sum(got.values())
            wanted += sum(want.values())
        elapsed = time.perf_counter() - started
        cpu = time.process_time() - cpu_started
        precision = correct / found if found else 0.0
        recall = correct / wanted if wanted else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        results[name] = {
            "version": _version(module),
            "precision": precision,
            "recall": recall,
            "f1": f1,
            "pages": len(pages),
            "seconds": elapsed,
            "pages_per_s": len(pages) / elapsed if elapsed else 0.0,
            "cpu_seconds": cpu,
            "pages_per_cpu_s": len(pages) / cpu if cpu else 0.0,
            "page_errors": errors,
        }
    return {
        "ground_truth": "tabula-java expected outputs (json, csv)",
        "documents": len({pdf for pdf, _ in pages}),
        "pages": len(pages),
        "relations": sum(sum(c.values()) for c in expected.values()),
        "tools": results,
    }


def report(fig: dict[str, Any]) -> str:
    lines = [
        f"ground truth: {fig['documents']} PDFs, {fig['pages']} pages, "
        f"{fig['relations']} adjacency relations (tabula-java expected outputs)",
        f"{'tool':<16} {'version':<10} {'precision':>9} {'recall':>7} {'F1':>6} {'pages/s':>8} {'per CPU-s':>9}",
    ]
    for name, r in fig["tools"].items():
        if "skipped" in r:
            lines.append(f"{name:<16} skipped: {r['skipped']}")
            continue
        lines.append(
            f"{name:<16} {r['version'] or '?':<10} {r['precision']:>9.3f} {r['recall']:>7.3f} "
            f"{r['f1']:>6.3f} {r['pages_per_s']:>8.1f} {r['pages_per_cpu_s']:>9.1f}"
            + (f"   ({r['page_errors']} pages raised)" if r["page_errors"] else "")
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ensure_venv()
    parser = argparse.ArgumentParser(description="Table quality (ICDAR 2013 F1) and speed.")
    parser.add_argument(
        "--tools", nargs="+", choices=list(TOOLS), default=list(TOOLS),
        help="tools to measure (default: all)",
    )
    add_output_args(parser, "tables")
    return run_benchmark("tables", parser.parse_args(argv), measure, report)


if __name__ == "__main__":
    sys.exit(main())
