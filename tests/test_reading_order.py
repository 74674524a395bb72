"""Reading order (``extract.reading_order = layout``): columns and blocks from glyph
geometry, on made-up characters and on a real corpus page whose content stream is out
of order, checked against poppler's pdftotext; the setting through the loader and the
runner's options."""

from __future__ import annotations

import difflib
import shutil
import subprocess

import pytest

from docmill.engine.runner import extract_options
from docmill.model import PageRange
from docmill.processors.pdf.geometry import Char
from docmill.processors.pdf.reading_order import Glyph, logical, ordered_text
from docmill.processors.pdf.text import extract_pdf
from docmill.processors.registry import ExtractOptions, ExtractRequest
from docmill.settings.loader import SettingsError, load_settings
from engine_kit import CORPUS, corpus_file

DIESEL = CORPUS / "real" / "camelot" / "tests" / "files" / "diesel_engines.pdf"
ARABIC = CORPUS / "real" / "tabula-java" / "src" / "test" / "resources" / "technology" / "tabula"
ARABIC = ARABIC / "arabic.pdf"
GEOTOPO = CORPUS / "real" / "sample-files" / "009-pdflatex-geotopo" / "GeoTopo-komprimiert.pdf"
SIDEWAYS = CORPUS / "real" / "pdfplumber" / "tests" / "pdfs" / "issue-848.pdf"


def _word(text: str, x: float, y: float, size: float = 10.0) -> list[Char]:
    """Glyphs of one word, 0.5 em wide each, top at ``y`` (top-left origin)."""
    out = [
        Char(ch, x + i * size / 2, y, x + (i + 1) * size / 2, y + size) for i, ch in enumerate(text)
    ]
    out.append(Char(" ", out[-1].x1, y, out[-1].x1, y + size))
    return out


def _line(words: str, x: float, y: float) -> list[Char]:
    chars: list[Char] = []
    for word in words.split():
        chars += _word(word, x, y)
        x = chars[-1].x1 + 3.0
    return chars


def test_two_columns_are_read_one_after_the_other_below_a_full_width_title() -> None:
    chars = _line("A title across both columns of the page", 100, 20)
    left = ["left one", "left two", "left three"]
    right = ["right one", "right two", "right three"]
    for i, (a, b) in enumerate(zip(left, right, strict=True)):
        # interleaved as a content stream often is: left line, right line, ...
        chars += _line(a, 50, 60 + 12 * i) + _line(b, 300, 60 + 12 * i)
    title = "A title across both columns of the page"
    assert ordered_text(chars).split() == " ".join([title, *left, *right]).split()


def test_a_wide_space_in_justified_prose_does_not_cut_its_line() -> None:
    chars = _line("A paragraph of justified prose with", 50, 20)  # x 50-~240
    chars += _word("wide.", 50, 32) + _word("Spaces", 90, 32)  # a gap of 15 pt, under text
    chars += _line("lines that run across the gaps", 50, 44)
    assert ordered_text(chars).splitlines()[1] == "wide. Spaces"


def test_columns_of_prose_read_down_even_where_paragraph_breaks_line_up() -> None:
    chars: list[Char] = []
    for side, x in (("left", 50), ("right", 300)):
        for para, top in ((1, 60), (2, 120)):  # both columns break at the same height
            for i in range(3):
                chars += _line(f"{side} para {para} line {i}", x, top + 12 * i)
    blocks = ordered_text(chars).split("\n\n")
    assert [b.split()[0] + b.split()[2] for b in blocks] == ["left1", "left2", "right1", "right2"]


def test_a_word_broken_by_a_pdfium_line_end_hyphen_is_joined() -> None:
    chars = _line("an exam\x02", 50, 20) + _line("ple here", 50, 32)
    assert ordered_text(chars).split() == ["an", "example", "here"]


def test_lines_far_apart_are_separate_blocks_in_top_down_order() -> None:
    chars = _line("second block", 50, 200) + _line("first block", 50, 20)
    assert ordered_text(chars).split("\n\n") == ["first block", "second block"]


def test_text_running_up_the_page_is_read_along_its_lines() -> None:
    # a table set sideways: each line runs bottom to top, lines follow left to right
    chars: list[Char] = []
    turns: list[int] = []
    for i, words in enumerate(["first sideways line", "second sideways line"]):
        upright = _line(words, 50, 20 + 12 * i)
        for ch in upright:  # turned a quarter turn anticlockwise on a 600 pt page
            chars.append(Char(ch.text, ch.y0, 600 - ch.x1, ch.y1, 600 - ch.x0))
            turns.append(3)
    assert ordered_text(chars).split() != ["first", "sideways", "line"]  # by glyph only
    assert ordered_text(chars, turns) == "first sideways line\nsecond sideways line"


