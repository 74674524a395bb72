"""Streams finished records from the ledger into rotated part files, exactly once.

The protocol, which makes every crash point safe:
1. records are appended to an open ``part-N.ext.tmp``;
2. the part is closed, fsynced and renamed to ``part-N.ext``;
3. one transaction records part N and sets ``part=N`` on its documents.
On start, :meth:`RecordSink.recover` deletes ``.tmp`` files, deletes final part files
the ledger does not know (a crash between 2 and 3), forgets parts whose file is gone,
and rewrites parts marked stale (a document in them was reset by a retry or a changed
source). Records not yet in a part are then written again. So each document's
current record is in exactly one part file.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from pathlib import Path

from docmill.model import Record
from docmill.outputs import PartFile, parse_part_name
from docmill.state import Store

RECORDS_DIR = "records"


class RecordSink:
    def __init__(
        self,
        out_dir: Path,
        store: Store,
        fmt: str,
        max_records: int,
        max_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._dir = out_dir / RECORDS_DIR
        self._store = store
        self._fmt = fmt
        self._max_records = max_records
        self._max_seconds = max_seconds
        self._clock = clock
        self._open: PartFile | None = None
        self._opened_at = 0.0
        self._next = 1
        self.parts_written = 0
        self.changes = 0  # parts committed, rewritten or dropped (deliveries follow them)

    def recover(self) -> None:
        """Bring the part files in line with the ledger (see the module docstring)."""
        self._dir.mkdir(parents=True, exist_ok=True)
        known = self._store.part_numbers()
        on_disk: dict[int, Path] = {}
        for path in self._dir.iterdir():
            if path.name.endswith(".tmp"):
                path.unlink(missing_ok=True)
                continue
            number = parse_part_name(path.name)
            if number is None:
                continue
            if number not in known:
                path.unlink(missing_ok=True)
            else:
                on_disk[number] = path
        for number in known:
            if number not in on_disk:
                self._store.drop_part(number)
                self.changes += 1
        self.rewrite_stale()
        self._next = self._store.next_part_number()
        self.write_ids(None)

    def rewrite_stale(self) -> None:
        """Rewrite the parts holding records of documents that were reset."""
        for number, state in self._store.part_numbers().items():
            if state != "stale":
                continue
            for path in self._dir.glob(f"part-{number:06d}.*"):
                if parse_part_name(path.name) == number:
                    self._rewrite(number, path)

    def _rewrite(self, number: int, old: Path) -> None:
        fmt = "parquet" if old.suffix == ".parquet" else "jsonl"
        part = PartFile(self._dir, number, fmt)
        for record in self._store.iter_part_records(number):
            part.write(record)
        if len(part):
            path = part.commit()
            if path != old:
                old.unlink(missing_ok=True)
        else:
            part.abandon()
            old.unlink(missing_ok=True)
        self._store.mark_part(number, len(part))
        self.changes += 1

    def write_ids(self, doc_ids: Iterable[int] | None) -> None:
        """Append the records of these finished documents (None: every unwritten one)."""
        if doc_ids is None:
            pending = set(self._open.doc_ids) if self._open is not None else set()
            for record in self._store.iter_records(unwritten_only=True):
                if record.id not in pending:  # already in the open part
                    self._append(record)
            return
        for record in self._store.records(list(doc_ids)):
            self._append(record)

    def write_records(self, records: Iterable[tuple[Record, bytes | None]]) -> None:
        """Append records built by the caller (as the ledger holds them), each with its
        content's JSON when the caller has it (None: decompressed from the record)."""
        for record, plain in records:
            self._append(record, plain)

    def _append(self, record: Record, plain: bytes | None = None) -> None:
        if self._open is None:
            self._open = PartFile(self._dir, self._next, self._fmt)
            self._opened_at = self._clock()
            self._next += 1
        self._open.write(record, plain)
        if len(self._open) >= self._max_records:
            self.flush()

    def maybe_flush(self) -> None:
        """Rotate the open part when it is old enough (records reach disk steadily)."""
        if self._open is not None and self._clock() - self._opened_at >= self._max_seconds:
            self.flush()

    def flush(self) -> None:
        part, self._open = self._open, None
        if part is None or not len(part):
            if part is not None:
                part.abandon()
            return
        part.commit()
        self._store.commit_part(part.number, part.doc_ids, part.fmt)
        self.parts_written += 1
        self.changes += 1

    def abandon(self) -> None:
        """Drop the open part (its records stay unwritten in the ledger)."""
        if self._open is not None:
            self._open.abandon()
            self._open = None
