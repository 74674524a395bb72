"""Mask personal data (SSNs, e-mail addresses, phone numbers, card numbers) in log text."""

from __future__ import annotations

import re
from typing import Final

SSN_TOKEN: Final = "[SSN]"
EMAIL_TOKEN: Final = "[EMAIL]"
PHONE_TOKEN: Final = "[PHONE]"
CARD_TOKEN: Final = "[CARD]"
FAILED_TOKEN: Final = "[REDACTION FAILED]"

# Every pattern below needs an ASCII digit or an "@"; text without one is returned as is.
_TRIGGER: Final = re.compile(r"[0-9@]")

# Start only at the beginning of a run of local-part characters (keeps scanning linear).
_EMAIL: Final = re.compile(
    r"(?<![A-Za-z0-9._%+-])[A-Za-z0-9._%+-]+@(?:[A-Za-z0-9-]+\.)+[A-Za-z]{2,}(?![A-Za-z0-9-])",
    re.ASCII,
)

# 13-19 digits, contiguous or in card-style groups (4-4-4-1..4[-1..3], 4-6-4/5).
_CARD: Final = re.compile(
    r"(?<![0-9.-])"
    r"(?:[0-9]{13,19}"
    r"|[0-9]{4}(?P<sep>[ -])[0-9]{4}(?P=sep)[0-9]{4}(?P=sep)[0-9]{1,4}(?:(?P=sep)[0-9]{1,3})?"
    r"|[0-9]{4}(?P<sep2>[ -])[0-9]{6}(?P=sep2)[0-9]{4,5})"
    r"(?![0-9]|[.-][0-9])",
    re.ASCII,
)

# 123-45-6789 or 123 45 6789 (same separator twice).
_SSN: Final = re.compile(
    r"(?<![0-9.-])[0-9]{3}(?P<sep>[ -])[0-9]{2}(?P=sep)[0-9]{4}(?![0-9]|[.-][0-9])",
    re.ASCII,
)

# International: +CC then separated groups (or 8-15 contiguous digits); checked for 8-15 digits.
_PHONE_INTL: Final = re.compile(
    r"(?<![\w+])\+(?:[0-9]{8,15}"
    r"|[1-9][0-9]{0,3}(?:[ .-]?\([0-9]{1,4}\))?(?:[ .-][0-9]{1,5}){1,5})"
    r"(?![0-9]|[.-][0-9])",
    re.ASCII,
)

# US: (555) 123-4567, 555-123-4567, 555.123.4567, 555 123 4567, optional leading 1.
_PHONE_US: Final = re.compile(
    r"(?<![\w.+-])(?:1[ .-]?)?"
    r"(?:\([0-9]{3}\)[ ]?[0-9]{3}[ .-]|[0-9]{3}(?P<sep>[ .-])[0-9]{3}(?P=sep))"
    r"[0-9]{4}(?![0-9]|[.-][0-9])",
    re.ASCII,
)


def luhn_valid(digits: str) -> bool:
    """Return True if the ASCII digit string passes the Luhn checksum."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2 == 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _digits(text: str) -> str:
    return "".join(ch for ch in text if "0" <= ch <= "9")


def _card(match: re.Match[str]) -> str:
    return CARD_TOKEN if luhn_valid(_digits(match.group(0))) else match.group(0)


def _intl_phone(match: re.Match[str]) -> str:
    return PHONE_TOKEN if 8 <= len(_digits(match.group(0))) <= 15 else match.group(0)


def _redact_once(text: str) -> str:
    if "@" in text:
        text = _EMAIL.sub(EMAIL_TOKEN, text)
    text = _CARD.sub(_card, text)
    text = _SSN.sub(SSN_TOKEN, text)
    if "+" in text:
        text = _PHONE_INTL.sub(_intl_phone, text)
    return _PHONE_US.sub(PHONE_TOKEN, text)


def redact(text: str) -> str:
    """Return ``text`` with personal data replaced by ``[SSN]``, ``[EMAIL]``, ``[PHONE]``, ``[CARD]``.

    Idempotent and never raises. Each replacement removes at least one digit or "@" and
    adds none, so the fixed-point loop terminates.
    """
    try:
        text = str(text)  # tolerate non-str input from untyped callers
        while _TRIGGER.search(text) is not None:
            redacted = _redact_once(text)
            if redacted == text:
                break
            text = redacted
        return text
    except Exception:  # redaction must never break logging
        return FAILED_TOKEN
