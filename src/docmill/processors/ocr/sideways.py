"""Text set sideways inside an upright page (a table's vertical column heads), read turned.

Tesseract's page segmentation (``--psm 1``) turns whole blocks that are sideways, but
not a row of narrow cells whose labels run bottom to top inside an upright table: it
cuts them into horizontal lines of garbage, read at low confidence. Here the lines of a
reading whose words are mostly unsure are gathered into regions (neighbours above and
below, overlapping across); each region at least :data:`MIN_LINES` lines and
:data:`MIN_HEIGHT_EM` letters tall is cut out of the page's grey image, turned a quarter
(clockwise first: labels read bottom to top), and read again as sparse text
(``--psm 11``). A turned word read with confidence at least :data:`ACCEPT` replaces the
less sure words it covers; its line goes back into the page's TSV, boxes mapped back to
the page's pixels, where the region's first line was. Nothing changes where no turned
reading is sure, so upright garbage (a logo, a symbol font) costs one or two short reads.

Pure functions over bytes and TSV text, except :func:`reread_sideways`, which calls the
given reader.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable

from docmill.processors.ocr.leaders import Grey, parse_pgm, tsv_line_rows

UNSURE = 60.0  # a line whose words' mean confidence is below this is a suspect
ACCEPT = 70.0  # a turned word read at least this sure can replace what it covers
MIN_LINES = 2  # suspect lines in a region
MIN_HEIGHT_EM = 3.0  # a region's height in the page's median word heights
MIN_SURE_CHARS = 8  # a turned reading with fewer sure characters is not used
MAX_REGIONS = 4  # regions read again per page
MARGIN_IN = 0.05  # added around a region before it is cut out, inches

Box = tuple[int, int, int, int]  # left, top, right (exclusive), bottom (exclusive), pixels
# a word of a TSV: its row number, box, confidence and text
Word = tuple[int, Box, float, str]
Reader = Callable[[bytes, int], str]  # (PGM, dpi) -> Tesseract's TSV, --psm 11


def _word(cells: list[str], number: int) -> Word | None:
    if len(cells) < 12 or cells[0] != "5" or not cells[11].strip():
        return None
    try:
        left, top, width, height = (int(v) for v in cells[6:10])
        conf = float(cells[10])
    except ValueError:
        return None
    return number, (left, top, left + width, top + height), conf, cells[11].strip()


def suspect_regions(rows: list[list[str]], dpi: int) -> list[Box]:
    """Regions of the page (pixels) whose lines Tesseract read mostly unsure, largest
    first: suspect lines that touch above and below and overlap across, merged."""
    heights: list[int] = []
    suspects: list[Box] = []
    for box, members in tsv_line_rows(rows):
        words = [w for n in members if (w := _word(rows[n], n)) is not None]
        if not words:
            continue
        heights.extend(w[1][3] - w[1][1] for w in words)
        if statistics.fmean(w[2] for w in words) < UNSURE:
            suspects.append(box)
    if len(suspects) < MIN_LINES:
        return []
    em = statistics.median(heights) if heights else dpi / 10
    groups: list[tuple[Box, int]] = []
    for box in sorted(suspects, key=lambda b: b[1]):
        for k, (have, count) in enumerate(groups):
            across = min(have[2], box[2]) > max(have[0], box[0])
            near = box[1] <= have[3] + em / 2 and box[3] >= have[1] - em / 2
            if across and near:
                merged = (
                    min(have[0], box[0]), min(have[1], box[1]),
                    max(have[2], box[2]), max(have[3], box[3]),
                )  # fmt: skip
                groups[k] = (merged, count + 1)
                break
        else:
            groups.append((box, 1))
    regions = [
        box for box, count in groups if count >= MIN_LINES and box[3] - box[1] >= MIN_HEIGHT_EM * em
    ]
    regions.sort(key=lambda b: -(b[2] - b[0]) * (b[3] - b[1]))
    return regions[:MAX_REGIONS]


def turned(grey: Grey, box: Box, clockwise: bool) -> tuple[bytes, int, int]:
    """The PGM of ``box`` cut out of ``grey`` and turned a quarter; with its width and
    height (the box's height and width)."""
    left, top, right, bottom = box
    width = right - left
    crop = b"".join(
        grey.pixels[y * grey.width + left : y * grey.width + right] for y in range(top, bottom)
    )
    if clockwise:  # the crop's column j, bottom up, becomes row j
        data = b"".join(crop[j::width][::-1] for j in range(width))
    else:  # the crop's last column, top down, becomes row 0
        data = b"".join(crop[j::width] for j in range(width - 1, -1, -1))
    new_w, new_h = bottom - top, width
    return b"P5\n%d %d\n255\n" % (new_w, new_h) + data, new_w, new_h


def unturn(box: Box, region: Box, clockwise: bool) -> Box:
    """A box in the turned cut-out of ``region``, in the page's pixels."""
    left, top, right, bottom = box
    width, height = region[2] - region[0], region[3] - region[1]
    if clockwise:  # turned (x, y) came from cut-out (y, height - 1 - x)
        x0, x1, y0, y1 = top, bottom, height - right, height - left
    else:  # turned (x, y) came from cut-out (width - 1 - y, x)
        x0, x1, y0, y1 = width - bottom, width - top, left, right
    return x0 + region[0], y0 + region[1], x1 + region[0], y1 + region[1]


def _area(box: Box) -> int:
    return max(box[2] - box[0], 0) * max(box[3] - box[1], 0)


def _shared(a: Box, b: Box) -> int:
    """The area two boxes share."""
    return _area((max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3])))


