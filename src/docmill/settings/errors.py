"""The one error configuration raises (its own module: the loader and the ``[[deliver]]``
parser both raise it)."""

from __future__ import annotations


class SettingsError(ValueError):
    """Bad configuration: an unknown key, a value of the wrong type or out of range."""
