#!/usr/bin/env python3
"""Text quality: docmill's page text against poppler's ``pdftotext`` (reading order).

For every PDF of ../shared/corpus/real, docmill's page text (``process_task``, as a
worker runs it, in this process) is compared page by page with
``pdftotext FILE -`` (poppler's reading-order mode, the usual reference; its pages are
split on form feeds):

    similarity = 1 - Levenshtein(a, b) / max(len(a), len(b))

after collapsing every run of whitespace to one space (two empty pages: 1.0), and with
both texts in Unicode NFKC form without format characters (category Cf): pdftotext keeps
ligatures and Arabic presentation forms (``ﬁ``, ``ﺍ``) where PDFium writes the letters,
and wraps right-to-left runs in bidi embedding marks (U+202A-U+202C) nobody sees; the
figure without that step ("whitespace only") is printed beside it.

The figures are docmill's default text (``extract.reading_order = pdfium``); the same
figures with ``extract.reading_order = layout`` (geometric reading order) follow, from the
same run.

Peers, in the same run, on the same pages and by the same metric: PyMuPDF
(``get_text()``, and ``sort=True``), pdfplumber (``extract_text``), pdfminer.six (its
layout analysis, default ``LAParams``) and poppler's own other mode, ``pdftotext
-layout``; each figure is also given apart for the pages where docmill's table detection
finds a table and for the others. A peer that cannot be imported is skipped, said so;
``--no-peers`` leaves them out (they take about three minutes).

Printed: mean and median similarity over the pages where pdftotext finds text, the
number of those pages docmill returns empty, the 10 worst pages, and the extraction
cost per page (docmill's ``parse_s`` against raw pypdfium2 ``get_text_bounded`` on the
same files). Targets: mean >= 0.98, zero empty pages. Nothing is asserted.

Needs poppler-utils (``pdftotext``) and the ``bench`` extra (rapidfuzz):
``.venv/bin/pip install -e '.[bench]'``.
"""

from __future__ import annotations

import argparse
import re
import shutil
import statistics
import subprocess
import sys
import time
import unicodedata
from collections.abc import Callable
from pathlib import Path
from typing import Any

from corpus import SOURCE, add_output_args, ensure_venv, run_benchmark, source_pdfs, table

TARGET_MEAN = 0.98
_SPACE = re.compile(r"\s+")


def normalise(text: str) -> str:
    return _SPACE.sub(" ", text).strip()


def canonical(text: str) -> str:
    """``normalise``d NFKC text without format characters (bidi marks, soft hyphens)."""
    text = unicodedata.normalize("NFKC", text)
    return normalise("".join(ch for ch in text if unicodedata.category(ch) != "Cf"))


def similarity(a: str, b: str) -> float:
    """1 - Levenshtein(a, b) / max(len): 1.0 for equal strings (two empty ones too)."""
    from rapidfuzz.distance import Levenshtein

    if not a and not b:
        return 1.0
    return float(Levenshtein.normalized_similarity(a, b))


def _pdftotext(path: Path, *flags: str) -> list[str] | None:
    """pdftotext's text of each page of ``path``, with ``flags`` (None when it fails)."""
    done = subprocess.run(
        ["pdftotext", "-q", *flags, "-enc", "UTF-8", str(path), "-"],
        capture_output=True,
        check=False,
        timeout=120,
    )
    if done.returncode != 0:
        return None
    return done.stdout.decode("utf-8", "replace").split("\f")


def poppler_pages(path: Path, pages: int) -> list[str] | None:
    """pdftotext's text of each page (None when pdftotext fails on the file)."""
    parts = _pdftotext(path)
    if parts is None:
        return None
    return (parts + [""] * pages)[:pages]


def _outcome(path: Path, **options: Any) -> Any:
    """What a docmill worker makes of the whole of ``path`` (in this process) with
    these ``ExtractOptions``."""
    from docmill.processors import ExtractOptions, process_task
    from docmill.processors.pipeline import Task

    extract = ExtractOptions(split_pages=1 << 30, **options)
    return process_task(Task(0, 0, str(path), None, 1 << 40, extract))


