"""docmill: turn piles of documents into data.

The public surface is small and imported lazily so that ``import docmill`` (and the
CLI) start fast::

    import docmill
    settings = docmill.load_settings(overrides={"run.workers": 4})
    summary = docmill.run(["invoices/"], out_dir="out", settings=settings)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = ["RunSummary", "Settings", "__version__", "load_settings", "run"]
__version__ = "0.1.0"

if TYPE_CHECKING:
    from docmill.engine.api import RunSummary, run
    from docmill.settings.loader import Settings, load_settings

_LAZY = {
    "run": ("docmill.engine.api", "run"),
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
