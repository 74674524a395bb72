"""One part file: written under ``NAME.tmp``, fsynced, then renamed to its final name.

A reader never sees a half-written part: a part either exists whole or not at all.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import BinaryIO

from docmill.model import Record
from docmill.outputs.columns import ParquetRowWriter

_EXT = {"jsonl": "jsonl", "parquet": "parquet"}
_NAME = re.compile(r"^part-(\d{6,})\.(jsonl|parquet)$")


def part_name(number: int, fmt: str) -> str:
    return f"part-{number:06d}.{_EXT[fmt]}"


def parse_part_name(name: str) -> int | None:
    """The part number of a final part file's name, or None."""
    match = _NAME.match(name)
    return int(match.group(1)) if match else None


class PartFile:
    """An open part being filled; ``commit()`` makes it visible atomically."""

    def __init__(self, directory: Path, number: int, fmt: str) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.number = number
        self.fmt = fmt
        self.path = directory / part_name(number, fmt)
        self._tmp = self.path.with_name(self.path.name + ".tmp")
        self.doc_ids: list[int] = []
        self._jsonl: BinaryIO | None = None
        self._parquet: ParquetRowWriter | None = None
        if fmt == "parquet":
            self._parquet = ParquetRowWriter(str(self._tmp))
        else:
            # UTF-8 bytes: the records' content is never decoded to text on its way here
            self._jsonl = open(self._tmp, "wb")  # noqa: SIM115 - closed in commit

    def write(self, record: Record, plain: bytes | None = None) -> None:
        """Append ``record``; ``plain``: its content's JSON, when the caller has it."""
        if self._parquet is not None:
            self._parquet.write(record)
        elif self._jsonl is not None:
            self._jsonl.write(record.json_line_utf8(plain))
            self._jsonl.write(b"\n")
        self.doc_ids.append(record.id)

    def __len__(self) -> int:
        return len(self.doc_ids)

    def commit(self) -> Path:
        """Close, fsync and rename into place."""
        if self._parquet is not None:
            self._parquet.close()
        elif self._jsonl is not None:
            self._jsonl.flush()
            os.fsync(self._jsonl.fileno())
            self._jsonl.close()
        os.replace(self._tmp, self.path)
        _fsync_dir(self.path.parent)
        return self.path

    def abandon(self) -> None:
        if self._parquet is not None:
            self._parquet.close()
        elif self._jsonl is not None:
            self._jsonl.close()
        self._tmp.unlink(missing_ok=True)


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
