"""Which rate-limit slot each role draws on: one limiter per (endpoint, model), shared by
the classify and the extract role when they name the same model (providers count their
limits per organisation and model, not per role)."""

from __future__ import annotations

from pathlib import Path

from docmill.llm.spec import ProviderSpec, parse_spec
from docmill.llm.stage import LlmStage, StageOptions, slot_key
from docmill.testkit.llm_sim import serve_in_thread

LABELS = {"other": {"description": "anything"}}


def stage_for(tmp_path: Path, provider: dict[str, str], extract: dict[str, str]) -> LlmStage:
    spec = parse_spec(
        {"provider": provider, "extract_provider": extract, "labels": LABELS}, tmp_path / "s.toml"
    )
    return LlmStage(spec, StageOptions(budget_usd=1.0, rpm=100, max_concurrency=8))


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


def test_two_models_get_a_limiter_each(tmp_path: Path) -> None:
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
            assert classify is not None and extract is not None
            assert classify is not extract
        finally:
            stage.close()


def test_slot_key_ignores_the_role_and_the_key_but_not_the_model_or_endpoint() -> None:
    base = ProviderSpec("openai", "https://API.openai.com/v1/", "gpt-4o-mini", {"$env": "A"})
    same = ProviderSpec("extract", "https://api.openai.com/v1", "gpt-4o-mini", {"$env": "B"})
    assert slot_key(base) == slot_key(same) == ("https://api.openai.com/v1", "gpt-4o-mini")
    assert slot_key(ProviderSpec("x", "https://api.openai.com/v1", "gpt-4o", None)) != slot_key(
        same
    )
    assert slot_key(ProviderSpec("x", "https://api.mistral.ai/v1", "gpt-4o-mini", None)) != (
        slot_key(same)
    )
    # a path is case-sensitive: only scheme and host are folded
    assert slot_key(ProviderSpec("x", "https://api.openai.com/V1", "gpt-4o-mini", None)) != (
        slot_key(same)
    )
