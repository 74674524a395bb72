"""HTML and XHTML to visible text: no script or style, blocks on their own lines.

Built on ``html.parser``, which knows the HTML named character references and never
reads a DTD, so an EPUB chapter's ``<!DOCTYPE>`` or ``&nbsp;`` is handled and an
entity bomb is inert text.
"""

from __future__ import annotations

import codecs
import re
import time
from html.parser import HTMLParser

from docmill.model import DocState, FailureCategory, ProcessOutcome
from docmill.processors.registry import ExtractRequest
from docmill.sources.filetype import HTML

MAX_BYTES = 64 << 20

_HIDDEN = frozenset({"script", "style", "noscript", "template", "svg"})
_BLOCKS = frozenset(
    [
        "address",
        "article",
        "aside",
        "blockquote",
        "br",
        "dd",
        "div",
        "dl",
        "dt",
        "figcaption",
        "figure",
        "footer",
        "form",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "header",
        "hr",
        "li",
        "main",
        "nav",
        "ol",
        "p",
        "pre",
        "section",
        "table",
        "tbody",
        "thead",
        "tfoot",
        "tr",
        "ul",
        "caption",
        "details",
        "summary",
    ]
)
_CELLS = frozenset({"td", "th"})
_SPACE = re.compile(r"[ \t\r\n\f\u00a0]+")
_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""", re.I)
_XML_ENCODING = re.compile(rb"""^<\?xml[^>]+encoding\s*=\s*["']([A-Za-z0-9_.:-]+)""")


class _Visible(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.title: list[str] = []
        self._hidden: list[str] = []  # open script, style... elements
        self._in_title = False
        self._pre = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "title":
            self._in_title = True
        elif tag in _HIDDEN:
            self._hidden.append(tag)
        elif tag == "pre":
            self._pre += 1
        if tag in _BLOCKS:
            self.parts.append("\n")
        elif tag in _CELLS:
            self.parts.append("\t")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _BLOCKS:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self._in_title = False
        elif tag in self._hidden:
            while self._hidden and self._hidden.pop() != tag:
                pass
        elif tag == "pre":
            self._pre = max(0, self._pre - 1)
        if tag in _BLOCKS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title.append(data)
        elif not self._hidden:
            self.parts.append(data if self._pre else _SPACE.sub(" ", data))


def visible_text(markup: str) -> tuple[str, str | None]:
    """(visible text, title or None) of an HTML or XHTML document."""
    parser = _Visible()
    parser.feed(markup)
    parser.close()
    lines = (line.strip(" \t") for line in "".join(parser.parts).split("\n"))
    text = "\n".join(line for line in lines if line)
    title = _SPACE.sub(" ", "".join(parser.title)).strip() or None
    return text, title


def decode_markup(data: bytes) -> tuple[str, str]:
    """(text, encoding): a BOM, else the declared charset, else UTF-8, else cp1252."""
    for bom, name in (
        (codecs.BOM_UTF8, "utf-8"),
        (codecs.BOM_UTF16_LE, "utf-16-le"),
        (codecs.BOM_UTF16_BE, "utf-16-be"),
    ):
        if data.startswith(bom):
            return data[len(bom) :].decode(name, errors="replace"), name
    head = data[:2048]
    found = _XML_ENCODING.search(head) or _CHARSET.search(head)
    candidates = [found.group(1).decode("ascii").lower()] if found else []
    for name in [*candidates, "utf-8"]:
        try:
            return data.decode(name), codecs.lookup(name).name
        except (LookupError, UnicodeDecodeError):
            continue
    return data.decode("cp1252", errors="replace"), "cp1252"


def extract_html(path: str, request: ExtractRequest) -> ProcessOutcome:
    """Visible text as one entry; the ``<title>`` in metadata."""
    started = time.perf_counter()
    with open(path, "rb") as handle:
        data = handle.read(MAX_BYTES + 1)
    if len(data) > MAX_BYTES:
        return ProcessOutcome.failure(
            FailureCategory.TOO_LARGE, f"HTML over {MAX_BYTES:,} bytes is not processed"
        )
    markup, encoding = decode_markup(data)
    text, title = visible_text(markup)
    return ProcessOutcome(
        status=DocState.DONE,
        mime=HTML,
        pages=1,
        text=[text],
        metadata={"title": title, "encoding": encoding},
        parse_s=time.perf_counter() - started,
    )
