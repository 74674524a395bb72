"""OCR: scanned PDF pages and images, read by the real Tesseract on real corpus pages."""

from __future__ import annotations

import shutil
import struct
import time
from pathlib import Path

import psutil
import pytest

from docmill.processors.ocr.images import BadImage, count_frames, extract_image, tiff_frames
from docmill.processors.ocr.tesseract import (
    OcrFailed,
    OcrUnavailable,
    installed_languages,
    open_tesseract,
)
from docmill.processors.pdf.render import MAX_PIXELS, pnm_bytes, render_page, render_scale
from docmill.processors.pdf.scanned import usable_text
from docmill.processors.pdf.text import extract_pdf
from docmill.processors.registry import ExtractOptions, ExtractRequest
from engine_kit import REAL, assert_exactly_once, run_cli
from imagegen import HELLO, LOREM, WORDS, ZEN, render_grey, scanned_pdf, tiff_bytes

DATA = Path(__file__).parent / "data"


def _tesseract_english() -> bool:
    try:
        open_tesseract("eng")
    except OcrUnavailable:
        return False
    return True


needs_tesseract = pytest.mark.skipif(
    not _tesseract_english(),
    reason="tesseract with English data is not installed"
    " (scripts/setup installs tesseract-ocr and tesseract-ocr-eng when run as root or with sudo)",
)


def request(ocr: str = "auto", **kw: object) -> ExtractRequest:
    stages: list[str] = []
    return ExtractRequest(None, ExtractOptions(ocr=ocr, **kw), stages.append)  # type: ignore[arg-type]


def has_words(text: str, words: tuple[str, ...]) -> bool:
    return all(word.lower() in text.lower() for word in words)


# ----------------------------------------------------------------------- pure parts
@pytest.mark.parametrize(
    ("text", "usable"),
    [
        ("", False),
        (" \r\n\t ", False),
        ("Hello, here is some text.", True),
        ("Total 1,234.56 | 7.8% | 9", True),  # numeric tables keep their layer
        ("\ufffd\ufffd\ufffd\ufffd ab", False),  # replacement characters
        ("\ue001\ue002\ue003\ue004\ue005 word", False),  # private use: a broken font
        ("\x01\x02\x03\x04\x05\x06 ok", False),  # control codes from a missing ToUnicode
        ("!#$%&'()*+,-./:;<=>?@[]^_ a", False),  # no letters at all
    ],
)
def test_usable_text_layer(text: str, usable: bool) -> None:
    assert usable_text(text) is usable


def test_pnm_from_padded_grey_and_bgr_bitmaps() -> None:
    grey = bytes([1, 2, 3, 0xEE, 4, 5, 6, 0xEE])  # 3 pixels a row, stride 4
    assert pnm_bytes(grey, 3, 2, 4, 1) == b"P5\n3 2\n255\n" + bytes([1, 2, 3, 4, 5, 6])
    bgr = bytes([10, 20, 30, 40, 50, 60])  # two BGR pixels
    assert pnm_bytes(bgr, 2, 1, 6, 3) == b"P6\n2 1\n255\n" + bytes([30, 20, 10, 60, 50, 40])
    bgrx = bytes([10, 20, 30, 0xFF])
    assert pnm_bytes(bgrx, 1, 1, 4, 4) == b"P6\n1 1\n255\n" + bytes([30, 20, 10])
    with pytest.raises(ValueError):
        pnm_bytes(b"\x00", 2, 2, 2, 1)


def test_render_scale_is_capped_for_huge_pages() -> None:
    assert render_scale(612, 792) == pytest.approx(300 / 72)
    scale = render_scale(14_400, 14_400)  # 200 x 200 inches
    assert (14_400 * scale) ** 2 == pytest.approx(MAX_PIXELS)


def test_tiff_frames_are_counted_and_loops_rejected(tmp_path: Path) -> None:
    assert count_frames(str(DATA / "two-pages.tif"), "image/tiff") == 2
    assert count_frames(str(DATA / "page.png"), "image/png") == 1
    # one directory whose next-directory offset points back at itself
    looped = b"II*\x00" + struct.pack("<I", 8) + struct.pack("<H", 0) + struct.pack("<I", 8)
    with pytest.raises(BadImage, match="loops"):
        tiff_frames(looped[:8], lambda offset, size: looped[offset : offset + size])
    truncated = b"II*\x00" + struct.pack("<I", 400)
    with pytest.raises(BadImage, match="truncated"):
        tiff_frames(truncated, lambda offset, size: truncated[offset : offset + size])