def test_glyphs_drawn_twice_over_themselves_are_read_once() -> None:
    once = _line("AVERAGE of (3) REPLICATIONS", 50, 20)
    shadow = [Char(c.text, c.x0 + 0.4, c.y0 + 0.2, c.x1 + 0.4, c.y1 + 0.2) for c in once]
    assert ordered_text(once + shadow) == "AVERAGE of (3) REPLICATIONS"
    # the same letter side by side is no overprint
    assert ordered_text(_line("LL ee", 50, 20)) == "LL ee"


def test_a_space_between_touching_glyphs_is_no_word_break() -> None:
    chars = _word("May", 50, 20)  # PDFium's space after "May", but "15" touches it
    chars += _word("15", chars[-1].x1, 20)
    assert ordered_text(chars) == "May15"
    assert ordered_text(_line("May 15", 50, 20)) == "May 15"


def test_blocks_no_whitespace_cut_separates_are_read_column_by_column() -> None:
    # a pinwheel: no horizontal or vertical band of whitespace crosses the page
    chars = _word("A" * 40, 0, 0)  # top, x 0-200
    chars += [c for i in range(16) for c in _word("B" * 16, 220, 12 * i)]  # right, tall
    chars += [c for i in range(17) for c in _word("D" * 18, 0, 20 + 12 * i)]  # left, tall
    chars += _word("C" * 38, 110, 214)  # bottom, x 110-300
    order = [block[0] for block in ordered_text(chars).split("\n\n")]
    assert order == ["A", "D", "B", "C"]  # the left column, then the right one


def _glyphs(text: str, x: float, base: float, top: float, bottom: float) -> list[Char]:
    """Glyphs 5 pt wide on baseline ``base``, loose boxes from ``top`` to ``bottom``."""
    return [Glyph(ch, x + 5 * i, top, x + 5 * (i + 1), bottom, base) for i, ch in enumerate(text)]


def test_lines_are_told_apart_by_baseline_not_by_tall_loose_boxes() -> None:
    # a math font's loose boxes reach into the lines above and below
    chars = _glyphs("A", 50, 20, 6, 24) + _glyphs("⊆", 60, 20, 0, 40) + _glyphs("B", 70, 20, 6, 24)
    chars += _glyphs("Kernel", 50, 32, 18, 36)
    chars += _glyphs("x", 80, 20, 6, 24) + _glyphs("2", 85, 16, 8, 18)  # a superscript
    assert ordered_text(chars).split("\n\n") == ["A⊆B x2", "Kernel"]


def test_empty_page_gives_empty_text() -> None:
    assert ordered_text([]) == ""


def _words_ratio(a: str, b: str) -> float:
    return difflib.SequenceMatcher(None, a.split(), b.split(), autojunk=False).ratio()


@pytest.mark.skipif(shutil.which("pdftotext") is None, reason="pdftotext missing")
def test_out_of_order_content_stream_is_read_as_pdftotext_reads_it() -> None:
    page = 4  # a table drawn after the page's prose in the content stream
    poppler = subprocess.run(
        ["pdftotext", "-q", "-f", str(page + 1), "-l", str(page + 1), str(DIESEL), "-"],
        capture_output=True,
        check=True,
        text=True,
    ).stdout
    rng_request = ExtractRequest(None, ExtractOptions(max_pages=page + 1))
    default = extract_pdf(str(DIESEL), rng_request).text[page]
    layout = extract_pdf(
        str(DIESEL),
        ExtractRequest(None, ExtractOptions(max_pages=page + 1, reading_order="layout")),
    ).text[page]
    assert _words_ratio(default, poppler) < 0.7  # the stream order is far from it
    assert _words_ratio(layout, poppler) > 0.95
    assert "\x02" not in layout and "\r" not in layout


@pytest.mark.skipif(shutil.which("pdftotext") is None, reason="pdftotext missing")
def test_a_page_of_sideways_text_has_the_words_pdftotext_finds() -> None:
    page = 6  # prose set running up the page (text matrix turned, no /Rotate)
    poppler = subprocess.run(
        ["pdftotext", "-q", "-f", str(page + 1), "-l", str(page + 1), str(SIDEWAYS), "-"],
        capture_output=True,
        check=True,
        text=True,
    ).stdout
    options = ExtractOptions(max_pages=page + 1, reading_order="layout")
    layout = extract_pdf(str(SIDEWAYS), ExtractRequest(None, options)).text[page]
    assert _words_ratio(" ".join(sorted(layout.split())), " ".join(sorted(poppler.split()))) > 0.97
    assert "The movie opens with a news report" in layout


def test_right_to_left_runs_are_read_in_logical_order() -> None:
    seen = [*reversed("مرحبا بكم"), " ", *"Jo"]  # as laid out, left to right
    assert logical(seen) == "Jo مرحبا بكم"  # a right-to-left line starts at its right end
    assert logical([*"Jeremy is ", *reversed("جرمي"), *" in"]) == "Jeremy is جرمي in"
    assert logical(["4", "7", " ", *reversed("عندي")]) == "عندي 47"  # numbers read as seen


