"""Configuration: typed, frozen, layered (defaults < docmill.toml < DOCMILL_* env < flags)."""

from docmill.settings.loader import (
    ExtractSettings,
    LlmSettings,
    OutputSettings,
    ServiceSettings,
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
    "ServiceSettings",
    "RunSettings",
    "Settings",
    "SettingsError",
    "SourceSettings",
    "load_settings",
]
