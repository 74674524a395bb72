"""The flat, tabular shape of a record (Parquet parts, CSV and Parquet exports)."""

from __future__ import annotations

import json
from typing import Any

from docmill.model import Record

FLAT_COLUMNS: tuple[str, ...] = (
    "id",
    "source",
    "sha256",
    "size",
    "mime",
    "status",
    "error_category",
    "error_message",
    "error_stage",
    "pages",
    "title",
    "author",
    "metadata",
    "text",
    "text_source",
    "tables",
    "markdown",
    "timings",
    "attempts",
    "duplicate_of",
)


def flat_row(record: Record, *, text_as_list: bool) -> dict[str, Any]:
    """One record as flat columns; nested values as JSON text, text as a list or joined."""
    err = record.error
    content = record.decoded()
    metadata, text = content["metadata"], content["text"]
    return {
        "id": record.id,
        "source": record.source,
        "sha256": record.sha256,
        "size": record.size,
        "mime": record.mime,
        "status": str(record.status),
        "error_category": str(err.category) if err else None,
        "error_message": err.message if err else None,
        "error_stage": err.stage if err else None,
        "pages": record.pages,
        "title": metadata.get("title"),
        "author": metadata.get("author"),
        "metadata": json.dumps(metadata, ensure_ascii=False, sort_keys=True),
        "text": list(text) if text_as_list else "\f".join(text),
        # which path gave each page's text ("layer" | "ocr"); empty when not recorded
        "text_source": (
            list(content.get("text_source") or [])
            if text_as_list
            else ",".join(content.get("text_source") or [])
        ),
        "tables": json.dumps(content["tables"], ensure_ascii=False) if "tables" in content else None,
        "markdown": content.get("markdown"),
        "timings": json.dumps(record.timings, sort_keys=True),
        "attempts": record.attempts,
        "duplicate_of": record.duplicate_of,
    }


def arrow_schema() -> Any:
    import pyarrow as pa

    return pa.schema(
        [
            ("id", pa.int64()),
            ("source", pa.string()),
            ("sha256", pa.string()),
            ("size", pa.int64()),
            ("mime", pa.string()),
            ("status", pa.string()),
            ("error_category", pa.string()),
            ("error_message", pa.string()),
            ("error_stage", pa.string()),
            ("pages", pa.int64()),
            ("title", pa.string()),
            ("author", pa.string()),
            ("metadata", pa.string()),
            ("text", pa.list_(pa.string())),
            ("text_source", pa.list_(pa.string())),
            ("tables", pa.string()),
            ("markdown", pa.string()),
            ("timings", pa.string()),
            ("attempts", pa.int64()),
            ("duplicate_of", pa.int64()),
        ]
    )


class ParquetRowWriter:
    """Streams flat rows into a Parquet file, one row group per ``group`` rows."""

    def __init__(self, path: str, group: int = 64) -> None:
        import pyarrow.parquet as pq

        self._schema = arrow_schema()
        self._writer = pq.ParquetWriter(path, self._schema, compression="zstd")
        self._rows: list[dict[str, Any]] = []
        self._group = group
        self.rows = 0

    def write(self, record: Record) -> None:
        self._rows.append(flat_row(record, text_as_list=True))
        self.rows += 1
        if len(self._rows) >= self._group:
            self._flush()

    def _flush(self) -> None:
        import pyarrow as pa

        if self._rows:
            self._writer.write_table(pa.Table.from_pylist(self._rows, schema=self._schema))
            self._rows = []

    def close(self) -> None:
        self._flush()
        self._writer.close()