def _overlap(a: Box, b: Box) -> bool:
    """The boxes share at least 30 % of the smaller one's area."""
    shared = _shared(a, b)
    return shared > 0 and shared >= 0.3 * max(min(_area(a), _area(b)), 1)


def _sureness(word: Word) -> float:
    """A page word's confidence; 0 for one of only marks (``>``, ``|``, ``=``), which
    Tesseract reads, sure, in bits of turned letters."""
    return word[2] if any(c.isalnum() for c in word[3]) else 0.0


def _sure_lines(tsv: str, region: Box, clockwise: bool) -> list[list[Word]]:
    """The turned reading's words read at least ``ACCEPT`` sure, by line, in page pixels."""
    rows = [row.split("\t") for row in tsv.split("\n")]
    lines: list[list[Word]] = []
    for _, members in tsv_line_rows(rows):
        words = [w for n in members if (w := _word(rows[n], n)) is not None]
        sure = [
            (n, unturn(box, region, clockwise), conf, text)
            for n, box, conf, text in words
            if conf >= ACCEPT and any(c.isalnum() for c in text)
        ]
        if sure:
            lines.append(sure)
    return lines


def _tsv_rows(lines: list[list[Word]], block: int) -> list[list[str]]:
    """TSV rows (block, paragraph, line and word levels) for new lines, one block each."""

    def row(level: int, b: int, line: int, word: int, box: Box, conf: str, text: str) -> list[str]:
        left, top, right, bottom = box
        return [str(level), "1", str(b), "1", str(line), str(word),
                str(left), str(top), str(right - left), str(bottom - top), conf, text]  # fmt: skip

    out: list[list[str]] = []
    for k, words in enumerate(lines):
        boxes = [w[1] for w in words]
        union = (
            min(b[0] for b in boxes), min(b[1] for b in boxes),
            max(b[2] for b in boxes), max(b[3] for b in boxes),
        )  # fmt: skip
        out.append(row(2, block + k, 0, 0, union, "-1", ""))
        out.append(row(3, block + k, 0, 0, union, "-1", ""))
        out.append(row(4, block + k, 1, 0, union, "-1", ""))
        out.extend(
            row(5, block + k, 1, j, box, f"{conf:g}", text)
            for j, (_, box, conf, text) in enumerate(words, 1)
        )
    return out