def docmill_pages(path: Path, order: str = "pdfium") -> tuple[list[str], int, float] | None:
    """(page texts, pages, parse seconds) as a docmill worker extracts them, with
    ``extract.reading_order = order``."""
    from docmill.model import DocState

    outcome = _outcome(path, reading_order=order)
    if outcome.status != DocState.DONE or not outcome.pages:
        return None
    return list(outcome.text), outcome.pages, outcome.parse_s


def raw_seconds(path: Path) -> float:
    """Seconds raw pypdfium2 takes for every page's text of ``path``."""
    import pypdfium2 as pdfium

    started = time.perf_counter()
    try:
        doc = pdfium.PdfDocument(str(path))
    except Exception:
        return 0.0
    try:
        for index in range(len(doc)):
            page = doc[index]
            textpage = page.get_textpage()
            textpage.get_text_bounded()
            textpage.close()
            page.close()
    except Exception:
        pass
    finally:
        doc.close()
    return time.perf_counter() - started


def table_pages(path: Path) -> set[int]:
    """The pages (from 0) where docmill's table detection (``extract.tables``) finds a
    table: the figures are split by it, tables being where orders differ most."""
    outcome = _outcome(path, tables=True, ocr="never")
    return {int(t["page"]) for t in outcome.extra.get("tables") or []}


def _pymupdf(sort: bool) -> Callable[[Path], list[str]]:
    def run(path: Path) -> list[str]:
        import pymupdf

        with pymupdf.open(path) as doc:
            return [page.get_text(sort=sort) for page in doc]

    return run


def _pdfplumber(path: Path) -> list[str]:
    import pdfplumber

    with pdfplumber.open(path) as doc:
        return [page.extract_text() or "" for page in doc.pages]


def _pdfminer(path: Path) -> list[str]:
    from pdfminer.high_level import extract_pages
    from pdfminer.layout import LAParams, LTTextContainer

    return [
        "".join(item.get_text() for item in page if isinstance(item, LTTextContainer))
        for page in extract_pages(path, laparams=LAParams())
    ]


def _pdftotext_layout(path: Path) -> list[str]:
    return _pdftotext(path, "-layout") or []


# name -> (module it needs, page texts of a file); run on the same pages, same metric
PEERS: dict[str, tuple[str, Callable[[Path], list[str]]]] = {
    "pymupdf": ("pymupdf", _pymupdf(False)),
    "pymupdf sort=True": ("pymupdf", _pymupdf(True)),
    "pdfplumber": ("pdfplumber", _pdfplumber),
    "pdfminer.six": ("pdfminer", _pdfminer),
    "pdftotext -layout": ("subprocess", _pdftotext_layout),
}


def _peer_texts(name: str, path: Path) -> tuple[list[str], float]:
    """(page texts, seconds) of one peer on one file; no pages where it fails."""
    import contextlib
    import io
    import logging
    import warnings

    fn = PEERS[name][1]
    started = time.perf_counter()
    with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore")
        logging.disable(logging.WARNING)
        try:
            texts = fn(path)
        except Exception:
            texts = []
        finally:
            logging.disable(logging.NOTSET)
    return texts, time.perf_counter() - started


def _summary(scores: list[float], tabled: list[bool], seconds: float, pages: int) -> dict[str, Any]:
    def mean(values: list[float]) -> float | None:
        return statistics.fmean(values) if values else None

    return {
        "mean": mean(scores),
        "median": statistics.median(scores) if scores else None,
        "mean_table_pages": mean([s for s, t in zip(scores, tabled, strict=True) if t]),
        "mean_other_pages": mean([s for s, t in zip(scores, tabled, strict=True) if not t]),
        "ms_per_page": 1000 * seconds / pages if pages else None,
    }


