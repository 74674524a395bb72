"""HTML and XHTML to visible text: no script or style, blocks on their own lines.

One reader (:class:`_Reader`) hears elements and character data and keeps the visible
text, the ``<title>``, images' alt text and, when asked, Markdown. Two parsers feed it:

- expat (C), for well-formed XHTML such as EPUB chapters: several times faster than
  ``html.parser``. It never reads a DTD; a named reference such as ``&nbsp;`` that an
  unread external DTD would define comes back as a skipped entity and is looked up in
  the HTML table; a document that declares entities of its own, or is not well-formed,
  goes to ``html.parser`` instead.
- ``html.parser``, which knows the HTML named character references and never reads a
  DTD, so an entity bomb is inert text.

Inline SVG is read (its ``<text>`` elements are lines), except its title, description
and metadata.
"""

from __future__ import annotations

import codecs
import re
import time
from html.entities import html5
from html.parser import HTMLParser
from typing import Any
from xml.parsers import expat

from docmill.model import DocState, FailureCategory, ProcessOutcome
from docmill.processors.formats.markdown_blocks import part, pipe_table, with_parts
from docmill.processors.registry import ExtractRequest
from docmill.sources.filetype import HTML

MAX_BYTES = 64 << 20

_HIDDEN = frozenset({"script", "style", "noscript", "template"})
_SVG_HIDDEN = frozenset({"title", "desc", "metadata", "script", "style"})
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
        "text",  # SVG
    ]
)
_CELLS = frozenset({"td", "th"})
_HEADINGS = {"h1": "# ", "h2": "## ", "h3": "### ", "h4": "#### ", "h5": "##### ", "h6": "###### "}
_SPACE = re.compile(r"[ \t\r\n\f\u00a0]+")
_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""", re.I)
_XML_ENCODING = re.compile(rb"""^<\?xml[^>]+encoding\s*=\s*["']([A-Za-z0-9_.:-]+)""")


class _Table:
    """A table being read for Markdown: rows of cell texts."""

    def __init__(self) -> None:
        self.rows: list[list[str]] = []
        self.cell: list[str] | None = None
        self.head = False


