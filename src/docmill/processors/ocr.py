"""OCR with Tesseract's command line: pages without a usable text layer, and images.

Tesseract runs as a child process (no Python binding, no new dependency): a rendered
page goes in on stdin as a PGM we write ourselves, an image file is named by path (one
TIFF frame at a time), the text comes back on stdout. The child is bounded three ways:
a per-image timeout here, ``OMP_THREAD_LIMIT=1`` (Tesseract's OpenMP threads are ~5x
slower, not faster, when workers already use every core), and a parent-death signal so
that a worker the engine kills at ``run.timeout_s`` does not leave Tesseract running.
It inherits the worker's address-space limit.

Tesseract binarises with Sauvola's local threshold (``thresholding_method=2``, a window of
0.15 inch) instead of its global Otsu threshold: text on grey table bands and shaded
cells, which one threshold for the page turns black or white, stays readable (on the
rendered corpus pages, see bench/ocr.py). Its reading is then mended from the page's
pixels: dot leaders are counted (:mod:`docmill.processors.ocr_leaders`), marks read from a
table's vertical rules are dropped (:mod:`docmill.processors.ocr_rules`), and text set
sideways in an upright page is read again turned (:mod:`docmill.processors.ocr_sideways`).

Pages are read with ``--psm 1`` (automatic segmentation with orientation and script
detection) when the ``osd`` data is installed, else ``--psm 3``: text turned by 90, 180 or
270 degrees inside the page (a landscape table set sideways) is then read upright.

When Tesseract (or a language) is missing, nothing fails: pages keep the text they have
and ``metadata["ocr_unavailable"]`` says why.
"""

from __future__ import annotations

import ctypes
import os
import re
import shutil
import signal
import subprocess
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from docmill.processors.registry import ExtractRequest

DPI = 300  # render PDF pages at this resolution for OCR
MAX_PIXELS = 40_000_000  # larger pages are rendered at a lower resolution (~A2 at 300 dpi)
IMAGE_TIMEOUT_S = 600.0  # one image; the engine's run.timeout_s normally ends it first
LAYER, OCR = "layer", "ocr"  # values of a record's text_source, one per page
_LANGUAGES = re.compile(r"^[A-Za-z0-9_]+(\+[A-Za-z0-9_]+)*$")
_PR_SET_PDEATHSIG = 1
_ASCII_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_ASCII_ALNUM = re.compile(r"[A-Za-z0-9]")
# Sauvola's local threshold, window 0.15 inch (Tesseract multiplies it by the dpi)
BINARISATION = ("-c", "thresholding_method=2", "-c", "thresholding_window_size=0.15")


class OcrUnavailable(Exception):
    """Tesseract, or the data for a requested language, is not installed."""


class OcrFailed(Exception):
    """Tesseract ran on one image and gave no text (exit status, timeout, signal)."""


# --------------------------------------------------------------------- text layer check
def usable_text(text: str) -> bool:
    """Whether a page's text layer is worth keeping instead of OCR.

    Not usable: empty or whitespace; or garbage from a broken font encoding, i.e. more
    than a third of the visible characters are replacement, private-use, control or
    unassigned code points, or fewer than a fifth are letters or digits (dense
    numeric tables in shared/corpus/real go down to ~38%).
    """
    visible = "".join(text.split())  # split() drops exactly what isspace() matches
    if not visible:
        return False
    if visible.isascii():  # common; counted in C (ASCII L/N: [A-Za-z0-9], Cc: \x00-\x1f, \x7f)
        bad = len(visible) - len(_ASCII_CONTROL.sub("", visible))
        alnum = len(visible) - len(_ASCII_ALNUM.sub("", visible))
        return bad * 3 <= len(visible) and alnum * 5 >= len(visible)
    bad = alnum = 0
    for ch in visible:
        category = unicodedata.category(ch)
        if ch == "\ufffd" or category in ("Co", "Cc", "Cs", "Cn"):
            bad += 1
        elif category[0] in "LN":
            alnum += 1
    return bad * 3 <= len(visible) and alnum * 5 >= len(visible)


# --------------------------------------------------------------------------- images
def pnm_bytes(
    buffer: bytes | memoryview, width: int, height: int, stride: int, channels: int
) -> bytes:
    """A binary PGM (1 channel, grey) or PPM (3 or 4 channels, PDFium's BGR/BGRx order)
    from a raw bitmap whose rows are ``stride`` bytes apart."""
    if channels not in (1, 3, 4):
        raise ValueError(f"unsupported bitmap: {channels} channels")
    row = width * channels
    raw = bytes(buffer)
    if stride != row:
        raw = b"".join(raw[y * stride : y * stride + row] for y in range(height))
    if len(raw) != row * height:
        raise ValueError(f"bitmap buffer holds {len(raw)} bytes, expected {row * height}")
    if channels == 1:
        return b"P5\n%d %d\n255\n" % (width, height) + raw
    rgb = bytearray(width * height * 3)
    rgb[0::3] = raw[2::channels]
    rgb[1::3] = raw[1::channels]
    rgb[2::3] = raw[0::channels]
    return b"P6\n%d %d\n255\n" % (width, height) + bytes(rgb)


