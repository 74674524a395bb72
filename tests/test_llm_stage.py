"""The LLM stage end to end: the real CLI against the LLM simulator on loopback."""

from __future__ import annotations

import json
import shutil
import threading
from pathlib import Path
from typing import Any

import pytest

from docmill.testkit.llm_sim import SimConfig, serve_in_thread
from engine_kit import read_parts, run_cli, status
from pdfgen import write_pdf

INVOICE_SCHEMA = {
    "type": "object",
    "properties": {
        "invoice_number": {"type": ["string", "null"]},
        "total": {"type": ["number", "null"]},
        "vendor": {"type": ["string", "null"]},
    },
    "required": ["invoice_number", "total", "vendor"],
    "additionalProperties": False,
}


PRICES = {"sim-small": (1.0, 2.0), "sim-large": (10.0, 30.0)}  # write_spec's, USD per Mtok


def write_spec(folder: Path, base_url: str, *, rules: bool = False, api_key_env: str | None = None,
               name: str = "spec.toml") -> Path:
    """A spec with three labels; ``rules`` gives invoices a pattern the local rules trust;
    ``api_key_env``: the provider key comes from that environment variable."""
    (folder / "invoice.schema.json").write_text(json.dumps(INVOICE_SCHEMA), encoding="utf-8")
    patterns = "\npatterns = ['(?i)invoice number']" if rules else ""
    # rules: keyword + pattern = 2 hits = confidence 0.75 (docmill.llm.classify)
    threshold = 0.7 if rules else 0.9
    key = f'\napi_key = {{ "$env" = "{api_key_env}" }}' if api_key_env else ""
    prices = "\n".join(f'"{m}" = {{ input = {i}, output = {o} }}' for m, (i, o) in PRICES.items())
    spec = f"""
[provider]
name = "sim"
base_url = "{base_url}"
model = "sim-small"{key}

[extract_provider]
model = "sim-large"

[prices]
{prices}

[classifier]
min_confidence = {threshold}

[labels.invoice]
description = "a bill asking for payment"
keywords = ["invoice"]{patterns}
schema_file = "invoice.schema.json"

[labels.receipt]
description = "proof of a payment made"
keywords = ["receipt"]

[labels.other]
description = "anything else"
"""
    path = folder / name
    path.write_text(spec, encoding="utf-8")
    return path


def billed_usd(stats: dict[str, Any]) -> float:
    """What the simulator billed (its ``/_sim/stats``), at write_spec's prices."""
    total = 0.0
    for model, counts in stats["by_model"].items():
        price_in, price_out = PRICES[model]
        total += (counts["prompt_tokens"] * price_in + counts["completion_tokens"] * price_out) / 1e6
    return total


def make_docs(folder: Path, n: int) -> dict[str, dict[str, Any]]:
    """n documents: invoices (with fields), receipts, letters. Returns truth by file name."""
    folder.mkdir(parents=True, exist_ok=True)
    truth: dict[str, dict[str, Any]] = {}
    for i in range(n):
        kind = ("invoice", "receipt", "other")[i % 3]
        if kind == "invoice":
            lines = [
                f"INVOICE from Acme {i}",
                f"Invoice number: INV-{1000 + i}",
                f"Vendor: Acme {i} GmbH",
                f"Total: {100 + i}.50 EUR",
            ]
            fields = {"invoice_number": f"INV-{1000 + i}", "total": 100 + i + 0.5, "vendor": f"Acme {i} GmbH"}
        elif kind == "receipt":
            lines = [f"RECEIPT {i}", "Thank you for your payment", f"Paid: {20 + i} EUR"]
            fields = None
        else:
            lines = [f"Dear customer {i},", "we are writing about your subscription."]
            fields = None
        name = f"doc-{i:03d}.pdf"
        write_pdf(folder / name, ["\n".join(lines)])
        truth[name] = {"label": kind, "fields": fields}
    return truth


def by_name(out: Path) -> dict[str, dict[str, Any]]:
    return {Path(r["source"]).name: r for r in read_parts(out)}


def llm_run(src: Path, out: Path, spec: Path, *extra: str) -> Any:
    return run_cli(
        "run", str(src), "--out", str(out), "--workers", "2", "--quiet",
        "--set", f"llm.spec={spec}", *extra,
    )


