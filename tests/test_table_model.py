"""The record's table shape (docmill.model.tables) and what the exports make of it:
spans, the plain grid beside the cells, continued tables joined in CSV, Markdown."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from docmill.model import DocState, Record
from docmill.model.content import encode_content
from docmill.model.tables import (
    Cell,
    cells_of,
    complete_cells,
    entry_cells,
    filled_rows,
    joined_parts,
    rows_of,
    table_entry,
)
from docmill.outputs.export import export_tables
from docmill.processors.pdf.markdown import markdown_table

# Region | Population      | Area
#        | 2010   | 2020   |
# North  | 5      | 6      | 10
HEADED = [
    Cell(0, 0, 2, 1, "Region"),
    Cell(0, 1, 1, 2, "Population"),
    Cell(0, 3, 2, 1, "Area"),
    Cell(1, 1, 1, 1, "2010"),
    Cell(1, 2, 1, 1, "2020"),
    Cell(2, 0, 1, 1, "North"),
    Cell(2, 1, 1, 1, "5"),
    Cell(2, 2, 1, 1, "6"),
    Cell(2, 3, 1, 1, "10"),
]


def test_an_entry_has_cells_covering_the_grid_once_and_rows_beside_them() -> None:
    entry = table_entry(2, HEADED, bbox=(10, 20.123, 300, 400), header_rows=2)
    assert entry["page"] == 2 and entry["bbox"] == [10, 20.12, 300, 400]
    assert entry["header_rows"] == 2 and "continued_from" not in entry
    assert entry["rows"] == [
        ["Region", "Population", "", "Area"],
        ["", "2010", "2020", ""],
        ["North", "5", "6", "10"],
    ]
    covered = [
        (r, k)
        for c in entry["cells"]
        for r in range(c["row"], c["row"] + c["rowspan"])
        for k in range(c["col"], c["col"] + c["colspan"])
    ]
    assert sorted(covered) == [(r, k) for r in range(3) for k in range(4)]  # each once
    assert {"row": 0, "col": 1, "rowspan": 1, "colspan": 2, "text": "Population"} in entry["cells"]
    assert entry_cells(entry) == complete_cells(HEADED)


def test_gaps_become_empty_cells_and_overlaps_are_refused() -> None:
    cells = complete_cells([Cell(0, 0, 1, 2, "a"), Cell(1, 1, 1, 1, "b")])
    assert cells == [Cell(0, 0, 1, 2, "a"), Cell(1, 0), Cell(1, 1, 1, 1, "b")]
    with pytest.raises(ValueError, match="overlap"):
        complete_cells([Cell(0, 0, 2, 2, "a"), Cell(1, 1, 1, 1, "b")])
    with pytest.raises(ValueError):
        complete_cells([Cell(0, 0, 0, 1, "a")])


def test_a_record_without_cells_reads_its_rows() -> None:
    old = {"page": 0, "bbox": None, "rows": [["a", "b"], ["c"]], "header_rows": 1}
    assert entry_cells(old) == [Cell(0, 0, text="a"), Cell(0, 1, text="b"), Cell(1, 0, text="c"), Cell(1, 1)]
    assert rows_of(cells_of([["x", ""], ["", "y"]])) == [["x", ""], ["", "y"]]


def test_filled_rows_repeat_a_span() -> None:
    assert filled_rows(HEADED) == [
        ["Region", "Population", "Population", "Area"],
        ["Region", "2010", "2020", "Area"],
        ["North", "5", "6", "10"],
    ]


def test_markdown_joins_header_rows_into_one() -> None:
    text = markdown_table(table_entry(0, HEADED, header_rows=2))
    assert text.splitlines() == [
        "| Region | Population 2010 | Population 2020 | Area |",
        "|---|---|---|---|",
        "| North | 5 | 6 | 10 |",
    ]
    plain = markdown_table({"page": 0, "rows": [["a", "b"], ["1", "2"]], "header_rows": 1})
    assert plain.splitlines()[0] == "| a | b |"


def test_continued_tables_are_grouped() -> None:
    tables = [
        {"page": 0}, {"page": 1}, {"page": 1}, {"page": 2, "continued_from": 1},
        {"page": 3, "continued_from": 2}, {"page": 5, "continued_from": 4},
    ]
    assert joined_parts(tables) == [[0], [1], [2, 3, 4], [5]]


def _record(tables: list[dict[str, object]]) -> Record:
    return Record(
        id=7, source="x.pdf", sha256="0" * 64, size=1, mime="application/pdf",
        status=DocState.DONE, error=None, pages=3,
        content=encode_content(["", "", ""], {}, tables=tables),
        timings={}, attempts=1, duplicate_of=None,
    )


def test_csv_export_fills_spans_and_joins_a_continued_table(tmp_path: Path) -> None:
    first = table_entry(0, HEADED, header_rows=2)
    more = [Cell(0, 0, 2, 1, "Region"), Cell(0, 1, 1, 2, "Population"), Cell(0, 3, 2, 1, "Area"),
            Cell(1, 1, 1, 1, "2010"), Cell(1, 2, 1, 1, "2020"),
            Cell(2, 0, text="South"), Cell(2, 1, text="7"), Cell(2, 2, text="8"), Cell(2, 3, text="20")]
    second = table_entry(1, more, header_rows=2, continued_from=0)
    other = table_entry(2, cells_of([["k", "v"], ["1", "2"]]))
    assert export_tables([_record([first, second, other])], tmp_path) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["7-p1-t1.csv", "7-p3-t1.csv"]
    rows = list(csv.reader((tmp_path / "7-p1-t1.csv").open(encoding="utf-8", newline="")))
    assert rows == [
        ["Region", "Population", "Population", "Area"],
        ["Region", "2010", "2020", "Area"],
        ["North", "5", "6", "10"],
        ["South", "7", "8", "20"],  # the repeated header is not written twice
    ]
