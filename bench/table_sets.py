"""The table development sets and the measures: what ``tables.py`` and ``table_label.py``
share. Not a script.

**Sets.** Each real set is a folder of ``tables_truth/<set>/*.json``, one page each::

    {"pdf": "camelot/tests/files/twotables_2.pdf",   # below shared/corpus/real
     "page": 0,                                      # 0-based
     "source": "where the truth comes from",
     "tables": [{"bbox": [x0, y0, x1, y1],           # PDF points, top-left origin, as shown
                 "rows": [["a", "b"], ...],          # or "cells" with spans
                 "header_rows": 1}]}

A page whose ``tables`` is empty must yield no table. The ``synthetic`` set is generated
into the scratch folder by ``docmill.testkit.table_pages`` (seed and count given).

**Measures** (ICDAR 2013, Göbel et al.). A table is its grid of cell strings, a spanning
cell's text at its first position, text normalised (NFKC, dot leaders and private-use
icons removed, whitespace removed). Its *adjacency relations*: every non-empty cell and its nearest
non-empty neighbour to the right and below, with the number of empty positions skipped
between them: ``(text1, text2, direction, skipped)``. Found tables are matched one to
one with the page's true tables by bbox overlap (IoU, greatest first, any overlap);
then, over all pages of a set:

- *complete process* (the figure): every found table counts. Relations of a found table
  that matches no true table (a table invented in prose, or the second half of a table
  cut in two) are all wrong; relations of a true table no found table matches are all
  missed; matched pairs compare their relations as multisets;
- *matched only*: only found tables that match a true table count;
- *lenient*: as complete process, without the number of empty positions skipped (a
  filler column then costs nothing);
- *detection*: one-to-one matches with IoU >= 0.5 against the found and the true tables.

Precision and recall are micro-averaged over the set's pages.
"""

from __future__ import annotations

import itertools
import json
import re
import unicodedata
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
TRUTH = HERE / "tables_truth"
REAL_SETS = ("tabula", "camelot", "pdfplumber", "corpus")
Grid = list[list[str]]
Box = tuple[float, float, float, float]
Relation = tuple[str, str, str, int]


@dataclass(slots=True)
class TrueTable:
    bbox: Box | None
    rows: Grid
    header_rows: int = 0
    continued_from: int | None = None


@dataclass(slots=True)
class TruthPage:
    set: str
    pdf: str  # absolute path
    page: int
    tables: list[TrueTable]
    name: str = ""  # truth file or generated document name
    kind: str = ""


@dataclass(slots=True)
class Found:
    bbox: Box | None
    rows: Grid


# ------------------------------------------------------------------------ loading


def _grid(entry: dict[str, Any]) -> Grid:
    if isinstance(entry.get("cells"), list):
        cells = entry["cells"]
        nrows = max((c["row"] + c.get("rowspan", 1) for c in cells), default=0)
        ncols = max((c["col"] + c.get("colspan", 1) for c in cells), default=0)
        grid = [[""] * ncols for _ in range(nrows)]
        for c in cells:
            grid[c["row"]][c["col"]] = str(c.get("text") or "")
        return grid
    return [[str(c or "") for c in row] for row in entry.get("rows") or []]


def _table(entry: dict[str, Any]) -> TrueTable:
    bbox = entry.get("bbox")
    return TrueTable(
        tuple(float(v) for v in bbox) if bbox else None,  # type: ignore[arg-type]
        _grid(entry),
        int(entry.get("header_rows") or 0),
        entry.get("continued_from"),
    )


def load_real(name: str, corpus: Path) -> list[TruthPage]:
    pages = []
    for path in sorted((TRUTH / name).glob("*.json")):
        data = json.loads(path.read_text(encoding="utf-8"))
        pages.append(
            TruthPage(
                name, str(corpus / data["pdf"]), int(data["page"]),
                [_table(t) for t in data.get("tables") or []], path.stem, data.get("kind", ""),
            )
        )
    return pages