def render_scale(width_pt: float, height_pt: float, dpi: int = DPI, max_pixels: int = MAX_PIXELS) -> float:
    """PDFium's render scale for ``dpi``, lowered so the bitmap stays under ``max_pixels``."""
    scale = dpi / 72
    pixels = max(width_pt * scale, 1.0) * max(height_pt * scale, 1.0)
    if pixels > max_pixels:
        scale *= (max_pixels / pixels) ** 0.5
    return scale


def render_page(page: Any, dpi: int = DPI, max_pixels: int = MAX_PIXELS) -> tuple[bytes, int]:
    """A PDFium page as a grey PGM, and the resolution it was rendered at."""
    width, height = page.get_size()
    scale = render_scale(width, height, dpi, max_pixels)
    bitmap = page.render(scale=scale, grayscale=True, may_draw_forms=True)
    try:
        image = pnm_bytes(
            bitmap.buffer, bitmap.width, bitmap.height, bitmap.stride, bitmap.n_channels
        )
    finally:
        bitmap.close()
    return image, max(round(scale * 72), 1)


# ------------------------------------------------------------------------- tesseract
def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["OMP_THREAD_LIMIT"] = "1"
    return env


def clean_output(raw: bytes) -> str:
    """Tesseract's text: a form feed ends each page; lines end with ``\\n``."""
    text = raw.decode("utf-8", "replace").replace("\f", "")
    return text.replace("\r\n", "\n").strip("\n") + ("\n" if text.strip() else "")


def tsv_text(tsv: str) -> str:
    """The text of Tesseract's TSV as its txt renderer writes it: words one space
    apart, a line break after each line, an empty line after each paragraph."""
    paragraphs: list[list[list[str]]] = []
    last_line: tuple[str, ...] | None = None
    last_paragraph: tuple[str, ...] | None = None
    for row in tsv.splitlines()[1:]:
        cells = row.split("\t")
        if len(cells) < 12 or cells[0] != "5" or not cells[11].strip():
            continue
        paragraph, line = tuple(cells[1:4]), tuple(cells[1:5])
        if paragraph != last_paragraph:
            paragraphs.append([])
            last_paragraph, last_line = paragraph, None
        if line != last_line:
            paragraphs[-1].append([])
            last_line = line
        paragraphs[-1][-1].append(cells[11].strip())
    return "".join(
        "".join(" ".join(words) + "\n" for words in lines) + "\n" for lines in paragraphs
    ).strip("\n") + ("\n" if paragraphs else "")


