"""Tesseract on one image: a rendered page (a PGM/PPM we write ourselves) or an image file.

Tesseract is read through its C API in the worker process when ``libtesseract`` is
there (:mod:`docmill.processors.ocr.capi`: the model loaded once per worker, the pixels
handed over in memory), else through its command line as a child process: a rendered
page goes in on stdin, an image file is named by path (one TIFF frame at a time), the
text comes back on stdout. The child is bounded three ways: a per-image timeout here,
``OMP_THREAD_LIMIT=1`` (Tesseract's OpenMP threads are ~5x slower, not faster, when
workers already use every core), and a parent-death signal so that a worker the engine
kills at ``run.timeout_s`` does not leave Tesseract running. It inherits the worker's
address-space limit. Both read with the same options and give the same TSV.

Tesseract binarises with Sauvola's local threshold (``thresholding_method=2``, a window of
0.15 inch) instead of its global Otsu threshold: text on grey table bands and shaded
cells, which one threshold for the page turns black or white, stays readable (on the
rendered corpus pages, see bench/ocr.py). A page's blank margins are cut off before it
is read, where that leaves at most 70 % of it, and a page without ink is not read
(:mod:`docmill.processors.ocr.margins`). Its reading is then mended from the page's
pixels: dot leaders are counted (:mod:`docmill.processors.ocr.leaders`), marks read from a
table's vertical rules are dropped (:mod:`docmill.processors.ocr.rules`), and text set
sideways in an upright page is read again turned (:mod:`docmill.processors.ocr.sideways`).

Pages are read with ``--psm 3`` (automatic segmentation), and when the ``osd`` data is
installed and that reading is unsure (its words' mean confidence under
:data:`OSD_BELOW`), again with ``--psm 1`` (with orientation and script detection), the
surer reading kept: text turned by 90, 180 or 270 degrees (a landscape table set
sideways) is then read upright, and upright pages do not pay for the detection. Image
files are read with ``--psm 1`` directly.

A missing Tesseract or language raises :class:`OcrUnavailable` from :func:`open_tesseract`.
"""

from __future__ import annotations

import ctypes
import os
import re
import shutil
import signal
import subprocess
from dataclasses import dataclass, field, replace

from docmill.processors.ocr.capi import TSV_HEADER, ApiFailed, TessApi
from docmill.processors.ocr.capi import load as load_api

# a page is read upright first (--psm 3); only when its words' mean confidence is under
# this is it read again with orientation detection (--psm 1), the surer reading kept
OSD_BELOW = 60.0
IMAGE_TIMEOUT_S = 600.0  # one image; the engine's run.timeout_s normally ends it first
_LANGUAGES = re.compile(r"^[A-Za-z0-9_]+(\+[A-Za-z0-9_]+)*$")
_PR_SET_PDEATHSIG = 1
# Sauvola's local threshold, window 0.15 inch (Tesseract multiplies it by the dpi)
BINARISATION = ("-c", "thresholding_method=2", "-c", "thresholding_window_size=0.15")


class OcrUnavailable(Exception):
    """Tesseract, or the data for a requested language, is not installed."""


