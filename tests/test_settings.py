"""Settings: defaults, layering (defaults < file < env < flags), coercion, errors."""

from __future__ import annotations

import copy
import dataclasses
import json
import os
import pickle
from pathlib import Path

import pytest

from docmill.settings import (
    ExtractSettings,
    OutputSettings,
    RunSettings,
    Settings,
    SettingsError,
    SourceSettings,
    load_settings,
)
from docmill.settings.loader import known_keys

CONTRACT_DEFAULTS = {
    "run.workers": 0,
    "run.window": 0,
    "run.timeout_s": 120.0,
    "run.memory_mb": 2048,
    "run.max_attempts": 3,
    "run.recycle_after": 1000,
    "run.split_pages": 500,
    "run.progress_interval_s": 5.0,
    "run.max_file_mb": 2048,
    "run.drain_s": 30.0,
    "run.executor": "local",
    "run.ray_address": "auto",
    "run.ray_files": "auto",
    "run.ray_ship_mb": 256.0,
    "sources.include": ("**/*",),
    "sources.exclude": (),
    "sources.follow_symlinks": False,
    "sources.confine_to_root": False,
    "sources.spool_mb": 1024.0,
    "sources.downloads": 8,
    "sources.requests_per_s": 1000.0,
    "sources.retries": 8,
    "sources.s3_get": "lean",
    "sources.gdrive_credentials": "",
    "sources.gdrive_token_env": "",
    "sources.gdrive_subject": "",
    "sources.gdrive_queries_per_100s": 1000,
    "sources.gdrive_page_size": 1000,
    "sources.gdrive_api_url": "https://www.googleapis.com",
    "sources.gdrive_token_url": "https://oauth2.googleapis.com/token",
    "extract.max_pages": 0,
    "extract.fallback_max_mb": 1.0,
    "extract.tables": False,
    "extract.ocr": "auto",
    "extract.ocr_languages": "eng",
    "extract.reading_order": "pdfium",
    "output.format": "jsonl",
    "output.part_max_records": 1000,
    "output.part_max_seconds": 10.0,
    "output.markdown": False,
    "llm.spec": "",
    "llm.input": "text",
    "llm.image_dpi": 100,
    "llm.budget_usd": 10.0,
    "llm.redact_pii": False,
    "llm.max_pages": 3,
    "llm.max_chars": 12000,
    "llm.max_output_tokens": 512,
    "llm.rpm": 0,
    "llm.tpm": 0,
    "llm.limit_scope": "key",
    "llm.max_concurrency": 64,
    "llm.timeout_s": 60.0,
    "llm.cache": True,
    "service.host": "127.0.0.1",
    "service.port": 8080,
    "service.data_dir": "docmill-service",
    "service.extract_workers": 0,
    "service.job_workers": 1,
    "service.max_upload_mb": 50.0,
    "service.max_files": 10000,
    "service.extract_max_mb": 10.0,
    "service.extract_max_pages": 20,
    "service.allowed_roots": (),
    "service.allowed_hosts": (),
    "service.allowed_sources": (),
    "service.allowed_deliveries": (),
    "service.auth": "keys",
    "service.redis_url": "",
    "service.tiers_file": "",
    "service.max_job_mb": 1024.0,
    "service.max_json_kb": 64.0,
    "service.auth_fail_limit": 20,
    "service.auth_fail_window_s": 60.0,
    "service.upload_retention_h": 24.0,
    "service.llm_specs": (),
}


def value(settings: Settings, key: str) -> object:
    section, name = key.split(".", 1)
    return getattr(getattr(settings, section), name)


@pytest.fixture(autouse=True)
def _clean_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No stray ./docmill.toml, no DOCMILL_* variables from the caller's shell."""
    monkeypatch.chdir(tmp_path)
    for name in list(os.environ):
        if name.startswith("DOCMILL_"):
            monkeypatch.delenv(name)


