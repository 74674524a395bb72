"""The LLM stage's budget, spend and answers (issue 15): the real CLI against the LLM
simulator on loopback.

- a budget of about half a run's cost is spent (0.90-1.00 of it, never more) and finishes
  documents with their fields, stranding none between classification and fields;
- ``kill -9`` in the middle of a run loses at most the answers of requests in flight: the
  ledger's spend is what the simulator billed, less those;
- a malformed classification answer gets one repair request; an answer that is valid JSON
  but not a label is never cached, so ``docmill retry`` asks again;
- a record's ``llm.cost_usd`` is its total over every billed answer, listed in
  ``llm.attempts``.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest

from docmill.testkit.llm_sim import SimConfig, serve_in_thread
from engine_kit import run_cli, start_cli, status, stop_all
from pdfgen import write_pdf
from test_llm_stage import billed_usd, by_name, llm_run, make_docs, write_spec


def ledger(out: Path, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    with sqlite3.connect(out / "docmill.db") as conn:
        return conn.execute(sql, args).fetchall()


def stranded(out: Path) -> int:
    """Pending documents whose classification was paid and named a label with fields,
    with no field request sent."""
    rows = ledger(
        out,
        "SELECT d.id FROM documents d WHERE d.state = 'pending' "
        "AND EXISTS (SELECT 1 FROM llm_calls c WHERE c.doc_id = d.id AND c.role = 'classify' "
        "AND c.outcome = 'valid') "
        "AND NOT EXISTS (SELECT 1 FROM llm_calls c WHERE c.doc_id = d.id AND c.role = 'extract')",
    )
    return len(rows)


def assert_totals_over_attempts(records: dict[str, dict[str, Any]]) -> None:
    for name, record in records.items():
        llm = record["llm"]
        assert llm["cost_usd"] == pytest.approx(sum(a["cost_usd"] for a in llm["attempts"])), name
        assert llm["input_tokens"] == sum(a["input_tokens"] for a in llm["attempts"]), name


def test_half_the_budget_is_spent_on_finished_documents_and_the_rest_finishes_later(
    tmp_path: Path,
) -> None:
    truth = make_docs(tmp_path / "in", 60)
    with serve_in_thread(SimConfig(latency_min_s=0.01, latency_max_s=0.05, seed=5)) as sim:
        spec = write_spec(tmp_path, sim.base_url)
        full = tmp_path / "full"
        assert llm_run(tmp_path / "in", full, spec).returncode == 0
        full_cost = status(full)["llm"]["cost_usd"]
        assert full_cost == pytest.approx(billed_usd(sim.stats()))

        budget = round(full_cost / 2, 6)
        sim.reset()
        out = tmp_path / "half"  # its own folder: its own ledger and answer cache
        first = llm_run(tmp_path / "in", out, spec, "--set", f"llm.budget_usd={budget}")
        assert first.returncode == 3, first.stderr
        spent = status(out)["llm"]["cost_usd"]
        assert spent == pytest.approx(billed_usd(sim.stats()))
        # spends the budget, never more
        assert 0.90 * budget <= spent <= budget + 1e-12, (spent, budget)
        records = by_name(out)
        done = [r for r in records.values() if r["status"] == "done"]
        with_fields = [r for r in done if truth[Path(r["source"]).name]["fields"]]
        assert len(done) >= 0.4 * len(truth)
        # an invoice that is finished has its fields; about half the invoices are
        assert all(r["fields"] == truth[Path(r["source"]).name]["fields"] for r in with_fields)
        assert len(with_fields) >= 0.4 * sum(1 for t in truth.values() if t["fields"])
        # none left classified without fields while money for its fields was there: only
        # at the very end, alone, a document may be classified whose fields then do not fit
        field_cost = ledger(out, "SELECT MAX(cost_usd) FROM llm_calls WHERE role = 'extract'")[0][0]
        if stranded(out):
            assert budget - spent < 2 * field_cost, (stranded(out), budget - spent, field_cost)
        assert_totals_over_attempts(records)

        # a higher budget finishes the rest; classifications paid before are not paid again
        second = llm_run(tmp_path / "in", out, spec, "--set", "llm.budget_usd=10")
        assert second.returncode == 0, second.stderr
        records = by_name(out)
        assert set(records) == set(truth)
        assert all(r["status"] == "done" for r in records.values())
        assert all(r["fields"] == truth[n]["fields"] for n, r in records.items())
        assert_totals_over_attempts(records)
        total = status(out)["llm"]["cost_usd"]
        assert total == pytest.approx(sum(r["llm"]["cost_usd"] for r in records.values()))
        assert total == pytest.approx(billed_usd(sim.stats()))
        assert total <= full_cost * 1.01


def test_kill_9_mid_run_loses_at_most_the_requests_in_flight(tmp_path: Path) -> None:
    truth = make_docs(tmp_path / "in", 60)
    config = SimConfig(latency_min_s=0.15, latency_max_s=0.3, seed=6)
    with serve_in_thread(config) as sim:
        spec = write_spec(tmp_path, sim.base_url)
        out = tmp_path / "out"
        concurrency = 4  # per model: at most 8 requests in flight
        args = (
            "run", str(tmp_path / "in"), "--out", str(out), "--workers", "2", "--quiet",
            "--set", f"llm.spec={spec}", "--set", f"llm.max_concurrency={concurrency}",
        )  # fmt: skip
        proc = start_cli(*args)
        try:
            deadline = time.monotonic() + 120
            while sim.stats()["ok"] < 30 and time.monotonic() < deadline:
                assert proc.poll() is None, proc.communicate()
                time.sleep(0.02)
            in_flight = sim.stats()["in_flight"]
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        finally:
            stop_all(proc)
        time.sleep(0.5)  # the simulator answers (and bills) what was in flight
        stats = sim.stats()
        answers = sum(c["answers"] for c in stats["by_model"].values())
        assert answers >= 30
        rows = ledger(out, "SELECT COUNT(*), COALESCE(SUM(cost_usd), 0) FROM llm_calls")[0]
        spend = ledger(out, "SELECT SUM(cost_usd) FROM documents")[0][0]
        assert spend == pytest.approx(rows[1])
        # every billed answer is in the ledger but those of requests in flight at the kill
        assert answers - rows[0] <= max(in_flight, 2 * concurrency), (answers, rows, in_flight)
        assert rows[1] >= billed_usd(stats) * (answers - 2 * concurrency) / answers * 0.9

        resumed = llm_run(tmp_path / "in", out, spec)
        assert resumed.returncode == 0, resumed.stderr
        records = by_name(out)
        assert set(records) == set(truth)
        assert all(r["status"] == "done" for r in records.values())
        stats = sim.stats()
        answers = sum(c["answers"] for c in stats["by_model"].values())
        rows = ledger(out, "SELECT COUNT(*), SUM(cost_usd) FROM llm_calls")[0]
        assert answers - rows[0] <= 2 * concurrency
        assert status(out)["llm"]["cost_usd"] == pytest.approx(rows[1])
        assert_totals_over_attempts(records)


def label_docs(folder: Path, n: int) -> dict[str, str]:
    """n documents whose labels need no fields (receipts and others): classification only."""
    folder.mkdir(parents=True, exist_ok=True)
    truth: dict[str, str] = {}
    for i in range(n):
        if i % 2:
            lines, label = [f"RECEIPT {i}", "Thank you for your payment", f"Paid: {20 + i} EUR"], "receipt"
        else:
            lines, label = [f"Dear customer {i},", "we are writing about your subscription."], "other"
        write_pdf(folder / f"doc-{i:03d}.pdf", ["\n".join(lines)])
        truth[f"doc-{i:03d}.pdf"] = label
    return truth


def test_a_malformed_classification_answer_is_repaired_once(tmp_path: Path) -> None:
    truth = label_docs(tmp_path / "in", 30)
    with serve_in_thread(SimConfig(invalid_json_rate=0.4, seed=7)) as sim:
        spec = write_spec(tmp_path, sim.base_url)
        out = tmp_path / "out"
        assert llm_run(tmp_path / "in", out, spec).returncode == 0
        stats = sim.stats()
        records = by_name(out)
        failed = [r for r in records.values() if r["status"] == "failed"]
        # one request each, one more for every malformed first answer, none after a repair
        assert stats["chat_requests"] == len(truth) + stats["invalid_json"] - len(failed)
        assert all(r["error"]["category"] == "invalid_output" for r in failed)
        repaired = [
            r for r in records.values()
            if [a["outcome"] for a in r["llm"]["attempts"]] == ["not_json", "valid"]
        ]  # fmt: skip
        assert repaired, "no malformed first answer in 30 at 40 %"
        for name, record in records.items():
            if record["status"] == "done":
                assert record["class"]["label"] == truth[name]
        assert_totals_over_attempts(records)

    # every answer malformed: exactly one repair each, then invalid_output
    with serve_in_thread(SimConfig(invalid_json_rate=1.0, seed=8)) as sim:
        spec = write_spec(tmp_path, sim.base_url)
        out = tmp_path / "all-bad"
        assert llm_run(tmp_path / "in", out, spec).returncode == 0
        assert sim.stats()["chat_requests"] == 2 * len(truth)
        records = by_name(out)
        assert all(r["status"] == "failed" for r in records.values())
        assert all(r["error"]["category"] == "invalid_output" for r in records.values())
        assert all(len(r["llm"]["attempts"]) == 2 for r in records.values())


def test_an_answer_that_is_not_a_label_is_not_cached_and_retry_asks_again(tmp_path: Path) -> None:
    truth = label_docs(tmp_path / "in", 12)
    with serve_in_thread(SimConfig(off_schema_rate=1.0, seed=9)) as sim:
        spec = write_spec(tmp_path, sim.base_url)
        out = tmp_path / "out"
        assert llm_run(tmp_path / "in", out, spec).returncode == 0
        assert sim.stats()["chat_requests"] == 2 * len(truth)  # the answer and one repair
        records = by_name(out)
        assert all(r["status"] == "failed" for r in records.values())
        assert all("not one of" in r["error"]["message"] for r in records.values())
        assert all(
            [a["outcome"] for a in r["llm"]["attempts"]] == ["invalid", "invalid"]
            for r in records.values()
        )
        with sqlite3.connect(out / "llm-cache.db") as cache:
            assert cache.execute("SELECT COUNT(*) FROM answers").fetchone()[0] == 0
        paid = status(out)["llm"]["cost_usd"]
        assert paid > 0

        sim.reconfigure(off_schema_rate=0.0)
        sim.reset()
        assert run_cli("retry", str(out)).returncode == 0
        again = llm_run(tmp_path / "in", out, spec)
        assert again.returncode == 0, again.stderr
        assert sim.stats()["chat_requests"] == len(truth)  # asked again, not replayed
        records = by_name(out)
        assert {n: r["class"]["label"] for n, r in records.items()} == truth
        # each record's spend is its total over both runs: two invalid answers, one valid
        for record in records.values():
            assert [a["outcome"] for a in record["llm"]["attempts"]] == ["invalid", "invalid", "valid"]
        assert_totals_over_attempts(records)
        assert status(out)["llm"]["cost_usd"] > paid
