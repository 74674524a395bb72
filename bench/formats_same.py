"""Whether docmill's records of the formats corpus are unchanged: a check to run before
and after a change to an extractor that must not change what it extracts.

    python bench/formats_same.py --save before.json [--formats xlsx,pptx]
    python bench/formats_same.py --against before.json [--formats xlsx,pptx]

``--save`` writes, per corpus file, what docmill's record holds: status, error, pages,
text, metadata and every ``extra`` key (tables with their rows and cells, parts,
Markdown, with ``output.markdown`` on), as canonical JSON. ``--against`` extracts again
and names every file whose record differs (and the first key that does), ending
non-zero if any does. Timings (``parse_s``) are left out.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from docmill.processors import ExtractOptions, Task, process_task

HERE = Path(__file__).resolve().parent


def record(path: Path) -> dict[str, Any]:
    out = process_task(Task(0, 0, str(path), None, 1 << 31, ExtractOptions(markdown=True)))
    return {
        "status": str(out.status),
        "error": out.error.to_dict() if out.error else None,
        "pages": out.pages,
        "mime": out.mime,
        "text": out.text,
        "metadata": out.metadata,
        "extra": out.extra,
    }


def canonical(value: Any) -> Any:
    return json.loads(json.dumps(value, ensure_ascii=False, default=str))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, default=HERE / "results" / "formats-corpus")
    parser.add_argument("--formats", default="docx,xlsx,pptx,epub,html")
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--save", type=Path)
    group.add_argument("--against", type=Path)
    args = parser.parse_args()
    files = [p for fmt in args.formats.split(",")
             for p in sorted((args.corpus / fmt).glob("*")) if p.is_file()]
    started = time.perf_counter()
    records = {f"{p.parent.name}/{p.name}": canonical(record(p)) for p in files}
    print(f"{len(records)} files extracted in {time.perf_counter() - started:.2f} s", file=sys.stderr)
    if args.save:
        args.save.write_text(json.dumps(records, ensure_ascii=False, sort_keys=True))
        print(f"saved {args.save}")
        return
    before = json.loads(args.against.read_text())
    changed = 0
    for name, now in records.items():
        was = before.get(name)
        if was == now:
            continue
        changed += 1
        if was is None:
            print(f"new     {name}")
            continue
        keys = sorted(k for k in {*was, *now} if was.get(k) != now.get(k))
        detail = keys
        if "extra" in keys:
            detail = [k for k in keys if k != "extra"] + [
                f"extra.{k}" for k in sorted({*was["extra"], *now["extra"]})
                if was["extra"].get(k) != now["extra"].get(k)
            ]
        print(f"differs {name}: {', '.join(detail)}")
    wanted = tuple(f"{fmt}/" for fmt in args.formats.split(","))
    missing = sorted(n for n in set(before) - set(records) if n.startswith(wanted))
    for name in missing:
        print(f"missing {name}")
    print(f"{len(records) - changed} of {len(records)} records identical"
          + (f", {len(missing)} missing" if missing else ""))
    sys.exit(1 if changed or missing else 0)


if __name__ == "__main__":
    main()