def measure(args: argparse.Namespace, _work: Path) -> dict[str, Any]:
    import importlib

    if shutil.which("pdftotext") is None:
        raise SystemExit("bench: pdftotext (poppler-utils) is not installed")
    try:
        import rapidfuzz  # noqa: F401
    except ImportError:
        raise SystemExit(
            "bench: rapidfuzz is not installed: run .venv/bin/pip install -e '.[bench]'"
        ) from None
    peers: list[str] = []
    skipped_peers: dict[str, str] = {}
    for name in [] if args.no_peers else PEERS:
        try:
            importlib.import_module(PEERS[name][0])
        except Exception as exc:  # a peer that is not installed is skipped, said so
            skipped_peers[name] = f"{PEERS[name][0]} not importable: {exc}"
            continue
        peers.append(name)
    rows: list[dict[str, Any]] = []
    files = skipped = 0
    parse_s = raw_s = layout_s = 0.0
    layout_rows: list[dict[str, Any]] = []
    tabled: list[bool] = []  # per scored page: docmill finds a table on it
    peer_scores: dict[str, list[float]] = {name: [] for name in peers}
    peer_s = dict.fromkeys(peers, 0.0)
    pages_total = 0
    for path in source_pdfs(args.source):
        got = docmill_pages(path)
        if got is None:
            skipped += 1
            continue
        text, pages, seconds = got
        reference = poppler_pages(path, pages)
        if reference is None:
            skipped += 1
            continue
        by_layout = docmill_pages(path, "layout")
        layout_text = by_layout[0] if by_layout is not None else [""] * pages
        layout_s += by_layout[2] if by_layout is not None else 0.0
        with_tables = table_pages(path)
        peer_text: dict[str, list[str]] = {}
        for name in peers:
            peer_text[name], spent = _peer_texts(name, path)
            peer_s[name] += spent
        files += 1
        pages_total += pages
        parse_s += seconds
        raw_s += raw_seconds(path)
        name = str(path.relative_to(args.source))
        for index, (ours, theirs) in enumerate(zip(text, reference, strict=False)):
            if not normalise(theirs):
                continue  # no text layer by poppler's account
            b, raw_b = canonical(theirs), normalise(theirs)
            tabled.append(index in with_tables)
            for out, page_text in ((rows, ours), (layout_rows, layout_text[index])):
                a = canonical(page_text)
                out.append(
                    {
                        "file": name,
                        "page": index + 1,
                        "similarity": similarity(a, b),
                        "whitespace_only": similarity(normalise(page_text), raw_b),
                        "empty": not a,
                    }
                )
            for peer in peers:
                got_text = peer_text[peer]
                page_text = got_text[index] if index < len(got_text) else ""
                peer_scores[peer].append(similarity(canonical(page_text), b))
    scores = [r["similarity"] for r in rows]
    worst = sorted(rows, key=lambda r: r["similarity"])[:10]
    mean = statistics.fmean(scores) if scores else 0.0
    empty = sum(r["empty"] for r in rows)
    layout_scores = [r["similarity"] for r in layout_rows]
    return {
        "source": str(args.source),
        "files": files,
        "files_skipped": skipped,
        "pages": pages_total,
        "pages_with_text": len(rows),
        "table_pages": sum(tabled),
        "mean": mean,
        "median": statistics.median(scores) if scores else 0.0,
        "mean_whitespace_only": statistics.fmean(r["whitespace_only"] for r in rows)
        if rows
        else 0.0,
        "empty_pages": empty,
        "worst": worst,
        "docmill_ms_per_page": 1000 * parse_s / pages_total if pages_total else None,
        "raw_ms_per_page": 1000 * raw_s / pages_total if pages_total else None,
        "layout": {
            "mean": statistics.fmean(layout_scores) if layout_scores else 0.0,
            "median": statistics.median(layout_scores) if layout_scores else 0.0,
            "mean_whitespace_only": statistics.fmean(r["whitespace_only"] for r in layout_rows)
            if layout_rows
            else 0.0,
            "empty_pages": sum(r["empty"] for r in layout_rows),
            "ms_per_page": 1000 * layout_s / pages_total if pages_total else None,
            "worst": sorted(layout_rows, key=lambda r: r["similarity"])[:10],
        },
        "side_by_side": {
            "docmill (pdfium)": _summary(scores, tabled, parse_s, pages_total),
            "docmill (layout)": _summary(layout_scores, tabled, layout_s, pages_total),
            **{
                peer: _summary(peer_scores[peer], tabled, peer_s[peer], pages_total)
                for peer in peers
            },
        },
        "peers_skipped": skipped_peers,
        "target": f"mean >= {TARGET_MEAN}, 0 empty pages",
        "meets_target": mean >= TARGET_MEAN and empty == 0,
    }