def write_toml(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


# --- defaults ------------------------------------------------------------------------


def test_known_keys_are_exactly_the_documented_ones() -> None:
    assert sorted(known_keys()) == sorted(CONTRACT_DEFAULTS)


def test_defaults_match_the_contract_and_come_from_the_default_layer() -> None:
    settings = load_settings(env={})
    for key, expected in CONTRACT_DEFAULTS.items():
        got = value(settings, key)
        assert got == expected, key
        assert type(got) is type(expected), key
        assert settings.origin(key) == "default", key
    assert settings == Settings()


def test_to_dict_is_json_serialisable_and_complete() -> None:
    data = load_settings(env={}).to_dict()
    assert set(data) == {"run", "sources", "extract", "output", "llm", "service", "deliver"}
    assert data.pop("deliver") == []
    flat = {f"{s}.{k}" for s, table in data.items() for k in table}
    assert flat == set(known_keys())
    assert json.loads(json.dumps(data))["run"]["timeout_s"] == 120.0


# --- layering ------------------------------------------------------------------------


def test_file_layer_overrides_defaults(tmp_path: Path) -> None:
    cfg = write_toml(tmp_path / "cfg.toml", "[run]\nworkers = 2\ntimeout_s = 30\n")
    settings = load_settings(cfg, env={})
    assert settings.run.workers == 2
    assert settings.run.timeout_s == 30.0
    assert isinstance(settings.run.timeout_s, float)
    assert settings.origin("run.workers") == f"file:{cfg}"
    assert settings.origin("run.memory_mb") == "default"


def test_docmill_toml_in_working_directory_is_read_by_default(tmp_path: Path) -> None:
    write_toml(tmp_path / "docmill.toml", '[output]\nformat = "parquet"\n')
    settings = load_settings(env={})
    assert settings.output.format == "parquet"
    assert settings.origin("output.format").startswith("file:")
    assert settings.origin("output.format").endswith("docmill.toml")


def test_explicit_config_path_wins_over_working_directory_file(tmp_path: Path) -> None:
    write_toml(tmp_path / "docmill.toml", "[run]\nworkers = 7\n")
    other = write_toml(tmp_path / "other.toml", "[run]\nwindow = 9\n")
    settings = load_settings(other, env={})
    assert settings.run.window == 9
    assert settings.run.workers == 0  # ./docmill.toml was not read


def test_env_overrides_file_and_flag_overrides_env(tmp_path: Path) -> None:
    cfg = write_toml(tmp_path / "cfg.toml", "[run]\nworkers = 2\nwindow = 2\nmemory_mb = 100\n")
    env = {"DOCMILL_RUN__WORKERS": "3", "DOCMILL_RUN__WINDOW": "3"}
    settings = load_settings(cfg, env=env, overrides={"run.workers": "4"})
    assert settings.run.workers == 4
    assert settings.origin("run.workers") == "flag"
    assert settings.run.window == 3
    assert settings.origin("run.window") == "env:DOCMILL_RUN__WINDOW"
    assert settings.run.memory_mb == 100
    assert settings.origin("run.memory_mb") == f"file:{cfg}"
    assert settings.run.timeout_s == 120.0
    assert settings.origin("run.timeout_s") == "default"


def test_env_defaults_to_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCMILL_EXTRACT__MAX_PAGES", "3")
    settings = load_settings()
    assert settings.extract.max_pages == 3
    assert settings.origin("extract.max_pages") == "env:DOCMILL_EXTRACT__MAX_PAGES"


def test_env_names_need_the_prefix_and_double_underscore() -> None:
    env = {
        "DOCMILL_RUN_WORKERS": "9",  # single underscore: not a setting
        "DOCMILL_HOME": "/somewhere",  # no section separator: ignored
        "RUN__WORKERS": "9",  # no prefix
        "docmill_run__workers": "9",  # the prefix is case-sensitive
    }
    settings = load_settings(env=env)
    assert settings.run.workers == 0
    assert settings.origin("run.workers") == "default"


def test_env_section_and_key_are_case_insensitive_after_the_prefix() -> None:
    settings = load_settings(env={"DOCMILL_Run__Workers": "5"})
    assert settings.run.workers == 5


def test_unknown_env_setting_names_the_variable() -> None:
    with pytest.raises(SettingsError) as info:
        load_settings(env={"DOCMILL_RUN__WROKERS": "2"})
    message = str(info.value)
    assert "DOCMILL_RUN__WROKERS" in message
    assert "run.workers" in message


# --- coercion of text ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "text", "expected"),
    [
        ("run.workers", "8", 8),
        ("run.workers", " 8 ", 8),
        ("run.timeout_s", "2.5", 2.5),
        ("run.timeout_s", "30", 30.0),
        ("sources.follow_symlinks", "true", True),
        ("sources.follow_symlinks", "YES", True),
        ("sources.follow_symlinks", "1", True),
        ("sources.follow_symlinks", "on", True),
        ("sources.follow_symlinks", "false", False),
        ("sources.follow_symlinks", "No", False),
        ("sources.follow_symlinks", "0", False),
        ("sources.follow_symlinks", "off", False),
        ("output.format", "parquet", "parquet"),
    ],
)
def test_text_from_env_and_flags_is_coerced(key: str, text: str, expected: object) -> None:
    section, name = key.split(".")
    from_env = load_settings(env={f"DOCMILL_{section.upper()}__{name.upper()}": text})
    from_flag = load_settings(env={}, overrides={key: text})
    for settings in (from_env, from_flag):
        got = value(settings, key)
        assert got == expected
        assert type(got) is type(expected)


