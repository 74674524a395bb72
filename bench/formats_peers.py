"""Run one peer extractor over files named on stdin; one JSON line per file on stdout.

    PEERS_PYTHON bench/formats_peers.py kreuzberg|markitdown < files.txt

Runs inside the peers' own virtual environment (bench/formats.py makes it: the peers
are never docmill's dependencies). Each line: file, status (ok | empty | failed),
seconds, text (what the tool returned), error.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable


def _kreuzberg() -> Callable[[str], str]:
    from kreuzberg import extract_file_sync

    return lambda path: str(extract_file_sync(path).content or "")


def _markitdown() -> Callable[[str], str]:
    from markitdown import MarkItDown

    converter = MarkItDown()
    return lambda path: str(converter.convert(path).text_content or "")


def main() -> None:
    tool = sys.argv[1]
    extract = {"kreuzberg": _kreuzberg, "markitdown": _markitdown}[tool]()
    for line in sys.stdin:
        path = line.strip()
        if not path:
            continue
        started = time.perf_counter()
        text, error = "", None
        try:
            text = extract(path)
        except BaseException as exc:  # a Rust panic is a BaseException
            if isinstance(exc, KeyboardInterrupt):
                raise
            error = f"{type(exc).__name__}: {exc}"[:300]
        seconds = time.perf_counter() - started
        status = "failed" if error else ("ok" if text.strip() else "empty")
        print(json.dumps({"file": path, "status": status, "seconds": seconds, "text": text,
                          "error": error}), flush=True)


if __name__ == "__main__":
    main()
