"""PDF: the text layer (PDFium, pypdf as the fallback), the page's geometry, layout
order, Markdown, pages drawn for OCR and for viewing, and which pages need OCR.

``text.extract_pdf`` is the extractor the registry names for PDFs; the other modules
are its stages. Tables found on PDF pages live in :mod:`docmill.processors.tables`, the
OCR engine in :mod:`docmill.processors.ocr`.
"""
