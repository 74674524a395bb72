"""The LLM simulator's answers, limits and faults, seen through the real client on loopback."""

from __future__ import annotations

import asyncio
import json
import math
import os
import subprocess
import sys
from collections import Counter
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

import httpx
import jsonschema
import pytest

from docmill.llm import ChatResult, ProviderClient, ProviderConfig, ResultKind
from docmill.testkit import SimConfig, serve_in_thread
from docmill.testkit.llm_answers import answer, estimate_tokens, parse_number

T = TypeVar("T")
REPO = Path(__file__).resolve().parents[1]

INVOICE = """ACME Supplies Ltd
Invoice number: INV-001
Invoice date: 2026-03-01
Total: 1,234.50 EUR
Paid: no
Items: paper, toner; staples
Customer name: Jane Roe
This invoice is due in 30 days.
"""

SCHEMA: dict[str, Any] = {
    "$defs": {
        "Party": {
            "type": "object",
            "properties": {"customer_name": {"type": "string"}, "vat_id": {"type": "string"}},
            "required": ["customer_name", "vat_id"],
            "additionalProperties": False,
        }
    },
    "type": "object",
    "properties": {
        "invoice_number": {"type": "string"},
        "invoice_date": {"type": ["string", "null"]},
        "total": {"type": "number"},
        "line_count": {"type": "integer"},
        "paid": {"type": "boolean"},
        "items": {"type": "array", "items": {"type": "string"}},
        "due_date": {"anyOf": [{"type": "string"}, {"type": "null"}]},
        "doc_type": {"type": "string", "enum": ["contract", "invoice", "letter"]},
        "party": {"$ref": "#/$defs/Party"},
    },
    "required": [
        "invoice_number",
        "invoice_date",
        "total",
        "line_count",
        "paid",
        "items",
        "due_date",
        "doc_type",
        "party",
    ],
    "additionalProperties": False,
}


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def provider(base_url: str, **kw: Any) -> ProviderConfig:
    return ProviderConfig(name="sim", base_url=base_url, model="sim-small", **kw)