def test_classification_and_extraction_end_to_end_then_a_rerun_is_free(tmp_path: Path) -> None:
    truth = make_docs(tmp_path / "in", 12)
    with serve_in_thread(SimConfig(latency_min_s=0.01, latency_max_s=0.05, seed=1)) as sim:
        spec = write_spec(tmp_path, sim.base_url)
        out = tmp_path / "out"
        result = llm_run(tmp_path / "in", out, spec)
        assert result.returncode == 0, result.stderr
        records = by_name(out)
        assert set(records) == set(truth)
        for name, expected in truth.items():
            record = records[name]
            assert record["status"] == "done", record["error"]
            assert record["class"]["label"] == expected["label"], name
            assert record["class"]["decided_by"] == "llm"
            assert record["fields"] == expected["fields"]
            assert record["llm"]["input_tokens"] > 0 and record["llm"]["cost_usd"] > 0
        sent = sim.stats()["chat_requests"]
        assert sent == 12 + 4  # a classification each, an extraction per invoice
        spent = status(out)["llm"]
        assert spent["labels"] == {"invoice": 4, "other": 4, "receipt": 4}
        assert spent["cost_usd"] == pytest.approx(sum(r["llm"]["cost_usd"] for r in records.values()))

        # the same documents again from scratch (a lost ledger): every answer is cached
        for path in out.iterdir():
            if path.name != "llm-cache.db":
                shutil.rmtree(path) if path.is_dir() else path.unlink()
        again = llm_run(tmp_path / "in", out, spec)
        assert again.returncode == 0, again.stderr
        assert sim.stats()["chat_requests"] == sent
        rerun = by_name(out)
        assert {n: r["class"]["label"] for n, r in rerun.items()} == {
            n: t["label"] for n, t in truth.items()
        }
        assert all(r["llm"]["cost_usd"] == 0 and r["llm"]["cached"] >= 1 for r in rerun.values())


def test_confident_local_rules_decide_without_a_call(tmp_path: Path) -> None:
    make_docs(tmp_path / "in", 6)
    with serve_in_thread(SimConfig(seed=2)) as sim:
        spec = write_spec(tmp_path, sim.base_url, rules=True)
        out = tmp_path / "out"
        assert llm_run(tmp_path / "in", out, spec).returncode == 0
        records = by_name(out)
        invoices = [r for r in records.values() if r["class"]["label"] == "invoice"]
        assert len(invoices) == 2
        assert all(r["class"]["decided_by"] == "rules" for r in invoices)
        # invoices: only the extraction call; the others: a classification call
        assert sim.stats()["chat_requests"] == 2 + 4


def test_the_budget_cap_holds_and_a_higher_budget_continues(tmp_path: Path) -> None:
    truth = make_docs(tmp_path / "in", 30)
    with serve_in_thread(SimConfig(latency_min_s=0.01, latency_max_s=0.03, seed=3)) as sim:
        spec = write_spec(tmp_path, sim.base_url)
        out = tmp_path / "out"
        budget = 0.004
        first = llm_run(tmp_path / "in", out, spec, "--set", f"llm.budget_usd={budget}")
        assert first.returncode == 3, first.stderr
        assert "budget" in first.stderr and "pending" in first.stderr
        st = status(out)
        assert st["counts"]["pending"] > 0 and st["counts"]["done"] > 0
        # the most one request can cost, reserved before sending: the overrun bound
        assert st["llm"]["cost_usd"] <= budget + 1e-9
        records = by_name(out)
        assert all(r["class"]["label"] == truth[n]["label"] for n, r in records.items())

        second = llm_run(tmp_path / "in", out, spec, "--set", "llm.budget_usd=10")
        assert second.returncode == 0, second.stderr
        records = by_name(out)
        assert set(records) == set(truth)
        assert all(r["status"] == "done" for r in records.values())


