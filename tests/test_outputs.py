"""Part files (atomic tmp + rename) and consolidated exports (jsonl, csv, parquet)."""

from __future__ import annotations

import csv
import dataclasses
import json
import zlib
from collections.abc import Iterator
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from docmill.model import DocState, ErrorInfo, FailureCategory, Record
from docmill.model.content import encode_content
from docmill.outputs import EXPORT_FORMATS, PartFile, export_records, parse_part_name, part_name
from docmill.outputs.columns import FLAT_COLUMNS


def make_record(doc_id: int, **changes: object) -> Record:
    fields: dict[str, object] = {
        "id": doc_id,
        "source": f"/data/doc-{doc_id}.pdf",
        "sha256": f"{doc_id:064x}",
        "size": 1000 + doc_id,
        "mime": "application/pdf",
        "status": DocState.DONE,
        "error": None,
        "pages": 2,
        "metadata": {"title": f"Title {doc_id}", "author": "Ann Author", "encrypted": False},
        "text": [f'page one of {doc_id}\nsecond line, with "quotes"', "página dos — ✓"],
        "timings": {"parse_s": 0.01, "total_s": 0.02},
        "attempts": 1,
        "duplicate_of": None,
    }
    fields.update(changes)
    fields["content"] = encode_content(fields.pop("text"), fields.pop("metadata"))  # type: ignore[arg-type]
    return Record(**fields)  # type: ignore[arg-type]


RECORDS = [
    make_record(1),
    make_record(
        2,
        status=DocState.FAILED,
        error=ErrorInfo(FailureCategory.ENCRYPTED, "needs a password", "extract"),
        pages=None,
        metadata={},
        text=[],
        mime=None,
    ),
    make_record(3, duplicate_of=1, text=["only page"], pages=1, metadata={"nested": {"k": [1]}}),
]


