"""Where documents come from: lazy enumeration of paths, and type detection by content."""

from docmill.sources.discover import SourceError, iter_sources
from docmill.sources.filetype import sniff

__all__ = ["SourceError", "iter_sources", "sniff"]