def report(fig: dict[str, Any]) -> str:
    rows = [
        (
            "corpus",
            f"{fig['files']} files ({fig['files_skipped']} skipped), {fig['pages']:,} pages,"
            f" {fig['pages_with_text']:,} with text (pdftotext)",
        ),
        (
            "mean similarity",
            f"{fig['mean']:.4f}   target >= {TARGET_MEAN}"
            f" (whitespace only: {fig['mean_whitespace_only']:.4f})",
        ),
        ("median similarity", f"{fig['median']:.4f}"),
        ("pages docmill returns empty", f"{fig['empty_pages']}   target 0"),
        ("docmill extract, ms/page", f"{fig['docmill_ms_per_page']:.2f}"),
        (
            "reading_order=layout: mean",
            f"{fig['layout']['mean']:.4f} (median {fig['layout']['median']:.4f},"
            f" whitespace only {fig['layout']['mean_whitespace_only']:.4f},"
            f" {fig['layout']['empty_pages']} empty, {fig['layout']['ms_per_page']:.2f} ms/page)",
        ),
        ("raw pypdfium2 text, ms/page", f"{fig['raw_ms_per_page']:.2f}"),
        ("target", "met" if fig["meets_target"] else "NOT met"),
    ]
    worst = "\n".join(
        f"    {r['similarity']:.3f}  {r['file']} p{r['page']}" + ("  (empty)" if r["empty"] else "")
        for r in fig["worst"]
    )
    return (
        "Text quality against pdftotext\n"
        + table(rows)
        + "\n"
        + side_by_side(fig)
        + "\n  10 worst pages:\n"
        + worst
    )


def side_by_side(fig: dict[str, Any]) -> str:
    """docmill's two orders and each peer on the same pages: mean, median, the means on
    the pages where docmill finds a table and on the others, and ms/page."""

    def num(value: float | None, fmt: str = ".4f") -> str:
        return "-" if value is None else format(value, fmt)

    other = fig["pages_with_text"] - fig["table_pages"]
    head = ("", "mean", "median", f"tables ({fig['table_pages']})", f"other ({other})", "ms/page")
    lines = [head]
    for name, fig_of in fig["side_by_side"].items():
        lines.append(
            (
                name,
                num(fig_of["mean"]),
                num(fig_of["median"]),
                num(fig_of["mean_table_pages"]),
                num(fig_of["mean_other_pages"]),
                num(fig_of["ms_per_page"], ".2f"),
            )
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
    out = ["  side by side, similarity to pdftotext (pages where docmill finds a table / not):"]
    for line in lines:
        rest = zip(line[1:], widths[1:], strict=True)
        cells = [line[0].ljust(widths[0])] + [c.rjust(w) for c, w in rest]
        out.append("    " + "  ".join(cells))
    for name, why in fig["peers_skipped"].items():
        out.append(f"    {name}: skipped ({why})")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ensure_venv()
    parser = argparse.ArgumentParser(description="docmill page text vs pdftotext.")
    parser.add_argument(
        "--source", type=Path, default=SOURCE, help="corpus folder (default: %(default)s)"
    )
    parser.add_argument(
        "--no-peers", action="store_true", help="docmill only (the peers take ~3 minutes)"
    )
    add_output_args(parser, "text_quality")
    return run_benchmark("text_quality", parser.parse_args(argv), measure, report)


if __name__ == "__main__":
    sys.exit(main())
