#!/usr/bin/env python3
"""OCR accuracy and speed: born-digital pages rendered, OCR'd, compared with their text layer.

    CER             = Levenshtein(OCR text, text layer) / length of the text layer
    CER by position = the same, line by line, each OCR line against the layer's glyphs
                      inside its box, plus every layer glyph no OCR line covers   target <= 3%

A fixed sample: the PDFs of ../shared/corpus/real (byte-identical copies once), taken in
turn from each top-level folder (camelot, pdfplumber, sample-files, tabula-java) in
sorted order; from each file its first page whose text layer is usable (docmill's own
check, ``processors.pdf.scanned.usable_text``), has at least ``--min-chars`` visible characters
and is written in Latin script (at least 90% of its letters; the OCR reads English),
then second pages, until ``--pages`` pages. Each page is rendered by PDFium at 300 dpi in
grey (``docmill.processors.pdf.render.render_page``) and read as the engine reads it
(``Tesseract.read_pnm_tsv``: ``--psm 3``, and ``--psm 1`` again where that reading is
unsure and the osd data is installed), one process, one page at a time. Three readers
in one run: ``docmill`` (Tesseract's C API in this process, as the engine's workers
read), ``docmill-cli`` (as docmill read before: the command line started per page,
``--psm 1`` on every page) and ``ocrmypdf`` (the peer: one run over a PDF of the sample
pages, ``--force-ocr``, one job, Tesseract held to one thread, its pypdfium2
rasterizer; each page's OCR is its output's text layer, its lines scored by position
like Tesseract's). The OCR text is the TSV's words, a space between words
and a line break between lines: after whitespace normalisation it is exactly the txt
output.

**CER (plain)**, the issue's figure: both texts after whitespace normalisation (runs of
whitespace -> one space); ``cer_folded`` also applies NFKC and folds quotes and dashes,
the differences a reader does not see (ligatures, curly quotes, en dashes). Reading
order counts: a table Tesseract reads column by column where the layer goes row by row,
or a layer whose content stream is in no visual order, scores badly with every
character right. ``cer_unordered`` (diagnostic): the folded words of each text sorted,
then the same CER; it ignores order but also punishes a word split differently.

**CER by position** (order-independent, aligned by place on the page): Tesseract's TSV
gives each text line's box in pixels; PDFium gives each layer character's box, mapped
into the same pixels (``FPDF_PageToDevice``, /Rotate included). Each visible layer glyph
goes to the OCR line whose box holds the glyph's centre (several: the one whose vertical
middle is nearest). Per line, the reference is its glyphs in writing order (centres
projected on the line's mean writing direction from PDFium's character angles: left to
right for upright text, along the text for text set sideways), a space wherever two
neighbours are not consecutive in the layer without whitespace; the
Levenshtein distance to the line's words (one space apart) counts, after whitespace
normalisation. Glyphs no line covers count as deletions (text OCR missed, or text the
layer holds that is not visible), lines with no glyph count in full as insertions. The
figure is all errors / all reference characters (each page's glyphs, spaces inside
lines). A glyph drawn again on itself (same character, box within 1 pt: overprinted fake
bold, pdfplumber's ``dedupe_chars`` rule) counts once. ``cer_position_folded`` applies
``fold`` to both sides. Tesseract's reading order between lines no longer matters;
within a line the order is the page's own.

pages/s is render + OCR, wall clock, one process (Tesseract held to one thread); pages
per CPU-second divides by the CPU time of this process and its children instead (the
command line's Tesseract, ocrmypdf), which other load on a shared machine changes far
less: per core, the figure the issue's target is in.
Everything comes from one invocation; nothing is asserted (timings are not tests).
"""

from __future__ import annotations

import argparse
import hashlib
import math
import statistics
import sys
import time
import unicodedata
from pathlib import Path
from typing import Any

from corpus import SOURCE, add_output_args, ensure_venv, run_benchmark, source_pdfs

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


# character, box left/top/right/bottom in pixels, and the unit vector of its writing
# direction in pixels (x right, y down): (1, 0) for upright text
Glyph = tuple[str, float, float, float, float, float, float]


