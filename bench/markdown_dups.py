"""Table text repeated as prose in the Markdown, and prose lost from it.

With ``extract.tables`` and ``output.markdown``, a table becomes a pipe table and the
page's lines it covers must leave the prose. This script measures, per page, against
the page's own characters (PDFium, in the displayed frame) split by the bboxes of the
tables docmill found on it:

- **repeated**: words of the Markdown's prose (every line that is not a pipe table's)
  beyond those the text outside the tables holds, that are table words: table text
  written twice. Also the rows (two filled cells or more) whose text, whitespace
  removed, stands in the prose, whitespace removed (``rows repeated``).
- **lost**: words of the text outside the tables (running headers and footers, left out
  on purpose, excepted) that the prose lacks; **dropped**: words of the text inside the
  tables' bboxes that are in neither a table nor the prose (nor inside a table's text
  with its white space removed: the table's structure may glue or cut words).

Words are ``[^\\W\\d_]+`` and digit runs, case-folded, so that glued words
("Apples3", "1,009,142Northern") still count as theirs. Sets: the generated pages of
``docmill.testkit.table_pages`` (every kind, ``--seeds``), and the real pages of
``tables_truth`` (tabula, camelot, pdfplumber, corpus) that hold a table, each read
alone (``docs``: documents, a real page counting as one).

    .venv/bin/python bench/markdown_dups.py                # ~20 s on one core
    .venv/bin/python bench/markdown_dups.py --seeds 0 1 2 --count 48 --show 5
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

_TOKEN = re.compile(r"[^\W\d_]+|\d+")
_SPACE = re.compile(r"\s+")


def tokens(text: str) -> Counter[str]:
    return Counter(t.casefold() for t in _TOKEN.findall(text.replace("\x02", "")))


@dataclass(slots=True)
class PageFigures:
    name: str
    cells: int = 0  # non-empty table cells
    rows: int = 0  # table rows with two filled cells or more
    rows_repeated: int = 0
    repeated: int = 0  # table words repeated in the prose
    lost: int = 0  # words outside the tables missing from the prose
    dropped: int = 0  # words inside the tables' bboxes in neither a table nor the prose
    outside: int = 0  # words outside the tables
    examples: tuple[str, ...] = ()


def _inside(cx: float, cy: float, boxes: list[tuple[float, ...]]) -> bool:
    return any(b[0] - 1 <= cx <= b[2] + 1 and b[1] - 1 <= cy <= b[3] + 1 for b in boxes)


def outside_text(pdf: str, page_index: int, boxes: list[tuple[float, ...]]) -> str:
    """The page's text (PDFium's, with its spaces and line breaks) with the characters
    inside ``boxes`` blanked out."""
    import pypdfium2 as pdfium

    from docmill.processors.pdf.geometry import page_frame

    doc = pdfium.PdfDocument(pdf)
    try:
        page = doc[page_index]
        textpage = page.get_textpage()
        frame = page_frame(page)
        count = textpage.count_chars()
        text = textpage.get_text_range(0, count) if count > 0 else ""
        out = list(text)
        if len(text) == count:
            for i, ch in enumerate(text):
                if ch.isspace():
                    continue
                left, bottom, right, top = textpage.get_charbox(i)
                x0, y0, x1, y1 = frame.box(left, top, right, bottom)
                if _inside((x0 + x1) / 2, (y0 + y1) / 2, boxes):
                    out[i] = " "
        textpage.close()
        page.close()
        return "".join(out)
    finally:
        doc.close()


def page_figures(name: str, pdf: str, pages: list[int], outcome: Any) -> PageFigures:
    extra = outcome.extra
    tables = [t for t in extra.get("tables") or [] if isinstance(t, dict)]
    markdown = str(extra.get("markdown") or "")
    prose = "\n".join(line for line in markdown.split("\n") if not line.startswith("|"))
    prose = prose.replace("#", " ")
    marks = " ".join(
        m["text"] for key in ("headers", "footers") for m in outcome.metadata.get(key) or []
    )
    outside: Counter[str] = Counter()
    whole: Counter[str] = Counter()
    for page in pages:
        boxes = [tuple(t["bbox"]) for t in tables if t.get("page") == page and t.get("bbox")]
        outside += tokens(outside_text(pdf, page, boxes))
        whole += tokens(outside_text(pdf, page, []))
    outside -= tokens(marks)
    said = tokens(prose)
    table_words: Counter[str] = Counter()
    fig = PageFigures(name)
    squashed = _SPACE.sub("", prose.replace("\x02", ""))
    examples: list[str] = []
    for t in tables:
        for row in t.get("rows") or []:
            filled = [_SPACE.sub(" ", str(c)).strip() for c in row if str(c or "").strip()]
            fig.cells += len(filled)
            table_words += tokens(" ".join(filled))
            if len(filled) >= 2:
                fig.rows += 1
                if _SPACE.sub("", "".join(filled)) in squashed:
                    fig.rows_repeated += 1
                    examples.append(" ".join(filled)[:100])
    excess = said - outside
    fig.repeated = sum((excess & table_words).values())
    fig.lost = sum((outside - said).values())
    # a word the table holds glued to another or cut in two ("Novemb | er") is not dropped
    in_tables = _SPACE.sub(
        "", " ".join(str(c) for t in tables for r in t.get("rows") or [] for c in r)
    ).casefold()
    dropped = whole - outside - table_words - excess
    fig.dropped = sum(  # PDFium may give right-to-left words reversed
        n for word, n in dropped.items() if word not in in_tables and word[::-1] not in in_tables
    )
    fig.outside = sum(outside.values())
    fig.examples = tuple(examples)
    return fig


def _process(pdf: str, pages: tuple[int, int] | None, settings: Any) -> Any:
    from docmill.engine.runner import extract_options
    from docmill.model.records import PageRange
    from docmill.processors.pipeline import Task, process_task

    rng = PageRange(*pages) if pages else None
    return process_task(Task(1, 0, pdf, rng, 1 << 30, extract_options(settings)))


def measure(seeds: list[int], count: int, corpus: Path, order: str) -> dict[str, list[PageFigures]]:
    from docmill.settings import load_settings
    from docmill.testkit.table_pages import write_set
    from table_sets import REAL_SETS, load_real

    settings = load_settings(
        env={},
        overrides={"extract.tables": True, "output.markdown": True, "extract.reading_order": order},
    )
    sets: dict[str, list[PageFigures]] = {}
    with tempfile.TemporaryDirectory(prefix="docmill-mddups-") as tmp:
        for seed in seeds:
            for pdf in write_set(Path(tmp) / str(seed), seed, count):
                import pypdfium2 as pdfium

                n = len(pdfium.PdfDocument(str(pdf)))
                outcome = _process(str(pdf), None, settings)
                kind = pdf.stem.split("-", 2)[2]
                sets.setdefault(f"gen:{kind}", []).append(
                    page_figures(pdf.stem, str(pdf), list(range(n)), outcome)
                )
    for name in REAL_SETS:
        for page in load_real(name, corpus):
            if not page.tables:
                continue
            outcome = _process(page.pdf, (page.page, page.page + 1), settings)
            sets.setdefault(f"real:{name}", []).append(
                page_figures(f"{page.name} p{page.page}", page.pdf, [page.page], outcome)
            )
    return sets


def report(sets: dict[str, list[PageFigures]], show: int) -> str:
    lines = [
        f"{'set':<24} {'docs':>5} {'rows':>6} {'rows rep':>8} {'words rep':>9} {'lost':>6} {'dropped':>7} {'outside':>8}"
    ]
    total = PageFigures("all")
    for name, figs in sorted(sets.items()):
        row = PageFigures(name)
        for f in figs:
            for attr in (
                "cells",
                "rows",
                "rows_repeated",
                "repeated",
                "lost",
                "dropped",
                "outside",
            ):
                setattr(row, attr, getattr(row, attr) + getattr(f, attr))
                setattr(total, attr, getattr(total, attr) + getattr(f, attr))
        lines.append(
            f"{name:<24} {len(figs):>5} {row.rows:>6} {row.rows_repeated:>8} {row.repeated:>9}"
            f" {row.lost:>6} {row.dropped:>7} {row.outside:>8}"
        )
    pages = sum(len(f) for f in sets.values())
    lines.append(
        f"{'all':<24} {pages:>5} {total.rows:>6} {total.rows_repeated:>8} {total.repeated:>9}"
        f" {total.lost:>6} {total.dropped:>7} {total.outside:>8}"
    )
    worst = sorted(
        (f for figs in sets.values() for f in figs),
        key=lambda f: -(f.repeated + f.lost + f.dropped),
    )
    for f in worst[:show]:
        if f.repeated or f.lost or f.dropped:
            lines.append(
                f"  {f.name}: {f.repeated} words repeated, {f.lost} lost, {f.dropped} dropped;"
                f" rows e.g. {list(f.examples[:2])}"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--count", type=int, default=32, help="generated documents per seed")
    parser.add_argument(
        "--corpus", type=Path, default=HERE.parent.parent / "shared" / "corpus" / "real"
    )
    parser.add_argument(
        "--show", type=int, default=8, help="pages with the most repeated or lost words"
    )
    parser.add_argument("--reading-order", default="pdfium", choices=["pdfium", "layout"])
    args = parser.parse_args(argv)
    sets = measure(args.seeds, args.count, args.corpus, args.reading_order)
    print(report(sets, args.show))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