@pytest.mark.parametrize(
    ("key", "text"),
    [
        ("run.workers", "four"),
        ("run.workers", "2.5"),
        ("run.workers", ""),
        ("run.timeout_s", "fast"),
        ("sources.follow_symlinks", "maybe"),
        ("sources.include", "[not json"),
        ("sources.include", "[1, 2]"),
    ],
)
def test_unparseable_text_raises_settings_error_naming_the_key(key: str, text: str) -> None:
    with pytest.raises(SettingsError, match=key.replace(".", r"\.")):
        load_settings(env={}, overrides={key: text})


def test_non_text_flag_values_are_taken_as_typed() -> None:
    settings = load_settings(env={}, overrides={"run.workers": 4, "run.timeout_s": 3})
    assert settings.run.workers == 4
    assert settings.run.timeout_s == 3.0
    assert isinstance(settings.run.timeout_s, float)
    with pytest.raises(SettingsError):
        load_settings(env={}, overrides={"run.workers": True})


@pytest.mark.parametrize(
    "toml",
    [
        '[run]\nworkers = "4"\n',  # TOML is typed: a string is not an int
        "[run]\nworkers = true\n",  # a bool is not an int
        "[run]\nworkers = 2.5\n",
        '[run]\ntimeout_s = "10"\n',
        "[sources]\nfollow_symlinks = 1\n",
        '[sources]\ninclude = "*.pdf"\n',  # a list is required
        "[sources]\ninclude = [1, 2]\n",
        "[output]\nformat = 1\n",
    ],
)
def test_file_values_of_the_wrong_type_raise(tmp_path: Path, toml: str) -> None:
    cfg = write_toml(tmp_path / "cfg.toml", toml)
    with pytest.raises(SettingsError, match="expected"):
        load_settings(cfg, env={})


# --- list settings -------------------------------------------------------------------


def test_list_setting_from_toml(tmp_path: Path) -> None:
    cfg = write_toml(
        tmp_path / "cfg.toml", '[sources]\ninclude = ["**/*.pdf", "*.PDF"]\nexclude = []\n'
    )
    settings = load_settings(cfg, env={})
    assert settings.sources.include == ("**/*.pdf", "*.PDF")
    assert settings.sources.exclude == ()
    assert isinstance(settings.sources.include, tuple)


def test_list_setting_from_env_comma_list() -> None:
    settings = load_settings(env={"DOCMILL_SOURCES__EXCLUDE": "*.tmp,drafts/*"})
    assert settings.sources.exclude == ("*.tmp", "drafts/*")


def test_list_setting_from_env_comma_list_ignores_spaces_after_commas() -> None:
    # "*.pdf, *.txt" is how people write lists; a pattern " *.txt" would match nothing.
    settings = load_settings(env={"DOCMILL_SOURCES__INCLUDE": "*.pdf, *.txt"})
    assert settings.sources.include == ("*.pdf", "*.txt")


def test_list_setting_from_env_json_keeps_commas_inside_items() -> None:
    settings = load_settings(env={"DOCMILL_SOURCES__INCLUDE": '["a,b/*.pdf", "c.pdf"]'})
    assert settings.sources.include == ("a,b/*.pdf", "c.pdf")


def test_empty_env_list_means_no_patterns() -> None:
    settings = load_settings(env={"DOCMILL_SOURCES__EXCLUDE": ""})
    assert settings.sources.exclude == ()


def test_list_setting_from_flag() -> None:
    settings = load_settings(env={}, overrides={"sources.include": "*.pdf,*.PDF"})
    assert settings.sources.include == ("*.pdf", "*.PDF")
    assert settings.origin("sources.include") == "flag"


# --- errors --------------------------------------------------------------------------


def test_unknown_flag_key_lists_every_known_key() -> None:
    with pytest.raises(SettingsError) as info:
        load_settings(env={}, overrides={"run.nonsense": "1"})
    message = str(info.value)
    assert "run.nonsense" in message
    for key in known_keys():
        assert key in message


def test_unknown_key_in_file_raises(tmp_path: Path) -> None:
    cfg = write_toml(tmp_path / "cfg.toml", "[run]\nworkerz = 2\n")
    with pytest.raises(SettingsError, match=r"run\.workerz.*run\.workers"):
        load_settings(cfg, env={})


def test_unknown_section_names_it_and_the_known_sections(tmp_path: Path) -> None:
    cfg = write_toml(tmp_path / "cfg.toml", "[runner]\nworkers = 2\n")
    with pytest.raises(SettingsError) as info:
        load_settings(cfg, env={})
    message = str(info.value)
    assert "[runner]" in message
    for section in ("run", "sources", "extract", "output"):
        assert section in message