def layer_glyphs(page: Any, width: int, height: int) -> list[Glyph | None]:
    """Every character of the page's text layer, in the layer's order, with its box in
    the pixels of the ``width`` x ``height`` rendering (PDFium maps it, /Rotate
    included) and its writing direction there (``FPDFText_GetCharAngle``); whitespace, and characters without a box (generated spaces and line
    breaks), are ``None``. A glyph drawn again on itself (same character, box within
    1 pt: overprinted fake bold, pdfplumber's ``dedupe_chars`` rule) is ``None`` too."""
    import ctypes

    import pypdfium2.raw as raw

    textpage = page.get_textpage()
    glyphs: list[Glyph | None] = []
    seen: dict[tuple[str, int, int], None] = {}
    x, y = ctypes.c_int(), ctypes.c_int()

    def device(px: float, py: float) -> tuple[int, int]:
        raw.FPDF_PageToDevice(
            page, 0, 0, width, height, 0, px, py, ctypes.byref(x), ctypes.byref(y)
        )
        return x.value, y.value

    try:
        for index in range(textpage.count_chars()):
            code = raw.FPDFText_GetUnicode(textpage, index)
            char = chr(code) if code else ""
            if not char or char.isspace():
                glyphs.append(None)
                continue
            left, bottom, right, top = textpage.get_charbox(index)
            if right <= left and top <= bottom:
                glyphs.append(None)
                continue
            near = [
                (char, round(left) + dx, round(top) + dy) for dx in (-1, 0, 1) for dy in (-1, 0, 1)
            ]
            if any(key in seen for key in near):
                glyphs.append(None)
                continue
            seen[(char, round(left), round(top))] = None
            (x0, y0), (x1, y1) = device(left, bottom), device(right, top)
            angle = raw.FPDFText_GetCharAngle(textpage, index)
            cx, cy = (left + right) / 2, (top + bottom) / 2
            (ax, ay) = device(cx, cy)
            # PDFium measures the angle clockwise (in page space, y up)
            (bx, by) = device(cx + 100 * math.cos(angle), cy - 100 * math.sin(angle))
            norm = math.hypot(bx - ax, by - ay) or 1.0
            glyphs.append((char, min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1),
                           (bx - ax) / norm, (by - ay) / norm))  # fmt: skip
    finally:
        textpage.close()
    return glyphs


def tsv_lines(tsv: str) -> list[tuple[int, int, int, int, str]]:
    """Tesseract's text lines from its TSV: (left, top, right, bottom, words joined by
    one space), in Tesseract's reading order; lines without words are left out."""
    from docmill.processors.ocr.leaders import tsv_line_rows

    rows = [row.split("\t") for row in tsv.splitlines()]
    return [
        (*box, " ".join(rows[n][11].strip() for n in members))
        for box, members in tsv_line_rows(rows)
        if members
    ]


def positional_cer(
    glyphs: list[Glyph | None], lines: list[tuple[int, int, int, int, str]], norm: Any = normalise
) -> tuple[int, int]:
    """(errors, reference characters) of the CER by position; see the module docstring."""
    assigned: list[list[tuple[float, float, int]]] = [[] for _ in lines]
    missed: list[int] = []
    for index, glyph in enumerate(glyphs):
        if glyph is None:
            continue
        _, left, top, right, bottom, _, _ = glyph
        cx, cy = (left + right) / 2, (top + bottom) / 2
        best: tuple[float, int] | None = None
        for number, (x0, y0, x1, y1, _) in enumerate(lines):
            if x0 <= cx <= x1 and y0 <= cy <= y1:
                distance = abs(cy - (y0 + y1) / 2)
                if best is None or distance < best[0]:
                    best = (distance, number)
        if best is None:
            missed.append(index)
        else:
            assigned[best[1]].append((cx, cy, index))

    def text(indexes: list[int]) -> str:
        parts: list[str] = []
        for k, index in enumerate(indexes):
            if k and index != indexes[k - 1] + 1:
                parts.append(" ")
            glyph = glyphs[index]
            assert glyph is not None
            parts.append(glyph[0])
        return "".join(parts)

    def along(members: list[tuple[float, float, int]]) -> list[int]:
        """The line's glyphs in writing order: by centre projected on the mean direction."""
        ux = uy = 0.0
        for _, _, index in members:
            glyph = glyphs[index]
            assert glyph is not None
            ux, uy = ux + glyph[5], uy + glyph[6]
        return [i for _, i in sorted((cx * ux + cy * uy, i) for cx, cy, i in members)]

    errors = reference = 0
    for (_, _, _, _, words), members in zip(lines, assigned, strict=True):
        ref = norm(text(along(members)))
        errors += levenshtein(norm(words), ref)
        reference += len(ref)
    lost = len(norm(text(missed)).replace(" ", ""))
    return errors + lost, reference + lost