def test_a_provider_outage_opens_the_breaker_and_the_run_resumes_when_it_recovers(
    tmp_path: Path,
) -> None:
    truth = make_docs(tmp_path / "in", 9)
    with serve_in_thread(SimConfig(seed=4)) as sim:
        spec = write_spec(tmp_path, sim.base_url)
        sim.set_outage(True)
        timer = threading.Timer(4.0, sim.set_outage, args=(False,))
        timer.start()
        try:
            result = llm_run(tmp_path / "in", tmp_path / "out", spec)
        finally:
            timer.cancel()
        assert result.returncode == 0, result.stderr
        stats = sim.stats()
        assert stats["by_status"].get("503", 0) >= 1
        records = by_name(tmp_path / "out")
        assert set(records) == set(truth)  # nothing lost
        assert all(r["status"] == "done" for r in records.values())
        assert all(r["class"]["label"] == truth[n]["label"] for n, r in records.items())


def test_a_drain_stops_waiting_on_an_unreachable_provider_after_run_drain_s(
    tmp_path: Path,
) -> None:
    """SIGTERM once while the provider is down: the run drains, but stops retrying the
    LLM after run.drain_s; the documents whose answer never came go back to pending (not
    failed, no attempt counted, nothing charged), the run exits interrupted (130), and a
    rerun once the provider is back finishes them."""
    import signal
    import sqlite3
    import time

    from engine_kit import start_cli, stop_all

    truth = make_docs(tmp_path / "in", 6)
    out = tmp_path / "out"
    with serve_in_thread(SimConfig(seed=6)) as sim:
        spec = write_spec(tmp_path, sim.base_url)
        sim.set_outage(True)
        proc = start_cli(
            "run", str(tmp_path / "in"), "--out", str(out), "--workers", "2", "--quiet",
            "--set", f"llm.spec={spec}", "--set", "run.drain_s=2",
        )
        try:
            deadline = time.monotonic() + 120
            while sim.stats()["outage_503"] < 3 and proc.poll() is None:
                assert time.monotonic() < deadline, "the stage never reached the provider"
                time.sleep(0.1)
            assert proc.poll() is None
            proc.send_signal(signal.SIGTERM)  # once: drain
            _stdout, stderr = proc.communicate(timeout=90)  # before the fix: drained forever
        finally:
            stop_all(proc)
        assert proc.returncode == 130, stderr
        assert "draining" in stderr and "run.drain_s" in stderr, stderr
        assert "interrupted" in stderr and "Traceback" not in stderr, stderr
        st = status(out)
        assert st["counts"]["pending"] == len(truth), st["counts"]
        assert st["counts"]["running"] == st["counts"]["failed"] == st["counts"]["done"] == 0
        assert st["llm"]["cost_usd"] == 0 and st["last_run"]["status"] == "interrupted"
        conn = sqlite3.connect(out / "docmill.db")
        try:
            assert conn.execute("SELECT COUNT(*) FROM llm_calls").fetchone() == (0,)
            assert conn.execute("SELECT MAX(attempts), COUNT(result) FROM documents").fetchone() == (0, 0)
        finally:
            conn.close()
        assert read_parts(out) == []

        sim.set_outage(False)
        again = llm_run(tmp_path / "in", out, spec)
        assert again.returncode == 0, again.stderr
        records = by_name(out)
        assert set(records) == set(truth)
        assert all(r["status"] == "done" for r in records.values())
        assert all(r["class"]["label"] == truth[n]["label"] for n, r in records.items())


def test_page_images_are_sent_to_models_that_read_them(tmp_path: Path) -> None:
    truth = make_docs(tmp_path / "in", 4)
    with serve_in_thread(SimConfig(seed=5)) as sim:
        spec = write_spec(tmp_path, sim.base_url)
        out = tmp_path / "out"
        result = llm_run(tmp_path / "in", out, spec, "--set", "llm.input=images")
        assert result.returncode == 0, result.stderr
        stats = sim.stats()
        # one rendered page per document and request: 4 classifications + 2 extractions
        assert stats["chat_requests"] == 4 + 2
        assert stats["image_parts"] == stats["chat_requests"]
        records = by_name(out)
        assert set(records) == set(truth)
        assert all("images" not in r for r in records.values())  # never stored
        # images cost their own tokens on top of the text
        assert all(r["llm"]["input_tokens"] > 0 for r in records.values())

        refused = llm_run(
            tmp_path / "in", tmp_path / "out2", spec,
            "--set", "llm.input=images", "--set", "llm.redact_pii=true",
        )
        assert refused.returncode == 1
        assert "cannot mask page images" in refused.stderr
        assert "Traceback" not in refused.stderr


