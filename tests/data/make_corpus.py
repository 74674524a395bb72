#!/usr/bin/env python3
"""Rewrite the carried corpus subset (``tests/data/corpus/``) from the full test corpus.

    .venv/bin/python tests/data/make_corpus.py [--corpus ../shared/corpus]

Copies each file in ``FILES`` from the corpus, keeping its path under the corpus, with
the licence files of its folder; a file over ``PACK_OVER`` bytes is carried
xz-compressed as ``NAME.xz`` (``engine_kit.corpus_file`` expands it for the tests).
The hostile manifests keep their header and the lines of the carried files. The
README and ``hostile/real/LICENSE-Apache-2.0`` are written by hand. Tests that need
another corpus file: add it here, run this, and list it in the README.
"""

from __future__ import annotations

import argparse
import lzma
import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from engine_kit import CARRIED_CORPUS as CARRIED  # noqa: E402
from engine_kit import SHARED_CORPUS as SHARED  # noqa: E402

PACK_OVER = 1_000_000

PDFPLUMBER = "real/pdfplumber/tests/pdfs/"
CAMELOT = "real/camelot/"
TABULA = "real/tabula-java/src/test/resources/technology/tabula/"
SAMPLES = "real/sample-files/"
GENERATED = "hostile/generated/"

FILES = [
    # test_service*, test_dashboard (the folder), test_engine (all of real/pdfplumber)
    "real/pdfplumber/examples/pdfs/ag-energy-round-up-2017-02-24.pdf",
    "real/pdfplumber/examples/pdfs/background-checks.pdf",
    "real/pdfplumber/examples/pdfs/ca-warn-report.pdf",
    "real/pdfplumber/examples/pdfs/san-jose-pd-firearm-sample.pdf",
    PDFPLUMBER + "issue-67-example.pdf",  # test_layout_markdown
    PDFPLUMBER + "issue-848.pdf",  # test_reading_order
    PDFPLUMBER + "issue-1054-example.pdf",  # test_ocr
    PDFPLUMBER + "issue-33-lorem-ipsum.pdf",  # test_ocr
    # test_engine: more than 20 readable PDFs under real/pdfplumber (the smallest ones)
    PDFPLUMBER + "issue-297-example.pdf",
    PDFPLUMBER + "hello_structure.pdf",
    PDFPLUMBER + "issue-140-example.pdf",
    PDFPLUMBER + "issue-987-test.pdf",
    PDFPLUMBER + "issue-466-example.pdf",
    PDFPLUMBER + "line-char-render-example.pdf",
    PDFPLUMBER + "test-punkt.pdf",
    PDFPLUMBER + "extra-attrs-example.pdf",
    PDFPLUMBER + "la-precinct-bulletin-2014-p1.pdf",
    PDFPLUMBER + "figure_structure.pdf",
    PDFPLUMBER + "mcid_example.pdf",
    PDFPLUMBER + "150109DSP-Milw-505-90D.pdf",
    PDFPLUMBER + "pdf_structure.pdf",
    PDFPLUMBER + "2023-06-20-PV.pdf",
    CAMELOT + "tests/files/health_protected.pdf",  # test_cli
    CAMELOT + "tests/files/image.pdf",  # test_ocr
    CAMELOT + "tests/files/diesel_engines.pdf",  # test_reading_order
    CAMELOT + "docs/_static/pdf/rotated.pdf",  # test_ocr
    CAMELOT + "docs/_static/pdf/column_separators.pdf",  # test_ocr
    CAMELOT + "docs/benchmark/stream/12s0324/12s0324.pdf",  # test_ocr
    CAMELOT + "docs/benchmark/lattice/agstat/agstat.pdf",  # test_ocr
    TABULA + "spanning_cells.pdf",  # test_tables
    TABULA + "schools.pdf",  # test_tables
    TABULA + "MultiColumn.pdf",  # test_tables
    TABULA + "us-024.pdf",  # test_tables (a column rule across the header's underline)
    PDFPLUMBER + "word365_structure.pdf",  # test_tables (a tight bulleted list)
    PDFPLUMBER + "issue-461-example.pdf",  # test_tables (a lab report's tight rows)
    CAMELOT + "tests/files/rainfall_distribution.pdf",  # test_tables (column rules broken)
    TABULA + "arabic.pdf",  # test_reading_order
    TABULA + "us-020.pdf",  # test_layout_markdown
    SAMPLES + "026-latex-multicolumn/multicolumn.pdf",  # test_layout_markdown
    SAMPLES + "009-pdflatex-geotopo/GeoTopo-komprimiert.pdf",  # test_reading_order
    SAMPLES + "017-unreadable-meta-data/unreadablemetadata.pdf",  # test_pdf_text
    # imagegen (test_ocr, tests/data/make_images.py)
    SAMPLES + "002-trivial-libre-office-writer/002-trivial-libre-office-writer.pdf",
    SAMPLES + "004-pdflatex-4-pages/pdflatex-4-pages.pdf",
    SAMPLES + "011-google-doc-document/google-doc-document.pdf",
    # test_engine_pool, test_engine_robustness
    GENERATED + "pages_100k.pdf",
    GENERATED + "bomb_flate_4gib.pdf",
    # test_service
    GENERATED + "xref_prev_loop.pdf",
    GENERATED + "encrypted_empty_user_aes256.pdf",
    # test_tables (hostile files with tables on)
    GENERATED + "vector_grid_200k_segments.pdf",
    GENERATED + "dense_text_1m_chars.pdf",
    GENERATED + "xobject_self_recursive.pdf",
    GENERATED + "deep_array_in_content.pdf",
    GENERATED + "truncated_half.pdf",
    GENERATED + "normal_control.pdf",
    # test_pdf_text
    "hostile/real/qpdf__bad34.pdf",
    "hostile/real/pdfbox__encryption_PasswordSample-128bit.pdf",
]
LICENCES = [
    "real/pdfplumber/LICENSE.txt",
    "real/camelot/LICENSE",
    "real/tabula-java/LICENSE",
    "real/sample-files/LICENSE",
]
MANIFESTS = [GENERATED + "GENERATED.tsv", "hostile/real/MANIFEST.tsv"]  # file name first