def sample_pages(source: Path, count: int, min_chars: int) -> list[tuple[Path, int, str]]:
    """(file, page index, text layer) for a fixed sample of born-digital pages."""
    import pypdfium2 as pdfium

    from docmill.processors.pdf.scanned import usable_text

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


def _cpu() -> float:
    """CPU seconds of this process and of its waited-for children (Tesseract's command
    line, ocrmypdf)."""
    import resource

    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def _score(path: Path, index: int, layer: str, glyphs: list[Glyph | None],
           lines: list[tuple[int, int, int, int, str]], seconds: float, cpu: float,
           source: Path) -> dict[str, Any]:
    text = "\n".join(words for *_, words in lines)  # = the txt output, whitespace aside
    ref, got = normalise(layer), normalise(text)
    cer = levenshtein(got, ref) / max(len(ref), 1)
    cer_folded = levenshtein(fold(text), fold(layer)) / max(len(fold(layer)), 1)
    bag = unordered(layer)
    cer_unordered = levenshtein(unordered(text), bag) / max(len(bag), 1)
    pos_errors, pos_chars = positional_cer(glyphs, lines)
    posf_errors, posf_chars = positional_cer(glyphs, lines, fold)
    rel = str(path.relative_to(source)) if path.is_relative_to(source) else str(path)
    return {"file": rel, "page": index, "chars": len(ref), "cer": cer,
            "cer_folded": cer_folded, "cer_unordered": cer_unordered,
            "position_chars": pos_chars, "cer_position": pos_errors / max(pos_chars, 1),
            "position_folded_chars": posf_chars,
            "cer_position_folded": posf_errors / max(posf_chars, 1),
            "seconds": seconds, "cpu_seconds": cpu}  # fmt: skip


def _docmill(args: argparse.Namespace, pages: list[tuple[Path, int, str]], api: bool) -> list[dict[str, Any]]:
    """Each page drawn and read as the engine does (``Tesseract.read_pnm_tsv``)."""
    from dataclasses import replace

    import pypdfium2 as pdfium

    from docmill.processors.ocr.tesseract import open_tesseract
    from docmill.processors.pdf.render import render_page

    tesseract = open_tesseract("eng", api=api)
    if not api:  # as docmill read before: the command line, --psm 1 on every page
        tesseract = replace(tesseract, osd_when_unsure=False)
    if api and tesseract.api is None:
        raise SystemExit("bench: libtesseract cannot be loaded (the C API path)")
    name = "docmill" if api else "docmill (CLI)"
    rows: list[dict[str, Any]] = []
    for number, (path, index, layer) in enumerate(pages, 1):
        started, cpu = time.perf_counter(), _cpu()
        doc = pdfium.PdfDocument(str(path))
        try:
            page = doc[index]
            image, dpi = render_page(page, DPI)
            seconds, cpu_used = time.perf_counter() - started, _cpu() - cpu
            width, height = (int(v) for v in image[3 : image.index(b"\n255\n")].split())
            glyphs = layer_glyphs(page, width, height)
            page.close()
        finally:
            doc.close()
        started, cpu = time.perf_counter(), _cpu()
        tsv = tesseract.read_pnm_tsv(image, dpi)
        seconds += time.perf_counter() - started
        cpu_used += _cpu() - cpu
        row = _score(path, index, layer, glyphs, tsv_lines(tsv), seconds, cpu_used, args.source)
        rows.append(row)
        print(f"  {name} {number:3}/{len(pages)} cer {row['cer']:6.1%} by position"
              f" {row['cer_position']:6.1%}  {cpu_used:5.2f} CPU-s  {row['file']} p{index + 1}",
              file=sys.stderr)  # fmt: skip
    return rows


