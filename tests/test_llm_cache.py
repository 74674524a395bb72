"""The answer cache: keys, a hit on the second lookup, persistence across reopenings."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from docmill.llm.cache import AnswerCache, CachedAnswer, cache_key

SHA = "ab" * 32


def test_key_is_stable_and_sensitive_to_every_part() -> None:
    k = cache_key(SHA, "Extract the total.", "gpt-4o-mini", {"temperature": 0, "max_tokens": 50})
    assert len(k) == 64
    # parameter order does not matter
    assert k == cache_key(
        SHA, "Extract the total.", "gpt-4o-mini", {"max_tokens": 50, "temperature": 0}
    )
    others = {
        cache_key(
            "cd" * 32, "Extract the total.", "gpt-4o-mini", {"temperature": 0, "max_tokens": 50}
        ),
        cache_key(SHA, "Extract the date.", "gpt-4o-mini", {"temperature": 0, "max_tokens": 50}),
        cache_key(SHA, "Extract the total.", "gpt-4o", {"temperature": 0, "max_tokens": 50}),
        cache_key(SHA, "Extract the total.", "gpt-4o-mini", {"temperature": 0.2, "max_tokens": 50}),
    }
    assert k not in others and len(others) == 4
    # no ambiguity from concatenation
    assert cache_key(SHA, "a", "bc", {}) != cache_key(SHA, "ab", "c", {})


def test_second_lookup_hits_and_survives_a_rerun(tmp_path: Path) -> None:
    path = tmp_path / "answers.sqlite"
    key = cache_key(SHA, "Extract the total.", "gpt-4o-mini", {"temperature": 0})
    answer = {"total": "1 234,56 €", "lines": [1, 2.5, None, True]}
    usage = {"input_tokens": 812, "output_tokens": 17}
    with AnswerCache(path) as cache:
        assert cache.get(key) is None
        cache.put(key, answer, usage)
        assert cache.get(key) == CachedAnswer(answer, usage)
    with AnswerCache(path) as cache:  # the rerun
        assert cache.get(key) == CachedAnswer(answer, usage)
        assert len(cache) == 1
        cache.put(key, {"total": "0"}, usage)  # a replace, not a second row
        assert len(cache) == 1
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()


def test_a_reader_sees_committed_writes(tmp_path: Path) -> None:
    path = tmp_path / "answers.sqlite"
    with AnswerCache(path) as writer, AnswerCache(path) as reader:
        writer.put("k", [1], {})
        assert reader.get("k") == CachedAnswer([1], {})


def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "answers.sqlite"
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA user_version=99")
    conn.close()
    with pytest.raises(RuntimeError, match="newer"):
        AnswerCache(path)
