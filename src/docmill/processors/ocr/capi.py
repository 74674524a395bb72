"""Tesseract through its C API (``libtesseract.so.5``, Debian's tesseract-ocr), with ctypes.

The command line costs ~0.3-0.5 s of a core per page before it reads a pixel: a new
process, the language model loaded again. Here the model is loaded once per worker
process (a :class:`TessApi` is kept per language set for the process's life), each
page's pixels are handed over in memory, and its TSV is built from Tesseract's
left-to-right result iterator (GetTSVText's own walk is quadratic in the page's words).
Nothing to compile and no new dependency: the library comes with the tesseract package
the CLI comes from. Tesseract still runs inside a worker the engine kills at
``run.timeout_s`` or over ``run.memory_mb`` (the model counts in the worker's memory
now, ~100-200 MB for English); a crash in it costs its worker, like one in PDFium.

OpenMP is held to one thread (``OMP_THREAD_LIMIT=1`` set before the library loads,
whatever the worker inherited: its threads are slower, not faster, when workers already
use every core). Image files are read by Leptonica (``liblept.so.5``, Tesseract's own
image library), one TIFF frame at a time. :func:`load` returns None where either library
is missing; the caller then runs the command line.
"""

from __future__ import annotations

import atexit
import ctypes
import ctypes.util
import os
from typing import Any

TSV_HEADER = "level\tpage_num\tblock_num\tpar_num\tline_num\tword_num\tleft\ttop\twidth\theight\tconf\ttext\n"
# (name, value) set once per handle: Sauvola's local threshold, a window of 0.15 inch
VARIABLES = (("thresholding_method", "2"), ("thresholding_window_size", "0.15"))

# Tesseract's left-to-right result iterator, by the C++ names libtesseract 5 exports
# (Itanium ABI, ``this`` first): GetTSVText walks the page with the reading-order
# iterator, which goes back to the page's first word at every word (quadratic: ~8 % of a
# dense page's CPU); the left-to-right one steps from word to word
_LTR = {
    "iterator": "_ZN9tesseract11TessBaseAPI14GetLTRIteratorEv",
    "next": "_ZN9tesseract12PageIterator4NextENS_17PageIteratorLevelE",
    "empty": "_ZNK9tesseract12PageIterator5EmptyENS_17PageIteratorLevelE",
    "beginning": "_ZNK9tesseract12PageIterator15IsAtBeginningOfENS_17PageIteratorLevelE",
    "text": "_ZNK9tesseract17LTRResultIterator11GetUTF8TextENS_17PageIteratorLevelE",
    "confidence": "_ZNK9tesseract17LTRResultIterator10ConfidenceENS_17PageIteratorLevelE",
    "direction": "_ZNK9tesseract17LTRResultIterator13WordDirectionEv",
}
RIL_BLOCK, RIL_PARA, RIL_TEXTLINE, RIL_WORD = 0, 1, 2, 3  # tesseract::PageIteratorLevel
# tesseract::StrongScriptDirection of a word that the reading-order iterator would move:
# right to left, mixed (Arabic, Hebrew...); the page's TSV then comes from GetTSVText
_NOT_LTR = (2, 3)

_LIBRARIES: dict[str, Any] = {}  # this process's libtesseract and liblept, loaded once
_APIS: dict[str, TessApi] = {}  # this process's handles, one per language set


class ApiFailed(Exception):
    """Tesseract's library refused an image or a language (the caller's OcrFailed)."""


def _library() -> tuple[Any, Any] | None:
    if "tess" in _LIBRARIES:
        return _LIBRARIES["tess"]  # type: ignore[no-any-return]
    found: tuple[Any, Any] | None = None
    # read by libgomp when it loads; set, not defaulted: a limit the worker inherits (4
    # in a user's shell) had Tesseract run 4 threads for 1.85x the CPU of a page
    os.environ["OMP_THREAD_LIMIT"] = "1"
    try:
        tess = ctypes.CDLL(ctypes.util.find_library("tesseract") or "libtesseract.so.5")
        lept = ctypes.CDLL(ctypes.util.find_library("lept") or "liblept.so.5")
        _declare(tess, lept)
        found = (tess, lept)
    except (OSError, AttributeError):
        found = None
    _LIBRARIES["tess"] = found
    return found