def read_jsonl(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


# --- part names ----------------------------------------------------------------------


def test_part_name_and_parse_round_trip() -> None:
    assert part_name(7, "jsonl") == "part-000007.jsonl"
    assert part_name(12, "parquet") == "part-000012.parquet"
    assert part_name(1234567, "jsonl") == "part-1234567.jsonl"
    for number in (1, 42, 999_999, 1_000_000, 12_345_678):
        for fmt in ("jsonl", "parquet"):
            assert parse_part_name(part_name(number, fmt)) == number


@pytest.mark.parametrize(
    "name",
    [
        "part-000001.jsonl.tmp",
        "part-000001.parquet.tmp",
        "part-1.jsonl",
        "part-00001.jsonl",
        "part-000001.csv",
        "part-000001",
        "xpart-000001.jsonl",
        "part-000001.jsonl.bak",
        "part-abcdef.jsonl",
        "export.jsonl",
    ],
)
def test_parse_part_name_rejects_other_files(name: str) -> None:
    assert parse_part_name(name) is None


# --- part files ----------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["jsonl", "parquet"])
def test_part_is_written_under_a_tmp_name_until_commit(tmp_path: Path, fmt: str) -> None:
    folder = tmp_path / "records"  # created on demand
    part = PartFile(folder, 3, fmt)
    for record in RECORDS:
        part.write(record)
    assert len(part) == 3
    assert part.doc_ids == [1, 2, 3]
    assert [p.name for p in folder.iterdir()] == [f"part-000003.{fmt}.tmp"]

    path = part.commit()

    assert path == folder / f"part-000003.{fmt}"
    assert [p.name for p in folder.iterdir()] == [path.name]
    if fmt == "jsonl":
        assert read_jsonl(path) == [r.to_dict() for r in RECORDS]
    else:
        table = pq.read_table(path)
        assert tuple(table.column_names) == FLAT_COLUMNS
        rows = table.to_pylist()
        assert [row["id"] for row in rows] == [1, 2, 3]
        assert rows[0]["text"] == RECORDS[0].text
        assert rows[1]["text"] == []
        assert rows[1]["error_category"] == "encrypted"
        assert rows[2]["duplicate_of"] == 1
        assert json.loads(rows[2]["metadata"]) == {"nested": {"k": [1]}}


@pytest.mark.parametrize("fmt", ["jsonl", "parquet"])
def test_abandon_leaves_nothing(tmp_path: Path, fmt: str) -> None:
    part = PartFile(tmp_path, 1, fmt)
    part.write(RECORDS[0])
    part.abandon()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("fmt", ["jsonl", "parquet"])
def test_empty_part_commits_a_readable_file(tmp_path: Path, fmt: str) -> None:
    path = PartFile(tmp_path, 2, fmt).commit()
    if fmt == "jsonl":
        assert path.read_text(encoding="utf-8") == ""
    else:
        assert pq.read_table(path).num_rows == 0


def test_commit_replaces_an_existing_part_of_the_same_number(tmp_path: Path) -> None:
    old = PartFile(tmp_path, 5, "jsonl")
    old.write(RECORDS[0])
    old.write(RECORDS[1])
    old.commit()
    new = PartFile(tmp_path, 5, "jsonl")
    new.write(RECORDS[1])
    path = new.commit()
    assert [r["id"] for r in read_jsonl(path)] == [2]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["part-000005.jsonl"]


def test_jsonl_part_keeps_non_ascii_text_readable(tmp_path: Path) -> None:
    part = PartFile(tmp_path, 1, "jsonl")
    part.write(RECORDS[0])
    raw = part.commit().read_text(encoding="utf-8")
    assert "página dos — ✓" in raw
    assert raw.endswith("\n")
    assert raw.count("\n") == 1  # one record, one line: text newlines are escaped


def test_jsonl_part_holds_each_records_json_line_as_utf8(tmp_path: Path) -> None:
    no_content = dataclasses.replace(RECORDS[1], content=None)
    empty_object = dataclasses.replace(RECORDS[0], content=zlib.compress(b"{}"))
    records = [*RECORDS, no_content, empty_object, make_record(4, source="/data/ß ✓.pdf")]
    part = PartFile(tmp_path, 1, "jsonl")
    for i, record in enumerate(records):
        assert record.json_line_utf8() == record.json_line().encode("utf-8")
        plain = zlib.decompress(record.content) if record.content else None
        assert record.json_line_utf8(plain) == record.json_line().encode("utf-8")
        part.write(record, plain if i % 2 else None)  # given or not, the same line
    raw = part.commit().read_bytes()
    assert raw == b"".join(r.json_line().encode("utf-8") + b"\n" for r in records)
    assert read_jsonl(part.path) == [json.loads(r.json_line()) for r in records]


# --- exports -------------------------------------------------------------------------


def test_export_formats() -> None:
    assert EXPORT_FORMATS == ("jsonl", "csv", "parquet")


def test_export_jsonl_round_trip(tmp_path: Path) -> None:
    dest = tmp_path / "all.jsonl"
    assert export_records(iter(RECORDS), "jsonl", dest) == 3
    assert read_jsonl(dest) == [r.to_dict() for r in RECORDS]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["all.jsonl"]


def test_export_csv_round_trip_joins_pages_with_form_feed(tmp_path: Path) -> None:
    dest = tmp_path / "all.csv"
    assert export_records(RECORDS, "csv", str(dest)) == 3
    with open(dest, encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        assert tuple(reader.fieldnames or ()) == FLAT_COLUMNS
        rows = list(reader)
    assert len(rows) == 3
    first, failed, dup = rows
    assert first["text"] == "\f".join(RECORDS[0].text)
    assert first["text"].split("\f") == RECORDS[0].text  # embedded newlines and quotes survive
    assert first["title"] == "Title 1"
    assert first["author"] == "Ann Author"
    assert first["status"] == "done"
    assert first["pages"] == "2"
    assert json.loads(first["metadata"]) == RECORDS[0].metadata
    assert json.loads(first["timings"]) == RECORDS[0].timings
    assert failed["status"] == "failed"
    assert failed["error_category"] == "encrypted"
    assert failed["error_message"] == "needs a password"
    assert failed["error_stage"] == "extract"
    assert failed["text"] == ""
    assert failed["pages"] == ""
    assert dup["duplicate_of"] == "1"
    assert first["duplicate_of"] == ""


def test_export_parquet_round_trip_with_text_as_a_list(tmp_path: Path) -> None:
    dest = tmp_path / "all.parquet"
    assert export_records(RECORDS, "parquet", dest) == 3
    table = pq.read_table(dest)
    assert tuple(table.column_names) == FLAT_COLUMNS
    assert str(table.schema.field("text").type) == "list<element: string>"
    rows = table.to_pylist()
    assert [row["text"] for row in rows] == [r.text for r in RECORDS]
    assert [row["id"] for row in rows] == [1, 2, 3]
    assert rows[1]["pages"] is None
    assert rows[1]["error_message"] == "needs a password"
    assert rows[0]["title"] == "Title 1"
    assert rows[2]["duplicate_of"] == 1


def test_export_parquet_of_many_records_spans_row_groups(tmp_path: Path) -> None:
    records = [make_record(i, text=[f"t{i}"]) for i in range(1, 601)]
    dest = tmp_path / "many.parquet"
    assert export_records(iter(records), "parquet", dest) == 600
    table = pq.read_table(dest)
    assert table.column("id").to_pylist() == list(range(1, 601))
    assert pq.ParquetFile(dest).num_row_groups > 1


def test_export_of_nothing_writes_a_valid_empty_file(tmp_path: Path) -> None:
    assert export_records([], "jsonl", tmp_path / "e.jsonl") == 0
    assert (tmp_path / "e.jsonl").read_text() == ""
    assert export_records([], "csv", tmp_path / "e.csv") == 0
    assert (tmp_path / "e.csv").read_text().strip() == ",".join(FLAT_COLUMNS)
    assert export_records([], "parquet", tmp_path / "e.parquet") == 0
    assert pq.read_table(tmp_path / "e.parquet").num_rows == 0


def test_export_jsonl_to_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    assert export_records(RECORDS, "jsonl", None) == 3
    out = capsys.readouterr().out
    assert [json.loads(line) for line in out.splitlines()] == [r.to_dict() for r in RECORDS]


def test_export_csv_to_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    assert export_records(RECORDS[:1], "csv", None) == 1
    rows = list(csv.DictReader(capsys.readouterr().out.splitlines(keepends=True)))
    assert rows[0]["id"] == "1"


def test_parquet_export_needs_a_file(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ValueError, match="-o"):
        export_records(RECORDS, "parquet", None)
    assert capsys.readouterr().out == ""


def test_unknown_export_format_raises_and_writes_nothing(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="jsonl, csv, parquet"):
        export_records(RECORDS, "xml", tmp_path / "out.xml")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "parquet"])
