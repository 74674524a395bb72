"""Charts in Office documents (DrawingML ``c:chartSpace`` parts): what a reader sees
of one: its title, axis titles, and the data it plots as a table (categories down,
one column per series, values as their number format shows them).

A chart is reached from the part that shows it: a slide or a Word document names its
chart part by relationship; a worksheet through its drawing part.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

from docmill.processors.formats.markdown_blocks import pipe_table
from docmill.processors.formats.numfmt import format_number, general
from docmill.processors.formats.package import FormatError, Package

C = "{http://schemas.openxmlformats.org/drawingml/2006/chart}"
A = "{http://schemas.openxmlformats.org/drawingml/2006/main}"
CHART_REL = "http://schemas.openxmlformats.org/officeDocument/2006/relationships/chart"
DRAWING_REL = "http://schemas.openxmlformats.org/officeDocument/2006/relationships/drawing"
_AXES = (f"{C}catAx", f"{C}valAx", f"{C}dateAx", f"{C}serAx")
# cached points: strings, numbers, literals, and multi-level categories (one c:lvl of
# points a level, the innermost first)
_CACHES = (f"{C}strCache", f"{C}numCache", f"{C}strLit", f"{C}numLit", f"{C}multiLvlStrCache")


@dataclass(slots=True)
class Chart:
    title: str | None
    axis_titles: list[str] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)  # header row, then a row a category

    def text(self) -> str:
        lines = [self.title] if self.title else []
        lines += self.axis_titles
        lines += ["\t".join(row).rstrip("\t") for row in self.rows]
        return "\n".join(line for line in lines if line)

    def markdown(self) -> str:
        blocks = [f"Chart: {self.title}" if self.title else "Chart"]
        if self.axis_titles:
            blocks.append("Axes: " + "; ".join(self.axis_titles))
        if self.rows:
            blocks.append(pipe_table(self.rows, 1))
        return "\n\n".join(blocks)


def _rich(element: ET.Element | None) -> str | None:
    """A title's text: rich runs, or the cached string a formula gave it."""
    if element is None:
        return None
    runs = [t.text or "" for t in element.iter(f"{A}t")]
    if not runs:
        runs = [v.text or "" for v in element.iter(f"{C}v")]
    text = " ".join("".join(runs).split())
    return text or None


def _points(ref: ET.Element | None) -> dict[int, str]:
    """Cached points of a category or value reference: index -> shown text."""
    out: dict[int, str] = {}
    if ref is None:
        return out
    for cache in ref.iter():
        if cache.tag not in _CACHES:
            continue
        code = cache.findtext(f"{C}formatCode") or "General"
        numeric = cache.tag in (f"{C}numCache", f"{C}numLit")
        for pt in cache.iter(f"{C}pt"):
            try:
                index = int(pt.get("idx", "0"))
            except ValueError:
                continue
            raw = pt.findtext(f"{C}v") or ""
            if numeric:
                try:
                    number = float(raw)
                    raw = format_number(number, pt.get("formatCode") or code).strip()
                except ValueError:
                    pass
            if index not in out:
                out[index] = raw
            else:  # multi-level categories: the label, then its groups' (outwards)
                out[index] = f"{out[index]} / {raw}" if raw else out[index]
    return out


def read_chart(root: ET.Element) -> Chart:
    chart = root.find(f"{C}chart")
    if chart is None:
        return Chart(None)
    title = _rich(chart.find(f"{C}title"))
    plot = chart.find(f"{C}plotArea")
    axes: list[str] = []
    names: list[str] = []
    columns: list[dict[int, str]] = []
    categories: dict[int, str] = {}
    if plot is not None:
        for axis in plot:
            if axis.tag in _AXES:
                found = _rich(axis.find(f"{C}title"))
                if found:
                    axes.append(found)
        for series in plot.iter(f"{C}ser"):
            names.append(_rich(series.find(f"{C}tx")) or f"Series {len(names) + 1}")
            for cat_tag in (f"{C}cat", f"{C}xVal"):
                for index, label in _points(series.find(cat_tag)).items():
                    categories.setdefault(index, label)
            values: dict[int, str] = {}
            for val_tag in (f"{C}val", f"{C}yVal", f"{C}bubbleSize"):
                for index, shown in _points(series.find(val_tag)).items():
                    values.setdefault(index, shown)
            columns.append(values)
    if not title and len(names) == 1 and chart.find(f"{C}autoTitleDeleted") is None:
        title = names[0]  # a one-series chart shows its series' name as its title
    rows: list[list[str]] = []
    if names:
        indexes = sorted(set(categories).union(*[set(c) for c in columns]))
        rows.append(["Category" if categories else "", *names])
        for index in indexes:
            label = categories.get(index, general(index + 1) if not categories else "")
            rows.append([label, *[column.get(index, "") for column in columns]])
    return Chart(title, axes, rows)


def charts_of(pkg: Package, part: str, rels: dict[str, tuple[str, str]], rel_ids: list[str]) -> list[Chart]:
    """The charts that ``part`` shows through relationships ``rel_ids`` (in its
    order); a missing or unreadable chart part is left out."""
    out: list[Chart] = []
    for rel_id in rel_ids:
        kind, target = rels.get(rel_id, ("", ""))
        if kind != CHART_REL or not pkg.has(target):
            continue
        try:
            out.append(read_chart(pkg.xml(target)))
        except FormatError:
            continue
    return out


def chart_ids(element: ET.Element) -> list[str]:
    """Relationship ids of the charts an element (a slide, a body, a drawing) shows,
    in document order."""
    rid = "{http://schemas.openxmlformats.org/officeDocument/2006/relationships}id"
    return [c.get(rid, "") for c in element.iter(f"{C}chart") if c.get(rid)]