def _declare(tess: Any, lept: Any) -> None:
    p, i, c = ctypes.c_void_p, ctypes.c_int, ctypes.c_char_p
    sigs: dict[str, tuple[Any, list[Any]]] = {
        "TessBaseAPICreate": (p, []),
        "TessBaseAPIDelete": (None, [p]),
        "TessBaseAPIEnd": (None, [p]),
        "TessBaseAPIInit3": (i, [p, c, c]),
        "TessBaseAPISetVariable": (i, [p, c, c]),
        "TessBaseAPISetPageSegMode": (None, [p, i]),
        "TessBaseAPISetImage": (None, [p, p, i, i, i, i]),
        "TessBaseAPISetImage2": (None, [p, p]),
        "TessBaseAPISetSourceResolution": (None, [p, i]),
        "TessBaseAPIRecognize": (i, [p, p]),
        "TessBaseAPIGetTsvText": (p, [p, i]),
        "TessBaseAPIGetUTF8Text": (p, [p]),
        "TessBaseAPIClear": (None, [p]),
        "TessDeleteText": (None, [p]),
        "TessPageIteratorDelete": (None, [p]),
        "TessPageIteratorBoundingBox": (i, [p, i, *[ctypes.POINTER(i)] * 4]),
    }
    for name, (restype, argtypes) in sigs.items():
        fn = getattr(tess, name)
        fn.restype, fn.argtypes = restype, argtypes
    ltr: dict[str, tuple[Any, list[Any]]] = {
        _LTR["iterator"]: (p, [p]),
        _LTR["next"]: (ctypes.c_bool, [p, i]),
        _LTR["empty"]: (ctypes.c_bool, [p, i]),
        _LTR["beginning"]: (ctypes.c_bool, [p, i]),
        _LTR["text"]: (p, [p, i]),
        _LTR["confidence"]: (ctypes.c_float, [p, i]),
        _LTR["direction"]: (i, [p]),
    }
    try:  # the left-to-right iterator, called by its C++ names (see words_tsv)
        for name, (restype, argtypes) in ltr.items():
            fn = getattr(tess, name)
            fn.restype, fn.argtypes = restype, argtypes
        tess.ltr = True
    except AttributeError:
        tess.ltr = False
    lept.pixRead.restype, lept.pixRead.argtypes = p, [c]
    lept.pixReadTiff.restype, lept.pixReadTiff.argtypes = p, [c, i]
    lept.pixDestroy.restype, lept.pixDestroy.argtypes = None, [ctypes.POINTER(p)]