# --- issue 15: the key's limit, found and held, through the real client -----------------
# The stage runs on its own (no engine) with its limiters' clock at the simulator's
# time_scale, so a simulated minute lasts 60 x SCALE seconds on both sides; rates are
# read from the simulator's per-minute counts, never from a wall clock.

SCALE = 0.05  # a simulated minute is 3 s


def stage_spec(tmp_path: Path, base_url: str) -> Any:
    from docmill.llm.spec import parse_spec

    return parse_spec(
        {
            "provider": {"name": "sim", "base_url": base_url, "model": "sim-small"},
            "extract_provider": {"model": "sim-large"},
            "prices": {"sim-small": {"input": 1.0, "output": 2.0}, "sim-large": {"input": 1.0, "output": 2.0}},
            "labels": {
                "invoice": {"description": "a bill", "keywords": ["invoice"], "schema": INVOICE_SCHEMA},
                "receipt": {"description": "a payment made", "keywords": ["receipt"]},
                "other": {"description": "anything else"},
            },
        },
        tmp_path / "spec.toml",
    )


def invoice_text(i: int) -> str:
    return f"INVOICE {i}\nInvoice number: INV-{1000 + i}\nVendor: Acme {i} GmbH\nTotal: {100 + i}.50 EUR"


def run_stage(
    tmp_path: Path,
    sim: Any,
    texts: list[str],
    *,
    timeout_s: float = 60.0,
    then_fields: int = 0,
    **options: Any,
) -> tuple[list[Any], Any]:
    """Every text through a fresh stage (no cache); then, once they are all done,
    ``then_fields`` invoices the local classifier decided (fields only). Returns (results,
    the key's limiter)."""
    import time

    from docmill.llm.stage import LlmJob, LlmStage, StageOptions

    spec = stage_spec(tmp_path, sim.base_url)
    stage = LlmStage(
        spec,
        StageOptions(budget_usd=100.0, max_concurrency=64, time_scale=SCALE, timeout_s=timeout_s, **options),
    )
    sim.reset()
    stage.start()
    results: list[Any] = []
    try:
        batches = [
            [LlmJob(i, f"{i:064x}", text) for i, text in enumerate(texts)],
            [
                LlmJob(n, f"{n:064x}", invoice_text(n), guess_label="invoice", guess_by="rules")
                for n in range(len(texts), len(texts) + then_fields)
            ],
        ]
        for batch in batches:
            for job in batch:
                stage.submit(job)
            want = len(results) + len(batch)
            deadline = time.monotonic() + 60.0
            while len(results) < want and time.monotonic() < deadline:
                time.sleep(0.05)
                results += stage.results()
        limiter = stage.limiter(spec.provider)
    finally:
        stage.close()
    assert len(results) == len(texts) + then_fields, f"{len(results)} finished"
    return results, limiter


def minutes(stats: dict[str, Any], key: str = "admitted") -> list[int]:
    """``key`` per simulated minute, from minute 0 to the last one with any request."""
    rows = {row["minute"]: row for row in stats["per_minute"]}
    last = max(rows)
    return [int(rows.get(m, {}).get(key, 0)) for m in range(last + 1)]


def sustained(counts: list[int], rpm: int) -> float:
    """Admitted per minute ÷ rpm from minute 1 to the last full minute."""
    steady = counts[1:-1]
    assert len(steady) >= 2, counts
    return sum(steady) / len(steady) / rpm


