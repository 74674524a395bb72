"""Extractors for formats other than PDF, one small module each, standard library only.

``package`` opens zip-based formats (EPUB, DOCX, XLSX, PPTX) with caps on what a part
may decompress to and an XML parser that refuses DTDs; ``html_text`` turns (X)HTML into
visible text for HTML files and EPUB chapters alike.
"""