@dataclass(frozen=True, slots=True)
class Tesseract:
    """One Tesseract binary with the languages to read; build it with :func:`open_tesseract`."""

    binary: str
    languages: str
    timeout_s: float = IMAGE_TIMEOUT_S
    psm: int = 3  # page segmentation: 1 = automatic with orientation detection (OSD), 3 without

    def _run(
        self, source: str, options: list[str], stdin: bytes | None, output: str = "txt"
    ) -> str:
        command = [self.binary, source, "-", "-l", self.languages, "--psm", str(self.psm)]
        command += [*BINARISATION, *options]
        if output != "txt":
            command.append(output)
        try:
            done = subprocess.run(
                command,
                input=stdin,
                stdin=None if stdin is not None else subprocess.DEVNULL,
                capture_output=True,
                timeout=self.timeout_s,
                env=_child_env(),
                preexec_fn=_die_with_parent,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise OcrFailed(f"tesseract ran over {self.timeout_s:g}s") from exc
        if done.returncode != 0:
            detail = done.stderr.decode("utf-8", "replace").strip().splitlines()
            status = (
                f"killed by signal {-done.returncode}"
                if done.returncode < 0
                else f"exit status {done.returncode}"
            )
            raise OcrFailed(f"tesseract failed ({status}): {' '.join(detail[-2:])}"[:300])
        return (
            clean_output(done.stdout) if output == "txt" else done.stdout.decode("utf-8", "replace")
        )

    def read_pnm(self, image: bytes, dpi: int) -> str:
        """Text of one PGM/PPM image given on stdin: the words of :meth:`read_pnm_tsv`
        laid out as Tesseract's txt output (a line break after each line, a blank line
        after each paragraph)."""
        return tsv_text(self.read_pnm_tsv(image, dpi))

    def read_pnm_tsv(self, image: bytes, dpi: int) -> str:
        """The reading of one PGM/PPM image as Tesseract's TSV: one row per block,
        paragraph, line and word with its box in pixels; dot leaders of a PGM are
        counted from its pixels (used by :meth:`read_pnm` and bench/ocr.py)."""
        from docmill.processors.ocr_leaders import fix_tsv
        from docmill.processors.ocr_rules import drop_rule_marks
        from docmill.processors.ocr_sideways import reread_sideways

        tsv = self._run("-", ["--dpi", str(dpi)], image, "tsv")
        tsv = reread_sideways(tsv, image, dpi, self.read_sparse_tsv)
        tsv = drop_rule_marks(tsv, image, dpi)
        return fix_tsv(tsv, image, dpi)

    def read_sparse_tsv(self, image: bytes, dpi: int) -> str:
        """The TSV of a PGM/PPM read as sparse text (``--psm 11``: words in any order,
        no layout), as a cut-out region of a page is read again."""
        return replace(self, psm=11)._run("-", ["--dpi", str(dpi)], image, "tsv")

    def read_file(self, path: str, frame: int | None = None) -> str:
        """Text of an image file (PNG, JPEG, TIFF...); ``frame``: that page of a TIFF."""
        options = [] if frame is None else ["-c", f"tessedit_page_number={frame}"]
        return self._run(os.path.abspath(path), options, None)


def installed_languages(binary: str) -> set[str]:
    done = subprocess.run(
        [binary, "--list-langs"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=30,
        env=_child_env(),
        check=False,
    )
    lines = (done.stdout + done.stderr).decode("utf-8", "replace").splitlines()
    return {line.strip() for line in lines[1:] if line.strip() and " " not in line.strip()}


def open_tesseract(languages: str, binary: str | None = None) -> Tesseract:
    """A :class:`Tesseract` for ``languages`` ("eng", "eng+deu"); raises
    :class:`OcrUnavailable` saying what is missing."""
    if not _LANGUAGES.match(languages):
        raise OcrUnavailable(
            f"extract.ocr_languages {languages!r} is not a '+'-joined list of language codes"
        )
    found = binary or shutil.which("tesseract")
    if found is None:
        raise OcrUnavailable(
            "tesseract is not installed (Debian: apt-get install tesseract-ocr tesseract-ocr-eng)"
        )
    try:
        have = installed_languages(found)
    except (OSError, subprocess.SubprocessError) as exc:
        raise OcrUnavailable(f"tesseract cannot run: {exc}") from exc
    missing = [code for code in languages.split("+") if code not in have]
    if missing:
        raise OcrUnavailable(
            f"tesseract has no data for {', '.join(missing)}"
            f" (installed: {', '.join(sorted(have)) or 'none'})"
        )
    # with the osd data (Debian's tesseract-ocr-osd), --psm 1 finds each block's
    # orientation and reads text turned by 90/180/270 degrees, which --psm 3 reads as garbage
    return Tesseract(found, languages, psm=1 if "osd" in have else 3)


# ---------------------------------------------------------------------------- pages
def ocr_pages(
    read: Callable[[int, Tesseract], str],
    wanted: list[int],
    text: list[str],
    languages: str,
    on_stage: Callable[[str], None],
    meta: dict[str, Any],
    first_page: int = 0,
) -> list[str]:
    """OCR pages ``wanted`` (indexes into ``text``) with ``read(index, tesseract)``,
    replacing their text; returns the text_source of every page.

    A page Tesseract fails on keeps its text and is listed in ``meta["ocr_errors"]``;
    without Tesseract every page keeps its text and ``meta["ocr_unavailable"]`` says why.
    """
    sources = [LAYER] * len(text)
    if not wanted:
        return sources
    try:
        tesseract = open_tesseract(languages)
    except OcrUnavailable as exc:
        meta["ocr_unavailable"] = str(exc)
        return sources
    on_stage("ocr")
    errors: list[dict[str, Any]] = []
    for index in wanted:
        try:
            text[index] = read(index, tesseract)
        except OcrFailed as exc:
            errors.append({"page": first_page + index, "error": str(exc)})
            continue
        sources[index] = OCR
    if errors:
        meta["ocr_errors"] = errors
    return sources


def ocr_pdf(
    doc: Any,
    start: int,
    text: list[str],
    skip: list[int],
    request: ExtractRequest,
    meta: dict[str, Any],
) -> list[str]:
    """OCR the pages of an open PDFium document that need it under ``extract.ocr``
    (``auto``: no usable text layer; ``always``; ``never``). ``text[i]`` is page
    ``start + i``; ``skip`` lists pages PDFium could not load. Returns text_source."""
    options = request.options
    if options.ocr == "never":
        return [LAYER] * len(text)
    wanted = [
        i
        for i, page_text in enumerate(text)
        if start + i not in skip and (options.ocr == "always" or not usable_text(page_text))
    ]

    def read(index: int, tesseract: Tesseract) -> str:
        page = doc[start + index]
        try:
            image, dpi = render_page(page)
        finally:
            page.close()
        return tesseract.read_pnm(image, dpi)

    return ocr_pages(read, wanted, text, options.ocr_languages, request.on_stage, meta, start)
