"""Dot leaders (``Total . . . . . . 1,234``) in Tesseract's output, counted from the pixels.

Tesseract reads a row of dots as garbage (``Robbery... 0.0... cece eee eee 100,496``):
the dots are too small and too regular for its line model. Here each text line of
Tesseract's TSV is looked at in the page's grey image: its dark blobs (column runs of
dark pixels) are found, and a run of at least :data:`MIN_DOTS` small, square blobs at a
regular pitch is a leader. The words inside the leader are replaced by that many dots,
one space apart when the dots are spaced (``. . .``, pitch above ~0.4 em), else
together (``.....``); a word running into the leader keeps its text up to its dots.

Pure functions over bytes and TSV text: no image library.
"""

from __future__ import annotations

import itertools
import re
import statistics
from dataclasses import dataclass

MIN_DOTS = 5  # fewer dots in a row is an ellipsis or punctuation, left to Tesseract
DARK = 128  # grey level below which a pixel is ink
_DARK_TABLE = bytes(ord("1") if v < DARK else ord("0") for v in range(256))
_DOTS_FROM = re.compile(r"\.{2,}.*$|\.$")


@dataclass(frozen=True, slots=True)
class Grey:
    """A grey image: ``width`` x ``height`` bytes, rows one after another."""

    width: int
    height: int
    pixels: bytes


def parse_pgm(image: bytes) -> Grey | None:
    """The pixels of a binary PGM (``P5``, 8 bits) as written by ``pnm_bytes``; ``None``
    for anything else (a PPM, a comment in the header)."""
    if not image.startswith(b"P5"):
        return None
    fields = image.split(maxsplit=4)
    if len(fields) < 5 or fields[3] != b"255":
        return None
    try:
        width, height = int(fields[1]), int(fields[2])
    except ValueError:
        return None
    offset = len(image) - width * height
    if offset <= 0 or not image[offset - 1 : offset].isspace():
        return None
    return Grey(width, height, image[offset:])


# a blob: left, right (exclusive), top, bottom (exclusive) in pixels
Blob = tuple[int, int, int, int]


def blobs(grey: Grey, left: int, top: int, right: int, bottom: int) -> list[Blob]:
    """Dark column runs inside a box, left to right, each with its rows' extent."""
    left, top = max(left, 0), max(top, 0)
    right, bottom = min(right, grey.width), min(bottom, grey.height)
    if right <= left or bottom <= top:
        return []
    rows: list[int] = []
    for y in range(top, bottom):
        start = y * grey.width
        row = grey.pixels[start + left : start + right].translate(_DARK_TABLE)
        rows.append(int(row[::-1], 2))  # bit x is pixel left + x
    columns = 0
    for mask in rows:
        columns |= mask
    found: list[Blob] = []
    x = 0
    while columns:
        skip = (columns & -columns).bit_length() - 1  # lowest set bit
        columns >>= skip
        x += skip
        run = (~columns & (columns + 1)).bit_length() - 1  # length of the run of ones
        span = ((1 << run) - 1) << x
        hit = [i for i, mask in enumerate(rows) if mask & span]
        found.append((left + x, left + x + run, top + hit[0], top + hit[-1] + 1))
        columns >>= run
        x += run
    return found


def _letter_heights(found: list[Blob], dpi: int) -> list[int]:
    """Heights of the blobs too tall to be dots (over 1/30 inch): the line's letters."""
    return [b[3] - b[2] for b in found if b[3] - b[2] > dpi / 30]


def _is_dot(blob: Blob, limit: float) -> bool:
    width, height = blob[1] - blob[0], blob[3] - blob[2]
    return width <= limit and height <= limit and 0.4 * height <= width <= 2.5 * height


def leader_runs(found: list[Blob], dpi: int, line_top: int, line_bottom: int) -> list[list[Blob]]:
    """Runs of at least MIN_DOTS dots at a regular pitch in a line's blobs."""
    tall = _letter_heights(found, dpi)
    text_height = statistics.median(tall) if len(tall) >= 3 else (line_bottom - line_top)
    limit = max(2.0, min(dpi / 30, 0.45 * text_height)) if tall else dpi / 30
    runs: list[list[Blob]] = []
    current: list[Blob] = []

    def close() -> None:
        if len(current) >= MIN_DOTS:
            runs.append(list(current))
        current.clear()

    for blob in found:
        dot = _is_dot(blob, limit) and blob[3] > line_top + 0.4 * (line_bottom - line_top)
        if not dot:
            close()
            continue
        if current:
            pitch = blob[0] - current[-1][0]
            pitches = [b[0] - a[0] for a, b in itertools.pairwise(current)]
            usual = statistics.median(pitches) if pitches else pitch
            same_baseline = abs(blob[3] - current[-1][3]) <= max(2, 0.5 * (blob[3] - blob[2]))
            if not (0.6 * usual <= pitch <= 1.6 * usual and same_baseline) or pitch > 4 * limit:
                close()
        current.append(blob)
    close()
    return runs