def test_an_arabic_page_reads_as_pdfium_writes_it_in_stream_order() -> None:
    layout = extract_pdf(
        str(ARABIC), ExtractRequest(None, ExtractOptions(reading_order="layout"))
    ).text[0]
    for line in ("عندي 47 قطط", "Jeremy is جرمي in Arabic", "من اين انت؟", "اسمي سلطان"):
        assert line in layout.splitlines()


def test_a_ligature_glyph_keeps_all_its_letters() -> None:
    # PDFium gives the "ff" ligature's two letters one box: no overprint, both kept
    request = ExtractRequest(PageRange(19, 20), ExtractOptions(reading_order="layout"))
    page = extract_pdf(str(corpus_file(GEOTOPO)), request).text[0]
    assert "Hausdorffraum" in page and "Hausdorfraum" not in page


@pytest.mark.skipif(shutil.which("pdftotext") is None, reason="pdftotext missing")
def test_mirrored_text_is_upright_text_read_top_down() -> None:
    page = 1  # text matrix (-1 0 0 1): mirrored left to right, its top still up
    poppler = subprocess.run(
        ["pdftotext", "-q", "-f", str(page + 1), "-l", str(page + 1), str(SIDEWAYS), "-"],
        capture_output=True,
        check=True,
        text=True,
    ).stdout
    request = ExtractRequest(PageRange(page, page + 1), ExtractOptions(reading_order="layout"))
    layout = extract_pdf(str(SIDEWAYS), request).text[0]
    assert layout.splitlines()[0] == poppler.splitlines()[0]  # the top line first


def test_reading_order_setting_reaches_the_extract_options() -> None:
    assert extract_options(load_settings(env={})).reading_order == "pdfium"
    settings = load_settings(env={"DOCMILL_EXTRACT__READING_ORDER": "layout"})
    assert extract_options(settings).reading_order == "layout"
    with pytest.raises(SettingsError, match=r"extract\.reading_order"):
        load_settings(env={}, overrides={"extract.reading_order": "sideways"})


def test_text_mirrored_top_to_bottom_reads_left_to_right() -> None:
    page = 3  # text matrix (1 0 0 -1): upside down, its baseline still running right
    request = ExtractRequest(PageRange(page, page + 1), ExtractOptions(reading_order="layout"))
    layout = extract_pdf(str(SIDEWAYS), request).text[0]
    assert "The movie opens with a news report" in layout  # as poppler reads it
    assert "troper swen" not in layout


def test_a_superscript_stays_on_its_line_when_it_sits_above_the_line_s_baseline() -> None:
    chars = _word("Rn", 50, 20)  # 10 pt glyphs, baseline at 30
    # "n" smaller and raised by a third of an em: its own baseline is read first
    chars[1] = Glyph("n", chars[1].x0, 20.5, chars[1].x0 + 3, 26.5, 26.5)
    chars += _line("oder Cn ist kompakt", 62, 20)
    assert ordered_text(chars) == "Rn oder Cn ist kompakt"


def test_superscripts_of_a_real_page_stay_on_their_lines() -> None:
    # "Rn": a small loose box for R (blackboard bold), n raised 0.41 of the line's height
    request = ExtractRequest(PageRange(28, 29), ExtractOptions(reading_order="layout"))
    page = extract_pdf(str(corpus_file(GEOTOPO)), request).text[0]
    assert "Jede offene Teilmenge U ⊆ Rn ist eine n-dimensionale" in page
    assert "Pn(R) = (Rn+1 \\ { 0 })/∼ = Sn/∼ und Pn(C)" in page


def test_small_text_just_below_a_large_line_is_a_line_of_its_own() -> None:
    # 138 pt "Big Text" with 14 pt "Small Text" under it (pdfplumber issue 987): the small
    # line's baseline is within half the large glyphs' height of theirs, but further
    # than its own height: another line, not a subscript of the large one
    big = [Glyph(ch, 99 + 60 * i, 426, 159 + 60 * i, 564, 539.2) for i, ch in enumerate("Big")]
    big += [Glyph(ch, 301 + 60 * i, 426, 361 + 60 * i, 564, 539.2) for i, ch in enumerate("Text")]
    small = [Glyph(ch, 99 + 7 * i, 573, 105 + 7 * i, 587, 584.8) for i, ch in enumerate("Small")]
    small.append(Char(" ", small[-1].x1, 573, small[-1].x1, 587))
    small += [Glyph(ch, 134 + 6 * i, 573, 139 + 6 * i, 587, 584.8) for i, ch in enumerate("Text")]
    assert ordered_text(big + small).split("\n\n") == ["Big Text", "Small Text"]