def test_top_level_value_outside_a_section_is_rejected(tmp_path: Path) -> None:
    cfg = write_toml(tmp_path / "cfg.toml", "workers = 2\n")
    with pytest.raises(SettingsError, match="workers"):
        load_settings(cfg, env={})


def test_missing_config_file_raises(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    with pytest.raises(SettingsError, match="not found"):
        load_settings(missing, env={})


def test_invalid_toml_raises_settings_error(tmp_path: Path) -> None:
    cfg = write_toml(tmp_path / "cfg.toml", "[run\nworkers = \n")
    with pytest.raises(SettingsError, match="cannot read config file"):
        load_settings(cfg, env={})


@pytest.mark.parametrize(
    ("key", "text"),
    [
        ("run.workers", "-1"),
        ("run.window", "-2"),
        ("extract.max_pages", "-1"),
        ("run.timeout_s", "0"),
        ("run.timeout_s", "-5"),
        ("run.memory_mb", "0"),
        ("run.max_attempts", "0"),
        ("run.recycle_after", "0"),
        ("run.split_pages", "0"),
        ("run.progress_interval_s", "0"),
        ("run.max_file_mb", "0"),
        ("run.drain_s", "-1"),
        ("output.part_max_records", "0"),
        ("output.part_max_seconds", "0"),
    ],
)
def test_out_of_range_values_raise(key: str, text: str) -> None:
    with pytest.raises(SettingsError, match=key.replace(".", r"\.")):
        load_settings(env={}, overrides={key: text})


@pytest.mark.parametrize("key", ["run.workers", "run.window", "extract.max_pages"])
def test_zero_is_allowed_where_it_means_automatic(key: str) -> None:
    assert value(load_settings(env={}, overrides={key: "0"}), key) == 0


def test_bad_output_format_lists_the_choices() -> None:
    with pytest.raises(SettingsError) as info:
        load_settings(env={"DOCMILL_OUTPUT__FORMAT": "csv"})
    message = str(info.value)
    assert "output.format" in message
    assert "jsonl" in message
    assert "parquet" in message


def test_range_errors_are_checked_for_file_values_too(tmp_path: Path) -> None:
    cfg = write_toml(tmp_path / "cfg.toml", "[run]\nworkers = -3\n")
    with pytest.raises(SettingsError, match=r"run\.workers"):
        load_settings(cfg, env={})


def test_settings_error_is_a_value_error() -> None:
    assert issubclass(SettingsError, ValueError)


# --- immutability and derived values -------------------------------------------------


def test_settings_are_frozen() -> None:
    settings = load_settings(env={}, overrides={"run.workers": "2"})
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.run.workers = 3  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.run = RunSettings()  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.sources.include = ("x",)  # type: ignore[misc]
    for cls in (RunSettings, SourceSettings, ExtractSettings, OutputSettings, Settings):
        assert cls.__dataclass_params__.frozen, cls  # type: ignore[attr-defined]
    assert settings.run.workers == 2


def test_origins_cannot_be_changed_after_load() -> None:
    settings = load_settings(env={}, overrides={"run.workers": "2"})
    with pytest.raises(TypeError):
        settings.origins["run.workers"] = "default"  # type: ignore[index]
    assert settings.origin("run.workers") == "flag"


def test_settings_survive_pickle_and_deepcopy() -> None:
    """Settings cross process boundaries (multiprocessing, executors) and get copied."""
    settings = load_settings(env={"DOCMILL_RUN__WINDOW": "4"}, overrides={"run.workers": "2"})
    for clone in (pickle.loads(pickle.dumps(settings)), copy.deepcopy(settings)):
        assert clone == settings
        assert clone.origin("run.workers") == "flag"
        assert clone.origin("run.window") == "env:DOCMILL_RUN__WINDOW"
        assert clone.origin("run.timeout_s") == "default"


def test_equal_values_from_different_layers_compare_equal() -> None:
    a = load_settings(env={"DOCMILL_RUN__WORKERS": "2"})
    b = load_settings(env={}, overrides={"run.workers": 2})
    assert a == b
    assert a.origin("run.workers") != b.origin("run.workers")


def test_workers_and_window_properties() -> None:
    explicit = load_settings(env={}, overrides={"run.workers": "3"})
    assert explicit.workers == 3
    assert explicit.window == 48
    windowed = load_settings(env={}, overrides={"run.workers": "3", "run.window": "5"})
    assert windowed.window == 5
    auto = load_settings(env={})
    assert auto.workers == len(os.sched_getaffinity(0))
    assert auto.workers >= 1
    assert auto.window == 16 * auto.workers
