"""Tests for docmill.observability.redact."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from docmill.observability.redact import luhn_valid, redact


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # SSNs
        ("ssn 123-45-6789 on file", "ssn [SSN] on file"),
        ("ssn=123 45 6789.", "ssn=[SSN]."),
        ("(078-05-1120)", "([SSN])"),
        # e-mail
        ("contact john.doe+tag@example.co.uk now", "contact [EMAIL] now"),
        ("from <a_b%c@mail-server.example.com>", "from <[EMAIL]>"),
        ("owner: X@Y.ORG, ok", "owner: [EMAIL], ok"),
        # phones
        ("call +44 20 7946 0958 today", "call [PHONE] today"),
        ("call +1 (555) 123-4567", "call [PHONE]"),
        ("call +447946095800.", "call [PHONE]."),
        ("tel (555) 123-4567, ok", "tel [PHONE], ok"),
        ("tel 555-123-4567", "tel [PHONE]"),
        ("tel 555.123.4567!", "tel [PHONE]!"),
        ("tel 1-555-123-4567", "tel [PHONE]"),
        # cards (Luhn-valid)
        ("card 4111 1111 1111 1111 exp", "card [CARD] exp"),
        ("card 4111-1111-1111-1111", "card [CARD]"),
        ("card 5555555555554444;", "card [CARD];"),
        ("amex 3782 822463 10005", "amex [CARD]"),
        ("visa13 4222222222222", "visa13 [CARD]"),
    ],
)
def test_pii_is_masked_in_context(text: str, expected: str) -> None:
    assert redact(text) == expected


def test_several_kinds_in_one_message() -> None:
    text = "user a@b.io ssn 123-45-6789 phone 555-123-4567 card 4111111111111111"
    assert redact(text) == "user [EMAIL] ssn [SSN] phone [PHONE] card [CARD]"


@pytest.mark.parametrize(
    "text",
    [
        "2024-01-15",
        "run started 2024-01-15 12:34:56,789 INFO docmill: ok",
        "2024-01-15T12:34:56.789012+00:00",
        "Mon, 15 Jan 2024 12:34:56 +0000",
        "2024/01/15 20240115",
        "docmill 0.1.0, pypdf 6.0.1, python 3.11.9, lib 10.123.45",
        "192.168.100.200",
        "parsed in 12.5s (0.25s queued), 120ms, 3m05s",
        "42 pages, 1,234 pages, page 7 of 500",
        "size 1048576 bytes (1,048,576 bytes), 3.5 MB, 12345678 B",
        "id 123456789, attempts 3, exit 137, pid 4242",
        "4111111111111112",  # 16 digits, not Luhn-valid
        "4111 1111 1111 1112",
        "12345678901234567890123",  # too long to be a card
        "docs 1,234/10,000 (12.3%) | pages 45,678 | 5,432 pages/min | ETA 1h02m",
        "sha256 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
        "/data/in/2024-01-15/report_0001.pdf",
        "no digits or at-signs here",
        "",
    ],
)
def test_non_pii_is_left_alone(text: str) -> None:
    assert redact(text) == text


def test_luhn() -> None:
    assert luhn_valid("4111111111111111")
    assert luhn_valid("79927398713")
    assert not luhn_valid("4111111111111112")


def test_non_str_input_does_not_raise() -> None:
    assert redact(123) == "123"  # type: ignore[arg-type]


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_idempotent_and_total_on_arbitrary_text(text: str) -> None:
    once = redact(text)
    assert isinstance(once, str)
    assert redact(once) == once


_PIECES = st.sampled_from(
    [
        "123-45-6789",
        "123 45 6789",
        "a@b.co",
        "x.y+z@mail.example.org",
        "+44 20 7946 0958",
        "(555) 123-4567",
        "555-123-4567",
        "555.123.4567",
        "4111 1111 1111 1111",
        "4111111111111111",
        "2024-01-15",
        "1.2.3",
        "-",
        ".",
        " ",
        "@",
        "+",
        "(",
        ")",
        "0",
        "7",
        "x",
    ]
)


@settings(max_examples=500, deadline=None)
@given(st.lists(_PIECES, max_size=12).map("".join))
def test_idempotent_on_adversarial_concatenations(text: str) -> None:
    once = redact(text)
    assert redact(once) == once


_PII = st.sampled_from(
    [
        "123-45-6789",
        "jane.roe@example.com",
        "+44 20 7946 0958",
        "(555) 123-4567",
        "555.123.4567",
        "4111 1111 1111 1111",
        "5555555555554444",
    ]
)
_WORDS = st.text(alphabet=st.characters(categories=["L", "Zs", "P"]), max_size=40)


@settings(max_examples=300, deadline=None)
@given(_WORDS, _PII, _WORDS)
def test_pii_never_survives_between_spaces(prefix: str, pii: str, suffix: str) -> None:
    out = redact(f"{prefix} {pii} {suffix}")
    assert pii not in out