def test_failed_export_keeps_the_previous_file_and_leaves_no_tmp(tmp_path: Path, fmt: str) -> None:
    dest = tmp_path / f"export.{fmt}"
    dest.write_text("previous export")

    class Broken(Exception):
        pass

    def records() -> Iterator[Record]:
        yield RECORDS[0]
        raise Broken

    with pytest.raises(Broken):
        export_records(records(), fmt, dest)
    assert dest.read_text() == "previous export"
    assert sorted(p.name for p in tmp_path.iterdir()) == [dest.name]


def test_extra_content_reaches_every_format(tmp_path: Path) -> None:
    """Keys processors add beyond text and metadata (tables, text_source, markdown)."""
    table = {"page": 0, "bbox": [1.0, 2.0, 3.0, 4.0], "rows": [["a", "b"], ["1", "2"]]}
    fields = {k: getattr(RECORDS[0], k) for k in ("id", "source", "sha256", "size", "mime")}
    record = Record(
        **fields,
        status=DocState.DONE,
        error=None,
        pages=2,
        content=encode_content(
            ["p1", "p2"],
            {"title": "T"},
            tables=[table],
            text_source=["layer", "ocr"],
            markdown="# T\n\n| a | b |",
        ),
        timings={"parse_s": 0.0, "total_s": 0.0},
        attempts=1,
        duplicate_of=None,
    )
    line = json.loads(record.json_line())
    assert line == record.to_dict()
    assert line["tables"] == [table] and line["text_source"] == ["layer", "ocr"]
    assert line["markdown"].startswith("# T")

    export_records([record], "parquet", tmp_path / "x.parquet")
    row = pq.read_table(tmp_path / "x.parquet").to_pylist()[0]
    assert json.loads(row["tables"]) == [table]
    assert row["text_source"] == ["layer", "ocr"] and row["markdown"] == "# T\n\n| a | b |"

    export_records([record, RECORDS[1]], "csv", tmp_path / "x.csv")
    with open(tmp_path / "x.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert json.loads(rows[0]["tables"]) == [table] and rows[0]["text_source"] == "layer,ocr"
    assert rows[1]["tables"] == "" and rows[1]["markdown"] == ""
