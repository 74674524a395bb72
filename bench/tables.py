"""Table detection and structure, docmill beside pdfplumber, camelot (lattice, stream)
and PyMuPDF, on several development sets, in one run.

Sets (``table_sets.py`` has the format and the measures):

- ``tabula``: tabula-java's expected tables (its test resources' ``json``/``csv``);
- ``camelot``: the tables camelot's own tests expect of its lattice reader on whole
  pages (``tests/data.py``, camelot 2.0; those of its stream reader keep title lines,
  footnotes and dot leaders in their cells, camelot's own conventions, and are left out);
- ``pdfplumber``: pages of pdfplumber's test and example PDFs, labelled here (its tests
  state only a few facts of each table: counts, one row, a cell), pages without tables
  among them;
- ``corpus``: other pages of ``shared/corpus/real`` labelled here, many without tables
  (prose, lists, contents, forms, charts);
- ``synthetic``: generated pages with exact truth (``docmill.testkit.table_pages``).

docmill's table code was tuned on ``TUNED`` (tabula, corpus, synthetic) only; the
figures of the other sets (camelot, pdfplumber) were looked at only as totals, before
and after each change. The report prints per set: complete-process F1 (precision,
recall), matched-only F1, lenient F1, detection F1 (IoU >= 0.5); then the means over
the tuned and the held-out sets; and pages per CPU-second of this process over all pages.
Each tool runs single-threaded in this process, one page at a time (``tables_in_pdf``
for docmill: open, read the page, close). A peer that cannot be imported is skipped
with a note; camelot's Ghostscript subprocess, if any, is not in the CPU time.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from corpus import SOURCE, add_output_args, ensure_venv, run_benchmark
from table_sets import REAL_SETS, Found, PageScore, TruthPage, load_real, load_synthetic, score_page

TUNED = ("tabula", "corpus", "synthetic")
HELD_OUT = ("camelot", "pdfplumber")


# ---------------------------------------------------------------- the tools


def docmill_tables(pdf: str, page: int) -> list[Found]:
    from docmill.processors.tables.extract import tables_in_pdf

    return [Found(t.bbox, t.rows) for t in tables_in_pdf(pdf, [page])]


def _page_frame(pdf: str, page: int) -> tuple[float, float, int]:
    """(width, height) of the unrotated crop box and /Rotate, for the peers' boxes."""
    import pypdfium2 as pdfium

    doc = pdfium.PdfDocument(pdf)
    try:
        p = doc[page]
        left, bottom, right, top = p.get_cropbox()
        rotation = p.get_rotation() % 360
        p.close()
        return right - left, top - bottom, rotation
    finally:
        doc.close()


def _turn(box: tuple[float, float, float, float], width: float, height: float, rotation: int) -> tuple[float, float, float, float]:
    """A top-left-origin box of the unrotated page in the displayed page's frame."""
    x0, y0, x1, y1 = box
    if rotation == 90:
        return (height - y1, x0, height - y0, x1)
    if rotation == 180:
        return (width - x1, height - y1, width - x0, height - y0)
    if rotation == 270:
        return (y0, width - x1, y1, width - x0)
    return box


def pdfplumber_tables(pdf: str, page: int) -> list[Found]:
    import pdfplumber

    with pdfplumber.open(pdf) as doc:
        p = doc.pages[page]
        return [
            Found(tuple(float(v) for v in t.bbox), [[c or "" for c in row] for row in t.extract()])  # type: ignore[arg-type]
            for t in p.find_tables()
        ]


def _camelot(flavor: str) -> Callable[[str, int], list[Found]]:
    def run(pdf: str, page: int) -> list[Found]:
        import camelot

        found = camelot.read_pdf(pdf, pages=str(page + 1), flavor=flavor)
        width, height, rotation = _page_frame(pdf, page)
        shown_h = width if rotation in (90, 270) else height
        out = []
        for t in found:
            x0, y0, x1, y1 = t._bbox  # PDF points, bottom-left origin, as camelot reads the page
            box = (x0, shown_h - y1, x1, shown_h - y0)
            out.append(Found(box, t.df.values.tolist()))
        return out

    return run


def pymupdf_tables(pdf: str, page: int) -> list[Found]:
    import pymupdf

    with pymupdf.open(pdf) as doc:
        p = doc[page]
        out = []
        for t in p.find_tables().tables:
            r = pymupdf.Rect(t.bbox) * p.rotation_matrix
            out.append(Found((r.x0, r.y0, r.x1, r.y1), [[c or "" for c in row] for row in t.extract()]))
        return out