def ocr_layer_lines(page: Any, width: int, height: int) -> list[tuple[int, int, int, int, str]]:
    """The text lines of an OCR'd page's invisible text layer (ocrmypdf's), as
    :func:`tsv_lines` gives Tesseract's: box in the pixels of a ``width`` x ``height``
    rendering, words one space apart. A line ends at a line break of the layer."""
    glyphs = layer_glyphs(page, width, height)
    textpage = page.get_textpage()
    try:
        import pypdfium2.raw as raw

        codes = [raw.FPDFText_GetUnicode(textpage, i) for i in range(textpage.count_chars())]
    finally:
        textpage.close()
    lines: list[tuple[int, int, int, int, str]] = []
    box: list[float] = []
    text = ""

    def flush() -> None:
        nonlocal box, text
        if text.strip() and box:
            lines.append((int(box[0]), int(box[1]), int(box[2]) + 1, int(box[3]) + 1, " ".join(text.split())))
        box, text = [], ""

    for glyph, code in zip(glyphs, codes, strict=True):
        if code in (10, 13):
            flush()
            continue
        if glyph is None:
            text += " "
            continue
        if box and glyph[2] > box[3] + 0.5 * (box[3] - box[1]):  # below the line: a new one
            flush()
        text += glyph[0]
        edges = glyph[1:5]
        box = list(edges) if not box else [min(box[0], edges[0]), min(box[1], edges[1]),
                                           max(box[2], edges[2]), max(box[3], edges[3])]  # fmt: skip
    flush()
    return lines


def _ocrmypdf(args: argparse.Namespace, pages: list[tuple[Path, int, str]], work: Path) -> list[dict[str, Any]]:
    """ocrmypdf on one PDF of all the sample pages (``--force-ocr``, one job, Tesseract
    held to one thread, pypdfium2 rasterizer, no PDF/A), as its users run it: its time
    is the whole run's over the pages; each page's OCR text is its output's text layer."""
    import os
    import shutil
    import subprocess

    import pypdfium2 as pdfium

    from docmill.processors.pdf.render import render_page

    binary = shutil.which("ocrmypdf") or str(Path(sys.executable).with_name("ocrmypdf"))
    sample = pdfium.PdfDocument.new()
    for path, index, _ in pages:
        src = pdfium.PdfDocument(str(path))
        sample.import_pages(src, [index])
        src.close()
    source, output = work / "sample.pdf", work / "sample-ocr.pdf"
    sample.save(str(source))
    sample.close()
    env = dict(os.environ, OMP_THREAD_LIMIT="1")
    command = [binary, "--force-ocr", "--output-type", "pdf", "-j", "1", "-l", "eng",
               "--rasterizer", "pypdfium", "--quiet", str(source), str(output)]  # fmt: skip
    started, cpu = time.perf_counter(), _cpu()
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    seconds, cpu_used = time.perf_counter() - started, _cpu() - cpu
    if done.returncode != 0:
        raise RuntimeError(f"ocrmypdf failed ({done.returncode}): {done.stderr[-500:]}")
    print(f"  ocrmypdf: {len(pages)} pages in {cpu_used:.1f} CPU-s", file=sys.stderr)
    rows: list[dict[str, Any]] = []
    ocred = pdfium.PdfDocument(str(output))
    try:
        for number, (path, index, layer) in enumerate(pages):
            doc = pdfium.PdfDocument(str(path))
            try:
                page = doc[index]
                image, _ = render_page(page, DPI)
                width, height = (int(v) for v in image[3 : image.index(b"\n255\n")].split())
                glyphs = layer_glyphs(page, width, height)
                page.close()
            finally:
                doc.close()
            out_page = ocred[number]
            lines = ocr_layer_lines(out_page, width, height)
            out_page.close()
            rows.append(_score(path, index, layer, glyphs, lines, seconds / len(pages),
                               cpu_used / len(pages), args.source))  # fmt: skip
    finally:
        ocred.close()
    return rows


