"""Tables, to the last bit: every page of the carried corpus and of the generated table
pages gives exactly the tables recorded in ``tests/data/tables_golden.json``.

The record holds, per document, the number of tables and a sha256 of them (page, bbox,
cells, rows, header rows, ``continued_from``, kind, column edges; floats as ``repr``
writes them), each document read whole (its first :data:`PAGES` pages, so that tables
continued across pages count). It guards changes meant to make the extractor faster,
not different. A change that means to alter tables regenerates it on purpose::

    DOCMILL_REGEN_TABLES_GOLDEN=1 .venv/bin/python -m pytest tests/test_tables_golden.py

and says so in its commit. ``bench/tables_same.py --baseline REF`` shows what differs,
table by table, against any commit (and on every page of the shared corpus).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import pypdfium2 as pdfium

from docmill.processors.tables.extract import Table, tables_in_pdf
from docmill.testkit.table_pages import generate
from engine_kit import CARRIED_CORPUS, corpus_file

GOLDEN = Path(__file__).parent / "data" / "tables_golden.json"
PAGES = 40
SKIP = ("bomb_",)  # seconds of inflating for no text: no tables to compare


def _digest(tables: list[Table]) -> dict[str, Any]:
    entries = [t.to_dict() | {"kind": t.kind, "columns": t.columns} for t in tables]
    text = json.dumps(entries, sort_keys=True, ensure_ascii=False)
    return {"tables": len(tables), "sha256": hashlib.sha256(text.encode()).hexdigest()}


def _read(path: Path) -> dict[str, Any]:
    try:
        doc = pdfium.PdfDocument(str(path))
    except pdfium.PdfiumError:
        return {"error": "unreadable"}
    try:
        pages = min(len(doc), PAGES)
    finally:
        doc.close()
    try:
        return _digest(tables_in_pdf(str(path), range(pages)))
    except Exception as exc:  # both sides must fail alike
        return {"error": type(exc).__name__}


def _current(tmp: Path) -> dict[str, Any]:
    files: dict[str, Any] = {}
    for stored in sorted(CARRIED_CORPUS.rglob("*")):
        name = stored.name.removesuffix(".xz")
        if not name.endswith(".pdf") or name.startswith(SKIP):
            continue
        path = corpus_file(stored.with_name(name))
        files[stored.with_name(name).relative_to(CARRIED_CORPUS).as_posix()] = _read(path)
    for doc in generate(0, 48):  # bench/tables.py's synthetic set
        path = tmp / f"{doc.name}.pdf"
        path.write_bytes(doc.pdf())
        files[f"synthetic-0/{doc.name}"] = _read(path)
    return files


def test_every_carried_and_generated_page_gives_the_recorded_tables(tmp_path: Path) -> None:
    files = _current(tmp_path)
    if os.environ.get("DOCMILL_REGEN_TABLES_GOLDEN") == "1":
        GOLDEN.write_text(json.dumps({"pages_per_document": PAGES, "files": files}, indent=1) + "\n")
    recorded = json.loads(GOLDEN.read_text())["files"]
    differ = sorted(name for name in recorded.keys() | files.keys() if recorded.get(name) != files.get(name))
    assert not differ, f"tables differ from {GOLDEN.name} in: {differ}"
    assert sum(f.get("tables", 0) for f in files.values()) > 100  # the record holds tables at all
