"""Consolidated exports: one JSON Lines, CSV or Parquet file from a stream of records."""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TextIO

from docmill.model import Record
from docmill.model.tables import entry_cells, filled_rows, joined_parts
from docmill.outputs.columns import FLAT_COLUMNS, ParquetRowWriter, flat_row

EXPORT_FORMATS = ("jsonl", "csv", "parquet")


def export_records(records: Iterable[Record], fmt: str, dest: str | Path | None) -> int:
    """Write ``records`` to ``dest`` (stdout when None, except Parquet). Returns the count.

    The file is written under a temporary name and renamed, so a reader never sees a
    half-written export. CSV joins page texts with a form feed (``\\f``).
    """
    if fmt not in EXPORT_FORMATS:
        raise ValueError(f"unknown export format {fmt!r}; choose one of {', '.join(EXPORT_FORMATS)}")
    if dest is None:
        if fmt == "parquet":
            raise ValueError("parquet export needs an output file (-o FILE)")
        return _write_text(records, fmt, sys.stdout)
    path = Path(dest)
    tmp = path.with_name(path.name + ".tmp")
    try:
        if fmt == "parquet":
            writer = ParquetRowWriter(str(tmp), group=256)
            for record in records:
                writer.write(record)
            writer.close()
            count = writer.rows
        else:
            with open(tmp, "w", encoding="utf-8", newline="") as handle:
                count = _write_text(records, fmt, handle)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    return count


def _write_text(records: Iterable[Record], fmt: str, handle: TextIO) -> int:
    count = 0
    if fmt == "jsonl":
        for record in records:
            handle.write(record.json_line() + "\n")
            count += 1
        return count
    writer = csv.DictWriter(handle, fieldnames=list(FLAT_COLUMNS))
    writer.writeheader()
    for record in records:
        writer.writerow(flat_row(record, text_as_list=False))
        count += 1
    return count


FIELD_EXPORT_HEAD = ("id", "source", "status", "label", "confidence", "decided_by")


def field_value(value: Any) -> Any:
    """A field as one cell: numbers, text, booleans and nulls as they are; a list or an
    object as its JSON."""
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def field_rows(records: Iterable[Record], fields: Sequence[str]) -> Iterator[dict[str, Any]]:
    """One row a record: its id, source, status, class and one column per field (in
    ``fields``' order; missing: null)."""
    for record in records:
        content = record.decoded()
        found = content.get("class")
        cls = found if isinstance(found, dict) else {}
        values = content.get("fields")
        values = values if isinstance(values, dict) else {}
        row: dict[str, Any] = {
            "id": record.id, "source": record.source, "status": str(record.status),
            "label": cls.get("label"), "confidence": cls.get("confidence"),
            "decided_by": cls.get("decided_by"),
        }
        for name in fields:
            row[name] = field_value(values.get(name))
        yield row


def export_fields(
    records: Iterable[Record], fields: Mapping[str, str | None], fmt: str, dest: str | Path
) -> int:
    """The fields of ``records`` (one label's: one column per field of its schema, name
    -> JSON type) as CSV or Parquet at ``dest`` (temporary name, then renamed). Parquet
    types: ``number`` float64, ``integer`` int64, ``boolean`` bool, anything else text (a
    list or object as JSON); a value of another type (the stage validates answers, so
    none is expected) is null there. Returns the count."""
    if fmt not in ("csv", "parquet"):
        raise ValueError(f"fields export: csv or parquet, got {fmt!r}")
    names = [f for f in fields if f not in FIELD_EXPORT_HEAD]
    columns = [*FIELD_EXPORT_HEAD, *names]
    path = Path(dest)
    tmp = path.with_name(path.name + ".tmp")
    count = 0
    try:
        if fmt == "csv":
            with open(tmp, "w", encoding="utf-8", newline="") as handle:
                writer = csv.DictWriter(handle, fieldnames=columns, extrasaction="ignore")
                writer.writeheader()
                for row in field_rows(records, names):
                    writer.writerow(row)
                    count += 1
        else:
            count = _fields_parquet(field_rows(records, names), {n: fields[n] for n in names}, tmp)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    return count


