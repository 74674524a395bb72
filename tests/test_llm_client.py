"""The provider client: configuration, secrets, Retry-After, and what never reaches a log."""

from __future__ import annotations

import asyncio
import email.utils
import logging

import pytest

from docmill.llm import ProviderClient, ProviderConfig, ProviderConfigError, ResultKind
from docmill.llm.client import parse_retry_after, resolve_api_key
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