def test_the_key_is_shared_and_the_fields_get_all_of_it_once_classification_ends(
    tmp_path: Path,
) -> None:
    rpm = 40
    config = SimConfig(rpm=rpm, limit_scope="key", time_scale=SCALE, latency_min_s=0.5,
                       latency_max_s=4.5, latency_dist="lognormal", seed=21)  # fmt: skip
    with serve_in_thread(config) as sim:
        # 60 invoices classified (and their fields asked for meanwhile), then 100 more fields
        texts = [invoice_text(i) for i in range(60)]
        results, limiter = run_stage(tmp_path, sim, texts, then_fields=100)
        stats = sim.stats()
    assert all(r.status == "done" and r.fields for r in results)
    assert limiter.scope_of("sim-small") == limiter.scope_of("sim-large") == "key"
    both = minutes(stats)
    assert sustained(both, rpm) >= 0.9, both
    small, large = minutes(stats, "admitted:sim-small"), minutes(stats, "admitted:sim-large")
    ended = max(m for m, n in enumerate(small) if n)
    alone = large[ended + 1 : -1]  # full minutes with only field requests
    assert len(alone) >= 1, (small, large)
    assert min(alone) >= 0.9 * rpm, (small, large)
    late_429 = sum(minutes(stats, "429")[1:])  # the first minute's find the limit
    assert late_429 <= 0.02 * stats["admitted"], minutes(stats, "429")


def test_a_429_naming_the_model_narrows_each_model_to_its_own_limit(tmp_path: Path) -> None:
    rpm = 30
    config = SimConfig(rpm=rpm, limit_scope="model", time_scale=SCALE, latency_min_s=0.5,
                       latency_max_s=4.5, latency_dist="lognormal", seed=22)  # fmt: skip
    with serve_in_thread(config) as sim:
        results, limiter = run_stage(tmp_path, sim, [invoice_text(i) for i in range(90)])
        stats = sim.stats()
    assert all(r.status == "done" for r in results)
    assert limiter.scope_of("sim-small") == limiter.scope_of("sim-large") == "model"
    assert limiter.limits_of("sim-small")[0] == limiter.limits_of("sim-large")[0] == rpm
    assert limiter.rpm == 0  # nothing learned at the key
    # the two models together get about twice one model's limit (sharing one: at most 1x)
    assert sustained(minutes(stats), rpm) >= 1.5, minutes(stats)


def test_ratelimit_headers_give_the_limit_before_any_429(tmp_path: Path) -> None:
    rpm = 40
    config = SimConfig(rpm=rpm, tpm=100_000, limit_scope="key", ratelimit_headers=True,
                       time_scale=SCALE, latency_min_s=0.5, latency_max_s=4.5,
                       latency_dist="lognormal", seed=23)  # fmt: skip
    with serve_in_thread(config) as sim:
        results, limiter = run_stage(tmp_path, sim, [invoice_text(i) for i in range(60)])
        stats = sim.stats()
    assert all(r.status == "done" for r in results)
    assert limiter.rpm == rpm and limiter.tpm == 100_000
    # known from the first answer: no 429 finds it. (When the first requests leave the
    # minute a 429 or two may come: their new connections reached the simulator later
    # than they left, ~0.1 s that time_scale makes ~2 simulated seconds.)
    refused = minutes(stats, "429")
    assert refused[0] == 0 and sum(refused) <= 0.02 * stats["admitted"], refused
    assert sustained(minutes(stats), rpm) >= 0.9


def test_hung_requests_and_5xx_do_not_starve_a_model(tmp_path: Path) -> None:
    """Requests that hang until the client's timeout (30 simulated seconds here) and 5xx
    answers used to halve the concurrency down to 1: one hung request stopped its model.
    With the floor, the key's rate goes on while they wait."""
    rpm = 40
    config = SimConfig(rpm=rpm, limit_scope="key", time_scale=SCALE, latency_min_s=0.5,
                       latency_max_s=4.5, latency_dist="lognormal", error_rate=0.05,
                       timeout_rate=0.04, hang_s=30.0, seed=24)  # fmt: skip
    with serve_in_thread(config) as sim:
        results, limiter = run_stage(
            tmp_path, sim, [invoice_text(i) for i in range(90)], timeout_s=30.0 * SCALE
        )
        stats = sim.stats()
    assert all(r.status == "done" for r in results)
    assert stats["timeouts"] >= 3 and stats["server_errors"] >= 3, stats
    assert sustained(minutes(stats), rpm) >= 0.85, minutes(stats)
    assert min(limiter.concurrency_of("sim-small"), limiter.concurrency_of("sim-large")) >= 4
