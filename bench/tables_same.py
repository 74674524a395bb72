#!/usr/bin/env python3
"""docmill's tables against another commit's, exactly: every page, every table the same.

A speed change to the tables extractor must not change what it finds. This script runs
the extractor of ``--baseline REF`` (its ``src/`` taken with ``git archive``) and the
checkout's own, each in a process of its own, over:

- every page ``bench/tables.py`` scores (tabula, camelot, pdfplumber, corpus, and the
  synthetic set of each ``--seeds`` seed), one page at a time as that bench reads them;
- every page of the carried test corpus (``tests/data/corpus``: real and hostile files,
  the decompression bombs left out) and, with ``--corpus``, of the shared corpus
  (``../shared/corpus/real``);
- each of those documents read whole, page after page (its first ``--max-pages``), so
  that ``continued_from`` is compared too;

and compares every table exactly: page, bbox, cells (row, col, spans, text), the rows,
header rows, ``continued_from``, kind and column edges (floats compared as written by
``repr``, so to the last bit). It prints the pages and tables compared, every
difference (the first ``--show``), and each side's CPU time: pages per CPU-second of the
bench's pages, ms per page. Exit status 1 when any table differs.

    .venv/bin/python bench/tables_same.py --baseline main           # ~1 min
    .venv/bin/python bench/tables_same.py --baseline main --corpus  # + every corpus page
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from io import BytesIO
from pathlib import Path
from typing import Any

from corpus import REPO, SOURCE, ensure_venv
from table_sets import REAL_SETS, load_real, load_synthetic

CARRIED = REPO / "tests" / "data" / "corpus"  # real and hostile; large files as NAME.xz

Job = tuple[str, str, int | None]  # (group, pdf, page or None for the whole document)


def jobs(args: argparse.Namespace, work: Path) -> list[Job]:
    """What both sides read: the bench's pages, then whole documents and corpus pages."""
    import pypdfium2 as pdfium

    out: list[Job] = []
    pdfs: dict[str, None] = {}
    for name in REAL_SETS:
        for p in load_real(name, args.source):
            out.append(("bench", p.pdf, p.page))
            pdfs[p.pdf] = None
    for seed in args.seeds:
        for p in load_synthetic(work / f"synthetic-{seed}", seed, args.synthetic):
            out.append(("bench" if seed == 0 else "synthetic", p.pdf, p.page))
            pdfs[p.pdf] = None
    corpus = carried_pdfs(work / "carried")
    if args.corpus:
        corpus += sorted(str(p) for p in args.source.rglob("*.pdf") if p.is_file())
    for pdf in corpus:
        try:
            doc = pdfium.PdfDocument(pdf)
        except Exception:
            continue  # encrypted, corrupt, empty: no tables on either side
        try:
            n = len(doc)
        finally:
            doc.close()
        out += [("corpus", pdf, i) for i in range(min(n, args.max_pages))]
        pdfs[pdf] = None
    out += [("document", pdf, None) for pdf in pdfs]
    return out


def carried_pdfs(dest: Path) -> list[str]:
    """The carried test corpus's PDFs, xz-packed ones unpacked under ``dest`` (the
    decompression bombs left out: seconds of inflating, no text)."""
    import lzma

    out = []
    for path in sorted(CARRIED.rglob("*")):
        name = path.name.removesuffix(".xz")
        if not name.endswith(".pdf") or name.startswith("bomb_") or not path.is_file():
            continue
        if path.name.endswith(".xz"):
            unpacked = dest / path.relative_to(CARRIED).with_name(name)
            unpacked.parent.mkdir(parents=True, exist_ok=True)
            unpacked.write_bytes(lzma.decompress(path.read_bytes()))
            path = unpacked
        out.append(str(path))
    return out


def dump(jobs_file: Path, out_file: Path, max_pages: int) -> None:
    """Child mode: every job's tables and CPU time, as JSON (the docmill on sys.path)."""
    import logging
    import warnings

    import pypdfium2 as pdfium

    import docmill
    from docmill.processors.tables.extract import tables_in_pdf

    warnings.simplefilter("ignore")
    logging.disable(logging.WARNING)
    todo: list[list[Any]] = json.loads(jobs_file.read_text())
    tables_in_pdf(todo[0][1], [todo[0][2] or 0])  # warm-up: imports
    results: list[Any] = []
    cpu: dict[str, float] = {}
    pages: dict[str, int] = {}
    for group, pdf, page in todo:
        if page is None:
            doc = pdfium.PdfDocument(pdf)
            n = min(len(doc), max_pages)
            doc.close()
            wanted = list(range(n))
        else:
            wanted = [page]
        started = time.process_time()
        try:
            found: Any = [_entry(t) for t in tables_in_pdf(pdf, wanted)]
        except Exception as exc:  # compared like tables: both sides must fail alike
            found = f"error: {type(exc).__name__}: {exc}"
        cpu[group] = cpu.get(group, 0.0) + time.process_time() - started
        pages[group] = pages.get(group, 0) + len(wanted)
        results.append(found)
    out_file.write_text(
        json.dumps({"module": docmill.__file__, "results": results, "cpu": cpu, "pages": pages})
    )


