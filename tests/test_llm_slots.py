"""Which rate-limit budget each role draws on: one limiter per (endpoint, API key), shared
by the classify and the extract role whatever their models (providers count their limits
per key or organisation; issue 15), narrowed to a model only when the provider says so."""

from __future__ import annotations

from pathlib import Path

import pytest

from docmill.llm.client import ProviderConfigError
from docmill.llm.spec import ProviderSpec, parse_spec
from docmill.llm.stage import LlmStage, StageOptions, limit_key
from docmill.testkit.llm_sim import serve_in_thread

LABELS = {"other": {"description": "anything"}}


def stage_for(
    tmp_path: Path, provider: dict[str, object], extract: dict[str, object], **options: object
) -> LlmStage:
    spec = parse_spec(
        {"provider": provider, "extract_provider": extract, "labels": LABELS}, tmp_path / "s.toml"
    )
    return LlmStage(spec, StageOptions(budget_usd=1.0, rpm=100, max_concurrency=8, **options))  # type: ignore[arg-type]


def test_two_roles_on_one_model_share_one_limiter(tmp_path: Path) -> None:
    with serve_in_thread() as sim:
        other_spelling = sim.base_url + "/"  # the same endpoint, spelled differently
        stage = stage_for(
            tmp_path,
            {"base_url": sim.base_url, "model": "sim-small"},
            {"base_url": other_spelling, "model": "sim-small", "name": "extract"},
        )
        stage.start()
        try:
            classify = stage.limiter(stage.spec.provider)
            extract = stage.limiter(stage.spec.extract_provider)
            assert classify is not None and classify is extract
            assert classify.rpm == 100  # one bucket holds llm.rpm for both roles
        finally:
            stage.close()


def test_two_models_on_one_key_share_one_limiter(tmp_path: Path) -> None:
    """Until issue 15 each model had a limiter of its own, and the key's limit was split
    between them by who met a 429 first. Now the key's one budget holds for both; each
    model keeps its own concurrency and breaker."""
    with serve_in_thread() as sim:
        stage = stage_for(
            tmp_path,
            {"base_url": sim.base_url, "model": "sim-small"},
            {"model": "sim-large"},
        )
        stage.start()
        try:
            classify = stage.limiter(stage.spec.provider)
            extract = stage.limiter(stage.spec.extract_provider)
            assert classify is not None and classify is extract
            assert classify.scope_of("sim-small") == classify.scope_of("sim-large") == "key"
            assert classify.limits_of("sim-small") == classify.limits_of("sim-large") == (100, 0)
        finally:
            stage.close()


def test_llm_limit_scope_model_counts_the_limits_per_model(tmp_path: Path) -> None:
    with serve_in_thread() as sim:
        stage = stage_for(
            tmp_path,
            {"base_url": sim.base_url, "model": "sim-small"},
            {"model": "sim-large"},
            limit_scope="model",
        )
        stage.start()
        try:
            limiter = stage.limiter(stage.spec.provider)
            assert limiter is not None
            assert limiter.scope_of("sim-small") == limiter.scope_of("sim-large") == "model"
            assert limiter.rpm == 0  # nothing at the key: llm.rpm holds for each model
            assert limiter.limits_of("sim-small") == limiter.limits_of("sim-large") == (100, 0)
        finally:
            stage.close()


def test_two_keys_get_a_limiter_each(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCMILL_TEST_KEY_A", "sk-a")
    monkeypatch.setenv("DOCMILL_TEST_KEY_B", "sk-b")
    with serve_in_thread() as sim:
        stage = stage_for(
            tmp_path,
            {"base_url": sim.base_url, "model": "sim-small", "api_key": {"$env": "DOCMILL_TEST_KEY_A"}},
            {"model": "sim-small", "api_key": {"$env": "DOCMILL_TEST_KEY_B"}},
        )
        stage.start()
        try:
            assert stage.limiter(stage.spec.provider) is not stage.limiter(stage.spec.extract_provider)
        finally:
            stage.close()


def test_limit_key_ignores_the_role_and_model_but_not_the_key_or_endpoint() -> None:
    env = {"A": "sk-1", "SAME_AS_A": "sk-1", "B": "sk-2"}
    base = ProviderSpec("openai", "https://API.openai.com/v1/", "gpt-4o-mini", {"$env": "A"})
    same = ProviderSpec("extract", "https://api.openai.com/v1", "gpt-4o", {"$env": "SAME_AS_A"})
    assert limit_key(base, env) == limit_key(same, env)
    assert limit_key(base, env)[0] == "https://api.openai.com/v1"
    assert "sk-1" not in "".join(limit_key(base, env))  # a fingerprint, never the key
    assert limit_key(ProviderSpec("x", "https://api.openai.com/v1", "gpt-4o", {"$env": "B"}), env) != (
        limit_key(same, env)
    )
    assert limit_key(ProviderSpec("x", "https://api.mistral.ai/v1", "gpt-4o", {"$env": "A"}), env) != (
        limit_key(same, env)
    )
    # a path is case-sensitive: only scheme and host are folded
    assert limit_key(ProviderSpec("x", "https://api.openai.com/V1", "gpt-4o", {"$env": "A"}), env) != (
        limit_key(same, env)
    )
    assert limit_key(ProviderSpec("x", "http://localhost:8000/v1", "m", None)) == (
        "http://localhost:8000/v1", ""
    )
    with pytest.raises(ProviderConfigError, match="NOPE"):
        limit_key(ProviderSpec("x", "https://api.openai.com/v1", "m", {"$env": "NOPE"}), env)
