"""``docmill estimate``: the LLM stage's cost predicted from a sample, nothing sent."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from docmill.llm.cost import PriceTable, bootstrap_mean, estimate
from docmill.llm.estimate import spread
from docmill.llm.stage import text_to_send
from docmill.testkit.llm_sim import SimConfig, serve_in_thread
from engine_kit import run_cli, status
from test_llm_stage import llm_run, make_docs, write_spec


def estimate_cli(src: Path, spec: Path, *extra: str) -> dict:
    result = run_cli("estimate", str(src), "--set", f"llm.spec={spec}", "--json", *extra)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.mark.parametrize("rules", [False, True], ids=["llm-classifies", "rules-decide-invoices"])
def test_the_estimate_sends_nothing_and_its_range_holds_the_real_cost(tmp_path: Path, rules: bool) -> None:
    make_docs(tmp_path / "in", 12)  # 4 invoices (a schema), 4 receipts, 4 letters
    with serve_in_thread(SimConfig(seed=3)) as sim:
        spec = write_spec(tmp_path, sim.base_url, rules=rules)
        est = estimate_cli(tmp_path / "in", spec)
        assert sim.stats()["chat_requests"] == 0
        assert est["documents"] == est["sampled"] == est["sent_to_llm"] == 12
        assert est["decided_locally"] == (4 if rules else 0)
        assert est["classify_calls"] == (8 if rules else 12)
        assert est["extract_calls"] == 4
        assert est["cost_low"] <= est["cost_expected"] <= est["cost_high"]
        assert est["budget_suffices"] is True

        out = tmp_path / "out"
        assert llm_run(tmp_path / "in", out, spec).returncode == 0
        assert sim.stats()["chat_requests"] == est["classify_calls"] + est["extract_calls"]
        real = status(out)["llm"]
        assert est["cost_low"] <= real["cost_usd"] <= est["cost_high"]
        # the stage's own estimator, over what is billed: the expected input is exact here
        assert est["input_tokens"] == real["tokens_in"]
        assert real["cost_usd"] == pytest.approx(est["cost_expected"], rel=0.25)


def _dead_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_sample_of_a_larger_folder_against_a_provider_that_is_not_there(tmp_path: Path) -> None:
    make_docs(tmp_path / "in", 30)
    spec = write_spec(tmp_path, f"http://127.0.0.1:{_dead_port()}/v1")
    result = run_cli(
        "estimate", str(tmp_path / "in"), "--set", f"llm.spec={spec}", "--set", "llm.budget_usd=0.001",
        "--sample", "9",
    )
    assert result.returncode == 0, result.stderr
    assert "30 documents, 9 sampled" in result.stdout
    assert "does NOT suffice" in result.stdout or "not the high end" in result.stdout
    est = estimate_cli(tmp_path / "in", spec, "--sample", "9")
    assert est["documents"] == 30 and est["sampled"] == 9
    assert est["classify_calls"] == 30  # projected: every document asks the LLM
    assert 0 < est["extract_calls"] < 30
    assert est == estimate_cli(tmp_path / "in", spec, "--sample", "9")  # deterministic


def test_estimate_needs_a_spec(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    result = run_cli("estimate", str(tmp_path / "in"))
    assert result.returncode == 2
    assert "llm.spec" in result.stderr
    spec = write_spec(tmp_path, f"http://127.0.0.1:{_dead_port()}/v1")
    missing = run_cli("estimate", str(tmp_path / "nope"), "--set", f"llm.spec={spec}")
    assert missing.returncode == 1
    assert "source not found" in missing.stderr


def test_spread_is_even_deterministic_and_covers_small_folders() -> None:
    assert spread(5, 50) == [0, 1, 2, 3, 4]
    assert spread(0, 10) == [] and spread(10, 0) == []
    picked = spread(1000, 50)
    assert picked == spread(1000, 50) and len(set(picked)) == 50
    assert all(20 * k <= i < 20 * (k + 1) for k, i in enumerate(picked))  # one per stratum
    assert len({i % 3 for i in spread(30, 10)}) > 1  # not aliased by a period of 3


def test_bootstrap_mean_is_the_estimates_interval() -> None:
    samples = [800, 1200, 1500, 3000, 900]
    lo, mean, hi = bootstrap_mean(samples)
    assert lo <= mean <= hi
    e = estimate(samples, 1_000_000, "sim", 0, prices=PriceTable({"sim": {"input": 1.0, "output": 0.0}}))
    assert e.expected == pytest.approx(mean) and e.low == pytest.approx(lo) and e.high == pytest.approx(hi)


def test_text_to_send_cuts_like_the_bridge() -> None:
    assert text_to_send(["a", "b", "c"], 2, 100) == "a\n\nb"
    assert text_to_send(["a", "b", "c"], 0, 100) == "a\n\nb\n\nc"
    assert text_to_send(["abcdef"], 3, 4) == "abcd"


EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "llm"


def example_spec(folder: Path, base_url: str) -> Path:
    """``examples/llm/spec.toml`` with its provider at the simulator, without a key
    (schemas beside it)."""
    import re
    import shutil

    folder.mkdir(parents=True, exist_ok=True)
    for schema in EXAMPLE.glob("*.schema.json"):
        shutil.copy(schema, folder / schema.name)
    text = (EXAMPLE / "spec.toml").read_text(encoding="utf-8")
    text = re.sub(r'(?m)^base_url = ".*"', f'base_url = "{base_url}"', text, count=1)
    text = re.sub(r"(?m)^api_key = .*$", "", text)  # the simulator needs no key
    path = folder / "spec.toml"
    path.write_text(text, encoding="utf-8")
    return path


def billed_usd(stats: dict, spec: Path) -> float:
    """What the simulator billed per model (``by_model``) at the spec's prices."""
    import tomllib

    prices = tomllib.loads(spec.read_text(encoding="utf-8"))["prices"]
    return sum(
        counts["prompt_tokens"] * prices[model]["input"] / 1e6
        + counts["completion_tokens"] * prices[model]["output"] / 1e6
        for model, counts in stats["by_model"].items()
    )


