"""docmill: turn piles of documents into data.

The public surface is small and imported lazily so that ``import docmill`` (and the
CLI) start fast::

    import docmill
    settings = docmill.load_settings(overrides={"run.workers": 4})
    summary = docmill.run(["invoices/"], out_dir="out", settings=settings)

    record = docmill.extract("invoice.pdf")          # one document, one typed Record
    for record in docmill.results("out", status="done"):  # a folder's records, even mid-run
        print(record.source, record.pages, record.label)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = [
    "Record", "RunSummary", "Settings", "__version__", "extract", "load_settings", "results", "run",
]
__version__ = "0.1.0"

if TYPE_CHECKING:
    from docmill.engine.api import RunSummary, run
    from docmill.engine.extract import extract
    from docmill.model import Record
    from docmill.settings.loader import Settings, load_settings
    from docmill.state.browse import results

_LAZY = {
    "run": ("docmill.engine.api", "run"),
    "extract": ("docmill.engine.extract", "extract"),
    "results": ("docmill.state.browse", "results"),
    "Record": ("docmill.model", "Record"),
    "RunSummary": ("docmill.engine.api", "RunSummary"),
    "Settings": ("docmill.settings.loader", "Settings"),
    "load_settings": ("docmill.settings.loader", "load_settings"),
}


def __getattr__(name: str) -> Any:
    try:
        module_name, attr = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'docmill' has no attribute {name!r}") from None
    import importlib

    return getattr(importlib.import_module(module_name), attr)
