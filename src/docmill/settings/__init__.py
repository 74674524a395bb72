"""Configuration: typed, frozen, layered (defaults < docmill.toml < DOCMILL_* env < flags)."""

from docmill.settings.loader import (
    ExtractSettings,
    LlmSettings,
    OutputSettings,
    RunSettings,
    Settings,
    SettingsError,
    SourceSettings,
    load_settings,
)

__all__ = [
    "ExtractSettings",
    "LlmSettings",
    "OutputSettings",
    "RunSettings",
    "Settings",
    "SettingsError",
    "SourceSettings",
    "load_settings",
]