def test_the_estimate_is_calibrated_on_a_labelled_set_it_was_not_tuned_on(tmp_path: Path) -> None:
    """The estimator's constants were tuned on the labelled corpus of seed 1
    (bench/llm_estimate.py); seed 2 is held out. The example spec: the rules decide what
    they are sure of, sim-small classifies the rest, sim-large extracts invoices' and
    receipts' fields; 3 % of the simulator's JSON answers are malformed (repairs)."""
    from docmill.testkit.labelled import generate

    src = tmp_path / "in"
    generate(src, 90, 2)
    (src / "truth.jsonl").unlink()
    with serve_in_thread(SimConfig(invalid_json_rate=0.03, seed=5)) as sim:
        spec = example_spec(tmp_path / "spec", sim.base_url)
        est = estimate_cli(src, spec, "--sample", "90")
        assert sim.stats()["chat_requests"] == 0
        assert est["repair_calls"] > 0
        out = tmp_path / "out"
        assert llm_run(src, out, spec, "--set", "llm.budget_usd=100").returncode == 0
        stats = sim.stats()
    billed = billed_usd(stats, spec)
    assert stats["by_model"]["sim-large"]["answers"] > est["extract_calls"]  # repairs billed
    assert status(out)["llm"]["cost_usd"] == pytest.approx(billed, rel=1e-6)
    assert est["cost_low"] <= billed <= est["cost_high"]
    # the issue asks for +-15 %; held-out sets measure within 7 % (bench/README.md)
    assert est["cost_expected"] == pytest.approx(billed, rel=0.10), (est, billed)
    # and its parts: typical answers' length, field requests with their repairs
    assert est["output_tokens"] == pytest.approx(stats["completion_tokens"], rel=0.15)
    large = stats["by_model"]["sim-large"]["answers"]
    assert est["extract_calls"] + est["repair_calls"] == pytest.approx(large, rel=0.10)