class _Reader:
    """Hears a document's elements (local names, lower case) and text."""

    def __init__(self, markdown: bool = False) -> None:
        self.parts: list[str] = []
        self.title: list[str] = []
        self.alts: list[str] = []
        self._hidden = 0  # depth inside script, style... elements
        self._hidden_tags: list[str] = []
        self._in_title = False
        self._pre = 0
        self._svg = 0
        self.markdown = markdown
        self.md: list[str] = []
        self._tables: list[_Table] = []
        self._lists: list[list[int]] = []  # per open list: [ordered (0/1), next number]
        self._names: dict[str, str] = {}

    # -- events -----------------------------------------------------------------------

    def start(self, name: str, attrs: dict[str, str]) -> None:
        # expat gives "p", "svg:text", "epub:switch"...: the local name, lower-case
        tag = self._names.get(name)
        if tag is None:
            tag = self._names[name] = name.rpartition(":")[2].lower()
        if self._hidden:
            if tag in _HIDDEN or (self._svg and tag in _SVG_HIDDEN):
                self._hidden_tags.append(tag)
                self._hidden += 1
            return
        if tag == "svg":
            self._svg += 1
        elif tag == "title" and not self._svg:
            self._in_title = True
            return
        if tag in _HIDDEN or (self._svg and tag in _SVG_HIDDEN):
            self._hidden_tags.append(tag)
            self._hidden += 1
            return
        if tag == "pre":
            self._pre += 1
        if tag in _BLOCKS:
            self.parts.append("\n")
        elif tag in _CELLS:
            self.parts.append("\t")
        if tag == "img":
            alt = _SPACE.sub(" ", attrs.get("alt") or "").strip()
            if alt:
                self.alts.append(alt)
                if self.markdown:
                    self._md(f"![{alt.replace(']', ' ')}]()")
        elif self.markdown:
            self._md_start(tag)

    def end(self, name: str) -> None:
        tag = self._names.get(name)
        if tag is None:
            tag = self._names[name] = name.rpartition(":")[2].lower()
        if self._hidden:
            if tag in self._hidden_tags:
                while self._hidden_tags:
                    self._hidden -= 1
                    if self._hidden_tags.pop() == tag:
                        break
            return
        if tag == "title" and self._in_title:
            self._in_title = False
            return
        if tag == "svg":
            self._svg = max(0, self._svg - 1)
        elif tag == "pre":
            self._pre = max(0, self._pre - 1)
        if tag in _BLOCKS:
            self.parts.append("\n")
        if self.markdown:
            self._md_end(tag)

    def data(self, data: str) -> None:
        if self._in_title:
            self.title.append(data)
        elif not self._hidden:
            if not self._pre and data.isspace():
                data = " "
            elif not self._pre and (
                "  " in data or "\n" in data or "\t" in data or "\r" in data
                or "\xa0" in data or "\f" in data
            ):
                data = _SPACE.sub(" ", data)
            self.parts.append(data)
            if self.markdown:
                self._md(data)


    # -- Markdown ---------------------------------------------------------------------

    def _md(self, text: str) -> None:
        table = self._tables[-1] if self._tables else None
        if table is not None:
            if table.cell is not None:
                table.cell.append(text)
        else:
            self.md.append(text)

    def _md_start(self, tag: str) -> None:
        if tag == "table":
            self._tables.append(_Table())
            return
        table = self._tables[-1] if self._tables else None
        if table is not None:
            if tag == "tr":
                table.rows.append([])
            elif tag in _CELLS:
                if not table.rows:
                    table.rows.append([])
                table.cell = []
                table.head = table.head or (tag == "th" and len(table.rows) == 1)
            elif tag in _BLOCKS and table.cell is not None:
                table.cell.append(" ")
            return
        if tag in _HEADINGS:
            self.md.append("\n\n" + _HEADINGS[tag])
        elif tag in ("ul", "ol"):
            self._lists.append([int(tag == "ol"), 1])
        elif tag == "li":
            indent = "  " * max(0, len(self._lists) - 1)
            if self._lists and self._lists[-1][0]:
                self.md.append(f"\n{indent}{self._lists[-1][1]}. ")
                self._lists[-1][1] += 1
            else:
                self.md.append(f"\n{indent}- ")
        elif tag == "pre":
            self.md.append("\n\n```\n")
        elif tag == "br":
            self.md.append("\n" if self._lists else "  \n")
        elif tag == "hr":
            self.md.append("\n\n---\n\n")
        elif tag in _BLOCKS:
            self.md.append("\n\n")

    def _md_end(self, tag: str) -> None:
        if tag == "table" and self._tables:
            table = self._tables.pop()
            self._close_cell(table)
            rows = [r for r in table.rows if any(c.strip() for c in r)]
            rendered = pipe_table(rows, 1 if table.head else 0) if rows else ""
            if self._tables:  # a table in a table's cell: its text, flattened
                self._md(" ".join(c for r in rows for c in r))
            elif rendered:
                self.md.append(f"\n\n{rendered}\n\n")
            return
        if self._tables:
            if tag in _CELLS:
                self._close_cell(self._tables[-1])
            return
        if tag in ("ul", "ol") and self._lists:
            self._lists.pop()
            self.md.append("\n\n")
        elif tag == "pre":
            self.md.append("\n```\n\n")
        elif tag in _BLOCKS and tag != "li":
            self.md.append("\n\n")

    @staticmethod
    def _close_cell(table: _Table) -> None:
        if table.cell is not None and table.rows:
            table.rows[-1].append(" ".join("".join(table.cell).split()))
        table.cell = None

    # -- results ----------------------------------------------------------------------

    def text(self) -> str:
        lines = (line.strip(" \t") for line in "".join(self.parts).split("\n"))
        return "\n".join(line for line in lines if line)

    def title_text(self) -> str | None:
        return _SPACE.sub(" ", "".join(self.title)).strip() or None

    def markdown_text(self) -> str:
        out: list[str] = []
        blank = 0
        for line in "".join(self.md).split("\n"):
            if line.strip():
                out.append(line.rstrip() if not line.endswith("  ") else line)
                blank = 0
            elif out and not blank:
                out.append("")
                blank = 1
        return "\n".join(out).strip()


