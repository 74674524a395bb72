"""Tesseract's command line on one image: a rendered page (PGM/PPM on stdin) or a file.

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
pixels: dot leaders are counted (:mod:`docmill.processors.ocr.leaders`), marks read from a
table's vertical rules are dropped (:mod:`docmill.processors.ocr.rules`), and text set
sideways in an upright page is read again turned (:mod:`docmill.processors.ocr.sideways`).

Pages are read with ``--psm 1`` (automatic segmentation with orientation and script
detection) when the ``osd`` data is installed, else ``--psm 3``: text turned by 90, 180 or
270 degrees inside the page (a landscape table set sideways) is then read upright.

A missing Tesseract or language raises :class:`OcrUnavailable` from :func:`open_tesseract`.
"""

from __future__ import annotations

import ctypes
import os
import re
import shutil
import signal
import subprocess
from dataclasses import dataclass, replace

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