def test_missing_tesseract_or_language_leaves_text_and_says_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    scan = scanned_pdf(*HELLO, tmp_path / "scan.pdf")
    outcome = extract_pdf(str(scan), request(ocr_languages="zzz"))
    assert outcome.text == [""] and outcome.extra["text_source"] == ["layer"]
    if _tesseract_english():
        assert "zzz" in outcome.metadata["ocr_unavailable"]
    monkeypatch.setenv("PATH", str(tmp_path))  # no tesseract on this PATH
    outcome = extract_pdf(str(scan), request())
    assert outcome.status == "done" and outcome.text == [""]
    assert "not installed" in outcome.metadata["ocr_unavailable"]
    image = extract_image(str(DATA / "page.png"), request())
    assert image.status == "done" and image.text == [""] and image.pages == 1
    assert "not installed" in image.metadata["ocr_unavailable"]


# --------------------------------------------------------------------- with Tesseract
@needs_tesseract
def test_scanned_pdf_page_is_read_by_ocr(tmp_path: Path) -> None:
    scan = scanned_pdf(*HELLO, tmp_path / "scan.pdf")
    seen: list[str] = []
    outcome = extract_pdf(str(scan), ExtractRequest(None, ExtractOptions(ocr="auto"), seen.append))
    assert outcome.status == "done"
    assert outcome.extra["text_source"] == ["ocr"]
    assert has_words(outcome.text[0], WORDS[HELLO])
    assert seen[-1] == "ocr"
    assert outcome.metadata["pages_without_text"] == []

    never = extract_pdf(str(scan), request("never"))
    assert never.text == [""] and never.extra["text_source"] == ["layer"]
    assert never.metadata["pages_without_text"] == [0]


@needs_tesseract
def test_text_layer_is_kept_in_auto_and_replaced_in_always() -> None:
    pdf, _ = LOREM
    auto = extract_pdf(str(pdf), request("auto"))
    assert auto.extra["text_source"] == ["layer"]
    assert "ocr_unavailable" not in auto.metadata
    always = extract_pdf(str(pdf), request("always"))
    assert always.extra["text_source"] == ["ocr"]
    assert has_words(always.text[0], WORDS[LOREM])
    assert always.text[0] != auto.text[0]  # Tesseract's text, not the layer's


@needs_tesseract
def test_images_through_the_cli(tmp_path: Path) -> None:
    src = tmp_path / "in"
    src.mkdir()
    shutil.copy(DATA / "page.png", src / "page.png")
    shutil.copy(DATA / "two-pages.tif", src / "scan-no-extension")  # found by content
    scanned_pdf(*HELLO, src / "scanned.pdf")
    (src / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    out = tmp_path / "out"
    result = run_cli("run", str(src), "--out", str(out), "--workers", "1", "--quiet")
    assert result.returncode == 0, result.stderr
    sources = {str(p.absolute()) for p in src.iterdir()}
    records = {Path(r["source"]).name: r for r in assert_exactly_once(out, sources)}

    png = records["page.png"]
    assert (png["status"], png["mime"], png["pages"]) == ("done", "image/png", 1)
    assert png["text_source"] == ["ocr"]
    assert has_words(png["text"][0], WORDS[ZEN])

    tif = records["scan-no-extension"]
    assert (tif["status"], tif["mime"], tif["pages"]) == ("done", "image/tiff", 2)
    assert tif["text_source"] == ["ocr", "ocr"]
    assert has_words(tif["text"][0], WORDS[LOREM]) and not has_words(tif["text"][0], WORDS[HELLO])
    assert has_words(tif["text"][1], WORDS[HELLO])

    pdf = records["scanned.pdf"]
    assert (pdf["status"], pdf["pages"], pdf["text_source"]) == ("done", 1, ["ocr"])
    assert has_words(pdf["text"][0], WORDS[HELLO])

    broken = records["broken.png"]
    assert broken["status"] == "failed"
    assert (broken["error"]["category"], broken["error"]["stage"]) == ("corrupt", "ocr")


def _tesseracts_reading(marker: str) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["name", "cmdline"]):
        try:
            if proc.info["name"] == "tesseract" and any(
                marker in a for a in proc.info["cmdline"] or []
            ):
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