class _HtmlFeeder(HTMLParser):
    def __init__(self, reader: _Reader) -> None:
        super().__init__(convert_charrefs=True)
        self.reader = reader

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.reader.start(tag, {k: v or "" for k, v in attrs} if tag == "img" else {})

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag not in _VOID:
            self.reader.end(tag)

    def handle_endtag(self, tag: str) -> None:
        self.reader.end(tag)

    def handle_data(self, data: str) -> None:
        self.reader.data(data)


_VOID = frozenset({"br", "hr", "img", "meta", "link", "input", "area", "base", "col", "wbr"})


class _EntityDeclared(Exception):
    """The document declares entities of its own: read by ``html.parser`` instead."""


def _read_xml(data: bytes, reader: _Reader) -> None:
    """Feed ``reader`` from well-formed XHTML through expat (ExpatError if it is not)."""
    parser = expat.ParserCreate()
    parser.buffer_text = True
    parser.buffer_size = 1 << 16
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    def on_skipped(name: str, is_parameter: int) -> None:
        if not is_parameter:
            reader.data(html5.get(name + ";", f"&{name};"))

    def on_entity(*_args: Any) -> None:
        raise _EntityDeclared

    parser.StartElementHandler = reader.start
    parser.EndElementHandler = reader.end
    parser.CharacterDataHandler = reader.data
    parser.SkippedEntityHandler = on_skipped
    parser.EntityDeclHandler = on_entity
    parser.Parse(data, True)


def read_markup(data: bytes, markdown: bool = False) -> _Reader:
    """A reader that has heard the (X)HTML document ``data``: expat first for what
    looks like XML, ``html.parser`` on the decoded text otherwise."""
    head = data[:512].lstrip()
    if head.startswith((b"<?xml", codecs.BOM_UTF8 + b"<?xml")) or b"xmlns" in data[:4096]:
        reader = _Reader(markdown)
        try:
            _read_xml(data, reader)
            return reader
        except (expat.ExpatError, _EntityDeclared, ValueError, LookupError):
            pass
    reader = _Reader(markdown)
    feeder = _HtmlFeeder(reader)
    feeder.feed(decode_markup(data)[0])
    feeder.close()
    return reader


def visible_text(markup: str) -> tuple[str, str | None]:
    """(visible text, title or None) of an HTML or XHTML document."""
    reader = _Reader()
    feeder = _HtmlFeeder(reader)
    feeder.feed(markup)
    feeder.close()
    return reader.text(), reader.title_text()


def decode_markup(data: bytes) -> tuple[str, str]:
    """(text, encoding): a BOM, else the declared charset, else UTF-8, else cp1252."""
    for bom, name in (
        (codecs.BOM_UTF8, "utf-8"),
        (codecs.BOM_UTF32_LE, "utf-32-le"),  # before UTF-16 LE, whose BOM it starts with
        (codecs.BOM_UTF32_BE, "utf-32-be"),
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
    """Visible text as one entry; the ``<title>`` in metadata; images' alt text in
    ``parts``; Markdown when asked for."""
    started = time.perf_counter()
    with open(path, "rb") as handle:
        data = handle.read(MAX_BYTES + 1)
    if len(data) > MAX_BYTES:
        return ProcessOutcome.failure(
            FailureCategory.TOO_LARGE, f"HTML over {MAX_BYTES:,} bytes is not processed"
        )
    markup, encoding = decode_markup(data)
    reader = _Reader(request.options.markdown)
    feeder = _HtmlFeeder(reader)
    feeder.feed(markup)
    feeder.close()
    parts = [part(0, "alt_text", alt) for alt in reader.alts]
    extra: dict[str, Any] = {"parts": parts} if parts else {}
    if request.options.markdown:
        extra["markdown"] = with_parts([reader.markdown_text()], parts)
    return ProcessOutcome(
        status=DocState.DONE,
        mime=HTML,
        pages=1,
        text=[reader.text()],
        metadata={"title": reader.title_text(), "encoding": encoding},
        parse_s=time.perf_counter() - started,
        extra=extra,
    )
