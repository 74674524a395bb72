"""Configuration: typed, frozen, layered (defaults < docmill.toml < DOCMILL_* env < flags)."""

from docmill.settings.loader import (
    ExtractSettings,
    OutputSettings,
    RunSettings,
    Settings,
    SettingsError,
    SourceSettings,
    load_settings,
)

__all__ = [
    "ExtractSettings",
    "OutputSettings",
    "RunSettings",
    "Settings",
    "SettingsError",
    "SourceSettings",
    "load_settings",
]