class OcrFailed(Exception):
    """Tesseract ran on one image and gave no text (exit status, timeout, signal)."""


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
    # the C API with the model loaded (this process's); None: the command line
    api: TessApi | None = field(default=None, compare=False, repr=False)
    # with psm 1: read upright first and detect orientation only when unsure (False:
    # always --psm 1, as docmill read before; bench/ocr.py's baseline)
    osd_when_unsure: bool = True

    def _read_pnm(self, image: bytes, dpi: int, output: str) -> str:
        """The reading of a PGM/PPM; for TSV, of its ink only (see :mod:`margins`)."""
        from docmill.processors.ocr import margins

        cut = margins.content(image, dpi) if output == "tsv" else None
        if cut is None:
            return self._read_whole(image, dpi, output)
        grey, box = cut
        if box is None:  # no ink: nothing for Tesseract to read
            return TSV_HEADER + margins.page_row(grey.width, grey.height) + "\n"
        tsv = self._read_whole(margins.crop_pgm(grey, box), dpi, output)
        return margins.shift_tsv(tsv, box[0], box[1], grey.width, grey.height)

    def _read_whole(self, image: bytes, dpi: int, output: str) -> str:
        if self.api is None:
            return self._run("-", ["--dpi", str(dpi)], image, output)
        try:
            pixels, width, height, channels = _pnm_pixels(image)
            return self.api.read_pixels(pixels, width, height, channels, dpi, self.psm, output)
        except (ApiFailed, ValueError) as exc:
            raise OcrFailed(f"tesseract failed: {exc}"[:300]) from exc

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
        from docmill.processors.ocr.leaders import fix_tsv
        from docmill.processors.ocr.rules import drop_rule_marks
        from docmill.processors.ocr.sideways import reread_sideways

        if self.psm == 1 and self.osd_when_unsure:  # orientation detection where unsure
            tsv = replace(self, psm=3)._read_pnm(image, dpi, "tsv")
            if tsv_confidence(tsv) < OSD_BELOW:
                turned = self._read_pnm(image, dpi, "tsv")
                if tsv_confidence(turned) > tsv_confidence(tsv):
                    tsv = turned
        else:
            tsv = self._read_pnm(image, dpi, "tsv")
        tsv = reread_sideways(tsv, image, dpi, self.read_sparse_tsv)
        tsv = drop_rule_marks(tsv, image, dpi)
        return fix_tsv(tsv, image, dpi)

    def read_sparse_tsv(self, image: bytes, dpi: int) -> str:
        """The TSV of a PGM/PPM read as sparse text (``--psm 11``: words in any order,
        no layout), as a cut-out region of a page is read again."""
        return replace(self, psm=11)._read_pnm(image, dpi, "tsv")

    def read_file(self, path: str, frame: int | None = None) -> str:
        """Text of an image file (PNG, JPEG, TIFF...); ``frame``: that page of a TIFF."""
        if self.api is not None:
            try:
                return clean_output(self.api.read_file(path, frame, self.psm).encode("utf-8"))
            except ApiFailed as exc:
                raise OcrFailed(f"tesseract failed: {exc}"[:300]) from exc
        options = [] if frame is None else ["-c", f"tessedit_page_number={frame}"]
        return self._run(os.path.abspath(path), options, None)


def tsv_confidence(tsv: str) -> float:
    """The mean confidence of a TSV's words, each weighted by its length (0: no word)."""
    total = chars = 0.0
    for row in tsv.splitlines()[1:]:
        cells = row.split("\t")
        if len(cells) >= 12 and cells[0] == "5" and cells[11].strip():
            n = len(cells[11].strip())
            try:
                total += float(cells[10]) * n
            except ValueError:
                continue
            chars += n
    return total / chars if chars else 0.0


def _pnm_pixels(image: bytes) -> tuple[memoryview, int, int, int]:
    """(pixels, width, height, channels) of a binary PGM (``P5``) or PPM (``P6``) of 8 bits
    as :func:`docmill.processors.pdf.render.pnm_bytes` writes it."""
    parts = image.split(b"\n", 3)
    if len(parts) != 4 or parts[0] not in (b"P5", b"P6") or parts[2] != b"255":
        raise ValueError("not a binary 8-bit PGM or PPM")
    width, height = (int(v) for v in parts[1].split())
    channels = 1 if parts[0] == b"P5" else 3
    start = len(image) - len(parts[3])
    return memoryview(image)[start:], width, height, channels


_LANGUAGES_OF: dict[str, set[str]] = {}  # this process's answer of `tesseract --list-langs`


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


def open_tesseract(languages: str, binary: str | None = None, api: bool = True) -> Tesseract:
    """A :class:`Tesseract` for ``languages`` ("eng", "eng+deu"); raises
    :class:`OcrUnavailable` saying what is missing. Tesseract counts as installed when
    its command is on ``PATH`` (or ``binary`` runs); it is then read through its C API
    when the library loads (``api``), else through that command."""
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
        have = _LANGUAGES_OF.get(found) or installed_languages(found)
    except (OSError, subprocess.SubprocessError) as exc:
        raise OcrUnavailable(f"tesseract cannot run: {exc}") from exc
    _LANGUAGES_OF[found] = have
    missing = [code for code in languages.split("+") if code not in have]
    if missing:
        raise OcrUnavailable(
            f"tesseract has no data for {', '.join(missing)}"
            f" (installed: {', '.join(sorted(have)) or 'none'})"
        )
    # with the osd data (Debian's tesseract-ocr-osd), --psm 1 finds each block's
    # orientation and reads text turned by 90/180/270 degrees, which --psm 3 reads as garbage
    psm = 1 if "osd" in have else 3
    return Tesseract(found, languages, psm=psm, api=load_api(languages) if api else None)