class TessApi:
    """One ``TessBaseAPI`` with its languages loaded; not shared between threads."""

    def __init__(self, tess: Any, lept: Any, handle: int, languages: str) -> None:
        self._tess, self._lept, self._handle = tess, lept, handle
        self.languages = languages
        self._size = (0, 0)  # the image's, for the TSV's page row

    def _text(self, pointer: int | None) -> str:
        if not pointer:
            return ""
        try:
            return ctypes.string_at(pointer).decode("utf-8", "replace")
        finally:
            self._tess.TessDeleteText(pointer)

    def _recognise(self, psm: int, output: str) -> str:
        tess, handle = self._tess, self._handle
        tess.TessBaseAPISetPageSegMode(handle, psm)
        try:
            if tess.TessBaseAPIRecognize(handle, None) != 0:
                raise ApiFailed("tesseract could not recognise the image")
            if output == "tsv" and getattr(tess, "ltr", False):
                rows = self._words_tsv()
                if rows is not None:
                    return TSV_HEADER + rows
            if output == "tsv":
                return TSV_HEADER + self._text(tess.TessBaseAPIGetTsvText(handle, 0))
            return self._text(tess.TessBaseAPIGetUTF8Text(handle))
        finally:
            tess.TessBaseAPIClear(handle)

    def _words_tsv(self) -> str | None:
        """The rows of ``GetTSVText`` for the page just recognised, walked with the
        left-to-right iterator (the same rows for left-to-right scripts, in linear time);
        None on a page with a word set right to left, whose order only GetTSVText has."""
        tess, handle = self._tess, self._handle
        width, height = self._size
        rows = [f"1\t1\t0\t0\t0\t0\t0\t0\t{width}\t{height}\t-1\t\n"]
        it = getattr(tess, _LTR["iterator"])(handle)
        if not it:
            return rows[0]
        nxt, empty = getattr(tess, _LTR["next"]), getattr(tess, _LTR["empty"])
        beginning, text = getattr(tess, _LTR["beginning"]), getattr(tess, _LTR["text"])
        confidence, bbox = getattr(tess, _LTR["confidence"]), tess.TessPageIteratorBoundingBox
        direction = getattr(tess, _LTR["direction"])
        box = [ctypes.c_int() for _ in range(4)]
        refs = [ctypes.byref(b) for b in box]

        def at(level: int) -> str:
            bbox(it, level, *refs)
            left, top, right, bottom = (b.value for b in box)
            return f"{left}\t{top}\t{right - left}\t{bottom - top}"

        block = par = line = word = 0
        try:
            while not empty(it, RIL_BLOCK):
                if empty(it, RIL_WORD):
                    nxt(it, RIL_WORD)
                    continue
                if direction(it) in _NOT_LTR:
                    return None
                if beginning(it, RIL_BLOCK):
                    block, par, line, word = block + 1, 0, 0, 0
                    rows.append(f"2\t1\t{block}\t0\t0\t0\t{at(RIL_BLOCK)}\t-1\t\n")
                if beginning(it, RIL_PARA):
                    par, line, word = par + 1, 0, 0
                    rows.append(f"3\t1\t{block}\t{par}\t0\t0\t{at(RIL_PARA)}\t-1\t\n")
                if beginning(it, RIL_TEXTLINE):
                    line, word = line + 1, 0
                    rows.append(f"4\t1\t{block}\t{par}\t{line}\t0\t{at(RIL_TEXTLINE)}\t-1\t\n")
                word += 1
                rows.append(
                    f"5\t1\t{block}\t{par}\t{line}\t{word}\t{at(RIL_WORD)}"
                    f"\t{confidence(it, RIL_WORD):f}\t{self._text(text(it, RIL_WORD))}\n"
                )
                nxt(it, RIL_WORD)
        finally:
            tess.TessPageIteratorDelete(it)
        return "".join(rows)

    def read_pixels(
        self, pixels: bytes | memoryview, width: int, height: int, channels: int, dpi: int,
        psm: int, output: str = "tsv",
    ) -> str:
        """Tesseract's reading of a bitmap (rows of ``width * channels`` bytes, grey or
        RGB), as TSV (with the command line's header row) or text."""
        if width <= 0 or height <= 0 or len(pixels) < width * height * channels:
            raise ApiFailed(f"not an image of {width} x {height} x {channels} bytes")
        data = bytes(pixels)  # kept alive while Tesseract reads it
        self._tess.TessBaseAPISetImage(self._handle, data, width, height, channels, width * channels)
        self._tess.TessBaseAPISetSourceResolution(self._handle, dpi)
        self._size = (width, height)
        return self._recognise(psm, output)

    def read_file(self, path: str, frame: int | None, psm: int) -> str:
        """The text of an image file (a TIFF's ``frame``), read by Leptonica."""
        name = os.fsencode(path)
        pix = self._lept.pixReadTiff(name, frame) if frame is not None else self._lept.pixRead(name)
        if not pix:
            raise ApiFailed("leptonica cannot read the image")
        try:
            self._tess.TessBaseAPISetImage2(self._handle, pix)
            return self._recognise(psm, "txt")
        finally:
            box = ctypes.c_void_p(pix)
            self._lept.pixDestroy(ctypes.byref(box))


def load(languages: str) -> TessApi | None:
    """This process's :class:`TessApi` for ``languages`` (created and its model loaded
    the first time), or None when the libraries or the language data are missing."""
    if languages in _APIS:
        return _APIS[languages]
    libraries = _library()
    if libraries is None:
        return None
    tess, lept = libraries
    handle = tess.TessBaseAPICreate()
    if not handle:
        return None
    if tess.TessBaseAPIInit3(handle, None, languages.encode("ascii")) != 0:
        tess.TessBaseAPIDelete(handle)
        return None
    for name, value in VARIABLES:
        tess.TessBaseAPISetVariable(handle, name.encode(), value.encode())
    api = TessApi(tess, lept, handle, languages)
    if not _APIS:
        atexit.register(_release)
    _APIS[languages] = api
    return api


def _release() -> None:
    """Frees this process's handles at a normal exit (Tesseract otherwise reports its
    cached models as leaked); a worker that ends by ``os._exit`` frees nothing."""
    libraries = _LIBRARIES.get("tess")
    if not libraries:
        return
    tess = libraries[0]
    for api in _APIS.values():
        tess.TessBaseAPIEnd(api._handle)
        tess.TessBaseAPIDelete(api._handle)
    _APIS.clear()
