#!/usr/bin/env python3
"""OCR accuracy and speed: born-digital pages rendered, OCR'd, compared with their text layer.

    CER = Levenshtein distance (OCR text, text layer) / length of the text layer   target <= 3%

A fixed sample: the PDFs of ../shared/corpus/real (byte-identical copies once), taken in
turn from each top-level folder (camelot, pdfplumber, sample-files, tabula-java) in
sorted order; from each file its first page whose text layer is usable (docmill's own
check), has at least ``--min-chars`` visible characters and is written in Latin script
(at least 90% of its letters; the OCR reads English), then second pages, until
``--pages`` pages. Each page is rendered by
PDFium at 300 dpi in grey (``docmill.processors.ocr.render_page``) and read by
``tesseract - - -l eng --psm 3`` exactly as the engine does, one process, one page at a
time. Both texts are compared after whitespace normalisation (runs of whitespace -> one
space); ``cer_folded`` also applies NFKC and folds quotes and dashes, the differences a
reader does not see (ligatures, curly quotes, en dashes). Reading order counts in both:
a table Tesseract reads column by column (``--psm 3`` does, where the layer goes row by
row) scores badly with every character right. ``cer_unordered`` separates the two: the
folded words of each text sorted, then the same CER, so recognition errors still count
character by character but order does not.

pages/s is render + OCR, wall clock, one process (Tesseract held to one thread).
Everything comes from one invocation; nothing is asserted (timings are not tests).
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import sys
import time
import unicodedata
from pathlib import Path
from typing import Any

from corpus import SOURCE, add_output_args, ensure_venv, run_benchmark, source_pdfs, table

TARGET = 0.03
DPI = 300
_FOLD = str.maketrans({"‘": "'", "’": "'", "‚": "'", "“": '"', "”": '"', "„": '"',
                       "–": "-", "—": "-", "‐": "-", "‑": "-", "−": "-", "•": "*"})  # fmt: skip


def levenshtein(a: str, b: str) -> int:
    """Edit distance, Myers/Hyyrö bit-parallel (Python ints as bit vectors): pages of a
    few thousand characters in milliseconds."""
    if len(a) < len(b):
        a, b = b, a
    m = len(b)
    if m == 0:
        return len(a)
    peq: dict[str, int] = {}
    for i, ch in enumerate(b):
        peq[ch] = peq.get(ch, 0) | (1 << i)
    mask = (1 << m) - 1
    top = 1 << (m - 1)
    pv, mv, score = mask, 0, m
    for ch in a:
        eq = peq.get(ch, 0)
        xv = eq | mv
        xh = (((eq & pv) + pv) ^ pv) | eq
        ph = mv | ~(xh | pv)
        mh = pv & xh
        if ph & top:
            score += 1
        elif mh & top:
            score -= 1
        ph = (ph << 1) | 1
        mh <<= 1
        pv = (mh | ~(xv | ph)) & mask
        mv = ph & xv & mask
    return score


def normalise(text: str) -> str:
    return " ".join(text.split())


def fold(text: str) -> str:
    return normalise(unicodedata.normalize("NFKC", text).translate(_FOLD))


def latin(text: str) -> bool:
    letters = [ch for ch in text if ch.isalpha()]
    return sum(ch.isascii() or "LATIN" in unicodedata.name(ch, "") for ch in letters) >= 0.9 * len(
        letters
    )


def unordered(text: str) -> str:
    return " ".join(sorted(fold(text).split()))


def sample_pages(source: Path, count: int, min_chars: int) -> list[tuple[Path, int, str]]:
    """(file, page index, text layer) for a fixed sample of born-digital pages."""
    import pypdfium2 as pdfium

    from docmill.processors.ocr import usable_text

    candidates: dict[str, list[list[tuple[Path, int, str]]]] = {}
    seen: set[str] = set()
    for path in source_pdfs(source):
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if digest in seen:
            continue
        seen.add(digest)
        try:
            doc = pdfium.PdfDocument(str(path))
        except Exception:
            continue
        found: list[tuple[Path, int, str]] = []
        try:
            for index in range(min(len(doc), 10)):
                page = doc[index]
                textpage = page.get_textpage()
                text = textpage.get_text_bounded()
                textpage.close()
                page.close()
                chars = len(normalise(text).replace(" ", ""))
                if usable_text(text) and chars >= min_chars and latin(text):
                    found.append((path, index, text))
                if len(found) == 2:
                    break
        except Exception:
            continue
        finally:
            doc.close()
        if found:
            folder = path.relative_to(source).parts[0] if path.is_relative_to(source) else ""
            candidates.setdefault(folder, []).append(found)
    # round robin over the folders, first pages before second pages
    queues = [
        [f[rank] for f in files if len(f) > rank]
        for rank in (0, 1)
        for _folder, files in sorted(candidates.items())
    ]
    picked: list[tuple[Path, int, str]] = []
    for rank_queues in (queues[: len(candidates)], queues[len(candidates) :]):
        turn = 0
        while len(picked) < count and any(rank_queues):
            queue = rank_queues[turn % len(rank_queues)]
            if queue:
                picked.append(queue.pop(0))
            turn += 1
    return picked


def measure(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    import pypdfium2 as pdfium

    from docmill.processors.ocr import open_tesseract, render_page

    tesseract = open_tesseract("eng")
    pages = sample_pages(args.source, args.pages, args.min_chars)
    print(f"sample: {len(pages)} pages from {len({p for p, _, _ in pages})} files", file=sys.stderr)
    rows: list[dict[str, Any]] = []
    busy = 0.0
    for number, (path, index, layer) in enumerate(pages, 1):
        started = time.perf_counter()
        doc = pdfium.PdfDocument(str(path))
        try:
            page = doc[index]
            image, dpi = render_page(page, DPI)
            page.close()
        finally:
            doc.close()
        text = tesseract.read_pnm(image, dpi)
        seconds = time.perf_counter() - started
        busy += seconds
        ref, got = normalise(layer), normalise(text)
        cer = levenshtein(got, ref) / max(len(ref), 1)
        cer_folded = levenshtein(fold(text), fold(layer)) / max(len(fold(layer)), 1)
        bag = unordered(layer)
        cer_unordered = levenshtein(unordered(text), bag) / max(len(bag), 1)
        rel = str(path.relative_to(args.source)) if path.is_relative_to(args.source) else str(path)
        rows.append({"file": rel, "page": index, "chars": len(ref), "cer": cer,
                     "cer_folded": cer_folded, "cer_unordered": cer_unordered,
                     "seconds": seconds})  # fmt: skip
        print(f"  {number:3}/{len(pages)} cer {cer:6.1%} unordered {cer_unordered:6.1%}"
              f"  {seconds:5.2f}s  {rel} p{index + 1}",
              file=sys.stderr)  # fmt: skip
    chars = sum(r["chars"] for r in rows)
    overall = sum(r["cer"] * r["chars"] for r in rows) / max(chars, 1)
    overall_folded = sum(r["cer_folded"] * r["chars"] for r in rows) / max(chars, 1)
    overall_unordered = sum(r["cer_unordered"] * r["chars"] for r in rows) / max(chars, 1)
    return {
        "source": str(args.source),
        "dpi": DPI,
        "languages": "eng",
        "pages": len(rows),
        "reference_chars": chars,
        "cer": overall,
        "cer_median": statistics.median(r["cer"] for r in rows) if rows else None,
        "cer_folded": overall_folded,
        "cer_folded_median": statistics.median(r["cer_folded"] for r in rows) if rows else None,
        "cer_unordered": overall_unordered,
        "cer_unordered_median": statistics.median(r["cer_unordered"] for r in rows)
        if rows
        else None,
        "pages_per_s": len(rows) / busy if busy else None,
        "seconds": busy,
        "target": f"cer <= {TARGET}",
        "meets_target": overall <= TARGET,
        "worst": sorted(rows, key=lambda r: -r["cer"])[:5],
        "per_page": rows,
    }


def report(fig: dict[str, Any]) -> str:
    rows = [
        ("sample", f"{fig['pages']} born-digital pages, {fig['reference_chars']:,} characters"),
        ("CER overall (chars-weighted)", f"{fig['cer']:.2%}   target <= {TARGET:.0%} "
         + ("(met)" if fig["meets_target"] else "(NOT met)")),
        ("CER median page", f"{fig['cer_median']:.2%}"),
        ("CER folded (NFKC, quotes, dashes)", f"{fig['cer_folded']:.2%} overall,"
         f" {fig['cer_folded_median']:.2%} median"),
        ("CER unordered (folded words sorted)", f"{fig['cer_unordered']:.2%} overall,"
         f" {fig['cer_unordered_median']:.2%} median"),
        ("render + OCR, 1 process", f"{fig['pages_per_s']:.2f} pages/s ({fig['dpi']} dpi)"),
    ]  # fmt: skip
    for worst in fig["worst"][:3]:
        rows.append(("worst", f"{worst['cer']:.1%}  {worst['file']} p{worst['page'] + 1}"))
    return "OCR: accuracy against the text layer, and speed\n" + table(rows)


def main(argv: list[str] | None = None) -> int:
    ensure_venv()
    parser = argparse.ArgumentParser(description="OCR CER against the text layer, and pages/s.")
    parser.add_argument(
        "--source", type=Path, default=SOURCE, help="corpus folder (default: %(default)s)"
    )
    parser.add_argument("--pages", type=int, default=60, help="sample size (default: %(default)s)")
    parser.add_argument(
        "--min-chars",
        type=int,
        default=200,
        help="only pages whose layer has this many visible characters (default: %(default)s)",
    )
    add_output_args(parser, "ocr")
    return run_benchmark("ocr", parser.parse_args(argv), measure, report)


if __name__ == "__main__":
    sys.exit(main())
