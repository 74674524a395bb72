"""The shape of a table in a record (record key ``tables``), whatever format it came from.

One entry per table, a JSON object::

    {
      "page": 0,                      # 0-based page (PDF), sheet (XLSX), 0 (DOCX)
      "bbox": [x0, y0, x1, y1],       # PDF points, top-left origin; null where no page
      "rows": [["Region", "Population", ""], ["", "2010", "2020"], ...],
      "cells": [{"row": 0, "col": 0, "rowspan": 2, "colspan": 1, "text": "Region"}, ...],
      "header_rows": 2,               # leading rows that are column headings
      "continued_from": 3             # only on a table that continues one: see below
    }

``cells`` is the structure: every grid position ``(row, col)`` lies in exactly one
cell, listed row by row, a spanning cell once with its ``rowspan``/``colspan`` (empty
cells are listed too, with ``text`` ""). ``rows`` is the same table as a plain grid, for
readers that want one: a cell's text stands at its top-left position and the other
positions it spans are "" (nothing is repeated). Both always describe the same table;
:func:`table_entry` builds both from cells, :func:`entry_cells` reads the cells back
(from ``rows`` when an older record has none).

``continued_from`` (PDF): the table continues the **last** table of that page (the page
before, same columns); the parts stay one entry per page, each with its own ``bbox``,
and exports join them (:func:`joined_parts`).

Pure values and functions only: formats build entries here (PDF tables, DOCX and XLSX
merged cells) so that every record's tables read alike.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Cell:
    """One cell of a table: its top-left grid position, its span, its text."""

    row: int
    col: int
    rowspan: int = 1
    colspan: int = 1
    text: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "row": self.row,
            "col": self.col,
            "rowspan": self.rowspan,
            "colspan": self.colspan,
            "text": self.text,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Cell:
        return cls(
            int(data["row"]),
            int(data["col"]),
            int(data.get("rowspan", 1) or 1),
            int(data.get("colspan", 1) or 1),
            str(data.get("text") or ""),
        )


def grid_size(cells: Iterable[Cell]) -> tuple[int, int]:
    """(rows, columns) of the grid the cells cover."""
    rows = cols = 0
    for c in cells:
        rows = max(rows, c.row + c.rowspan)
        cols = max(cols, c.col + c.colspan)
    return rows, cols


def complete_cells(cells: Iterable[Cell], nrows: int = 0, ncols: int = 0) -> list[Cell]:
    """``cells`` row by row, with an empty 1x1 cell at every position no cell covers, on
    a grid of at least ``nrows`` x ``ncols``. Raises ValueError when two cells overlap
    or a cell has a negative position or an empty span."""
    given = list(cells)
    rows, cols = grid_size(given)
    rows, cols = max(rows, nrows), max(cols, ncols)
    owner: dict[tuple[int, int], Cell] = {}
    for c in given:
        if c.row < 0 or c.col < 0 or c.rowspan < 1 or c.colspan < 1:
            raise ValueError(f"bad cell {c}")
        for r in range(c.row, c.row + c.rowspan):
            for k in range(c.col, c.col + c.colspan):
                if (r, k) in owner:
                    raise ValueError(f"cells overlap at ({r}, {k}): {owner[(r, k)]} and {c}")
                owner[(r, k)] = c
    out = list(given)
    out += [Cell(r, k) for r in range(rows) for k in range(cols) if (r, k) not in owner]
    out.sort(key=lambda c: (c.row, c.col))
    return out


def rows_of(cells: Iterable[Cell], nrows: int = 0, ncols: int = 0) -> list[list[str]]:
    """The plain grid: each cell's text at its top-left position, "" elsewhere."""
    given = list(cells)
    rows, cols = grid_size(given)
    grid = [[""] * max(cols, ncols) for _ in range(max(rows, nrows))]
    for c in given:
        grid[c.row][c.col] = c.text
    return grid


def filled_rows(cells: Iterable[Cell], nrows: int = 0, ncols: int = 0) -> list[list[str]]:
    """The grid with a spanning cell's text repeated in every position it covers (what
    a CSV file gets: each row and column reads complete)."""
    given = list(cells)
    rows, cols = grid_size(given)
    grid = [[""] * max(cols, ncols) for _ in range(max(rows, nrows))]
    for c in given:
        for r in range(c.row, c.row + c.rowspan):
            for k in range(c.col, c.col + c.colspan):
                grid[r][k] = c.text
    return grid


def cells_of(rows: Sequence[Sequence[Any]]) -> list[Cell]:
    """A grid without spans as cells (one 1x1 cell a position; ragged rows padded)."""
    width = max((len(r) for r in rows), default=0)
    return [
        Cell(r, k, 1, 1, str(row[k] or "") if k < len(row) else "")
        for r, row in enumerate(rows)
        for k in range(width)
    ]


def table_entry(
    page: int,
    cells: Iterable[Cell],
    *,
    bbox: Sequence[float] | None = None,
    header_rows: int = 0,
    continued_from: int | None = None,
    nrows: int = 0,
    ncols: int = 0,
) -> dict[str, Any]:
    """A record's table entry (see the module's docstring) from its cells."""
    full = complete_cells(cells, nrows, ncols)
    entry: dict[str, Any] = {
        "page": page,
        "bbox": None if bbox is None else [round(float(v), 2) for v in bbox],
        "rows": rows_of(full),
        "cells": [c.to_dict() for c in full],
        "header_rows": header_rows,
    }
    if continued_from is not None:
        entry["continued_from"] = continued_from
    return entry


def entry_cells(entry: dict[str, Any]) -> list[Cell]:
    """The cells of a record's table entry; from its ``rows`` when it has no ``cells``."""
    raw = entry.get("cells")
    if isinstance(raw, list):
        return [Cell.from_dict(c) for c in raw if isinstance(c, dict)]
    return cells_of(entry.get("rows") or [])


def joined_parts(tables: Sequence[dict[str, Any]]) -> list[list[int]]:
    """Indexes of ``tables`` grouped into whole tables: a table with ``continued_from``
    joins the group whose last part is the last table of that page. In record order."""
    groups: list[list[int]] = []
    last_on_page: dict[int, int] = {}  # page -> index of its last table
    group_of: dict[int, int] = {}  # table index -> group index
    for i, table in enumerate(tables):
        page = table.get("page")
        before = table.get("continued_from")
        prev = last_on_page.get(before) if isinstance(before, int) else None
        if prev is not None and groups[group_of[prev]][-1] == prev:
            groups[group_of[prev]].append(i)
            group_of[i] = group_of[prev]
        else:
            group_of[i] = len(groups)
            groups.append([i])
        if isinstance(page, int):
            last_on_page[page] = i
    return groups