def load_synthetic(folder: Path, seed: int, count: int, name: str = "synthetic") -> list[TruthPage]:
    from docmill.testkit.table_pages import generate

    folder.mkdir(parents=True, exist_ok=True)
    pages = []
    for doc in generate(seed, count):
        pdf = folder / f"{doc.name}.pdf"
        pdf.write_bytes(doc.pdf())
        truth = doc.truth()
        for index in range(truth["pages"]):
            tables = [_table(t) for t in truth["tables"] if t["page"] == index]
            pages.append(TruthPage(name, str(pdf), index, tables, doc.name, truth["kinds"][index]))
    return pages


# ------------------------------------------------------------------------ measures

_LEADERS = re.compile(r"(?:\s*\.){3,}")


def norm(text: Any) -> str:
    """NFKC, dot leaders and private-use characters (icons) removed, whitespace removed
    (where tools put spaces and line breaks inside a cell is not structure)."""
    value = unicodedata.normalize("NFKC", str(text or ""))
    value = "".join(ch for ch in value if unicodedata.category(ch) != "Co")  # icon glyphs
    return "".join(_LEADERS.sub(" ", value).split())


def relations(grid: Sequence[Sequence[Any]], skipped: bool = True) -> Counter[Relation]:
    """ICDAR 2013 adjacency relations of one table (with the empty positions skipped
    between the two cells, or 0 for all when ``skipped`` is False)."""
    cells = [[norm(c) for c in row] for row in grid]
    width = max((len(r) for r in cells), default=0)
    cells = [r + [""] * (width - len(r)) for r in cells]
    out: Counter[Relation] = Counter()
    for row in cells:
        filled = [(k, c) for k, c in enumerate(row) if c]
        for (ka, a), (kb, b) in itertools.pairwise(filled):
            out[(a, b, "h", kb - ka - 1 if skipped else 0)] += 1
    for col in range(width):
        filled = [(r, row[col]) for r, row in enumerate(cells) if row[col]]
        for (ra, a), (rb, b) in itertools.pairwise(filled):
            out[(a, b, "v", rb - ra - 1 if skipped else 0)] += 1
    return out


def iou(a: Box | None, b: Box | None) -> float:
    if a is None or b is None:
        return 0.0
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    if w <= 0 or h <= 0:
        return 0.0
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _match(truth: Sequence[TrueTable], found: Sequence[Found], minimum: float) -> list[tuple[int, int]]:
    """One-to-one pairs (truth index, found index), greatest IoU first, IoU > minimum
    (>= when minimum > 0). A truth without bbox matches by shared relations."""
    scored = []
    for i, t in enumerate(truth):
        for j, f in enumerate(found):
            if t.bbox is None or f.bbox is None:
                shared = sum((relations(t.rows) & relations(f.rows)).values())
                score = shared / max(sum(relations(t.rows).values()), 1)
            else:
                score = iou(t.bbox, f.bbox)
            if (score >= minimum) if minimum > 0 else (score > 0):
                scored.append((score, i, j))
    pairs, used_t, used_f = [], set(), set()
    for _score, i, j in sorted(scored, reverse=True):
        if i not in used_t and j not in used_f:
            pairs.append((i, j))
            used_t.add(i)
            used_f.add(j)
    return pairs


@dataclass(slots=True)
class Tally:
    correct: int = 0
    found: int = 0
    wanted: int = 0

    def add(self, other: Tally) -> None:
        self.correct += other.correct
        self.found += other.found
        self.wanted += other.wanted

    def prf(self) -> dict[str, float]:
        p = self.correct / self.found if self.found else (1.0 if not self.wanted else 0.0)
        r = self.correct / self.wanted if self.wanted else (1.0 if not self.found else 0.0)
        f = 2 * p * r / (p + r) if p + r else 0.0
        return {"precision": p, "recall": r, "f1": f}


@dataclass(slots=True)
class PageScore:
    complete: Tally = field(default_factory=Tally)
    matched: Tally = field(default_factory=Tally)
    lenient: Tally = field(default_factory=Tally)
    detection: Tally = field(default_factory=Tally)

    def add(self, other: PageScore) -> None:
        self.complete.add(other.complete)
        self.matched.add(other.matched)
        self.lenient.add(other.lenient)
        self.detection.add(other.detection)


