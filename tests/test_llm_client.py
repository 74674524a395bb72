"""The provider client: configuration, secrets, Retry-After, and what never reaches a log."""

from __future__ import annotations

import asyncio
import email.utils
import logging

import pytest

from docmill.llm import ProviderClient, ProviderConfig, ProviderConfigError, ResultKind
from docmill.llm.client import parse_retry_after, resolve_api_key
from docmill.llm.rate_signals import (
    Allowance,
    Refusal,
    from_headers,
    names_model,
    parse_duration,
    parse_refusal,
)
from docmill.settings.loader import SettingsError
from docmill.testkit import SimConfig, serve_in_thread

SECRET = "sk-test-VERYSECRET-123"


def test_missing_env_var_is_a_config_error_naming_the_variable() -> None:
    config = ProviderConfig("openai", "https://api.example", "m", api_key={"$env": "NO_SUCH_KEY"})
    with pytest.raises(ProviderConfigError, match="NO_SUCH_KEY") as caught:
        ProviderClient(config, env={"OTHER": SECRET})
    assert isinstance(caught.value, SettingsError)
    assert SECRET not in str(caught.value)


def test_a_plain_key_is_refused_without_being_echoed() -> None:
    with pytest.raises(ProviderConfigError, match=r"\$env") as caught:
        resolve_api_key("openai", SECRET)  # type: ignore[arg-type]
    assert SECRET not in str(caught.value)
    assert resolve_api_key("local", None) is None
    assert resolve_api_key("x", {"$env": "K"}, {"K": SECRET}) == SECRET


def test_bad_config_values_are_refused() -> None:
    with pytest.raises(ProviderConfigError, match="base_url"):
        ProviderConfig("p", "api.example", "m")
    with pytest.raises(ProviderConfigError, match="timeouts"):
        ProviderConfig("p", "http://x", "m", timeout_s=0)


def test_retry_after_forms() -> None:
    assert parse_retry_after({"retry-after-ms": "1500", "retry-after": "2"}) == 1.5
    assert parse_retry_after({"retry-after": "7"}) == 7.0
    assert parse_retry_after({}) is None
    assert parse_retry_after({"retry-after": "soon"}) is None
    date = email.utils.formatdate(1_000_030, usegmt=True)
    assert parse_retry_after({"retry-after": date}, now=1_000_000) == 30.0


def test_neither_key_nor_document_text_reaches_a_log_or_a_repr(
    caplog: pytest.LogCaptureFixture,
) -> None:
    document = "Invoice number: CONFIDENTIAL-4711"
    schema = {"type": "object", "properties": {"invoice_number": {"type": "string"}}}
    caplog.set_level(logging.DEBUG)
    with serve_in_thread(SimConfig(rpm=1, time_scale=1.0)) as sim:
        config = ProviderConfig("sim", sim.base_url, "m", api_key={"$env": "SIM_KEY"})

        async def go() -> list[ResultKind]:
            async with ProviderClient(config, env={"SIM_KEY": SECRET}) as client:
                assert SECRET not in repr(client)
                out = []
                for _ in range(2):
                    result = await client.chat([{"role": "user", "content": document}], schema=schema)
                    out.append(result.kind)
                    assert SECRET not in repr(result)
                return out

        kinds = asyncio.run(go())
    assert kinds == [ResultKind.OK, ResultKind.RATE_LIMITED]
    assert "llm sim: ok status=200" in caplog.text
    assert SECRET not in caplog.text
    assert "CONFIDENTIAL" not in caplog.text


# --- what providers say, parsed -----------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("6m0s", 360.0), ("1s", 1.0), ("12ms", 0.012), ("1h2m3.5s", 3723.5), ("0.5", 0.5),
     ("", None), ("soon", None), ("5m3", None)],
)  # fmt: skip
def test_durations_as_openai_writes_them(text: str, seconds: float | None) -> None:
    assert parse_duration(text) == (pytest.approx(seconds) if seconds is not None else None)


def test_openai_and_anthropic_headers() -> None:
    requests, tokens = from_headers(
        {
            "x-ratelimit-limit-requests": "90",
            "x-ratelimit-remaining-requests": "12",
            "x-ratelimit-reset-requests": "52.3s",
            "x-ratelimit-limit-tokens": "60000",
            "x-ratelimit-remaining-tokens": "59,000",
            "x-ratelimit-reset-tokens": "1m0s",
        },
        0.0,
    )
    assert requests == Allowance(90, 12, pytest.approx(52.3))
    assert tokens == Allowance(60000, 59000, 60.0)
    wall = 1_767_225_600.0  # 2026-01-01T00:00:00Z
    requests, tokens = from_headers(
        {
            "anthropic-ratelimit-requests-limit": "50",
            "anthropic-ratelimit-requests-remaining": "49",
            "anthropic-ratelimit-requests-reset": "2026-01-01T00:00:34Z",
            "anthropic-ratelimit-input-tokens-limit": "40000",
            "anthropic-ratelimit-input-tokens-remaining": "39000",
            "anthropic-ratelimit-input-tokens-reset": "2026-01-01T00:00:01+00:00",
        },
        wall,
    )
    assert requests == Allowance(50, 49, pytest.approx(34.0))
    assert tokens == Allowance(40000, 39000, pytest.approx(1.0))
    assert from_headers({"x-ratelimit-limit-requests": "90"}, 0.0) == (None, None)


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("Rate limit reached for gpt-4o in organization org-x on requests per min (RPM): "
         "Limit 90, Used 90, Requested 1. Please try again in 1.2s.",
         Refusal("requests", 90, 90, 1, True, "gpt-4o")),
        ("Rate limit reached for gpt-4o-mini in organization org-x on tokens per min (TPM): "
         "Limit 60000, Used 59,800, Requested 650. Please try again in 450ms.",
         Refusal("tokens", 60000, 59800, 650, True, "gpt-4o-mini")),
        ("Rate limit reached in organization org-x on requests per min (RPM): Limit 90, "
         "Used 90, Requested 1.", Refusal("requests", 90, 90, 1, True, None)),
        ("Rate limit reached for 10KTPM-200RPM in organization org-x on tokens per min. "
         "Limit: 10000 / min. Please try again in 6ms.",
         Refusal("tokens", 10000, None, None, True, "10KTPM-200RPM")),
        ("Rate limit reached for gpt-4o in organization org-x on requests per day (RPD): "
         "Limit 200, Used 200, Requested 1.", Refusal("requests", 200, 200, 1, False, "gpt-4o")),
        ("This request would exceed the rate limit for your organization (abc) of 50,000 "
         "input tokens per minute. For details, refer to the docs.",
         Refusal("tokens", 50000, None, None, True, None)),
        ("Too many requests", Refusal(None, None, None, None, True, None)),
    ],
)  # fmt: skip
def test_429_messages(message: str, expected: Refusal) -> None:
    assert parse_refusal(message) == expected


def test_which_429s_name_a_model() -> None:
    assert names_model("gpt-4o", "gpt-4o")
    assert names_model("default-gpt-4o", "gpt-4o")
    assert not names_model("gpt-4o-mini", "gpt-4o")
    assert not names_model("10KTPM-200RPM", "gpt-4o")
    assert not names_model(None, "gpt-4o")
