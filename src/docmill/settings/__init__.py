"""Configuration: typed, frozen, layered (defaults < docmill.toml < DOCMILL_* env < flags)."""

from docmill.settings.loader import (
    ExtractSettings,
    LlmSettings,
    OutputSettings,
    RunSettings,
    ServiceSettings,
    Settings,
    SettingsError,
    SourceSettings,
    load_settings,
    with_overrides,
)

__all__ = [
    "ExtractSettings",
    "LlmSettings",
    "OutputSettings",
    "RunSettings",
    "ServiceSettings",
    "Settings",
    "SettingsError",
    "SourceSettings",
    "load_settings",
    "with_overrides",
]
