"""Markdown for the formats other than PDF: pipe tables, and the parts that are not a
document's body in their conventional places.

The extractors build their body's Markdown as they read it (headings, paragraphs,
lists, tables in place); :func:`with_parts` then adds what a careful reader finds
around it: a slide's speaker notes under the slide, footnotes and endnotes at the end
(``[^n]: ...``), comments with their authors, headers and footers once, chart titles
and labels, image descriptions.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

# the record's "parts" kinds, in the order Markdown shows them after a page's body
PART_KINDS = (
    "headers",
    "footers",
    "footnotes",
    "endnotes",
    "comments",
    "notes",
    "charts",
    "alt_text",
)
_HEADINGS = {
    "headers": "Header",
    "footers": "Footer",
    "comments": "Comments",
    "notes": "Notes",
    "charts": "Charts",
    "alt_text": "Images",
}


def cell_text(text: str) -> str:
    """A cell's text on one line, safe inside a pipe table."""
    return " ".join(text.split()).replace("|", "\\|")


def pipe_table(rows: Sequence[Sequence[str]], header_rows: int = 0) -> str:
    """A GitHub pipe table; the first row is the header row either way (Markdown
    has no table without one)."""
    width = max((len(r) for r in rows), default=0)
    if not width:
        return ""
    lines = []
    for index, row in enumerate(rows):
        cells = [cell_text(c) for c in row] + [""] * (width - len(row))
        lines.append("| " + " | ".join(cells) + " |")
        if index == 0:
            lines.append("|" + "---|" * width)
    return "\n".join(lines)


def part(page: int, kind: str, text: str, **more: Any) -> dict[str, Any]:
    """One entry of a record's ``parts``: a piece of page (slide, sheet, chapter)
    ``page`` that is not its body, with its kind and, where known, more (``author``,
    ``label``, ``ref``)."""
    return {"page": page, "kind": kind, "text": text, **{k: v for k, v in more.items() if v}}


def _render_part(entry: dict[str, Any]) -> str:
    kind, text = str(entry["kind"]), str(entry["text"])
    if kind in ("footnotes", "endnotes"):
        label = entry.get("label") or "?"
        body = text.replace("\n", "\n    ")
        return f"[^{label}]: {body}"
    if kind == "comments":
        who = entry.get("author") or "unknown"
        where = f" ({entry['ref']})" if entry.get("ref") else ""
        return f"> **{who}**{where}: " + text.replace("\n", "\n> ")
    if kind == "alt_text":
        return f"![{cell_text(text)}]()"
    return text


def parts_markdown(entries: Iterable[dict[str, Any]]) -> str:
    """The Markdown of some ``parts`` entries, grouped by kind in :data:`PART_KINDS`
    order (footnotes and endnotes as Markdown footnotes, the rest under a heading)."""
    grouped: dict[str, list[dict[str, Any]]] = {}
    for entry in entries:
        grouped.setdefault(entry["kind"], []).append(entry)
    blocks: list[str] = []
    for kind in (*PART_KINDS, *sorted(set(grouped) - set(PART_KINDS))):
        items = grouped.get(kind)
        if not items:
            continue
        rendered = "\n\n".join(_render_part(item) for item in items)
        heading = _HEADINGS.get(kind)
        blocks.append(f"**{heading}**\n\n{rendered}" if heading else rendered)
    return "\n\n".join(blocks)


def with_parts(pages: Sequence[str], parts: Sequence[dict[str, Any]]) -> str:
    """A document's Markdown: each page's body followed by that page's parts (a
    slide's notes under the slide); footnotes, endnotes, headers and footers,
    which belong to the whole document, at its end (a header before the body)."""
    whole = ("headers", "footnotes", "endnotes", "footers")
    per_page: dict[int, list[dict[str, Any]]] = {}
    for entry in parts:
        if entry["kind"] not in whole:
            per_page.setdefault(entry["page"], []).append(entry)
    headers = [e for e in parts if e["kind"] == "headers"]
    blocks: list[str] = [parts_markdown(headers)] if headers else []
    for index, body in enumerate(pages):
        page = [body.strip()] if body.strip() else []
        if per_page.get(index):
            page.append(parts_markdown(per_page[index]))
        if page:
            blocks.append("\n\n".join(page))
    tail = [e for e in parts if e["kind"] in whole and e["kind"] != "headers"]
    if tail:
        blocks.append(parts_markdown(tail))
    separator = "\n\n---\n\n" if len(pages) > 1 else "\n\n"
    return separator.join(b for b in blocks if b).strip() + "\n"