@needs_tesseract
def test_slow_ocr_is_killed_at_the_timeout_in_stage_ocr(tmp_path: Path) -> None:
    src = tmp_path / "in"
    src.mkdir()
    frame = render_grey(*HELLO, 300)
    big = src / "many-frames.tif"  # 20 full pages at 300 dpi: far more than 2 s of OCR
    big.write_bytes(tiff_bytes([frame] * 20, 300))
    # the document after it (sorted last) needs no OCR, so a loaded machine cannot push it past 2 s too
    shutil.copy(DATA / "sample.txt", src / "z-after.txt")
    out = tmp_path / "out"
    result = run_cli(
        "run", str(src), "--out", str(out), "--workers", "1", "--quiet",
        "--set", "run.timeout_s=2", "--set", "run.max_attempts=1",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    records = {Path(r["source"]).name: r for r in assert_exactly_once(out, {
        str(big.absolute()), str((src / "z-after.txt").absolute())})}  # fmt: skip
    slow = records["many-frames.tif"]
    assert slow["status"] == "failed"
    assert (slow["error"]["category"], slow["error"]["stage"]) == ("timeout", "ocr")
    assert records["z-after.txt"]["status"] == "done"
    # the killed worker's Tesseract died with it (parent-death signal), not left running
    deadline = time.monotonic() + 10
    while _tesseracts_reading(str(big)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _tesseracts_reading(str(big)) == []


def test_tesseract_missing_binary_is_reported() -> None:
    with pytest.raises(OcrUnavailable, match=r"cannot run|not installed"):
        open_tesseract("eng", binary="/nonexistent/tesseract")
    with pytest.raises(OcrUnavailable, match="language codes"):
        open_tesseract("eng; rm -rf /")


@needs_tesseract
def test_a_scanned_pdf_of_the_corpus_and_its_jpeg(tmp_path: Path) -> None:
    import pypdfium2 as pdfium

    scan = REAL / "camelot" / "tests" / "files" / "image.pdf"  # a JPEG page, no text layer
    outcome = extract_pdf(str(scan), request())
    assert outcome.extra["text_source"] == ["ocr"]
    assert has_words(outcome.text[0], ("Integrative", "Health", "Telephone"))

    doc = pdfium.PdfDocument(str(scan))
    try:
        page = doc[0]
        (picture,) = page.get_objects(filter=[pdfium.raw.FPDF_PAGEOBJ_IMAGE])
        picture.extract(str(tmp_path / "scan"))  # DCTDecode: written as the JPEG it holds
        page.close()
    finally:
        doc.close()
    jpeg = extract_image(str(tmp_path / "scan.jpg"), request())
    assert (jpeg.status, jpeg.mime, jpeg.pages) == ("done", "image/jpeg", 1)
    assert jpeg.extra["text_source"] == ["ocr"]
    assert has_words(jpeg.text[0], ("Integrative", "Health", "Telephone"))
    never = extract_image(str(tmp_path / "scan.jpg"), request("never"))
    assert never.text == [""] and never.metadata["pages_without_text"] == [0]


@needs_tesseract
def test_text_turned_sideways_inside_the_page_is_read_upright() -> None:
    tesseract = open_tesseract("eng")
    if "osd" not in installed_languages(tesseract.binary):
        assert tesseract.psm == 3  # no orientation data: plain automatic segmentation
        pytest.skip("tesseract has no osd data (Debian: tesseract-ocr-osd)")
    assert tesseract.psm == 1
    # camelot's rotated.pdf: a table drawn turned by 90 degrees on a portrait page, no /Rotate;
    # --psm 3 reads it as mirrored garbage ("Aening yeodey ..."), --psm 1 turns it upright first
    pdf = REAL / "camelot" / "docs" / "_static" / "pdf" / "rotated.pdf"
    outcome = extract_pdf(str(pdf), request("always"))
    assert outcome.extra["text_source"] == ["ocr"]
    assert has_words(
        outcome.text[0], ("STATE WISE COVERAGE", "Nutritional Assessment", "Blood Pressure")
    )


@needs_tesseract
def test_a_page_with_rotate_270_is_rendered_upright_for_ocr() -> None:
    import pypdfium2 as pdfium

    # pdfplumber's issue-1054 page: a landscape media box with /Rotate 270, displayed (and
    # rendered for OCR) as an A4 portrait page with the text upright
    pdf = REAL / "pdfplumber" / "tests" / "pdfs" / "issue-1054-example.pdf"
    doc = pdfium.PdfDocument(str(pdf))
    try:
        page = doc[0]
        assert page.get_rotation() == 270
        image, dpi = render_page(page)
        page.close()
    finally:
        doc.close()
    width, height = (int(v) for v in image.split(b"\n", 2)[1].split())
    assert dpi == 300 and (width, height) == (2481, 3508)  # A4 portrait at 300 dpi
    outcome = extract_pdf(str(pdf), request("always"))
    assert outcome.extra["text_source"] == ["ocr"]
    assert has_words(outcome.text[0], ("Bundesministerium des Innern", "Hausanschrift", "Telefax"))


# ------------------------------------------------------------- binarisation, dot leaders
def _render(pdf: Path, index: int = 0) -> tuple[bytes, int]:
    import pypdfium2 as pdfium

    doc = pdfium.PdfDocument(str(pdf))
    try:
        page = doc[index]
        try:
            return render_page(page)
        finally:
            page.close()
    finally:
        doc.close()


def _pgm(rows: list[str]) -> bytes:
    """A PGM from rows of '#' (ink) and '.' (paper)."""
    pixels = bytes(0 if ch == "#" else 255 for row in rows for ch in row)
    return b"P5\n%d %d\n255\n" % (len(rows[0]), len(rows)) + pixels


def test_blobs_and_leader_runs_are_found_in_the_pixels() -> None:
    from docmill.processors.ocr.leaders import blobs, fix_line, leader_runs, parse_pgm

    # 300 dpi: three strokes 20 px tall ("lll"), then six 4x4 dots at the baseline,
    # 14 px apart (half an em: a spaced leader), then a stroke again
    width, height = 130, 20
    ink = [[False] * width for _ in range(height)]
    boxes = [(0, 4, 0, 20), (8, 12, 0, 20), (16, 20, 0, 20)]
    boxes += [(30 + 14 * k, 34 + 14 * k, 16, 20) for k in range(6)] + [(120, 124, 0, 20)]
    for x0, x1, y0, y1 in boxes:
        for y in range(y0, y1):
            ink[y][x0:x1] = [True] * (x1 - x0)
    rows = ["".join("#" if v else "." for v in row) for row in ink]
    grey = parse_pgm(_pgm(rows))
    assert grey is not None and (grey.width, grey.height) == (width, height)
    found = blobs(grey, 0, 0, width, height)
    assert found == boxes
    assert leader_runs(found, 300, 0, height) == [boxes[3:9]]
    assert leader_runs(found[:7] + found[-1:], 300, 0, height) == []  # four dots: no leader
    words = [(0, 0, 30, 20, "lll..."), (40, 16, 60, 20, "eee"), (120, 0, 124, 20, "1")]
    assert fix_line(words, grey, 300, (0, 0, width, height)) == ["lll", ". . . . . .", "1"]
    assert parse_pgm(b"P6\n1 1\n255\n\x00\x00\x00") is None  # colour: left alone


@needs_tesseract
def test_dot_leaders_are_counted_not_read_as_garbage() -> None:
    from docmill.processors.ocr.tesseract import tsv_text

    # a statistical abstract table: "Burglary. . . . . . 234,551 ..."; Tesseract reads the
    # leaders as "Burglary... 0 ..... cece eee eee", "Motor vehicle theft.....0..00005"
    image, dpi = _render(
        REAL / "camelot" / "docs" / "benchmark" / "stream" / "12s0324" / "12s0324.pdf"
    )
    tesseract = open_tesseract("eng")
    lines = tsv_text(tesseract.read_pnm_tsv(image, dpi)).splitlines()
    assert tesseract.read_pnm(image, dpi).splitlines() == lines
    led = {line.split(".")[0].strip(): line for line in lines if ". . . . ." in line}
    for label, number in [
        ("Burglary", "234,551"),
        ("Robbery", "100,496"),
        ("Motor vehicle theft", "63,919"),
        ("Larceny-theft", "1,056,473"),
        ("Aggravated assault", "330,368"),
    ]:
        line = led[label]
        leader = line[len(label) : line.index(number)].strip()
        assert set(leader) <= {".", " "} and leader.count(".") >= 20, line
    assert not any(junk in " ".join(lines).split() for junk in ("eee", "cece"))


@needs_tesseract
def test_text_on_grey_table_bands_is_read() -> None:
    # camelot's column_separators.pdf: every other table row on a grey band; with
    # Tesseract's global (Otsu) threshold those rows vanish from the text
    image, dpi = _render(REAL / "camelot" / "docs" / "_static" / "pdf" / "column_separators.pdf")
    words = set(open_tesseract("eng").read_pnm(image, dpi).split())
    grey_rows = {"648765", "509609", "79145", "429754", "EXPRESSJET", "BEDLAM", "BAR-B-Q"}
    assert grey_rows <= words, grey_rows - words


# ------------------------------------------------------------- text set sideways in a page
def _tsv_row(level: int, block: int, line: int, word: int, box: tuple[int, int, int, int],
             conf: float, text: str) -> str:  # fmt: skip
    left, top, right, bottom = box
    return "\t".join(
        str(v)
        for v in (level, 1, block, 1, line, word, left, top, right - left, bottom - top, conf, text)
    )


def _tsv(lines: list[list[tuple[tuple[int, int, int, int], float, str]]]) -> str:
    """A Tesseract TSV with one block per line, each given as its words."""
    rows = [
        "level\tpage_num\tblock_num\tpar_num\tline_num\tword_num\tleft\ttop\twidth\theight\tconf\ttext"
    ]
    for number, words in enumerate(lines, 1):
        boxes = [box for box, _, _ in words]
        union = (min(b[0] for b in boxes), min(b[1] for b in boxes),
                 max(b[2] for b in boxes), max(b[3] for b in boxes))  # fmt: skip
        rows.append(_tsv_row(2, number, 0, 0, union, -1, ""))
        rows.append(_tsv_row(3, number, 0, 0, union, -1, ""))
        rows.append(_tsv_row(4, number, 1, 0, union, -1, ""))
        rows += [
            _tsv_row(5, number, 1, k, box, conf, text)
            for k, (box, conf, text) in enumerate(words, 1)
        ]
    return "\n".join(rows) + "\n"


@pytest.mark.parametrize("clockwise", [True, False])
def test_a_region_turned_a_quarter_and_its_boxes_mapped_back(clockwise: bool) -> None:
    from docmill.processors.ocr.leaders import Grey, parse_pgm
    from docmill.processors.ocr.sideways import turned, unturn

    width, height = 40, 30
    pixels = bytearray(b"\xff" * width * height)
    for y in range(12, 15):  # a dark 5 x 3 mark at x 12..16, y 12..14
        pixels[y * width + 12 : y * width + 17] = b"\x00" * 5
    region = (10, 5, 35, 25)
    pgm, w, h = turned(Grey(width, height, bytes(pixels)), region, clockwise)
    grey = parse_pgm(pgm)
    assert grey is not None and (grey.width, grey.height) == (w, h) == (20, 25)
    dark = [(i % w, i // w) for i, v in enumerate(grey.pixels) if v == 0]
    xs, ys = [x for x, _ in dark], [y for _, y in dark]
    box = (min(xs), min(ys), max(xs) + 1, max(ys) + 1)
    assert (box[2] - box[0], box[3] - box[1]) == (3, 5)  # the mark stands up
    # the mark is near the region's left edge: the turned image's top when turned
    # clockwise, its bottom the other way
    assert box[3] < h / 3 if clockwise else box[1] > 2 * h / 3
    assert unturn(box, region, clockwise) == (12, 12, 17, 15)


def test_unsure_lines_that_touch_make_a_region_and_lone_or_sure_ones_do_not() -> None:
    from docmill.processors.ocr.sideways import suspect_regions

    sure = [((100, 100, 300, 130), 95.0, "Heading")]
    junk_a = [((100, 140, 160, 170), 20.0, "|g"), ((200, 140, 260, 170), 30.0, "S82)")]
    junk_b = [((120, 172, 180, 202), 10.0, "=|"), ((210, 172, 280, 202), 40.0, "Fé")]
    junk_c = [((110, 204, 170, 234), 0.0, "se"), ((215, 204, 275, 234), 25.0, "$")]
    far = [((900, 1000, 960, 1030), 5.0, "~~"), ((990, 1000, 1050, 1030), 5.0, "oO")]

    def regions(lines: list[list[tuple[tuple[int, int, int, int], float, str]]]) -> list:
        return suspect_regions([r.split("\t") for r in _tsv(lines).split("\n")], 300)

    assert regions([sure, junk_a, junk_b, junk_c, far]) == [(100, 140, 280, 234)]
    assert regions([sure, junk_a, far]) == []  # one unsure line each: no region
    assert regions([sure, junk_a, junk_b]) == []  # two lines, under three letters tall
    sure_too = [[(box, 96.0, text) for box, _, text in line] for line in (junk_a, junk_b, junk_c)]
    assert regions([sure, *sure_too]) == []


def test_sure_turned_words_replace_the_garbage_they_cover() -> None:
    from docmill.processors.ocr.sideways import merge_turned
    from docmill.processors.ocr.tesseract import tsv_text

    tsv = _tsv(
        [
            [((100, 100, 400, 130), 95.0, "Title")],
            [
                ((100, 140, 140, 170), 90.0, "No."),
                ((150, 140, 250, 170), 10.0, "BXVE\\TLE"),
                ((260, 140, 280, 170), 97.0, ">"),
            ],
            [((100, 400, 400, 430), 96.0, "1 Balasore")],
        ]
    )
    rows = [r.split("\t") for r in tsv.split("\n")]
    turned_lines = [  # two labels read turned, in page pixels: tall, narrow boxes
        [(0, (150, 120, 190, 300), 96.0, "Population")],
        [(0, (200, 130, 240, 290), 95.0, "District"), (0, (255, 130, 285, 170), 80.0, "Zone")],
        [(0, (100, 140, 140, 170), 85.0, "Na")],  # under a surer page word: left out
    ]
    assert merge_turned(rows, (90, 90, 420, 310), turned_lines) == 3
    text = tsv_text("\n".join("\t".join(r) for r in rows))
    assert [line for line in text.splitlines() if line] == [
        "Title",
        "Population",
        "District Zone",
        "No.",  # the garbage and the mark under turned words are gone
        "1 Balasore",
    ]
    line_boxes = [r[6:10] for r in rows if r[0] == "4" and r[2] == "2"]
    assert line_boxes == [["100", "140", "40", "30"]]  # the line shrank to what it kept


@needs_tesseract
def test_column_heads_set_sideways_in_a_table_are_read_turned() -> None:
    from docmill.processors.ocr.sideways import reread_sideways
    from docmill.processors.ocr.tesseract import tsv_text

    # camelot's agstat.pdf: a table whose column heads run bottom to top ("Projected
    # Population for 2012-13 (In lakhs)"); read upright they come out as garbage lines
    image, dpi = _render(
        REAL / "camelot" / "docs" / "benchmark" / "lattice" / "agstat" / "agstat.pdf"
    )
    tesseract = open_tesseract("eng")
    words = set(tesseract.read_pnm(image, dpi).split())
    assert {"Projected", "Population", "Equivalent", "Consumption", "Requirement", "Paddy"} <= words
    assert {"DISTRICT", "Jajpur", "Gajapati", "ODISHA"} <= words  # the rest as before

    # a page with nothing sideways is not read again
    calls: list[int] = []

    def read(pgm: bytes, dpi: int) -> str:
        calls.append(len(pgm))
        return tesseract.read_sparse_tsv(pgm, dpi)

    plain, dpi = _render(REAL / "pdfplumber" / "tests" / "pdfs" / "issue-33-lorem-ipsum.pdf")
    upright = tesseract._run("-", ["--dpi", str(dpi)], plain, "tsv")
    assert tsv_text(reread_sideways(upright, plain, dpi, read)) == tsv_text(upright)
    assert calls == []


# ------------------------------------------------------------- marks read from table rules
def _page_with_rules() -> tuple[int, int, bytearray]:
    """A white 300 dpi grey image, 600 x 500, with: a dark rule at x 100..102 from y 20 to
    480; a pale (anti-aliased) rule at x 300 from 20 to 200 and again from 300 to 480; a
    short dark stroke at x 200 (0.2 in: a letter); a dark block 60 px wide."""
    width, height = 600, 500
    pixels = bytearray(b"\xff" * width * height)

    def ink(x0: int, x1: int, y0: int, y1: int, value: int) -> None:
        for y in range(y0, y1):
            pixels[y * width + x0 : y * width + x1] = bytes([value]) * (x1 - x0)

    ink(100, 103, 20, 480, 0)
    ink(300, 301, 20, 200, 170)
    ink(300, 301, 300, 480, 170)
    ink(200, 203, 100, 160, 0)
    ink(450, 510, 50, 450, 0)
    return width, height, pixels


def test_vertical_rules_are_long_thin_runs_of_ink() -> None:
    from docmill.processors.ocr.rules import vertical_rules

    width, height, pixels = _page_with_rules()
    assert vertical_rules(width, height, bytes(pixels), 300) == [
        (100, 20, 103, 480),
        (300, 20, 301, 200),  # a pale rule, in two pieces
        (300, 300, 301, 480),
    ]  # not the letter's stroke (too short) nor the block (too wide)


def test_marks_tesseract_reads_from_rules_are_dropped_and_real_ones_kept() -> None:
    from docmill.processors.ocr.rules import drop_rule_marks
    from docmill.processors.ocr.tesseract import tsv_text

    width, height, pixels = _page_with_rules()
    image = b"P5\n%d %d\n255\n" % (width, height) + bytes(pixels)
    tsv = _tsv(
        [
            # by the dark rule at x 100: "Cases | Deaths", "|Balasore", "2.13}"; "0.04)"
            # ends by the pale rule at x 300
            [((20, 40, 90, 70), 95.0, "Cases"), ((98, 40, 104, 70), 90.0, "|"),
             ((110, 40, 190, 70), 95.0, "Deaths")],
            [((112, 80, 190, 110), 91.0, "|Balasore")],
            [((30, 120, 92, 150), 88.0, "2.13}"), ((150, 120, 290, 150), 93.0, "0.04)")],
            # a bracket the line opens is text: "(In lakhs)" ends by the rule
            [((20, 160, 50, 190), 96.0, "(In"), ((55, 160, 95, 190), 96.0, "lakhs)")],
            # far from any rule (and in the pale rule's gap): all kept
            [((200, 220, 260, 250), 90.0, "a|b"), ((270, 240, 280, 260), 90.0, "|"),
             ((320, 230, 360, 250), 90.0, "x)")],
        ]
    )  # fmt: skip
    assert tsv_text(drop_rule_marks(tsv, image, 300)).split("\n\n") == [
        "Cases Deaths",
        "Balasore",
        "2.13 0.04",
        "(In lakhs)",
        "a|b | x)\n",
    ]
    assert drop_rule_marks(tsv, b"P6\n1 1\n255\n\x00\x00\x00", 300) == tsv  # not a PGM


@needs_tesseract
def test_the_rules_of_a_ruled_table_are_not_read_as_text() -> None:
    # pdfplumber's issue-33 page: a grid of cells; Tesseract reads each vertical rule it
    # passes as a "|" word ("Tempora co | Neque labo Aliquam qu | Quaerat ip")
    image, dpi = _render(REAL / "pdfplumber" / "tests" / "pdfs" / "issue-33-lorem-ipsum.pdf")
    lines = open_tesseract("eng").read_pnm(image, dpi).splitlines()
    assert not any("|" in line for line in lines)
    assert any(line.startswith("Tempora co Neque labo Aliquam qu Quaerat ip") for line in lines)


@needs_tesseract
def test_the_c_api_reads_as_the_command_line_does() -> None:
    """The engine reads through libtesseract in the worker (the model loaded once per
    process); the command line stays as the fallback: same options, same TSV."""
    from docmill.processors.ocr import capi

    pdf, _ = LOREM
    image, dpi = _render(pdf)
    api, cli = open_tesseract("eng"), open_tesseract("eng", api=False)
    if api.api is None:
        pytest.skip("libtesseract cannot be loaded here")
    assert cli.api is None
    assert api.read_pnm_tsv(image, dpi) == cli.read_pnm_tsv(image, dpi)
    assert capi.load("eng") is api.api  # one handle per language set and process
    assert api.read_file(str(DATA / "page.png")).split() == cli.read_file(str(DATA / "page.png")).split()
    with pytest.raises(OcrFailed):
        api.read_file(str(DATA / "sample.txt"))  # not an image: Leptonica refuses it


@needs_tesseract
def test_the_c_api_runs_one_thread_whatever_the_worker_inherits() -> None:
    """OpenMP in libtesseract starts a thread pool per parallel region up to
    OMP_THREAD_LIMIT; a worker that inherits a limit of 4 must still read with one
    thread (its threads only add CPU when every core runs a worker)."""
    import os
    import subprocess
    import sys

    code = (
        "import os, sys\n"
        "from docmill.processors.ocr.tesseract import open_tesseract\n"
        "from imagegen import LOREM\n"
        "from test_ocr import _render\n"
        "t = open_tesseract('eng')\n"
        "if t.api is None: sys.exit(3)\n"
        "t.read_pnm_tsv(*_render(LOREM[0]))\n"
        "print(len(os.listdir('/proc/self/task')))\n"
    )
    env = dict(os.environ, OMP_THREAD_LIMIT="4", PYTHONPATH=os.pathsep.join(sys.path))
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          timeout=120, cwd=Path(__file__).parent, check=False)  # fmt: skip
    if done.returncode == 3:
        pytest.skip("libtesseract cannot be loaded here")
    assert done.returncode == 0, done.stderr[-500:]
    assert done.stdout.split() == ["1"]  # no OpenMP pool threads left beside the main one

@needs_tesseract
def test_the_words_tsv_is_the_library_tsv_row_for_row() -> None:
    """The C API's TSV is walked word by word with Tesseract's left-to-right iterator
    (GetTSVText's reading-order iterator is quadratic in the page's words): on a page
    of several blocks, paragraphs and a table it gives the command line's rows exactly,
    boxes and confidences included."""
    from dataclasses import replace

    pdf = REAL / "pdfplumber" / "examples" / "pdfs" / "ag-energy-round-up-2017-02-24.pdf"  # carried
    image, dpi = _render(pdf)
    api, cli = open_tesseract("eng"), open_tesseract("eng", api=False)
    if api.api is None:
        pytest.skip("libtesseract cannot be loaded here")
    got = replace(api, psm=3)._read_pnm(image, dpi, "tsv")
    want = replace(cli, psm=3)._read_pnm(image, dpi, "tsv")
    assert got.count("\n2\t") > 1 and got.count("\n3\t") > 3  # blocks and paragraphs
    assert got.splitlines() == want.splitlines()


# ------------------------------------------------------------------- blank margins cut off
def test_the_ink_box_holds_every_dark_pixel_and_the_margin() -> None:
    from docmill.processors.ocr.leaders import Grey
    from docmill.processors.ocr.margins import crop_pgm, ink_box, page_row, shift_tsv

    width, height = 200, 100
    pixels = bytearray(b"\xf0" * width * height)  # paper a scan's grey, lighter than PAPER
    pixels[30 * width + 50] = 0  # a dot
    pixels[60 * width + 20 : 60 * width + 25] = b"\x80" * 5  # a grey stroke further left
    pixels[70 * width + 150] = 200  # pale ink, lower and further right
    grey = Grey(width, height, bytes(pixels))
    assert ink_box(grey, 0) == (20, 30, 151, 71)
    assert ink_box(grey, 10) == (10, 20, 161, 81)
    assert ink_box(grey, 40) == (0, 0, 191, 100)  # clipped to the image
    assert ink_box(Grey(width, height, b"\xff" * width * height), 5) is None
    # cut only where that leaves at most MAX_KEPT of the page; a blank page is not read
    from docmill.processors.ocr.margins import MAX_KEPT, content

    header = b"P5\n%d %d\n255\n" % (width, height)
    assert content(header + grey.pixels, 30) == (grey, (17, 27, 154, 74))  # 0.32 kept
    spread = bytearray(pixels)
    spread[5 * width + 3] = spread[95 * width + 196] = 0  # ink near two corners
    assert MAX_KEPT < 1 and content(header + bytes(spread), 30) is None
    blank = content(header + b"\xff" * width * height, 30)
    assert blank is not None and blank[1] is None
    assert content(b"P6\n1 1\n255\n\x00\x00\x00", 300) is None  # not a PGM: read whole
    cut = crop_pgm(grey, (20, 30, 151, 71))
    assert cut.startswith(b"P5\n131 41\n255\n") and len(cut) == 14 + 131 * 41
    assert cut[14 + 30] == 0 and cut[14 + 30 * 131] == 0x80 and cut[-1] == 200
    tsv = _tsv([[((1, 2, 11, 12), 95.0, "Hello"), ((20, 2, 30, 12), 90.0, "world")]])
    tsv = tsv.replace("\n", "\n" + page_row(131, 41) + "\n", 1)
    moved = shift_tsv(tsv, 20, 30, 200, 100).split("\n")
    assert moved[1] == page_row(200, 100)
    assert [row.split("\t")[6:12] for row in moved[-3:-1]] == [
        ["21", "32", "10", "10", "95.0", "Hello"],
        ["40", "32", "10", "10", "90.0", "world"],
    ]


@needs_tesseract
def test_a_page_read_without_its_margins_keeps_its_words_in_place() -> None:
    from dataclasses import replace

    from docmill.processors.ocr.leaders import parse_pgm
    from docmill.processors.ocr.margins import content

    pdf, _ = LOREM
    image, dpi = _render(pdf)
    grey = parse_pgm(image)
    cut = content(image, dpi)
    assert grey is not None and cut is not None
    left, top, right, bottom = cut[1] or (0, 0, 0, 0)
    assert (right - left) * (bottom - top) < 0.6 * grey.width * grey.height  # margins cut

    tesseract = replace(open_tesseract("eng"), psm=3)

    def words(tsv: str) -> list[tuple[str, int, int]]:
        rows = [row.split("\t") for row in tsv.splitlines()[1:]]
        return [(r[11], int(r[6]), int(r[7])) for r in rows if r[0] == "5" and r[11].strip()]

    whole, inked = words(tesseract._read_whole(image, dpi, "tsv")), words(tesseract._read_pnm(image, dpi, "tsv"))
    assert len(inked) > 50
    assert [w for w, _, _ in inked] == [w for w, _, _ in whole]
    assert all(abs(a[1] - b[1]) <= 2 and abs(a[2] - b[2]) <= 2 for a, b in zip(inked, whole, strict=True))
    # a page upside down is still turned upright (orientation detection reads the cut-out)
    if "osd" in installed_languages(tesseract.binary):
        header = image[: len(image) - len(grey.pixels)]
        upside_down = open_tesseract("eng").read_pnm(header + grey.pixels[::-1], dpi)
        assert has_words(upside_down, WORDS[LOREM])
    # a blank page is not read: its TSV is the page row alone
    blank = b"P5\n%d %d\n255\n" % (grey.width, grey.height) + b"\xff" * (grey.width * grey.height)
    assert tesseract._read_pnm(blank, dpi, "tsv").splitlines()[1:] == [
        f"1\t1\t0\t0\t0\t0\t0\t0\t{grey.width}\t{grey.height}\t-1\t"
    ]