def user(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


async def chat_many(config: ProviderConfig, n: int, **kw: Any) -> list[ChatResult]:
    async with ProviderClient(config) as client:
        return await asyncio.gather(
            *(client.chat(user(f"request {i}: hello"), **kw) for i in range(n))
        )


# --- answers ---------------------------------------------------------------------------


def test_json_schema_answer_is_filled_from_the_text_and_validates() -> None:
    with serve_in_thread(SimConfig(time_scale=0.01)) as sim:

        async def go() -> ChatResult:
            async with ProviderClient(provider(sim.base_url)) as client:
                prompt = f"Extract the fields.\n<document>\n{INVOICE}</document>"
                return await client.chat(user(prompt), schema=SCHEMA, schema_name="invoice")

        result = run(go())
    assert result.kind is ResultKind.OK and result.status == 200
    assert result.parse_error is None
    jsonschema.validate(result.parsed, SCHEMA)
    assert result.parsed == {
        "invoice_number": "INV-001",
        "invoice_date": "2026-03-01",
        "total": 1234.5,
        "line_count": 0,  # not in the text, not nullable: the typed default
        "paid": False,
        "items": ["paper", "toner", "staples"],
        "due_date": None,  # not in the text, nullable
        "doc_type": "invoice",  # classified: "invoice" occurs most
        "party": {"customer_name": "Jane Roe", "vat_id": ""},
    }


def test_classification_follows_the_documented_rule() -> None:
    labels = "Labels:\n- contract: agreement, party\n- invoice: payment, total\n- other\n"
    doc = "This agreement binds each party. The total is due on payment."
    # contract: agreement 1 + party 1 = 2; invoice: total 1 + payment 1 = 2 -> tie, first wins
    assert answer(user(f"Classify.\n{labels}Document: {doc}"), None).content == "contract"
    assert answer(user(f"Classify.\n{labels}Document: total total"), None).content == "invoice"
    assert answer(user(f"Classify.\n{labels}Document: nothing here"), None).content == "other"
    inline = "Labels: letter, purchase_order\nText: re purchase order 12"
    assert answer(user(inline), None).content == "purchase_order"


def test_usage_is_always_reported_as_a_quarter_of_the_characters() -> None:
    text = "x" * 401
    reply = answer(user(text), None)
    assert reply.prompt_tokens == math.ceil(401 / 4) == estimate_tokens(text)
    with serve_in_thread(SimConfig(time_scale=0.01)) as sim:
        results = run(chat_many(provider(sim.base_url), 5, schema=SCHEMA))
    for result in results:
        assert result.usage is not None and result.content is not None
        assert result.usage.completion_tokens == estimate_tokens(result.content)
        assert result.usage.total_tokens == (
            result.usage.prompt_tokens + result.usage.completion_tokens
        )
        assert result.usage.prompt_tokens > 0


@pytest.mark.parametrize(
    ("text", "integer", "expected"),
    [("1,234.56 EUR", False, 1234.56), ("12,50", False, 12.5), ("1.234,5", False, 1234.5),
     ("n/a", False, None), ("7 pages", True, 7), ("-3.9", True, -3)],
)  # fmt: skip
def test_numbers_in_values(text: str, integer: bool, expected: float | None) -> None:
    assert parse_number(text, integer) == expected


def test_invalid_json_share_gives_parse_errors_not_failures() -> None:
    with serve_in_thread(SimConfig(invalid_json_rate=1.0, time_scale=0.01)) as sim:
        results = run(chat_many(provider(sim.base_url), 6, schema=SCHEMA))
        assert sim.stats()["invalid_json"] == 6
    for result in results:
        assert result.kind is ResultKind.OK
        assert result.parsed is None and result.parse_error
        with pytest.raises(json.JSONDecodeError):
            json.loads(result.content or "")


def test_off_schema_share_is_valid_json_that_does_not_fit() -> None:
    with serve_in_thread(SimConfig(off_schema_rate=1.0, time_scale=0.01)) as sim:
        results = run(chat_many(provider(sim.base_url), 4, schema=SCHEMA))
        assert sim.stats()["off_schema"] == 4
    for result in results:
        assert result.kind is ResultKind.OK and isinstance(result.parsed, dict)
        assert set(result.parsed) == {"result"}
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(result.parsed, SCHEMA)


def test_an_answer_is_cut_to_max_tokens_and_billed_so() -> None:
    with serve_in_thread(SimConfig(time_scale=0.01)) as sim:
        (cut,) = run(chat_many(provider(sim.base_url), 1, schema=SCHEMA, max_tokens=3))
        billed = sim.stats()["by_model"]["sim-small"]
    assert cut.kind is ResultKind.OK and cut.usage is not None
    assert cut.usage.completion_tokens == 3 and billed["completion_tokens"] == 3
    assert cut.parsed is None  # a cut JSON answer does not parse


# --- limits ----------------------------------------------------------------------------


def test_rpm_gives_429_with_retry_after_then_recovers() -> None:
    # a simulated minute is 3 s of wall time: the 3 requests always fit in it
    with serve_in_thread(SimConfig(rpm=3, time_scale=0.05)) as sim:

        async def go() -> tuple[list[ChatResult], ChatResult]:
            async with ProviderClient(provider(sim.base_url)) as client:
                first = [await client.chat(user(f"q{i}")) for i in range(5)]
                wait = first[-1].retry_after_s
                assert wait is not None
                await asyncio.sleep(wait)
                return first, await client.chat(user("again"))

        first, again = run(go())
        stats = sim.stats()
    assert [r.kind for r in first] == [ResultKind.OK] * 3 + [ResultKind.RATE_LIMITED] * 2
    for limited in first[3:]:
        assert limited.status == 429
        assert limited.retry_after_s is not None and 0 < limited.retry_after_s <= 3.0
        assert limited.error and "RPM" in limited.error
    assert again.kind is ResultKind.OK
    assert stats["rate_limited"] == 2 and stats["ok"] == 4
    assert stats["by_status"] == {"200": 4, "429": 2}
    assert sum(m.get("429", 0) for m in stats["per_minute"]) == 2


def test_429_carries_retry_after_header_and_openai_error_body() -> None:
    with serve_in_thread(SimConfig(rpm=1, time_scale=1.0)) as sim:
        body = {"model": "m", "messages": user("hi")}
        with httpx.Client(base_url=sim.base_url) as http:
            assert http.post("/chat/completions", json=body).status_code == 200
            limited = http.post("/chat/completions", json=body)
    assert limited.status_code == 429
    assert 1 <= int(limited.headers["Retry-After"]) <= 60
    assert 0 < int(limited.headers["retry-after-ms"]) <= 60_000
    error = limited.json()["error"]
    assert error["type"] == "requests" and error["code"] == "rate_limit_exceeded"


def test_limits_are_per_key_and_model() -> None:
    env = {"KEY_A": "sk-a", "KEY_B": "sk-b"}
    with serve_in_thread(SimConfig(rpm=2, time_scale=1.0)) as sim:

        async def go(var: str, model: str = "sim-small") -> list[ChatResult]:
            config = ProviderConfig(
                name="sim", base_url=sim.base_url, model=model, api_key={"$env": var}
            )
            async with ProviderClient(config, env=env) as client:
                return [await client.chat(user(f"q{i}")) for i in range(3)]

        a, b = run(go("KEY_A")), run(go("KEY_B"))
        large = run(go("KEY_A", "sim-large"))  # same key, another model: its own window
        again = run(go("KEY_A"))  # same key and model: still full
    expected = [ResultKind.OK, ResultKind.OK, ResultKind.RATE_LIMITED]
    assert [r.kind for r in a] == expected and [r.kind for r in b] == expected
    assert [r.kind for r in large] == expected
    assert [r.kind for r in again] == [ResultKind.RATE_LIMITED] * 3


def test_tpm_limits_tokens_and_a_request_over_the_limit_is_a_client_error() -> None:
    prompt = "y" * 400  # 100 prompt tokens + the same text echoed (100): 200 a request
    with serve_in_thread(SimConfig(tpm=450, time_scale=1.0)) as sim:

        async def go() -> list[ChatResult]:
            async with ProviderClient(provider(sim.base_url)) as client:
                out = [await client.chat(user(prompt)) for _ in range(3)]
                out.append(await client.chat(user("z" * 2000)))
                return out

        results = run(go())
    assert [r.kind for r in results[:3]] == [ResultKind.OK, ResultKind.OK, ResultKind.RATE_LIMITED]
    assert results[2].error and "TPM" in results[2].error
    assert results[3].kind is ResultKind.CLIENT_ERROR and results[3].status == 400


# --- faults ----------------------------------------------------------------------------


def test_error_and_timeout_rates_are_classified() -> None:
    config = SimConfig(error_rate=0.3, timeout_rate=0.2, seed=11, time_scale=0.01, hang_s=30)
    with serve_in_thread(config) as sim:
        results = run(chat_many(provider(sim.base_url, timeout_s=1.0), 60))
        stats = sim.stats()
    kinds = Counter(r.kind for r in results)
    assert kinds[ResultKind.SERVER_ERROR] == stats["server_errors"] > 0
    assert kinds[ResultKind.TIMEOUT] == stats["timeouts"] > 0
    assert kinds[ResultKind.OK] == stats["ok"] > 0
    assert sum(kinds.values()) == 60
    for r in results:
        if r.kind is ResultKind.SERVER_ERROR:
            assert r.status in (500, 502, 503)
        if r.kind is ResultKind.TIMEOUT:
            assert r.status == 0 and r.usage is None


def test_outage_switch_from_python_and_over_http() -> None:
    with serve_in_thread(SimConfig(time_scale=0.01)) as sim:
        config = provider(sim.base_url)
        sim.set_outage(True)
        during = run(chat_many(config, 3))
        sim.set_outage(False)
        after = run(chat_many(config, 3))
        root = sim.base_url.removesuffix("/v1")
        assert httpx.post(f"{root}/_sim/outage", json={"on": True}).json()["outage"] is True
        via_http = run(chat_many(config, 2))
        httpx.post(f"{root}/_sim/outage", json={"on": False})
        stats = httpx.get(f"{root}/_sim/stats").json()
    assert all(r.kind is ResultKind.SERVER_ERROR and r.status == 503 for r in during + via_http)
    assert all(r.ok for r in after)
    assert stats["outage_503"] == 5 and stats["outage"] is False


def test_connection_refused_is_a_server_error() -> None:
    with serve_in_thread() as sim:
        url = sim.base_url
    result = run(chat_many(provider(url, connect_timeout_s=2.0), 1))[0]
    assert result.kind is ResultKind.SERVER_ERROR and result.status == 0


# --- concurrency -----------------------------------------------------------------------


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_200_concurrent_requests_through_one_client() -> None:
    config = SimConfig(latency_min_s=0.5, latency_max_s=3.0, latency_dist="lognormal", time_scale=0.1)
    before = _open_fds()
    with serve_in_thread(config) as sim:
        results = run(chat_many(provider(sim.base_url, max_connections=64), 200, schema=SCHEMA))
        stats = sim.stats()
    assert [r.kind for r in results] == [ResultKind.OK] * 200
    assert all(r.parsed is not None for r in results)
    assert stats["ok"] == 200 and stats["connections_peak"] <= 64
    assert stats["connections_total"] <= 200
    assert _open_fds() <= before + 5  # the client's and the server's sockets are closed


# --- the command line ------------------------------------------------------------------


def test_runs_as_a_module() -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    args = ["--port", "0", "--rpm", "60", "--latency", "0:0.01", "--seed", "3"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "docmill.testkit.llm_sim", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert "listening on http://127.0.0.1:" in line, proc.stderr.read() if proc.stderr else ""
        base_url = line.split()[-1]
        models = httpx.get(f"{base_url}/models", timeout=10).json()
        assert [m["id"] for m in models["data"]] == ["sim-small", "sim-large"]
        result = run(chat_many(provider(base_url), 2))
        assert all(r.ok for r in result)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


# --- the provider-like mode (issue 15) ----------------------------------------------------


def test_key_scope_shares_one_window_among_all_models_and_names_none() -> None:
    with serve_in_thread(SimConfig(rpm=2, limit_scope="key", time_scale=1.0)) as sim:
        body = {"messages": user("hi")}
        with httpx.Client(base_url=sim.base_url, headers={"Authorization": "Bearer k1"}) as http:
            small = http.post("/chat/completions", json={**body, "model": "sim-small"})
            large = http.post("/chat/completions", json={**body, "model": "sim-large"})
            refused = http.post("/chat/completions", json={**body, "model": "sim-large"})
        with httpx.Client(base_url=sim.base_url, headers={"Authorization": "Bearer k2"}) as http:
            other_key = http.post("/chat/completions", json={**body, "model": "sim-small"})
        stats = sim.stats()
    assert [small.status_code, large.status_code, refused.status_code] == [200, 200, 429]
    assert other_key.status_code == 200  # per key
    message = refused.json()["error"]["message"]
    assert message.startswith("Rate limit reached in organization org-docmill-sim on requests per min (RPM)")
    assert "Limit 2, Used 2, Requested 1" in message and "sim-large" not in message
    assert stats["admitted"] == 3
    per_minute = stats["per_minute"][0]
    assert per_minute["admitted:sim-small"] == 2 and per_minute["admitted:sim-large"] == 1


def test_model_scope_429_names_the_model_like_openai() -> None:
    with serve_in_thread(SimConfig(rpm=1, time_scale=1.0)) as sim:
        body = {"model": "sim-large", "messages": user("hi")}
        with httpx.Client(base_url=sim.base_url) as http:
            http.post("/chat/completions", json=body)
            refused = http.post("/chat/completions", json=body)
        sim.reconfigure(limit_figures=False)
        with httpx.Client(base_url=sim.base_url) as http:
            bare = http.post("/chat/completions", json=body)
    message = refused.json()["error"]["message"]
    assert message.startswith(
        "Rate limit reached for sim-large in organization org-docmill-sim on requests per min "
        "(RPM): Limit 1, Used 1, Requested 1. Please try again in"
    )
    bare_message = bare.json()["error"]["message"]
    assert "(RPM). Please try again in" in bare_message and "Limit" not in bare_message


def test_ratelimit_headers_as_openai_sends_them_and_the_client_reads_them() -> None:
    prompt = "y" * 400  # 100 prompt tokens + 100 echoed: 200 a request
    config = SimConfig(rpm=3, tpm=1000, ratelimit_headers=True, limit_scope="key", time_scale=1.0)
    with serve_in_thread(config) as sim:
        with httpx.Client(base_url=sim.base_url) as http:
            first = http.post("/chat/completions", json={"model": "sim-small", "messages": user(prompt)})

        async def go() -> list[ChatResult]:
            async with ProviderClient(provider(sim.base_url)) as client:
                return [await client.chat(user(prompt)) for _ in range(3)]

        results = run(go())
    h = first.headers
    assert (h["x-ratelimit-limit-requests"], h["x-ratelimit-remaining-requests"]) == ("3", "2")
    assert (h["x-ratelimit-limit-tokens"], h["x-ratelimit-remaining-tokens"]) == ("1000", "800")
    assert h["x-ratelimit-reset-requests"].endswith("s")  # "59.998s", "1m0s", "850ms"
    ok, ok2, refused = results
    assert ok.rate is not None and ok.rate.requests is not None and ok.rate.tokens is not None
    assert (ok.rate.requests.limit, ok.rate.requests.remaining) == (3, 1)
    assert (ok.rate.tokens.limit, ok.rate.tokens.remaining) == (1000, 600)
    assert ok.rate.requests.reset_s is not None and 0 < ok.rate.requests.reset_s <= 60
    assert ok2.rate is not None and ok2.rate.requests is not None
    assert ok2.rate.requests.remaining == 0
    assert refused.kind is ResultKind.RATE_LIMITED and refused.rate is not None
    assert refused.rate.refusal is not None
    assert (refused.rate.refusal.kind, refused.rate.refusal.figure) == ("requests", 3)
    assert refused.rate.refusal.used == 3 and refused.rate.refusal.target is None
    assert refused.rate.requests is not None and refused.rate.requests.remaining == 0


def test_a_tpm_429_states_tokens_used_and_requested() -> None:
    prompt = "y" * 400  # 200 tokens a request
    with serve_in_thread(SimConfig(tpm=450, limit_scope="key", time_scale=1.0)) as sim:

        async def go() -> list[ChatResult]:
            async with ProviderClient(provider(sim.base_url)) as client:
                return [await client.chat(user(prompt)) for _ in range(3)]

        results = run(go())
    refusal = results[2].rate.refusal if results[2].rate else None
    assert refusal is not None
    assert (refusal.kind, refusal.figure, refusal.used, refusal.requested) == ("tokens", 450, 400, 200)


def test_the_latency_tail_and_the_provider_like_preset() -> None:
    config = SimConfig(latency_min_s=0.5, latency_max_s=4.5, latency_dist="lognormal",
                       latency_tail_rate=0.5, latency_tail_min_s=8.0, latency_tail_max_s=20.0,
                       time_scale=0.001, seed=3)  # fmt: skip
    with serve_in_thread(config) as sim:
        draws = [sim._sim._latency() for _ in range(400)]  # type: ignore[attr-defined]
    tail = [d for d in draws if d >= 8.0]
    assert 150 <= len(tail) <= 250 and max(draws) <= 20.0
    assert all(0.5 <= d <= 4.5 for d in draws if d < 8.0)
    p = SimConfig.provider_like()
    assert (p.rpm, p.tpm, p.limit_scope, p.ratelimit_headers) == (90, 60_000, "key", False)
    assert (p.error_rate, p.timeout_rate, p.invalid_json_rate, p.latency_tail_rate) == (
        0.03, 0.01, 0.02, 0.05
    )
    assert math.sqrt(p.latency_min_s * p.latency_max_s) == pytest.approx(1.5)  # the median
    assert SimConfig.provider_like(ratelimit_headers=True, rpm=30).rpm == 30
    with pytest.raises(ValueError, match="limit_scope"):
        SimConfig(limit_scope="org")  # type: ignore[arg-type]


def test_the_command_line_exposes_the_provider_like_mode() -> None:
    from docmill.testkit.llm_sim import _parser, config_from_args

    help_text = _parser().format_help()
    for option in ("--provider-like", "--limit-scope", "--ratelimit-headers",
                   "--no-limit-figures", "--latency-tail"):  # fmt: skip
        assert option in help_text
    args = _parser().parse_args(
        ["--provider-like", "--ratelimit-headers", "--rpm", "30", "--latency-tail", "0.1:5:9"]
    )
    config = config_from_args(args)
    assert (config.rpm, config.tpm, config.limit_scope, config.ratelimit_headers) == (30, 60_000, "key", True)
    assert (config.latency_tail_rate, config.latency_tail_min_s, config.latency_tail_max_s) == (0.1, 5, 9)
    plain = config_from_args(_parser().parse_args(["--rpm", "60"]))
    assert plain == SimConfig(rpm=60)