def merge_turned(rows: list[list[str]], region: Box, lines: list[list[Word]]) -> int:
    """Put the turned ``lines`` into ``rows`` (in place): a turned word goes in unless a
    surer page word covers it; a page word in the region that a surer turned word covers
    is emptied, and each line it leaves gets the box of its remaining words. Returns the
    number of turned words that went in."""
    page_words = [
        w
        for n, cells in enumerate(rows)
        if (w := _word(cells, n)) is not None
        and region[0] <= (w[1][0] + w[1][2]) / 2 <= region[2]
        and region[1] <= (w[1][1] + w[1][3]) / 2 <= region[3]
    ]
    kept_lines = [
        kept
        for line in lines
        if (
            kept := [
                t
                for t in line
                if not any(_sureness(p) >= t[2] and _overlap(p[1], t[1]) for p in page_words)
            ]
        )
    ]
    if not kept_lines:
        return 0
    turned_words = [t for line in kept_lines for t in line]
    emptied: set[int] = set()
    for p in page_words:  # a page word mostly under surer turned words goes
        under = [t for t in turned_words if t[2] > _sureness(p) and _shared(p[1], t[1])]
        if sum(_shared(p[1], t[1]) for t in under) >= 0.3 * max(_area(p[1]), 1):
            emptied.add(p[0])
    for n in emptied:
        rows[n][11] = ""
    _shrink_lines(rows, emptied)
    block = 1 + max((int(c[2]) for c in rows if len(c) >= 12 and c[2].isdigit()), default=0)
    if emptied:  # the new blocks go in just before the line that held the first emptied word
        at = min(emptied)
        while at > 0 and rows[at][0] != "4":
            at -= 1
    else:  # at the end, before the empty row a final line break leaves
        at = len(rows)
        while at > 0 and len(rows[at - 1]) < 12:
            at -= 1
    rows[at:at] = _tsv_rows(kept_lines, block)
    return sum(len(line) for line in kept_lines)


def _shrink_lines(rows: list[list[str]], emptied: set[int]) -> None:
    """Each line that lost a word gets the box of the words it keeps."""
    for box_row, members in _line_row_numbers(rows):
        if not emptied.intersection(members):
            continue
        left_words = [w for n in members if (w := _word(rows[n], n)) is not None]
        if not left_words:
            continue
        left = min(w[1][0] for w in left_words)
        top = min(w[1][1] for w in left_words)
        right = max(w[1][2] for w in left_words)
        bottom = max(w[1][3] for w in left_words)
        rows[box_row][6:10] = [str(left), str(top), str(right - left), str(bottom - top)]


def _line_row_numbers(rows: list[list[str]]) -> list[tuple[int, list[int]]]:
    """(row number of each line's level-4 row, its word rows), in order."""
    lines: dict[tuple[str, ...], tuple[int, list[int]]] = {}
    for number, cells in enumerate(rows):
        if len(cells) < 12 or cells[0] not in ("4", "5"):
            continue
        key = tuple(cells[1:5])
        if cells[0] == "4":
            lines[key] = (number, [])
        elif key in lines:
            lines[key][1].append(number)
    return list(lines.values())


def _chars(lines: list[list[Word]]) -> int:
    return sum(len(word[3]) for line in lines for word in line)


def reread_sideways(tsv: str, image: bytes, dpi: int, read: Reader) -> str:
    """Tesseract's TSV of ``image`` (a PGM) with the sideways text of its unsure regions
    read again turned (see the module docstring); unchanged when there is none."""
    rows = [row.split("\t") for row in tsv.split("\n")]
    regions = suspect_regions(rows, dpi)
    if not regions:
        return tsv
    grey = parse_pgm(image)
    if grey is None:
        return tsv
    margin = round(MARGIN_IN * dpi)
    changed = False
    for found in regions:
        region = (
            max(found[0] - margin, 0), max(found[1] - margin, 0),
            min(found[2] + margin, grey.width), min(found[3] + margin, grey.height),
        )  # fmt: skip
        best: list[list[Word]] = []
        for clockwise in (True, False):  # clockwise first: labels read bottom to top
            pgm, _, _ = turned(grey, region, clockwise)
            lines = _sure_lines(read(pgm, dpi), region, clockwise)
            if _chars(lines) > _chars(best):
                best = lines
            if _chars(best) >= MIN_SURE_CHARS:
                break
        if _chars(best) >= MIN_SURE_CHARS and merge_turned(rows, region, best):
            changed = True
    return "\n".join("\t".join(cells) for cells in rows) if changed else tsv
