#!/usr/bin/env python3
"""Rewrite the committed OCR test images in this folder from real corpus pages.

    .venv/bin/python tests/data/make_images.py

page.png       google-doc-document.pdf page 1, 150 dpi, 8-bit grey
two-pages.tif  002-trivial-libre-office-writer.pdf page 1 and pdflatex-4-pages.pdf
               page 1, 150 dpi, one Deflate strip a frame
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from imagegen import write_test_images  # noqa: E402

if __name__ == "__main__":
    for path in write_test_images(HERE):
        print(f"{path.relative_to(HERE.parent.parent)}: {path.stat().st_size:,} bytes")