def _summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    chars = sum(r["chars"] for r in rows)
    pos_chars = sum(r["position_chars"] for r in rows)
    posf_chars = sum(r["position_folded_chars"] for r in rows)
    seconds = sum(r["seconds"] for r in rows)
    cpu = sum(r["cpu_seconds"] for r in rows)
    return {
        "pages": len(rows),
        "reference_chars": chars,
        "cer": sum(r["cer"] * r["chars"] for r in rows) / max(chars, 1),
        "cer_median": statistics.median(r["cer"] for r in rows) if rows else None,
        "cer_folded": sum(r["cer_folded"] * r["chars"] for r in rows) / max(chars, 1),
        "cer_folded_median": statistics.median(r["cer_folded"] for r in rows) if rows else None,
        "cer_unordered": sum(r["cer_unordered"] * r["chars"] for r in rows) / max(chars, 1),
        "cer_unordered_median": statistics.median(r["cer_unordered"] for r in rows) if rows else None,
        "cer_position": sum(r["cer_position"] * r["position_chars"] for r in rows) / max(pos_chars, 1),
        "cer_position_median": statistics.median(r["cer_position"] for r in rows) if rows else None,
        "cer_position_folded": sum(r["cer_position_folded"] * r["position_folded_chars"] for r in rows)
        / max(posf_chars, 1),
        "seconds": seconds,
        "cpu_seconds": cpu,
        "pages_per_s": len(rows) / seconds if seconds else None,
        "pages_per_cpu_s": len(rows) / cpu if cpu else None,
        "worst": sorted(rows, key=lambda r: -r["cer_position"])[:5],
        "per_page": rows,
    }


def measure(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    pages = sample_pages(args.source, args.pages, args.min_chars)
    print(f"sample: {len(pages)} pages from {len({p for p, _, _ in pages})} files", file=sys.stderr)
    tools: dict[str, Any] = {}
    for name in args.tools:
        if name == "docmill":
            rows = _docmill(args, pages, api=True)
        elif name == "docmill-cli":
            rows = _docmill(args, pages, api=False)
        else:
            try:
                rows = _ocrmypdf(args, pages, work)
            except (OSError, RuntimeError) as exc:
                print(f"note: ocrmypdf skipped ({exc})", file=sys.stderr)
                tools[name] = {"skipped": str(exc)[:300]}
                continue
        tools[name] = _summary(rows)
    main = tools.get("docmill") or next(iter(tools.values()))
    return {
        "source": str(args.source),
        "dpi": DPI,
        "languages": "eng",
        "pages": len(pages),
        "reference_chars": main.get("reference_chars"),
        "target": f"cer by position <= {TARGET}, >= 1.0 pages per CPU-s",
        "tools": tools,
        # the figures of docmill's engine path, as before (bench/README's table)
        "cer": main.get("cer"),
        "cer_position": main.get("cer_position"),
        "pages_per_s": main.get("pages_per_s"),
        "pages_per_cpu_s": main.get("pages_per_cpu_s"),
        "meets_target_position": (main.get("cer_position") or 1) <= TARGET,
    }


def report(fig: dict[str, Any]) -> str:
    lines = [
        f"OCR: {fig['pages']} born-digital pages at {fig['dpi']} dpi against their text layer"
        f" ({fig['reference_chars'] or 0:,} characters); target: CER by position <= {TARGET:.0%},"
        " >= 1.0 pages per CPU-s",
        f"{'tool':<15} {'CER':>7} {'median':>7} {'by pos.':>8} {'median':>7} {'folded':>7}"
        f" {'pages/s':>8} {'pages/CPU-s':>12}",
    ]
    for name, r in fig["tools"].items():
        if "skipped" in r:
            lines.append(f"{name:<15} skipped: {r['skipped']}")
            continue
        lines.append(
            f"{name:<15} {r['cer']:>7.2%} {r['cer_median']:>7.2%} {r['cer_position']:>8.2%}"
            f" {r['cer_position_median']:>7.2%} {r['cer_position_folded']:>7.2%}"
            f" {r['pages_per_s'] or 0:>8.2f} {r['pages_per_cpu_s'] or 0:>12.2f}"
        )
    main = fig["tools"].get("docmill", {})
    for worst in main.get("worst", [])[:3]:
        lines.append(f"  docmill's worst by position: {worst['cer_position']:.1%}"
                     f" (plain {worst['cer']:.1%})  {worst['file']} p{worst['page'] + 1}")  # fmt: skip
    return "\n".join(lines)


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
    parser.add_argument(
        "--tools", nargs="+", choices=["docmill", "docmill-cli", "ocrmypdf"],
        default=["docmill", "docmill-cli", "ocrmypdf"],
        help="docmill (the C API, as the engine reads), docmill-cli (Tesseract's command"
        " line, as before), ocrmypdf (the peer); default: all three",
    )
    add_output_args(parser, "ocr")
    return run_benchmark("ocr", parser.parse_args(argv), measure, report)


if __name__ == "__main__":
    sys.exit(main())