def _fields_parquet(rows: Iterator[dict[str, Any]], fields: Mapping[str, str | None], path: Path) -> int:
    import pyarrow as pa
    import pyarrow.parquet as pq

    kinds = {"number": (pa.float64(), (int, float)), "integer": (pa.int64(), (int,)),
             "boolean": (pa.bool_(), (bool,))}
    head = [("id", pa.int64()), ("source", pa.string()), ("status", pa.string()),
            ("label", pa.string()), ("confidence", pa.float64()), ("decided_by", pa.string())]
    types = dict(head)
    accepts: dict[str, tuple[type, ...]] = {"id": (int,), "confidence": (int, float)}
    for name, kind in fields.items():
        pa_type, ok = kinds.get(kind or "", (pa.string(), ()))
        types[name] = pa_type
        if ok:
            accepts[name] = ok
    schema = pa.schema(list(types.items()))

    def cell(name: str, value: Any) -> Any:
        ok = accepts.get(name)
        if value is None or ok is None:
            return None if value is None else str(value)
        if isinstance(value, bool) and bool not in ok:
            return None
        return value if isinstance(value, ok) else None

    count = 0
    with pq.ParquetWriter(str(path), schema) as writer:
        batch: list[dict[str, Any]] = []
        for row in rows:
            batch.append({name: cell(name, row.get(name)) for name in types})
            if len(batch) >= 1000:
                writer.write_table(pa.Table.from_pylist(batch, schema=schema))
                count += len(batch)
                batch = []
        writer.write_table(pa.Table.from_pylist(batch, schema=schema))
        count += len(batch)
    return count


def table_csv_name(doc_id: int, page: int, number: int) -> str:
    """``{doc_id}-p{page+1}-t{n}.csv``: page 1-based, tables numbered from 1 per page."""
    return f"{doc_id}-p{page + 1}-t{number}.csv"


def export_tables(records: Iterable[Record], dest: str | Path) -> int:
    """One CSV per table of every record (record key ``tables``) into folder ``dest``;
    each file is written under a temporary name and renamed. Returns the file count.

    A spanning cell's text is repeated in every row and column it covers (CSV has no
    spans; each row and column then reads complete). A table continued on the next
    pages (``continued_from``) is one file, named for its first part; a continuation's
    header rows are dropped when they repeat the first part's."""
    folder = Path(dest)
    folder.mkdir(parents=True, exist_ok=True)
    count = 0
    for record in records:
        if record.content is None:
            continue
        tables = [t for t in record.decoded().get("tables") or [] if isinstance(t, dict)]
        per_page: dict[int, int] = {}
        names: dict[int, str] = {}
        for i, table in enumerate(tables):
            page = int(table.get("page", 0) or 0)
            per_page[page] = per_page.get(page, 0) + 1
            names[i] = table_csv_name(record.id, page, per_page[page])
        for group in joined_parts(tables):
            path = folder / names[group[0]]
            tmp = path.with_name(path.name + ".tmp")
            try:
                with open(tmp, "w", encoding="utf-8", newline="") as handle:
                    csv.writer(handle).writerows(_joined_rows([tables[i] for i in group]))
                tmp.replace(path)
            finally:
                tmp.unlink(missing_ok=True)
            count += 1
    return count


def _joined_rows(parts: list[dict[str, Any]]) -> list[list[str]]:
    rows: list[list[str]] = []
    head: list[list[str]] = []
    for n, part in enumerate(parts):
        grid = filled_rows(entry_cells(part))
        header = max(0, int(part.get("header_rows") or 0))
        if n == 0:
            head = grid[:header]
        elif header and grid[:header] == head:
            grid = grid[header:]
        rows.extend(grid)
    return rows