def carried_name(rel: str, size: int) -> str:
    return rel + ".xz" if size > PACK_OVER else rel


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=SHARED, help="the full corpus (%(default)s)")
    corpus: Path = parser.parse_args().corpus
    if not corpus.is_dir():
        raise SystemExit(f"make_corpus: no corpus at {corpus}")
    for old in (p for p in CARRIED.rglob("*") if p.is_file()):
        if old.name != "README.md" and old.name != "LICENSE-Apache-2.0":
            old.unlink()
    for rel in FILES + LICENCES:
        source = corpus / rel
        dest = CARRIED / carried_name(rel, source.stat().st_size)
        dest.parent.mkdir(parents=True, exist_ok=True)
        if dest.suffix == ".xz" and source.suffix != ".xz":
            with open(source, "rb") as src, lzma.open(dest, "wb", preset=9 | lzma.PRESET_EXTREME) as out:
                shutil.copyfileobj(src, out)
        else:
            shutil.copyfile(source, dest)
    names = {Path(rel).name for rel in FILES}
    for rel in MANIFESTS:
        header, *lines = (corpus / rel).read_text(encoding="utf-8").splitlines()
        kept = [line for line in lines if line.split("\t", 1)[0] in names]
        (CARRIED / rel).write_text("\n".join([header, *kept]) + "\n", encoding="utf-8")
    total = sum(p.stat().st_size for p in CARRIED.rglob("*") if p.is_file())
    print(f"{CARRIED.relative_to(HERE.parents[1])}: {len(FILES)} documents, {total:,} bytes")


if __name__ == "__main__":
    main()