# a TSV word: left, top, right, bottom, text
Word = tuple[int, int, int, int, str]


def leader_text(run: list[Blob], em: float) -> str:
    """The dots of a run: spaced (``. . .``) when their pitch is above 0.4 em."""
    pitch = statistics.median(b[0] - a[0] for a, b in itertools.pairwise(run))
    return (" " if pitch > 0.4 * em else "").join("." * len(run))


def fix_line(words: list[Word], grey: Grey, dpi: int, box: tuple[int, int, int, int]) -> list[str]:
    """The words of one line with each dot leader read from the pixels."""
    left, top, right, bottom = box
    found = blobs(grey, left, top, right, bottom)
    runs = leader_runs(found, dpi, top, bottom)
    texts = [w[4] for w in words]
    if not runs:
        return texts
    tall = _letter_heights(found, dpi)
    em = statistics.median(tall) / 0.7 if len(tall) >= 3 else 10.0 * _dot_width(runs[0])
    out: list[str] = []
    pending = list(runs)

    def emit(run: list[Blob]) -> None:
        dots = leader_text(run, em)
        before = [b for b in found if b[1] <= run[0][0]]
        attached = bool(before) and run[0][0] - before[-1][1] < 0.2 * em
        if out and attached and (out[-1][-1:].isalnum() or out[-1][-1:] in ")]"):
            out[-1] += dots
        else:
            out.append(dots)

    for x0, _, x1, _, text in words:
        while pending and pending[0][-1][1] <= x0:  # a leader ends before this word
            emit(pending.pop(0))
        if pending and x0 < pending[0][0][0] and pending[0][0][0] - x1 < em:
            text = _DOTS_FROM.sub("", text)  # a word running into a leader: its dots go
        elif pending and pending[0][0][0] <= (x0 + x1) / 2 <= pending[0][-1][1]:
            continue  # Tesseract's reading of the dots themselves
        if text:
            out.append(text)
    for run in pending:
        emit(run)
    return out


def _dot_width(run: list[Blob]) -> float:
    return max(1.0, statistics.median(b[1] - b[0] for b in run))


def tsv_line_rows(rows: list[list[str]]) -> list[tuple[tuple[int, int, int, int], list[int]]]:
    """Tesseract's text lines in its TSV (split into cells), in its reading order: each
    line's box (left, top, right, bottom, pixels) and the numbers of its rows that hold
    a word."""
    lines: dict[tuple[str, ...], tuple[tuple[int, int, int, int], list[int]]] = {}
    for number, cells in enumerate(rows):
        if len(cells) < 12 or cells[0] not in ("4", "5"):
            continue
        try:
            left, top, width, height = (int(v) for v in cells[6:10])
        except ValueError:
            continue
        key = tuple(cells[1:5])
        if cells[0] == "4":
            lines[key] = ((left, top, left + width, top + height), [])
        elif key in lines and cells[11].strip():
            lines[key][1].append(number)
    return list(lines.values())


def fix_tsv(tsv: str, image: bytes, dpi: int) -> str:
    """Tesseract's TSV with the words of each dot leader replaced by the dots counted in
    ``image`` (the PGM Tesseract read); unchanged when it is not a PGM."""
    grey = parse_pgm(image)
    if grey is None:
        return tsv
    rows = [row.split("\t") for row in tsv.split("\n")]
    for box, members in tsv_line_rows(rows):
        if not members or box[2] - box[0] < 20 * MIN_DOTS:
            continue
        words = [
            (int(rows[n][6]), int(rows[n][7]), int(rows[n][6]) + int(rows[n][8]),
             int(rows[n][7]) + int(rows[n][9]), rows[n][11].strip())
            for n in members
        ]  # fmt: skip
        texts = fix_line(words, grey, dpi, box)
        if texts == [w[4] for w in words]:
            continue
        # the line's words become its new texts: the first rows take them, the rest empty
        last = len(members) - 1
        for k, n in enumerate(members):
            rows[n][11] = " ".join(texts[k:]) if k == last else (texts[k] if k < len(texts) else "")
    return "\n".join("\t".join(cells) for cells in rows)