TOOLS: dict[str, tuple[str, Callable[[str, int], list[Found]]]] = {
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


# ---------------------------------------------------------------- measuring


def load_sets(args: argparse.Namespace, work: Path) -> dict[str, list[TruthPage]]:
    sets: dict[str, list[TruthPage]] = {}
    for name in args.sets:
        if name == "synthetic":
            sets[name] = load_synthetic(work / "synthetic", args.seed, args.synthetic)
        else:
            sets[name] = load_real(name, args.source)
    return sets


def _figures(score: PageScore) -> dict[str, Any]:
    return {
        "complete": score.complete.prf(),
        "matched": score.matched.prf(),
        "lenient": score.lenient.prf(),
        "detection": score.detection.prf(),
        "relations": score.complete.wanted,
        "tables_true": score.detection.wanted,
        "tables_found": score.detection.found,
    }


def measure(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    import logging
    import warnings

    warnings.simplefilter("ignore")
    logging.disable(logging.WARNING)
    sets = load_sets(args, work)
    every = [p for pages in sets.values() for p in pages]
    results: dict[str, Any] = {}
    details: dict[str, list[dict[str, Any]]] = {}
    for name in args.tools:
        module, fn = TOOLS[name]
        try:
            importlib.import_module(module)
        except Exception as exc:  # a peer that is not installed is skipped, said so
            print(f"note: {name} skipped ({module} not importable: {exc})", file=sys.stderr)
            results[name] = {"skipped": f"{module} not importable"}
            continue
        fn(every[0].pdf, every[0].page)  # warm-up: imports and lazy set-up are not timed
        per_set: dict[str, PageScore] = {}
        errors = 0
        cpu = wall = 0.0
        for page in every:
            started, cpu_started = time.perf_counter(), time.process_time()
            try:
                found = fn(page.pdf, page.page)
            except Exception:
                found, errors = [], errors + 1
            cpu += time.process_time() - cpu_started
            wall += time.perf_counter() - started
            score = score_page(page.tables, found)
            per_set.setdefault(page.set, PageScore()).add(score)
            if name == "docmill" and page.set in args.detail:
                details.setdefault(page.set, []).append(
                    {"page": f"{page.name} p{page.page + 1}", "kind": page.kind, **_figures(score)}
                )
        figures = {s: _figures(per_set.get(s, PageScore())) for s in sets}

        def mean(names: tuple[str, ...], key: str, figures: dict[str, Any] = figures) -> float | None:
            chosen = [figures[s][key]["f1"] for s in names if s in figures]
            return sum(chosen) / len(chosen) if chosen else None

        results[name] = {
            "version": _version(module),
            "sets": figures,
            "mean_tuned": {"complete": mean(TUNED, "complete"), "detection": mean(TUNED, "detection")},
            "mean_held_out": {"complete": mean(HELD_OUT, "complete"), "detection": mean(HELD_OUT, "detection")},
            "mean_all": {"complete": mean(tuple(sets), "complete"), "detection": mean(tuple(sets), "detection")},
            "pages": len(every),
            "cpu_seconds": cpu,
            "seconds": wall,
            "pages_per_cpu_s": len(every) / cpu if cpu else 0.0,
            "pages_per_s": len(every) / wall if wall else 0.0,
            "page_errors": errors,
        }
    return {
        "sets": {
            s: {
                "pages": len(pages),
                "pages_without_tables": sum(1 for p in pages if not p.tables),
                "tables": sum(len(p.tables) for p in pages),
                "tuned": s in TUNED,
            }
            for s, pages in sets.items()
        },
        "synthetic_seed": args.seed,
        "tools": results,
        "details": details,
    }


def report(fig: dict[str, Any]) -> str:
    lines = ["sets (tuned on: " + ", ".join(s for s in fig["sets"] if fig["sets"][s]["tuned"]) + "):"]
    for s, info in fig["sets"].items():
        lines.append(
            f"  {s:<11} {info['pages']:>4} pages ({info['pages_without_tables']} without tables),"
            f" {info['tables']} tables{'' if info['tuned'] else '   [held out]'}"
        )
    head = f"{'tool':<16} {'set':<11} {'complete F1 (P/R)':>20} {'matched':>8} {'lenient':>8} {'detect F1 (P/R)':>20}"
    lines.append(head)
    for name, r in fig["tools"].items():
        if "skipped" in r:
            lines.append(f"{name:<16} skipped: {r['skipped']}")
            continue
        for s, f in r["sets"].items():
            c, d = f["complete"], f["detection"]
            lines.append(
                f"{name:<16} {s:<11} {c['f1']:>7.3f} ({c['precision']:.3f}/{c['recall']:.3f})"
                f" {f['matched']['f1']:>8.3f} {f['lenient']['f1']:>8.3f}"
                f" {d['f1']:>7.3f} ({d['precision']:.3f}/{d['recall']:.3f})"
            )
        for label, key in (("mean tuned", "mean_tuned"), ("mean held out", "mean_held_out")):
            m = r[key]
            if m["complete"] is not None:
                lines.append(f"{name:<16} {label:<11} {m['complete']:>7.3f} {'':>31} {m['detection']:>7.3f}")
        lines.append(
            f"{name:<16} speed       {r['pages_per_cpu_s']:.1f} pages per CPU-s, {r['pages_per_s']:.1f} pages/s"
            f" ({r['pages']} pages, version {r['version'] or '?'})"
            + (f", {r['page_errors']} pages raised" if r["page_errors"] else "")
        )
    for s, rows in fig.get("details", {}).items():
        lines.append(f"docmill per page, {s}:")
        for row in rows:
            c, d = row["complete"], row["detection"]
            lines.append(
                f"  {row['page']:<60} {row['kind']:<24} F1 {c['f1']:.3f} ({c['precision']:.2f}/{c['recall']:.2f})"
                f" det {d['f1']:.2f} true {row['tables_true']} found {row['tables_found']}"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ensure_venv()
    parser = argparse.ArgumentParser(description="Table detection and structure (ICDAR 2013) and speed.")
    parser.add_argument("--tools", nargs="+", choices=list(TOOLS), default=list(TOOLS))
    parser.add_argument(
        "--sets", nargs="+", choices=[*REAL_SETS, "synthetic"], default=[*REAL_SETS, "synthetic"]
    )
    parser.add_argument("--seed", type=int, default=0, help="synthetic set's seed (default 0)")
    parser.add_argument("--synthetic", type=int, default=48, help="synthetic documents (default 48, three of each kind)")
    parser.add_argument("--detail", nargs="*", default=[], help="print docmill's figures per page of these sets")
    parser.add_argument("--source", type=Path, default=SOURCE, help="the corpus (default: %(default)s)")
    add_output_args(parser, "tables")
    return run_benchmark("tables", parser.parse_args(argv), measure, report)


if __name__ == "__main__":
    sys.exit(main())
