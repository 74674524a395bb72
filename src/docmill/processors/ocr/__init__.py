"""OCR: Tesseract on one image (``tesseract``), the page loop that keeps a page's text
when it fails (``pages``), the mendings of its reading from the page's pixels
(``leaders``, ``rules``, ``sideways``), and image documents (``images``).

Nothing here knows PDF: a PDF page reaches OCR drawn as a grey image by
:mod:`docmill.processors.pdf.render` (see :mod:`docmill.processors.pdf.scanned`).
"""
