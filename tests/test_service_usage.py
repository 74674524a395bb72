"""The pure and SQLite parts of LLM jobs: a run's budget within the key's month, spend
recorded per key and month, the tiers' spec lists, ``service.llm_specs`` and what a key
sees of a spec."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from docmill.service.specs import load_published, spec_view
from docmill.service.tiers import BUILTIN, load_tiers
from docmill.service.usage import SpendLedger, monthly_limit, period_of, run_budget
from docmill.settings import SettingsError, load_settings
from test_llm_stage import write_spec

DEC = 1796083200.0  # 2026-12-01T00:00:00Z
JAN = 1798761600.0  # 2027-01-01T00:00:00Z


def test_periods_are_utc_calendar_months() -> None:
    assert period_of(DEC) == "2026-12"
    assert period_of(JAN - 1) == "2026-12"
    assert period_of(JAN) == "2027-01"


def test_a_runs_budget_is_the_jobs_within_what_the_key_has_left() -> None:
    assert run_budget(5.0, 0.0, None, 123.0) == 5.0  # no monthly limit
    assert run_budget(5.0, 0.0, 20.0, 2.0) == 5.0  # plenty left
    assert run_budget(5.0, 0.0, 20.0, 17.0) == pytest.approx(3.0)  # clamped to the rest
    # the job's own spend counts in the key's month: what it spent stays in its budget
    assert run_budget(5.0, 1.0, 20.0, 17.0) == pytest.approx(4.0)
    assert run_budget(5.0, 1.0, 20.0, 25.0) == pytest.approx(1.0)  # over: nothing more
    # other running jobs' budgets in force, less their spend, are held for them
    assert run_budget(5.0, 0.0, 20.0, 10.0, others_outstanding_usd=8.0) == pytest.approx(2.0)
    assert run_budget(5.0, 0.0, 20.0, 10.0, others_outstanding_usd=30.0) == 0.0
    assert monthly_limit(0.0, None) is None and monthly_limit(50.0, None) == 50.0
    assert monthly_limit(50.0, 7.0) == 7.0 and monthly_limit(0.0, 0.0) == 0.0  # a key's 0: nothing


def test_a_resume_that_could_not_pay_for_one_document_is_refused_saying_what_is_left() -> None:
    """A resumed job whose run would get less than one document's cost beyond what it
    spent stops again at once: refused, by what binds (the key's month, else the budget)."""
    from docmill.service.usage import resume_refusal

    # plenty: accepted (no monthly limit; a month with room)
    assert resume_refusal(5.0, 1.0, 0.01, None, 40.0) is None
    assert resume_refusal(5.0, 1.0, 0.01, 20.0, 10.0) is None
    # nothing of the month left: monthly_budget_spent, as before
    spent = resume_refusal(5.0, 1.0, 0.01, 20.0, 20.0)
    assert spent is not None and (spent.status, spent.code) == (409, "monthly_budget_spent")
    # a tiny rest of the month, under one document: refused, saying what is left
    low = resume_refusal(5.0, 1.0, 0.01, 20.0, 19.996)
    assert low is not None and (low.status, low.code) == (409, "monthly_budget_low")
    assert low.details["left_usd"] == pytest.approx(0.004)
    assert low.details["per_document_usd"] == 0.01
    assert "0.004 USD left" in low.message and "keys budget" in low.message
    # the rest held by the key's other running jobs counts as spent
    held = resume_refusal(5.0, 1.0, 0.01, 20.0, 10.0, others_outstanding_usd=9.995)
    assert held is not None and held.code == "monthly_budget_low"
    assert held.details["left_usd"] == pytest.approx(0.005)
    # the budget asked for is what binds: it must exceed the spend by one document
    small = resume_refusal(1.005, 1.0, 0.01, 20.0, 2.0)
    assert small is not None and (small.status, small.code) == (422, "budget_too_low")
    assert small.details == {"budget_usd": 1.005, "job_spent_usd": 1.0, "per_document_usd": 0.01,
                             "least_budget_usd": 1.01}
    assert resume_refusal(1.011, 1.0, 0.01, None, 0.0) is None
    # no figure for one document yet (nothing spent, no estimate): only an empty month refuses
    assert resume_refusal(5.0, 0.0, None, 20.0, 19.999) is None
    assert resume_refusal(0.0, 0.0, None, None, 0.0) is not None  # a budget of nothing


def test_spend_is_recorded_as_totals_and_split_where_a_month_ends(tmp_path: Path) -> None:
    spend = SpendLedger.open(tmp_path)
    try:
        spend.record("k1", "job-a", 1.0, 100, 10, now=JAN - 60)
        spend.record("k1", "job-a", 1.5, 150, 15, now=JAN - 30)
        spend.record("k1", "job-a", 1.5, 150, 15, now=JAN + 1)  # nothing new
        spend.record("k1", "job-a", 2.0, 200, 20, now=JAN + 30)  # 0.5 in January
        spend.record("k1", "job-a", 1.2, 100, 5, now=JAN + 40)  # totals never go down
        spend.record("k1", "job-b", 0.25, 10, 1, now=JAN + 50)
        spend.record("k2", "job-c", 9.0, 1, 1, now=JAN + 50)
        assert spend.spent("k1", "2026-12") == pytest.approx(1.5)
        assert spend.spent("k1", "2027-01") == pytest.approx(0.75)
        assert spend.job_total("job-a") == pytest.approx(2.0)
        assert spend.job_totals(["job-a", "job-b", "nope"]) == {"job-a": 2.0, "job-b": 0.25}
        usage = spend.usage("k1", "2027-01").to_dict(1.0, "key")
        assert usage["spent_usd"] == pytest.approx(0.75) and usage["left_usd"] == pytest.approx(0.25)
        assert usage["tokens"] == {"in": 60, "out": 6}
        assert {j["id"] for j in usage["jobs"]} == {"job-a", "job-b"}
        assert spend.usage("k1", "2027-01").to_dict(None, None)["left_usd"] is None
    finally:
        spend.close()
    reopened = SpendLedger.open(tmp_path)  # committed, and the migration applied once
    assert reopened.spent("k2", "2027-01") == 9.0
    reopened.close()


def test_tiers_name_the_specs_their_keys_may_use(tmp_path: Path) -> None:
    assert not BUILTIN["free"].may_use("invoices")
    assert BUILTIN["pro"].may_use("invoices") and BUILTIN["pro"].monthly_budget_usd == 100
    assert BUILTIN["unlimited"].monthly_budget_usd == 0  # no monthly limit
    path = tmp_path / "tiers.toml"
    path.write_text('[tiers.team]\nbase = "free"\nllm_specs = ["invoices"]\nmonthly_budget_usd = 20\n')
    team = load_tiers(str(path))["team"]
    assert team.may_use("invoices") and not team.may_use("payroll")
    assert team.monthly_budget_usd == 20.0 and team.ocr is False  # the rest from its base
    for bad in ('llm_specs = "invoices"', "llm_specs = [1]", "monthly_budget_usd = -1"):
        path.write_text(f"[tiers.team]\n{bad}\n")
        with pytest.raises(SettingsError, match="team"):
            load_tiers(str(path))


def test_published_specs_from_the_file_env_and_flags(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    spec = write_spec(tmp_path, "http://127.0.0.1:9/v1")
    config = tmp_path / "docmill.toml"
    config.write_text(f'[service]\nllm_specs = {{ invoices = "{spec.name}" }}\n')
    from_file = load_settings(config, env={})
    assert from_file.service.llm_specs == (("invoices", "spec.toml"),)
    assert from_file.origin("service.llm_specs") == f"file:{config}"
    from_env = load_settings(None, env={"DOCMILL_SERVICE__LLM_SPECS": json.dumps({"a": "x.toml", "b": "y.toml"})})
    assert from_env.service.llm_specs == (("a", "x.toml"), ("b", "y.toml"))
    assert from_env.to_dict()["service"]["llm_specs"] == {"a": "x.toml", "b": "y.toml"}
    for bad in ('"not json', '["x.toml"]', json.dumps({"../up": "x.toml"}), json.dumps({"a": ""})):
        with pytest.raises(SettingsError, match=r"service\.llm_specs"):
            load_settings(None, env={}, overrides={"service.llm_specs": bad})

    published = load_published(from_file)
    assert published["invoices"].path == str(spec.resolve())
    view = spec_view(published["invoices"])
    assert view["models"] == {"classify": "sim-small", "extract": "sim-large"}
    assert view["prices_usd_per_million_tokens"]["sim-small"] == {"input": 1.0, "output": 2.0}
    assert "127.0.0.1:9" not in json.dumps(view)
    broken = load_settings(None, env={}, overrides={"service.llm_specs": json.dumps({"gone": "nope.toml"})})
    with pytest.raises(SettingsError, match=r"service\.llm_specs\.gone"):
        load_published(broken)


def test_keys_get_their_own_monthly_limit_and_lose_it(tmp_path: Path) -> None:
    from engine_kit import run_cli

    where = ("--set", f"service.data_dir={tmp_path}")
    made = run_cli("keys", "create", "--tier", "pro", "--monthly-budget-usd", "12.5", "--json", *where)
    assert made.returncode == 0, made.stderr
    key = json.loads(made.stdout)
    assert key["monthly_budget_usd"] == 12.5
    listed = json.loads(run_cli("keys", "list", "--json", *where).stdout)
    assert [k["monthly_budget_usd"] for k in listed] == [12.5]
    assert "monthly LLM limit 12.5 USD" in run_cli("keys", "list", *where).stdout
    changed = run_cli("keys", "budget", key["id"], "tier", *where)
    assert changed.returncode == 0 and "its tier's" in changed.stdout
    assert json.loads(run_cli("keys", "list", "--json", *where).stdout)[0]["monthly_budget_usd"] is None
    for bad in ("-1", "nan", "lots"):
        refused = run_cli("keys", "budget", key["id"], bad, *where)
        assert refused.returncode == 1 and "monthly budget" in refused.stderr
    assert run_cli("keys", "budget", "000000000000", "3", *where).returncode == 1
    negative = run_cli("keys", "create", "--tier", "pro", "--monthly-budget-usd", "-2", *where)
    assert negative.returncode == 1 and "--monthly-budget-usd" in negative.stderr