def _entry(table: Any) -> dict[str, Any]:
    entry = table.to_dict()
    entry.update(kind=table.kind, columns=[repr(x) for x in table.columns])
    entry["bbox"] = [repr(x) for x in table.bbox]  # to the last bit
    return entry


def baseline_src(ref: str, dest: Path) -> Path:
    """``ref``'s ``src/`` unpacked under ``dest``."""
    data = subprocess.run(
        ["git", "archive", "--format=tar", ref, "src"], cwd=REPO, capture_output=True, check=True
    ).stdout
    with tarfile.open(fileobj=BytesIO(data)) as tar:
        tar.extractall(dest, filter="data")
    return dest / "src"


def run_side(src: Path, jobs_file: Path, out_file: Path, max_pages: int) -> dict[str, Any]:
    env = dict(os.environ, PYTHONPATH=str(src))
    argv = [sys.executable, __file__, "--dump", str(jobs_file), str(out_file), "--max-pages", str(max_pages)]
    subprocess.run(argv, env=env, check=True)
    result: dict[str, Any] = json.loads(out_file.read_text())
    if not result["module"].startswith(str(src)):
        raise SystemExit(f"tables_same: {src} was not imported ({result['module']})")
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", metavar="REF", default="main", help="the commit to compare with (main)")
    parser.add_argument("--source", type=Path, default=SOURCE, help="the corpus the real sets name")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="synthetic seeds (0: the bench's)")
    parser.add_argument("--synthetic", type=int, default=48, help="synthetic documents per seed")
    parser.add_argument("--corpus", action="store_true", help="also every page of --source")
    parser.add_argument("--max-pages", type=int, default=40, help="pages read of each document")
    parser.add_argument("--show", type=int, default=10, help="differences printed")
    parser.add_argument("--dump", nargs=2, type=Path, metavar=("JOBS", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.dump:
        dump(args.dump[0], args.dump[1], args.max_pages)
        return 0
    with tempfile.TemporaryDirectory(prefix="docmill-tables-same-") as tmp:
        work = Path(tmp)
        todo = jobs(args, work)
        jobs_file = work / "jobs.json"
        jobs_file.write_text(json.dumps(todo))
        base = run_side(baseline_src(args.baseline, work / "base"), jobs_file, work / "base.json", args.max_pages)
        new = run_side(REPO / "src", jobs_file, work / "new.json", args.max_pages)
    differ = 0
    tables = 0
    for (group, pdf, page), a, b in zip(todo, base["results"], new["results"], strict=True):
        tables += len(a) if isinstance(a, list) else 0
        if a != b:
            differ += 1
            if differ <= args.show:
                where = f"{Path(pdf).name} " + (f"p{page + 1}" if page is not None else "(whole)")
                print(f"DIFFERS [{group}] {where}\n  {args.baseline}: {json.dumps(a)[:600]}\n  now: {json.dumps(b)[:600]}")
    counts: dict[str, int] = {}
    for group, _, _ in todo:
        counts[group] = counts.get(group, 0) + 1
    print(f"compared {len(todo)} reads ({', '.join(f'{g} {n}' for g, n in counts.items())}), "
          f"{tables} tables of {args.baseline}: {differ} differ")
    print(f"{'group':<10} {'pages':>6} {args.baseline + ' ms/page':>16} {'now ms/page':>12} {'speed-up':>9}")
    for group, n in base["pages"].items():
        a, b = base["cpu"][group], new["cpu"][group]
        print(f"{group:<10} {n:>6} {1000 * a / n:>16.2f} {1000 * b / n:>12.2f} {a / max(b, 1e-9):>8.2f}x")
    n = base["pages"].get("bench", 0)
    if n:
        print(f"bench pages per CPU-second: {args.baseline} {n / base['cpu']['bench']:.1f}, "
              f"now {n / new['cpu']['bench']:.1f}")
    return 1 if differ else 0


if __name__ == "__main__":
    ensure_venv()
    sys.exit(main())