def score_page(truth: Sequence[TrueTable], found: Sequence[Found]) -> PageScore:
    out = PageScore()
    pairs = dict((j, i) for i, j in _match(truth, found, 0.0))
    true_rel = [relations(t.rows) for t in truth]
    true_len = [relations(t.rows, False) for t in truth]
    matched_truth = set(pairs.values())
    for j, f in enumerate(found):
        rel, rel_len = relations(f.rows), relations(f.rows, False)
        n, n_len = sum(rel.values()), sum(rel_len.values())
        out.complete.found += n
        out.lenient.found += n_len
        if j in pairs:
            i = pairs[j]
            good = sum((rel & true_rel[i]).values())
            out.complete.correct += good
            out.matched.correct += good
            out.matched.found += n
            out.lenient.correct += sum((rel_len & true_len[i]).values())
    for i in range(len(truth)):
        wanted = sum(true_rel[i].values())
        out.complete.wanted += wanted
        out.lenient.wanted += sum(true_len[i].values())
        if i in matched_truth:
            out.matched.wanted += wanted
    out.detection.correct = len(_match(truth, found, 0.5))
    out.detection.found = len(found)
    out.detection.wanted = len(truth)
    return out


# ------------------------------------------------------------------------ locating


def page_words(pdf: str, page: int) -> list[tuple[str, Box]]:
    """The page's words (runs of characters without a space or a wide gap) with boxes,
    in the displayed page's top-left frame."""
    import pypdfium2 as pdfium

    from docmill.processors.pdf.geometry import page_chars, page_frame

    doc = pdfium.PdfDocument(pdf)
    try:
        p = doc[page]
        tp = p.get_textpage()
        chars = page_chars(tp, page_frame(p))
        tp.close()
        p.close()
    finally:
        doc.close()
    words: list[tuple[str, Box]] = []
    text, box = "", None
    prev = None
    for ch in chars:
        gap = prev is not None and (
            ch.x0 - prev.x1 > 0.6 * max(ch.y1 - ch.y0, 1) or abs(ch.y0 - prev.y0) > 0.5 * max(ch.y1 - ch.y0, 1)
        )
        if ch.text.isspace() or gap:
            if text and box:
                words.append((text, box))
            text, box = "", None
        if not ch.text.isspace():
            text += ch.text
            box = (ch.x0, ch.y0, ch.x1, ch.y1) if box is None else (
                min(box[0], ch.x0), min(box[1], ch.y0), max(box[2], ch.x1), max(box[3], ch.y1)
            )
        prev = ch
    if text and box:
        words.append((text, box))
    return words


def locate(grid: Grid, words: list[tuple[str, Box]]) -> Box | None:
    """The box of the page words that spell the grid's cells: words whose text is one
    of the grid's words, kept where most of them lie (outliers more than three line
    heights from the others dropped)."""
    wanted = Counter(norm(w) for row in grid for cell in row for w in str(cell or "").split())
    hits: list[Box] = []
    for text, box in words:
        key = norm(text)
        if wanted.get(key, 0) > 0:
            wanted[key] -= 1
            hits.append(box)
    if not hits:
        return None
    heights = sorted(b[3] - b[1] for b in hits)
    h = heights[len(heights) // 2]
    ys = sorted((b[1] + b[3]) / 2 for b in hits)
    # the longest run of rows without a vertical gap over three line heights
    runs: list[list[float]] = [[ys[0]]]
    for y in ys[1:]:
        if y - runs[-1][-1] > 3 * h:
            runs.append([])
        runs[-1].append(y)
    best = max(runs, key=len)
    kept = [b for b in hits if best[0] <= (b[1] + b[3]) / 2 <= best[-1]]
    return (
        min(b[0] for b in kept), min(b[1] for b in kept), max(b[2] for b in kept), max(b[3] for b in kept)
    )
