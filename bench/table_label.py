#!/usr/bin/env python3
"""Labelling aid for the table sets (``bench/tables_truth/<set>/*.json``).

    table_label.py draft PDF PAGE [--tool docmill|pdfplumber|camelot-lattice|camelot-stream]
        prints a truth file drafted from a tool's reading of the page (1-based PAGE), to
        be corrected by hand against the page image: a draft is never the truth
    table_label.py show TRUTH.json... [--out DIR] [--found TOOL]
        draws each page (PNG, 100 dpi) with its true tables' boxes in red, each true
        cell's text where it was located in blue, and, with --found, a tool's boxes in green
    table_label.py locate TRUTH.json...
        fills a missing bbox from the page words that spell the table's cells

PDF paths in truth files are relative to ``../shared/corpus/real``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from corpus import SOURCE, ensure_venv
from table_sets import locate, page_words


def _found(tool: str, pdf: str, page: int) -> list[dict[str, object]]:
    from tables import TOOLS

    return [
        {"bbox": [round(v, 2) for v in f.bbox] if f.bbox else None, "rows": f.rows}
        for f in TOOLS[tool][1](pdf, page)
    ]


def draft(args: argparse.Namespace) -> int:
    pdf = Path(args.pdf).resolve()
    try:
        rel = str(pdf.relative_to(SOURCE.resolve()))
    except ValueError:
        rel = str(pdf)
    data = {
        "pdf": rel,
        "page": args.page - 1,
        "source": f"labelled here (drafted from {args.tool}, corrected by hand)",
        "tables": _found(args.tool, str(pdf), args.page - 1),
    }
    print(json.dumps(data, indent=1, ensure_ascii=False))
    return 0


def show(args: argparse.Namespace) -> int:
    import pypdfium2 as pdfium
    from PIL import ImageDraw

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name in args.truth:
        data = json.loads(Path(name).read_text(encoding="utf-8"))
        pdf = str(SOURCE / data["pdf"])
        doc = pdfium.PdfDocument(pdf)
        page = doc[data["page"]]
        scale = args.dpi / 72
        image = page.render(scale=scale).to_pil().convert("RGB")
        draw = ImageDraw.Draw(image)
        for table in data.get("tables") or []:
            if table.get("bbox"):
                draw.rectangle([v * scale for v in table["bbox"]], outline=(220, 0, 0), width=3)
        if args.found:
            for f in _found(args.found, pdf, data["page"]):
                if f["bbox"]:
                    draw.rectangle([v * scale for v in f["bbox"]], outline=(0, 160, 0), width=2)  # type: ignore[union-attr]
        target = out / f"{Path(name).stem}.png"
        image.save(target)
        page.close()
        doc.close()
        print(target)
    return 0


def locate_missing(args: argparse.Namespace) -> int:
    for name in args.truth:
        path = Path(name)
        data = json.loads(path.read_text(encoding="utf-8"))
        words = page_words(str(SOURCE / data["pdf"]), data["page"])
        for table in data.get("tables") or []:
            if not table.get("bbox"):
                box = locate(table.get("rows") or [], words)
                table["bbox"] = [round(v, 2) for v in box] if box else None
        path.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return 0


def main(argv: list[str] | None = None) -> int:
    ensure_venv()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    d = sub.add_parser("draft")
    d.add_argument("pdf")
    d.add_argument("page", type=int)
    d.add_argument("--tool", default="docmill")
    s = sub.add_parser("show")
    s.add_argument("truth", nargs="+")
    s.add_argument("--out", default="/tmp/docmill-table-labels")
    s.add_argument("--dpi", type=float, default=100)
    s.add_argument("--found")
    loc = sub.add_parser("locate")
    loc.add_argument("truth", nargs="+")
    args = parser.parse_args(argv)
    return {"draft": draft, "show": show, "locate": locate_missing}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
