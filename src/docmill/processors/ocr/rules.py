"""Table rules that Tesseract reads as text, found in the pixels and taken out of its words.

Tesseract reads the vertical rules of a ruled table as text: a ``|`` word between cells
(``Cases | Deaths | Date of``), or a mark glued to the word beside it (``|Balasore``,
``2.13}``, ``0.04)``, ``{09/04/2015``); its recogniser sees the rule at the edge of the
word even where the word's box stops short of it. Here each vertical run of ink that is
long (at least :data:`MIN_LENGTH_IN`) and thin (at most :data:`MAX_WIDTH_IN` wide) is a
rule: letters, even large ones, are not that long and thin, and a photo or a black box
is too wide. Then in each TSV line, a word of only ``|`` on a rule goes, and a ``|`` or
an unpaired bracket at a word's edge within :data:`NEAR_IN` of a rule is dropped
(``(In lakhs)`` keeps its bracket: the line opened it). The image Tesseract reads is left
as it is: without its rules Tesseract segments a table worse (measured on the corpus).

Pure functions over bytes and TSV text: the image's columns come out by slicing, runs are
found by regular expression over the binarised column, so a page costs tens of ms.
"""

from __future__ import annotations

import functools
import operator
import re

from docmill.processors.ocr.leaders import parse_pgm, tsv_line_rows

MIN_LENGTH_IN = 0.4  # a rule is at least this long (inches)
MAX_WIDTH_IN = 0.03  # ... and at most this wide
NEAR_IN = 0.05  # a mark at a word's edge this close to a rule is the rule
SAMPLES = 4  # rows sampled along a rule's length to find the columns worth scanning
INK = 200  # grey below this is ink here: thin rules are drawn pale when anti-aliased
_BINARY = bytes(ord("1") if v < INK else ord("0") for v in range(256))
_PAIRS = {")": "(", "]": "[", "}": "{"}
_OPENERS = {v: k for k, v in _PAIRS.items()}

Rule = tuple[int, int, int, int]  # left, top, right (exclusive), bottom (exclusive)


def vertical_rules(width: int, height: int, pixels: bytes, dpi: int) -> list[Rule]:
    """The vertical rules of a grey image: one a run of ink down the same columns."""
    dark = pixels.translate(_BINARY)
    length = max(round(MIN_LENGTH_IN * dpi), 8)
    long_run = re.compile(b"1{%d,}" % length)
    # runs by column: (top, bottom) of each long dark run, looked for only in columns
    # with ink in SAMPLES rows ``step`` apart (every run that long crosses that many in a
    # row; four, not two: lines of text put ink in two rows' same column far more often)
    step = max(length // SAMPLES, 1)
    sampled = [int(dark[y * width : (y + 1) * width], 2) for y in range(0, height, step)]
    every = 0
    for k in range(len(sampled) - SAMPLES + 1):
        every |= functools.reduce(operator.and_, sampled[k : k + SAMPLES])
    flags = f"{every:0{width}b}"
    runs: list[list[tuple[int, int]]] = [
        [m.span() for m in long_run.finditer(dark[x::width])] if flags[x] == "1" else []
        for x in range(width)
    ]
    max_width = max(round(MAX_WIDTH_IN * dpi), 1)
    rules: list[Rule] = []
    x = 0
    while x < width:
        if not runs[x]:
            x += 1
            continue
        # a group: neighbouring columns that each hold a long run
        start = x
        while x < width and runs[x]:
            x += 1
        if x - start > max_width:
            continue  # a wide dark area (a photo, a black box, a thick bar): not a rule
        spans = sorted(span for column in runs[start:x] for span in column)
        top, bottom = spans[0]
        for span in spans[1:]:  # runs that overlap are one rule; a gap starts another
            if span[0] > bottom:
                rules.append((start, top, x, bottom))
                top = span[0]
            bottom = max(bottom, span[1])
        rules.append((start, top, x, bottom))
    return rules


def _trim(text: str, before: str, after: str, left: bool, right: bool) -> str:
    """``text`` without the rule's marks at the edges flagged: a ``|``, or a bracket
    the line (``before`` and ``after`` this word) does not pair."""
    if right and text:
        last = text[-1]
        opener = _PAIRS.get(last)
        if last == "|" or (
            opener is not None and (before + text[:-1]).count(opener) <= before.count(last)
        ):
            text = text[:-1]
    if left and text:
        first = text[0]
        closer = _OPENERS.get(first)
        if first == "|" or (closer is not None and closer not in text[1:] + after):
            text = text[1:]
    return text


def drop_rule_marks(tsv: str, image: bytes, dpi: int) -> str:
    """Tesseract's TSV of ``image`` (a PGM) without the marks it read from the vertical
    rules (see the module docstring); unchanged when the page has none."""
    grey = parse_pgm(image)
    if grey is None:
        return tsv
    rules = vertical_rules(grey.width, grey.height, grey.pixels, dpi)
    if not rules:
        return tsv
    near = round(NEAR_IN * dpi)
    rows = [row.split("\t") for row in tsv.split("\n")]
    changed = False
    for _, members in tsv_line_rows(rows):
        texts = [rows[n][11].strip() for n in members]
        for k, n in enumerate(members):
            try:
                left, top, width, height = (int(v) for v in rows[n][6:10])
            except ValueError:
                continue
            right, middle = left + width, top + height / 2
            on = [r for r in rules if r[1] <= middle <= r[3]]
            at_left = any(r[0] - near <= left <= r[2] + near for r in on)
            at_right = any(r[0] - near <= right <= r[2] + near for r in on)
            if not (at_left or at_right):
                continue
            text = texts[k]
            if set(text) == {"|"}:
                new = ""
            else:
                before, after = " ".join(texts[:k]), " ".join(texts[k + 1 :])
                new = _trim(text, before, after, at_left, at_right)
            if new != text:
                texts[k] = rows[n][11] = new
                changed = True
    return "\n".join("\t".join(cells) for cells in rows) if changed else tsv
